"""Exception hierarchy of pyprof_ebpf.

Every error the tool can meet in normal use is a ``PyprofError`` whose message names the cause
and whose ``remedy`` names the fix, so the CLI can print one line and pick the exit status.
Nothing here prints; only ``cli`` turns these into output and exit codes.
"""

from __future__ import annotations


class PyprofError(Exception):
    """Base class. ``str(err)`` is the cause; ``remedy`` is what the user can do about it."""

    exit_code = 1

    def __init__(self, message: str, remedy: str = ""):
        super().__init__(message)
        self.remedy = remedy

    def one_line(self) -> str:
        msg = str(self)
        return f"{msg}: {self.remedy}" if self.remedy else msg


class NotPrivileged(PyprofError):
    """The process lacks root or CAP_BPF + CAP_PERFMON."""

    exit_code = 2


class BccMissing(PyprofError):
    """The distribution's bcc Python module or libbcc cannot be loaded."""


class HeadersMissing(PyprofError):
    """No kernel header tree that bcc could compile against."""


class TracefsUnavailable(PyprofError):
    """tracefs is not mounted and could not be mounted."""


class BtfError(PyprofError):
    """/sys/kernel/btf/vmlinux is missing, malformed, or lacks a needed type or member."""


class BpfLoadError(PyprofError):
    """A BPF program failed to compile, load or attach."""


class UsageError(PyprofError):
    """Bad command-line input that click itself cannot detect (pid, cgroup path, command)."""

    exit_code = 2


class ProcessGone(PyprofError):
    """A target process vanished. Normal in a profiler: callers usually catch and count it."""


class UnsupportedPython(PyprofError):
    """The target's interpreter cannot be profiled (unknown version, unverifiable offsets)."""


class UnsupportedBuild(UnsupportedPython):
    """The interpreter's build is one we never profile (version range, free-threaded, old
    debug build): known for good at the first look, so nobody waits or retries."""
