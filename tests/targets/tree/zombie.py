"""A zombie never reaped (scenario 10), by a child and by the root itself.

    root -- fork --> child -- fork --> grandchild: exits 9 at once
         |           the child waits until the grandchild is a zombie (its
         |           /proc state is Z), never waits for it, and exits 0
         -- fork --> unreaped: exits 8 at once; the root waits until it is a
                     zombie, never reaps it and exits 3

Expected: both exits are reported at exit time, not at the (lazy) reap by
PID 1: the grandchild's exit precedes the child's, the unreaped child's precedes
the root's, and the audit exits 3.

Truth records:
  root:       {role: root, pid, ppid, start_ticks, expect_exit_code: 3}
              {role: root, pid, spawned: <child>, child_role: child}
              {role: root, pid, reaped: <child>, status}
              {role: root, pid, spawned: <unreaped>, child_role: unreaped}
              {role: root, pid, zombie_seen: <unreaped>}
  child:      {role: child, pid, ppid, start_ticks, expect_exit_code: 0}
              {role: child, pid, spawned: <grandchild>, child_role: grandchild}
              {role: child, pid, zombie_seen: <grandchild>}
  grandchild: {role: grandchild, pid, ppid, start_ticks, expect_exit_code: 9}
  unreaped:   {role: unreaped, pid, ppid, start_ticks, expect_exit_code: 8}
"""

import os
import sys

import _truth


def fork_zombie(role, parent_role, code):
    """Fork a child that records itself and exits `code`; return once it is a zombie."""
    pid = os.fork()
    if pid == 0:
        try:
            _truth.me(role, expect_exit_code=code)
        finally:
            os._exit(code)
    _truth.spawned(parent_role, pid, role)
    _truth.wait_until(lambda: _truth.state(pid) == "Z")
    _truth.emit({"role": parent_role, "pid": os.getpid(), "zombie_seen": pid})
    return pid


def main():
    _truth.me("root", expect_exit_code=3)
    pid = os.fork()
    if pid == 0:
        try:
            _truth.me("child", expect_exit_code=0)
            fork_zombie("grandchild", "child", 9)
        finally:
            os._exit(0)
    _truth.spawned("root", pid, "child")
    _truth.reap("root", pid)
    fork_zombie("unreaped", "root", 8)
    return 3


if __name__ == "__main__":
    sys.exit(main())
