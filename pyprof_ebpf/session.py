"""Session semantics: when tracking starts, what each event means, and when it ends.

Responsibility: drive a ``Tracker`` for one target (launched command, attached pid, all
processes, a cgroup), feed its events to a ``ProcTree``, hand each audit record to a sink,
and end the session by the chosen semantics:

- root-exit (default): when the root process exits. Members still running are reported as
  left running. Austin's observable behaviour, made exact.
- follow-orphans: when no tracked process is alive, orphans included.
- a duration, or a signal: SIGINT/SIGTERM are forwarded to a launched command (the session
  then ends with it); a second signal, or the first one without a command, ends it at once.

The end never depends on one BPF event alone: the launched root is also waited for with
waitpid, an attached root is watched through a pidfd, and follow-orphans checks the kernel's
map, so a lost event cannot hang a session. Prints nothing.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

from . import _abi_gen as abi
from .errors import UsageError
from .events import ProcEvent
from .proctree import ProcTree
from .tracker import (CgroupNames, CgroupTarget, Launched, RunAs, Tracker, all_pids, descendants,
                      launch, read_stat, ticks_to_ns)

POLL_MS = 100


def boot_clock_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


@dataclass
class SessionResult:
    reason: str                       # "root-exit" | "all-exited" | "duration" | "signal"
    root_status: Optional[int]        # wait status of a launched root
    lost_events: int
    left_running: list = field(default_factory=list)
    counters: dict = field(default_factory=dict)


class Session:
    def __init__(self, tracker: Tracker, emit: Callable[[dict], None],
                 names: Optional[CgroupNames] = None, dump=None):
        self.tracker = tracker
        self.dump = dump              # a text file: raw events as JSON lines, for replay tests
        self.emit = emit
        self.names = names
        offset = time.time() - boot_clock_ns() / 1e9
        self.tree = ProcTree(lambda ns: round(ns / 1e9 + offset, 6), os.sysconf("SC_CLK_TCK"))
        self.launched: Optional[Launched] = None
        self.root_pidfd: Optional[int] = None
        self.root_status: Optional[int] = None
        self.has_root = False
        self.started_monotonic = time.monotonic()
        self.observers: List[Callable[[ProcEvent], None]] = []   # see every kernel event
        self.tickers: List[Callable[[], None]] = []              # called once per poll
        self.poll_ms = POLL_MS
        self._signals: List[int] = []
        self._forward_group = False
        self._last_drops = 0
        self._last_sweep = 0.0

    # -- targets --------------------------------------------------------------------------
    def launch(self, argv: List[str], run_as: Optional[RunAs]) -> Launched:
        # With a terminal, the command stays in our process group so it keeps the terminal
        # (and gets Ctrl-C from it directly); otherwise it gets its own group and signals
        # are forwarded to that group (Austin 4 does the same with setpgid).
        own_group = not sys.stdin.isatty()
        self._forward_group = own_group
        try:
            self.launched = launch(self.tracker, argv, run_as, own_group)
        except UsageError as err:
            launched = getattr(err, "launched", None)
            if launched is not None:
                os.waitpid(launched.pid, 0)
            raise
        self.has_root = True
        self.root_pidfd = self.launched.pidfd
        self._emit(self.tree.add_known(self.launched.pid, self.launched.start, self.launched.ppid,
                                       self.launched.parent_start, os.path.basename(argv[0])[:15],
                                       "launch", self.launched.start))
        return self.launched

    def attach(self, pid: int) -> None:
        """Track ``pid`` and every running descendant, then new ones (process-tree.md §6.2)."""
        try:
            root = read_stat(pid)
        except Exception:
            raise UsageError(f"no process with pid {pid}", "check the pid (ps -p PID)") from None
        if root.state in ("Z", "X"):
            raise UsageError(f"process {pid} has already exited (zombie)", "attach to a live process")
        try:
            self.root_pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.root_pidfd = None
        self.has_root = True
        self.tracker.set_bootstrap(True)
        now = boot_clock_ns()
        start = self.tracker.insert_validated(root)
        if start is None:
            raise UsageError(f"process {pid} exited while attaching", "attach to a live process")
        rec = self.tree.add_known(pid, start, root.ppid, 0, root.comm, "bootstrap", now)
        self.tree.root = self.tree.live[pid]
        self._emit(rec)
        for _ in range(2):   # a second pass picks up children forked during the first
            self._bootstrap(descendants(pid))
        self.tracker.set_bootstrap(False)

    def attach_all(self) -> None:
        self.tracker.set_bootstrap(True)
        stats = []
        for pid in sorted(all_pids()):
            try:
                stats.append(read_stat(pid))
            except Exception:
                continue
        self._bootstrap(stats)
        self.tracker.set_bootstrap(False)

    def attach_cgroup(self, target: CgroupTarget) -> None:
        stats = []
        for pid in target.pids():
            try:
                stats.append(read_stat(pid))
            except Exception:
                continue
        self._bootstrap(stats)

    def _bootstrap(self, stats) -> None:
        now = boot_clock_ns()
        for st, start in self.tracker.bootstrap(stats):
            if (st.pid, start) in self.tree.procs:
                continue
            parent = self.tree.live.get(st.ppid)
            self._emit(self.tree.add_known(st.pid, start, st.ppid, parent.start if parent else 0,
                                           st.comm, "bootstrap", now))

    # -- events ---------------------------------------------------------------------------
    def _emit(self, rec: dict) -> None:
        self.emit(rec)

    def _cgroup_fields(self, ev: ProcEvent) -> dict:
        if self.names is None:
            return {}
        out = {"cgroup_id": ev.cgroup_id}
        v2 = self.names.path(2, ev.cgroup_id)
        v1 = self.names.path(1, ev.cgroup_v1_id)
        if v2 is not None:
            out["cgroup"] = v2
        if v1 is not None:
            out["cgroup_v1"] = v1
        cid = self.names.container_id(v2, v1)
        if cid:
            out["container_id"] = cid
        return out

    def _handle(self, events: List[ProcEvent]) -> None:
        for ev in events:
            if self.dump is not None:
                self.dump.write(json.dumps(ev.to_dict()) + "\n")
            for observe in self.observers:
                observe(ev)
            extra = self._cgroup_fields(ev) if ev.kind != "exit" else None
            for rec in self.tree.apply(ev, extra):
                self._emit(rec)
        drops = self.tracker.counters()["ring_drops"]
        if drops > self._last_drops:
            self._last_drops = drops
            self._reconcile()

    def _reconcile(self) -> None:
        """After lost events the kernel map is still exact: processes we think alive but the
        map lacks have exited (status unknown); the root's end is still watched separately."""
        self.tree.mark_lost(self.tracker.members())

    def _live_members(self) -> dict:
        """The kernel map, less entries whose process has already exited without an exit
        event: a bootstrap insert can land between a process's exit tracepoint and its
        becoming a zombie, where /proc still shows it running (checked every 0.5 s)."""
        members = self.tracker.members()
        now = time.monotonic()
        if not members or now - self._last_sweep < 0.5:
            return members
        self._last_sweep = now
        for pid, start in list(members.items()):
            try:
                st = read_stat(pid)
                alive = st.state not in ("Z", "X") and self.tree.same_start(ticks_to_ns(st.start_ticks), start)
            except Exception:
                alive = False
            if not alive:
                self.drain(0.1)                      # its exit may still be queued
                if self.tracker.member_start(pid) == start:
                    self.tracker.untrack(pid)
                    p = self.tree.live.get(pid)
                    if p is not None and self.tree.same_start(p.start, start):
                        p.lost_exit = True
                        del self.tree.live[pid]
                del members[pid]
        return members

    def drain(self, budget_s: float = 2.0) -> None:
        """Consume what is queued, for at most ``budget_s``: a tree that keeps forking must
        not keep the session from ending."""
        deadline = time.monotonic() + budget_s
        while time.monotonic() < deadline:
            events = self.tracker.poll(0)
            if not events:
                return
            self._handle(events)

    # -- the loop -------------------------------------------------------------------------
    def _on_signal(self, signum, _frame) -> None:
        self._signals.append(signum)

    def _root_gone(self) -> bool:
        if self.launched is not None:
            if self.root_status is None:
                try:
                    pid, status = os.waitpid(self.launched.pid, os.WNOHANG)
                except ChildProcessError:
                    pid, status = self.launched.pid, 0
                if pid:
                    self.root_status = status
            return self.root_status is not None
        if self.root_pidfd is not None:
            readable, _, _ = select.select([self.root_pidfd], [], [], 0)
            return bool(readable)
        root = self.tree.root
        return root is not None and not root.alive

    def _forward(self, signum: int) -> None:
        if self.launched is None or self.root_status is not None:
            return
        try:
            if self._forward_group:
                os.killpg(self.launched.pid, signum)
            elif not (signum == signal.SIGINT and sys.stdin.isatty()):
                # From a terminal, Ctrl-C already reached the command (same group).
                os.kill(self.launched.pid, signum)
        except ProcessLookupError:
            pass

    def run(self, follow_orphans: bool, duration: Optional[float]) -> SessionResult:
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        deadline = time.monotonic() + duration if duration else None
        seen_signals = 0
        reason = ""
        try:
            while not reason:
                self._handle(self.tracker.poll(self.poll_ms))
                for tick in self.tickers:
                    tick()
                if len(self._signals) > seen_signals:
                    new = self._signals[seen_signals:]
                    seen_signals = len(self._signals)
                    if self.launched is None or seen_signals > 1:
                        reason = "signal"
                        break
                    for s in new:
                        self._forward(s)
                if deadline is not None and time.monotonic() >= deadline:
                    reason = "duration"
                    break
                if not self.has_root and not follow_orphans:
                    continue          # --all / --cgroup: until the duration or a signal
                root_gone = not self.has_root or self._root_gone()
                if root_gone and not follow_orphans:
                    reason = "root-exit"
                elif root_gone and follow_orphans and not self._live_members():
                    reason = "all-exited"
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        self.drain()
        if self.launched is not None and self.root_status is None:
            self._root_gone()
        self._close_root_from_waitpid()
        if reason == "all-exited":
            self.tree.mark_lost(self.tracker.members())
        counters = self.tracker.counters()
        # Lost = reservations the kernel could not make (each counted in BPF), not events
        # still queued when the session ended.
        lost = counters["ring_drops"] + self.tracker.undecodable
        return SessionResult(reason, self.root_status, lost,
                             [p for p in self.tree.left_running()], counters)

    def _close_root_from_waitpid(self) -> None:
        """If the root's EXIT event was lost, record its end from waitpid's status."""
        root = self.tree.root
        if self.launched is None or self.root_status is None or root is None or not root.alive:
            return
        self._emit(self.tree.close(root, self.root_status, boot_clock_ns(), source="waitpid"))


def exit_status_of(status: Optional[int]) -> int:
    """A shell's convention: the exit code, or 128+N for death by signal N."""
    if status is None:
        return 0
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


SCOPES = {"tree": abi.PyprofScope.PYPROF_SCOPE_TREE, "all": abi.PyprofScope.PYPROF_SCOPE_ALL,
          "cgroup": abi.PyprofScope.PYPROF_SCOPE_CGROUP}
