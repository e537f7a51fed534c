"""Record target: two coroutines, producer() and consumer(), doing CPU work between awaits.

producer() computes ITEMS values (a fixed number of loop iterations each) and puts each on a
one-slot asyncio.Queue; consumer() takes each value and does the same amount of work on it.
The one-slot queue makes the two alternate, so both are on the event loop's stack, each for
about half of the ~1.8 s (pyenv's 3.11) of CPU. No sleeps: every await is a queue operation.

Truth (JSON line to $PYPROF_TRUTH, appended, or else stdout): {"role": "asyncio", "pid",
"start_ticks", "version", "file": co_filename, "coroutines": ["producer", "consumer"],
"functions": {name: [first line, last line]}, "items": ITEMS}. $PYPROF_READY, when set, names
a file created just before the event loop starts. Standard library only; CPython 3.8+.
"""

import asyncio
import sys

from _report import ready, span, truth

ITEMS = 1300
ITERATIONS = 10000  # per item and side, ~0.7 ms on pyenv 3.11.7


async def producer(queue, items, n):
    for item in range(items):
        total = 0
        for i in range(n):
            total += i * i % 7
        await queue.put(total + item)
    await queue.put(None)


async def consumer(queue, n):
    done = 0
    while True:
        value = await queue.get()
        if value is None:
            return done
        total = value
        for i in range(n):
            total += i * i % 7
        done += 1


async def run(items, n):
    queue = asyncio.Queue(maxsize=1)  # created inside the loop (3.8/3.9 bind it at creation)
    _, done = await asyncio.gather(producer(queue, items, n), consumer(queue, n))
    assert done == items, done
    return done


def main():
    truth({"role": "asyncio", "file": producer.__code__.co_filename,
           "coroutines": ["producer", "consumer"], "items": ITEMS,
           "functions": {"producer": span(producer), "consumer": span(consumer)}})
    ready()
    asyncio.run(run(ITEMS, ITERATIONS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
