#!/usr/bin/env bash
# Set up this machine (scripts/setup.sh), check it, then run pyprof-ebpf's main job on the
# bundled seed demo (pyprof_ebpf/demo/seed.py): a script whose grandchild is orphaned.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO .venv/bin/pyprof-ebpf doctor
