"""The root dies by a signal while a member is still alive (scenario 18).

    root_killed.py {self-term|wait} RELEASE_FILE

    root -- fork --> survivor: waits until RELEASE_FILE exists, then exits 0
    root, once the survivor is ready:
        self-term: kills itself with SIGTERM (audit must exit 128+15)
        wait:      records {"ready": true} and waits for the test's SIGKILL

In the default session mode the survivor must be reported as left running.
The test creates RELEASE_FILE after the audit has returned.

Truth records:
  root:     {role: root, pid, ppid, start_ticks[, expect_signal: 15]}
            {role: root, pid, spawned: <survivor>, child_role: survivor}
            {role: root, pid, ready: true}
  survivor: {role: survivor, pid, ppid, start_ticks, expect_exit_code: 0}
            {role: survivor, pid, released: true}     ppid_racy from here on
"""

import os
import signal
import sys

import _truth


def main(mode, release_file):
    if mode == "self-term":
        _truth.me("root", expect_signal=int(signal.SIGTERM))
    else:
        _truth.me("root")
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            _truth.me("survivor", expect_exit_code=0)
            os.write(ready_w, b"r")
            _truth.wait_until(lambda: os.path.exists(release_file), timeout=600, interval=0.02)
            _truth.emit({"role": "survivor", "pid": os.getpid(), "released": True})
        finally:
            os._exit(0)
    os.close(ready_w)
    _truth.spawned("root", pid, "survivor")
    os.read(ready_r, 1)
    _truth.emit({"role": "root", "pid": os.getpid(), "ready": True})
    if mode == "self-term":
        os.kill(os.getpid(), signal.SIGTERM)
    while True:
        signal.pause()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("self-term", "wait"):
        sys.exit("usage: root_killed.py {self-term|wait} RELEASE_FILE")
    main(sys.argv[1], sys.argv[2])
