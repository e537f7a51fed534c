"""Exec chain (scenario 5): sh -c "exec python tail" keeps one process through two execs.

    root -- subprocess --> sh -c "exec <python> exec_chain.py tail"
                           `-> exec python: tail exits 5

Expected: one fork and two execs (sh, then python) for the same (pid, start),
and an exit with code 5. The root reaps it.

Truth records:
  root: {role: root, pid, ppid, start_ticks, expect_exit_code: 0}
        {role: root, pid, spawned: <sh/tail pid>, child_role: tail}
        {role: root, pid, reaped: <tail>, status}
  tail: {role: tail, pid, ppid (= root), start_ticks, expect_exit_code: 5}
"""

import os
import shlex
import sys

import _truth


def tail():
    _truth.me("tail", expect_exit_code=5)
    os._exit(5)


def main():
    _truth.me("root", expect_exit_code=0)
    command = "exec %s %s tail" % (shlex.quote(sys.executable), shlex.quote(os.path.abspath(__file__)))
    _truth.spawn_and_reap("root", ["sh", "-c", command], "tail")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["tail"]:
        tail()
    sys.exit(main())
