"""The thread-group leader exits first (scenario 7).

    root -- subprocess --> child: the main thread calls pthread_exit() (via
                           ctypes); a second thread waits until the leader is a
                           zombie, then calls os._exit(7).

Expected: one exit for the child, with code 7, at the time of the second
thread's exit_group (not at the leader's pthread_exit, and not status 0).

Truth records:
  root:  {role: root, pid, ppid, start_ticks, expect_exit_code: 0}
         {role: root, pid, spawned: <child>, child_role: child}
         {role: root, pid, reaped: <child>, status}
  child: {role: child, pid, ppid, start_ticks, expect_exit_code: 7}
         {role: child, pid, leader_state: "Z", exit_tid}   just before os._exit(7)
"""

import ctypes
import os
import sys
import threading

import _truth


def child():
    _truth.me("child", expect_exit_code=7)
    pid = os.getpid()

    def survivor():
        leader = "%d/task/%d" % (pid, pid)
        _truth.wait_until(lambda: _truth.state(leader) in ("Z", None))
        _truth.emit({"role": "child", "pid": pid, "leader_state": _truth.state(leader),
                     "exit_tid": threading.get_native_id()})
        os._exit(7)

    threading.Thread(target=survivor).start()
    libc = ctypes.CDLL(None)
    libc.pthread_exit.argtypes = [ctypes.c_void_p]
    libc.pthread_exit(None)
    os._exit(99)             # not reached


def main():
    _truth.me("root", expect_exit_code=0)
    _truth.spawn_and_reap("root", [sys.executable, os.path.abspath(__file__), "child"], "child")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["child"]:
        child()
    sys.exit(main())
