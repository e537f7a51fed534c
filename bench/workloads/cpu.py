"""CPU-bound fixed work, in PHASES consecutive phases of about 10 ms each.

Each phase runs in its own function phase_NNN and the process records the wall time at
which each phase started, so the first phase present in a profile dates the profiler's
first sample of this process (to within one phase) whatever the tool's output format.
"""

import sys
import time

import _truth

PHASES = 200
PHASE_ITER = _truth.seconds(0.010)

_src = "def phase_%03d(n):\n    total = 0\n    for i in range(n):\n        total += i %% 7\n    return total\n"
PHASE_FUNCS = []
for _k in range(PHASES):
    _ns = {}
    exec(compile(_src % _k, __file__, "exec"), _ns)
    PHASE_FUNCS.append(_ns["phase_%03d" % _k])


def main():
    _truth.start("cpu")
    times = []
    for fn in PHASE_FUNCS:
        times.append(time.time())
        fn(PHASE_ITER)
    _truth.write({"ev": "phases", "times": times, "pid": __import__("os").getpid()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
