"""The ctypes mirror is generated from bpf/pyprof.h and must not drift from it."""

import ctypes
import runpy
import os

import pytest

from pyprof_ebpf import _abi_gen as abi

GEN = runpy.run_path(os.path.join(os.path.dirname(__file__), "..", "..", "tools", "gen_abi.py"))


def test_generated_mirror_is_current():
    assert GEN["main"](["--check"]) == 0, "run tools/gen_abi.py and commit pyprof_ebpf/_abi_gen.py"


def test_header_size_assertions_hold_in_ctypes():
    for name, size in abi.SIZES.items():
        assert ctypes.sizeof(getattr(abi, name)) == size
    assert abi.exec_event.hdr.offset == 0     # every ring record starts with proc_event


def test_parser_rejects_what_the_abi_rules_forbid():
    with pytest.raises(ValueError, match="cannot parse"):
        GEN["parse"]("struct s { int *p; };")
    with pytest.raises(ValueError, match="not allowed"):
        GEN["parse"]("struct s { long x; };")
    with pytest.raises(ValueError, match="before its definition"):
        GEN["parse"]("struct s { struct t inner; };")


def test_parser_follows_enum_numbering_and_constants():
    consts, enums, structs, asserts = GEN["parse"](
        "#define PYPROF_N 4\nenum e { A = 2, B, C = PYPROF_N * 2 };\n"
        "struct s { __u32 a[PYPROF_N]; char c[B]; };\n_Static_assert(sizeof(struct s) == 20, \"x\");")
    assert enums["e"] == [("A", 2), ("B", 3), ("C", 8)]
    assert structs["s"] == [("a", "ctypes.c_uint32 * 4"), ("c", "ctypes.c_char * 3")]
    assert asserts == [("s", 20)]
