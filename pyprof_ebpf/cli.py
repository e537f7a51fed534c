"""Command-line interface: the only module that prints to the terminal or picks exit codes.

Each command turns its options into calls on the library modules; every ``PyprofError`` that
reaches here becomes one line on stderr (cause: remedy) and the error's exit status, never a
traceback. Commands other than ``doctor`` check privileges first and fail with status 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

import click

from . import __version__
from .errors import PyprofError, UsageError

EXAMPLES_DOCTOR = """
\b
Examples:
  pyprof-ebpf doctor           # human-readable, one line per check
  pyprof-ebpf doctor --json    # for scripts; exit status 0 when ready
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pyprof-ebpf")
def cli() -> None:
    """System-wide eBPF sampling profiler for Python, with exact process-tree tracking."""


@cli.command(epilog=EXAMPLES_DOCTOR)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as a JSON list.")
def doctor(as_json: bool) -> None:
    """Check that this host can load and attach pyprof-ebpf's BPF programs."""
    from . import doctor as doc

    checks = doc.run_checks()
    ok = doc.ready(checks)
    if as_json:
        click.echo(json.dumps({"ready": ok, "checks": doc.as_json(checks)}, indent=2))
    else:
        marks = {True: "ok  ", False: "FAIL", None: "skip"}
        for c in checks:
            line = f"[{marks[c.ok]}] {c.name:<20} {c.detail}"
            if c.ok is False and c.remedy:
                line += f" -> {c.remedy}"
            click.echo(line)
        click.echo("ready" if ok else "NOT ready", err=not ok)
    sys.exit(0 if ok else 1)


EXAMPLES_AUDIT = """
\b
Examples:
  pyprof-ebpf audit -- python3 app.py          # the tree of app.py until it exits
  pyprof-ebpf audit --follow-orphans -- make   # until every descendant has exited
  pyprof-ebpf audit -p 1234 -d 30 -o tree.jsonl
  pyprof-ebpf audit --cgroup /sys/fs/cgroup/system.slice/nginx.service -d 60
  pyprof-ebpf audit --all -d 10 --format tree
"""


