"""Record target: a Python stack deeper than the profiler's frame limit, busy at the bottom.

main() calls descend(DEPTH), which recurses until DEPTH descend() frames are on the stack and
then calls bottom(), which burns a fixed number of iterations (~1.8 s on pyenv's 3.11). The
stack during the measured work is, outermost first: <module>, main, DEPTH x descend, bottom
(DEPTH + 3 frames). DEPTH = 300 is well past a 128-frame limit and well under the default
recursion limit (1000).

Truth (JSON line to $PYPROF_TRUTH, appended, or else stdout): {"role": "deep", "pid",
"start_ticks", "version", "file": co_filename, "depth": DEPTH (descend frames),
"stack_depth": DEPTH + 3 (all Python frames), "recursive": "descend", "bottom": "bottom",
"functions": {name: [first line, last line]}}. $PYPROF_READY, when set, names a file created by
bottom() just before its loop. Standard library only; CPython 3.8+.
"""

import sys

from _report import ready, span, truth

DEPTH = 300
ITERATIONS = 26000000  # ~1.8 s on pyenv 3.11.7


def bottom(n):
    ready()
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def descend(depth, n):
    if depth > 1:
        return descend(depth - 1, n)
    return bottom(n)


def main():
    truth({"role": "deep", "file": bottom.__code__.co_filename, "depth": DEPTH,
           "stack_depth": DEPTH + 3, "recursive": "descend", "bottom": "bottom",
           "functions": {"descend": span(descend), "bottom": span(bottom)}})
    descend(DEPTH, ITERATIONS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
