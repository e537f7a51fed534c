"""`pyprof-ebpf audit` on the targets other than a launched command, and the CLI's manners.

- ``-p PID`` on a tree that was already running and churning (root -> 3 workers, each
  forking a short child about every millisecond, every fourth child forking a grandchild):
  the bootstrap (process-tree.md §6.2) must cover the live tree, every later fork must have
  a tracked parent, and nothing outside the tree may appear; with ``--follow-orphans`` the
  session ends by itself once the tree is gone;
- ``--cgroup DIR`` for a fresh v2 cgroup and a fresh v1 (memory) cgroup (§7.2);
- ``--all -d 1``;
- sudo manners (``SUDO_UID``/``SUDO_GID``/``SUDO_USER``, ``--as-root``);
- signal forwarding to a launched command (SIGTERM, SIGINT), and ``-d`` ending a session
  whose root would run longer.

Helper processes are small Python scripts written to the test's tmp dir; each signals
readiness through a file (written then renamed), and every one is stopped and reaped at
teardown (through the ``audit`` fixture's ``defer``). Tree processes rename themselves
(``/proc/self/comm``) so the audit output can be checked by name: ``churn-*`` inside the
audited tree, ``unrel-*`` for the unrelated one.
"""

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

try:
    from . import helpers_tree as ht
except ImportError:          # tests/root is not a package: pytest put it on sys.path
    import helpers_tree as ht

audit = ht.audit  # the fixture lives in helpers_tree

pytestmark = [pytest.mark.root, ht.requires_root]

PY = sys.executable

# --------------------------------------------------------------------------- helper scripts

COMMON = r'''
import json, os, signal, sys, time

def setcomm(name):
    with open("/proc/self/comm", "w") as f:
        f.write(name)

def start_ticks(pid="self"):
    with open("/proc/%s/stat" % pid, "rb") as f:
        data = f.read()
    return int(data[data.rindex(b")") + 2:].split()[19])

def publish(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f)
    os.rename(path + ".tmp", path)

def wait_file(path):
    while not os.path.exists(path):
        time.sleep(0.005)
'''

# churn.py DIR PREFIX [WORKERS [PERIOD]]: root -> 3 workers, each forking a child every
# ~1 ms (PERIOD s; every 4th child forks a grandchild). DIR/worker-N and DIR/ready are published when the tree is up;
# SIGTERM to the root stops the workers, which reap everything, then the root exits 0.
CHURN = COMMON + r'''
out, prefix = sys.argv[1], sys.argv[2]
nworkers = int(sys.argv[3]) if len(sys.argv) > 3 else 3
period = float(sys.argv[4]) if len(sys.argv) > 4 else 0.001
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))

def reap(block):
    while True:
        try:
            pid, _ = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return

def worker(n):
    setcomm(prefix + "-w%d" % n)
    i = 0
    while not stop:
        pid = os.fork()
        if pid == 0:
            if i % 4 == 0:
                g = os.fork()
                if g == 0:
                    os._exit(7)
                os.waitpid(g, 0)
            os._exit(i % 100)
        i += 1
        reap(False)
        if i == 1:
            publish(os.path.join(out, "worker-%d" % n), {"pid": os.getpid(), "start_ticks": start_ticks()})
        time.sleep(period)
    reap(True)
    os._exit(0)

setcomm(prefix + "-root")
workers = []
for n in range(nworkers):
    pid = os.fork()
    if pid == 0:
        worker(n)
    workers.append(pid)
for n in range(nworkers):
    wait_file(os.path.join(out, "worker-%d" % n))
publish(os.path.join(out, "ready"), {"pid": os.getpid(), "start_ticks": start_ticks(), "workers": workers})
while not stop:
    time.sleep(0.02)
for pid in workers:
    os.kill(pid, signal.SIGTERM)
reap(True)
sys.exit(0)
'''

