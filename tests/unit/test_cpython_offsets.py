"""Offsets: tables, _Py_DebugOffsets parsing, data flags and validation.

The static tables are cross-checked against what each installed interpreter says about itself
(PyCode_Type.tp_members, sys.getsizeof); the thread/frame offsets are exercised end to end by
the live walk in test_cpython_elf.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import subprocess
from pathlib import Path

import pytest

from pyprof_ebpf.cpython import elf, tables
from pyprof_ebpf.cpython.linetable import InstrKind, LineTableFormat
from pyprof_ebpf.cpython.offsets import (OWNER_NEVER_SKIP, Offsets, offsets_for,
                                         parse_debug_offsets, validate)
from pyprof_ebpf.errors import UnsupportedPython

DATA = Path(__file__).resolve().parent.parent / "data" / "cpython"
PYENV = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"
PYTHONS = {
    (3, 8): PYENV / "3.8.18/bin/python3.8", (3, 9): PYENV / "3.9.18/bin/python3.9",
    (3, 10): PYENV / "3.10.13/bin/python3.10", (3, 11): PYENV / "3.11.7/bin/python3.11",
    (3, 12): PYENV / "3.12.1/bin/python3.12", (3, 13): PYENV / "3.13.0/bin/python3.13",
}
LIB_313 = PYENV / "3.13.0/lib/libpython3.13.so.1.0"
STATIC = sorted(tables.STATIC_TABLES)


def block_313() -> bytes:
    if not LIB_313.exists():
        pytest.skip(f"{LIB_313} is not installed")
    raw = elf.parse_elf(str(LIB_313)).runtime_file_bytes
    return raw[:tables.DEBUG_OFFSETS_SIZE[13]]


def offsets_of(version):
    return offsets_for(version, block_313() if version == (3, 13) else None)


@pytest.mark.parametrize("version", STATIC + [(3, 13)], ids=lambda v: "%d.%d" % v)
def test_offsets_agree_with_the_interpreter_itself(version):
    # GIVEN the layout facts the real interpreter reports about itself
    exe = PYTHONS[version]
    if not exe.exists():
        pytest.skip(f"{exe} is not installed")
    out = subprocess.run([str(exe), str(DATA / "dump_layout.py")], capture_output=True,
                         text=True, timeout=60, check=True)
    truth = json.loads(out.stdout)
    # WHEN we build Offsets for that version
    off = offsets_of(version)
    # THEN every code-object field CPython lists in tp_members matches
    members = truth["code_members"]
    for field in ("co_argcount", "co_firstlineno", "co_filename", "co_name", "co_qualname",
                  "co_lnotab", "co_linetable", "co_code"):
        ours = getattr(off, f"PyCodeObject_{field}")
        if field in members and not (field == "co_lnotab" and version >= (3, 10)):
            assert ours == members[field], field
        elif field != "co_code":
            assert ours == -1, f"{field} does not exist in {version}"
    # AND the string and bytes layouts match the object sizes
    assert off.PyASCIIObject_size == truth["ascii_size"]
    assert off.PyCompactUnicodeObject_size == truth["compact_size"]
    assert off.PyBytesObject_ob_sval == truth["bytes_ob_sval"]


@pytest.mark.parametrize("version", STATIC + [(3, 13)], ids=lambda v: "%d.%d" % v)
def test_offsets_are_bounded_and_complete(version):
    off = offsets_of(version)
    assert off.version == version
    for name, value in off.offset_fields().items():
        big = name.startswith(("PyRuntimeState_", "PyInterpreterState_"))
        assert -1 <= value < (1 << 20 if big else 4096), name
    for prop in ("tstate_frame", "frame_previous", "frame_code", "frame_instr", "code_linetable"):
        assert getattr(off, prop) >= 0, prop


@pytest.mark.parametrize("version,interp_frame,cframe,kind,fmt,skip", [
    ((3, 8), False, False, InstrKind.LASTI_BYTES, LineTableFormat.LNOTAB, OWNER_NEVER_SKIP),
    ((3, 9), False, False, InstrKind.LASTI_BYTES, LineTableFormat.LNOTAB, OWNER_NEVER_SKIP),
    ((3, 10), False, False, InstrKind.LASTI_CODE_UNITS, LineTableFormat.PEP626, OWNER_NEVER_SKIP),
    ((3, 11), True, True, InstrKind.INSTR_POINTER, LineTableFormat.LOCATIONS, OWNER_NEVER_SKIP),
    ((3, 12), True, True, InstrKind.INSTR_POINTER, LineTableFormat.LOCATIONS, 3),
    ((3, 13), True, False, InstrKind.INSTR_POINTER, LineTableFormat.LOCATIONS, 3),
], ids=lambda v: str(v))
def test_behaviour_flags(version, interp_frame, cframe, kind, fmt, skip):
    off = offsets_of(version)
    assert (off.frame_is_interpreter_frame, off.cframe_indirection, off.instr_kind,
            off.linetable_format, off.owner_skip_min) == (interp_frame, cframe, kind, fmt, skip)
    assert off.code_ptr_mask == 0xFFFF_FFFF_FFFF_FFFF


def test_debug_offsets_layout_positions_match_the_notes():
    # Independent evidence: positions read off a live 3.13.0 block, and 3.14.0 from bindgen
    # (/work/shared/notes/cpython-frames.md sections 1.5 and 1.6).
    notes_313 = {"runtime_state.interpreters_head": 40, "interpreter_state.threads_head": 72,
                 "interpreter_state.ceval_gil": 112, "thread_state.next": 168,
                 "thread_state.current_frame": 184, "thread_state.thread_id": 192,
                 "thread_state.native_thread_id": 200, "interpreter_frame.previous": 232,
                 "interpreter_frame.executable": 240, "interpreter_frame.instr_ptr": 248,
                 "interpreter_frame.owner": 264, "code_object.filename": 280,
                 "code_object.co_code_adaptive": 344, "bytes_object.ob_sval": 528,
                 "unicode_object.asciiobject_size": 560}
    notes_314 = {"runtime_state.interpreters_head": 40, "interpreter_state.threads_head": 72,
                 "interpreter_state.ceval_gil": 120, "thread_state.next": 192,
                 "thread_state.current_frame": 208, "thread_state.native_thread_id": 224,
                 "interpreter_frame.previous": 256, "interpreter_frame.owner": 288,
                 "interpreter_frame.tlbc_index": 304, "code_object.filename": 320,
                 "code_object.firstlineno": 352, "code_object.co_tlbc": 392,
                 "bytes_object.ob_size": 600, "unicode_object.asciiobject_size": 640}
    for minor, notes in ((13, notes_313), (14, notes_314)):
        layout = tables.DEBUG_OFFSETS_LAYOUT[minor]
        assert {k: layout[k] for k in notes} == notes
        assert max(layout.values()) + 8 <= tables.DEBUG_OFFSETS_SIZE[minor]
    assert max(tables.DEBUG_OFFSETS_LAYOUT[13].values()) + 8 == tables.DEBUG_OFFSETS_SIZE[13]


def synthetic_block(minor: int, version_hex: int, free_threaded: int = 0, **values) -> bytes:
    """A _Py_DebugOffsets block for ``minor`` built from 3.13.0's values (by field name)."""
    base = parse_debug_offsets(block_313())
    layout = tables.DEBUG_OFFSETS_LAYOUT[minor]
    raw = bytearray(tables.DEBUG_OFFSETS_SIZE[minor])
    raw[:24] = b"xdebugpy" + struct.pack("<QQ", version_hex, free_threaded)
    for name, pos in layout.items():
        struct.pack_into("<Q", raw, pos, values.get(name, base.get(name, 0)))
    return bytes(raw)


