"""The sampler: cpu-clock perf events on every CPU, filtered by the tracker's membership.

Responsibility: load ``bpf/pyprof.bpf.c`` with its sampler part, open one SOFTWARE
``CPU_CLOCK`` event per CPU at the requested rate, wire the tail-called frame walker, and
collect raw samples (pid, tid, frames as code address / instruction offset / tag). It also
describes each tracked CPython process to the BPF walker (``Pythons``): at exec and at
attach, from ``cpython`` (ELF discovery, version ladder, offsets), refusing a process whose
offsets do not check out against its live memory rather than sampling garbage. Forked
children inherit their parent's description inside the kernel. Symbolization is
``symbolize``'s job; this module prints nothing.
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
import time
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from . import _abi_gen as abi
from .bccenv import import_bcc
from .cpython.detect import TargetPython, inspect_process
from .cpython.elf import read_memory
from .cpython.offsets import Offsets
from .errors import BpfLoadError, ProcessGone, PyprofError, UnsupportedBuild, UnsupportedPython
from .tracker import Tracker

SF = abi.PyprofSampleFlag
_HDR = ctypes.sizeof(abi.sample) - ctypes.sizeof(abi.py_frame) * abi.PYPROF_MAX_FRAMES
_FRAME = struct.Struct("<QiI")
PYTHONISH = re.compile(r"python|pypy", re.I)
DISCOVERY_WINDOW_S = 3.0     # how long after exec we wait for libpython to map and init


@dataclass(frozen=True)
class RawSample:
    pid: int
    start: int
    tid: int
    flags: int
    frames: Tuple[Tuple[int, int, int], ...]   # (code, addrq, tag), innermost first
    user_stack_id: int
    kernel_stack_id: int


def decode_sample(raw: bytes) -> Optional[RawSample]:
    if len(raw) < _HDR:
        return None
    h = abi.sample.from_buffer_copy(raw[:_HDR] + bytes(ctypes.sizeof(abi.sample) - _HDR))
    n = min(h.nframes, abi.PYPROF_MAX_FRAMES, (len(raw) - _HDR) // _FRAME.size)
    frames = tuple(_FRAME.unpack_from(raw, _HDR + i * _FRAME.size) for i in range(n))
    return RawSample(h.pid, h.start, h.tid, h.flags, frames, h.user_stack_id, h.kernel_stack_id)


def py_proc_for(target: TargetPython) -> abi.py_proc:
    """The BPF walker's description of one process, from version data (never branches)."""
    off, interp = target.offsets, target.interpreter
    if interp.facts.pycode_type_vaddr is None:
        raise UnsupportedPython(f"{interp.path}: PyCode_Type not found",
                                "frames could not be type-checked; not sampling this process")
    name = off.PyCodeObject_co_qualname if off.PyCodeObject_co_qualname >= 0 else off.PyCodeObject_co_name
    return abi.py_proc(
        runtime=interp.runtime_address,
        pycode_type=interp.load_bias + interp.facts.pycode_type_vaddr,
        code_ptr_mask=off.code_ptr_mask,
        PyRuntimeState_interpreters_head=off.PyRuntimeState_interpreters_head,
        PyInterpreterState_threads_head=off.PyInterpreterState_threads_head,
        PyThreadState_next=off.PyThreadState_next,
        PyThreadState_thread_id=off.PyThreadState_thread_id,
        tstate_frame=off.tstate_frame,
        _PyCFrame_current_frame=off._PyCFrame_current_frame if off.cframe_indirection else -1,
        frame_previous=off.frame_previous,
        frame_code=off.frame_code,
        frame_instr=off.frame_instr,
        frame_owner=off._PyInterpreterFrame_owner,
        PyObject_ob_type=off.PyObject_ob_type,
        PyCodeObject_co_filename=off.PyCodeObject_co_filename,
        PyCodeObject_co_name=name,
        PyCodeObject_co_firstlineno=off.PyCodeObject_co_firstlineno,
        PyCodeObject_co_linetable=off.code_linetable,
        PyCodeObject_co_code_adaptive=off.PyCodeObject_co_code_adaptive,
        PyASCIIObject_length=off.PyASCIIObject_length,
        PyASCIIObject_state=off.PyASCIIObject_state,
        PyASCIIObject_size=off.PyASCIIObject_size,
        PyCompactUnicodeObject_size=off.PyCompactUnicodeObject_size,
        PyBytesObject_ob_size=off.PyBytesObject_ob_size,
        PyBytesObject_ob_sval=off.PyBytesObject_ob_sval,
        owner_skip_min=min(off.owner_skip_min, 0xFFFF),
        instr_kind=int(off.instr_kind),
        unicode_kind_shift=off.unicode_kind_shift,
        unicode_compact_bit=off.unicode_compact_bit,
        unicode_ascii_bit=off.unicode_ascii_bit,
    )


