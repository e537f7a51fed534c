"""Record target: a known CPU split, 75 % in heavy() and 25 % in light().

The main loop calls heavy() and light() alternately. In every round both run the same loop body,
heavy() for exactly three times as many iterations as light(), so the CPU time between them is
3:1 whatever the machine. The per-round amount varies between 0.5x and 1.5x of the base (a fixed
pseudo-random sequence, the same on every run) so that the round length never locks in phase
with the sampling period; at the base, a round is ~4 ms on pyenv's CPython 3.11 (light ~1 ms,
heavy ~3 ms) and the whole run is ~2 s.

Truth: one JSON line, to the file named by $PYPROF_TRUTH (appended) or else to stdout:
{"role": "split", "pid", "start_ticks", "version": [major, minor], "file": co_filename,
 "ratio": {"heavy": 0.75, "light": 0.25}, "functions": {name: [first line, last line]},
 "iterations": {"heavy": n, "light": n}}. $PYPROF_READY, when set, names a file created just
before the measured loop starts. Standard library only; CPython 3.8+.
"""

import sys

from _report import ready, span, truth

BASE = 14000  # light() iterations per round at scale 1.0 (~1 ms on pyenv 3.11.7)
ROUNDS = 600


def heavy(n):
    total = 0
    for i in range(3 * n):
        total += i * i % 7
    return total


def light(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def scales(rounds, seed=12345):
    """A fixed sequence of per-round scales in [0.5, 1.5) (a 32-bit LCG, no random module)."""
    x = seed
    for _ in range(rounds):
        x = (1103515245 * x + 12345) & 0x7FFFFFFF
        yield 0.5 + x / 0x80000000


def main():
    sizes = [int(BASE * s) for s in scales(ROUNDS)]
    truth({"role": "split", "file": heavy.__code__.co_filename,
           "ratio": {"heavy": 0.75, "light": 0.25},
           "functions": {"heavy": span(heavy), "light": span(light)},
           "iterations": {"heavy": 3 * sum(sizes), "light": sum(sizes)}})
    ready()
    for n in sizes:
        heavy(n)
        light(n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
