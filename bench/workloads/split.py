"""A known CPU split: hot_a does three times the iterations of hot_b (75/25), in 100
interleaved rounds of the same loop body. The process also reports the thread CPU time
it measured in each function (time.thread_time around each call)."""

import sys
import time

import _truth

ROUNDS = 100
UNIT = _truth.seconds(0.005)  # hot_b per round; hot_a does 3 * UNIT


def hot_a(n):
    total = 0
    for i in range(n):
        total += i % 7
    return total


def hot_b(n):
    total = 0
    for i in range(n):
        total += i % 7
    return total


def main():
    _truth.start("root")
    ta = tb = 0.0
    for _ in range(ROUNDS):
        t0 = time.thread_time()
        hot_a(3 * UNIT)
        t1 = time.thread_time()
        hot_b(UNIT)
        t2 = time.thread_time()
        ta += t1 - t0
        tb += t2 - t1
    _truth.write({"ev": "split", "pid": __import__("os").getpid(), "hot_a": ta, "hot_b": tb})
    return 0


if __name__ == "__main__":
    sys.exit(main())
