"""A child forked by a non-main thread that exits before the child (scenario 12).

    root: thread T forks child, then T ends; the root then releases the child
          (closes a pipe), the child exits 12 and the root reaps it.

Expected: the child's fork record names the root as parent and T as the
creating thread (`tid`); the child stays a member after T's exit (its
real_parent silently moves to the leader; getppid() does not change).

Truth records:
  root:  {role: root, pid, ppid, start_ticks, expect_exit_code: 0}
         {role: root, pid, fork_tid}           written by T just before fork()
         {role: root, pid, spawned: <child>, child_role: thread-child}
         {role: root, pid, reaped: <child>, status}
  child: {role: thread-child, pid, ppid, start_ticks, expect_exit_code: 12}
         {role: thread-child, pid, ppid_after}  after T has exited
"""

import os
import sys
import threading
import warnings

import _truth


def main():
    warnings.simplefilter("ignore", DeprecationWarning)   # 3.12+: fork() with threads
    _truth.me("root", expect_exit_code=0)
    release_r, release_w = os.pipe()
    child = []

    def creator():
        _truth.emit({"role": "root", "pid": os.getpid(), "fork_tid": threading.get_native_id()})
        pid = os.fork()
        if pid == 0:
            try:
                os.close(release_w)
                _truth.me("thread-child", expect_exit_code=12)
                _truth.wait_eof(release_r)
                _truth.emit({"role": "thread-child", "pid": os.getpid(), "ppid_after": os.getppid()})
            finally:
                os._exit(12)
        child.append(pid)

    thread = threading.Thread(target=creator)
    thread.start()
    thread.join()
    os.close(release_r)
    _truth.spawned("root", child[0], "thread-child")
    os.close(release_w)
    _truth.reap("root", child[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
