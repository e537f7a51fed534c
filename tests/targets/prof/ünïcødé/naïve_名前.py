"""Record target with non-ASCII names everywhere: this folder, this file, a function and a method.

The main loop alternately calls ``функция()`` and ``Ключ().méthode()``, each doing the same fixed
number of iterations (~0.9 s of CPU each on pyenv's 3.11, ~1.8 s in all). The qualname of the
method is ``Ключ.méthode`` where the code object has ``co_qualname`` (3.11+); before that a
profiler reading code objects only sees ``méthode``.

Truth (JSON line to $PYPROF_TRUTH, appended, or else stdout; UTF-8): {"role": "unicode", "pid",
"start_ticks", "version", "file": co_filename (non-ASCII), "functions": {"функция": [first, last],
"Ключ.méthode": [first, last]}, "co_qualname": whether code objects have co_qualname}.
$PYPROF_READY, when set, names a file created just before the loop. Stdlib only; CPython 3.8+.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _report import ready, span, truth  # noqa: E402

ROUNDS = 250
ITERATIONS = 50000  # per call, ~3.5 ms on pyenv 3.11.7


def функция(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


class Ключ:
    def méthode(self, n):
        total = 0
        for i in range(n):
            total += i * i % 7
        return total


def main():
    key = Ключ()
    truth({"role": "unicode", "file": функция.__code__.co_filename,
           "functions": {"функция": span(функция), "Ключ.méthode": span(Ключ.méthode)},
           "co_qualname": hasattr(функция.__code__, "co_qualname")})
    ready()
    for _ in range(ROUNDS):
        функция(ITERATIONS)
        key.méthode(ITERATIONS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
