"""What every profiling target reports about itself (imported by the targets beside it).

``truth(record)`` appends one JSON line about this process (pid, start tick, Python version
and whatever the target adds) to the file named by PYPROF_TRUTH, in one write so concurrent
processes never interleave (stdout when unset); ``ready()`` creates PYPROF_READY when the
measured work begins; ``span(fn)`` is a function's [first, last] source line.
"""

import inspect
import json
import os
import sys


def truth(record):
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    record.update(pid=os.getpid(), start_ticks=int(stat[stat.rindex(b")") + 2:].split()[19]),
                  version=list(sys.version_info[:2]))
    line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
    path = os.environ.get("PYPROF_TRUTH")
    if not path:
        sys.stdout.buffer.write(line.encode())
        sys.stdout.flush()
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def ready():
    path = os.environ.get("PYPROF_READY")
    if path:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))


def span(fn):
    lines, first = inspect.getsourcelines(fn)
    return [first, first + len(lines) - 1]
