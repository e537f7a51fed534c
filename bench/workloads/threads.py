"""Three CPU-bound threads (~0.5 s of work each, serialised by the GIL); the main thread
joins them. Each thread reports its native thread id."""

import os
import sys
import threading

import _truth


def work():
    _truth.write({"ev": "thread", "pid": os.getpid(), "tid": threading.get_native_id()})
    _truth.burn(_truth.seconds(0.5))


def main():
    _truth.start("root")
    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
