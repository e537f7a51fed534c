#!/usr/bin/env bash
# Set up this machine (scripts/setup.sh), then run the whole test suite as root.
# Extra arguments go to pytest. CI runs exactly this (.ci/run).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo --preserve-env=CI"
# CPython 3.14 and its debug build for the interpreter matrix (Debian sid's builds, unpacked; the
# tests skip it with the reason if this fails, which CI as root counts as a failure).
$SUDO bash tests/fetch_pythons.sh >/dev/null || echo "test.sh: could not fetch CPython 3.14 and 3.14d" >&2
# CPython 3.13t, built from source (about 2.5 min on 2 CPUs, once per machine), which record
# must detect and refuse by name.
$SUDO bash tests/build_free_threaded.sh >/dev/null || echo "test.sh: could not build CPython 3.13t" >&2
$SUDO .venv/bin/python -m pytest -ra "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "test.sh: pytest collected no tests; treating that as a failure" >&2
  exit 1
fi
exit $rc
