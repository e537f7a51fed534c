"""Record target: a parent that runs CHILDREN short-lived Python children, one after the other.

The parent (no argument) starts ``<same interpreter> short_child.py child`` CHILDREN times,
waiting for each before starting the next; every child spends ~50 ms of CPU (pyenv's 3.11) in
brief() and exits 0. A profiler has to discover each child and sample it within that time.

Truth (JSON lines to $PYPROF_TRUTH, appended; or else stdout):
- each child, before brief(): {"role": "child", "pid", "start_ticks", "version", "ppid",
  "file": co_filename, "function": "brief", "span": [first, last] line of brief()};
- the parent, at the end: {"role": "parent", "pid", "start_ticks", "version", "file",
  "children": [pid, ...] in start order, "statuses": [raw waitpid status, ...]}.
$PYPROF_READY, when set, names a file the parent creates before starting the first child.
Standard library only; CPython 3.8+.
"""

import inspect
import os
import subprocess
import sys

from _report import ready, truth

CHILDREN = 5
ITERATIONS = 720000  # ~50 ms on pyenv 3.11.7


def brief(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def child():
    lines, first = inspect.getsourcelines(brief)
    truth({"role": "child", "ppid": os.getppid(), "file": brief.__code__.co_filename,
           "function": "brief", "span": [first, first + len(lines) - 1]})
    brief(ITERATIONS)
    return 0


def parent():
    ready()
    pids, statuses = [], []
    for _ in range(CHILDREN):
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "child"])
        _, status = os.waitpid(proc.pid, 0)
        proc.returncode = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
        pids.append(proc.pid)
        statuses.append(status)
    truth({"role": "parent", "file": brief.__code__.co_filename, "children": pids,
           "statuses": statuses})
    return 0 if not any(statuses) else 1


if __name__ == "__main__":
    sys.exit(child() if sys.argv[1:] == ["child"] else parent())