# actor.py DIR PREFIX: publishes DIR/ready, waits for DIR/go, then forks a child that exits 3
# and runs /bin/true (fork + exec); publishes DIR/done with their pids; waits for DIR/quit.
ACTOR = COMMON + r'''
out, prefix = sys.argv[1], sys.argv[2]
setcomm(prefix + "-actor")
publish(os.path.join(out, "ready"), {"pid": os.getpid(), "start_ticks": start_ticks()})
wait_file(os.path.join(out, "go"))
pid = os.fork()
if pid == 0:
    os._exit(3)
_, status = os.waitpid(pid, 0)
import subprocess
true = subprocess.Popen(["/bin/true"])
true.wait()
publish(os.path.join(out, "done"), {"fork_child": pid, "fork_status": status,
                                    "exec_child": true.pid, "exec_status": true.returncode})
wait_file(os.path.join(out, "quit"))
'''

# signalled.py READY MARKER MODE: MODE "term" installs a SIGTERM handler that writes MARKER
# and exits 42; MODE "int" keeps Python's default SIGINT handler (KeyboardInterrupt).
# Writes its truth record ($PYPROF_TRUTH) and READY, then idles.
SIGNALLED = COMMON + r'''
ready, marker, mode = sys.argv[1:4]
if mode == "term":
    def on_term(signum, frame):
        with open(marker, "w") as f:
            f.write("SIGTERM")
        os._exit(42)
    signal.signal(signal.SIGTERM, on_term)
truth = os.environ.get("PYPROF_TRUTH")
if truth:
    with open(truth, "a") as f:
        f.write(json.dumps({"role": "root", "pid": os.getpid(), "ppid": os.getppid(),
                            "start_ticks": start_ticks()}) + "\n")
publish(ready, {"pid": os.getpid(), "start_ticks": start_ticks()})
while True:
    time.sleep(0.05)
'''


def script(tmp_path, name, text):
    path = Path(tmp_path) / name
    path.write_text(text)
    return str(path)


