# Run by tests/unit/test_cpython_offsets.py under each installed CPython (3.8+ syntax only).
# Prints JSON with layout facts the interpreter knows about itself, independent of our tables:
# the code object's member offsets from PyCode_Type.tp_members (CPython's own table) and
# struct sizes derived from sys.getsizeof.
import ctypes
import json
import sys
import types

TP_MEMBERS = 240  # offsetof(PyTypeObject, tp_members), x86-64, 3.8-3.14 (Include/cpython/object.h)


class PyMemberDef(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("type", ctypes.c_int),
                ("offset", ctypes.c_ssize_t), ("flags", ctypes.c_int), ("doc", ctypes.c_char_p)]


members = {}
ptr = ctypes.c_void_p.from_address(id(types.CodeType) + TP_MEMBERS).value
for i in range(200):
    m = PyMemberDef.from_address(ptr + i * ctypes.sizeof(PyMemberDef))
    if not m.name:
        break
    members[m.name.decode()] = m.offset

json.dump({
    "version": list(sys.version_info[:3]),
    "code_members": members,
    # compact ASCII: header + (len + 1) bytes; compact latin-1: compact header + (len + 1)
    "ascii_size": sys.getsizeof("") - 1,
    "compact_size": sys.getsizeof("\xe9" * 5) - 6,
    "bytes_ob_sval": sys.getsizeof(b"") - 1,
}, sys.stdout)
