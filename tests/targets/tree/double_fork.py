"""Double-fork daemon (scenario 4): the daemon is detached and re-parented but stays a member.

    root -- fork --> first (setsid) -- fork --> daemon
                     first exits 0 once the daemon is ready; the daemon waits
                     for first's death (EOF on a pipe), then exits 3.

The root reaps `first` and waits for the daemon's end (EOF on a pipe the daemon
holds), so the daemon's exit happens before the root's: the daemon must be
reported with exit code 3 in both session modes.

Truth records:
  root:   {role: root, pid, ppid, start_ticks, expect_exit_code: 0}
          {role: root, pid, spawned: <first>, child_role: first}
          {role: root, pid, reaped: <first>, status}
  first:  {role: first, pid, ppid, start_ticks, expect_exit_code: 0}
          {role: first, pid, spawned: <daemon>, child_role: daemon}
  daemon: {role: daemon, pid, ppid (= first), start_ticks, expect_exit_code: 3}
          {role: daemon, pid, ppid_after, sid}   after first's death
"""

import os
import sys

import _truth


def daemon(first_alive_r, ready_w):
    _truth.me("daemon", expect_exit_code=3)
    creator = os.getppid()               # read before the creator may exit
    os.write(ready_w, b"r")
    _truth.wait_orphaned(first_alive_r, creator)   # `first` has exited: we are an orphan now
    _truth.emit({"role": "daemon", "pid": os.getpid(), "ppid_after": os.getppid(),
                 "sid": os.getsid(0)})
    os._exit(3)


def first(done_w):
    _truth.me("first", expect_exit_code=0)
    os.setsid()
    first_alive_r, first_alive_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(first_alive_w)
        os.close(ready_r)
        daemon(first_alive_r, ready_w)   # never returns; keeps done_w open until it exits
    os.close(done_w)
    os.read(ready_r, 1)
    _truth.spawned("first", pid, "daemon")
    os._exit(0)


def main():
    _truth.me("root", expect_exit_code=0)
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(done_r)
        first(done_w)
    os.close(done_w)
    _truth.spawned("root", pid, "first")
    _truth.reap("root", pid)
    _truth.wait_eof(done_r)              # the daemon has exited
    return 0


if __name__ == "__main__":
    sys.exit(main())
