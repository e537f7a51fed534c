"""Support library for the root `pyprof-ebpf audit` scenario tests.

Responsibilities:
- run ``python -m pyprof_ebpf audit --format jsonl -o FILE ... -- CMD`` on a
  scenario target (tests/targets/tree/, pyprof_ebpf/demo/seed.py) with
  ``PYPROF_TRUTH`` set, and parse what it wrote (`AuditRun`);
- read the ground truth the target's processes wrote about themselves (`Truth`,
  format in tests/targets/tree/_truth.py);
- check the audit output against the spec (`check_invariants`) and against the
  truth (`check_truth`), with assertion messages that dump the records involved;
- stop every process a test started (`kill_truth_processes`), since orphans
  re-parented to PID 1 outlive the audit.

It does not load BPF or import pyprof_ebpf: it only runs the CLI. Identities
are ``(pid, start)``, ``start`` being the audit's start time in ns since boot;
the truth gives ``start_ticks`` (/proc/<pid>/stat field 22) and the two are
compared at tick precision (``start * CLK_TCK // 1e9 == start_ticks``).
"""

import base64
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TARGETS = REPO / "tests" / "targets" / "tree"
SEED = REPO / "pyprof_ebpf" / "demo" / "seed.py"
CLK_TCK = os.sysconf("SC_CLK_TCK")

requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: audit loads BPF programs")

EVENT_KEYS = {
    "fork": ("ppid", "parent_start", "tid"),
    "exec": ("filename", "argv", "argv_truncated", "uid"),
    "exit": ("exit_code", "signal", "core_dumped", "duration"),
}
SUMMARY_KEYS = ("processes", "forks", "execs", "exits", "lost_events", "left_running")


def ticks(start_ns):
    """The audit's start (ns since boot) at /proc/<pid>/stat precision (clock ticks)."""
    return int(start_ns) * CLK_TCK // 1000000000


def target(name):
    return str(TARGETS / name)


def dump(records, limit=40):
    """Records as JSON lines for an assertion message (at most `limit` of them)."""
    records = list(records)
    lines = [json.dumps(r, sort_keys=True) for r in records[:limit]]
    if len(records) > limit:
        lines.append("... %d more" % (len(records) - limit))
    return "\n".join(lines)


def status_fields(status):
    """The exit-record fields a raw waitpid status implies."""
    if os.WIFEXITED(status):
        return {"exit_code": os.WEXITSTATUS(status), "signal": None, "core_dumped": False}
    if os.WIFSIGNALED(status):
        return {"exit_code": None, "signal": os.WTERMSIG(status),
                "core_dumped": bool(os.WCOREDUMP(status))}
    raise ValueError("not a termination status: %#x" % status)


def exit_fields(record):
    return {k: record.get(k) for k in ("exit_code", "signal", "core_dumped")}


# --------------------------------------------------------------------------- truth


class Truth:
    """The JSON lines a scenario's processes wrote to $PYPROF_TRUTH."""

    def __init__(self, path):
        self.path = Path(path)
        self.records = []
        if self.path.exists():
            with open(self.path) as f:
                self.records = [json.loads(line) for line in f if line.strip()]

    @property
    def selves(self):
        """Records in which a process describes itself (they carry start_ticks)."""
        return [r for r in self.records if "start_ticks" in r]

    def role(self, role):
        found = [r for r in self.selves if r["role"] == role]
        assert len(found) == 1, "truth: expected one %r process, got:\n%s" % (role, dump(self.records))
        return found[0]

    def all(self, key, role=None):
        """Records carrying `key` (e.g. "spawned", "reaped"), optionally of one role."""
        return [r for r in self.records if key in r and (role is None or r["role"] == role)]

    def one(self, key, role=None):
        found = self.all(key, role)
        assert len(found) == 1, "truth: expected one record with %r, got:\n%s" % (key, dump(self.records))
        return found[0]

    def storm_children(self, storm_record):
        """[[pid, start_ticks or None, raw status], ...] of a fork_storm.py record."""
        return json.loads(zlib.decompress(base64.b64decode(storm_record["children_z"])))

    def __str__(self):
        return "truth %s:\n%s" % (self.path, dump(self.records))


def wait_for_truth(path, predicate, timeout=60.0, what="truth record", proc=None):
    """Poll the truth file until a record satisfies predicate; return that record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in Truth(path).records:
            if predicate(record):
                return record
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError("no %s within %.0f s\n%s" % (what, timeout, Truth(path)))


def proc_start_ticks(pid):
    """(state, start_ticks) of a live or zombie pid, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[19])


