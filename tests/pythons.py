"""The CPython interpreters the root tests run their targets under, and how to find them.

Three flavours, because the profiler finds ``_PyRuntime`` differently in each (notes
interpreters-and-bcc.md §1):

- pyenv's 3.8 … 3.13 (``$PYENV_ROOT`` or ``$(pyenv root)``, default /root/.pyenv): small PIE
  launchers with a shared ``libpythonX.Y.so`` (the highest patch release of each minor is used);
- Debian's ``/usr/bin/python3.11``: the interpreter linked statically into a non-PIE executable;
- 3.14 from Debian sid, unpacked by ``tests/fetch_pythons.sh`` into
  ``$PYPROF_PYTHONS/3.14`` (default /var/cache/pyprof-ebpf/pythons/3.14) with sid's own glibc,
  and its debug build ``python3.14d`` (non-PIE, libpython linked in; Py_DEBUG without
  trace-refs) in the same tree: debug builds are profiled from 3.13, through the target's own
  ``_Py_DebugOffsets``.

``ALL_PYTHONS`` lists every expected interpreter as ``(id, path or None, skip reason)``; a missing
one is listed with its reason rather than left out, so a test parametrized with
``python_params()`` shows it as skipped. Under CI as root, tests/conftest.py turns skipped root
tests into failures: CI must provide every interpreter. Only the standard library and pytest are
used, and nothing is run at import time except ``pyenv root`` when ``$PYENV_ROOT`` is unset.
"""

import os
import re
import shutil
import subprocess

import pytest

PYENV_MINORS = range(8, 14)  # 3.8 … 3.13; 2.x, 3.6 and 3.7 are not supported
DEBIAN_311 = "/usr/bin/python3.11"
PYTHONS_DIR = os.environ.get("PYPROF_PYTHONS", "/var/cache/pyprof-ebpf/pythons")
FETCHED_314 = os.path.join(PYTHONS_DIR, "3.14", "usr", "bin", "python3.14")
FETCHED_314D = FETCHED_314 + "d"
BUILT_313T = os.path.join(PYTHONS_DIR, "3.13t", "bin", "python3.13t")


def pyenv_root():
    """$PYENV_ROOT, else what ``pyenv root`` prints, else /root/.pyenv."""
    root = os.environ.get("PYENV_ROOT")
    if root:
        return root
    exe = shutil.which("pyenv")
    if exe:
        try:
            out = subprocess.run([exe, "root"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 stdin=subprocess.DEVNULL, timeout=10, check=True)
            if out.stdout.strip():
                return out.stdout.decode().strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return "/root/.pyenv"


def _runnable(path):
    return os.path.isfile(path) and os.access(path, os.X_OK)


def pyenv_pythons(root=None):
    """[(id, path or None, reason)] for 3.8 … 3.13: the highest X.Y.Z release of each minor.

    Only plain releases count (``3.13.0``, not ``3.13.0t``, ``3.13-dev`` or ``3.12.0rc1``).
    """
    root = root or pyenv_root()
    versions = os.path.join(root, "versions")
    try:
        names = os.listdir(versions)
    except OSError:
        names = []
    best = {}
    for name in names:
        m = re.fullmatch(r"3\.(\d+)\.(\d+)", name)
        if not m:
            continue
        minor, patch = int(m.group(1)), int(m.group(2))
        exe = os.path.join(versions, name, "bin", "python3.%d" % minor)
        if minor in PYENV_MINORS and _runnable(exe) and patch >= best.get(minor, (-1, ""))[0]:
            best[minor] = (patch, exe)
    found = []
    for minor in PYENV_MINORS:
        if minor in best:
            found.append(("3.%d" % minor, best[minor][1], None))
        else:
            found.append(("3.%d" % minor, None,
                          "no pyenv CPython 3.%d.x under %s (pyenv install 3.%d)"
                          % (minor, versions, minor)))
    return found


def debian_python():
    if _runnable(DEBIAN_311):
        return ("3.11-debian", DEBIAN_311, None)
    return ("3.11-debian", None, "%s is missing (apt-get install python3.11)" % DEBIAN_311)


def fetched_python(ident="3.14", path=FETCHED_314):
    if _runnable(path):
        return (ident, path, None)
    return (ident, None, "%s is missing (run tests/fetch_pythons.sh)" % path)


def free_threaded_python():
    """CPython 3.13t, which record must refuse by name (built by tests/build_free_threaded.sh)."""
    if _runnable(BUILT_313T):
        return ("3.13t", BUILT_313T, None)
    return ("3.13t", None, "%s is missing (run tests/build_free_threaded.sh)" % BUILT_313T)


ALL_PYTHONS = pyenv_pythons() + [debian_python(), fetched_python(),
                                 fetched_python("3.14d", FETCHED_314D)]


def python_params(pythons=None):
    """One ``pytest.param(path, id=...)`` per interpreter; absent ones skip with the reason."""
    params = []
    for ident, path, reason in (ALL_PYTHONS if pythons is None else pythons):
        marks = () if path else (pytest.mark.skip(reason=reason), pytest.mark.missing_python)
        params.append(pytest.param(path, id=ident, marks=marks))
    return params
