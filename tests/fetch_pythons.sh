#!/bin/bash
# fetch_pythons.sh -- put CPython 3.14 (Debian sid's build) where the tests look for it, with
# its debug build python3.14d (Py_DEBUG, no trace-refs) beside it in the same tree.
#
# The 3.14 executable needs sid's glibc (GLIBC_2.38+) and OpenSSL 3.4, so sid's libc6, libssl3t64,
# libzstd1 and libexpat1 are unpacked beside it, and patchelf points the executable at that loader
# and library folder (--force-rpath: the RPATH also serves lib-dynload/*.so, which have no RUNPATH).
# Nothing is installed: the .debs come from a private apt configuration under the cache folder
# (the system's sources and dpkg database are never touched) and are only `dpkg -x`ed.
# Research and timings: shared notes interpreters-and-bcc.md §1.3.
#
# Usage: tests/fetch_pythons.sh        (root; destination $PYPROF_PYTHONS/3.14,
#                                       default /var/cache/pyprof-ebpf/pythons/3.14)
# Prints the interpreters' paths on stdout; exits 0 at once when they are already there and work.
set -euo pipefail

V=3.14
ROOT=${PYPROF_PYTHONS:-/var/cache/pyprof-ebpf/pythons}
DEST=$ROOT/$V
PY=$DEST/usr/bin/python$V
PYD=$DEST/usr/bin/python${V}d
LIB=$DEST/usr/lib/x86_64-linux-gnu
SMOKE='import ssl, sqlite3, sys; print(sys.version)'

if [ -x "$PY" ] && "$PY" -c "$SMOKE" >/dev/null 2>&1 && [ -x "$PYD" ] && "$PYD" -c "$SMOKE" >/dev/null 2>&1; then
    echo "$PY"
    echo "$PYD"
    exit 0
fi

# Debian's own patchelf (bookworm's, through the system's apt: the only thing installed).
command -v patchelf >/dev/null || apt-get install -y -qq patchelf >&2 \
    || { apt-get update -qq >&2 && apt-get install -y -qq patchelf >&2; }

# Private apt state: sid only, binary packages only, no translations.
APT=$ROOT/.apt
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial"
MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${MIRROR:-http://deb.debian.org/debian} sid main" \
    >"$APT/sources.list"
OPTS=(-o "Dir::Etc::SourceList=$APT/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache" -o Acquire::Languages=none
      -o APT::Sandbox::User=root)  # a private cache the _apt user need not read
if ! ls "$APT/lists" | grep -q '_Packages'; then
    apt-get "${OPTS[@]}" -qq update >&2
fi

# Download and unpack into a scratch folder next to DEST, so a failed download never costs the
# old tree; a tree left half-made later fails the smoke check above and is fetched again.
tmp=$(mktemp -d "$ROOT/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/debs" "$tmp/root"
(cd "$tmp/debs" && apt-get "${OPTS[@]}" -qq download \
    python$V-minimal/sid libpython$V-minimal/sid libpython$V-stdlib/sid \
    python$V-dbg/sid libpython$V-dbg/sid \
    libc6/sid libssl3t64/sid libzstd1/sid libexpat1/sid >&2)
for deb in "$tmp"/debs/*.deb; do dpkg -x "$deb" "$tmp/root"; done

# patchelf writes absolute paths, so patch for the final location, then move the tree there.
rm -rf "$DEST"
mv "$tmp/root" "$DEST"
for exe in "$PY" "$PYD"; do
    patchelf --set-interpreter "$LIB/ld-linux-x86-64.so.2" --force-rpath --set-rpath "$LIB" "$exe"
done

for exe in "$PY" "$PYD"; do
    version=$("$exe" -c "$SMOKE")  # a failing smoke test fails the script (set -e)
    echo "smoke test: $exe: Python $version" >&2
    echo "$exe"
done
