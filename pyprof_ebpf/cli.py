"""Command-line interface: the only module that prints to the terminal or picks exit codes.

Each command turns its options into calls on the library modules; every ``PyprofError`` that
reaches here becomes one line on stderr (cause: remedy) and the error's exit status, never a
traceback. Commands other than ``doctor`` check privileges first and fail with status 2.
"""

from __future__ import annotations

import json
import sys

import click

from . import __version__
from .errors import PyprofError

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
