"""`pyprof-ebpf audit` against process-tree scenarios, judged by their own ground truth.

Each test launches a target from tests/targets/tree/ (or the bundled demo,
pyprof_ebpf/demo/seed.py) under ``python -m pyprof_ebpf audit --format jsonl``.
Every process of the target writes what it knows about itself and its
children (pid, start tick, raw waitpid statuses, how it will end) to the file
named by PYPROF_TRUTH; the tests then require the audit's JSON Lines to agree
exactly: membership, fork ancestry, exit statuses, identity under pid reuse,
summary counts, no lost events, and audit's own exit status equal to the
root's. The spec of the output is in helpers_tree.py (check_invariants).

Runtime: about 2 minutes for the scenario tests, plus the 20,000-fork storm
and the pid-wraparound test (each well under a minute on the 2-CPU test VM).
"""

import os
import shutil
import signal
import subprocess
import sys

import pytest

try:
    from . import helpers_tree as ht
except ImportError:          # tests/root is not a package: pytest put it on sys.path
    import helpers_tree as ht

audit = ht.audit  # the fixture lives in helpers_tree (conftest.py belongs to the suite)

pytestmark = [pytest.mark.root, ht.requires_root]

PY = sys.executable
SEED = str(ht.SEED)


def exited(code):
    return {"exit_code": code, "signal": None, "core_dumped": False}


# --------------------------------------------------------------------------- seed case


def test_seed_root_exit_reports_running_grandchild(audit):
    # GIVEN the seed tree: root -> child -> grandchild, the child returning at once
    # WHEN it is audited in the default session mode
    run = audit.run([PY, SEED])
    # THEN the session ends with the root, and the orphaned grandchild is left running
    ht.check_invariants(run)
    roles = ht.check_truth(run, require_exit=False)
    root, child, grandchild = roles["root"], roles["child"], roles["grandchild"]
    assert run.returncode == 0, run.context()
    ht.check_exit(run, root, exited(0), "root")
    ht.check_exit(run, child, exited(0), "child")
    assert grandchild.exit is None, "root-exit mode must not wait for the grandchild\n%s" % ht.dump(
        grandchild.records)
    assert run.left_running() == {grandchild.key}, run.context()
    assert [p.key for p in run.chain(grandchild)] == [grandchild.key, child.key, root.key]
    # the launched root's exec is the command audit was given, and each python child execs once
    assert root.execs and root.execs[0]["argv"] == [PY, SEED], ht.dump(root.records)
    assert [e["argv"][-1] for e in child.execs] == ["popen"], ht.dump(child.records)
    assert [e["argv"][-1] for e in grandchild.execs] == ["count"], ht.dump(grandchild.records)


def test_seed_follow_orphans_waits_for_grandchild(audit):
    # GIVEN the seed tree
    # WHEN it is audited with --follow-orphans
    run = audit.run([PY, SEED], mode_flags=["--follow-orphans"])
    # THEN the session lasts until the orphaned grandchild exits 0; nothing is left running
    ht.check_invariants(run)
    roles = ht.check_truth(run)
    root, grandchild = roles["root"], roles["grandchild"]
    assert run.returncode == 0, run.context()
    ht.check_exit(run, grandchild, exited(0), "grandchild")
    assert run.summary["left_running"] == [], run.context()
    assert grandchild.line(grandchild.exit) > root.line(root.exit), (
        "the grandchild should outlive the root\n%s" % ht.dump(root.records + grandchild.records))


# --------------------------------------------------------------------------- small scenarios


def _double_fork(run, roles, truth):
    first, daemon = roles["first"], roles["daemon"]
    assert run.parent(daemon) is first and run.parent(first) is roles["root"]
    assert truth.one("ppid_after", "daemon")["ppid_after"] != first.pid   # it was re-parented
    assert not first.execs and not daemon.execs, "no exec in a pure fork tree"


def _exec_chain(run, roles, truth):
    tail = roles["tail"]
    assert len(tail.execs) == 2, "sh, then python, in one process\n%s" % ht.dump(tail.records)
    sh, python = tail.execs
    assert sh["argv"][:2] == ["sh", "-c"], ht.dump(tail.records)
    assert python["argv"][-1] == "tail" and python["argv"][0] == PY, ht.dump(tail.records)


