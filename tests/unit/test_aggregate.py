"""Behaviour of pyprof_ebpf.aggregate: stack counting, truncation marker, self time, merging."""

from __future__ import annotations

import pytest

from pyprof_ebpf.aggregate import TRUNCATED, Frame, Metadata, Profile, Sample

MAIN = Frame("/app/main.py", "<module>", 1)
RUN = Frame("/app/main.py", "run", 10)
WORK = Frame("/app/work.py", "Worker.step", 20)
WORK_L2 = Frame("/app/work.py", "Worker.step", 22)


def sample(*frames, pid=100, tid=100, iid=0, us=1000, truncated=False):
    return Sample(pid, tid, iid, tuple(frames), us, truncated)


def test_identical_stacks_in_one_thread_collapse_to_one_entry_with_summed_count_and_time():
    # GIVEN three samples of the same stack in one thread, and one in another thread
    p = Profile()
    for us in (1000, 1000, 500):
        p.add(sample(MAIN, RUN, us=us))
    p.add(sample(MAIN, RUN, tid=101))
    # WHEN the stacks are listed
    rows = [(k.pid, k.tid, k.frames, n, us) for k, n, us in p.stacks()]
    # THEN each thread keeps its own entry and totals add up
    assert rows == [(100, 100, (MAIN, RUN), 3, 2500), (100, 101, (MAIN, RUN), 1, 1000)]
    assert (p.sample_count, p.total_us) == (4, 3500)


def test_interpreter_id_separates_stacks():
    p = Profile()
    p.add(sample(MAIN, iid=0))
    p.add(sample(MAIN, iid=1))
    assert sorted(k.iid for k, _, _ in p.stacks()) == [0, 1]


def test_truncated_sample_gets_marker_at_root_end_and_differs_from_complete_stack():
    p = Profile()
    p.add(sample(RUN, WORK, truncated=True))
    p.add(sample(RUN, WORK))
    stacks = sorted(k.frames for k, _, _ in p.stacks())
    assert (TRUNCATED, RUN, WORK) in stacks and (RUN, WORK) in stacks
    assert TRUNCATED.kind == "marker"


def test_threads_groups_stacks_per_pid_iid_tid():
    p = Profile()
    p.add(sample(MAIN, RUN, pid=1, tid=1))
    p.add(sample(MAIN, WORK, pid=1, tid=1))
    p.add(sample(MAIN, pid=2, tid=7))
    t = p.threads()
    assert set(t) == {(1, 0, 1), (2, 0, 7)}
    assert sorted(f for f, _, _ in t[(1, 0, 1)]) == sorted([(MAIN, RUN), (MAIN, WORK)])


def test_top_functions_charges_leaf_only_and_merges_lines_unless_asked():
    # GIVEN Worker.step as leaf on two lines (300 + 100 µs), run as leaf (600 µs) and an
    # empty stack (thread outside Python, 1000 µs) that no function may be charged for
    p = Profile()
    p.add(sample(MAIN, RUN, WORK, us=300))
    p.add(sample(MAIN, RUN, WORK_L2, us=100))
    p.add(sample(MAIN, RUN, us=600))
    p.add(sample(us=1000))
    p.add(sample(us=0, truncated=True))  # only the marker: not a function either
    # WHEN ranked by function
    top = p.top_functions(5)
    # THEN run leads, Worker.step's lines merge (line reported as 0), MAIN has no self time
    assert [(s.frame.function, s.frame.line, s.self_us) for s in top] == [
        ("run", 0, 600), ("Worker.step", 0, 400)]
    assert top[0].share == pytest.approx(600 / 2000)
    # AND by line the two lines stay apart
    by_line = p.top_functions(5, by_line=True)
    assert [(s.frame.line, s.self_us) for s in by_line] == [(10, 600), (20, 300), (22, 100)]
    assert len(p.top_functions(1)) == 1


def test_top_functions_of_empty_profile_is_empty():
    assert Profile().top_functions() == []


def test_merge_adds_stacks_counters_and_process_facts():
    a, b = Profile(Metadata(errors=1, lost=2)), Profile(Metadata(errors=3, left_running=1))
    a.add(sample(MAIN, us=10))
    b.add(sample(MAIN, us=5))
    b.add(sample(RUN, pid=9, us=7))
    b.set_process(9, "worker", "3.12.1")
    a.merge(b)
    assert [(k.pid, k.frames, n, us) for k, n, us in a.stacks()] == [
        (9, (RUN,), 1, 7), (100, (MAIN,), 2, 15)]  # sorted by pid
    assert (a.sample_count, a.total_us) == (3, 22)
    assert (a.meta.errors, a.meta.lost, a.meta.left_running) == (4, 2, 1)
    assert (a.process_names, a.python_versions) == ({9: "worker"}, {9: "3.12.1"})


def test_set_process_keeps_earlier_fields_when_given_none():
    p = Profile()
    p.set_process(5, "python3", "3.11.4")
    p.set_process(5, name="renamed")
    assert (p.process_names[5], p.python_versions[5]) == ("renamed", "3.11.4")
    p.set_process(5, python_version="3.12.0")
    assert (p.process_names[5], p.python_versions[5]) == ("renamed", "3.12.0")


def test_duration_is_microseconds_between_start_and_end():
    assert Metadata(start_time=10.0, end_time=12.5).duration_us == 2_500_000
    assert Metadata().duration_us == 0


def test_kernel_and_native_frames_use_austin_spelling():
    assert Frame.kernel("do_syscall_64") == ("kernel", "do_syscall_64", 0, "kernel")
    assert Frame.native("libc.so.6", "poll").kind == "native"
