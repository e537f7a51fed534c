"""Host readiness checks behind ``pyprof-ebpf doctor``.

Responsibility: run each precondition of the tool in order and describe the result, with the
remedy when it fails. Checks that need a predecessor (compiling needs bcc and headers) are
reported as not run rather than failing twice. Returns data; the CLI prints it.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Optional

from . import _abi_gen as abi
from . import bccenv, host
from .btf import kernel_btf
from .errors import PyprofError

MIN_KERNEL = (5, 8)   # BPF ring buffer (5.8), CAP_BPF/CAP_PERFMON (5.8)


@dataclass
class Check:
    name: str
    ok: Optional[bool]          # None: not run (a prerequisite failed)
    detail: str
    remedy: str = ""
    data: dict = field(default_factory=dict)


def _run(name: str, fn: Callable[[], Check]) -> Check:
    try:
        return fn()
    except PyprofError as err:
        return Check(name, False, str(err), err.remedy)
    except Exception as err:  # doctor must report, never crash
        return Check(name, False, f"{type(err).__name__}: {err}", "report this as a bug")


def check_privilege() -> Check:
    ok, what = host.privilege()
    return Check("privileges", ok, what, "" if ok else "run as root (sudo) or grant CAP_BPF + CAP_PERFMON")


def check_kernel() -> Check:
    ver = host.kernel_version()
    ok = ver[:2] >= MIN_KERNEL
    return Check("kernel", ok, f"{host.kernel_release()}" + ("" if ok else f" (< {MIN_KERNEL[0]}.{MIN_KERNEL[1]})"),
                 "" if ok else "upgrade to Linux 5.8 or later")


def check_btf() -> Check:
    if not host.btf_present():
        return Check("btf", False, "/sys/kernel/btf/vmlinux missing",
                     "use a kernel built with CONFIG_DEBUG_INFO_BTF=y")
    btf = kernel_btf()
    off = btf.offset("task_struct.tgid")
    return Check("btf", True, f"/sys/kernel/btf/vmlinux (task_struct.tgid at {off}, "
                              f"sizeof(task_struct) {btf.struct_size('task_struct')})")


def check_tracefs() -> Check:
    where, mounted_now = host.ensure_tracefs()
    return Check("tracefs", True, f"{where}" + (" (mounted now)" if mounted_now else ""))


def check_bcc() -> Check:
    return Check("bcc", True, bccenv.bcc_location())


def check_headers() -> Check:
    tree = bccenv.ensure_header_tree()
    return Check("headers", True, tree.describe())


def check_programs() -> List[Check]:
    """Compile probe.bpf.c, attach a raw tracepoint and a cpu-clock perf event, verify the BTF
    offsets against the kernel's own answers, and pass one record through a ring buffer."""
    from .loader import BpfProgram, check_leaf_layout

    results: List[Check] = []
    t0 = time.monotonic()
    with BpfProgram("probe.bpf.c") as prog:
        compile_s = time.monotonic() - t0
        prog.attach_raw_tracepoint("sched_process_fork", "probe_fork")
        prog.attach_cpu_clock("probe_sample", 499)
        ring: List[abi.probe_result] = []
        prog.open_ring_buffer("probe_ring", lambda data, size: ring.append(
            abi.probe_result.from_buffer_copy(ctypes.string_at(data, ctypes.sizeof(abi.probe_result)))))
        prog["probe_cfg"][ctypes.c_int(0)] = abi.probe_cfg(tgid=os.getpid())
        child = subprocess.Popen([sys.executable, "-c", "pass"])  # one fork by this process
        child.wait()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and prog["perf_hits"][ctypes.c_int(0)].value == 0:
            sum(range(20000))           # burn CPU so the cpu-clock event fires
        prog.poll(200)
        res = prog["probe_out"][ctypes.c_int(0)]
        hits = prog["perf_hits"][ctypes.c_int(0)].value
        drift = check_leaf_layout(prog["abi_proc_event"], abi.proc_event) or \
            check_leaf_layout(prog["abi_exec_event"], abi.exec_event)

    results.append(Check("compile", True, f"probe.bpf.c compiled and loaded in {compile_s:.2f} s"))
    tgid_ok = res.hits > 0 and res.btf_tgid == res.helper_pid_tgid >> 32 == os.getpid()
    my_ticks = int(open(f"/proc/{os.getpid()}/stat").read().rsplit(")", 1)[1].split()[19])
    start_ok = res.btf_start_boottime * host.clock_ticks() // 1_000_000_000 == my_ticks
    child_ok = res.child_tgid == child.pid
    ok = tgid_ok and start_ok and child_ok
    results.append(Check(
        "raw_tracepoint", res.hits > 0,
        f"sched_process_fork fired {res.hits}x" if res.hits else "sched_process_fork never fired",
        "" if res.hits else "the kernel needs CONFIG_BPF_EVENTS"))
    results.append(Check(
        "btf_offsets", ok,
        f"task_struct.tgid/pid/start_boottime read at BTF offsets match the kernel "
        f"(tgid {res.btf_tgid}, child {res.child_tgid}, start {my_ticks} ticks)" if ok else
        f"mismatch: tgid {res.btf_tgid} vs {res.helper_pid_tgid >> 32}, child {res.child_tgid} vs "
        f"{child.pid}, start ticks {res.btf_start_boottime * host.clock_ticks() // 1_000_000_000} vs {my_ticks}",
        "" if ok else "report this kernel as unsupported"))
    results.append(Check("perf_event", hits > 0, f"cpu-clock sampled {hits}x",
                         "" if hits else "perf events blocked: check perf_event_paranoid / CAP_PERFMON"))
    results.append(Check("ring_buffer", len(ring) > 0, f"{len(ring)} record(s) received",
                         "" if ring else "BPF ring buffers need Linux 5.8+"))
    results.append(Check("abi", drift is None, "ctypes mirror matches clang's layout of bpf/pyprof.h"
                         if drift is None else drift, "" if drift is None else "run tools/gen_abi.py"))
    return results


