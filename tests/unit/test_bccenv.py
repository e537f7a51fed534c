"""Header-tree selection and merging, and bcc import, without loading anything."""

import os

import pytest

from pyprof_ebpf import bccenv
from pyprof_ebpf.errors import BccMissing, HeadersMissing


def make_headers(usr_src, version, arch="amd64"):
    common = usr_src / f"linux-headers-{version}-common"
    archdir = usr_src / f"linux-headers-{version}-{arch}"
    (common / "include" / "linux").mkdir(parents=True)
    (common / "include" / "linux" / "kconfig.h").write_text("/* common */")
    (common / "include" / "linux" / "sched.h").write_text("/* common sched */")
    (archdir / "include" / "generated").mkdir(parents=True)
    (archdir / "include" / "generated" / "autoconf.h").write_text("/* arch */")
    (archdir / "arch" / "x86" / "include" / "generated").mkdir(parents=True)
    return common, archdir


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)
    monkeypatch.setattr(bccenv, "cache_root", lambda: str(tmp_path / "cache"))
    monkeypatch.setattr(bccenv, "_arch_dir_suffix", lambda: "amd64")
    return tmp_path


def test_merged_tree_holds_both_halves(clean_env):
    usr_src = clean_env / "src"
    make_headers(usr_src, "6.1.0-57")
    tree = bccenv.find_header_tree("6.18.44-fc", usr_src=str(usr_src), modules=str(clean_env / "mods"))
    assert tree.kind == "merged" and tree.version == "6.1.0-57-amd64"
    base = tree.path
    assert os.path.isfile(os.path.join(base, "include", "linux", "kconfig.h"))
    assert os.path.isfile(os.path.join(base, "include", "generated", "autoconf.h"))
    assert os.path.isdir(os.path.join(base, "include"))
    assert not os.path.islink(os.path.join(base, "include"))        # shared dir: merged for real
    assert os.path.islink(os.path.join(base, "arch"))               # only in one tree: a symlink
    # idempotent: a second call reuses the same tree
    assert bccenv.find_header_tree("6.18.44-fc", usr_src=str(usr_src),
                                   modules=str(clean_env / "mods")).path == base


def test_nearest_version_not_newer_than_the_kernel_wins(clean_env):
    usr_src = clean_env / "src"
    for v in ("5.10.0-30", "6.1.0-57", "6.19.0-1"):
        make_headers(usr_src, v)
    tree = bccenv.find_header_tree("6.18.44", usr_src=str(usr_src), modules=str(clean_env / "m"))
    assert tree.version == "6.1.0-57-amd64"
    tree = bccenv.find_header_tree("5.4.0", usr_src=str(usr_src), modules=str(clean_env / "m"))
    assert tree.version == "5.10.0-30-amd64"   # nothing older: the oldest newer one


def test_matching_tree_is_used_as_is(clean_env):
    build = clean_env / "mods" / "6.18.44" / "build" / "include" / "linux"
    build.mkdir(parents=True)
    (build / "kconfig.h").write_text("")
    tree = bccenv.find_header_tree("6.18.44", usr_src=str(clean_env / "none"), modules=str(clean_env / "mods"))
    assert tree.kind == "matching"


def test_no_headers_names_the_install_command(clean_env):
    with pytest.raises(HeadersMissing) as err:
        bccenv.find_header_tree("6.18.44", usr_src=str(clean_env / "none"), modules=str(clean_env / "m"))
    assert "apt-get install linux-headers" in err.value.one_line()


def test_bad_user_kernel_source_is_reported(clean_env, monkeypatch):
    monkeypatch.setenv("BCC_KERNEL_SOURCE", str(clean_env))
    with pytest.raises(HeadersMissing, match="BCC_KERNEL_SOURCE"):
        bccenv.find_header_tree("6.18.44")


def test_bcc_missing_is_a_clear_error(monkeypatch, tmp_path):
    import sys
    monkeypatch.setitem(sys.modules, "bcc", None)           # makes `import bcc` fail
    monkeypatch.setattr(bccenv, "_DIST_DIRS", (str(tmp_path),))
    monkeypatch.setattr(bccenv.glob, "glob", lambda pattern: [])
    with pytest.raises(BccMissing) as err:
        bccenv.import_bcc()
    assert "apt-get install python3-bpfcc" in err.value.one_line()
