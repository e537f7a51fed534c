"""Line-table decoders: (raw table bytes, co_firstlineno, instruction offset) -> line number.

Responsibility: reimplement, in pure Python, CPython's ``PyCode_Addr2Line(code, addrq)`` for the
three on-disk line-table formats, so user space can turn what the BPF walker recorded into lines.
It must not read process memory, know about offsets, or branch on a Python version: the caller
picks the decoder with ``Offsets.linetable_format`` (a data field, see ``offsets.py``).

Units, explicitly. Every decoder takes ``addrq``: the **byte** offset of the current (3.11+:
"last started") instruction from the start of the code object's bytecode, exactly the argument of
``PyCode_Addr2Line`` and the value of Python-level ``frame.f_lasti``. What the BPF side records
and how to turn it into ``addrq`` (``addrq_from_frame``):

* 3.8, 3.9   ``PyFrameObject.f_lasti`` (C int) is already bytes;
* 3.10       ``PyFrameObject.f_lasti`` counts 2-byte code units: ``addrq = 2 * f_lasti``;
* 3.11/3.12  ``_PyInterpreterFrame.prev_instr`` minus ``code + co_code_adaptive`` (bytes; a frame
             that was just pushed has ``prev_instr = start - 1`` -> ``addrq == -2``);
* 3.13+      ``_PyInterpreterFrame.instr_ptr`` minus ``code + co_code_adaptive`` (bytes).

A negative ``addrq`` means "before the first instruction": CPython answers ``co_firstlineno``, and
so do we. A result of -1 means "no line" (an artificial instruction), as in CPython.

Formats: CPython ``Objects/lnotab_notes.txt`` (v3.8.18 and v3.10.13) and ``Objects/locations.md``
(v3.11.7). The tables come from target memory, so every decoder is bounded by ``MAX_TABLE`` and
returns -1 instead of raising on a truncated or malformed table.
"""

from __future__ import annotations

import enum

# No real code object has a line table this large (the 3.12 stdlib maximum is tens of KiB); a
# bigger one is garbage read from a dying or hostile process.
MAX_TABLE = 1 << 20
NO_LINE = -1


class LineTableFormat(enum.IntEnum):
    """Which decoder a version needs; stored in ``Offsets.linetable_format``."""

    LNOTAB = 0  # 3.8, 3.9 co_lnotab: (byte delta u8, line delta s8) pairs
    PEP626 = 1  # 3.10 co_linetable: (byte delta u8, line delta s8, -128 = no line) pairs
    LOCATIONS = 2  # 3.11+ co_linetable: varint location entries over 2-byte code units


class InstrKind(enum.IntEnum):
    """What the frame's instruction field holds; stored in ``Offsets.instr_kind``."""

    LASTI_BYTES = 0  # 3.8/3.9 f_lasti (int, bytes, -1 before start)
    LASTI_CODE_UNITS = 1  # 3.10 f_lasti (int, 2-byte code units, -1 before start)
    INSTR_POINTER = 2  # 3.11+ prev_instr / instr_ptr (pointer into co_code_adaptive)


def addrq_from_frame(kind: int, raw: int, code_addr: int = 0, co_code_adaptive: int = 0) -> int:
    """Turn the raw frame instruction field into ``addrq`` (bytes), per ``InstrKind``.

    For ``INSTR_POINTER`` ``raw`` is the pointer value and ``code_addr + co_code_adaptive``
    the start of the bytecode in the target. The result is not range-checked: the decoders
    accept any int.
    """
    if kind == InstrKind.LASTI_BYTES:
        return raw
    if kind == InstrKind.LASTI_CODE_UNITS:
        # Include/cpython/frameobject.h (v3.10.13): f_lasti is an index; CPython's own
        # PyFrame_GetLineNumber passes f_lasti*2 to PyCode_Addr2Line.
        return raw * 2 if raw >= 0 else raw
    if kind == InstrKind.INSTR_POINTER:
        return raw - (code_addr + co_code_adaptive)
    raise ValueError(f"unknown instruction kind {kind}")


