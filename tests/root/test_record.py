"""`pyprof-ebpf record` against targets whose profile is known in advance.

Each test runs ``python -m pyprof_ebpf record [-r HZ] [-f FMT] -o FILE [...] -- PY TARGET`` to
completion, with stdout/stderr going to files (a target's process left running would hold a
pipe open), and compares the profile with the ground truth the target wrote about itself to
$PYPROF_TRUTH (JSON lines; each target's docstring in tests/targets/prof/ gives its protocol).
Most tests run once per interpreter of tests/pythons.py: pyenv's 3.8-3.13 (libpython.so), Debian's
static non-PIE 3.11 and sid's 3.14 and 3.14d (from tests/fetch_pythons.sh); a missing interpreter skips.

Austin output is read twice: by the strict parser below (every line must be metadata, blank or
a sample; names are unescaped with pyprof_ebpf.output.unescape) and, in one end-to-end test, by
austin-python's own reader. Assertions compare shares and sets, never exact sample counts.

What is assumed of record beyond its usage line (see the report that came with these tests):
sample lines are ``P<pid>;T<iid>:<tid>;frames <µs>`` with tid the kernel TID and µs the summed
CPU time of the stack; ``-r 200`` gives ``# interval: 5000``; the truncation marker frame is
``:<truncated>:0``; record passes its environment to the command and runs it from its own cwd;
in root-exit mode the stderr names the number of processes "left running" and the footer says
``# left_running: N``.

Every test reaps what it started: record runs in its own session, and at teardown its process
group and every process that described itself in a truth file (pid + start tick) are SIGKILLed.
"""

import ast
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import NamedTuple, Tuple

import pytest

try:
    from . import helpers_tree as ht
except ImportError:          # tests/root is not a package: pytest put it on sys.path
    import helpers_tree as ht

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for pythons.py
import pythons  # noqa: E402

from pyprof_ebpf.output import unescape  # noqa: E402

pytestmark = [pytest.mark.root, ht.requires_root]

REPO = ht.REPO
PROF = REPO / "tests" / "targets" / "prof"
SPLIT = str(PROF / "split.py")
HOTLINE = str(PROF / "hotline.py")
THREADS = str(PROF / "threads.py")
UNICODE = str(PROF / "ünïcødé" / "naïve_名前.py")
DEEP = str(PROF / "deep.py")
ASYNCIO = str(PROF / "asyncio_app.py")
SHORT_CHILD = str(PROF / "short_child.py")
SEED = str(ht.SEED)
PY = sys.executable

RATE = 200
INTERVAL_US = 1_000_000 // RATE
SPLIT_RATE = 1000
TIMEOUT = 300  # seconds per record run: BPF compile + a 1-3 s target, on a loaded 2-CPU VM
PYTHONS = pythons.python_params()
SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"


# --------------------------------------------------------------------------- Austin parser


class Frame(NamedTuple):
    file: str
    function: str
    line: int


TRUNCATED = Frame("", "<truncated>", 0)


class Stack(NamedTuple):
    pid: int
    iid: int
    tid: int
    frames: Tuple[Frame, ...]  # outermost first, unescaped
    us: int

    @property
    def leaf(self):
        return self.frames[-1] if self.frames else None

    @property
    def truncated(self):
        return bool(self.frames) and self.frames[0] == TRUNCATED


SAMPLE_RE = re.compile(r"P(\d+);T(\d+):(\d+)((?:;[^;]*)*) (\d+)")


def parse_frame(text):
    file, function, line = text.rsplit(":", 2)  # ":" is escaped in function names, not files
    return Frame(unescape(file), unescape(function), int(line))