def verify_live(target: TargetPython) -> bool:
    """Check the offsets against the live process: the runtime leads to an interpreter whose
    thread list is reachable, and (if a frame is there) the top frame's code object is a
    PyCode_Type instance. False: not initialised yet (try again). Raises UnsupportedPython
    when memory contradicts the offsets."""
    off, interp, pid = target.offsets, target.interpreter, target.interpreter.pid
    ptr = lambda addr: struct.unpack("<Q", read_memory(pid, addr, 8))[0]  # noqa: E731
    head = ptr(interp.runtime_address + off.PyRuntimeState_interpreters_head)
    if not head:
        return False
    tstate = ptr(head + off.PyInterpreterState_threads_head)
    if not tstate:
        return False
    frame = ptr(tstate + off.tstate_frame)
    if frame and off.cframe_indirection:
        frame = ptr(frame + off._PyCFrame_current_frame)
    pycode = interp.load_bias + (interp.facts.pycode_type_vaddr or 0)
    for _ in range(64):
        if not frame:
            return True
        code = ptr(frame + off.frame_code) & off.code_ptr_mask
        if code and ptr(code + off.PyObject_ob_type) == pycode:
            return True
        frame = ptr(frame + off.frame_previous)
    raise UnsupportedPython(f"process {pid}: Python {target.build.label()} frames do not match "
                            f"the expected layout", "this build is not supported; not sampling it")


class Pythons:
    """Which tracked processes run CPython, and their BPF descriptions."""

    def __init__(self, py_procs_map):
        self.map = py_procs_map
        self.targets: Dict[int, Tuple[int, TargetPython]] = {}   # pid -> (start, target)
        self.pending: Dict[int, Tuple[int, float]] = {}           # pid -> (start, give up at)
        self.refused: Dict[int, str] = {}
        self.versions: Dict[int, str] = {}

    def on_exec(self, pid: int, start: int, filename: str) -> None:
        self.targets.pop(pid, None)                # the kernel dropped its entry at exec
        if PYTHONISH.search(os.path.basename(filename)) or not filename:
            self.pending[pid] = (start, time.monotonic() + DISCOVERY_WINDOW_S)
        else:
            # Not named like Python: one try (an embedder with a static runtime still works).
            self.pending[pid] = (start, time.monotonic())

    def on_fork(self, pid: int, start: int, ppid: int) -> None:
        parent = self.targets.get(ppid)
        if parent is not None:                    # copied in the kernel by the fork hook
            self.targets[pid] = (start, parent[1])
            self.versions[pid] = self.versions.get(ppid, "")

    def on_exit(self, pid: int) -> None:
        self.pending.pop(pid, None)

    def add(self, pid: int, start: int) -> None:
        self.pending[pid] = (start, time.monotonic() + DISCOVERY_WINDOW_S)

    def retry(self) -> None:
        now = time.monotonic()
        for pid, (start, give_up) in list(self.pending.items()):
            try:
                target = inspect_process(pid)
                if not verify_live(target):
                    raise UnsupportedPython("interpreter not initialised yet")
                self.map[ctypes.c_uint32(pid)] = py_proc_for(target)
            except ProcessGone:
                del self.pending[pid]
                continue
            except UnsupportedBuild as err:      # e.g. free-threaded: no point waiting
                del self.pending[pid]
                self.refused[pid] = err.one_line()
                continue
            except PyprofError as err:
                if now >= give_up:
                    del self.pending[pid]
                    if PYTHONISH.search(str(err)) or "Python" in str(err):
                        self.refused[pid] = err.one_line()
                continue
            except (OSError, ValueError, struct.error):
                if now >= give_up:
                    del self.pending[pid]
                continue
            del self.pending[pid]
            self.targets[pid] = (start, target)
            self.versions[pid] = target.build.label()

    def offsets(self, pid: int) -> Optional[Offsets]:
        t = self.targets.get(pid)
        return t[1].offsets if t else None


