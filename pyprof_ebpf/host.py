"""Facts about the host that decide whether BPF can run: privileges, kernel, tracefs, lockdown.

Responsibility: read (and, for tracefs, fix when allowed) the host conditions the loader
depends on. Pure queries except ``ensure_tracefs``, which mounts tracefs when it is missing
and we are root. Never prints.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from typing import Optional, Tuple

from .errors import NotPrivileged, TracefsUnavailable

# include/uapi/linux/capability.h
CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39
TRACEFS = "/sys/kernel/tracing"


def effective_caps() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def privilege() -> Tuple[bool, str]:
    """(ok, description). BPF tracing needs root, or CAP_BPF + CAP_PERFMON (5.8+)."""
    if os.geteuid() == 0:
        return True, "root"
    caps = effective_caps()
    if caps & (1 << CAP_SYS_ADMIN):
        return True, "CAP_SYS_ADMIN"
    if caps & (1 << CAP_BPF) and caps & (1 << CAP_PERFMON):
        return True, "CAP_BPF + CAP_PERFMON"
    return False, f"uid {os.geteuid()} without CAP_BPF + CAP_PERFMON"


def require_privilege() -> None:
    ok, what = privilege()
    if not ok:
        raise NotPrivileged(f"pyprof-ebpf needs root (running as {what})",
                            "run it with sudo, or grant CAP_BPF and CAP_PERFMON")


def kernel_release() -> str:
    return platform.release()


def kernel_version() -> Tuple[int, int, int]:
    parts = (platform.release().split("-")[0].split(".") + ["0", "0"])[:3]
    return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in parts)  # type: ignore


def _mounts() -> list:
    with open("/proc/mounts") as f:
        return [line.split() for line in f]


def tracefs_mountpoint() -> Optional[str]:
    for fields in _mounts():
        if len(fields) > 2 and fields[2] == "tracefs":
            return fields[1]
    return None


def ensure_tracefs() -> Tuple[str, bool]:
    """Return (mountpoint, mounted_now). Mount tracefs at /sys/kernel/tracing when missing.
    Classic tracepoints need it (bcc opens events/<cat>/<name>/id); raw tracepoints and perf
    events do not, so callers that only use those may ignore a failure."""
    where = tracefs_mountpoint()
    if where:
        return where, False
    if os.geteuid() != 0:
        raise TracefsUnavailable("tracefs is not mounted", f"as root: mount -t tracefs tracefs {TRACEFS}")
    err = _mount("tracefs", TRACEFS, "tracefs")
    if err:
        raise TracefsUnavailable(f"cannot mount tracefs at {TRACEFS}: {os.strerror(err)}",
                                 "mount it on the host (mount -t tracefs tracefs /sys/kernel/tracing)")
    return TRACEFS, True


def _mount(source: str, target: str, fstype: str) -> int:
    """mount(2); returns 0 or an errno."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    if libc.mount(source.encode(), target.encode(), fstype.encode(), 0, None) != 0:
        return ctypes.get_errno() or 1
    return 0


def lockdown() -> Optional[str]:
    """The active lockdown mode ("none", "integrity", "confidentiality"), None if unknown.
    "confidentiality" forbids bpf_probe_read_kernel, which the tracker needs. securityfs is
    mounted (as systemd would) when root and it is missing."""
    path = "/sys/kernel/security/lockdown"
    if not os.path.exists(path) and os.geteuid() == 0 and os.path.isdir("/sys/kernel/security"):
        _mount("securityfs", "/sys/kernel/security", "securityfs")
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    for word in text.split():
        if word.startswith("["):
            return word.strip("[]")
    return None


def perf_event_paranoid() -> Optional[int]:
    try:
        with open("/proc/sys/kernel/perf_event_paranoid") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def btf_present(path: str = "/sys/kernel/btf/vmlinux") -> bool:
    return os.path.isfile(path)


def clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")