def check_lockdown() -> Check:
    mode = host.lockdown()
    if mode is None:
        return Check("lockdown", True, "unknown (securityfs not mounted); assumed none")
    ok = mode != "confidentiality"
    return Check("lockdown", ok, mode, "" if ok else
                 "lockdown=confidentiality forbids reading kernel memory from BPF; boot with lockdown=integrity or none")


def check_paranoid() -> Check:
    value = host.perf_event_paranoid()
    ok_priv, _ = host.privilege()
    ok = value is not None and (ok_priv or value <= 1)
    return Check("perf_event_paranoid", ok, f"{value}" + (" (root/CAP_PERFMON bypasses it)" if ok_priv else ""),
                 "" if ok else "sysctl kernel.perf_event_paranoid=1, or run as root")


def run_checks() -> List[Check]:
    checks = [_run("privileges", check_privilege), _run("kernel", check_kernel), _run("btf", check_btf)]
    root = checks[0].ok
    if root:
        checks.append(_run("tracefs", check_tracefs))
    else:
        checks.append(Check("tracefs", None, f"mounted at {host.tracefs_mountpoint()}" if host.tracefs_mountpoint()
                            else "not checked: mounting needs root"))
    checks.append(_run("bcc", check_bcc))
    checks.append(_run("headers", check_headers))
    if root and checks[-1].ok and checks[-2].ok and checks[2].ok:
        try:
            checks.extend(check_programs())
        except PyprofError as err:
            checks.append(Check("compile", False, str(err), err.remedy))
        except Exception as err:
            checks.append(Check("compile", False, f"{type(err).__name__}: {err}", "report this as a bug"))
    else:
        checks.append(Check("compile", None, "not run: needs root, bcc, headers and BTF"))
    checks.append(_run("lockdown", check_lockdown))
    checks.append(_run("perf_event_paranoid", check_paranoid))
    return checks


def ready(checks: List[Check]) -> bool:
    return all(c.ok is True for c in checks)


def as_json(checks: List[Check]) -> list:
    return [asdict(c) for c in checks]
