"""A Python leaf under a non-exec'ing shell (scenario 16).

    root -- subprocess --> sh -c "<python> nonpython_intermediate.py leaf; true"
                           `-- fork+exec --> leaf: exits 3; sh then runs `true`
                                                    and exits 0

Expected: the leaf is a member whose parent is the shell (the shell never
becomes Python, so a profiler that only follows Python processes loses it).

Truth records:
  root: {role: root, pid, ppid, start_ticks, expect_exit_code: 0}
        {role: root, pid, spawned: <sh>, child_role: sh}
        {role: root, pid, reaped: <sh>, status}
  leaf: {role: leaf, pid, ppid (= sh), start_ticks, expect_exit_code: 3}
"""

import os
import shlex
import sys

import _truth


def leaf():
    _truth.me("leaf", expect_exit_code=3)
    os._exit(3)


def main():
    _truth.me("root", expect_exit_code=0)
    command = "%s %s leaf; true" % (shlex.quote(sys.executable), shlex.quote(os.path.abspath(__file__)))
    _truth.spawn_and_reap("root", ["sh", "-c", command], "sh")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["leaf"]:
        leaf()
    sys.exit(main())
