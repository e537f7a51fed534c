"""Make the distribution's bcc usable from any interpreter: import it, and give it headers.

Responsibility: (1) import the ``bcc`` package that the distribution installs for its own
Python (Debian: python3-bpfcc in /usr/lib/python3/dist-packages) from any interpreter or venv,
without exposing the rest of dist-packages; (2) make sure libbcc finds a kernel header tree
*without writing into /lib/modules*: when the running kernel has none, build a merged tree of
the nearest installed ``linux-headers-*`` under our own cache directory and point
``BCC_KERNEL_SOURCE`` at it.

Why a merged tree: with BCC_KERNEL_SOURCE set, libbcc (src/cc/frontends/clang/loader.cc,
ClangLoader::parse) runs clang with its working directory there and adds relative
``-Iinclude -Iarch/x86/include/generated ...``; it honours the build/ + source/ split only for
/lib/modules/<release>. Debian splits headers into ``-common`` and ``-<arch>`` packages, so
neither alone works; one tree holding both does. Struct layouts are never taken from these
headers (see ``btf``); programs only need uapi types and helper declarations from them.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import platform
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import List, Optional, Tuple

from .errors import BccMissing, HeadersMissing

_DIST_DIRS = ("/usr/lib/python3/dist-packages", "/usr/lib/python3/site-packages",
              "/usr/lib64/python3/site-packages")
INSTALL_BCC = "install the distribution's bcc: apt-get install python3-bpfcc (Fedora: dnf install python3-bcc)"
INSTALL_HEADERS = "install kernel headers: apt-get install linux-headers-amd64 (or linux-headers-$(uname -r))"


def import_bcc():
    """Return the ``bcc`` module: the one on sys.path, else the distribution's copy."""
    try:
        import bcc  # noqa: F401
        if hasattr(bcc, "BPF"):
            return bcc
        # PyPI's unrelated "bcc" (lattice maths) would land here.
        del sys.modules["bcc"]
    except ImportError:
        pass
    site_dirs = list(_DIST_DIRS) + sorted(glob.glob("/usr/lib/python3*/site-packages"))
    for pkg in (os.path.join(d, "bcc") for d in site_dirs):
        init = os.path.join(pkg, "__init__.py")
        if not os.path.isfile(init):
            continue
        spec = importlib.util.spec_from_file_location("bcc", init, submodule_search_locations=[pkg])
        mod = importlib.util.module_from_spec(spec)
        sys.modules["bcc"] = mod
        try:
            spec.loader.exec_module(mod)
        except Exception as err:  # libbcc.so missing or ABI mismatch: report, don't crash
            sys.modules.pop("bcc", None)
            raise BccMissing(f"bcc found at {pkg} but failed to load ({err})", INSTALL_BCC) from err
        return mod
    raise BccMissing("bcc (the BPF Compiler Collection) is not installed", INSTALL_BCC)


def bcc_location() -> str:
    mod = import_bcc()
    version = getattr(mod, "__version__", "?")
    return f"{os.path.dirname(mod.__file__)} (version {version})"


# --------------------------------------------------------------------------- header trees

@dataclass(frozen=True)
class HeaderTree:
    kind: str      # "matching" | "env" | "merged"
    path: str
    version: str   # the header version ("6.1.0-57-amd64") or the running release

    def describe(self) -> str:
        if self.kind == "matching":
            return f"matching headers for {self.version} at {self.path}"
        if self.kind == "env":
            return f"BCC_KERNEL_SOURCE={self.path} (set by the user)"
        return f"merged fallback tree of linux-headers-{self.version} at {self.path}"


def _version_key(text: str) -> Tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:4])


def _has_kconfig(tree: str) -> bool:
    return os.path.isfile(os.path.join(tree, "include", "linux", "kconfig.h"))


def _arch_dir_suffix() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "powerpc64le",
            "s390x": "s390x"}.get(m, m)


