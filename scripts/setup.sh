#!/usr/bin/env bash
# Idempotent set-up of a fresh machine for pyprof-ebpf:
#   1. the distribution's bcc (Debian/Ubuntu: python3-bpfcc; Fedora: python3-bcc);
#   2. a kernel header tree: the running kernel's if the distribution has it, else the nearest
#      linux-headers-* (the package later builds a merged tree in its own cache: nothing is
#      written into /lib/modules);
#   3. tracefs at /sys/kernel/tracing when it is missing;
#   4. the project's venv (.venv) with the package and its test extras.
# Re-running it changes nothing once everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
rel=$(uname -r)

have_headers() {
  [ -e "/lib/modules/$rel/build/include/linux/kconfig.h" ] && return 0
  ls -d /usr/src/linux-headers-*-common >/dev/null 2>&1 && return 0
  ls -d /usr/src/kernels/*/include/linux >/dev/null 2>&1 && return 0
  return 1
}

if command -v apt-get >/dev/null 2>&1; then
  need=()
  dpkg -s python3-bpfcc >/dev/null 2>&1 || need+=(python3-bpfcc)
  have_headers || need+=(HEADERS)
  if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]/HEADERS/kernel headers}"
    $SUDO apt-get update -qq
    pkgs=()
    for p in "${need[@]}"; do
      if [ "$p" = HEADERS ]; then
        if apt-cache show "linux-headers-$rel" >/dev/null 2>&1; then
          pkgs+=("linux-headers-$rel")
        elif apt-cache show linux-headers-generic >/dev/null 2>&1 && grep -qi ubuntu /etc/os-release; then
          pkgs+=(linux-headers-generic)
        else
          pkgs+=("linux-headers-$(dpkg --print-architecture)")
        fi
      else
        pkgs+=("$p")
      fi
    done
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
  fi
  python3 -m venv --help >/dev/null 2>&1 || $SUDO apt-get install -y -qq python3-venv >/dev/null
elif command -v dnf >/dev/null 2>&1; then
  rpm -q python3-bcc >/dev/null 2>&1 || $SUDO dnf install -y -q python3-bcc
  have_headers || $SUDO dnf install -y -q "kernel-devel-$rel" || $SUDO dnf install -y -q kernel-devel
else
  echo "setup: no apt-get or dnf; install bcc's Python module and kernel headers by hand" >&2
  exit 1
fi

if ! grep -q ' tracefs ' /proc/mounts; then
  $SUDO mount -t tracefs tracefs /sys/kernel/tracing || echo "setup: could not mount tracefs (raw tracepoints still work)" >&2
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# Reinstall only when the project metadata changed since the last install.
stamp=.venv/.pyprof-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
  touch "$stamp"
fi
echo "setup: ready ($(.venv/bin/python --version), bcc $(dpkg-query -W -f='${Version}' python3-bpfcc 2>/dev/null || rpm -q python3-bcc))"
