"""Line-table decoders checked against CPython itself.

Each installed interpreter runs tests/data/cpython/dump_lines.py, which dumps its raw line
tables plus CPython's own answers (PyCode_Addr2Line for every instruction offset, co_lines(),
and live frames' f_lasti/f_lineno). Our decoders, running in this venv's Python, must agree.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pyprof_ebpf.cpython import linetable
from pyprof_ebpf.cpython.linetable import InstrKind, LineTableFormat

DATA = Path(__file__).resolve().parent.parent / "data" / "cpython"
PYENV = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"
PYTHONS = {
    "3.8": PYENV / "3.8.18/bin/python3.8",
    "3.9": PYENV / "3.9.18/bin/python3.9",
    "3.10": PYENV / "3.10.13/bin/python3.10",
    "3.11": PYENV / "3.11.7/bin/python3.11",
    "3.12": PYENV / "3.12.1/bin/python3.12",
    "3.13": PYENV / "3.13.0/bin/python3.13",
    "debian-3.11": Path("/usr/bin/python3.11"),
}


def table_format(minor: int) -> LineTableFormat:
    return {8: LineTableFormat.LNOTAB, 9: LineTableFormat.LNOTAB,
            10: LineTableFormat.PEP626}.get(minor, LineTableFormat.LOCATIONS)


@pytest.fixture(scope="module", params=sorted(PYTHONS), ids=sorted(PYTHONS))
def dump(request):
    exe = PYTHONS[request.param]
    if not exe.exists():
        pytest.skip(f"{exe} is not installed")
    proc = subprocess.run([str(exe), str(DATA / "dump_lines.py")], capture_output=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def test_decoder_matches_pycode_addr2line_everywhere(dump):
    # GIVEN every code object's raw table and CPython's PyCode_Addr2Line for every offset
    fmt = table_format(dump["version"][1])
    checked, mismatches = 0, []
    for co in dump["codes"]:
        table = bytes.fromhex(co["table"])
        for addrq, want in co["addr2line"].items():
            # WHEN our decoder answers the same question
            got = linetable.line_for(fmt, table, co["firstlineno"], int(addrq))
            checked += 1
            if got != want:
                mismatches.append((co["name"], int(addrq), got, want))
    # THEN every answer matches (negative addrq and one past the end included)
    assert not mismatches, mismatches[:20]
    assert checked > 500, "the fixture should exercise many instruction offsets"


def test_fixture_exercises_the_hard_cases(dump):
    # The test above is only meaningful if the tables contain the cases that break decoders.
    fmt = table_format(dump["version"][1])
    tables = [bytes.fromhex(co["table"]) for co in dump["codes"]]
    if fmt == LineTableFormat.LOCATIONS:
        codes = {(t[i] >> 3) & 15 for t in tables for i in range(len(t)) if t[i] & 0x80}
        assert {13, 14, 15} & codes and 14 in codes, "no LONG entries in the fixture"
    else:
        deltas = [t[i + 1] for t in tables for i in range(0, len(t) - 1, 2)]
        assert any(d >= 128 for d in deltas), "no negative line delta in the fixture"
        assert any(t[i] == 255 for t in tables for i in range(0, len(t) - 1, 2)) or \
            any(d == 127 for d in deltas), "no multi-entry delta in the fixture"


def test_decoder_matches_co_lines(dump):
    if dump["version"][:2] < [3, 10]:
        pytest.skip("co_lines() exists from 3.10")
    fmt = table_format(dump["version"][1])
    for co in dump["codes"]:
        table = bytes.fromhex(co["table"])
        for start, end, line in co["co_lines"]:
            for addrq in range(start, end, 2):
                got = linetable.line_for(fmt, table, co["firstlineno"], addrq)
                assert got == (-1 if line is None else line), (co["name"], addrq)


def test_live_frames_f_lasti_decodes_to_f_lineno(dump):
    # GIVEN (f_lasti, f_lineno) captured from executing frames, and the same code's table
    fmt = table_format(dump["version"][1])
    by_key = {(c["name"], c["firstlineno"]): c for c in dump["codes"]}
    assert len(dump["frames"]) > 20
    for name, first, lasti, lineno in dump["frames"]:
        co = by_key[(name, first)]
        # WHEN decoded (Python-level f_lasti is already bytes on every version)
        got = linetable.line_for(fmt, bytes.fromhex(co["table"]), co["firstlineno"], lasti)
        # THEN it is the line the interpreter reported
        assert got == lineno, (name, lasti)


@pytest.mark.parametrize("decoder", [linetable.line_from_lnotab, linetable.line_from_pep626,
                                     linetable.line_from_locations],
                         ids=["lnotab", "pep626", "locations"])
def test_hostile_tables_never_raise(decoder):
    # Target memory is hostile: truncated varints, lost sync, empty and huge tables.
    for table in (b"", b"\xff", b"\xf0", b"\xf0\x7f\x7f\x7f", b"\x01" * 7, b"\xc7" * 1000,
                  bytes(range(256)) * 3):
        for addrq in (-2, 0, 2, 10, 1 << 30):
            assert isinstance(decoder(table, 10, addrq), int)


def test_locations_truncated_varint_is_no_line():
    # LONG entry (code 14) covering one code unit whose line-delta varint is cut short.
    assert linetable.line_from_locations(b"\xf0\x40", 5, 0) == linetable.NO_LINE


@pytest.mark.parametrize("kind,raw,want", [
    (InstrKind.LASTI_BYTES, 40, 40), (InstrKind.LASTI_BYTES, -1, -1),
    (InstrKind.LASTI_CODE_UNITS, 20, 40), (InstrKind.LASTI_CODE_UNITS, -1, -1),
    (InstrKind.INSTR_POINTER, 0x1000 + 200 + 40, 40), (InstrKind.INSTR_POINTER, 0x1000 + 198, -2),
], ids=["bytes", "bytes-start", "units", "units-start", "ptr", "ptr-just-pushed"])
def test_addrq_from_frame_units(kind, raw, want):
    assert linetable.addrq_from_frame(kind, raw, code_addr=0x1000, co_code_adaptive=200) == want