def installed_header_pairs(usr_src: str = "/usr/src") -> List[Tuple[str, str, str]]:
    """Debian-style (version, common_dir, arch_dir) pairs under /usr/src, newest first."""
    pairs = []
    suffix = _arch_dir_suffix()
    try:
        names = os.listdir(usr_src)
    except OSError:
        return []
    for name in names:
        m = re.fullmatch(r"linux-headers-(.+)-common", name)
        if not m:
            continue
        base = m.group(1)
        arch = os.path.join(usr_src, f"linux-headers-{base}-{suffix}")
        if os.path.isdir(arch):
            pairs.append((f"{base}-{suffix}", os.path.join(usr_src, name), arch))
    # Fedora/RHEL-style single trees (kernel-devel) hold both halves already.
    for name in names:
        tree = os.path.join(usr_src, "kernels", name)
        if _has_kconfig(tree):
            pairs.append((name, tree, ""))
    return sorted(pairs, key=lambda p: _version_key(p[0]), reverse=True)


def _nearest(pairs: List[Tuple[str, str, str]], release: str) -> Tuple[str, str, str]:
    """Prefer the highest header version not newer than the running kernel, else the oldest
    newer one: helper and uapi declarations only grow, so older-than-kernel is the safe side."""
    running = _version_key(release)
    older = [p for p in pairs if _version_key(p[0])[:2] <= running[:2]]
    return older[0] if older else pairs[-1]


def cache_root() -> str:
    if os.geteuid() == 0:
        return "/var/cache/pyprof-ebpf"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pyprof-ebpf")


def merge_trees(dst: str, *srcs: str) -> None:
    """Symlink-merge ``srcs`` into ``dst``: real directories only where two sources share a
    directory, symlinks everywhere else (the later source wins for files)."""
    os.makedirs(dst, exist_ok=True)
    names = {}
    for src in srcs:
        for n in os.listdir(src):
            names.setdefault(n, []).append(os.path.join(src, n))
    for n, paths in names.items():
        target = os.path.join(dst, n)
        dirs = [p for p in paths if os.path.isdir(p)]
        if len(dirs) > 1:
            merge_trees(target, *dirs)
        elif not os.path.lexists(target):
            os.symlink(os.path.realpath(paths[-1]), target)


def find_header_tree(release: Optional[str] = None, usr_src: str = "/usr/src",
                     modules: str = "/lib/modules") -> HeaderTree:
    """Decide which header tree bcc will compile against; build the merged one if needed.
    Does not touch the environment (see ``ensure_header_tree``)."""
    release = release or platform.release()
    env = os.environ.get("BCC_KERNEL_SOURCE")
    if env:
        if _has_kconfig(env):
            return HeaderTree("env", env, release)
        raise HeadersMissing(f"BCC_KERNEL_SOURCE={env} has no include/linux/kconfig.h",
                             "unset it or point it at a complete kernel header tree")
    own = os.path.join(modules, release, "build")
    if _has_kconfig(own):
        return HeaderTree("matching", own, release)
    pairs = installed_header_pairs(usr_src)
    if not pairs:
        raise HeadersMissing(f"no kernel headers for {release} and none under {usr_src}", INSTALL_HEADERS)
    version, common, arch = _nearest(pairs, release)
    if not arch:  # a single complete tree (kernel-devel style)
        return HeaderTree("merged", common, version)
    dst = os.path.join(cache_root(), f"ksrc-{version}")
    if not _has_kconfig(dst):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".ksrc-", dir=os.path.dirname(dst))
        try:
            merge_trees(tmp, common, arch)
            try:
                os.rename(tmp, dst)   # atomic: a concurrent run sees all or nothing
            except OSError:
                if not _has_kconfig(dst):
                    shutil.rmtree(dst, ignore_errors=True)
                    os.rename(tmp, dst)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return HeaderTree("merged", dst, version)


def ensure_header_tree() -> HeaderTree:
    """``find_header_tree`` and export its path for libbcc, which reads BCC_KERNEL_SOURCE at
    every compile (getenv in loader.cc), so setting it in-process is enough."""
    tree = find_header_tree()
    if tree.kind == "merged":
        os.environ["BCC_KERNEL_SOURCE"] = tree.path
    return tree
