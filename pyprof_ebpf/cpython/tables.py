"""CPython layout knowledge as data: the only place that lists per-version numbers.

Responsibility: hold (1) the per-minor offset tables for CPython 3.8-3.12 on x86-64 (default GIL,
non-debug builds), (2) the byte layout of the ``_Py_DebugOffsets`` block for 3.13 and 3.14, from
which 3.13+ offsets are read out of the target at attach time, and (3) the few per-minor facts
that ``_Py_DebugOffsets`` does not carry (entry-frame owner value, ``_PyStackRef`` tag mask).
No logic lives here; ``offsets.py`` turns these into ``Offsets``.

Provenance of 3.8-3.12 numbers: /work/shared/notes/cpython-frames.md section 1.0 (``offsetof``
compiled against the headers of 3.8.18, 3.9.18, 3.10.13, 3.11.7, 3.12.1 and walked live through
ctypes; cross-checked with pyroscope's DWARF table, which shows no drift inside a minor). The
structs are in CPython ``Include/internal/pycore_runtime.h``/``pycore_interp.h``,
``Include/cpython/pystate.h``, ``Include/cpython/frameobject.h`` (<=3.10),
``Include/internal/pycore_frame.h`` (3.11/3.12), ``Include/cpython/code.h`` and
``Include/cpython/unicodeobject.h`` at the tags named below. ``-1`` (or absence) = no such field.
"""

from __future__ import annotations

# Strings and bytes are identical in 3.8-3.11 (PEP 623 removed ``wstr`` in 3.12, shrinking
# PyASCIIObject from 48 to 40 bytes). Include/cpython/unicodeobject.h, Include/bytesobject.h.
_STR_311 = {
    "PyObject_ob_type": 8,
    "PyBytesObject_ob_size": 16, "PyBytesObject_ob_sval": 32,
    "PyASCIIObject_length": 16, "PyASCIIObject_state": 32, "PyASCIIObject_size": 48,
    "PyCompactUnicodeObject_utf8_length": 48, "PyCompactUnicodeObject_utf8": 56,
    "PyCompactUnicodeObject_size": 72,
}
_STR_312 = dict(_STR_311, PyASCIIObject_size=40, PyCompactUnicodeObject_utf8_length=40,
                PyCompactUnicodeObject_utf8=48, PyCompactUnicodeObject_size=56)

# 3.8: v3.8.18 Include/internal/pycore_pystate.h, Include/cpython/pystate.h, Include/frameobject.h,
# Include/code.h. PyInterpreterState.tstate_head is stored under its 3.11+ name threads_head.
_V3_8 = dict(
    _STR_311,
    PyRuntimeState_interpreters_head=32, PyInterpreterState_threads_head=8,
    PyThreadState_next=8, PyThreadState_thread_id=176, PyThreadState_frame=24,
    PyFrameObject_f_back=24, PyFrameObject_f_code=32, PyFrameObject_f_lasti=104,
    PyCodeObject_co_argcount=16, PyCodeObject_co_firstlineno=40, PyCodeObject_co_code=48,
    PyCodeObject_co_filename=104, PyCodeObject_co_name=112, PyCodeObject_co_lnotab=120,
)

# 3.9: v3.9.18 Include/internal/pycore_runtime.h, pycore_interp.h, Include/cpython/frameobject.h.
# Same numbers as 3.8 for everything the walk uses.
_V3_9 = dict(_V3_8)

# 3.10: v3.10.13 Include/cpython/frameobject.h: f_lasti is now a code-unit index (bpo-27129) and
# moved to 96; Include/cpython/code.h: co_lnotab became co_linetable (PEP 626) at the same slot.
_V3_10 = {k: v for k, v in _V3_8.items() if k != "PyCodeObject_co_lnotab"}
_V3_10.update(PyFrameObject_f_lasti=96, PyCodeObject_co_linetable=120)