def _thread_exec(run, roles, truth):
    child = roles["child"]
    assert [e["argv"] for e in child.execs][-1] == ["sh", "-c", "exit 6"], ht.dump(child.records)
    assert os.path.realpath(child.execs[-1]["filename"]) == os.path.realpath("/bin/sh")
    assert len(child.exits) == 1, "the old leader's death in de_thread is not a process exit"


def _one_exit(role):
    def check(run, roles, truth):
        assert len(roles[role].exits) == 1, ht.dump(roles[role].records)
    return check


def _signals(run, roles, truth):
    for role, sig in (("sigterm", 15), ("sigkill", 9), ("sigsegv", 11), ("sigabrt", 6)):
        assert roles[role].exit["signal"] == sig, ht.dump(roles[role].records)


def _zombie(run, roles, truth):
    # exits are reported when they happen, not when PID 1 gets round to reaping
    for early, late in (("grandchild", "child"), ("unreaped", "root")):
        e, l = roles[early], roles[late]
        assert e.line(e.exit) < l.line(l.exit) and e.exit["ts"] <= l.exit["ts"], (
            "%s exited before %s\n%s" % (early, late, ht.dump(e.records + l.records)))
    assert run.returncode == 3, run.context()


def _subreaper(run, roles, truth):
    orphan = roles["orphan"]
    assert run.parent(orphan) is roles["middle"], "the fork record keeps the creator"
    assert truth.one("ppid_after", "orphan")["ppid_after"] == roles["root"].pid


def _thread_fork(run, roles, truth):
    child = roles["thread-child"]
    fork_tid = truth.one("fork_tid")["fork_tid"]
    assert child.fork["tid"] == fork_tid and child.fork["ppid"] == roles["root"].pid, (
        "creator thread %d of %d\n%s" % (fork_tid, roles["root"].pid, ht.dump(child.records)))


def _nonpython_intermediate(run, roles, truth):
    leaf = roles["leaf"]
    sh = run.parent(leaf)
    assert run.parent(sh) is roles["root"], ht.dump(sh.records)
    assert [e["argv"][:2] for e in sh.execs] == [["sh", "-c"]], ht.dump(sh.records)
    assert leaf.execs and leaf.execs[-1]["argv"][-1] == "leaf", ht.dump(leaf.records)


def _spawn(run, roles, truth):
    for rec in truth.all("exec_of"):
        proc = run.find(rec["exec_of"])
        assert [os.path.realpath(e["filename"]) for e in proc.execs] == [os.path.realpath(rec["filename"])], (
            ht.dump(proc.records))


def _pidns(run, roles, truth):
    unshare = run.find(truth.one("spawned", "root")["spawned"])
    init = roles["ns-init"]
    assert run.parent(init) is unshare, "ns-init is forked by unshare\n%s" % ht.dump(init.records)
    assert init.execs and init.execs[-1]["argv"][-2] == "inner", ht.dump(init.records)
    for code in (10, 11, 12):
        assert run.parent(roles["ns-child-%d" % code]) is init


SCENARIOS = [
    # (id, target argv after the script, extra check)
    ("double_fork", [], _double_fork),
    ("exec_chain", [], _exec_chain),
    ("thread_exec", [], _thread_exec),
    ("leader_exits_first", [], _one_exit("child")),
    ("thread_exit_group", [], _one_exit("child")),
    ("signals", ["--core-dir", "{tmp}"], _signals),
    ("zombie", [], _zombie),
    ("subreaper", [], _subreaper),
    ("thread_fork", [], _thread_fork),
    ("nonpython_intermediate", [], _nonpython_intermediate),
    ("spawn", [], _spawn),
    ("pidns", [], _pidns),
]