def target_options(fn):
    """Targets and session flags shared by the commands that track a process tree."""
    opts = [
        click.option("-p", "--pid", type=int, help="Track a running process and its descendants."),
        click.option("--all", "all_procs", is_flag=True, help="Track every process on the host."),
        click.option("--cgroup", type=click.Path(), help="Track the processes of a cgroup (v1 or v2)."),
        click.option("--follow-orphans", is_flag=True,
                     help="End when no tracked process is alive, orphans included "
                          "(default: end when the root process exits)."),
        click.option("-d", "--duration", type=click.FloatRange(min=0, min_open=True),
                     help="End after this many seconds."),
        click.option("--as-root", is_flag=True,
                     help="Under sudo, run the command as root instead of the invoking user."),
        click.option("--ring-pages", type=int, default=1024, show_default=True, hidden=True,
                     help="Pages of the event ring buffer (a power of two)."),
        click.argument("command", nargs=-1, type=click.UNPROCESSED),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _pick_target(command, pid, all_procs, cgroup) -> str:
    chosen = [name for name, on in (("command", bool(command)), ("-p", pid is not None),
                                    ("--all", all_procs), ("--cgroup", cgroup is not None)) if on]
    if len(chosen) != 1:
        raise UsageError("give exactly one target: -- COMMAND, -p PID, --all or --cgroup PATH"
                         + (f" (got {', '.join(chosen)})" if chosen else ""),
                         "see pyprof-ebpf audit --help")
    return chosen[0]


def _start_target(session, target, command, pid, cg, run_as) -> None:
    if target == "command":
        session.launch(list(command), run_as)
    elif target == "-p":
        session.attach(pid)
    elif target == "--all":
        session.attach_all()
    else:
        session.attach_cgroup(cg)


@cli.command(epilog=EXAMPLES_AUDIT, context_settings={"ignore_unknown_options": True})
@target_options
@click.option("-o", "--output", type=click.Path(), help="Write records here (default: stdout).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "tree"]),
              help="jsonl: one JSON record per event; tree: an indented tree at the end "
                   "(default: tree on a terminal, else jsonl).")
@click.option("--dump-events", type=click.Path(), hidden=True,
              help="Also write the raw kernel events as JSON lines (replay tests).")
def audit(command, pid, all_procs, cgroup, follow_orphans, duration, as_root, ring_pages, output, fmt,
          dump_events):
    """Record the lifetime of every process of a tree: forks, execs, exits with status."""
    from . import host
    from .audit import JsonLines, TreeView
    from .output import open_output
    from .session import SCOPES, Session, exit_status_of
    from .tracker import CgroupNames, CgroupTarget, RunAs, Tracker

    target = _pick_target(command, pid, all_procs, cgroup)
    host.require_privilege()
    cg = CgroupTarget.resolve(cgroup) if target == "--cgroup" else None
    run_as = None if as_root else RunAs.from_sudo()
    scope = SCOPES["all" if all_procs else "cgroup" if cg else "tree"]
    to_stdout = output in (None, "-")
    fmt = fmt or ("tree" if to_stdout and sys.stdout.isatty() else "jsonl")
    with open_output(output, owner_uid=run_as.uid if run_as else None,
                     owner_gid=run_as.gid if run_as else None) as out:
        sink = JsonLines(out) if fmt == "jsonl" else TreeView(out, host.clock_ticks())
        with Tracker(scope=scope, ring_pages=ring_pages, cgroup=cg) as tracker, \
                open_output(dump_events) if dump_events else contextlib.nullcontext() as dump:
            session = Session(tracker, sink.write, CgroupNames.default(), dump)
            _start_target(session, target, command, pid, cg, run_as)
            result = session.run(follow_orphans, duration)
            sink.write(session.tree.summary(result.lost_events, time.time(), {
                "reason": result.reason, "map_full": result.counters.get("map_full", 0)}))
        sink.close()
    _report_end(result, follow_orphans, output)
    sys.exit(exit_status_of(result.root_status) if target == "command" else 0)


EXAMPLES_RECORD = """
\b
Examples:
  pyprof-ebpf record -- python3 app.py               # Austin format, file named after app
  pyprof-ebpf record --follow-orphans -o p.austin -- python3 seed.py
  pyprof-ebpf record -r 1000 -f speedscope -o p.json -p 1234 -d 10
  pyprof-ebpf record --all -d 5 -f folded -o host.folded
"""


@cli.command(epilog=EXAMPLES_RECORD, context_settings={"ignore_unknown_options": True})
@target_options
@click.option("-r", "--rate", type=click.IntRange(1, 10000), default=100, show_default=True,
              help="Samples per second per CPU.")
@click.option("-o", "--output", type=click.Path(),
              help="Profile file (default: named after the command and the time).")
@click.option("-f", "--format", "fmt", type=click.Choice(["austin", "folded", "speedscope"]),
              default="austin", show_default=True, help="Output format.")
@click.option("--native", is_flag=True, help="Add the native frames below the innermost Python frame.")
@click.option("--kernel", is_flag=True, help="Add kernel frames at the leaf.")
def record(command, pid, all_procs, cgroup, follow_orphans, duration, as_root, ring_pages, rate,
           output, fmt, native, kernel):
    """Sample every thread of the tracked processes and write a Python profile."""
    from . import host
    from .aggregate import Metadata
    from .output import WRITERS, default_filename, open_output
    from .record import Recording
    from .sampler import Sampler
    from .session import SCOPES, Session, exit_status_of
    from .tracker import CgroupTarget, RunAs

    target = _pick_target(command, pid, all_procs, cgroup)
    host.require_privilege()
    cg = CgroupTarget.resolve(cgroup) if target == "--cgroup" else None
    run_as = None if as_root else RunAs.from_sudo()
    scope = SCOPES["all" if all_procs else "cgroup" if cg else "tree"]
    if output is None:
        name = os.path.basename(command[-1] if command and command[0].startswith("python") and len(command) > 1
                                else command[0]) if command else (f"pid{pid}" if pid else "all" if all_procs else "cgroup")
        output = default_filename(name, fmt)
    interval_us = round(1_000_000 / rate)
    meta = Metadata(mode="cpu", rate_hz=rate, interval_us=interval_us, multiprocess=True,
                    command=list(command), start_time=time.time())
    live = sys.stderr.isatty()
    with open_output(output, owner_uid=run_as.uid if run_as else None,
                     owner_gid=run_as.gid if run_as else None) as out:
        with Sampler(rate=rate, native=native, kernel=kernel, scope=scope, ring_pages=ring_pages,
                     cgroup=cg) as sampler:
            session = Session(sampler, lambda rec: None)
            rec = Recording(sampler, session)
            if live:
                session.tickers.append(_status_line(rec))
            _start_target(session, target, command, pid, cg, run_as)
            rec.add_existing()
            result = session.run(follow_orphans, duration)
            meta.end_time = time.time()
            meta.lost = sampler.sample_counters()["ring_drops"] + sampler.undecodable_samples
            meta.left_running = len(result.left_running)
            profile = rec.profile(meta, native, kernel)
        if live:
            click.echo("\r\033[K", nl=False, err=True)
        WRITERS[fmt](profile, out)
    _report_profile(profile, rec, output)
    _report_end(result, follow_orphans, None)
    sys.exit(exit_status_of(result.root_status) if target == "command" else 0)


def _status_line(rec):
    last = [0.0]

    def tick():
        now = time.monotonic()
        if now - last[0] >= 0.5:
            last[0] = now
            st = rec.status()
            click.echo(f"\rpyprof-ebpf: {st.samples} samples, {st.processes} processes, {st.lost} lost",
                       nl=False, err=True)
    return tick


def _report_profile(profile, rec, output) -> None:
    from .output import escape
    total = profile.sample_count
    click.echo(f"pyprof-ebpf: {total} samples from {len(profile.process_names)} processes, "
               f"{profile.meta.errors} errors, {profile.meta.lost} lost", err=True)
    for stat in profile.top_functions(5):
        f = stat.frame
        click.echo(f"  {stat.share * 100:5.1f}%  {escape(f.function)} ({escape(f.filename)})", err=True)
    for pid, why in sorted(rec.pythons.refused.items()):
        dropped = rec.refused_samples.get(pid, 0)
        click.echo(f"pyprof-ebpf: pid {pid} not profiled ({dropped} samples left out): {why}", err=True)
    if rec.unresolved_frames:
        click.echo(f"pyprof-ebpf: {rec.unresolved_frames} frames show as <unknown>: their code "
                   f"objects were freed before their names could be read", err=True)
    if rec.non_python:
        click.echo(f"pyprof-ebpf: {rec.non_python} samples had no Python frames (non-Python "
                   f"processes, or threads outside Python code) and are not in the profile", err=True)
    click.echo(f"pyprof-ebpf: profile written to {output}", err=True)


def _report_end(result, follow_orphans: bool, output) -> None:
    if result.lost_events:
        click.echo(f"pyprof-ebpf: warning: {result.lost_events} events lost (ring buffer full); "
                   f"raise --ring-pages", err=True)
    if result.left_running and result.reason != "all-exited":
        shown = ", ".join(f"{p.pid} {p.comm}" for p in result.left_running[:5])
        more = "" if len(result.left_running) <= 5 else ", ..."
        n = len(result.left_running)
        hint = ("--follow-orphans would keep following " + ("them" if n > 1 else "it")
                if result.reason == "root-exit" else f"the session ended by {result.reason}")
        click.echo(f"pyprof-ebpf: {n} process{'es' if n > 1 else ''} left running ({shown}{more}); "
                   f"{hint}", err=True)
    if output not in (None, "-"):
        click.echo(f"pyprof-ebpf: records written to {output}", err=True)


def main(argv=None) -> None:
    try:
        cli.main(args=argv, prog_name="pyprof-ebpf", standalone_mode=False)
    except PyprofError as err:
        click.echo(f"pyprof-ebpf: {err.one_line()}", err=True)
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        click.echo("pyprof-ebpf: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        click.echo("pyprof-ebpf: interrupted", err=True)
        sys.exit(130)