def test_314_block_uses_its_own_layout_and_facts():
    # GIVEN a 3.14 block whose values differ from 3.13 where 3.14 really differs
    raw = synthetic_block(14, 0x030E00F0, **{"interpreter_frame.owner": 74,
                                              "code_object.co_code_adaptive": 208})
    # WHEN parsed
    off = offsets_for((3, 14), raw)
    # THEN values come from the 3.14 positions, and the per-minor facts apply
    assert off._PyInterpreterFrame_owner == 74
    assert off.PyCodeObject_co_code_adaptive == 208
    assert off.PyCodeObject__co_firsttraceable == 192
    assert off.owner_skip_min == 3 and off.code_ptr_mask == 0xFFFF_FFFF_FFFF_FFF8
    assert off.PyThreadState_current_frame == 72 and off.PyInterpreterState_threads_head == 7344


@pytest.mark.parametrize("mutate,match", [
    (lambda b: b"xdebugpX" + b[8:], "cookie"),
    (lambda b: b[:100], "truncated"),
    (lambda b: b[:8] + struct.pack("<Q", 0x030C01F0) + b[16:], "layout"),
    (lambda b: b[:16] + struct.pack("<Q", 1) + b[24:], "free-threaded"),
], ids=["cookie", "truncated", "wrong-minor", "free-threaded"])
def test_bad_blocks_are_refused(mutate, match):
    with pytest.raises(UnsupportedPython, match=match):
        offsets_for((3, 13), mutate(block_313()))


@pytest.mark.parametrize("field,value", [
    ("interpreter_state.threads_head", 1 << 40),  # beyond the struct (a failed/garbage read)
    ("thread_state.thread_id", 8),  # collides with thread_state.next
    ("code_object.filename", 113),  # misaligned pointer field
    ("thread_state.current_frame", 5000),  # beyond thread_state.size
], ids=["huge", "collision", "misaligned", "outside-struct"])
def test_absurd_values_are_refused(field, value):
    raw = synthetic_block(13, 0x030D00F0, **{field: value})
    with pytest.raises(UnsupportedPython):
        offsets_for((3, 13), raw)


def test_block_version_must_match_requested_version():
    with pytest.raises(UnsupportedPython, match="expected 3.14"):
        offsets_for((3, 14), block_313())


@pytest.mark.parametrize("version", [(3, 7), (2, 7), (3, 15), (4, 0)], ids=str)
def test_unknown_versions_are_refused(version):
    with pytest.raises(UnsupportedPython):
        offsets_for(version)


def test_313_needs_the_block():
    with pytest.raises(UnsupportedPython, match="_Py_DebugOffsets"):
        offsets_for((3, 13))


def test_validate_rejects_a_missing_walk_field():
    off = dataclasses.replace(offsets_for((3, 11)), _PyCFrame_current_frame=-1)
    with pytest.raises(UnsupportedPython, match="_PyCFrame_current_frame"):
        validate(off)


def test_field_names_are_cpython_struct_field_names():
    names = set(Offsets.__dataclass_fields__)
    for expected in ("PyRuntimeState_interpreters_head", "PyThreadState_native_thread_id",
                     "_PyCFrame_current_frame", "PyThreadState_current_frame",
                     "_PyInterpreterFrame_instr_ptr", "PyCodeObject_co_code_adaptive"):
        assert expected in names