class AustinProfile:
    """Austin 3.x collapsed stacks, parsed strictly: header, samples, footer."""

    def __init__(self, text, where="profile"):
        self.text = text
        self.header, self.footer, self.stacks = {}, {}, []
        section = self.header
        for n, line in enumerate(text.split("\n"), 1):
            if not line:
                if self.header:
                    section = self.footer  # metadata after the header's blank line is footer
                continue
            if line.startswith("# "):
                key, sep, value = line[2:].partition(": ")
                assert sep, "%s line %d: metadata without ': ': %r" % (where, n, line)
                section[key] = unescape(value)
                continue
            m = SAMPLE_RE.fullmatch(line)
            assert m, "%s line %d is neither metadata nor a sample: %r" % (where, n, line[:300])
            frames = tuple(parse_frame(f) for f in m.group(4).split(";")[1:])
            self.stacks.append(Stack(int(m.group(1)), int(m.group(2)), int(m.group(3)),
                                     frames, int(m.group(5))))

    def of(self, pid):
        return [s for s in self.stacks if s.pid == pid]

    @property
    def pids(self):
        return {s.pid for s in self.stacks}

    def leaf_us(self, pid=None, key=lambda f: f):
        """Counter: key(leaf frame) -> µs, for one pid or all."""
        out = Counter()
        for s in self.stacks:
            if s.frames and (pid is None or s.pid == pid):
                out[key(s.leaf)] += s.us
        return out

    def summary(self, pid=None, limit=25):
        """The heaviest stacks as text, for assertion messages."""
        rows = sorted((s for s in self.stacks if pid is None or s.pid == pid),
                      key=lambda s: -s.us)[:limit]
        return "\n".join("%8d us P%d T%d:%d %s" % (s.us, s.pid, s.iid, s.tid, " > ".join(
            "%s:%s" % (f.function, f.line) for f in s.frames[-6:])) for s in rows)


# --------------------------------------------------------------------------- running record


class RecordRun:
    def __init__(self, argv, pid, returncode, stdout_path, stderr_path, out_path, truth_path,
                 ready_path, rate=RATE):
        self.argv, self.pid, self.returncode, self.rate = argv, pid, returncode, rate
        self.stdout = Path(stdout_path).read_text(errors="replace")
        self.stderr = Path(stderr_path).read_text(errors="replace")
        self.out_path, self.ready_path = Path(out_path), Path(ready_path)
        self.truth = ht.Truth(truth_path)
        self._austin = None

    def context(self):
        return "record %s\nexit status %s\nstderr (tail):\n%s\n%s" % (
            " ".join(self.argv), self.returncode, "\n".join(self.stderr.splitlines()[-20:]),
            self.truth)

    @property
    def text(self):
        assert self.out_path.exists(), "record wrote no %s\n%s" % (self.out_path, self.context())
        return self.out_path.read_text(encoding="utf-8")

    @property
    def austin(self):
        if self._austin is None:
            self._austin = AustinProfile(self.text, str(self.out_path))
            check_austin_envelope(self._austin, self, self.rate)
        return self._austin

    def role(self, role):
        return self.truth.role(role)

    def check_ok(self):
        """record exited with the command's status (0) and the target reached its work."""
        assert self.returncode == 0, self.context()
        assert self.ready_path.exists(), "the target never signalled readiness\n" + self.context()


class Recorder:
    """Runs record sessions for one test; teardown kills everything they left behind."""

    def __init__(self, tmp_path):
        self.tmp_path = Path(tmp_path)
        self.popens = []
        self.truths = []

    def run(self, cmd, flags=(), fmt=None, rate=RATE, name=None, timeout=TIMEOUT):
        name = name or "record%d" % len(self.popens)
        d = self.tmp_path
        out, truth, ready = d / ("%s.out" % name), d / ("%s.truth" % name), d / ("%s.ready" % name)
        stdout_path, stderr_path = d / ("%s.stdout" % name), d / ("%s.stderr" % name)
        argv = [PY, "-m", "pyprof_ebpf", "record", "-o", str(out)]
        if rate is not None:
            argv += ["-r", str(rate)]
        if fmt is not None:
            argv += ["-f", fmt]
        argv += [*flags, "--", *cmd]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update(PYPROF_TRUTH=str(truth), PYPROF_READY=str(ready))
        self.truths.append(truth)
        # Files, not pipes (see helpers_tree.AuditSession); a new session so that teardown can
        # kill the whole process group, orphans included, even if record is killed first.
        with open(stdout_path, "w") as o, open(stderr_path, "w") as e:
            popen = subprocess.Popen(argv, cwd=str(REPO), env=env, stdin=subprocess.DEVNULL,
                                     stdout=o, stderr=e, start_new_session=True)
        self.popens.append(popen)
        try:
            popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill(popen)
            raise AssertionError("record did not end within %d s: %s\nstderr:\n%s\n%s" % (
                timeout, " ".join(argv), stderr_path.read_text(errors="replace")[-3000:],
                ht.Truth(truth))) from None
        return RecordRun(argv, popen.pid, popen.returncode, stdout_path, stderr_path, out,
                         truth, ready, rate)

    @staticmethod
    def _kill(popen):
        try:
            os.killpg(popen.pid, signal.SIGKILL)  # the pgid lives while any member does
        except (ProcessLookupError, PermissionError):
            pass
        if popen.poll() is None:
            popen.kill()
        popen.wait()

    def cleanup(self):
        for popen in self.popens:
            self._kill(popen)
        ht.kill_truth_processes(*self.truths)


