"""A storm of short-lived Python children: the root runs CHILDREN children one after the
other, each burning ~50 ms of CPU (plus interpreter start-up) and exiting."""

import subprocess
import sys

import _truth

CHILDREN = 20


def main(argv):
    if len(argv) > 1 and argv[1] == "child":
        _truth.start("child")
        _truth.burn(_truth.seconds(0.05))
        return 0
    _truth.start("root")
    _truth.burn(_truth.seconds(0.1))
    for _ in range(CHILDREN):
        subprocess.call([sys.executable, __file__, "child"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
