"""The user-space process tree of a session. Pure: fed events, yields audit records.

Responsibility: keep one ``Proc`` per identity ``(pid, start)`` — never per pid, so a reused
pid never merges two processes — from the tracker's fork/exec/exit events plus processes
added at launch or bootstrap; turn each into the audit record of ``pyprof-ebpf audit``;
account for lost events (sequence gaps); say who is still running. It never touches the
kernel, /proc or the clock: callers pass everything in, so recorded streams replay exactly.

Identities of bootstrapped processes come from /proc (clock ticks), those of forked ones
from the kernel (ns); they are compared at tick precision (``same_start``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from .events import ProcEvent, wait_status

NS = 1_000_000_000


@dataclass
class Proc:
    pid: int
    start: int                     # ns since boot
    ppid: int
    parent_start: int
    comm: str
    source: str                    # "launch" | "fork" | "bootstrap" | "walk"
    first_ts_ns: int               # fork time, or when bootstrap found it
    execs: List[str] = field(default_factory=list)
    exit_status: Optional[int] = None
    exit_ts_ns: Optional[int] = None
    lost_exit: bool = False        # ended during an event gap: status unknown

    @property
    def alive(self) -> bool:
        return self.exit_ts_ns is None and not self.lost_exit

    @property
    def key(self) -> Tuple[int, int]:
        return self.pid, self.start


class ProcTree:
    """``apply(event)`` returns the audit records the event produces (usually one)."""

    def __init__(self, boot_to_unix: Callable[[int], float], clk_tck: int = 100):
        self.to_unix = boot_to_unix
        self.clk_tck = clk_tck
        self.procs: Dict[Tuple[int, int], Proc] = {}
        self.live: Dict[int, Proc] = {}           # pid -> the live Proc holding that pid
        self.root: Optional[Proc] = None
        self.counts = {"forks": 0, "execs": 0, "exits": 0}
        self.received = 0
        self.next_seq = 0
        self.gaps = 0

    # -- identity -------------------------------------------------------------------------
    def same_start(self, a: int, b: int) -> bool:
        return a * self.clk_tck // NS == b * self.clk_tck // NS

    def _lookup(self, pid: int, start: int) -> Optional[Proc]:
        p = self.live.get(pid)
        if p is not None and self.same_start(p.start, start):
            return p
        return None

    # -- inputs ---------------------------------------------------------------------------
    def add_known(self, pid: int, start: int, ppid: int, parent_start: int, comm: str,
                  source: str, ts_ns: int) -> dict:
        """A process we did not see fork: the launched root or one found by bootstrap."""
        p = Proc(pid, start, ppid, parent_start, comm, source, ts_ns)
        self._insert(p)
        if source == "launch" and self.root is None:
            self.root = p
        if source != "bootstrap":
            self.counts["forks"] += 1
        return self._fork_record(p, tid=0, extra={})

    def apply(self, ev: ProcEvent, extra: Optional[dict] = None) -> List[dict]:
        self.received += 1
        # Sequence numbers are taken before the ring reservation, so two CPUs can deliver
        # them slightly out of order: a late arrival fills the hole it opened.
        if ev.seq >= self.next_seq:
            self.gaps += ev.seq - self.next_seq
            self.next_seq = ev.seq + 1
        elif self.gaps > 0:
            self.gaps -= 1
        extra = extra or {}
        if ev.kind == "fork":
            return self._on_fork(ev, extra)
        if ev.kind == "exec":
            return self._on_exec(ev, extra)
        return self._on_exit(ev)

    def _insert(self, p: Proc) -> None:
        old = self.live.get(p.pid)
        if old is not None and old is not p and old.alive:
            # The pid was reused, so the old holder must have died: its exit was lost.
            old.lost_exit = True
        self.procs[p.key] = p
        self.live[p.pid] = p

    def _fork_record(self, p: Proc, tid: int, extra: dict) -> dict:
        rec = {"event": "fork", "ts": self.to_unix(p.first_ts_ns), "pid": p.pid, "start": p.start,
               "comm": p.comm, "ppid": p.ppid, "parent_start": p.parent_start, "tid": tid,
               "source": p.source}
        rec.update(extra)
        return rec

    def _on_fork(self, ev: ProcEvent, extra: dict) -> List[dict]:
        known = self.procs.get((ev.pid, ev.start))
        if known is not None:            # launched root: its kernel fork confirms the record
            return []
        p = Proc(ev.pid, ev.start, ev.ppid, ev.pstart, ev.comm, "walk" if ev.via_walk else "fork",
                 ev.ts_ns)
        self._insert(p)
        self.counts["forks"] += 1
        return [self._fork_record(p, ev.tid, extra)]

    def _on_exec(self, ev: ProcEvent, extra: dict) -> List[dict]:
        p = self._lookup(ev.pid, ev.start)
        out = []
        if p is None:
            # Joined the scope at exec (e.g. moved into the cgroup): it is a member from now.
            p = Proc(ev.pid, ev.start, ev.ppid, 0, ev.comm, "exec", ev.ts_ns)
            self._insert(p)
        p.comm = ev.comm
        p.execs.append(ev.filename)
        self.counts["execs"] += 1
        rec = {"event": "exec", "ts": self.to_unix(ev.ts_ns), "pid": ev.pid, "start": p.start,
               "comm": ev.comm, "filename": ev.filename, "argv": ev.argv,
               "argv_truncated": ev.argv_truncated, "uid": ev.uid, "ppid": ev.ppid}
        if ev.old_pid and ev.old_pid != ev.pid:
            rec["old_tid"] = ev.old_pid
        rec.update(extra)
        out.append(rec)
        return out

    def _on_exit(self, ev: ProcEvent) -> List[dict]:
        p = self._lookup(ev.pid, ev.start)
        if p is None:
            # Marked lost by a reconcile while its exit was still queued: it is not lost.
            q = self.procs.get((ev.pid, ev.start))
            if q is not None and q.lost_exit:
                q.lost_exit = False
                return [self.close(q, ev.status, ev.ts_ns, ev.tid, ev.comm)]
        if p is None:
            # Exit of a process we never saw start (bootstrap ancestry walk, or a lost fork).
            p = Proc(ev.pid, ev.start, ev.ppid, 0, ev.comm, "walk" if ev.via_walk else "unknown",
                     ev.ts_ns)
            self.procs[p.key] = p
        else:
            self.live.pop(ev.pid, None)
        return [self.close(p, ev.status, ev.ts_ns, ev.tid, ev.comm)]

    def close(self, p: Proc, status: int, ts_ns: int, tid: int = 0, comm: str = "",
              source: str = "") -> dict:
        """Record ``p``'s death (from the kernel, or a user-space fallback such as waitpid)."""
        p.exit_status, p.exit_ts_ns = status, ts_ns
        if self.live.get(p.pid) is p:
            del self.live[p.pid]
        self.counts["exits"] += 1
        code, sig, core = wait_status(status)
        rec = {"event": "exit", "ts": self.to_unix(ts_ns), "pid": p.pid, "start": p.start,
               "comm": comm or p.comm, "exit_code": code, "signal": sig, "core_dumped": core,
               "duration": round(max(0, ts_ns - p.start) / NS, 6), "tid": tid}
        if p.source == "bootstrap":
            rec["observed"] = round(max(0, ts_ns - p.first_ts_ns) / NS, 6)
        if source:
            rec["source"] = source
        return rec

    def mark_lost(self, members: Dict[int, int]) -> int:
        """After lost events: every live process absent from the kernel's map (pid -> start)
        has exited with an unknown status. Returns how many."""
        n = 0
        for pid, p in list(self.live.items()):
            start = members.get(pid)
            if start is None or not self.same_start(start, p.start):
                p.lost_exit = True
                del self.live[pid]
                n += 1
        return n

    # -- outputs --------------------------------------------------------------------------
    def left_running(self) -> List[Proc]:
        return sorted((p for p in self.live.values() if p.alive), key=lambda p: p.first_ts_ns)

    def summary(self, lost_events: int, ts: float, extra: Optional[dict] = None) -> dict:
        rec = {"event": "summary", "ts": ts, "pid": self.root.pid if self.root else 0,
               "start": self.root.start if self.root else 0,
               "comm": self.root.comm if self.root else "",
               "processes": len(self.procs), "forks": self.counts["forks"],
               "execs": self.counts["execs"], "exits": self.counts["exits"],
               "lost_events": lost_events,
               "left_running": [{"pid": p.pid, "start": p.start, "comm": p.comm}
                                for p in self.left_running()]}
        rec.update(extra or {})
        return rec

    def children(self) -> Dict[Tuple[int, int], List[Proc]]:
        kids: Dict[Tuple[int, int], List[Proc]] = {}
        for p in self.procs.values():
            kids.setdefault((p.ppid, p.parent_start), []).append(p)
        return kids