def wait_for(predicate, what, timeout=30.0, procs=()):
    """Poll a readiness condition; fail early if a process it depends on has ended."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for p in procs:
            if p.poll() is not None:
                raise AssertionError("%s: process %d ended (status %s) before it" % (what, p.pid, p.returncode))
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %.0f s" % (what, timeout))
        time.sleep(0.01)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def wait_json(path, what, procs=(), timeout=30.0):
    return wait_for(lambda: read_json(path), what, timeout, procs)


def attached(audit_pid):
    """True once the audit process holds its three raw-tracepoint links (the tracker is
    loaded, configured and attached; /proc/<pid>/fdinfo names each link's tracepoint)."""
    names = set()
    try:
        fds = os.listdir("/proc/%d/fd" % audit_pid)
    except OSError:
        return False
    for fd in fds:
        try:
            with open("/proc/%d/fdinfo/%s" % (audit_pid, fd)) as f:
                info = f.read()
        except OSError:
            continue
        for line in info.splitlines():
            if line.startswith("tp_name:"):
                names.add(line.split(":", 1)[1].strip())
    return {"sched_process_fork", "sched_process_exec", "sched_process_exit"} <= names


def wait_attached(session):
    wait_for(lambda: attached(session.popen.pid), "audit attached", 120, [session.popen])


def stopper(proc, sig=signal.SIGTERM, timeout=30):
    """A finalizer: signal a helper started in its own session, reap it, SIGKILL its group
    if it does not end in time."""
    def stop():
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
    return stop


def start_helper(audit, tmp_path, text, name, *args):
    path = script(tmp_path, name + ".py", text)
    proc = subprocess.Popen([PY, path, *map(str, args)], start_new_session=True,
                            stdin=subprocess.DEVNULL)
    audit.defer(stopper(proc))
    return proc


def tick_identities(records, events=("fork", "exec", "exit")):
    return {(r["pid"], ht.ticks(r["start"])) for r in records if r.get("event") in events}


# --------------------------------------------------------------------------- -p PID


def start_churn(audit, tmp_path, prefix, nworkers=3, period=0.001):
    out = Path(tmp_path) / prefix
    out.mkdir()
    proc = start_helper(audit, tmp_path, CHURN, prefix, out, prefix, nworkers, period)
    ready = wait_json(out / "ready", "%s tree up" % prefix, [proc])
    workers = [read_json(out / ("worker-%d" % n)) for n in range(nworkers)]
    return proc, ready, workers


def check_attached_tree(run, root, workers, unrel_root, unrel_workers):
    """What an attach session on the churning tree must show, however it ended."""
    ctx = run.context()
    assert run.returncode == 0 and run.summary is not None, ctx
    assert run.records[-1]["event"] == "summary" and run.count("summary") == 1, ctx
    s = run.summary
    assert s["map_full"] == 0, ctx
    # the bootstrap records cover the root and every live worker
    boot = [r for r in run.records if r.get("event") == "fork" and r.get("source") == "bootstrap"]
    booted = tick_identities(boot)
    want = {(root["pid"], root["start_ticks"])} | {(w["pid"], w["start_ticks"]) for w in workers}
    assert want <= booted, "bootstrap misses %s\n%s" % (want - booted, ht.dump(boot))
    assert s["pid"] == root["pid"] and ht.ticks(s["start"]) == root["start_ticks"], ctx
    # every fork after the bootstrap has a tracked parent (an identity of some record)
    known = tick_identities(run.records)
    later = [r for r in run.records if r.get("event") == "fork" and r.get("source") != "bootstrap"]
    assert len(later) > 300, "the tree should have forked hundreds of times\n%s" % ctx
    orphans = [r for r in later if (r["ppid"], ht.ticks(r["parent_start"])) not in known]
    assert not orphans, "forks whose parent is not a tracked process:\n%s" % ht.dump(orphans)
    # no record at all (exits included) for anything outside the tree
    outsiders = [r for r in run.records if r.get("event") in ("fork", "exec", "exit")
                 and not r["comm"].startswith("churn-")]
    assert not outsiders, "records of processes outside the tree:\n%s" % ht.dump(outsiders)
    unrel_pids = {unrel_root["pid"]} | {w["pid"] for w in unrel_workers}
    assert not [r for r in run.records if r.get("pid") in unrel_pids or r.get("ppid") in unrel_pids], ctx
    # exits: statuses the tree uses, and at most one per identity
    exits = [r for r in run.records if r.get("event") == "exit"]
    assert exits and all(r["exit_code"] in range(100) and r["signal"] is None for r in exits), (
        ht.dump(r for r in exits if r["exit_code"] not in range(100) or r["signal"] is not None))
    dup = [k for k, p in run.procs.items() if len(p.exits) > 1]
    assert not dup, "several exits for one identity: %s" % dup[:5]
    # an exit of a process never seen to fork can only be a bootstrap-time race caught by the
    # kernel's ancestry walk (a child forked before attach, exiting before the /proc scan)
    forked = tick_identities(run.records, ("fork",))
    unseen = [r for r in exits if (r["pid"], ht.ticks(r["start"])) not in forked]
    assert all(r["ts"] <= boot[-1]["ts"] + 1.0 for r in unseen), (
        "exits of never-forked processes long after the bootstrap\n%s" % ht.dump(unseen))
    return s


def test_attach_to_a_churning_tree_until_its_root_exits(audit, tmp_path):
    # GIVEN a churning tree started before audit, and an unrelated churning tree beside it
    tree, root, workers = start_churn(audit, tmp_path, "churn")
    unrelated, unrel_root, unrel_workers = start_churn(audit, tmp_path, "unrel", 1, 0.005)
    # WHEN audit attaches to the root, follows it a while, and the root then ends its tree
    session = audit.start(["-p", str(tree.pid)], target_cmd=False)
    # readiness: records reach the file only in 8 KiB blocks, so 256 KiB on disk means about
    # a thousand events were handled after the bootstrap
    wait_for(lambda: session.out_path.exists() and session.out_path.stat().st_size > 256 << 10,
             "audit following the tree", 120, [session.popen])
    tree.send_signal(signal.SIGTERM)
    assert tree.wait(30) == 0
    run = session.wait(60)
    # THEN bootstrap, membership, ancestry and loss accounting are exact
    s = check_attached_tree(run, root, workers, unrel_root, unrel_workers)
    assert s["reason"] == "root-exit" and s["lost_events"] == 0, run.context()
    assert (root["pid"], root["start_ticks"]) in {(p.pid, ht.ticks(p.start)) for p in run.procs.values()
                                                  if p.exit is not None and p.exit["exit_code"] == 0}


def test_attach_to_a_churning_tree_for_a_duration(audit, tmp_path):
    # GIVEN a churning tree started before audit, and an unrelated churning tree beside it
    tree, root, workers = start_churn(audit, tmp_path, "churn")
    unrelated, unrel_root, unrel_workers = start_churn(audit, tmp_path, "unrel", 1, 0.005)
    # WHEN audit attaches to the root for 3 s
    # (a generous timeout: under CPU contention the final drain can run long; see the report)
    run = audit.run(["-p", str(tree.pid), "-d", "3"], target_cmd=False, timeout=90)
    # THEN the same holds, and the live root and workers are left running
    s = check_attached_tree(run, root, workers, unrel_root, unrel_workers)
    assert s["reason"] == "duration", run.context()
    want = {(root["pid"], root["start_ticks"])} | {(w["pid"], w["start_ticks"]) for w in workers}
    assert want <= {(p["pid"], ht.ticks(p["start"])) for p in s["left_running"]}, run.context()
    # Events the live tree produced after the end are not losses (regression: they were).
    assert s["lost_events"] == 0, run.context()


def test_attach_follow_orphans_ends_when_the_tree_is_gone(audit, tmp_path):
    # GIVEN a churning tree, and audit attached to it in follow-orphans mode
    tree, root, workers = start_churn(audit, tmp_path, "churn")
    session = audit.start(["-p", str(tree.pid), "--follow-orphans"], target_cmd=False)
    # readiness: records reach the file only once forks are handled (a full write buffer),
    # so a non-empty output means the bootstrap is over and the session loop is running
    wait_for(lambda: session.out_path.exists() and session.out_path.stat().st_size > 0,
             "audit following the tree", 120, [session.popen])
    # WHEN the tree is stopped (and its root reaped by us, its parent)
    tree.send_signal(signal.SIGTERM)
    assert tree.wait(30) == 0
    # THEN the session ends by itself, with nothing left running
    run = session.wait(60)
    ctx = run.context()
    assert run.returncode == 0, ctx
    s = run.summary
    assert s["reason"] == "all-exited" and s["left_running"] == [] and s["lost_events"] == 0, ctx
    root_exits = [r for r in run.records if r.get("event") == "exit" and r["pid"] == root["pid"]
                  and ht.ticks(r["start"]) == root["start_ticks"]]
    assert [r["exit_code"] for r in root_exits] == [0], ctx
    for w in workers:
        assert [r["exit_code"] for r in run.records if r.get("event") == "exit"
                and r["pid"] == w["pid"] and ht.ticks(r["start"]) == w["start_ticks"]] == [0], ctx


# --------------------------------------------------------------------------- --cgroup


def cgroup_mount(version):
    with open("/proc/mounts") as f:
        for line in f:
            _dev, mnt, fstype, opts = line.split()[:4]
            if version == 2 and fstype == "cgroup2":
                return mnt
            if version == 1 and fstype == "cgroup" and "memory" in opts.split(","):
                return mnt
    return None


def own_cgroup(version, pid="self"):
    with open("/proc/%s/cgroup" % pid) as f:
        for line in f:
            hid, controllers, path = line.rstrip("\n").split(":", 2)
            if version == 2 and hid == "0":
                return path
            if version == 1 and "memory" in controllers.split(","):
                return path
    return None


@pytest.mark.parametrize("version", [2, 1], ids=["v2", "v1-memory"])
def test_cgroup_target_records_members_only(audit, tmp_path, version):
    mount = cgroup_mount(version)
    if mount is None:
        pytest.skip("no cgroup%s hierarchy mounted" % ("2" if version == 2 else " v1 memory"))
    if version == 2 and not os.path.exists(os.path.join(mount, "cgroup.procs")):
        pytest.skip("cgroup2 mount %s has no cgroup.procs" % mount)
    # GIVEN a fresh cgroup with one actor moved into it, and the same actor outside
    cg = os.path.join(mount, "pyprof-test-%s" % uuid.uuid4().hex[:12])
    os.mkdir(cg)

    def remove_cgroup():
        deadline = time.monotonic() + 10
        while os.path.isdir(cg):
            try:
                os.rmdir(cg)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)      # a reaped task leaves the cgroup asynchronously
    audit.defer(remove_cgroup)        # runs after the helpers are stopped (defer is LIFO)
    dirs = {}
    procs = {}
    for name in ("inside", "outside"):
        dirs[name] = Path(tmp_path) / name
        dirs[name].mkdir()
        procs[name] = start_helper(audit, tmp_path, ACTOR, name, dirs[name], name[:5])
    ready = {n: wait_json(dirs[n] / "ready", "%s actor ready" % n, [procs[n]]) for n in dirs}
    with open(os.path.join(cg, "cgroup.procs"), "w") as f:
        f.write(str(procs["inside"].pid))
    assert own_cgroup(version, procs["inside"].pid) == "/" + os.path.relpath(cg, mount)
    # WHEN audit follows the cgroup while both actors fork and exec
    session = audit.start(["--cgroup", cg, "-d", "4"], target_cmd=False)
    wait_attached(session)
    for name in dirs:
        (dirs[name] / "go").touch()
    done = {n: wait_json(dirs[n] / "done", "%s actor done" % n, [procs[n]]) for n in dirs}
    run = session.wait(60)
    for name in dirs:
        (dirs[name] / "quit").touch()
    ctx = run.context()
    assert run.returncode == 0 and run.summary["lost_events"] == 0, ctx
    # THEN the inside actor (bootstrapped), its forked child and its exec'd child are recorded
    inside = run.find(ready["inside"]["pid"], ready["inside"]["start_ticks"])
    assert inside.forks and inside.forks[0]["source"] == "bootstrap", ht.dump(inside.records)
    child = run.find(done["inside"]["fork_child"])
    assert child.fork["ppid"] == inside.pid and child.fork["parent_start"] == inside.start
    assert child.exit is not None and child.exit["exit_code"] == 3, ht.dump(child.records)
    true = run.find(done["inside"]["exec_child"])
    assert [os.path.basename(e["filename"]) for e in true.execs] == ["true"], ht.dump(true.records)
    assert true.exit is not None and true.exit["exit_code"] == 0, ht.dump(true.records)
    assert true.fork["ppid"] == inside.pid
    # and nothing of the outside actor
    outside_pids = {ready["outside"]["pid"], done["outside"]["fork_child"], done["outside"]["exec_child"]}
    intruders = [r for r in run.records if r.get("pid") in outside_pids or r.get("ppid") in outside_pids]
    assert not intruders, "records of the actor outside the cgroup:\n%s" % ht.dump(intruders)
    assert not [r for r in run.records if r.get("comm", "").startswith("outsi")], ctx
    # the inside actor is still running at the end (a duration session)
    assert (inside.pid, inside.start) in run.left_running(), ctx