def kill_identity(pid, start_ticks, sig=signal.SIGKILL):
    """Send sig to pid only if it still is the process that started at start_ticks."""
    now = proc_start_ticks(pid)
    if now is None or now[1] != start_ticks or now[0] in ("Z", "X"):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def kill_truth_processes(*paths):
    """SIGKILL every process that described itself in these truth files and still runs."""
    for path in paths:
        for record in Truth(path).selves:
            if os.getpid() != record["pid"]:
                kill_identity(record["pid"], record["start_ticks"])


# --------------------------------------------------------------------------- audit output


class Proc:
    """Everything the audit reported about one identity (pid, start)."""

    def __init__(self, pid, start):
        self.pid, self.start = pid, start
        self.forks, self.execs, self.exits = [], [], []
        self.index = {}          # id(record) -> line number, for ordering checks

    @property
    def fork(self):
        assert len(self.forks) == 1, "identity %s: expected one fork record\n%s" % (
            self.key, dump(self.records))
        return self.forks[0]

    @property
    def exit(self):
        """The exit record, or None if the process was not seen to exit."""
        assert len(self.exits) <= 1, "identity %s: several exit records\n%s" % (
            self.key, dump(self.records))
        return self.exits[0] if self.exits else None

    @property
    def key(self):
        return (self.pid, self.start)

    @property
    def records(self):
        return sorted(self.forks + self.execs + self.exits, key=lambda r: self.index[id(r)])

    def line(self, record):
        return self.index[id(record)]


class AuditRun:
    """A finished audit: its exit status, stderr and parsed JSON Lines output."""

    def __init__(self, argv, audit_pid, returncode, stdout, stderr, out_path, truth_path, mode):
        self.argv, self.audit_pid, self.returncode = argv, audit_pid, returncode
        self.stdout, self.stderr, self.mode = stdout, stderr, mode
        self.out_path = Path(out_path)
        self.truth = Truth(truth_path) if truth_path else None
        self.records = []
        if self.out_path.exists():
            with open(self.out_path) as f:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            self.records.append(json.loads(line))
                        except ValueError as err:
                            raise AssertionError("%s line %d is not JSON: %r (%s)"
                                                 % (self.out_path, n, line[:200], err)) from err
        self.procs = {}
        self.by_pid = defaultdict(list)
        self.by_tick = defaultdict(list)
        summaries = [r for r in self.records if r.get("event") == "summary"]
        self.summary = summaries[-1] if summaries else None
        for n, record in enumerate(self.records):
            if record.get("event") not in EVENT_KEYS:
                continue
            key = (record["pid"], record["start"])
            proc = self.procs.get(key)
            if proc is None:
                proc = self.procs[key] = Proc(*key)
                self.by_pid[key[0]].append(proc)
                self.by_tick[(key[0], ticks(key[1]))].append(proc)
            getattr(proc, record["event"] + "s").append(record)
            proc.index[id(record)] = n

    # -- lookups -----------------------------------------------------------------

    def context(self):
        """Tail of stderr and the summary, for assertion messages."""
        return "audit %s\nexit status %s\nstderr (tail):\n%s\nsummary: %s" % (
            " ".join(self.argv), self.returncode, "\n".join(self.stderr.splitlines()[-15:]),
            json.dumps(self.summary))

    def find(self, pid, start_ticks=None):
        """The one identity with this pid (and start tick); fails with the evidence."""
        candidates = self.by_pid.get(pid, []) if start_ticks is None else self.by_tick.get((pid, start_ticks), [])
        assert len(candidates) == 1, (
            "expected exactly one audited process with pid %d%s, found %d\nrecords with that pid:\n%s\n%s"
            % (pid, "" if start_ticks is None else " and start tick %d" % start_ticks, len(candidates),
               dump(r for p in self.by_pid.get(pid, []) for r in p.records), self.context()))
        return candidates[0]

    def of(self, truth_record):
        """The audited identity of a process's own truth record (pid + start_ticks)."""
        return self.find(truth_record["pid"], truth_record["start_ticks"])

    @property
    def launch(self):
        launched = [p for p in self.procs.values() if p.forks and p.forks[0].get("source") == "launch"]
        assert len(launched) == 1, "expected one fork record with source=launch, got %d\n%s" % (
            len(launched), dump(r for p in launched for r in p.forks))
        return launched[0]

    def parent(self, proc):
        fork = proc.fork
        return self.procs.get((fork["ppid"], fork["parent_start"]))

    def chain(self, proc):
        """[proc, parent, ..., root]: the fork-record ancestry up to the launched root."""
        chain = [proc]
        while chain[-1].fork.get("source") != "launch":
            parent = self.parent(chain[-1])
            assert parent is not None and len(chain) < 1000, (
                "ancestry of %s is broken at %s: its parent (ppid, parent_start) is not an audited "
                "process\nchain so far:\n%s" % (proc.key, chain[-1].key, dump(p.fork for p in chain)))
            chain.append(parent)
        return chain

    def children(self, proc):
        return [p for p in self.procs.values()
                if p.forks and p.forks[0].get("ppid") == proc.pid and p.forks[0].get("parent_start") == proc.start]

    def left_running(self):
        return {(e["pid"], e["start"]) for e in self.summary["left_running"]}

    def count(self, event):
        return sum(1 for r in self.records if r.get("event") == event)


