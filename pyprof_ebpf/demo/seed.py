"""The seed scenario: a three-process Python tree whose grandchild outlives its parents.

This is the project's bundled demo (the README runs it under ``pyprof-ebpf``) and
the seed case of the process-tree tests (tests/root/test_audit_scenarios.py). It
is the smallest tree on which a polling profiler such as Austin loses a process,
because the grandchild is orphaned about 40 ms after it is created::

    root (no argument)        burn() ~0.3 s, subprocess.call(<this file> popen),
    |                         burn() ~0.3 s more, exit 0
    `-- child ("popen")       subprocess.Popen(<this file> count) and return at once
        `-- grandchild        count() ~1.5 s of CPU, exit 0; re-parented to the
            ("count")         nearest reaper (usually PID 1) as soon as the child exits

What a profiler should show:

- default "root-exit" session: samples of ``burn`` (root) and the first ~0.3 s of
  ``count`` (grandchild); the session ends when the root exits and the grandchild
  is reported as left running;
- ``--follow-orphans``: all of ``count`` as well; the session ends when the
  grandchild exits with status 0.

The amount of work is fixed (a number of loop iterations, calibrated on the test
VM with CPython 3.11: about 22 M iterations/s), not a time check, so the profile
is a function of the code and not of the machine's load.

Ground truth: when the environment variable ``PYPROF_TRUTH`` names a file, each
process appends one JSON line per fact to it (one ``os.write`` on an ``O_APPEND``
descriptor, so concurrent writers never interleave), in the format of
tests/targets/tree/_truth.py:

- ``{"role": "root"|"child"|"grandchild", "pid", "ppid", "start_ticks",
  "expect_exit_code": 0}`` (the grandchild's adds ``"ppid_racy": true``: its
  parent may already be gone);
- ``{"role": "root", "pid", "reaped": <child pid>, "status": <raw waitpid status>}``;
- ``{"role": "child", "pid", "spawned": <grandchild pid>, "child_role": "grandchild"}``.

Runs on CPython 3.8+ with the standard library only.
"""

import json
import os
import subprocess
import sys

BURN_ITERATIONS = 6500000  # ~0.3 s per burn() call
COUNT_ITERATIONS = 33000000  # ~1.5 s in count()


def burn(n):
    """CPU work in the root, so that the root has its own stack in the profile."""
    total = 0
    for i in range(n):
        total += i * i % 11
    return total


def count(n):
    """The grandchild's work: a fixed number of iterations of a pure-Python loop."""
    total = 0
    for i in range(n):
        total += i % 7
    return total


def _truth(record):
    """Append one ground-truth record to $PYPROF_TRUTH (no-op when it is unset)."""
    path = os.environ.get("PYPROF_TRUTH")
    if not path:
        return
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _describe_self(role, **extra):
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    record = {
        "role": role,
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "start_ticks": int(stat[stat.rindex(b")") + 2:].split()[19]),
    }
    record.update(extra)
    _truth(record)


def root():
    _describe_self("root", expect_exit_code=0)
    burn(BURN_ITERATIONS)
    # subprocess.call(), spelled out so that the truth file gets the raw wait status.
    with subprocess.Popen([sys.executable, __file__, "popen"]) as child:
        _, status = os.waitpid(child.pid, 0)
        child.returncode = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    _truth({"role": "root", "pid": os.getpid(), "reaped": child.pid, "status": status})
    burn(BURN_ITERATIONS)
    return 0


def popen():
    _describe_self("child", expect_exit_code=0)
    grandchild = subprocess.Popen([sys.executable, __file__, "count"])
    _truth({"role": "child", "pid": os.getpid(), "spawned": grandchild.pid,
            "child_role": "grandchild"})
    return 0  # deliberately no wait(): the grandchild is orphaned


def grandchild():
    _describe_self("grandchild", ppid_racy=True, expect_exit_code=0)
    count(COUNT_ITERATIONS)
    return 0


def main(argv):
    modes = {"popen": popen, "count": grandchild}
    if len(argv) == 1:
        return root()
    if len(argv) == 2 and argv[1] in modes:
        return modes[argv[1]]()
    sys.stderr.write("usage: %s [popen|count]\n" % argv[0])
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