def line_from_lnotab(table: bytes, firstlineno: int, addrq: int) -> int:
    """3.8/3.9 ``co_lnotab`` (Objects/lnotab_notes.txt at v3.8.18; ``PyCode_Addr2Line``)."""
    table = table[:MAX_TABLE]
    line, addr = firstlineno, 0
    for i in range(0, len(table) - 1, 2):
        addr += table[i]
        if addr > addrq:
            break
        delta = table[i + 1]
        # Line deltas are signed bytes since 3.6 (bpo-26107), so loops can go backwards.
        line += delta - 256 if delta >= 128 else delta
    return line


def line_from_pep626(table: bytes, firstlineno: int, addrq: int) -> int:
    """3.10 ``co_linetable`` (Objects/lnotab_notes.txt at v3.10.13; ``_PyCode_CheckLineNumber``)."""
    if addrq < 0:
        return firstlineno
    table = table[:MAX_TABLE]
    line, end = firstlineno, 0
    for i in range(0, len(table) - 1, 2):
        sdelta, ldelta = table[i], table[i + 1]
        if ldelta >= 128:
            ldelta -= 256
        start, end = end, end + sdelta
        if ldelta == -128:  # "no line number" entry; it does not move the running line
            if start <= addrq < end:
                return NO_LINE
            continue
        line += ldelta
        if start <= addrq < end:
            return line
    return NO_LINE


class _Truncated(Exception):
    pass


def _varint(table: bytes, i: int) -> tuple[int, int]:
    # Objects/locations.md (v3.11.7): 6-bit chunks, little end first, bit 6 = "more follows".
    try:
        b = table[i]
        val, shift = b & 63, 0
        i += 1
        while b & 64:
            b = table[i]
            i += 1
            shift += 6
            if shift > 60:  # a real varint never exceeds 64 bits; garbage could loop long
                raise _Truncated
            val |= (b & 63) << shift
    except IndexError as err:
        raise _Truncated from err
    return val, i


def _svarint(table: bytes, i: int) -> tuple[int, int]:
    val, i = _varint(table, i)
    return (-(val >> 1) if val & 1 else val >> 1), i


def line_from_locations(table: bytes, firstlineno: int, addrq: int) -> int:
    """3.11+ location table (Objects/locations.md at v3.11.7; ``_PyCode_CheckLineNumber``).

    Entry lengths count 2-byte code units; ``addrq`` is in bytes, so each entry covers
    ``2 * units`` bytes. Unchanged in 3.12, 3.13 and 3.14 (Objects/locations.md at those tags).
    """
    if addrq < 0:
        return firstlineno
    table = table[:MAX_TABLE]
    line, addr, i, n = firstlineno, 0, 0, len(table)
    try:
        while i < n:
            first = table[i]
            i += 1
            if not first & 0x80:  # every entry starts with bit 7 set: we lost sync -> garbage
                return NO_LINE
            code = (first >> 3) & 15
            end = addr + ((first & 7) + 1) * 2
            if code == 15:  # PY_CODE_LOCATION_INFO_NONE
                result = NO_LINE
            elif code == 14:  # LONG: line delta (svarint), end line, column+1, end column+1
                delta, i = _svarint(table, i)
                line += delta
                result = line
                for _ in range(3):
                    _, i = _varint(table, i)
            elif code == 13:  # NO_COLUMNS: line delta (svarint)
                delta, i = _svarint(table, i)
                line += delta
                result = line
            elif code >= 10:  # ONE_LINE0..2: line delta is code - 10, then 2 column bytes
                line += code - 10
                result = line
                i += 2
            else:  # SHORT0..9: same line, 1 column byte
                result = line
                i += 1
            if addr <= addrq < end:
                return result
            addr = end
    except _Truncated:
        return NO_LINE
    return NO_LINE


_DECODERS = {
    LineTableFormat.LNOTAB: line_from_lnotab,
    LineTableFormat.PEP626: line_from_pep626,
    LineTableFormat.LOCATIONS: line_from_locations,
}


def line_for(fmt: int, table: bytes, firstlineno: int, addrq: int) -> int:
    """Decode with the format named by ``Offsets.linetable_format``."""
    try:
        decoder = _DECODERS[LineTableFormat(fmt)]
    except ValueError as err:
        raise ValueError(f"unknown line table format {fmt}") from err
    return decoder(bytes(table), firstlineno, addrq)
