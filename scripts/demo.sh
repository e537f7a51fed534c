#!/usr/bin/env bash
# Set up this machine (scripts/setup.sh), then profile the bundled seed demo
# (pyprof_ebpf/demo/seed.py): a script whose child starts a grandchild and returns without
# waiting, so the grandchild is orphaned -- the process /proc-polling profilers lose.
# Prints the process tree pyprof-ebpf saw, then profiles it with --follow-orphans.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
PY=.venv/bin/python
SEED=pyprof_ebpf/demo/seed.py
echo "== the process tree (pyprof-ebpf audit --format tree) =="
$SUDO .venv/bin/pyprof-ebpf audit --format tree --follow-orphans -- "$PY" "$SEED"
echo
echo "== the profile (pyprof-ebpf record --follow-orphans) =="
$SUDO .venv/bin/pyprof-ebpf record --follow-orphans -o seed.austin -- "$PY" "$SEED"
echo
echo "Hottest stacks in seed.austin (the grandchild's count() should lead):"
grep -v '^#' seed.austin | sort -t' ' -k2 -nr | head -3 | cut -c1-300