# 3.11: v3.11.7 Include/cpython/pystate.h (tstate->cframe->current_frame),
# Include/internal/pycore_frame.h (_PyInterpreterFrame: f_code 32, previous 48, prev_instr 56,
# owner 69), Include/cpython/code.h (co_code_adaptive inline at 184).
_V3_11 = dict(
    _STR_311,
    PyRuntimeState_interpreters_head=40, PyInterpreterState_threads_head=16,
    PyThreadState_next=8, PyThreadState_thread_id=152, PyThreadState_native_thread_id=160,
    PyThreadState_cframe=56, _PyCFrame_current_frame=8,
    _PyInterpreterFrame_previous=48, _PyInterpreterFrame_f_code=32,
    _PyInterpreterFrame_prev_instr=56, _PyInterpreterFrame_owner=69,
    PyCodeObject_co_argcount=56, PyCodeObject_co_firstlineno=72, PyCodeObject_co_filename=112,
    PyCodeObject_co_name=120, PyCodeObject_co_qualname=128, PyCodeObject_co_linetable=136,
    PyCodeObject__co_firsttraceable=168, PyCodeObject_co_code_adaptive=184,
)

# 3.12: v3.12.1 Include/internal/pycore_frame.h, reordered so f_code/previous are the first two
# words (python/cpython#100987); _PyCFrame.current_frame moved to 0.
_V3_12 = dict(
    _STR_312,
    PyRuntimeState_interpreters_head=40, PyInterpreterState_threads_head=72,
    PyThreadState_next=8, PyThreadState_thread_id=136, PyThreadState_native_thread_id=144,
    PyThreadState_cframe=56, _PyCFrame_current_frame=0,
    _PyInterpreterFrame_previous=8, _PyInterpreterFrame_f_code=0,
    _PyInterpreterFrame_prev_instr=56, _PyInterpreterFrame_owner=70,
    PyCodeObject_co_argcount=52, PyCodeObject_co_firstlineno=68, PyCodeObject_co_filename=112,
    PyCodeObject_co_name=120, PyCodeObject_co_qualname=128, PyCodeObject_co_linetable=136,
    PyCodeObject__co_firsttraceable=176, PyCodeObject_co_code_adaptive=192,
)

STATIC_TABLES: dict[tuple[int, int], dict[str, int]] = {
    (3, 8): _V3_8, (3, 9): _V3_9, (3, 10): _V3_10, (3, 11): _V3_11, (3, 12): _V3_12,
}

# Which minors have a _Py_DebugOffsets block (PR python/cpython#106598, first in 3.13).
FIRST_DEBUG_OFFSETS_MINOR = 13


def _layout(groups: list[tuple[str, tuple[str, ...]]]) -> dict[str, int]:
    """Byte position of each ``group.field`` u64, after cookie, version and free_threaded."""
    pos, out = 24, {}
    for group, fields in groups:
        for field in fields:
            out[f"{group}.{field}"] = pos
            pos += 8
    return out


# _Py_DebugOffsets, 3.13: v3.13.0 Include/internal/pycore_runtime.h (584 bytes). Declaration order;
# the test suite checks the positions against the notes' [D] list and a live 3.13 process.
_DEBUG_3_13_GROUPS = [
    ("runtime_state", ("size", "finalizing", "interpreters_head")),
    ("interpreter_state", ("size", "id", "next", "threads_head", "gc", "imports_modules",
                           "sysdict", "builtins", "ceval_gil", "gil_runtime_state",
                           "gil_runtime_state_enabled", "gil_runtime_state_locked",
                           "gil_runtime_state_holder")),
    ("thread_state", ("size", "prev", "next", "interp", "current_frame", "thread_id",
                      "native_thread_id", "datastack_chunk", "status")),
    ("interpreter_frame", ("size", "previous", "executable", "instr_ptr", "localsplus", "owner")),
    ("code_object", ("size", "filename", "name", "qualname", "linetable", "firstlineno",
                     "argcount", "localsplusnames", "localspluskinds", "co_code_adaptive")),
    ("pyobject", ("size", "ob_type")),
    ("type_object", ("size", "tp_name", "tp_repr", "tp_flags")),
    ("tuple_object", ("size", "ob_item", "ob_size")),
    ("list_object", ("size", "ob_item", "ob_size")),
    ("dict_object", ("size", "ma_keys", "ma_values")),
    ("float_object", ("size", "ob_fval")),
    ("long_object", ("size", "lv_tag", "ob_digit")),
    ("bytes_object", ("size", "ob_size", "ob_sval")),
    ("unicode_object", ("size", "state", "length", "asciiobject_size")),
    ("gc", ("size", "collecting")),
]

