"""Root tests of the foundation: real BPF compiled by bcc, attached, verified, torn down."""

import ctypes
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from pyprof_ebpf import _abi_gen as abi
from pyprof_ebpf.loader import BpfProgram, _bpf_fds, check_leaf_layout

PY = sys.executable


def stat_starttime(pid):
    """Field 22 of /proc/<pid>/stat: start time in clock ticks since boot."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


@pytest.fixture(scope="module")
def probe():
    with BpfProgram("probe.bpf.c") as prog:
        prog.attach_raw_tracepoint("sched_process_fork", "probe_fork")
        prog.attach_cpu_clock("probe_sample", 499)
        yield prog


def test_raw_tracepoint_reads_task_fields_at_btf_offsets(probe):
    # GIVEN the probe watches this process's forks
    probe["probe_out"].clear()
    probe["probe_cfg"][ctypes.c_int(0)] = abi.probe_cfg(tgid=os.getpid())
    # WHEN we fork a child that stays alive (blocked on a pipe) until we have read /proc
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    try:
        os.close(r)
        res = probe["probe_out"][ctypes.c_int(0)]
        child_ticks = stat_starttime(pid)
    finally:
        os.close(w)
        os.waitpid(pid, 0)
    ticks = os.sysconf("SC_CLK_TCK")
    # THEN the BTF-offset reads equal the kernel's own answers
    assert res.hits == 1
    assert res.btf_tgid == res.helper_pid_tgid >> 32 == os.getpid()
    assert res.btf_pid == res.helper_pid_tgid & 0xFFFFFFFF == ctypes.CDLL(None).syscall(186)  # gettid
    assert res.btf_start_boottime * ticks // 10**9 == stat_starttime(os.getpid())
    assert res.child_tgid == res.child_pid == pid
    assert res.child_start_boottime * ticks // 10**9 == child_ticks


def test_cpu_clock_perf_event_samples(probe):
    before = probe["perf_hits"][ctypes.c_int(0)].value
    x = 0
    while probe["perf_hits"][ctypes.c_int(0)].value < before + 5:
        x += sum(range(10000))
    assert probe["perf_hits"][ctypes.c_int(0)].value >= before + 5


def test_ctypes_mirror_matches_clangs_layout(probe):
    for table, cls in (("abi_proc_event", abi.proc_event), ("abi_exec_event", abi.exec_event),
                       ("abi_member", abi.member), ("probe_out", abi.probe_result),
                       ("probe_cfg", abi.probe_cfg)):
        assert check_leaf_layout(probe[table], cls) is None, table


def test_teardown_releases_every_bpf_object():
    before = _bpf_fds()
    with BpfProgram("probe.bpf.c") as prog:
        prog.attach_raw_tracepoint("sched_process_fork", "probe_fork")
        prog.attach_cpu_clock("probe_sample", 99)
        assert len(_bpf_fds()) > len(before)
    assert _bpf_fds() == before


def test_teardown_on_error_inside_the_block():
    before = _bpf_fds()
    with pytest.raises(RuntimeError):
        with BpfProgram("probe.bpf.c") as prog:
            prog.attach_raw_tracepoint("sched_process_fork", "probe_fork")
            raise RuntimeError("boom")
    assert _bpf_fds() == before


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_teardown_on_signal(sig):
    code = textwrap.dedent("""
        import sys, time
        from pyprof_ebpf.loader import BpfProgram, sigterm_raises, _bpf_fds
        try:
            with sigterm_raises(), BpfProgram("probe.bpf.c") as prog:
                prog.attach_raw_tracepoint("sched_process_fork", "probe_fork")
                prog.attach_cpu_clock("probe_sample", 99)
                print("ready", len(_bpf_fds()), flush=True)
                sys.stdin.read()
        except KeyboardInterrupt:
            print("left", len(_bpf_fds()), flush=True)
    """)
    p = subprocess.Popen([PY, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready = p.stdout.readline().split()
        assert ready[0] == "ready" and int(ready[1]) > 0
        p.send_signal(sig)
        out, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert out.split() == ["left", "0"]


def run_cli(*args, prefix=(), **kw):
    return subprocess.run([*prefix, PY, "-m", "pyprof_ebpf", *args], capture_output=True, text=True,
                          timeout=120, **kw)


def test_doctor_is_all_green_here():
    res = run_cli("doctor", "--json")
    report = json.loads(res.stdout)
    bad = [c for c in report["checks"] if c["ok"] is not True]
    assert res.returncode == 0 and report["ready"] and not bad, bad


def in_private_mounts(script):
    """Run a shell script in a private mount namespace (changes vanish with it)."""
    return ("unshare", "-m", "--propagation", "private", "sh", "-c", script)


def test_doctor_mounts_tracefs_when_missing():
    res = subprocess.run(in_private_mounts(
        f"umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug/tracing 2>/dev/null; "
        f"grep -c ' tracefs ' /proc/mounts; {PY} -m pyprof_ebpf doctor"),
        capture_output=True, text=True, timeout=120)
    assert res.stdout.splitlines()[0] == "0", res.stdout
    line = next(l for l in res.stdout.splitlines() if " tracefs " in l)
    assert "[ok  ]" in line and "mounted now" in line, res.stdout
    assert res.returncode == 0, res.stdout + res.stderr


def test_no_headers_at_all_is_one_clear_line():
    # GIVEN no header tree anywhere (hidden by empty tmpfs mounts)
    hide = "; ".join(f"[ -d {d} ] && mount -t tmpfs none {d}" for d in
                     ("/usr/src", "/lib/modules", "/var/cache/pyprof-ebpf"))
    res = subprocess.run(in_private_mounts(f"{hide}; env -u BCC_KERNEL_SOURCE {PY} -m pyprof_ebpf doctor"),
                         capture_output=True, text=True, timeout=120)
    line = next(l for l in res.stdout.splitlines() if " headers " in l)
    assert "FAIL" in line and "apt-get install linux-headers" in line, res.stdout
    assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr


def test_missing_bcc_is_one_clear_line():
    res = subprocess.run(in_private_mounts(
        f"mount -t tmpfs none /usr/lib/python3/dist-packages; {PY} -m pyprof_ebpf doctor"),
        capture_output=True, text=True, timeout=120)
    line = next(l for l in res.stdout.splitlines() if " bcc " in l)
    assert "FAIL" in line and "apt-get install python3-bpfcc" in line, res.stdout
    assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr
