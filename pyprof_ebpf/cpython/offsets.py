"""The ``Offsets`` record: everything the version-agnostic BPF frame walker needs, for one target.

Responsibility: build and validate one ``Offsets`` for a CPython minor version, from the static
tables (3.8-3.12, ``tables.py``) or from the target's own ``_Py_DebugOffsets`` bytes (3.13+). It
does not read memory or parse ELF files; callers pass the bytes in. Field names are CPython's
``Struct_field`` names verbatim so one grep finds the C, the Python and the tests; a field the
version lacks is -1. Per-version *behaviour* is expressed as data flags
(``frame_is_interpreter_frame``, ``cframe_indirection``, ``instr_kind``, ``owner_skip_min``,
``code_ptr_mask``, ``linetable_format``) so the BPF side never branches on a version number.
Values are untrusted when they come from a target, so ``validate`` bounds every one of them and
raises ``UnsupportedPython``.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Mapping, Sequence

from ..errors import UnsupportedBuild, UnsupportedPython
from . import tables
from .linetable import InstrKind, LineTableFormat

DEBUG_COOKIE = b"xdebugpy"
OWNER_NEVER_SKIP = 256  # no u8 owner value reaches it: "there are no shim frames to skip"
MASK_ALL = 0xFFFF_FFFF_FFFF_FFFF

# Offsets into the two huge structs (_PyRuntimeState, PyInterpreterState: 3.13's threads_head is
# 7344) may be large; every other struct the walk touches is well under a page.
_BIG_STRUCT_LIMIT = 1 << 20
_SMALL_STRUCT_LIMIT = 4096
_BIG_PREFIXES = ("PyRuntimeState_", "PyInterpreterState_")
# C ints/chars; every other offset field locates a pointer or Py_ssize_t and must be 8-aligned.
_INT_FIELDS = {"PyFrameObject_f_lasti": 4, "PyCodeObject_co_argcount": 4,
               "PyCodeObject_co_firstlineno": 4, "PyCodeObject__co_firsttraceable": 4,
               "PyASCIIObject_state": 4, "_PyInterpreterFrame_owner": 1}
_SIZE_FIELDS = {"PyASCIIObject_size", "PyCompactUnicodeObject_size"}


@dataclasses.dataclass(frozen=True)
class Offsets:
    """Byte offsets (x86-64) plus behaviour flags for one CPython minor version. -1 = absent."""

    version: tuple[int, int]
    source: str  # "table" or "_Py_DebugOffsets"
    # runtime -> interpreter -> thread states
    PyRuntimeState_interpreters_head: int = -1
    PyInterpreterState_threads_head: int = -1  # tstate_head before 3.11
    PyThreadState_next: int = -1
    PyThreadState_thread_id: int = -1  # pthread_self() == fsbase on x86-64
    PyThreadState_native_thread_id: int = -1  # 3.11+
    # thread state -> top frame (exactly one path is present)
    PyThreadState_frame: int = -1  # 3.8-3.10: PyFrameObject *
    PyThreadState_cframe: int = -1  # 3.11/3.12: _PyCFrame *
    _PyCFrame_current_frame: int = -1  # 3.11/3.12
    PyThreadState_current_frame: int = -1  # 3.13+
    # 3.8-3.10 frames
    PyFrameObject_f_back: int = -1
    PyFrameObject_f_code: int = -1
    PyFrameObject_f_lasti: int = -1
    # 3.11+ frames
    _PyInterpreterFrame_previous: int = -1
    _PyInterpreterFrame_f_code: int = -1  # 3.11/3.12
    _PyInterpreterFrame_f_executable: int = -1  # 3.13+ (3.14: tagged _PyStackRef)
    _PyInterpreterFrame_prev_instr: int = -1  # 3.11/3.12
    _PyInterpreterFrame_instr_ptr: int = -1  # 3.13+
    _PyInterpreterFrame_owner: int = -1
    # objects
    PyObject_ob_type: int = -1
    PyCodeObject_co_argcount: int = -1
    PyCodeObject_co_firstlineno: int = -1
    PyCodeObject_co_filename: int = -1
    PyCodeObject_co_name: int = -1
    PyCodeObject_co_qualname: int = -1  # 3.11+
    PyCodeObject_co_lnotab: int = -1  # 3.8/3.9
    PyCodeObject_co_linetable: int = -1  # 3.10+
    PyCodeObject_co_code: int = -1  # 3.8-3.10 (bytes object pointer)
    PyCodeObject_co_code_adaptive: int = -1  # 3.11+ (inline array)
    PyCodeObject__co_firsttraceable: int = -1  # 3.11+ (code units)
    PyBytesObject_ob_size: int = -1
    PyBytesObject_ob_sval: int = -1
    PyASCIIObject_length: int = -1
    PyASCIIObject_state: int = -1
    PyASCIIObject_size: int = -1  # sizeof: where compact ASCII data starts
    PyCompactUnicodeObject_utf8_length: int = -1
    PyCompactUnicodeObject_utf8: int = -1
    PyCompactUnicodeObject_size: int = -1  # sizeof: where compact non-ASCII data starts
    # behaviour flags (data, so BPF needs no version branches)
    frame_is_interpreter_frame: bool = False  # _PyInterpreterFrame (3.11+) vs PyFrameObject
    cframe_indirection: bool = False  # tstate->cframe->current_frame (3.11/3.12)
    instr_kind: InstrKind = InstrKind.LASTI_BYTES
    linetable_format: LineTableFormat = LineTableFormat.LNOTAB
    owner_skip_min: int = OWNER_NEVER_SKIP  # skip frames whose owner >= this (entry shims)
    code_ptr_mask: int = MASK_ALL  # AND the frame's code pointer with this (3.14 _PyStackRef)
    # PyASCIIObject.state bit field, identical in every GIL build 3.8-3.14 (notes section 2)
    unicode_kind_shift: int = 2
    unicode_compact_bit: int = 5
    unicode_ascii_bit: int = 6

    # Version-independent view: what the BPF config struct is filled from.
    @property
    def tstate_frame(self) -> int:
        """Offset in PyThreadState of the top frame pointer (with cframe_indirection: cframe)."""
        return _first(self.PyThreadState_current_frame, self.PyThreadState_cframe,
                      self.PyThreadState_frame)

    @property
    def frame_previous(self) -> int:
        return _first(self._PyInterpreterFrame_previous, self.PyFrameObject_f_back)

    @property
    def frame_code(self) -> int:
        return _first(self._PyInterpreterFrame_f_executable, self._PyInterpreterFrame_f_code,
                      self.PyFrameObject_f_code)

    @property
    def frame_instr(self) -> int:
        return _first(self._PyInterpreterFrame_instr_ptr, self._PyInterpreterFrame_prev_instr,
                      self.PyFrameObject_f_lasti)

    @property
    def code_linetable(self) -> int:
        return _first(self.PyCodeObject_co_linetable, self.PyCodeObject_co_lnotab)

    def offset_fields(self) -> dict[str, int]:
        """All byte-offset fields (CPython names) and their values."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name[0] in "P_" and f.type in ("int", int)}


def _first(*values: int) -> int:
    return next((v for v in values if v >= 0), -1)


def _flags_for(minor: int) -> dict[str, object]:
    interp_frame = minor >= 11
    return {
        "frame_is_interpreter_frame": interp_frame,
        "cframe_indirection": minor in (11, 12),  # removed in 3.13 (python/cpython#108036)
        "instr_kind": (InstrKind.INSTR_POINTER if interp_frame else
                       InstrKind.LASTI_CODE_UNITS if minor == 10 else InstrKind.LASTI_BYTES),
        "linetable_format": (LineTableFormat.LOCATIONS if interp_frame else
                             LineTableFormat.PEP626 if minor == 10 else LineTableFormat.LNOTAB),
        # 3.12 added FRAME_OWNED_BY_CSTACK shim frames (python/cpython#96319); 3.11 has none.
        "owner_skip_min": 3 if minor == 12 else OWNER_NEVER_SKIP,
    }


def parse_debug_offsets(raw: bytes) -> dict[str, int]:
    """Unpack a ``_Py_DebugOffsets`` block into ``{"group.field": value}`` plus header fields.

    The block's own layout depends on the minor version it embeds, which is checked first.
    """
    if len(raw) < 24 or raw[:8] != DEBUG_COOKIE:
        raise UnsupportedPython("no _Py_DebugOffsets cookie at _PyRuntime",
                                "the target is not CPython 3.13+ or _PyRuntime was misplaced")
    version, free_threaded = struct.unpack_from("<QQ", raw, 8)
    major, minor = (version >> 24) & 0xFF, (version >> 16) & 0xFF
    layout = tables.DEBUG_OFFSETS_LAYOUT.get(minor) if major == 3 else None
    if layout is None:
        raise UnsupportedPython(f"unknown _Py_DebugOffsets layout for Python {major}.{minor}",
                                "upgrade pyprof-ebpf")
    need = max(layout.values()) + 8
    if len(raw) < need:
        raise UnsupportedPython(f"_Py_DebugOffsets block truncated ({len(raw)} < {need} bytes)")
    out = {name: struct.unpack_from("<Q", raw, pos)[0] for name, pos in layout.items()}
    out.update(version=version, free_threaded=free_threaded, major=major, minor=minor)
    return out