# _Py_DebugOffsets, 3.14: Include/internal/pycore_debug_offsets.h (760 bytes). It grew
# threads_main, code_object_generation/tlbc_generation, stackpointer/tlbc_index, co_tlbc and a
# set_object group; gen_object, llist_node and debugger_support follow gc and are not needed.
# Positions as listed for 3.14.0 in the notes (section 1.6, [B]); not yet run on a 3.14 binary.
_DEBUG_3_14_GROUPS = [
    ("runtime_state", ("size", "finalizing", "interpreters_head")),
    ("interpreter_state", ("size", "id", "next", "threads_head", "threads_main", "gc",
                           "imports_modules", "sysdict", "builtins", "ceval_gil",
                           "gil_runtime_state", "gil_runtime_state_enabled",
                           "gil_runtime_state_locked", "gil_runtime_state_holder",
                           "code_object_generation", "tlbc_generation")),
    ("thread_state", ("size", "prev", "next", "interp", "current_frame", "thread_id",
                      "native_thread_id", "datastack_chunk", "status")),
    ("interpreter_frame", ("size", "previous", "executable", "instr_ptr", "localsplus", "owner",
                           "stackpointer", "tlbc_index")),
    ("code_object", ("size", "filename", "name", "qualname", "linetable", "firstlineno",
                     "argcount", "localsplusnames", "localspluskinds", "co_code_adaptive",
                     "co_tlbc")),
    ("pyobject", ("size", "ob_type")),
    ("type_object", ("size", "tp_name", "tp_repr", "tp_flags")),
    ("tuple_object", ("size", "ob_item", "ob_size")),
    ("list_object", ("size", "ob_item", "ob_size")),
    ("set_object", ("size", "used", "table", "mask")),
    ("dict_object", ("size", "ma_keys", "ma_values")),
    ("float_object", ("size", "ob_fval")),
    ("long_object", ("size", "lv_tag", "ob_digit")),
    ("bytes_object", ("size", "ob_size", "ob_sval")),
    ("unicode_object", ("size", "state", "length", "asciiobject_size")),
    ("gc", ("size", "collecting")),
]

DEBUG_OFFSETS_LAYOUT: dict[int, dict[str, int]] = {
    13: _layout(_DEBUG_3_13_GROUPS),
    14: _layout(_DEBUG_3_14_GROUPS),
}
# Full sizeof(_Py_DebugOffsets) per minor: how many bytes to read from the target.
DEBUG_OFFSETS_SIZE = {13: 584, 14: 760}
# Largest block we know; readers fetch this much before they know the minor.
DEBUG_OFFSETS_MAX_SIZE = max(DEBUG_OFFSETS_SIZE.values())

# Facts 3.13+ do not publish in _Py_DebugOffsets, per minor.
DEBUG_MINOR_FACTS: dict[int, dict[str, int]] = {
    # v3.13.0 Include/internal/pycore_frame.h: FRAME_OWNED_BY_CSTACK = 3 marks the entry shim.
    13: {"owner_skip_min": 3, "code_ptr_mask": 0xFFFF_FFFF_FFFF_FFFF},
    # 3.14 pycore_interpframe_structs.h: FRAME_OWNED_BY_INTERPRETER = 3 (python/cpython#129078),
    # CSTACK moved to 4, CPython tests owner >= 3. f_executable is a tagged _PyStackRef
    # (pycore_stackref.h); Py_TAG_BITS is 1 or 3 depending on the revision, objects are 8-aligned,
    # so clearing the low 3 bits is safe for both.
    14: {"owner_skip_min": 3, "code_ptr_mask": 0xFFFF_FFFF_FFFF_FFF8},
}
