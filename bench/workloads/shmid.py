"""A Python child under a non-Python intermediate: root -> sh -c "python3 shmid.py leaf; true" -> leaf.

The trailing "; true" keeps sh from exec'ing into Python, so sh stays in the tree."""

import shlex
import subprocess
import sys

import _truth


def main(argv):
    if len(argv) > 1 and argv[1] == "leaf":
        _truth.start("leaf")
        _truth.burn(_truth.seconds(1.0))
        return 0
    _truth.start("root")
    _truth.burn(_truth.seconds(0.2))
    cmd = "%s %s leaf; true" % (shlex.quote(sys.executable), shlex.quote(__file__))
    subprocess.call(["sh", "-c", cmd])
    _truth.burn(_truth.seconds(0.2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