def _from_debug_offsets(minor: int, d: Mapping[str, int]) -> dict[str, int]:
    # Mapping from _Py_DebugOffsets_INIT (Include/internal/pycore_runtime.h at v3.13.0;
    # Include/internal/pycore_debug_offsets.h in 3.14) to CPython's struct field names.
    out = {
        "PyRuntimeState_interpreters_head": d["runtime_state.interpreters_head"],
        "PyInterpreterState_threads_head": d["interpreter_state.threads_head"],
        "PyThreadState_next": d["thread_state.next"],
        "PyThreadState_thread_id": d["thread_state.thread_id"],
        "PyThreadState_native_thread_id": d["thread_state.native_thread_id"],
        "PyThreadState_current_frame": d["thread_state.current_frame"],
        "_PyInterpreterFrame_previous": d["interpreter_frame.previous"],
        "_PyInterpreterFrame_f_executable": d["interpreter_frame.executable"],
        "_PyInterpreterFrame_instr_ptr": d["interpreter_frame.instr_ptr"],
        "_PyInterpreterFrame_owner": d["interpreter_frame.owner"],
        "PyObject_ob_type": d["pyobject.ob_type"],
        "PyCodeObject_co_argcount": d["code_object.argcount"],
        "PyCodeObject_co_firstlineno": d["code_object.firstlineno"],
        "PyCodeObject_co_filename": d["code_object.filename"],
        "PyCodeObject_co_name": d["code_object.name"],
        "PyCodeObject_co_qualname": d["code_object.qualname"],
        "PyCodeObject_co_linetable": d["code_object.linetable"],
        "PyCodeObject_co_code_adaptive": d["code_object.co_code_adaptive"],
        "PyBytesObject_ob_size": d["bytes_object.ob_size"],
        "PyBytesObject_ob_sval": d["bytes_object.ob_sval"],
        "PyASCIIObject_length": d["unicode_object.length"],
        "PyASCIIObject_state": d["unicode_object.state"],
        "PyASCIIObject_size": d["unicode_object.asciiobject_size"],
        # PyCompactUnicodeObject = {PyASCIIObject; Py_ssize_t utf8_length; char *utf8} and
        # PyUnicodeObject adds one data pointer (Include/cpython/unicodeobject.h, 3.12+).
        "PyCompactUnicodeObject_utf8_length": d["unicode_object.asciiobject_size"],
        "PyCompactUnicodeObject_utf8": d["unicode_object.asciiobject_size"] + 8,
        "PyCompactUnicodeObject_size": d["unicode_object.size"] - 8,
    }
    # Not published: the struct tail is `int _co_firsttraceable; void *co_extra;
    # char co_code_adaptive[]` (Include/cpython/code.h _PyCode_DEF, v3.13.0 and 3.14), so it sits
    # 16 bytes before co_code_adaptive on LP64 (184/200 in 3.13, 192/208 in 3.14 per the notes).
    out["PyCodeObject__co_firsttraceable"] = d["code_object.co_code_adaptive"] - 16
    # Cross-check against the struct sizes the block also publishes (all hostile input).
    sizes = {"PyThreadState_": "thread_state.size",
             "_PyInterpreterFrame_": "interpreter_frame.size",
             "PyCodeObject_": "code_object.size", "PyBytesObject_": "bytes_object.size",
             "PyRuntimeState_": "runtime_state.size",
             "PyInterpreterState_": "interpreter_state.size"}
    for name, value in out.items():
        size_key = next((v for k, v in sizes.items() if name.startswith(k)), None)
        if size_key and name != "PyCodeObject_co_code_adaptive" and value >= d[size_key]:
            raise UnsupportedPython(f"_Py_DebugOffsets: {name}={value} lies outside "
                                    f"{size_key}={d[size_key]}", _REMEDY)
    return out


_REMEDY = "the target's layout is not one pyprof-ebpf can trust; please report the build"


