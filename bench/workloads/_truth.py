"""Ground truth for bench/compare: every workload process reports itself.

Each process appends JSON lines to the file named by $BENCH_TRUTH (one os.write on an
O_APPEND descriptor, so concurrent writers never interleave):

- {"ev": "start", "pid", "ppid", "role", "t", "start_ticks"}  when the process starts its
  work (start_ticks: the kernel's start time of the process, from /proc/self/stat);
- {"ev": "exit", "pid", "role", "cpu", "t"}    at exit, where "cpu" is the process's own
  user+sys CPU seconds from getrusage(RUSAGE_SELF) (all its threads; children excluded:
  every Python child reports its own).

Standard library only. The work is a fixed number of loop iterations, never a time check.
"""

import atexit
import json
import os
import resource
import time

# Iterations of burn() per CPU second, roughly (CPython 3.11 on the 2-CPU test VM, measured once; only a scale).
PER_SECOND = 33_000_000


def write(rec):
    path = os.environ.get("BENCH_TRUTH")
    if not path:
        return
    line = (json.dumps(rec, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def cpu_self():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def start(role, at_exit=True):
    """Report this process; with at_exit, report its CPU time from an atexit hook."""
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    ticks = int(stat[stat.rindex(b")") + 2:].split()[19])  # process start, clock ticks after boot
    write({"ev": "start", "pid": os.getpid(), "ppid": os.getppid(), "role": role, "t": time.time(),
           "start_ticks": ticks})
    if at_exit:
        atexit.register(finish, role)


def finish(role, **extra):
    rec = {"ev": "exit", "pid": os.getpid(), "role": role, "cpu": cpu_self(), "t": time.time()}
    rec.update(extra)
    write(rec)


def burn(n):
    total = 0
    for i in range(n):
        total += i % 7
    return total


def seconds(s):
    """Iterations of burn() for about s seconds of CPU (fixed: not a time check)."""
    return int(s * PER_SECOND)
