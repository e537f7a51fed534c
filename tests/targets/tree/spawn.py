"""vfork-style process creation (scenario 17): posix_spawn and subprocess.

    root -- os.posix_spawn --> /bin/sh -c "exit 3"
         -- subprocess     --> /bin/true
         -- subprocess     --> /bin/false

glibc's posix_spawn and CPython's _posixsubprocess create the child with
CLONE_VM|CLONE_VFORK (no CLONE_THREAD), so each one is a new process with a
fork, an exec and an exit record. Each child is reaped with waitpid by the root
(subprocess.Popen + waitpid is what subprocess.run() does, keeping the pid).

Truth records:
  root: {role: root, pid, ppid, start_ticks, expect_exit_code: 0}
        {role: root, pid, spawned: <child>, child_role: posix_spawn|true|false}
        {role: root, pid, reaped: <child>, status}             per child
        {role: root, pid, exec_of: <child>, filename}          per child
"""

import os
import subprocess
import sys

import _truth


def main():
    _truth.me("root", expect_exit_code=0)
    pid = os.posix_spawn("/bin/sh", ["sh", "-c", "exit 3"], dict(os.environ))
    _truth.spawned("root", pid, "posix_spawn")
    _truth.emit({"role": "root", "pid": os.getpid(), "exec_of": pid, "filename": "/bin/sh"})
    _truth.reap("root", pid)
    for role, path in (("true", "/bin/true"), ("false", "/bin/false")):
        with subprocess.Popen([path]) as proc:
            _truth.spawned("root", proc.pid, role)
            _truth.emit({"role": "root", "pid": os.getpid(), "exec_of": proc.pid, "filename": path})
            status = _truth.reap("root", proc.pid)
            proc.returncode = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
