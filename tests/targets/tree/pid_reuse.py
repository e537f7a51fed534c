"""PID reuse (scenario 14): several processes with one pid must stay distinct.

    pid_reuse.py [--rounds R]      default R = 4

The root forks a child, reaps it, and forks again until R children have had
the same pid P, each started in a later clock tick than the previous one (so
that even a tick-precision start time tells them apart) and each exiting with
its own code (round + 1), so that two merged records cannot both match.

How P is reused:
- "ns_last_pid" (root in the pid namespace, the normal case): write P - 1 to
  /proc/sys/kernel/ns_last_pid before each fork;
- "wraparound" (fallback when ns_last_pid is not writable, or --method
  wraparound): fork until the pid counter wraps round to P again (about
  pid_max forks).
A child that did not get P (another process raced us for it, or the counter
has not wrapped yet) exits 0 at once and writes nothing; the root counts these
children in "missed_forks" and tries again. They are members all the same.

Truth records:
  root:  {role: root, pid, ppid, start_ticks, expect_exit_code: 0}
         {role: root, pid, spawned: P, child_role: reuse}                     per round
         {role: root, pid, reaped: P, reaped_start_ticks, status}             per round
         {role: root, pid, reused_pid: P, method, rounds: R, attempts,
          missed_forks}                                                       at the end
  reuse: {role: reuse, pid: P, ppid, start_ticks, expect_exit_code: round + 1, round}
"""

import argparse
import os
import sys
import time

import _truth

NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def boot_ticks():
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) * CLK_TCK // 1000000000


def fork_child(target_pid, round_no):
    """Fork a child that exits round_no + 1 if it got target_pid (or any pid when None).

    Returns (pid, start_ticks), or (pid, None) for a wraparound child that missed
    target_pid: those exit 0 silently and are only counted.
    """
    pid = os.fork()
    if pid == 0:
        try:
            if target_pid is None or os.getpid() == target_pid:
                _truth.me("reuse", expect_exit_code=round_no + 1, round=round_no)
                os._exit(round_no + 1)
        finally:
            os._exit(0)
    if target_pid is not None and pid != target_pid:
        os.waitpid(pid, 0)
        return pid, None
    _truth.spawned("root", pid, "reuse")
    start = _truth.start_ticks(pid)           # unreaped, so /proc/<pid> still exists
    _truth.reap("root", pid, child_start_ticks=start)
    return pid, start


def set_next_pid(pid):
    """Make `pid` the next pid the kernel hands out (if free); False if not allowed."""
    try:
        with open(NS_LAST_PID, "w") as f:
            f.write(str(pid - 1))
        return True
    except OSError:
        return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--method", choices=("auto", "ns_last_pid", "wraparound"), default="auto")
    args = parser.parse_args()
    _truth.me("root", expect_exit_code=0)

    target, last_start = fork_child(None, 0)
    method = args.method
    if method == "auto":
        method = "ns_last_pid" if set_next_pid(target) else "wraparound"
    rounds, attempts, missed = 1, 1, 0
    while rounds < args.rounds:
        if attempts > 100000:
            raise RuntimeError("pid %d did not come back in %d forks" % (target, attempts))
        _truth.wait_until(lambda: boot_ticks() > last_start, interval=0.001)
        if method == "ns_last_pid" and not set_next_pid(target):
            raise RuntimeError("cannot write %s" % NS_LAST_PID)
        attempts += 1
        pid, start = fork_child(target, rounds)
        if start is None:
            missed += 1                         # someone else took the pid; try again
            continue
        rounds += 1
        last_start = start
    _truth.emit({"role": "root", "pid": os.getpid(), "reused_pid": target, "method": method,
                 "rounds": rounds, "attempts": attempts, "missed_forks": missed})
    return 0


if __name__ == "__main__":
    sys.exit(main())