def validate(off: Offsets) -> Offsets:
    """Reject absurd or inconsistent offsets (failed reads, garbage, unknown builds)."""
    seen: dict[str, dict[int, str]] = {}
    for name, value in off.offset_fields().items():
        if value == -1:
            continue
        limit = _BIG_STRUCT_LIMIT if name.startswith(_BIG_PREFIXES) else _SMALL_STRUCT_LIMIT
        align = 8 if name in _SIZE_FIELDS else _INT_FIELDS.get(name, 8)
        if not 0 <= value < limit or value % align:
            raise UnsupportedPython(f"implausible offset {name}={value} for Python "
                                    f"{off.version[0]}.{off.version[1]}", _REMEDY)
        struct_name = name.split("_", 2)[1] if name.startswith("_") else name.split("_", 1)[0]
        other = seen.setdefault(struct_name, {}).get(value)
        if other and name not in _SIZE_FIELDS and other not in _SIZE_FIELDS:
            raise UnsupportedPython(f"offsets {other} and {name} are both {value}", _REMEDY)
        seen[struct_name][value] = name
    required = ["PyRuntimeState_interpreters_head", "PyInterpreterState_threads_head",
                "PyThreadState_next", "PyThreadState_thread_id", "PyObject_ob_type",
                "PyCodeObject_co_firstlineno", "PyCodeObject_co_filename", "PyCodeObject_co_name",
                "PyASCIIObject_size", "PyBytesObject_ob_sval"]
    missing = [n for n in required if getattr(off, n) < 0]
    missing += [p for p in ("tstate_frame", "frame_previous", "frame_code", "frame_instr",
                            "code_linetable") if getattr(off, p) < 0]
    if off.cframe_indirection and off._PyCFrame_current_frame < 0:
        missing.append("_PyCFrame_current_frame")
    if off.instr_kind == InstrKind.INSTR_POINTER and off.PyCodeObject_co_code_adaptive < 0:
        missing.append("PyCodeObject_co_code_adaptive")
    if off.owner_skip_min != OWNER_NEVER_SKIP and off._PyInterpreterFrame_owner < 0:
        missing.append("_PyInterpreterFrame_owner")
    if missing:
        raise UnsupportedPython(f"offsets missing for Python {off.version[0]}."
                                f"{off.version[1]}: {', '.join(missing)}", _REMEDY)
    if off.code_ptr_mask & 0xFFFF_0000_0000_0000 != 0xFFFF_0000_0000_0000 or \
            off.code_ptr_mask & ~0xF & MASK_ALL != ~0xF & MASK_ALL:
        raise UnsupportedPython(f"implausible code pointer mask {off.code_ptr_mask:#x}", _REMEDY)
    return off


def offsets_for(version: Sequence[int], debug_offsets_bytes: bytes | None = None) -> Offsets:
    """``Offsets`` for CPython ``version`` (major, minor[, micro]); 3.13+ needs the block bytes.

    ``debug_offsets_bytes`` is the target's ``_Py_DebugOffsets`` (the first
    ``tables.DEBUG_OFFSETS_SIZE[minor]`` bytes of ``_PyRuntime``, from the file or from memory).
    Raises ``UnsupportedPython`` for unknown versions, free-threaded builds and bad values.
    """
    major, minor = int(version[0]), int(version[1])
    if (major, minor) in tables.STATIC_TABLES:
        values: dict[str, object] = dict(tables.STATIC_TABLES[(major, minor)])
        source = "table"
    elif major == 3 and minor >= tables.FIRST_DEBUG_OFFSETS_MINOR:
        if debug_offsets_bytes is None:
            raise UnsupportedPython(f"Python 3.{minor} offsets must come from the target's "
                                    "_Py_DebugOffsets, which could not be read")
        d = parse_debug_offsets(debug_offsets_bytes)
        if (d["major"], d["minor"]) != (major, minor):
            raise UnsupportedPython(f"_Py_DebugOffsets says {d['major']}.{d['minor']}, "
                                    f"expected {major}.{minor}", _REMEDY)
        if d["free_threaded"]:
            raise UnsupportedBuild(f"free-threaded Python 3.{minor}t is not supported",
                                    "profile a default (GIL) build of CPython")
        values = dict(_from_debug_offsets(minor, d))
        values.update(tables.DEBUG_MINOR_FACTS[minor])
        source = "_Py_DebugOffsets"
    else:
        raise UnsupportedPython(f"unsupported Python {major}.{minor}",
                                "pyprof-ebpf supports CPython 3.8 to 3.14")
    flags = _flags_for(minor)
    flags.update({k: v for k, v in values.items() if k in ("owner_skip_min", "code_ptr_mask")})
    values = {k: v for k, v in values.items() if k not in flags}
    return validate(Offsets(version=(major, minor), source=source, **values, **flags))