class AuditSession:
    """A running ``pyprof_ebpf audit``; `wait()` returns the `AuditRun`."""

    def __init__(self, tmp_path, cmd, mode_flags=(), audit_flags=(), truth_name="truth.jsonl",
                 name="audit", target_cmd=True):
        self.out_path = Path(tmp_path) / ("%s.jsonl" % name)
        self.truth_path = Path(tmp_path) / truth_name
        self.mode = "follow-orphans" if "--follow-orphans" in mode_flags else "root-exit"
        self.argv = [sys.executable, "-m", "pyprof_ebpf", "audit", "--format", "jsonl",
                     "-o", str(self.out_path), *audit_flags, *mode_flags]
        if target_cmd:
            self.argv += ["--", *cmd]
        else:
            self.argv += list(cmd)
        env = dict(os.environ, PYPROF_TRUTH=str(self.truth_path))
        # Files, not pipes: the target's processes inherit audit's stdout/stderr, and a
        # member left running would hold a pipe open and block communicate() forever.
        self.stdout_path = Path(tmp_path) / ("%s.stdout" % name)
        self.stderr_path = Path(tmp_path) / ("%s.stderr" % name)
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.popen = subprocess.Popen(self.argv, cwd=str(REPO), env=env, stdin=subprocess.DEVNULL,
                                          stdout=out, stderr=err)

    def _output(self):
        return self.stdout_path.read_text(errors="replace"), self.stderr_path.read_text(errors="replace")

    def wait(self, timeout):
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError("audit did not end within %.0f s: %s\nstderr:\n%s\n%s" % (
                timeout, " ".join(self.argv), self._output()[1][-3000:], Truth(self.truth_path))) from None
        stdout, stderr = self._output()
        return AuditRun(self.argv, self.popen.pid, self.popen.returncode, stdout, stderr,
                        self.out_path, self.truth_path, self.mode)

    def stop(self):
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


class AuditRunner:
    """Starts audit sessions for one test and, at teardown, kills what they left behind.

    Every process that described itself in a truth file of this test and still
    runs is SIGKILLed (checked by start tick, so a reused pid is never hit), and
    every audit still running is killed. Extra cleanups (e.g. an unrelated
    storm) can be registered with `defer`.
    """

    def __init__(self, tmp_path):
        self.tmp_path = Path(tmp_path)
        self.sessions = []
        self.deferred = []

    def start(self, cmd, mode_flags=(), audit_flags=(), name=None, **kwargs):
        name = name or "audit%d" % len(self.sessions)
        session = AuditSession(self.tmp_path, cmd, mode_flags, audit_flags, name=name,
                               truth_name="%s.truth.jsonl" % name, **kwargs)
        self.sessions.append(session)
        return session

    def run(self, cmd, mode_flags=(), audit_flags=(), timeout=180, **kwargs):
        """Run audit on cmd to completion and return the AuditRun."""
        return self.start(cmd, mode_flags, audit_flags, **kwargs).wait(timeout)

    def defer(self, fn):
        self.deferred.append(fn)

    def cleanup(self):
        for fn in reversed(self.deferred):
            fn()
        for session in self.sessions:
            session.stop()
        kill_truth_processes(*(s.truth_path for s in self.sessions))


@pytest.fixture
def audit(tmp_path):
    """An AuditRunner whose leftovers are killed when the test ends (import it into the test module)."""
    runner = AuditRunner(tmp_path)
    try:
        yield runner
    finally:
        runner.cleanup()


# --------------------------------------------------------------------------- checks


