"""Fork storm: N children, each exiting at once with status i % 200 (scenario 2).

    fork_storm.py [--count N] [--max-inflight K] [--no-identity] [--until-signal]
                  [--role NAME]

The parent forks N children with at most K alive or unreaped at a time
(default 20,000 and 64), reaps each with waitpid and keeps its raw status.
Unless --no-identity, it reads every child's start time from /proc/<pid>/stat
while the child is still unreaped (alive or a zombie, so the entry exists),
which makes (pid, start_ticks) a reuse-proof identity for each child.

--until-signal turns the storm into an unrelated background load: it forks
until SIGTERM or SIGINT (or N), then reaps what is in flight and reports.
--no-identity with a large --max-inflight is the fastest variant (about 2x).

Truth records (tests/targets/tree/_truth.py):
  {"role": ROLE, "pid", "ppid", "start_ticks", "expect_exit_code": 0,
   "planned": N}                                   written before the first fork
  {"role": ROLE, "pid", "storm": true, "forks": n, "status_counts": {status: n},
   "children_z": base64(zlib(JSON [[pid, start_ticks|null, raw_status], ...]))}
                                                   written after the last reap
"""

import argparse
import base64
import json
import os
import signal
import sys
import zlib

import _truth


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--max-inflight", type=int, default=64)
    parser.add_argument("--no-identity", action="store_true")
    parser.add_argument("--until-signal", action="store_true")
    parser.add_argument("--role", default="storm-parent")
    args = parser.parse_args()

    stop = []
    if args.until_signal:
        def request_stop(signum, frame):
            stop.append(signum)
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)

    _truth.me(args.role, expect_exit_code=0, planned=args.count)

    ticks = {}        # pid -> start ticks (or None), for children not yet reaped
    done = []         # [pid, start_ticks, raw status]
    counts = {}

    def reap_one():
        pid, status = os.waitpid(-1, 0)
        done.append([pid, ticks.pop(pid), status])
        counts[status] = counts.get(status, 0) + 1

    forked = 0
    for i in range(args.count):
        if stop:
            break
        pid = os.fork()
        if pid == 0:
            os._exit(i % 200)
        forked += 1
        ticks[pid] = None if args.no_identity else _truth.start_ticks(pid)
        while len(ticks) >= args.max_inflight:
            reap_one()
    while ticks:
        reap_one()

    children = json.dumps(done, separators=(",", ":")).encode()
    _truth.emit({
        "role": args.role,
        "pid": os.getpid(),
        "storm": True,
        "forks": forked,
        "status_counts": {str(k): v for k, v in sorted(counts.items())},
        "children_z": base64.b64encode(zlib.compress(children, 9)).decode(),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