# --------------------------------------------------------------------------- --all


def test_all_records_a_process_forked_during_the_window(audit, tmp_path):
    session = audit.start(["--all", "-d", "1"], target_cmd=False)
    wait_attached(session)
    child = subprocess.Popen(["/bin/sh", "-c", "exit 9"], stdin=subprocess.DEVNULL)
    assert child.wait(10) == 9
    run = session.wait(60)
    ctx = run.context()
    assert run.returncode == 0 and run.summary["reason"] == "duration", ctx
    proc = run.find(child.pid)
    assert proc.forks and proc.fork["ppid"] == os.getpid(), ht.dump(proc.records)
    assert [os.path.realpath(e["filename"]) for e in proc.execs] == [os.path.realpath("/bin/sh")]
    assert proc.exit is not None and proc.exit["exit_code"] == 9, ht.dump(proc.records)
    # the bootstrap saw this very test process
    me = ht.proc_start_ticks(os.getpid())[1]
    assert run.find(os.getpid(), me).forks[0]["source"] == "bootstrap"


# --------------------------------------------------------------------------- sudo manners


@pytest.fixture
def shared_dir():
    """A world-writable directory that user nobody can reach (pytest's tmp dir is 0700)."""
    d = tempfile.mkdtemp(prefix="pyprof-sudo-")
    os.chmod(d, 0o777)
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("as_root", [False, True], ids=["as-invoking-user", "as-root"])
def test_sudo_runs_the_command_as_the_invoking_user(audit, monkeypatch, shared_dir, as_root):
    try:
        nobody = pwd.getpwuid(65534)
    except KeyError:
        pytest.skip("no user with uid 65534")
    # GIVEN the environment sudo sets when user nobody runs `sudo pyprof-ebpf audit`
    monkeypatch.setenv("SUDO_UID", "65534")
    monkeypatch.setenv("SUDO_GID", "65534")
    monkeypatch.setenv("SUDO_USER", nobody.pw_name)
    out = shared_dir / "id.txt"
    cmd = ["/bin/sh", "-c", 'id -u > %s; id -g >> %s; echo "$HOME" >> %s' % (out, out, out)]
    # WHEN it launches a command
    run = audit.run(cmd, audit_flags=["--as-root"] if as_root else [])
    ht.check_invariants(run)
    assert run.returncode == 0, run.context()
    uid, gid, home = out.read_text().splitlines()
    root_exec = run.launch.execs[0]
    if as_root:
        # THEN with --as-root it runs as root
        assert (uid, gid) == ("0", "0") and root_exec["uid"] == 0, run.context()
    else:
        # THEN it runs as nobody with nobody's HOME, and the exec record says so
        assert (uid, gid, home) == ("65534", "65534", nobody.pw_dir)
        assert root_exec["uid"] == 65534, ht.dump(run.launch.records)
        # the output file belongs to the invoking user, as it would under real sudo
        assert run.out_path.stat().st_uid == 65534
    children = [p for p in run.procs.values() if p is not run.launch]
    assert children and all(e["uid"] == int(uid) for p in children for e in p.execs), run.context()