@pytest.mark.parametrize("name,args,check", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_scenario_tracked_exactly(audit, tmp_path, name, args, check):
    if name == "pidns" and shutil.which("unshare") is None:
        pytest.skip("unshare(1) is not installed")
    # GIVEN a scenario target whose processes record their own truth
    cmd = [PY, ht.target(name + ".py")] + [a.format(tmp=tmp_path) for a in args]
    # WHEN it is audited in the default (root-exit) mode
    run = audit.run(cmd)
    if any("skipped" in r for r in run.truth.records):
        pytest.skip("target skipped itself: %s" % run.truth.all("skipped")[0]["skipped"])
    # THEN every process, ancestry and status matches, and audit exits with the root's status
    ht.check_invariants(run)
    roles = ht.check_truth(run)
    root = roles["root"]
    assert run.returncode == root.exit["exit_code"], run.context()
    check(run, roles, run.truth)


# --------------------------------------------------------------------------- storms and reuse


def test_fork_storm_20k_exact(audit):
    # GIVEN a Python parent that forks 20,000 children (<= 64 in flight), child i exiting i % 200
    # WHEN it is audited
    run = audit.run([PY, ht.target("fork_storm.py"), "--count", "20000"], timeout=600)
    # THEN every child is a member with its exact status, and the counts are exact
    ht.check_invariants(run)
    roles = ht.check_truth(run)
    assert run.returncode == 0, run.context()
    s = run.summary
    assert (s["processes"], s["forks"], s["exits"], s["lost_events"]) == (20001, 20001, 20001, 0), (
        "root + 20,000 children (fork records include the root's launch record)\n%s" % run.context())
    assert len(run.children(roles["storm-parent"])) == 20000


@pytest.mark.parametrize("method", ["ns_last_pid", "wraparound"])
def test_pid_reuse_keeps_identities_apart(audit, method):
    # GIVEN children that get the same pid one after another, each exiting with its own code
    rounds = 4 if method == "ns_last_pid" else 2
    run = audit.run([PY, ht.target("pid_reuse.py"), "--method", method, "--rounds", str(rounds)],
                    timeout=600)
    # THEN each (pid, start) is its own process with its own fork, exit and status
    ht.check_invariants(run)
    ht.check_truth(run)
    summary_rec = run.truth.one("reused_pid")
    pid = summary_rec["reused_pid"]
    same_pid = run.by_pid[pid]
    evidence = ht.dump(r for p in same_pid for r in p.records)
    assert len(same_pid) == rounds, "one identity per reuse of pid %d\n%s" % (pid, evidence)
    assert len({ht.ticks(p.start) for p in same_pid}) == rounds, evidence
    assert sorted(p.exit["exit_code"] for p in same_pid) == list(range(1, rounds + 1)), evidence
    assert run.summary["processes"] == 1 + summary_rec["attempts"], run.context()


def test_nonmembers_never_enter(audit, tmp_path):
    # GIVEN an unrelated fork storm running outside the audited tree
    storm_truth = tmp_path / "unrelated.truth.jsonl"
    storm = subprocess.Popen(
        [PY, ht.target("fork_storm.py"), "--until-signal", "--count", "1000000",
         "--max-inflight", "16", "--role", "unrelated-storm"],
        env=dict(os.environ, PYPROF_TRUTH=str(storm_truth)), start_new_session=True)

    def stop_storm():
        if storm.poll() is None:
            storm.send_signal(signal.SIGTERM)
            try:
                storm.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(storm.pid, signal.SIGKILL)
                storm.wait()
    audit.defer(stop_storm)
    ht.wait_for_truth(storm_truth, lambda r: r.get("role") == "unrelated-storm", proc=storm,
                      what="unrelated storm start")
    # WHEN a (smaller) member storm is audited at the same time
    run = audit.run([PY, ht.target("fork_storm.py"), "--count", "3000"], timeout=300)
    stop_storm()
    assert storm.returncode == 0, "the unrelated storm failed"
    # THEN the members are exact and no unrelated process appears
    ht.check_invariants(run)
    ht.check_truth(run)
    outside = ht.Truth(storm_truth)
    storm_rec = outside.one("storm")
    identities = {(r["pid"], r["start_ticks"]) for r in outside.selves}
    identities |= {(pid, st) for pid, st, _ in outside.storm_children(storm_rec)}
    intruders = [p for key in identities for p in run.by_tick.get(key, [])]
    assert not intruders, "non-members in the audit output:\n%s" % ht.dump(
        r for p in intruders for r in p.records)
    # and the unrelated storm really ran while the tree was audited
    root = run.launch
    t0 = ht.ticks(root.start)
    t1 = t0 + root.exit["duration"] * ht.CLK_TCK
    overlap = [c for c in outside.storm_children(storm_rec) if t0 <= c[1] <= t1]
    assert overlap, "the unrelated storm did not overlap the audit (%d children)" % storm_rec["forks"]


def _storm_command(tmp_path):
    """A C fork storm if a compiler is available (about 14k forks/s here), else Python."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:
        binary = tmp_path / "fast_storm"
        subprocess.run([cc, "-O2", "-o", str(binary), ht.target("fast_storm.c")], check=True)
        return [str(binary), "20000", "256"]
    return [PY, ht.target("fork_storm.py"), "--count", "20000", "--no-identity",
            "--max-inflight", "1024"]


def test_tiny_ring_buffer_reports_lost_events(audit, tmp_path):
    # GIVEN a one-page ring buffer and a fast fork storm
    cmd = _storm_command(tmp_path)
    # WHEN it is audited
    run = audit.run(cmd, audit_flags=["--ring-pages", "1"], timeout=300)
    # THEN the loss is reported, and the session still ends with the root's status
    ht.check_invariants(run, allow_loss=True)
    assert run.summary["lost_events"] > 0, "a 1-page ring should overflow\n%s" % run.context()
    assert run.returncode == 0, run.context()


# --------------------------------------------------------------------------- root killed


@pytest.mark.parametrize("how,sig", [("self-term", signal.SIGTERM), ("test-sigkill", signal.SIGKILL)],
                         ids=["SIGTERM-by-itself", "SIGKILL-by-test"])
def test_root_killed_by_signal(audit, tmp_path, how, sig):
    # GIVEN a root with a live child, killed by a signal
    release = tmp_path / "release"
    mode = "self-term" if how == "self-term" else "wait"
    session = audit.start([PY, ht.target("root_killed.py"), mode, str(release)])
    audit.defer(release.touch)
    if how == "test-sigkill":
        ready = ht.wait_for_truth(session.truth_path, lambda r: r.get("ready"), proc=session.popen,
                                  what="root readiness")
        root_rec = [r for r in ht.Truth(session.truth_path).selves if r["role"] == "root"][0]
        assert ready["pid"] == root_rec["pid"]
        assert ht.kill_identity(root_rec["pid"], root_rec["start_ticks"], signal.SIGKILL)
    run = session.wait(120)
    # THEN audit exits 128 + N, the root's exit says so, and the child is left running
    ht.check_invariants(run)
    roles = ht.check_truth(run, require_exit=False)
    assert run.returncode == 128 + sig, run.context()
    ht.check_exit(run, roles["root"], {"exit_code": None, "signal": int(sig), "core_dumped": False}, "root")
    assert run.left_running() == {roles["survivor"].key}, run.context()
    release.touch()
    ht.wait_for_truth(session.truth_path, lambda r: r.get("released"), what="survivor release")


# --------------------------------------------------------------------------- errors


def _audit_cli(tmp_path, *args):
    argv = [PY, "-m", "pyprof_ebpf", "audit", "--format", "jsonl", "-o", str(tmp_path / "out.jsonl"),
            *args]
    with open(tmp_path / "stderr", "w+") as err:     # a file: no pipe for a stray child to hold
        result = subprocess.run(argv, cwd=str(ht.REPO), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, timeout=120)
        err.seek(0)
        result.stderr = err.read()
    return result


def _assert_one_line_error(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, (
        "expected a one-line error on stderr, got (exit %s):\n%s" % (result.returncode, result.stderr))


def _vanished_pid():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert not os.path.exists("/proc/%d" % pid)
    return pid


def test_attach_to_missing_pid_is_a_one_line_error(tmp_path):
    result = _audit_cli(tmp_path, "-p", str(_vanished_pid()))
    assert result.returncode != 0
    _assert_one_line_error(result)


def test_launch_missing_command_exits_127(tmp_path):
    result = _audit_cli(tmp_path, "--", "/nonexistent/cmd")
    assert result.returncode == 127, result.stderr
    _assert_one_line_error(result)


def test_cgroup_that_is_not_a_cgroup_is_a_one_line_error(tmp_path):
    result = _audit_cli(tmp_path, "--cgroup", "/tmp")
    assert result.returncode != 0
    _assert_one_line_error(result)
