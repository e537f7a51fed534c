"""Behaviour of pyprof_ebpf.output: format grammars under hostile names, and safe file opening.

The Austin tests parse our output with austin-python's own reader, the folded tests with the
regexes flamegraph.pl and speedscope use, and the speedscope tests with a JSON schema written
from speedscope's file-format-spec.ts. Names come from target memory, so every test that can
uses names built to break a naive writer.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import re
import signal
import stat

import pytest

from pyprof_ebpf.aggregate import Frame, Metadata, Profile, Sample
from pyprof_ebpf.errors import UsageError
from pyprof_ebpf.output import (WRITERS, default_filename, escape, open_output, unescape,
                                write_austin, write_folded, write_speedscope)

# Each string attacks one thing: the frame separator, the " <metric>" tail, line breaks of every
# kind str.splitlines knows, Austin's "file:function:line" split, our own escape character,
# undecodable bytes (surrogateescape) and plain non-ASCII that must survive as is.
HOSTILE_FILES = ["/tmp/a;b.py", "/tmp/x 123", "/tmp/new\nline.py", "/tmp/cr\r.py",
                 "C:\\odd\\path.py", "/tmp/ünï.py", "/tmp/bad\udcff.py", "/tmp/ls\u2028.py",
                 "/tmp/x:1"]
HOSTILE_FUNCS = ["with space: and colon", "semi;colon", "tab\there", "GC2", "名前.λ",
                 "\\x3b", "nl\n 99", "ff\x0cvt\x0b"]


def hostile_profile() -> Profile:
    p = Profile(Metadata(mode="cpu", rate_hz=100, interval_us=10_000, multiprocess=True,
                         command=["python3", "evil\nname.py"], start_time=100.0,
                         end_time=101.5, errors=2, lost=3, left_running=1))
    p.set_process(4242, "py;th\non 3", "3.11.4")
    p.set_process(7, "worker", "3.12.1")
    for i, (f, fn) in enumerate(zip(HOSTILE_FILES, HOSTILE_FUNCS + ["last"])):
        frames = (Frame("/app/main.py", "<module>", 1), Frame(f, fn, i + 1))
        p.add(Sample(4242, 4243 + i % 2, 0, frames, 1000 + i, truncated=(i == 3)))
        p.add(Sample(4242, 4243 + i % 2, 0, frames, 10))  # same stack again: one line, summed
    p.add(Sample(7, 7, 1, (Frame("/w.py", "loop", 5), Frame.kernel("do_sys_poll")), 500))
    p.add(Sample(7, 8, 0, (), 250))  # a thread caught outside Python code
    p.add(Sample(7, 7, 1, (Frame("/w.py", "idle", 9),), 0))  # weight 0: speedscope must drop
    return p


def render(writer, profile, **kw) -> str:
    buf = io.StringIO()
    writer(profile, buf, **kw)
    return buf.getvalue()


# --- escaping ---------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", HOSTILE_FILES + HOSTILE_FUNCS, ids=repr)
def test_escape_removes_every_line_break_and_round_trips(raw):
    text = escape(raw)
    assert len(text.splitlines()) <= 1 and "\r" not in text and "\n" not in text
    text.encode("utf-8")  # lone surrogates are gone, so a strict UTF-8 file can hold it
    assert unescape(text) == raw


def test_escape_leaves_ordinary_names_and_non_ascii_alone():
    assert escape("/usr/lib/python3.11/threading.py") == "/usr/lib/python3.11/threading.py"
    assert escape("Thread._bootstrap <lambda> 名前") == "Thread._bootstrap <lambda> 名前"


# --- Austin -----------------------------------------------------------------------------------

def _austin_reader():
    try:
        from austin.format.collapsed_stack import AustinFileReader
    except ImportError:
        pytest.skip("austin-python is not installed (pip install 'austin-python>=2.1,<3')")
    return AustinFileReader


def test_austin_small_profile_matches_golden_text():
    p = Profile(Metadata(mode="cpu", interval_us=10_000, start_time=1.0, end_time=3.0))
    p.set_process(10, "python3", "3.11.4")
    p.add(Sample(10, 11, 0, (Frame("/a.py", "main", 3), Frame("/a.py", "C.f", 7)), 10_000))
    p.add(Sample(10, 11, 0, (Frame("/a.py", "main", 3), Frame("/a.py", "C.f", 7)), 9_000))
    p.add(Sample(10, 12, 0, (), 10_000))
    text = render(write_austin, p)
    body = text.split("\n", 1)[1]  # the first line carries our version
    assert text.startswith("# pyprof-ebpf: ")
    assert body == ("# mode: cpu\n# interval: 10000\n# python: 3.11.4\n\n"
                    "P10;T0:11;/a.py:main:3;/a.py:C.f:7 19000\n"
                    "P10;T0:12 10000\n\n"
                    "# count: 3\n# duration: 2000000\n# errors: 0/3\n# lost: 0\n"
                    "# left_running: 0\n")


def test_austin_hostile_names_round_trip_through_austin_python(tmp_path):
    reader_cls = _austin_reader()
    from austin.events import AustinMetadata, AustinSample

    # GIVEN a profile full of hostile names, written to a real file
    p = hostile_profile()
    path = tmp_path / "p.austin"
    with open_output(str(path)) as out:
        write_austin(p, out)
    # WHEN austin-python reads it back (it iterates the file with universal newlines)
    with path.open() as f, reader_cls(f) as reader:
        events = list(reader)
        meta = reader.metadata
    samples = [e for e in events if isinstance(e, AustinSample)]
    assert all(isinstance(e, (AustinSample, AustinMetadata)) for e in events)
    # THEN there is one sample per distinct stack with the right pid/iid/thread and µs
    expected = {(k.pid, k.iid, str(k.tid), k.frames): us for k, _, us in p.stacks()}
    got = {}
    for s in samples:
        frames = tuple((unescape(fr.filename), unescape(fr.function), fr.line)
                       for fr in s.frames or ())
        got[(s.pid, s.iid, s.thread, frames)] = s.metrics.time
    strip_kind = {(pid, iid, tid, tuple(f[:3] for f in frames)): us
                  for (pid, iid, tid, frames), us in expected.items()}
    assert got == strip_kind
    assert sum(s.metrics.time for s in samples) == p.total_us
    # AND the frame count per sample is exact (nothing split, nothing merged)
    assert sorted(len(s.frames or ()) for s in samples) == sorted(
        len(k.frames) for k, _, _ in p.stacks())
    # AND the metadata the Austin tools need is there and parsed to the right values
    assert meta["mode"] == "cpu" and meta["interval"] == "10000"
    assert meta["multiprocess"] == "on" and meta["python"] == "3.11.4,3.12.1"
    assert unescape(meta["command"]) == "python3 evil\nname.py"
    assert meta["errors"] == f"2/{p.sample_count + 2}" and meta["lost"] == "3"
    assert meta["duration"] == "1500000"


def test_austin_marks_truncated_stacks_and_kernel_frames_like_austin():
    text = render(write_austin, hostile_profile())
    assert re.search(r"^P4242;T0:\d+;:<truncated>:0;/app/main\.py:<module>:1;", text, re.M)
    assert "P7;T1:7;/w.py:loop:5;kernel:do_sys_poll:0 500\n" in text
    assert "P7;T0:8 250\n" in text


def test_austin_output_is_accepted_by_austin_python_converters(tmp_path):
    reader_cls = _austin_reader()
    from austin.format.compress import compress
    from austin.format.speedscope import Speedscope

    text = render(write_austin, hostile_profile())
    out = io.StringIO()
    compress(reader_cls(io.StringIO(text)), out)  # austin-compress needs "# mode"
    converter = Speedscope("t", "cpu")
    n = 0
    for event in reader_cls(io.StringIO(out.getvalue())):
        if hasattr(event, "frames"):
            converter.add_sample(event)
            n += 1
    assert n == sum(1 for _ in hostile_profile().stacks())
    assert sum(sum(pr["weights"]) for pr in converter.asdict()["profiles"]) == (
        hostile_profile().total_us - 250)  # austin2speedscope drops frame-less samples


# --- folded -----------------------------------------------------------------------------------

FLAMEGRAPH_RE = re.compile(r"^(.*)\s+?(\d+(?:\.\d*)?)$")  # flamegraph.pl
SPEEDSCOPE_FOLDED_RE = re.compile(r"^(.*) (\d+)$")  # speedscope src/import/bg-flamegraph.ts


def test_folded_hostile_names_keep_one_line_and_exact_frames_per_stack():
    p = hostile_profile()
    text = render(write_folded, p)
    lines = text.splitlines()
    assert len(lines) == len(text.split("\n")) - 1  # no stray line breaks of any kind
    # frames per line = root process frame + the stack's frames
    expected = sorted((len(k.frames) + 1, n) for k, n, _ in p.stacks())
    got = []
    for line in lines:
        m = FLAMEGRAPH_RE.match(line)
        assert m and SPEEDSCOPE_FOLDED_RE.match(line), line
        got.append((len(m.group(1).split(";")), int(m.group(2))))
    assert sorted(got) == expected
    assert sum(n for _, n in got) == p.sample_count


def test_folded_frame_spelling_root_thread_kernel_and_marker():
    p = hostile_profile()
    text = render(write_folded, p, threads=True)
    assert "worker (7);thread (1:7);loop (/w.py:5);do_sys_poll_[k] 1\n" in text
    assert "worker (7);thread (8) 1\n" in text
    assert re.search(r"^py\\x3bth\\x0aon 3 \(4242\);thread \(4244\);<truncated>;", text, re.M)
    assert "with space: and colon (/tmp/a\\x3bb.py:1)" in text


def test_folded_without_threads_merges_thread_lines():
    p = Profile()
    f = (Frame("/a.py", "f", 1),)
    p.add(Sample(1, 1, 0, f, 10))
    p.add(Sample(1, 2, 0, f, 10))
    assert render(write_folded, p) == "process (1);f (/a.py:1) 2\n"
    assert render(write_folded, p, threads=True).count("\n") == 2


# --- speedscope -------------------------------------------------------------------------------

# Written from jlfwong/speedscope src/lib/file-format-spec.ts (sampled profiles only: we never
# write evented ones, and accepting them here would let a wrong "type" slip through).
SPEEDSCOPE_SCHEMA = {
    "type": "object",
    "required": ["$schema", "shared", "profiles"],
    "properties": {
        "$schema": {"const": "https://www.speedscope.app/file-format-schema.json"},
        "shared": {"type": "object", "required": ["frames"], "properties": {"frames": {
            "type": "array", "items": {
                "type": "object", "required": ["name"], "additionalProperties": False,
                "properties": {"name": {"type": "string"}, "file": {"type": "string"},
                               "line": {"type": "number"}, "col": {"type": "number"}}}}}},
        "profiles": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["type", "name", "unit", "startValue", "endValue", "samples", "weights"],
            "properties": {
                "type": {"const": "sampled"}, "name": {"type": "string"},
                "unit": {"enum": ["none", "nanoseconds", "microseconds", "milliseconds",
                                  "seconds", "bytes"]},
                "startValue": {"type": "number"}, "endValue": {"type": "number"},
                "samples": {"type": "array", "items": {"type": "array",
                                                       "items": {"type": "integer",
                                                                 "minimum": 0}}},
                "weights": {"type": "array", "items": {"type": "number",
                                                       "exclusiveMinimum": 0}}}}},
        "name": {"type": "string"}, "activeProfileIndex": {"type": "number"},
        "exporter": {"type": "string"},
    },
}


def test_speedscope_one_sampled_profile_per_thread_with_valid_indices_and_weights():
    p = hostile_profile()
    doc = json.loads(render(write_speedscope, p))
    frames, profiles = doc["shared"]["frames"], doc["profiles"]
    # one profile per (pid, iid, tid)
    threads = {(k.pid, k.iid, k.tid) for k, _, _ in p.stacks()}
    assert len(profiles) == len(threads)
    assert sorted(pr["name"] for pr in profiles) == [
        "P4242 T4243 py;th\\x0aon 3", "P4242 T4244 py;th\\x0aon 3",
        "P7 T1:7 worker", "P7 T8 worker"]
    for pr in profiles:
        assert pr["unit"] == "microseconds" and pr["type"] == "sampled"
        assert len(pr["samples"]) == len(pr["weights"])
        assert pr["endValue"] - pr["startValue"] == sum(pr["weights"])
        assert all(0 <= i < len(frames) for s in pr["samples"] for i in s)
    assert sum(sum(pr["weights"]) for pr in profiles) == p.total_us
    # frames are shared, not repeated, and hostile names come back exactly after unescape
    assert len({json.dumps(f, sort_keys=True) for f in frames}) == len(frames)
    names = {unescape(f["name"]) for f in frames}
    assert set(HOSTILE_FUNCS) <= names and "do_sys_poll" in names
    # frames without a line (kernel) or file (markers) leave the optional keys out
    assert {"name": "do_sys_poll", "file": "kernel"} in frames
    assert {"name": "<truncated>"} in frames


def test_speedscope_validates_against_schema_from_spec():
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema not installed")
    jsonschema.validate(json.loads(render(write_speedscope, hostile_profile())),
                        SPEEDSCOPE_SCHEMA)
    # the schema is not vacuous: a zero weight, as speedscope would drop, is rejected
    bad = json.loads(render(write_speedscope, hostile_profile()))
    bad["profiles"][0]["weights"][0] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SPEEDSCOPE_SCHEMA)


def test_speedscope_root_to_leaf_order():
    p = Profile()
    a, b = Frame("/a.py", "outer", 1), Frame("/a.py", "inner", 2)
    p.add(Sample(1, 1, 0, (a, b), 5))
    doc = json.loads(render(write_speedscope, p))
    names = [doc["shared"]["frames"][i]["name"] for i in doc["profiles"][0]["samples"][0]]
    assert names == ["outer", "inner"]


# --- registry and file names ------------------------------------------------------------------

def test_writers_registry_names_every_format():
    assert WRITERS == {"austin": write_austin, "folded": write_folded,
                       "speedscope": write_speedscope}


@pytest.mark.parametrize("cmd,fmt,expected", [
    ("python3", "austin", "pyprof-python3-20240102-030405.austin"),
    ("/usr/bin/my app;rm -rf", "folded", "pyprof-my_app_rm_-rf-20240102-030405.folded"),
    ("../../etc/passwd", "speedscope", "pyprof-passwd-20240102-030405.speedscope.json"),
    ("..", "austin", "pyprof-profile-20240102-030405.austin"),
    ("\n", "austin", "pyprof-profile-20240102-030405.austin"),
], ids=["plain", "spaces-and-semicolon", "traversal", "dots-only", "newline"])
def test_default_filename_is_sanitised(cmd, fmt, expected):
    when = datetime.datetime(2024, 1, 2, 3, 4, 5)
    assert default_filename(cmd, fmt, when) == expected
    assert "/" not in default_filename(cmd, fmt, when)


def test_default_filename_rejects_unknown_format():
    with pytest.raises(UsageError, match="unknown output format"):
        default_filename("x", "pprof")


# --- open_output ------------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
NOBODY = 65534


def test_dash_and_none_mean_stdout(capsys):
    for path in (None, "-"):
        with open_output(path) as out:
            out.write("hello\n")
    assert capsys.readouterr().out == "hello\n" * 2


def test_new_file_is_created_regular_utf8_and_truncated_on_reuse(tmp_path):
    path = tmp_path / "p.austin"
    with open_output(str(path)) as out:
        out.write("long first content ü\n")
    with open_output(str(path)) as out:
        out.write("short\n")
    assert path.read_bytes() == b"short\n"
    assert stat.S_ISREG(path.lstat().st_mode)


def test_planted_symlink_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "shadow"
    victim.write_text("root:secret\n")
    link = tmp_path / "x.austin"
    link.symlink_to(victim)
    with pytest.raises(UsageError, match="symbolic link"):
        with open_output(str(link)) as out:
            out.write("pwned")
    assert victim.read_text() == "root:secret\n"


def test_dangling_symlink_is_refused_and_nothing_is_created(tmp_path):
    link = tmp_path / "x.austin"
    link.symlink_to(tmp_path / "would-be-created")
    with pytest.raises(UsageError, match="symbolic link"):
        with open_output(str(link)):
            pass
    assert not (tmp_path / "would-be-created").exists()


@needs_root
def test_foreign_owned_file_is_refused_and_untouched(tmp_path):
    planted = tmp_path / "x.austin"
    planted.write_text("theirs\n")
    os.chown(planted, NOBODY, NOBODY)
    with pytest.raises(UsageError, match=f"owned by uid {NOBODY}") as exc:
        with open_output(str(planted)):
            pass
    assert exc.value.remedy
    assert planted.read_text() == "theirs\n"


@needs_root
def test_file_of_the_intended_owner_is_overwritten(tmp_path):
    mine = tmp_path / "x.austin"
    mine.write_text("old old old\n")
    os.chown(mine, NOBODY, NOBODY)
    with open_output(str(mine), owner_uid=NOBODY) as out:
        out.write("new\n")
    assert mine.read_text() == "new\n"


@needs_root
def test_new_file_is_chowned_to_owner_uid_and_gid(tmp_path):
    path = tmp_path / "x.austin"
    with open_output(str(path), owner_uid=NOBODY, owner_gid=NOBODY) as out:
        out.write("x\n")
    st = path.stat()
    assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY)


def test_failed_chown_is_a_usage_error_not_a_traceback(tmp_path, monkeypatch):
    def eperm(*_):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchown", eperm)
    with pytest.raises(UsageError, match="Operation not permitted"):
        with open_output(str(tmp_path / "x.austin"), owner_uid=NOBODY):
            pass


def test_hard_link_to_another_file_is_refused(tmp_path):
    victim = tmp_path / "passwd"
    victim.write_text("keep\n")
    os.link(victim, tmp_path / "x.austin")
    with pytest.raises(UsageError, match="hard links"):
        with open_output(str(tmp_path / "x.austin")):
            pass
    assert victim.read_text() == "keep\n"


@needs_root
def test_parent_symlink_owned_by_another_user_is_refused(tmp_path):
    # GIVEN another user's symlink standing in for a directory (/tmp/d -> /etc)
    real = tmp_path / "etc"
    real.mkdir()
    (real / "shadow").write_text("secret\n")
    d = tmp_path / "d"
    d.symlink_to(real)
    os.lchown(d, NOBODY, NOBODY)
    # THEN writing through it is refused and the file behind it is untouched
    with pytest.raises(UsageError, match="symbolic link owned by uid"):
        with open_output(str(d / "shadow")):
            pass
    assert (real / "shadow").read_text() == "secret\n"
    # AND "d/.." does not sneak past the check (the kernel follows d before "..")
    with pytest.raises(UsageError, match="symbolic link owned by uid"):
        with open_output(str(d) + "/../etc/shadow"):
            pass
    assert (real / "shadow").read_text() == "secret\n"
    # AND a parent symlink of our own is fine
    os.lchown(d, os.geteuid(), os.getegid())
    with open_output(str(d / "new.austin")) as out:
        out.write("ok\n")
    assert (real / "new.austin").read_text() == "ok\n"


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "x.austin"
    os.mkfifo(fifo)

    def hung(*_):
        raise AssertionError("open_output blocked on a FIFO with no reader")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(5)  # a blocking open would hang the suite; make it a failure instead
    try:
        with pytest.raises(UsageError, match="not a regular file"):
            with open_output(str(fifo)):
                pass
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_fifo_with_a_reader_is_refused_too(tmp_path):
    # GIVEN a FIFO someone is reading from, so the open itself succeeds
    fifo = tmp_path / "x.austin"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        # THEN the regular-file check still refuses it and nothing reaches the reader
        with pytest.raises(UsageError, match="not a regular file"):
            with open_output(str(fifo)) as out:
                out.write("leak\n")
        assert os.read(reader, 10) == b""  # writer gone, no data: EOF
    finally:
        os.close(reader)


@pytest.mark.parametrize("make", ["dir", "trailing-slash", "missing-parent"])
def test_directories_and_missing_parents_are_usage_errors(tmp_path, make):
    path = {"dir": str(tmp_path), "trailing-slash": str(tmp_path) + "/",
            "missing-parent": str(tmp_path / "nope" / "x.austin")}[make]
    with pytest.raises(UsageError):
        with open_output(path):
            pass


def test_every_writer_through_open_output_produces_utf8_file(tmp_path):
    for name, writer in WRITERS.items():
        path = tmp_path / f"p.{name}"
        with open_output(str(path)) as out:
            writer(hostile_profile(), out)
        data = path.read_bytes()
        data.decode("utf-8")  # strict: no surrogates leaked
        assert b"\r" not in data and data.endswith(b"\n")
