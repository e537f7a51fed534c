#!/bin/bash
# build_free_threaded.sh -- build CPython 3.13t (free-threaded, --disable-gil) for the tests that
# check it is detected and refused with a message (tests/unit/test_cpython_elf.py and
# tests/root/test_record.py). About 2.5 minutes on 2 CPUs, once per machine; scripts/test.sh runs it.
#
# Source: Debian's python3.13 source package (forky, else sid), whose orig tarball is upstream's; built with
# upstream's own build system (no Debian patches), into $PYPROF_PYTHONS/3.13t
# (default /var/cache/pyprof-ebpf/pythons/3.13t). The private apt state is fetch_pythons.sh's.
# Usage: tests/build_free_threaded.sh   (root; prints the interpreter's path)
set -euo pipefail

ROOT=${PYPROF_PYTHONS:-/var/cache/pyprof-ebpf/pythons}
DEST=$ROOT/3.13t
PY=$DEST/bin/python3.13t
if [ -x "$PY" ] && "$PY" -c 'import sys; sys.exit(sys._is_gil_enabled())' 2>/dev/null; then
    echo "$PY"
    exit 0
fi

# A C toolchain (part of this machine image; installed when a minimal host lacks it).
if ! command -v gcc >/dev/null || ! command -v make >/dev/null; then
    apt-get install -y -qq build-essential >&2 || { apt-get update -qq >&2 && apt-get install -y -qq build-essential >&2; }
fi

APT=$ROOT/.apt-src
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial"
MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
for suite in forky sid; do
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${MIRROR:-http://deb.debian.org/debian} $suite main"
done >"$APT/sources.list"
OPTS=(-o "Dir::Etc::SourceList=$APT/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache" -o Acquire::Languages=none
      -o APT::Sandbox::User=root)
apt-get "${OPTS[@]}" -qq update >&2

work=$(mktemp -d /var/tmp/pyprof-ft.XXXXXX)
trap 'rm -rf "$work"' EXIT
# A suite's index can name a version its pool no longer holds: try each suite in turn.
(cd "$work" && { apt-get "${OPTS[@]}" -qq source --download-only python3.13/forky >&2 \
                 || apt-get "${OPTS[@]}" -qq source --download-only python3.13/sid >&2; })
tar -C "$work" -xf "$work"/python3.13_*.orig.tar.xz
src=$(echo "$work"/Python-3.13*/)
mkdir "$work/build"
cd "$work/build"
"$src/configure" --prefix="$DEST" --disable-gil --disable-test-modules >configure.log 2>&1 \
    || { tail -20 configure.log >&2; exit 1; }
make -j"$(nproc)" >make.log 2>&1 || { tail -30 make.log >&2; exit 1; }
rm -rf "$DEST"
make install >install.log 2>&1 || { tail -30 install.log >&2; exit 1; }
"$PY" -c 'import sys; assert not sys._is_gil_enabled(); print(sys.version)' >&2
echo "$PY"
