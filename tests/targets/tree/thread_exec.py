"""Exec from a non-leader thread (scenario 6).

    root -- subprocess --> child: a second thread calls
                           execv("/bin/sh", ["sh", "-c", "exit 6"]) while the
                           main thread blocks; de_thread() kills the old leader.

Expected: the child keeps its pid and start across the exec, gets one exec
record (/bin/sh) and exactly one exit, with code 6. The old leader's death
inside de_thread() must not be reported as a process exit.

Truth records:
  root:  {role: root, pid, ppid, start_ticks, expect_exit_code: 0}
         {role: root, pid, spawned: <child>, child_role: child}
         {role: root, pid, reaped: <child>, status}
  child: {role: child, pid, ppid, start_ticks, expect_exit_code: 6}
         {role: child, pid, exec_tid}        written by the exec'ing thread
"""

import os
import sys
import threading

import _truth


def child():
    _truth.me("child", expect_exit_code=6)

    def exec_from_thread():
        _truth.emit({"role": "child", "pid": os.getpid(), "exec_tid": threading.get_native_id()})
        os.execv("/bin/sh", ["sh", "-c", "exit 6"])

    thread = threading.Thread(target=exec_from_thread)
    thread.start()
    thread.join(60)          # the exec kills this thread; reaching the next line is a failure
    os._exit(99)


def main():
    _truth.me("root", expect_exit_code=0)
    _truth.spawn_and_reap("root", [sys.executable, os.path.abspath(__file__), "child"], "child")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["child"]:
        child()
    sys.exit(main())
