"""The one owner of bcc: compile ``bpf/*.c``, attach, and tear everything down.

Responsibility: turn a BPF source file plus ``-D`` constants (kernel struct offsets from BTF,
limits, switches) into a loaded ``bcc.BPF`` object; attach only what works on hosts like ours
(raw tracepoints, classic tracepoints, SOFTWARE ``CPU_CLOCK`` perf events; no kprobes, no
fentry: CONFIG_KPROBES is off and trampolines fail with EPERM under lockdown here); detach in
reverse order when the ``with`` block ends for any reason. It does not interpret events.

Kernel struct offsets: bcc compiles against whatever header tree exists (6.1 here, for a 6.18
kernel), so ``task->tgid`` in C would read the wrong bytes. Programs instead read
``*(base + OFF_X)`` with ``OFF_X`` resolved from the running kernel's BTF (``KERNEL_OFFSETS``).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import signal
import tempfile
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from . import _abi_gen as abi
from .bccenv import cache_root, ensure_header_tree, import_bcc
from .btf import VMLINUX, Btf, kernel_btf
from .errors import BpfLoadError, BtfError
from .host import ensure_tracefs, require_privilege

# -D name -> BTF path. Alternatives are tried in order (kernfs_node.parent became __parent
# in 6.15, commit 633488947ef6 "kernfs: Use RCU to access kernfs_node::parent").
KERNEL_OFFSETS: Dict[str, Tuple[str, ...]] = {
    "OFF_TASK_PID": ("task_struct.pid",),
    "OFF_TASK_TGID": ("task_struct.tgid",),
    "OFF_TASK_START_BOOTTIME": ("task_struct.start_boottime",),
    "OFF_TASK_REAL_PARENT": ("task_struct.real_parent",),
    "OFF_TASK_GROUP_LEADER": ("task_struct.group_leader",),
    "OFF_TASK_EXIT_CODE": ("task_struct.exit_code",),
    "OFF_TASK_SIGNAL": ("task_struct.signal",),
    "OFF_TASK_COMM": ("task_struct.comm",),
    "OFF_TASK_MM": ("task_struct.mm",),
    "OFF_TASK_CGROUPS": ("task_struct.cgroups",),
    "OFF_TASK_THREAD_FSBASE": ("task_struct.thread.fsbase",),   # x86-64
    "OFF_SIGNAL_FLAGS": ("signal_struct.flags",),
    "OFF_SIGNAL_GROUP_EXIT_CODE": ("signal_struct.group_exit_code",),
    "OFF_SIGNAL_LIVE": ("signal_struct.live",),
    "OFF_MM_ARG_START": ("mm_struct.arg_start",),
    "OFF_MM_ARG_END": ("mm_struct.arg_end",),
    "OFF_BPRM_FILENAME": ("linux_binprm.filename",),
    "OFF_CSS_SET_SUBSYS": ("css_set.subsys",),
    "OFF_CSS_CGROUP": ("cgroup_subsys_state.cgroup",),
    "OFF_CGROUP_KN": ("cgroup.kn",),
    "OFF_KN_ID": ("kernfs_node.id",),
    "OFF_KN_PARENT": ("kernfs_node.__parent", "kernfs_node.parent"),
}
# Members without which no program can run; the others only disable a feature.
REQUIRED = ("OFF_TASK_PID", "OFF_TASK_TGID", "OFF_TASK_START_BOOTTIME", "OFF_TASK_REAL_PARENT",
            "OFF_TASK_GROUP_LEADER", "OFF_TASK_EXIT_CODE", "OFF_TASK_SIGNAL",
            "OFF_SIGNAL_FLAGS", "OFF_SIGNAL_GROUP_EXIT_CODE", "OFF_SIGNAL_LIVE")


def bpf_dir() -> str:
    """bpf/ beside the package in a checkout, or pyprof_ebpf/bpf in an installed wheel."""
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in (os.path.join(os.path.dirname(here), "bpf"), os.path.join(here, "bpf")):
        if os.path.isfile(os.path.join(cand, "pyprof.h")):
            return cand
    raise BpfLoadError("bpf/ sources not found next to the package", "reinstall pyprof-ebpf")


def kernel_defines(btf: Optional[Btf] = None) -> Dict[str, int]:
    """-D constants describing a kernel (the running one by default, from the facts cache):
    struct offsets and feature switches."""
    if btf is None:
        return dict(kernel_facts()["defines"])
    out: Dict[str, int] = {}
    for name, paths in KERNEL_OFFSETS.items():
        for path in paths:
            if btf.has_member(path):
                out[name] = btf.offset(path)
                break
        else:
            if name in REQUIRED:
                raise BtfError(f"kernel BTF lacks {paths[0]}", "this kernel is not supported yet")
    # sched_process_exit gained its group_dead argument in 6.16 (commit 3e816361e94a); the
    # typedef's parameter count (void *__data, task, [group_dead]) tells which we have.
    try:
        out["HAVE_GROUP_DEAD"] = int(btf.func_proto_params("btf_trace_sched_process_exit") >= 3)
    except BtfError:
        out["HAVE_GROUP_DEAD"] = 0
    # SIGNAL_GROUP_EXIT is a #define (include/linux/sched/signal.h), not in BTF; it has been
    # 0x4 since 5.17 (commit 49697335e0b4) and was 0x4 before that too.
    out["SIGNAL_GROUP_EXIT"] = 0x4
    try:
        out["MEMORY_CGRP_ID"] = btf.enum_value("memory_cgrp_id", "cgroup_subsys_id")
    except BtfError:
        pass
    return out

# Bump when kernel_defines() or the facts change meaning; KERNEL_OFFSETS is hashed in anyway.
FACTS_VERSION = 1


def kernel_facts() -> Dict[str, Dict[str, int]]:
    """What the programs need from the running kernel's BTF: ``defines`` (kernel_defines)
    and ``cgroup_subsys`` (enum cgroup_subsys_id).

    Parsing vmlinux BTF costs about 0.2 s of every start-up, while the answers of one BTF
    blob never change; so they are kept in the cache directory under a hash of the blob
    (and of KERNEL_OFFSETS). A cache file is used only when this user owns it and nobody
    else can write it or its directory; the cache is an optimisation, never required.
    """
    try:
        with open(VMLINUX, "rb") as f:
            blob = f.read()
    except OSError:
        blob = b""
    if not blob:
        kernel_btf()            # raises the BtfError that names the cause
    key = hashlib.sha256(blob + repr((FACTS_VERSION, KERNEL_OFFSETS, REQUIRED)).encode()).hexdigest()
    path = os.path.join(cache_root(), f"kfacts-{key[:32]}.json")
    facts = _read_facts(path)
    if facts is None:
        btf = Btf(blob)
        try:
            subsys = btf.enumerators("cgroup_subsys_id")
        except BtfError:
            subsys = {}
        facts = {"defines": kernel_defines(btf), "cgroup_subsys": subsys}
        _write_facts(path, facts)
    return facts


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _read_facts(path: str) -> Optional[Dict[str, Dict[str, int]]]:
    try:
        if not _private(os.stat(os.path.dirname(path))):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not _private(os.fstat(fd)):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            facts = json.loads(f.read(1 << 20))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    ok = isinstance(facts, dict) and set(facts) == {"defines", "cgroup_subsys"} and all(
        isinstance(d, dict) and all(isinstance(k, str) and type(v) is int for k, v in d.items())
        for d in facts.values())
    return facts if ok and set(REQUIRED) <= set(facts["defines"]) else None


def _write_facts(path: str, facts: Dict[str, Dict[str, int]]) -> None:
    """Atomic and symlink-proof: a private temporary file renamed over the name."""
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, mode=0o755, exist_ok=True)
        if not _private(os.stat(folder)):
            return
        fd, tmp = tempfile.mkstemp(prefix=".kfacts-", dir=folder)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(facts, f, sort_keys=True)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        pass     # read-only or full cache: compute again next time


def _bpf_fds() -> List[str]:
    """Kinds of BPF/perf file descriptors this process holds (for tests and doctor)."""
    kinds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("anon_inode:bpf") or target == "anon_inode:[perf_event]":
            kinds.append(target)
    return kinds


class BpfProgram:
    """A compiled BPF source with its attachments; use as a context manager.

    >>> with BpfProgram("probe.bpf.c", defines={"X": 1}) as prog:
    ...     prog.attach_raw_tracepoint("sched_process_fork", "on_fork")
    ...     prog["probe_out"]
    """

    def __init__(self, source: str, defines: Optional[Dict[str, int]] = None,
                 need_tracefs: bool = False, kernel: Optional[Dict[str, int]] = None):
        self.source = source
        self.defines = dict(defines or {})
        self.kernel = kernel        # kernel_defines(), when the caller already has them
        self.need_tracefs = need_tracefs
        self.bpf = None
        self._undo: List[Tuple[str, Callable[[], None]]] = []

    # -- lifetime -------------------------------------------------------------------------
    def __enter__(self) -> "BpfProgram":
        require_privilege()
        if self.need_tracefs:
            ensure_tracefs()
        ensure_header_tree()
        bcc = import_bcc()
        src = os.path.join(bpf_dir(), self.source)
        defines = {**(self.kernel if self.kernel is not None else kernel_defines()), **self.defines}
        cflags = [f"-I{bpf_dir()}", "-Wno-unused-function"]
        cflags += [f"-D{k}={int(v)}" for k, v in sorted(defines.items())]
        try:
            # bcc prints clang diagnostics to stderr itself; the exception only says it failed.
            self.bpf = bcc.BPF(src_file=src.encode(), cflags=cflags)
        except Exception as err:
            raise BpfLoadError(f"cannot compile/load {self.source} ({err})",
                               "run `pyprof-ebpf doctor` to find the missing piece") from err
        self._undo.append(("cleanup", self.bpf.cleanup))
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        errors = []
        while self._undo:
            what, undo = self._undo.pop()
            try:
                undo()
            except Exception as err:  # keep tearing down the rest; report the first failure
                errors.append(f"{what}: {err}")
        self.bpf = None
        if errors:
            raise BpfLoadError(f"teardown incomplete ({'; '.join(errors)})",
                               "the kernel frees the rest when this process exits")

    # -- attaching ------------------------------------------------------------------------
    def attach_raw_tracepoint(self, tp: str, fn_name: str) -> None:
        try:
            self.bpf.attach_raw_tracepoint(tp=tp.encode(), fn_name=fn_name.encode())
        except Exception as err:
            raise BpfLoadError(f"cannot attach raw tracepoint {tp} ({err})",
                               "the kernel needs CONFIG_BPF_EVENTS (4.17+)") from err
        self._undo.append((f"raw_tp {tp}", lambda: self.bpf.detach_raw_tracepoint(tp=tp.encode())))

    def attach_tracepoint(self, tp: str, fn_name: str) -> None:
        try:
            self.bpf.attach_tracepoint(tp=tp.encode(), fn_name=fn_name.encode())
        except Exception as err:
            raise BpfLoadError(f"cannot attach tracepoint {tp} ({err})",
                               "mount tracefs: mount -t tracefs tracefs /sys/kernel/tracing") from err
        self._undo.append((f"tp {tp}", lambda: self.bpf.detach_tracepoint(tp=tp.encode())))

    def attach_cpu_clock(self, fn_name: str, freq: int, cpus: Optional[Iterable[int]] = None) -> None:
        """Sample every (online) CPU with the SOFTWARE cpu-clock event: no PMU needed."""
        bcc = import_bcc()
        kwargs = {"cpu": -1} if cpus is None else {}
        try:
            if cpus is None:
                self.bpf.attach_perf_event(ev_type=bcc.PerfType.SOFTWARE,
                                           ev_config=bcc.PerfSWConfig.CPU_CLOCK,
                                           fn_name=fn_name.encode(), sample_freq=freq, **kwargs)
            else:
                for cpu in cpus:
                    self.bpf.attach_perf_event(ev_type=bcc.PerfType.SOFTWARE,
                                               ev_config=bcc.PerfSWConfig.CPU_CLOCK,
                                               fn_name=fn_name.encode(), sample_freq=freq, cpu=cpu)
        except Exception as err:
            raise BpfLoadError(f"cannot open cpu-clock perf events ({err})",
                               "check kernel.perf_event_paranoid and CAP_PERFMON") from err
        self._undo.append(("perf cpu-clock", lambda: self.bpf.detach_perf_event(
            ev_type=bcc.PerfType.SOFTWARE, ev_config=bcc.PerfSWConfig.CPU_CLOCK)))

    def open_ring_buffer(self, name: str, callback: Callable[[int, int], Optional[int]]) -> None:
        """``callback(data, size)`` gets each record; returning a negative number stops the
        current poll after this record (libbpf keeps consuming while records keep coming,
        so a busy producer would otherwise hold a poll forever)."""
        def _cb(_ctx, data, size):
            return callback(data, size) or 0
        self.bpf[name.encode()].open_ring_buffer(_cb)
        self._ring_cb = _cb  # bcc keeps a ctypes wrapper; keep the Python callable alive too

    def poll(self, timeout_ms: int) -> None:
        self.bpf.ring_buffer_poll(timeout_ms)

    def consume(self) -> None:
        self.bpf.ring_buffer_consume()

    def __getitem__(self, name: str):
        return self.bpf[name.encode()]


def check_leaf_layout(table, struct_cls) -> Optional[str]:
    """Compare bcc's clang-derived value type of ``table`` with our ctypes mirror; return a
    description of the first difference, or None. Guards against header/mirror drift in the
    compiler's own view (not just the parser's)."""
    leaf = table.Leaf
    if ctypes.sizeof(leaf) != ctypes.sizeof(struct_cls):
        return f"size {ctypes.sizeof(leaf)} in BPF vs {ctypes.sizeof(struct_cls)} in Python"
    for name, _ in struct_cls._fields_:
        ours = getattr(struct_cls, name)
        theirs = getattr(leaf, name, None)
        if theirs is None:
            return f"field {name} missing in BPF"
        if (theirs.offset, theirs.size) != (ours.offset, ours.size):
            return f"field {name}: BPF offset/size {theirs.offset}/{theirs.size} vs {ours.offset}/{ours.size}"
    return None


@contextlib.contextmanager
def sigterm_raises():
    """Turn SIGTERM into KeyboardInterrupt inside the block, so ``with BpfProgram`` unwinds
    (the default action would kill us without running any teardown)."""
    def _handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    try:
        old = signal.signal(signal.SIGTERM, _handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def as_struct(data: int, struct_cls):
    """View ring-buffer bytes at address ``data`` as ``struct_cls`` (copied)."""
    return struct_cls.from_buffer_copy(ctypes.string_at(data, ctypes.sizeof(struct_cls)))


__all__ = ["BpfProgram", "KERNEL_OFFSETS", "kernel_defines", "bpf_dir", "check_leaf_layout",
           "sigterm_raises", "as_struct", "abi"]
