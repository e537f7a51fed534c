"""Frames as the BPF walker recorded them -> ``file:qualname:line``.

Responsibility: turn ``(pid, code address, tag, addrq)`` into an ``aggregate.Frame``. Names,
file names and line tables come first from what BPF captured on first sight of the code
object (``code_info``, so processes that have exited still resolve), else from the live
process's memory; the ``tag`` (co_firstlineno mixed with the line-table pointer) guards
against a freed code object whose address was reused. The line is the *current* line,
decoded from the instruction offset with the version's own line-table format. It never
raises for a bad frame: an unresolvable frame becomes ``<unknown>``.
"""

from __future__ import annotations

import struct
from typing import Dict, Optional, Tuple

from .aggregate import Frame
from .cpython.linetable import NO_LINE, line_for
from .cpython.offsets import Offsets
from .errors import ProcessGone, PyprofError

UNKNOWN = "<unknown>"
_CODECS = {1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}


def decode_pystr(raw: bytes, kind: int) -> Optional[str]:
    """PEP 393 code units (1/2/4 bytes each) to str; None when BPF could not read it."""
    codec = _CODECS.get(kind)
    if codec is None:
        return None
    raw = raw[: len(raw) - len(raw) % kind]
    return raw.decode(codec, "replace")


class CodeInfo:
    __slots__ = ("name", "file", "firstlineno", "linetable", "complete")

    def __init__(self, name: str, file: str, firstlineno: int, linetable: bytes, complete: bool):
        self.name, self.file, self.firstlineno = name, file, firstlineno
        self.linetable, self.complete = linetable, complete


def from_capture(ci) -> CodeInfo:
    """From the BPF ``struct code_info`` (ctypes)."""
    raw = bytes(memoryview(ci).cast("B"))
    name_off = type(ci).name.offset
    file_off = type(ci).file.offset
    lt_off = type(ci).linetable.offset
    name = decode_pystr(raw[name_off:name_off + ci.name_len], ci.name_kind)
    file = decode_pystr(raw[file_off:file_off + ci.file_len], ci.file_kind)
    cap = type(ci).linetable.size
    table = raw[lt_off:lt_off + min(ci.linetable_len, cap)]
    return CodeInfo(name or UNKNOWN, file or UNKNOWN, ci.firstlineno, table, ci.linetable_len <= cap)


class Symbolizer:
    """Per-session cache; ``lookup_capture(key)`` reads the BPF map, ``read_live`` the target."""

    def __init__(self, lookup_capture, read_memory):
        self.lookup_capture = lookup_capture      # (pid, code, tag) -> ctypes code_info | None
        self.read_memory = read_memory            # (pid, addr, size) -> bytes (raises if gone)
        self.codes: Dict[Tuple[int, int, int], Optional[CodeInfo]] = {}
        self.gone: set = set()     # pids whose memory can no longer be read: misses are final
        self.unresolved = 0

    def code(self, pid: int, code: int, tag: int, off: Offsets) -> Optional[CodeInfo]:
        key = (pid, code, tag)
        if key in self.codes and (self.codes[key] is not None or pid in self.gone):
            return self.codes[key]
        ci = None
        captured = self.lookup_capture(pid, code, tag)
        if captured is not None:
            ci = from_capture(captured)
            if not ci.complete:
                table = self._live_linetable(pid, code, off)
                if table is not None:
                    ci.linetable, ci.complete = table, True
        else:
            ci = self._live(pid, code, tag, off)
        self.codes[key] = ci
        return ci

    def frame(self, pid: int, code: int, tag: int, addrq: int, off: Offsets) -> Frame:
        ci = self.code(pid, code, tag, off)
        if ci is None:
            self.unresolved += 1
            return Frame(UNKNOWN, UNKNOWN, 0)
        # A frame still in its prologue (3.11+ "incomplete": before _co_firsttraceable) has
        # addrq < 0 or maps to the def line, which is what CPython itself reports for it.
        line = ci.firstlineno
        if addrq >= 0 and ci.linetable:
            decoded = line_for(off.linetable_format, ci.linetable, ci.firstlineno, addrq)
            if decoded != NO_LINE:
                line = decoded
        return Frame(ci.file, ci.name, line)

    # -- the live process, when BPF did not capture (or captured a partial table) --------
    def _ptr(self, pid: int, addr: int) -> int:
        return struct.unpack("<Q", self.read_memory(pid, addr, 8))[0]

    def _bytes_obj(self, pid: int, addr: int, off: Offsets, limit: int = 1 << 20) -> bytes:
        size = struct.unpack("<q", self.read_memory(pid, addr + off.PyBytesObject_ob_size, 8))[0]
        if not 0 <= size <= limit:
            raise ValueError("implausible bytes size")
        return self.read_memory(pid, addr + off.PyBytesObject_ob_sval, size) if size else b""

    def _str_obj(self, pid: int, addr: int, off: Offsets) -> str:
        head = self.read_memory(pid, addr, max(off.PyASCIIObject_state, off.PyASCIIObject_length) + 8)
        length = struct.unpack_from("<q", head, off.PyASCIIObject_length)[0]
        state = struct.unpack_from("<I", head, off.PyASCIIObject_state)[0]
        kind = (state >> off.unicode_kind_shift) & 7
        if not (state >> off.unicode_compact_bit) & 1 or not 0 <= length <= 4096 or kind not in _CODECS:
            raise ValueError("not a compact string")
        ascii_ = (state >> off.unicode_ascii_bit) & 1
        data = addr + (off.PyASCIIObject_size if ascii_ else off.PyCompactUnicodeObject_size)
        return decode_pystr(self.read_memory(pid, data, length * kind), kind) if length else ""

    def _live_linetable(self, pid: int, code: int, off: Offsets) -> Optional[bytes]:
        try:
            return self._bytes_obj(pid, self._ptr(pid, code + off.code_linetable), off)
        except ProcessGone:
            self.gone.add(pid)
            return None
        except (PyprofError, OSError, ValueError, struct.error):
            return None

    def _live(self, pid: int, code: int, tag: int, off: Offsets) -> Optional[CodeInfo]:
        try:
            first = struct.unpack("<i", self.read_memory(pid, code + off.PyCodeObject_co_firstlineno, 4))[0]
            lt = self._ptr(pid, code + off.code_linetable)
            if ((first & 0xFFFFFFFF) ^ ((lt >> 3) & 0xFFFFFFFF)) != tag:
                return None       # the code object was freed and its memory reused
            name_off = off.PyCodeObject_co_qualname if off.PyCodeObject_co_qualname >= 0 else off.PyCodeObject_co_name
            name = self._str_obj(pid, self._ptr(pid, code + name_off), off)
            file = self._str_obj(pid, self._ptr(pid, code + off.PyCodeObject_co_filename), off)
            return CodeInfo(name, file, first, self._bytes_obj(pid, lt, off), True)
        except ProcessGone:
            self.gone.add(pid)
            return None
        except (PyprofError, OSError, ValueError, struct.error):
            return None