@pytest.fixture
def record(tmp_path):
    recorder = Recorder(tmp_path)
    try:
        yield recorder
    finally:
        recorder.cleanup()


# --------------------------------------------------------------------------- checks


HEADER_KEYS = ("mode", "interval")
FOOTER_KEYS = ("count", "errors", "lost", "left_running")


def check_austin_envelope(prof, run, rate=RATE):
    where = "\n" + run.context()
    missing = [k for k in HEADER_KEYS if k not in prof.header]
    assert not missing, "header lacks %s: %s%s" % (missing, prof.header, where)
    assert prof.header["mode"] == "cpu", prof.header
    if rate is not None:
        assert prof.header["interval"] == str(1_000_000 // rate), prof.header
    missing = [k for k in FOOTER_KEYS if k not in prof.footer]
    assert not missing, "footer lacks %s: %s%s" % (missing, prof.footer, where)
    assert re.fullmatch(r"\d+/\d+", prof.footer["errors"]), prof.footer
    assert prof.footer["lost"].isdigit() and prof.footer["left_running"].isdigit(), prof.footer
    assert int(prof.footer["count"]) >= len(prof.stacks) > 0, (
        "footer count %s < %d stack lines%s" % (prof.footer["count"], len(prof.stacks), where))


def in_span(frame, span):
    return span[0] <= frame.line <= span[1]


def check_frames_of(prof, pid, truth, names, run):
    """Frames named `names` (in pid's stacks) carry the target's file and a line of the function."""
    bad = [(f, s.tid) for s in prof.of(pid) for f in s.frames
           if f.function in names and (f.file != truth["file"]
                                       or not in_span(f, truth["functions"][f.function]))]
    assert not bad, "frames with the wrong file or a line outside the function (truth %s):\n%s\n%s" % (
        truth["functions"], "\n".join(map(str, bad[:20])), run.context())


def def_span(path, name):
    """[first, last] line of a top-level function in a source file (for seed.py)."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return [node.lineno, node.end_lineno]
    raise LookupError(name)


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("python", PYTHONS)
def test_split_shares_match_the_known_3_to_1(record, python):
    # GIVEN a target spending exactly 3/4 of its CPU in heavy() and 1/4 in light()
    # WHEN it is recorded at 1 kHz (~2,000 samples: a binomial sigma near 1 point, so the
    # 5-point bound is a real check rather than a coin that fails one run in ten at 200 Hz)
    run = record.run([python, SPLIT], rate=SPLIT_RATE)
    run.check_ok()
    prof, truth = run.austin, run.role("split")
    # THEN the leaf time of heavy vs light is 75/25 within 5 points
    by_name = prof.leaf_us(truth["pid"], key=lambda f: f.function)
    heavy, light = by_name["heavy"], by_name["light"]
    samples = (heavy + light) / (1_000_000 // SPLIT_RATE)
    assert samples >= 50, "only %.0f samples in heavy/light\n%s\n%s" % (
        samples, prof.summary(truth["pid"]), run.context())
    share = 100.0 * heavy / (heavy + light)
    sigma = 100.0 * (0.75 * 0.25 / samples) ** 0.5
    assert abs(share - 75.0) <= 5.0, (
        "heavy got %.1f%% of heavy+light (truth 75%%; ~%.0f samples, binomial sigma %.1f)\n%s"
        % (share, samples, sigma, prof.summary(truth["pid"])))
    # AND the names, the file and the line numbers are right
    check_frames_of(prof, truth["pid"], truth, ("heavy", "light"), run)


@pytest.mark.parametrize("python", PYTHONS)
def test_hotline_is_the_top_leaf_line(record, python):
    # GIVEN a function whose time is almost all on one line
    run = record.run([python, HOTLINE])
    run.check_ok()
    prof, truth = run.austin, run.role("hotline")
    # THEN the heaviest leaf (file, line) is that line, in hot()
    leaves = prof.leaf_us(truth["pid"])
    assert leaves, "no samples of the target\n" + run.context()
    top, us = leaves.most_common(1)[0]
    expected = Frame(truth["file"], truth["function"], truth["line"])
    assert top == expected, "top leaf %s (%d us), expected %s\n%s" % (
        top, us, expected, prof.summary(truth["pid"]))


@pytest.mark.parametrize("python", PYTHONS)
def test_threads_are_told_apart_by_native_tid(record, python):
    # GIVEN three CPU-bound threads in distinct functions and a main thread in join()
    run = record.run([python, THREADS])
    run.check_ok()
    prof, truth = run.austin, run.role("threads")
    # THEN each worker function is seen on exactly its own thread's native id
    tids = defaultdict(set)
    for s in prof.of(truth["pid"]):
        for f in s.frames:
            if f.function in truth["threads"]:
                tids[f.function].add(s.tid)
    assert dict(tids) == {name: {tid} for name, tid in truth["threads"].items()}, (
        "worker -> tids seen %s; truth %s\n%s" % (dict(tids), truth["threads"],
                                                  prof.summary(truth["pid"])))
    assert len(set(truth["threads"].values()) | {truth["main_tid"]}) == 4
    check_frames_of(prof, truth["pid"], truth, tuple(truth["threads"]), run)


@pytest.mark.parametrize("python", PYTHONS)
def test_non_ascii_names_and_path_survive(record, python):
    # GIVEN a target at a non-ASCII path with a non-ASCII function and method
    run = record.run([python, UNICODE])
    run.check_ok()
    prof, truth = run.austin, run.role("unicode")
    assert truth["file"] == UNICODE
    # THEN after unescape the names and the path are exactly the source's
    names = {f.function for s in prof.of(truth["pid"]) for f in s.frames if f.file == UNICODE}
    assert "функция" in names, "%s\n%s" % (sorted(names), prof.summary(truth["pid"]))
    # qualname from co_qualname (3.11+); before it, a code object only knows "méthode"
    method = {"Ключ.méthode"} if truth["co_qualname"] else {"Ключ.méthode", "méthode"}
    assert names & method, "no %s among %s\n%s" % (method, sorted(names),
                                                  prof.summary(truth["pid"]))
    spans = dict(truth["functions"], **{"méthode": truth["functions"]["Ключ.méthode"]})
    check_frames_of(prof, truth["pid"], dict(truth, functions=spans),
                    ("функция", "Ключ.méthode", "méthode"), run)


@pytest.mark.parametrize("python", PYTHONS)
def test_deep_stacks_are_truncated_at_the_root_end_and_marked(record, python):
    # GIVEN 300 recursive frames above a busy bottom() (more than the frame limit)
    run = record.run([python, DEEP])
    run.check_ok()
    prof, truth = run.austin, run.role("deep")
    bottom = [s for s in prof.of(truth["pid"]) if s.leaf and s.leaf.function == truth["bottom"]]
    assert bottom, "bottom() never seen as a leaf\n%s\n%s" % (prof.summary(truth["pid"]),
                                                             run.context())
    # THEN every stack ending in bottom() starts with the marker, has lost frames at the root
    # end only (what remains is descend ... descend, bottom), and is shorter than the truth
    bad = [s for s in bottom if not s.truncated or len(s.frames) - 1 >= truth["stack_depth"]
           or {f.function for f in s.frames[1:-1]} != {truth["recursive"]}]
    assert not bad, "badly truncated stacks (truth depth %d):\n%s" % (
        truth["stack_depth"], "\n".join("%d frames: %s ... %s" % (
            len(s.frames), s.frames[:3], s.frames[-2:]) for s in bad[:10]))
    check_frames_of(prof, truth["pid"], truth, ("descend", "bottom"), run)


@pytest.mark.parametrize("python", PYTHONS)
def test_asyncio_coroutines_appear(record, python):
    run = record.run([python, ASYNCIO])
    run.check_ok()
    prof, truth = run.austin, run.role("asyncio")
    leaves = prof.leaf_us(truth["pid"], key=lambda f: f.function)
    for name in truth["coroutines"]:
        assert leaves[name] > 0, "coroutine %s never a leaf\n%s" % (name,
                                                                     prof.summary(truth["pid"]))
    check_frames_of(prof, truth["pid"], truth, tuple(truth["coroutines"]), run)


@pytest.mark.parametrize("python", PYTHONS)
def test_short_lived_children_are_sampled(record, python):
    # GIVEN a parent that runs five children with ~50 ms of CPU each, one after the other
    run = record.run([python, SHORT_CHILD])
    run.check_ok()
    prof = run.austin
    parent = run.role("parent")
    children = {r["pid"]: r for r in run.truth.selves if r["role"] == "child"}
    assert sorted(children) == sorted(parent["children"]) and len(children) == 5, run.truth
    assert prof.header.get("multiprocess") == "on", prof.header
    # THEN at least 4 of them show brief() frames under their own pid
    seen = {pid for pid, rec in children.items()
            if any(f.function == "brief" and f.file == rec["file"] and in_span(f, rec["span"])
                   for s in prof.of(pid) for f in s.frames)}
    assert len(seen) >= 4, "children with brief() samples: %s of %s; pids in profile: %s\n%s" % (
        sorted(seen), sorted(children), sorted(prof.pids), prof.summary())


def test_seed_follow_orphans_profiles_the_grandchild_to_its_end(record):
    # GIVEN the seed tree, whose grandchild count()s for ~1.5 s after the root has exited
    run = record.run([PY, SEED], flags=["--follow-orphans"])
    assert run.returncode == 0, run.context()
    prof = run.austin
    root, grandchild = run.role("root"), run.role("grandchild")
    # THEN the grandchild's count() is there with lines inside count()
    span = def_span(SEED, "count")
    counted = [f for s in prof.of(grandchild["pid"]) for f in s.frames if f.function == "count"]
    assert counted, "no count() frames under the grandchild pid %d; pids %s\n%s" % (
        grandchild["pid"], sorted(prof.pids), prof.summary())
    assert all(f.file == SEED and in_span(f, span) for f in counted), set(counted)
    # AND all of it: count() (33 M iterations) outweighs the root's burn() (2 x 6.5 M) ~2.5:1
    count_us = prof.leaf_us(grandchild["pid"], key=lambda f: f.function)["count"]
    burn_us = prof.leaf_us(root["pid"], key=lambda f: f.function)["burn"]
    assert count_us > 1.5 * burn_us > 0, "count %d us vs burn %d us\n%s" % (
        count_us, burn_us, prof.summary())
    assert prof.footer["left_running"] == "0", prof.footer


def test_seed_root_exit_reports_the_grandchild_left_running(record):
    # GIVEN the seed tree in the default mode (the session ends with the root)
    run = record.run([PY, SEED])
    assert run.returncode == 0, run.context()
    prof = run.austin
    root = run.role("root")
    grandchild = ht.wait_for_truth(run.truth.path, lambda r: r.get("role") == "grandchild"
                                   and "start_ticks" in r, timeout=30, what="grandchild record")
    # THEN the root's burn() is profiled, and the grandchild is reported as left running
    assert prof.leaf_us(root["pid"], key=lambda f: f.function)["burn"] > 0, prof.summary()
    assert prof.footer["left_running"] == "1", prof.footer
    assert re.search(r"\b1\b[^\n]*left running|left running[^\n]*\b1\b", run.stderr, re.I), (
        "stderr should say that 1 process was left running\n" + run.context())
    assert grandchild["pid"] not in (root["pid"], run.pid)  # the fixture kills it at teardown


@pytest.mark.parametrize("ft", pythons.python_params([pythons.free_threaded_python()]))
def test_free_threaded_build_is_refused_by_name_not_profiled_as_garbage(record, ft):
    # GIVEN a real free-threaded CPython 3.13t (32-byte object headers: our walk cannot read it)
    # WHEN it runs the split target under record
    run = record.run([ft, SPLIT], rate=SPLIT_RATE)
    run.check_ok()
    pid = run.role("split")["pid"]
    # THEN record names the process, the build and how many samples it left out
    m = re.search(r"pid %d not profiled \((\d+) samples left out\): free-threaded Python "
                  r"3\.13\.\d+t is not supported" % pid, run.stderr)
    assert m and int(m.group(1)) > 0, run.context()
    # AND the profile holds no stack of it (no frames read with the wrong layout)
    assert not [ln for ln in run.text.splitlines() if ln.startswith("P%d;" % pid)], run.context()


def test_exit_status_is_the_commands(record):
    # GIVEN a command that exits 3 WHEN it is recorded THEN record exits 3 as well
    run = record.run([PY, "-c", "import sys; sys.exit(3)"])
    assert run.returncode == 3, run.context()


def test_austin_output_reads_with_austin_python(record):
    try:
        from austin.events import AustinSample
        from austin.format.collapsed_stack import AustinFileReader
    except ImportError:
        pytest.skip("austin-python is not installed (pip install 'austin-python>=2.1,<3')")
    run = record.run([PY, SPLIT])
    run.check_ok()
    ours = run.austin
    with open(run.out_path, encoding="utf-8") as f, AustinFileReader(f) as reader:
        events = list(reader)
        meta = reader.metadata
    samples = [e for e in events if isinstance(e, AustinSample)]
    assert any(s.frames for s in samples if s.pid == run.role("split")["pid"]), run.context()
    assert meta["mode"] == "cpu" and meta["interval"] == str(INTERVAL_US), meta
    # austin-python and our parser agree on every line: pid, iid, thread, frames and µs
    theirs = Counter()
    for s in samples:
        frames = tuple(Frame(unescape(f.filename), unescape(f.function), f.line)
                       for f in s.frames or ())
        theirs[(s.pid, s.iid, int(s.thread), frames)] += s.metrics.time
    mine = Counter()
    for s in ours.stacks:
        mine[(s.pid, s.iid, s.tid, s.frames)] += s.us
    assert theirs == mine
    names = {f.function for s in samples for f in s.frames or ()}
    assert {"heavy", "light"} <= names, sorted(names)


def test_folded_output(record):
    run = record.run([PY, SPLIT], fmt="folded")
    run.check_ok()
    lines = run.text.split("\n")
    assert lines[-1] == "" and lines[:-1], run.context()
    bad = [line for line in lines[:-1] if not re.fullmatch(r".+ \d+", line)]
    assert not bad, "lines not of the form 'frames count':\n%s" % "\n".join(bad[:10])
    assert any(";heavy (%s:" % SPLIT in line for line in lines), "\n".join(lines[:20])
    assert any(";light (%s:" % SPLIT in line for line in lines), "\n".join(lines[:20])


def test_speedscope_output(record):
    run = record.run([PY, SPLIT], fmt="speedscope")
    run.check_ok()
    doc = json.loads(run.text)
    assert doc["$schema"] == SPEEDSCOPE_SCHEMA
    frames, profiles = doc["shared"]["frames"], doc["profiles"]
    assert profiles and all(p["type"] == "sampled" and len(p["samples"]) == len(p["weights"])
                            for p in profiles)
    assert all(0 <= i < len(frames) for p in profiles for st in p["samples"] for i in st)
    names = {(unescape(f["name"]), unescape(f.get("file", ""))) for f in frames}
    assert {("heavy", SPLIT), ("light", SPLIT)} <= names, sorted(names)[:40]
