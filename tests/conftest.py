"""Suite-wide rules: tests under tests/root/ need root and a working bcc and are marked
``root``; they skip with the reason elsewhere, but when CI is set and we are root a skipped
root test is a failure (CI here is root: the BPF tests must really run).

PYPROF_PYTHONS_OPTIONAL=1 (set by vagrant/, whose boxes have their distribution's Python
but not pyenv's or the fetched ones) lets a test skip under CI when the only reason is an
absent interpreter (``missing_python`` mark, tests/pythons.py); a root test skipped for any
other reason still fails."""

import os

import pytest

ROOT_DIR = os.path.join(os.path.dirname(__file__), "root")


def _root_unavailable():
    if os.geteuid() != 0:
        return "needs root (BPF programs are loaded into the kernel)"
    try:
        from pyprof_ebpf.bccenv import import_bcc
        import_bcc()
    except Exception as err:  # BccMissing, or a broken libbcc
        return f"bcc unavailable: {err}"
    return None


def pytest_collection_modifyitems(config, items):
    reason = None
    checked = False
    for item in items:
        if str(item.fspath).startswith(ROOT_DIR):
            item.add_marker(pytest.mark.root)
        if item.get_closest_marker("root"):
            if not checked:
                reason, checked = _root_unavailable(), True
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    optional = (item.get_closest_marker("missing_python")
                and os.environ.get("PYPROF_PYTHONS_OPTIONAL") == "1")
    if (report.skipped and item.get_closest_marker("root") and os.environ.get("CI")
            and os.geteuid() == 0 and not optional):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"root test skipped under CI as root (not allowed): {reason}"