# --------------------------------------------------------------------------- signals


@pytest.mark.parametrize("sig,mode", [(signal.SIGTERM, "term"), (signal.SIGINT, "int")],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_is_forwarded_and_output_completed(audit, tmp_path, sig, mode):
    # GIVEN a launched command that handles SIGTERM (exit 42) or keeps Python's SIGINT default
    ready, marker = tmp_path / "ready", tmp_path / "marker"
    path = script(tmp_path, "signalled.py", SIGNALLED)
    session = audit.start([PY, path, str(ready), str(marker), mode])
    wait_json(ready, "command ready", [session.popen])
    # WHEN audit itself gets the signal
    session.popen.send_signal(sig)
    run = session.wait(60)
    # THEN it reaches the command, whose status becomes audit's, and the output is complete
    ht.check_invariants(run)
    root = run.launch
    if mode == "term":
        assert marker.read_text() == "SIGTERM"
        assert run.returncode == 42, run.context()
        ht.check_exit(run, root, {"exit_code": 42, "signal": None, "core_dumped": False}, "root")
    else:
        # CPython (3.8+) ends an uncaught KeyboardInterrupt by re-raising SIGINT on itself,
        # so the command dies *by* SIGINT and audit exits 128 + 2 like a shell would
        assert run.returncode == 130, run.context()
        ht.check_exit(run, root, {"exit_code": None, "signal": 2, "core_dumped": False}, "root")
    assert run.summary["reason"] == "root-exit", run.context()


def test_duration_ends_a_session_whose_root_runs_on(audit, tmp_path):
    # GIVEN a command that would idle until killed
    ready, marker = tmp_path / "ready", tmp_path / "marker"
    path = script(tmp_path, "signalled.py", SIGNALLED)
    t0 = time.monotonic()
    session = audit.start([PY, path, str(ready), str(marker), "idle"], audit_flags=["-d", "1"])
    me = wait_json(ready, "command ready", [session.popen])
    # WHEN the duration is over
    run = session.wait(60)
    elapsed = time.monotonic() - t0
    ctx = run.context()
    # THEN the session ends after about 1 s with status 0, reporting the root as left running;
    # the command itself is not stopped (it is still running now: the fixture kills it)
    assert run.returncode == 0 and run.summary["reason"] == "duration", ctx
    assert elapsed < 30, ctx
    assert run.left_running() == {run.launch.key} and run.launch.exit is None, ctx
    state = ht.proc_start_ticks(me["pid"])
    assert state is not None and state[1] == me["start_ticks"] and state[0] not in "ZX", (
        "the command outlives a -d session")
    # and stderr says so, naming why the session ended
    assert "1 process left running" in run.stderr and "ended by duration" in run.stderr, ctx