def check_invariants(run, allow_loss=False):
    """What must hold for any complete audit output, whatever the scenario."""
    ctx = run.context()
    assert run.records, "audit wrote no records to %s\n%s" % (run.out_path, ctx)
    assert run.records[-1].get("event") == "summary", (
        "the last record must be the summary; last records:\n%s\n%s" % (dump(run.records[-5:]), ctx))
    assert run.count("summary") == 1, "more than one summary record\n%s" % ctx
    summary = run.summary
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    assert not missing, "summary lacks %s: %s" % (missing, json.dumps(summary))
    if not allow_loss:
        assert summary["lost_events"] == 0, "events were lost\n%s" % ctx

    bad = []
    for record in run.records:
        if record.get("event") == "summary":
            continue
        required = ("event", "ts", "pid", "start", "comm") + EVENT_KEYS.get(record.get("event"), ("?",))
        if any(k not in record for k in required):
            bad.append(record)
    assert not bad, "records lacking required keys:\n%s" % dump(bad)
    if allow_loss:
        return

    launch = run.launch
    assert launch.fork["ppid"] == run.audit_pid, (
        "the launch fork record must name the audit process (%d) as parent\n%s"
        % (run.audit_pid, dump(launch.records)))
    assert not [p for p in run.procs.values() if p.forks and p.forks[0].get("source") == "bootstrap"], (
        "bootstrap records in a launch session\n%s" % ctx)

    problems = []
    for proc in run.procs.values():
        recs = proc.records
        if len(proc.forks) != 1 or recs[0] is not proc.forks[0]:
            problems.append(("must start with exactly one fork record", proc))
            continue
        if len(proc.exits) > 1 or (proc.exits and recs[-1] is not proc.exits[0]):
            problems.append(("at most one exit record, and nothing after it", proc))
            continue
        if proc is not launch:
            parent = run.parent(proc)
            if parent is None:
                problems.append(("parent (ppid, parent_start) is not an audited process", proc))
            elif parent.line(parent.fork) > proc.line(proc.fork):
                problems.append(("forked before its parent's fork record", proc))
            elif parent.exit is not None and parent.line(parent.exit) < proc.line(proc.fork):
                problems.append(("forked after its parent's exit record", proc))
        for ex in proc.exits:
            if (ex["exit_code"] is None) == (ex["signal"] is None) or not isinstance(ex["core_dumped"], bool):
                problems.append(("exit record needs exactly one of exit_code/signal", proc))
            elif ex["duration"] < 0 or ex["ts"] < proc.fork["ts"]:
                problems.append(("exit before fork (ts/duration)", proc))
        for ex in proc.execs:
            if not isinstance(ex["argv"], list) or not isinstance(ex["argv_truncated"], bool):
                problems.append(("exec record: argv must be a list, argv_truncated a bool", proc))
    assert not problems, "per-process invariants violated:\n" + "\n".join(
        "%s %s:\n%s" % (why, proc.key, dump(proc.records)) for why, proc in problems[:20]) + "\n" + ctx

    # summary counts are counts of the records above (the launch fork record included)
    counts = {"processes": len(run.procs), "forks": run.count("fork"),
              "execs": run.count("exec"), "exits": run.count("exit")}
    wrong = {k: (summary[k], v) for k, v in counts.items() if summary[k] != v}
    assert not wrong, "summary (reported, counted) disagrees with the records: %s\n%s" % (wrong, ctx)

    alive = {p.key for p in run.procs.values() if not p.exits}
    left = run.left_running()
    assert left == alive, (
        "left_running must be exactly the processes without an exit record\n"
        "left_running but exited or unknown: %s\nno exit but not in left_running: %s\n%s"
        % (sorted(left - alive), sorted(alive - left), ctx))
    assert launch.exit is not None, "the root's exit record is missing\n%s" % dump(launch.records)
    if run.mode == "follow-orphans":
        assert not left, "follow-orphans ended with processes left running\n%s" % ctx


def check_exit(run, proc, expected, why):
    """Assert an identity's exit record carries the fields of expected (a status_fields dict)."""
    ex = proc.exit
    assert ex is not None, "%s: no exit record for %s\n%s\n%s" % (why, proc.key, dump(proc.records), run.context())
    assert exit_fields(ex) == expected, "%s: exit of %s should be %s\n%s" % (
        why, proc.key, expected, dump(proc.records))


