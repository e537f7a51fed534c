"""Ring-buffer bytes to typed process events. Pure: no bcc, no kernel, no I/O.

Responsibility: decode one record of the tracker's ring buffer (layouts from the generated
ABI mirror of bpf/pyprof.h) into a ``ProcEvent``, and serialise events to and from plain
dicts so recorded streams can be replayed in unit tests without root.
"""

from __future__ import annotations

import ctypes
from dataclasses import asdict, dataclass, field
from typing import List, Optional

from . import _abi_gen as abi

KINDS = {abi.PyprofEventKind.PYPROF_EV_FORK: "fork", abi.PyprofEventKind.PYPROF_EV_EXEC: "exec",
         abi.PyprofEventKind.PYPROF_EV_EXIT: "exit"}
F = abi.PyprofEventFlag
_HDR = ctypes.sizeof(abi.proc_event)
_EXEC = ctypes.sizeof(abi.exec_event)


def text(raw: bytes) -> str:
    """Kernel/target bytes to str without losing information: invalid UTF-8 becomes
    backslash escapes (JSON serialisation then escapes control characters)."""
    return raw.decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class ProcEvent:
    kind: str                 # "fork" | "exec" | "exit"
    seq: int
    ts_ns: int                # CLOCK_BOOTTIME ns
    pid: int                  # tgid
    start: int                # identity: start_boottime ns
    tid: int = 0
    ppid: int = 0
    pstart: int = 0
    old_pid: int = 0
    status: int = 0
    uid: int = 0
    flags: int = 0
    comm: str = ""
    cgroup_id: int = 0
    cgroup_v1_id: int = 0
    filename: str = ""
    argv: List[str] = field(default_factory=list)

    @property
    def via_walk(self) -> bool:
        return bool(self.flags & F.PYPROF_EVF_VIA_WALK)

    @property
    def argv_truncated(self) -> bool:
        return bool(self.flags & (F.PYPROF_EVF_ARGV_TRUNCATED | F.PYPROF_EVF_ARGV_UNREADABLE))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ProcEvent":
        return cls(**d)


def decode(raw: bytes) -> Optional[ProcEvent]:
    """Decode one ring-buffer record; None for a record of unknown kind or short length."""
    if len(raw) < _HDR:
        return None
    h = abi.proc_event.from_buffer_copy(raw[:_HDR])
    kind = KINDS.get(h.kind)
    if kind is None:
        return None
    common = dict(kind=kind, seq=h.seq, ts_ns=h.ts, pid=h.tgid, start=h.start, tid=h.tid,
                  ppid=h.ptgid, pstart=h.pstart, old_pid=h.old_pid, status=h.status, uid=h.uid,
                  flags=h.flags, comm=text(h.comm), cgroup_id=h.cgroup_id,
                  cgroup_v1_id=h.cgroup_v1_id)
    if kind != "exec" or len(raw) < _EXEC:
        return ProcEvent(**common)
    e = abi.exec_event.from_buffer_copy(raw[:_EXEC])
    # Slice the raw record: a ctypes char-array field would stop at the first NUL.
    f_off, a_off = abi.exec_event.filename.offset, abi.exec_event.argv.offset
    fname = raw[f_off:f_off + min(e.filename_len, abi.PYPROF_FILENAME_LEN)]
    args = raw[a_off:a_off + min(e.argv_len, abi.PYPROF_ARGV_LEN)]
    # /proc/<pid>/cmdline layout: NUL-terminated strings; a truncated copy ends mid-string.
    argv = [text(a) for a in args.split(b"\0")]
    if argv and argv[-1] == "" and args.endswith(b"\0"):
        argv.pop()
    return ProcEvent(filename=text(fname), argv=argv, **common)


def wait_status(status: int):
    """(exit_code, signal, core_dumped) from a wait(2) status word, as WIFEXITED & co."""
    if status & 0x7F == 0:
        return (status >> 8) & 0xFF, None, False
    return None, status & 0x7F, bool(status & 0x80)
