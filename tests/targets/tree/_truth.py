"""Ground-truth writer shared by the process-tree scenario targets.

Every process of a scenario describes itself, from inside, as one JSON line
appended to the file named by the environment variable ``PYPROF_TRUTH``. The
root integration tests (tests/root/test_audit_scenarios.py) compare these
lines with what ``pyprof-ebpf audit`` reported.

Rules this module enforces:

- one ``os.write`` per record on an ``O_APPEND`` descriptor, so records from
  concurrent processes never interleave (the kernel serialises appends to a
  regular file);
- when ``PYPROF_TRUTH`` is unset, nothing is written and the targets still run,
  so every scenario can be tried by hand;
- stdlib only, CPython 3.8+.

Common record keys (see the test module for how each is checked):

- ``role``: the process's name in the scenario;
- ``pid``, ``ppid``: ``os.getpid()`` and ``os.getppid()`` when the record was
  written; ``ppid_racy: true`` marks records written when the parent may
  already have exited (the ppid may then be a reaper, not the creator);
- ``start_ticks``: field 22 of ``/proc/self/stat`` (start time in clock
  ticks since boot): with ``pid`` it is the process's identity;
- ``spawned`` / ``child_role``: written by a creator about a child it created;
- ``reaped`` / ``status``: the raw ``waitpid`` status of a reaped child
  (``reaped_start_ticks`` when the test needs the identity);
- ``expect_exit_code`` / ``expect_signal``: how the writer knows it will end.
"""

import json
import os
import subprocess
import time

ENV = "PYPROF_TRUTH"


def stat_fields(pid="self"):
    """Fields of /proc/<pid>/stat after the comm, indexed so that [0] is field 3."""
    with open("/proc/%s/stat" % pid, "rb") as f:
        data = f.read()
    return data[data.rindex(b")") + 2:].split()


def start_ticks(pid="self"):
    """/proc/<pid>/stat field 22: the start time in clock ticks since boot."""
    return int(stat_fields(pid)[19])


def state(pid):
    """/proc/<pid>/stat field 3 (one letter), or None when the pid is gone."""
    try:
        return stat_fields(pid)[0].decode()
    except (OSError, ValueError, IndexError):
        return None


def emit(record):
    """Append one JSON record to $PYPROF_TRUTH with a single write()."""
    path = os.environ.get(ENV)
    if not path:
        return
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, line)
        if written != len(line):  # never seen for regular files; be loud if it is
            raise OSError("short write to %s: %d of %d" % (path, written, len(line)))
    finally:
        os.close(fd)


def me(role, ppid_racy=False, **extra):
    """Record describing the calling process: role, pid, ppid, start_ticks."""
    record = {
        "role": role,
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "start_ticks": start_ticks(),
    }
    if ppid_racy:
        record["ppid_racy"] = True
    record.update(extra)
    emit(record)
    return record


def spawned(role, child_pid, child_role):
    """Record, written by the creator, that it created child_pid."""
    emit({"role": role, "pid": os.getpid(), "spawned": child_pid, "child_role": child_role})


def reap(role, child_pid, child_start_ticks=None):
    """waitpid(child_pid) and record the raw status it returned; returns the status."""
    _, status = os.waitpid(child_pid, 0)
    record = {"role": role, "pid": os.getpid(), "reaped": child_pid, "status": status}
    if child_start_ticks is not None:
        record["reaped_start_ticks"] = child_start_ticks
    emit(record)
    return status


def spawn_and_reap(role, argv, child_role):
    """Start ``argv`` as ``role``'s child, record it, reap it with waitpid (the raw status
    goes to the truth file) and return that status."""
    with subprocess.Popen(argv) as proc:
        spawned(role, proc.pid, child_role)
        status = reap(role, proc.pid)
        # already reaped: tell Popen, so its __exit__ does not wait a second time
        proc.returncode = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    return status


def wait_until(predicate, timeout=30.0, interval=0.005):
    """Poll a readiness condition (a /proc state, a file) until true; raise on timeout."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("readiness condition not met in %.0f s" % timeout)
        time.sleep(interval)


def wait_eof(fd):
    """Block until every writer of the pipe fd has closed it (or exited)."""
    while os.read(fd, 4096):
        pass


def wait_orphaned(parent_alive_r, creator):
    """Return once the creator has exited and this process has been re-parented.

    EOF on the creator's pipe is not enough: do_exit() closes the files
    (exit_files) before exit_notify() hands the children to a reaper
    (forget_original_parent), so getppid() may still name the dying creator
    for a moment after the EOF (kernel/exit.c). ``creator`` is the pid read
    before the creator was allowed to exit.
    """
    wait_eof(parent_alive_r)
    wait_until(lambda: os.getppid() != creator, timeout=10.0, interval=0.001)
