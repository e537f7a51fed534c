"""A child subreaper (scenario 11): the orphan is re-parented to the root, which reaps it.

    root (PR_SET_CHILD_SUBREAPER) -- fork --> middle -- fork --> orphan
         middle exits 0 once the orphan is ready; the orphan waits for the
         middle's death (EOF on a pipe), then exits 4; the root reaps both.

Truth records:
  root:   {role: root, pid, ppid, start_ticks, expect_exit_code: 0}
          {role: root, pid, spawned: <middle>, child_role: middle}
          {role: root, pid, reaped: <middle>, status}
          {role: root, pid, reaped: <orphan>, status}    status 1024 (exit 4)
  middle: {role: middle, pid, ppid, start_ticks, expect_exit_code: 0}
          {role: middle, pid, spawned: <orphan>, child_role: orphan}
  orphan: {role: orphan, pid, ppid (= middle), start_ticks, expect_exit_code: 4}
          {role: orphan, pid, ppid_after}    = the root once re-parented
"""

import ctypes
import os
import sys

import _truth

PR_SET_CHILD_SUBREAPER = 36


def orphan(middle_alive_r, ready_w):
    _truth.me("orphan", expect_exit_code=4)
    creator = os.getppid()               # read before the creator may exit
    os.write(ready_w, b"r")
    _truth.wait_orphaned(middle_alive_r, creator)
    _truth.emit({"role": "orphan", "pid": os.getpid(), "ppid_after": os.getppid()})
    os._exit(4)


def middle():
    _truth.me("middle", expect_exit_code=0)
    middle_alive_r, middle_alive_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(middle_alive_w)
        os.close(ready_r)
        orphan(middle_alive_r, ready_w)
    os.read(ready_r, 1)
    _truth.spawned("middle", pid, "orphan")
    os._exit(0)


def main():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    _truth.me("root", expect_exit_code=0)
    pid = os.fork()
    if pid == 0:
        try:
            middle()
        finally:
            os._exit(99)
    _truth.spawned("root", pid, "middle")
    _truth.reap("root", pid)
    orphan_pid, status = os.waitpid(-1, 0)      # the only child left: the adopted orphan
    _truth.emit({"role": "root", "pid": os.getpid(), "reaped": orphan_pid, "status": status})
    return 0


if __name__ == "__main__":
    sys.exit(main())