def check_truth(run, require_exit=True, skip_roles=()):
    """Everything the truth file says must be in the audit output.

    - every process that described itself is audited under (pid, start tick),
      its ancestry reaches the launched root, and its fork record names the
      ppid it saw (unless its parent may already have died: ppid_racy);
    - every "spawned" claim matches a fork record of that creator;
    - every "reaped" status equals the child's exit record;
    - every expect_exit_code/expect_signal matches, and (require_exit) every
      process has an exit record;
    - every child listed by a fork storm is audited with its exact status.
    Returns {role: Proc} for the processes that described themselves.
    """
    truth = run.truth
    procs = {}
    for rec in truth.selves:
        if rec["role"] in skip_roles:
            continue
        proc = run.of(rec)
        procs.setdefault(rec["role"], proc)
        run.chain(proc)
        if "ppid" in rec and not rec.get("ppid_racy"):
            assert proc.fork["ppid"] == rec["ppid"], "%s: fork record ppid != getppid() %d\n%s" % (
                rec["role"], rec["ppid"], dump(proc.records))
        if "expect_exit_code" in rec or "expect_signal" in rec:
            if proc.exit is None and not require_exit:
                continue
            code, sig = rec.get("expect_exit_code"), rec.get("expect_signal")
            ex = proc.exit
            assert ex is not None and ex["exit_code"] == code and ex["signal"] == sig, (
                "%s %s should end with exit_code=%s signal=%s\n%s\n%s"
                % (rec["role"], proc.key, code, sig, dump(proc.records), run.context()))
        elif require_exit:
            assert proc.exit is not None, "%s %s has no exit record\n%s" % (rec["role"], proc.key, dump(proc.records))

    # creators: "spawned" claims, counted per (creator identity, child pid)
    claims = defaultdict(int)
    for rec in truth.all("spawned"):
        claims[(rec["pid"], rec["spawned"])] += 1
    for (creator_pid, child_pid), n in claims.items():
        creator = _self_identity(run, creator_pid)
        forks = [p for p in run.by_pid.get(child_pid, [])
                 if p.forks and p.fork["ppid"] == creator.pid and p.fork["parent_start"] == creator.start]
        assert len(forks) == n, (
            "pid %d claims to have created pid %d %d time(s); the audit has %d such fork record(s)\n%s"
            % (creator_pid, child_pid, n, len(forks),
               dump(r for p in run.by_pid.get(child_pid, []) for r in p.records)))

    # parents: raw waitpid statuses
    for rec in truth.all("reaped"):
        if "reaped_start_ticks" in rec:
            child = run.find(rec["reaped"], rec["reaped_start_ticks"])
        else:
            child = run.find(rec["reaped"])
        check_exit(run, child, status_fields(rec["status"]),
                   "%s reaped pid %d with status %#x" % (rec["role"], rec["reaped"], rec["status"]))

    for rec in truth.all("storm"):
        check_storm(run, rec)
    return procs


def _self_identity(run, pid):
    recs = [r for r in run.truth.selves if r["pid"] == pid]
    assert len(recs) == 1, "truth: expected one self record for pid %d\n%s" % (pid, run.truth)
    return run.of(recs[0])


def check_storm(run, storm_record):
    """Every child of a fork_storm.py parent: audited, parent right, exact status."""
    parent = _self_identity(run, storm_record["pid"])
    children = run.truth.storm_children(storm_record)
    assert len(children) == storm_record["forks"]
    failures = []
    for pid, start_ticks, status in children:
        found = run.by_tick.get((pid, start_ticks), []) if start_ticks is not None else run.by_pid.get(pid, [])
        found = [p for p in found if p.forks and p.fork["ppid"] == parent.pid
                 and p.fork["parent_start"] == parent.start]
        if len(found) != 1:
            failures.append(("%d audited matches" % len(found), pid, start_ticks, status, found))
        elif found[0].exit is None or exit_fields(found[0].exit) != status_fields(status):
            failures.append(("wrong or missing exit", pid, start_ticks, status, found))
    assert not failures, "%d of %d storm children do not match the truth; first ones:\n%s\n%s" % (
        len(failures), len(children),
        "\n".join("pid %d start_ticks %s status %#x: %s\n%s" % (pid, st, status, why,
                                                               dump(r for p in found for r in p.records))
                  for why, pid, st, status, found in failures[:10]),
        run.context())
    forked = [p for p in run.children(parent)]
    assert len(forked) == len(children), (
        "the storm parent forked %d children; the audit has %d fork records from it\n%s"
        % (len(children), len(forked), run.context()))
