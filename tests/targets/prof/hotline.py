"""Record target: one function, hot(), whose time is almost all (>= 99 %) on one known line.

Each iteration of hot()'s loop sums a range of ~2000 integers inside ``sum`` (C code, so the
Python frame stays on the calling line) and does a little arithmetic, all on the line marked
``# <- the hot line``; the ``for`` line costs well under 1 % of that. ~1.8 s on pyenv's 3.11.

Truth (JSON line to $PYPROF_TRUTH, appended, or else stdout): {"role": "hotline", "pid",
"start_ticks", "version", "file": co_filename, "function": "hot", "line": the hot line (found
with inspect from the marker), "span": [first, last] line of hot()}. $PYPROF_READY, when set,
names a file created just before hot() is called. Standard library only; CPython 3.8+.
"""

import inspect
import sys

from _report import ready, truth

ITERATIONS = 56000  # ~32 us each on pyenv 3.11.7
MARKER = "# <- the hot line"


def hot(n):
    total = 0
    for i in range(n):
        total += sum(range(i % 64, 2000)) + (i * 7919) % 13  # <- the hot line
    return total


def main():
    lines, first = inspect.getsourcelines(hot)
    marked = [first + k for k, text in enumerate(lines) if text.rstrip().endswith(MARKER)]
    assert len(marked) == 1, marked
    truth({"role": "hotline", "file": hot.__code__.co_filename, "function": "hot",
           "line": marked[0], "span": [first, first + len(lines) - 1]})
    ready()
    hot(ITERATIONS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
