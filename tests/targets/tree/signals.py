"""Death by signal (scenario 9): children killed by SIGTERM, SIGKILL and SIGSEGV.

    signals.py [--core-dir DIR]

    root -- fork --> sigterm   blocks; the root sends SIGTERM
         -- fork --> sigkill   blocks; the root sends SIGKILL
         -- fork --> sigsegv   dereferences NULL (ctypes.string_at(0))
         -- fork --> sigabrt   only with --core-dir: chdir(DIR), RLIMIT_CORE
                               unlimited, os.abort(), so the kernel may dump core

The first three set RLIMIT_CORE to 0, so none of them dumps core unless
core_pattern pipes to a helper. The tests compare with the status the root's
waitpid saw, core-dump bit included, not with an assumption about it.

Truth records:
  root:     {role: root, pid, ppid, start_ticks, expect_exit_code: 0}
            {role: root, pid, spawned: <child>, child_role: <role>}     per child
            {role: root, pid, reaped: <child>, status}                  per child
  children: {role: sigterm|sigkill|sigsegv|sigabrt, pid, ppid, start_ticks,
             expect_signal: 15|9|11|6}
"""

import argparse
import ctypes
import os
import resource
import signal
import sys

import _truth


def victim(role, sig, ready_w, core_dir):
    if core_dir:
        os.chdir(core_dir)
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    else:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _truth.me(role, expect_signal=int(sig))
    os.write(ready_w, b"r")
    if sig == signal.SIGSEGV:
        ctypes.string_at(0)
    elif sig == signal.SIGABRT:
        os.abort()
    while True:              # wait for the root's signal
        signal.pause()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--core-dir")
    args = parser.parse_args()
    _truth.me("root", expect_exit_code=0)
    plan = [("sigterm", signal.SIGTERM, True, None),
            ("sigkill", signal.SIGKILL, True, None),
            ("sigsegv", signal.SIGSEGV, False, None)]
    if args.core_dir:
        plan.append(("sigabrt", signal.SIGABRT, False, args.core_dir))
    for role, sig, root_sends, core_dir in plan:
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            try:
                victim(role, sig, ready_w, core_dir)
            finally:
                os._exit(99)     # reached only if the signal did not kill us
        os.close(ready_w)
        _truth.spawned("root", pid, role)
        os.read(ready_r, 1)
        os.close(ready_r)
        if root_sends:
            os.kill(pid, sig)
        _truth.reap("root", pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
