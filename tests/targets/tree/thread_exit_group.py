"""exit_group from a non-leader thread (scenario 8).

    root -- subprocess --> child: a second thread calls os._exit(5) while the
                           main thread blocks in join().

Expected: one exit for the child, with code 5 (the status is reported on the
leader's group-dead exit, which is caused by the other thread's exit_group).

Truth records:
  root:  {role: root, pid, ppid, start_ticks, expect_exit_code: 0}
         {role: root, pid, spawned: <child>, child_role: child}
         {role: root, pid, reaped: <child>, status}
  child: {role: child, pid, ppid, start_ticks, expect_exit_code: 5}
         {role: child, pid, exit_tid}        written by the exiting thread
"""

import os
import sys
import threading

import _truth


def child():
    _truth.me("child", expect_exit_code=5)

    def exit_group():
        _truth.emit({"role": "child", "pid": os.getpid(), "exit_tid": threading.get_native_id()})
        os._exit(5)

    thread = threading.Thread(target=exit_group)
    thread.start()
    thread.join(60)          # killed by the other thread's exit_group
    os._exit(99)


def main():
    _truth.me("root", expect_exit_code=0)
    _truth.spawn_and_reap("root", [sys.executable, os.path.abspath(__file__), "child"], "child")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["child"]:
        child()
    sys.exit(main())