class Sampler(Tracker):
    """The tracker plus cpu-clock sampling of its members."""

    def __init__(self, rate: int = 100, native: bool = False, kernel: bool = False,
                 sample_ring_pages: int = 1024, **kw):
        super().__init__(**kw)
        self.rate, self.native, self.kernel = rate, native, kernel
        self.sample_ring_pages = sample_ring_pages
        self.samples: Counter = Counter()
        self.fresh: List[RawSample] = []
        self._stack_cache: Dict[Tuple[int, int], List[Tuple[str, str]]] = {}
        self.received = 0
        self.undecodable_samples = 0
        self.pythons: Optional[Pythons] = None
        self.first_sample_at: Optional[float] = None

    def extra_defines(self) -> Dict[str, int]:
        return {"PYPROF_SAMPLER": 1, "SAMPLE_RING_PAGES": self.sample_ring_pages,
                "NATIVE_STACKS": int(self.native), "KERNEL_STACKS": int(self.kernel)}

    def after_attach(self) -> None:
        bcc = import_bcc()
        progs = self.prog["progs"]
        for idx, name in enumerate(("walk_frames", "finish_sample", "capture_codes")):
            try:
                fn = self.prog.bpf.load_func(name.encode(), bcc.BPF.PERF_EVENT)
            except Exception as err:
                raise BpfLoadError(f"cannot load {name} ({err})", "run `pyprof-ebpf doctor`") from err
            progs[ctypes.c_int(idx)] = ctypes.c_int(fn.fd)
        self.pythons = Pythons(self.prog["py_procs"])
        self.prog.open_ring_buffer("samples", self._on_sample)
        self.prog.attach_cpu_clock("on_sample", self.rate)

    def _on_sample(self, data: int, size: int) -> Optional[int]:
        s = decode_sample(ctypes.string_at(data, size))
        if s is None:
            self.undecodable_samples += 1
            return self.slice_over()
        if self.first_sample_at is None:
            self.first_sample_at = time.monotonic()
        self.received += 1
        if s not in self.samples:
            self.fresh.append(s)      # a new distinct stack: symbolize it while its process lives
        self.samples[s] += 1
        return self.slice_over()

    def poll(self, timeout_ms: int):
        """Tracker events as they come (the events ring wakes us), plus every sample queued
        meanwhile: the samples ring is drained here, not by wakeups (see finish_sample)."""
        events = super().poll(timeout_ms)
        self._slice_end = time.monotonic() + 0.05
        self.prog.consume()
        return events + self._take_pending()

    def _take_pending(self):
        out, self._pending = self._pending, []
        return out

    def sample_counters(self) -> Dict[str, int]:
        vals = [v.value for v in self.prog["sample_counters"].values()]
        return {"taken": vals[0], "ring_drops": vals[1], "captures": vals[2]}

    def code_info(self, pid: int, code: int, tag: int):
        key = abi.code_key(tgid=pid, tag=tag, code=code)
        try:
            return self.prog["code_infos"][key]
        except KeyError:
            return None

    def stack_symbols(self, stack_id: int, pid: int) -> List[Tuple[str, str]]:
        """(module, symbol) of a native (pid > 0) or kernel (pid = -1) stack, outermost
        first. Cached per (pid, stack id): call it while the process lives (bcc reads
        /proc/PID/maps on first use), and it still answers after the process is gone."""
        key = (pid, stack_id)
        if stack_id < 0:
            return []
        if key in self._stack_cache:
            return self._stack_cache[key]
        try:
            addrs = list(self.prog["stacks"].walk(stack_id))
        except Exception:
            return []
        out = []
        for addr in addrs:
            try:
                raw = self.prog.bpf.sym(addr, pid, show_module=True)
            except Exception:
                raw = b"[unknown]"
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            name, _, module = text.partition(" [")
            out.append((module.rstrip("]") if pid >= 0 else "kernel", name))
        self._stack_cache[key] = out[::-1]
        return self._stack_cache[key]
