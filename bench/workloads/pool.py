"""multiprocessing.Pool(3) with the start method given as argv[1] (fork or spawn).

The parent burns ~0.2 s, maps 6 tasks of ~0.15 s over 3 workers, joins, burns ~0.1 s.
Workers report through a multiprocessing finalizer (they leave with os._exit, so atexit
hooks do not run). Under spawn, multiprocessing also starts its resource tracker, a
Python process that runs no workload code and does not report itself.
"""

import multiprocessing
import multiprocessing.util
import sys

import _truth


def init_worker():
    _truth.start("worker", at_exit=False)
    multiprocessing.util.Finalize(None, _truth.finish, args=("worker",), exitpriority=100)


def task(n):
    return _truth.burn(n)


def main(method):
    _truth.start("root:" + method)
    _truth.burn(_truth.seconds(0.2))
    ctx = multiprocessing.get_context(method)
    pool = ctx.Pool(3, initializer=init_worker)
    pool.map(task, [_truth.seconds(0.15)] * 6, chunksize=1)
    pool.close()
    pool.join()
    _truth.burn(_truth.seconds(0.1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "fork"))
