"""Kernel side of process-tree tracking: the tracker BPF program, targets, and /proc facts.

Responsibility: load ``bpf/pyprof.bpf.c`` (its tracker part); put targets into its membership map — a command
launched so that the kernel tracks it from its fork (``launch``), a running process with
its descendants (``bootstrap_tree``, the race-free protocol of process-tree.md §6.2), every
process (``bootstrap_all``), or a cgroup (``CgroupTarget``); deliver decoded events; expose
the map and counters for loss reconciliation. It prints nothing and makes no session
decisions (``session`` does).
"""

from __future__ import annotations

import ctypes
import errno
import os
import pwd
import re
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

from . import _abi_gen as abi
from .errors import BtfError, ProcessGone, UsageError
from .events import ProcEvent, decode
from .loader import BpfProgram, kernel_facts

NS = 1_000_000_000
C = abi.PyprofCounter
CGROUP2_MAGIC, CGROUP1_MAGIC = 0x63677270, 0x27E0EB


# --------------------------------------------------------------------------- /proc facts

@dataclass(frozen=True)
class ProcStat:
    pid: int
    comm: str
    state: str
    ppid: int
    start_ticks: int


def read_stat(pid: int) -> ProcStat:
    """Parse /proc/<pid>/stat; comm may hold spaces and ')' so split at the last ')'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError) as err:
        raise ProcessGone(f"process {pid} does not exist", "check the pid") from err
    head, _, tail = raw.rpartition(b")")
    fields = tail.split()
    return ProcStat(pid, head.split(b"(", 1)[1].decode("utf-8", "backslashreplace"),
                    fields[0].decode(), int(fields[1]), int(fields[19]))


def ticks_to_ns(ticks: int) -> int:
    return ticks * NS // os.sysconf("SC_CLK_TCK")


def all_pids() -> List[int]:
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


def descendants(root: int) -> List[ProcStat]:
    """Running descendants of ``root`` from one pass over /proc, parents before children."""
    stats: Dict[int, ProcStat] = {}
    for pid in all_pids():
        try:
            stats[pid] = read_stat(pid)
        except (ProcessGone, OSError, IndexError, ValueError):
            continue
    kids: Dict[int, List[ProcStat]] = {}
    for st in stats.values():
        kids.setdefault(st.ppid, []).append(st)
    out, todo = [], [root]
    while todo:
        for st in sorted(kids.get(todo.pop(0), []), key=lambda s: s.pid):
            out.append(st)
            todo.append(st.pid)
    return out


# --------------------------------------------------------------------------- cgroups

@dataclass(frozen=True)
class CgroupTarget:
    path: str
    version: int              # 1 or 2
    controller: str           # v1 controller whose hierarchy holds ``path`` ("" for v2)
    inode: int                # == kernfs node id == the BPF cgroup id

    @classmethod
    def resolve(cls, path: str) -> "CgroupTarget":
        real = os.path.realpath(path)
        best = None
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, fstype, opts = line.split()[:4]
                if fstype in ("cgroup", "cgroup2") and (real == mnt or real.startswith(mnt.rstrip("/") + "/")):
                    if best is None or len(mnt) > len(best[0]):
                        best = (mnt, fstype, opts)
        if best is None or not os.path.isfile(os.path.join(real, "cgroup.procs")):
            raise UsageError(f"{path} is not a cgroup directory",
                             "give a directory under a cgroup mount, e.g. /sys/fs/cgroup/<name>")
        mnt, fstype, opts = best
        controller = ""
        if fstype == "cgroup":
            known = ("cpuset", "cpu", "cpuacct", "memory", "devices", "freezer", "blkio", "pids",
                     "perf_event", "net_cls", "net_prio", "hugetlb", "rdma", "misc")
            controller = next((o for o in opts.split(",") if o in known), "")
            if not controller:
                raise UsageError(f"{path} is in a v1 hierarchy without a controller ({opts})",
                                 "use a controller hierarchy such as /sys/fs/cgroup/memory/...")
        return cls(real, 2 if fstype == "cgroup2" else 1, controller, os.stat(real).st_ino)

    def pids(self) -> List[int]:
        out = []
        for dirpath, _dirs, files in os.walk(self.path):
            if "cgroup.procs" in files:
                try:
                    with open(os.path.join(dirpath, "cgroup.procs")) as f:
                        out += [int(x) for x in f.read().split()]
                except OSError:
                    continue
        return sorted(set(out))


class CgroupNames:
    """cgroup id -> path, from the kernfs inode numbers of the mounted hierarchies (cached;
    rescanned at most once a second on a miss)."""

    CONTAINER_RE = re.compile(r"(?:^|[/-])([0-9a-f]{64})(?:\.scope)?$")

    def __init__(self, v2_mount: Optional[str], v1_mount: Optional[str]):
        self.mounts = {2: v2_mount, 1: v1_mount}
        self.cache: Dict[Tuple[int, int], str] = {}
        self.scanned: Dict[int, float] = {}

    def path(self, version: int, cgid: int) -> Optional[str]:
        if not cgid or not self.mounts.get(version):
            return None
        key = (version, cgid)
        if key not in self.cache and time.monotonic() - self.scanned.get(version, 0) > 1.0:
            self.scanned[version] = time.monotonic()
            mnt = self.mounts[version]
            for dirpath, _dirs, _files in os.walk(mnt):
                try:
                    self.cache[(version, os.stat(dirpath).st_ino)] = "/" + os.path.relpath(dirpath, mnt).lstrip(".")
                except OSError:
                    continue
        return self.cache.get(key)

    def container_id(self, *paths: Optional[str]) -> Optional[str]:
        for p in paths:
            m = self.CONTAINER_RE.search(p or "")
            if m:
                return m.group(1)
        return None

    @staticmethod
    def default() -> "CgroupNames":
        v2 = v1 = None
        with open("/proc/mounts") as f:
            for line in f:
                _dev, mnt, fstype, opts = line.split()[:4]
                if fstype == "cgroup2" and v2 is None:
                    v2 = mnt
                elif fstype == "cgroup" and "memory" in opts.split(","):
                    v1 = mnt
        return CgroupNames(v2, v1)


# --------------------------------------------------------------------------- the program

def default_max_tracked() -> int:
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            return max(1024, int(f.read()))
    except OSError:
        return 32768


class Tracker:
    """The tracker program. ``with Tracker(...) as t:`` loads and attaches; ``t.poll()``
    returns the events received since the last call."""

    def __init__(self, scope: int = abi.PyprofScope.PYPROF_SCOPE_TREE, ring_pages: int = 1024,
                 cgroup: Optional[CgroupTarget] = None, max_tracked: Optional[int] = None):
        if ring_pages < 1 or ring_pages & (ring_pages - 1):
            raise UsageError(f"ring buffer pages must be a power of two, not {ring_pages}",
                             "use e.g. --ring-pages 1024")
        self.scope = scope
        self.cgroup = cgroup
        self.max_tracked = max_tracked or default_max_tracked()
        self.ring_pages = ring_pages
        self.prog: Optional[BpfProgram] = None
        self._pending: List[ProcEvent] = []
        self._slice_end = 0.0
        self.undecodable = 0

    def __enter__(self) -> "Tracker":
        facts = kernel_facts()
        controller = self.cgroup.controller if self.cgroup and self.cgroup.version == 1 else "memory"
        v1_subsys = facts["cgroup_subsys"].get(f"{controller}_cgrp_id", -1)
        if v1_subsys < 0 and self.cgroup and self.cgroup.version == 1:
            raise BtfError(f"kernel BTF has no cgroup controller {controller}_cgrp_id",
                           "use the cgroup v2 path of the container instead")
        self.prog = BpfProgram("pyprof.bpf.c", defines={
            "MAX_TRACKED": self.max_tracked, "RING_PAGES": self.ring_pages,
            "CGROUP_V1_SUBSYS": v1_subsys, **self.extra_defines()}, kernel=facts["defines"])
        self.prog.__enter__()
        try:
            cfg = abi.tracker_config(scope=int(self.scope))
            if self.cgroup and self.cgroup.version == 1:
                cfg.cgroup_v1_id = self.cgroup.inode
            elif self.cgroup:
                fd = os.open(self.cgroup.path, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    self.prog["cgroup_filter"][ctypes.c_int(0)] = fd
                finally:
                    os.close(fd)
            self.prog["config"][ctypes.c_int(0)] = cfg
            self.prog.open_ring_buffer("events", self._on_record)
            for tp in ("sched_process_fork", "sched_process_exec", "sched_process_exit"):
                self.prog.attach_raw_tracepoint(tp, "on_" + tp.rsplit("_", 1)[1])
            self.after_attach()
        except BaseException:
            self.prog.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.prog is not None:
            self.prog.__exit__(*exc)
            self.prog = None

    def extra_defines(self) -> Dict[str, int]:
        """-D constants a subclass adds (the sampler switches its part of pyprof.bpf.c on)."""
        return {}

    def after_attach(self) -> None:
        """Called once the tracepoints are attached (the sampler opens its perf events)."""

    def _on_record(self, data: int, size: int) -> Optional[int]:
        ev = decode(ctypes.string_at(data, size))
        if ev is None:
            self.undecodable += 1
        else:
            self._pending.append(ev)
        return self.slice_over()

    def slice_over(self) -> Optional[int]:
        """-1 once the current poll has used its time slice (see BpfProgram.open_ring_buffer)."""
        return -1 if time.monotonic() > self._slice_end else None

    def poll(self, timeout_ms: int) -> List[ProcEvent]:
        """Events received within about ``timeout_ms`` (and at most that plus 50 ms of
        consuming, so the session can always look at its clock and signals)."""
        self._slice_end = time.monotonic() + timeout_ms / 1000 + 0.05
        self.prog.poll(timeout_ms)
        out, self._pending = self._pending, []
        return out

    # -- the membership map ---------------------------------------------------------------
    def track(self, pid: int, start_ns: int, ptgid: int = 0) -> None:
        self.prog["tracked"][ctypes.c_uint32(pid)] = abi.member(start=start_ns, ptgid=ptgid)

    def untrack(self, pid: int) -> None:
        try:
            del self.prog["tracked"][ctypes.c_uint32(pid)]
        except KeyError:
            pass

    def member_start(self, pid: int) -> Optional[int]:
        try:
            return self.prog["tracked"][ctypes.c_uint32(pid)].start
        except KeyError:
            return None

    def members(self) -> Dict[int, int]:
        return {k.value: v.start for k, v in self.prog["tracked"].items()}

    def counters(self) -> Dict[str, int]:
        vals = [v.value for v in self.prog["counters"].values()]
        return {"seq": vals[C.PYPROF_CNT_SEQ], "ring_drops": vals[C.PYPROF_CNT_RB_DROPS],
                "map_full": vals[C.PYPROF_CNT_MAP_FULL], "walk_forks": vals[C.PYPROF_CNT_WALK_FORKS],
                "walk_exits": vals[C.PYPROF_CNT_WALK_EXITS]}

    def set_bootstrap(self, on: bool) -> None:
        cfg = self.prog["config"][ctypes.c_int(0)]
        cfg.bootstrap = int(on)
        self.prog["config"][ctypes.c_int(0)] = cfg

    # -- targets --------------------------------------------------------------------------
    def insert_validated(self, st: ProcStat) -> Optional[int]:
        """Insert a process found in /proc, then re-read /proc: if it died or its pid was
        reused in between, take the entry back (it would never be deleted by an exit)."""
        start = ticks_to_ns(st.start_ticks)
        if self.member_start(st.pid) is not None:
            return None                      # already a member (a fork event got it first)
        self.track(st.pid, start, st.ppid)
        try:
            again = read_stat(st.pid)
            ok = again.start_ticks == st.start_ticks and again.state not in ("Z", "X")
        except (ProcessGone, OSError, IndexError, ValueError):
            ok = False
        if not ok:
            self.untrack(st.pid)
            return None
        return start

    def bootstrap(self, stats: Iterable[ProcStat]) -> List[Tuple[ProcStat, int]]:
        """Insert running processes (parents first). The caller turned the in-kernel
        ancestry walk on before the scan, so forks and exits that race with it are caught."""
        added = []
        for st in stats:
            if st.state in ("Z", "X"):
                continue                      # already exited: not a live member
            start = self.insert_validated(st)
            if start is not None:
                added.append((st, start))
        return added


# --------------------------------------------------------------------------- launching

@dataclass
class RunAs:
    uid: int
    gid: int
    groups: List[int]
    home: str
    name: str

    @classmethod
    def from_sudo(cls) -> Optional["RunAs"]:
        """The user who invoked sudo, from SUDO_UID/SUDO_GID/SUDO_USER; None if not under sudo."""
        uid, gid = os.environ.get("SUDO_UID"), os.environ.get("SUDO_GID")
        if os.geteuid() != 0 or not uid or not uid.isdigit() or int(uid) == 0:
            return None
        try:
            pw = pwd.getpwuid(int(uid))
        except KeyError:
            return None
        g = int(gid) if gid and gid.isdigit() else pw.pw_gid
        return cls(int(uid), g, os.getgrouplist(pw.pw_name, g), pw.pw_dir, pw.pw_name)


@dataclass
class Launched:
    pid: int
    start: int            # ns, from the kernel's own fork record
    pidfd: Optional[int]
    ppid: int
    parent_start: int


def launch(tracker: Tracker, argv: List[str], run_as: Optional[RunAs], own_group: bool) -> Launched:
    """Fork ``argv`` so that the kernel tracks it from the fork itself: this process is a
    member for the duration of one fork() (nothing else forks here meanwhile), so the
    tracker inserts the child in sched_process_fork, before it runs. The child then waits on
    a pipe until we have its identity and a pidfd, and execs. Exec failures come back on a
    close-on-exec pipe (as subprocess does) and are raised as UsageError with exit 127/126."""
    me = os.getpid()
    my_start = ticks_to_ns(read_stat(me).start_ticks)
    gate_r, gate_w = os.pipe()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    env = dict(os.environ)
    if run_as:
        env.update(HOME=run_as.home, USER=run_as.name, LOGNAME=run_as.name)
    tracker.track(me, my_start)
    try:
        pid = os.fork()
    except BaseException:
        tracker.untrack(me)
        raise
    if pid == 0:  # child: only async-signal-safe-ish work until exec
        try:
            os.close(gate_w)
            os.close(err_r)
            if own_group:
                os.setpgid(0, 0)
            os.read(gate_r, 1)
            os.close(gate_r)
            if run_as:
                os.setgroups(run_as.groups)
                os.setgid(run_as.gid)
                os.setuid(run_as.uid)
            os.execvpe(argv[0], argv, env)
        except OSError as err:
            os.write(err_w, f"{err.errno}".encode())
        except BaseException:
            os.write(err_w, b"0")
        finally:
            os._exit(127)
    tracker.untrack(me)
    os.close(gate_r)
    os.close(err_w)
    if own_group:
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass
    start = tracker.member_start(pid)
    if start is None:       # cannot happen unless the map is full: fall back to /proc
        start = ticks_to_ns(read_stat(pid).start_ticks)
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    os.write(gate_w, b"g")
    os.close(gate_w)
    failure = os.read(err_r, 64)
    os.close(err_r)
    launched = Launched(pid, start, pidfd, me, my_start)
    if failure:
        code = int(failure or b"0")
        exit_code = 126 if code in (errno.EACCES, errno.ENOEXEC, errno.EISDIR) else 127
        err = UsageError(f"cannot execute {argv[0]}: {os.strerror(code) if code else 'exec failed'}",
                         "check the command name and PATH")
        err.exit_code = exit_code
        err.launched = launched  # type: ignore[attr-defined]
        raise err
    return launched
