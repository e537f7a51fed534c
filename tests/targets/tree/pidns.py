"""A new pid namespace (scenario 13): members are tracked by their global pids.

    root -- subprocess --> unshare -fp --mount-proc <python> pidns.py inner FD
                           `-- fork --> ns-init (pid 1 inside): execs python,
                                        forks ns-child-10/11/12 (exit 10, 11, 12),
                                        reaps them, exits 0

Inside the namespace getpid() is the namespace-local pid and the mounted /proc
is the namespace's, so a process there cannot learn its global pid. Each one
therefore sends its record as a datagram on a socketpair that the root
created with SO_PASSCRED: the kernel attaches the sender's pid translated into
the root's namespace (the global one), and the root writes the truth record
with that pid. The contents still come from inside the process.

If unshare is missing or refuses (no CAP_SYS_ADMIN), the root writes
{"role": "root", "skipped": REASON} and exits 0; the test then skips.

Truth records (all written by the root):
  root:        {role: root, pid, ppid, start_ticks, expect_exit_code: 0}
               {role: root, pid, spawned: <unshare>, child_role: unshare}
               {role: root, pid, reaped: <unshare>, status}
  ns-init:     {role: ns-init, pid (global), nspid: 1, start_ticks, expect_exit_code: 0}
  ns-child-N:  {role: ns-child-N, pid, ppid (global ns-init), nspid, nsppid: 1,
                start_ticks, expect_exit_code: N}
  ns-init:     {role: ns-init, pid, reaped: <global ns-child pid>, status}  per child
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys

import _truth

UCRED = struct.Struct("iII")  # struct ucred: pid, uid, gid


def send(sock, record):
    sock.send(json.dumps(record).encode())


def inner(fd):
    sock = socket.socket(fileno=fd)
    send(sock, {"role": "ns-init", "nspid": os.getpid(), "nsppid": os.getppid(),
                "start_ticks": _truth.start_ticks(), "expect_exit_code": 0})
    children = []
    for code in (10, 11, 12):
        pid = os.fork()
        if pid == 0:
            try:
                send(sock, {"role": "ns-child-%d" % code, "nspid": os.getpid(),
                            "nsppid": os.getppid(), "start_ticks": _truth.start_ticks(),
                            "expect_exit_code": code})
            finally:
                os._exit(code)
        children.append(pid)
    for pid in children:
        _, status = os.waitpid(pid, 0)
        send(sock, {"role": "ns-init", "reaped_nspid": pid, "status": status})
    return 0


def receive_all(sock):
    """[(global pid, record)] for every datagram queued on sock."""
    received = []
    sock.setblocking(False)
    while True:
        try:
            data, ancdata, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(UCRED.size))
        except BlockingIOError:
            return received
        pid = None
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = UCRED.unpack(payload[:UCRED.size])[0]
        received.append((pid, json.loads(data.decode())))


def main():
    _truth.me("root", expect_exit_code=0)
    unshare = shutil.which("unshare")
    if unshare is None:
        _truth.emit({"role": "root", "pid": os.getpid(), "skipped": "unshare not found"})
        return 0
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    mine.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    argv = [unshare, "-fp", "--mount-proc", sys.executable, os.path.abspath(__file__),
            "inner", str(theirs.fileno())]
    with subprocess.Popen(argv, pass_fds=[theirs.fileno()], stderr=subprocess.PIPE) as proc:
        theirs.close()
        _truth.spawned("root", proc.pid, "unshare")
        stderr = proc.stderr.read()
        status = _truth.reap("root", proc.pid)
        proc.returncode = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    received = receive_all(mine)
    if not received:
        reason = stderr.decode(errors="replace").strip() or "unshare status %d" % status
        _truth.emit({"role": "root", "pid": os.getpid(), "skipped": reason})
        return 0
    global_of = {rec["nspid"]: pid for pid, rec in received if "nspid" in rec}
    for pid, rec in received:
        if "reaped_nspid" in rec:
            _truth.emit({"role": rec["role"], "pid": pid, "reaped": global_of[rec["reaped_nspid"]],
                         "status": rec["status"]})
            continue
        out = dict(rec, pid=pid)
        if rec["nsppid"] in global_of:          # a parent inside the namespace
            out["ppid"] = global_of[rec["nsppid"]]
        _truth.emit(out)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "inner":
        sys.exit(inner(int(sys.argv[2])))
    sys.exit(main())
