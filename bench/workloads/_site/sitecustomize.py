"""Put on PYTHONPATH by bench/compare for workloads it runs unmodified (the seed demo):
every Python process of the seed tree reports its pid and, at exit, its own CPU time to
$BENCH_TRUTH, in the format of bench/workloads/_truth.py."""

import os
import sys

# Only the seed's processes: a profiler written in Python (pyprof-ebpf runs on the project's
# venv python) inherits the same environment and must not count itself.
if os.environ.get("BENCH_TRUTH") and sys.argv and os.path.basename(sys.argv[0]) == "seed.py":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        import _truth
        _truth.start("site:" + " ".join(os.path.basename(a) for a in sys.argv))
    finally:
        del sys.path[0]
