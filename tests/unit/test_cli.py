"""The CLI through click's runner: exit codes and one-line errors, no root needed."""

import json

import pytest
from click.testing import CliRunner

from pyprof_ebpf import cli, doctor, host
from pyprof_ebpf.errors import TracefsUnavailable


@pytest.fixture
def unprivileged(monkeypatch):
    monkeypatch.setattr(host.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(host, "effective_caps", lambda: 0)


def test_help_lists_commands():
    res = CliRunner().invoke(cli.cli, ["--help"])
    assert res.exit_code == 0 and "doctor" in res.output


def test_doctor_json_reports_missing_privilege(unprivileged, monkeypatch):
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 1000)
    res = CliRunner().invoke(cli.cli, ["doctor", "--json"])
    report = json.loads(res.stdout)
    priv = report["checks"][0]
    assert res.exit_code == 1 and report["ready"] is False
    assert priv["name"] == "privileges" and priv["ok"] is False and "CAP_BPF" in priv["remedy"]
    assert any(c["name"] == "compile" and c["ok"] is None for c in report["checks"])


def test_tracefs_not_mountable_is_one_line(monkeypatch):
    monkeypatch.setattr(host, "tracefs_mountpoint", lambda: None)
    monkeypatch.setattr(host.os, "geteuid", lambda: 0)
    monkeypatch.setattr(host, "_mount", lambda *a: 1)   # EPERM
    with pytest.raises(TracefsUnavailable) as err:
        host.ensure_tracefs()
    assert "\n" not in err.value.one_line() and "mount" in err.value.remedy


def test_tracefs_needs_root(unprivileged, monkeypatch):
    monkeypatch.setattr(host, "tracefs_mountpoint", lambda: None)
    with pytest.raises(TracefsUnavailable, match="not mounted"):
        host.ensure_tracefs()


@pytest.mark.parametrize("cmd", [["audit", "--", "true"], ["record", "--", "true"],
                                 ["audit", "-p", "1"], ["record", "--all", "-d", "1"]],
                         ids=["audit-cmd", "record-cmd", "audit-pid", "record-all"])
def test_other_commands_refuse_without_privilege_in_one_line(unprivileged, cmd, capsys):
    # WHEN a tracing command runs without root or CAP_BPF + CAP_PERFMON
    with pytest.raises(SystemExit) as exit_:
        cli.main(cmd)
    err = capsys.readouterr().err
    # THEN it exits 2 with one line naming the privilege and the remedy, no traceback
    assert exit_.value.code == 2
    assert err.count("\n") == 1 and "needs root" in err and "CAP_BPF" in err
    assert "Traceback" not in err


def test_two_targets_are_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["audit", "-p", "1", "--all"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "exactly one target" in err and err.count("\n") == 1
