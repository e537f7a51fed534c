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
