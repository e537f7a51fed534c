"""Record target: three CPU-bound threads running worker_a(), worker_b() and worker_c().

The main thread starts the three, meets them at a barrier once each has stored its native
thread id, writes the truth, and then sleeps in join() for the rest of the run. Each worker does
the same fixed number of loop iterations (~0.6 s of CPU on pyenv's 3.11; under the GIL the run
takes ~1.8 s in all). On a free-threaded build they would simply run in parallel.

Truth (JSON line to $PYPROF_TRUTH, appended, or else stdout): {"role": "threads", "pid",
"start_ticks", "version", "file": co_filename, "main_tid": native id of the main thread,
"threads": {"worker_a": native id, "worker_b": ..., "worker_c": ...},
"functions": {name: [first line, last line]}}. Native ids are threading.get_native_id(), i.e.
the kernel's TIDs. $PYPROF_READY, when set, names a file created when the workers are released.
Standard library only; CPython 3.8+.
"""

import inspect
import sys
import threading

from _report import ready, truth

ITERATIONS = 8600000  # per worker, ~0.6 s on pyenv 3.11.7
START = threading.Barrier(4)
TIDS = {}


def worker_a(n):
    TIDS["worker_a"] = threading.get_native_id()
    START.wait()
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def worker_b(n):
    TIDS["worker_b"] = threading.get_native_id()
    START.wait()
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def worker_c(n):
    TIDS["worker_c"] = threading.get_native_id()
    START.wait()
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def main():
    workers = (worker_a, worker_b, worker_c)
    threads = [threading.Thread(target=fn, args=(ITERATIONS,), name=fn.__name__)
               for fn in workers]
    for t in threads:
        t.start()
    START.wait()  # every worker has stored its tid and is about to start its loop
    spans = {}
    for fn in workers:
        lines, first = inspect.getsourcelines(fn)
        spans[fn.__name__] = [first, first + len(lines) - 1]
    truth({"role": "threads", "file": worker_a.__code__.co_filename,
           "main_tid": threading.get_native_id(), "threads": dict(TIDS), "functions": spans})
    ready()
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
