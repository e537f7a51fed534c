"""Which CPython a file or process runs: the version ladder, plus build flavour.

Responsibility: decide major.minor[.micro], and whether the build is free-threaded or a debug
build, from the cheapest trustworthy evidence, and say where the answer came from. It does not
parse ELF files itself (``elf.ElfFacts`` holds what was read) and never runs the target binary.

Ladder (Austin's order, notes section 5):
1. ``_Py_DebugOffsets`` at ``_PyRuntime`` (3.13+): cookie ``"xdebugpy"``, ``version`` =
   ``PY_VERSION_HEX``, ``free_threaded`` flag (Include/internal/pycore_runtime.h at v3.13.0). It is
   statically initialised, so the file bytes carry it; live memory bytes are preferred if given.
2. ``Py_Version`` (3.11+, Python/getversion.c): ``const uint32_t`` = ``PY_VERSION_HEX`` in .rodata.
3. The file name: ``libpython3.X[t][d].so*`` or ``python3.X[t][d]`` gives major.minor only, which
   is enough for 3.8-3.10 because their layouts are per minor (notes section 1.0).
4. Otherwise: unsupported.
"""

from __future__ import annotations

import dataclasses
import os
import struct

from ..errors import UnsupportedBuild, UnsupportedPython
from . import tables
from .elf import (LIBPYTHON_RE, PYTHON_EXE_RE, ElfFacts, Interpreter, find_interpreter,
                  read_memory)
from .offsets import Offsets, offsets_for

MIN_SUPPORTED = (3, 8)
MAX_SUPPORTED = (3, 14)


@dataclasses.dataclass(frozen=True)
class PythonBuild:
    major: int
    minor: int
    micro: int | None  # None when only the file name was available
    version_hex: int | None
    source: str  # "_Py_DebugOffsets", "Py_Version" or "filename"
    free_threaded: bool
    debug: bool

    @property
    def version(self) -> tuple[int, int]:
        return (self.major, self.minor)

    def label(self) -> str:
        base = f"{self.major}.{self.minor}" + (f".{self.micro}" if self.micro is not None else "")
        return base + ("t" if self.free_threaded else "") + (" (debug build)" if self.debug else "")


def _split_hex(version_hex: int) -> tuple[int, int, int]:
    return (version_hex >> 24) & 0xFF, (version_hex >> 16) & 0xFF, (version_hex >> 8) & 0xFF


def _name_flags(path: str) -> tuple[tuple[int, int] | None, bool, bool]:
    base = os.path.basename(path.replace(" (deleted)", ""))
    match = LIBPYTHON_RE.search(base) or PYTHON_EXE_RE.search(base)
    if not match:
        return None, False, False
    return (int(match.group(1)), int(match.group(2))), match.group(3) == "t", match.group(4) == "d"


def detect_build(facts: ElfFacts, debug_offsets: bytes | None = None) -> PythonBuild:
    """Run the ladder over one ELF's facts (and, optionally, live ``_PyRuntime`` bytes)."""
    name_version, name_ft, name_debug = _name_flags(facts.path)
    debug = name_debug or facts.debug_symbols
    for raw in (debug_offsets, facts.runtime_file_bytes):  # live bytes first
        if raw is not None and len(raw) >= 24 and raw[:8] == b"xdebugpy":
            version_hex, free_threaded = struct.unpack_from("<QQ", raw, 8)
            major, minor, micro = _split_hex(version_hex)
            if major != 3 or minor < tables.FIRST_DEBUG_OFFSETS_MINOR or version_hex >> 32:
                raise UnsupportedPython(f"{facts.path}: implausible _Py_DebugOffsets version "
                                        f"{version_hex:#x}")
            return PythonBuild(major, minor, micro, version_hex, "_Py_DebugOffsets",
                               bool(free_threaded) or name_ft, debug)
    if facts.py_version is not None:
        major, minor, micro = _split_hex(facts.py_version)
        if major == 3 and minor >= 11:
            return PythonBuild(major, minor, micro, facts.py_version, "Py_Version",
                               name_ft, debug)
    if name_version is not None:
        return PythonBuild(name_version[0], name_version[1], None, None, "filename",
                           name_ft, debug)
    raise UnsupportedPython(f"{facts.path}: cannot tell which Python version this is",
                            "it has no _Py_DebugOffsets, no Py_Version and no python3.X name")


def check_supported(build: PythonBuild) -> PythonBuild:
    """Refuse builds the offsets cannot describe, with a message naming the reason."""
    if not MIN_SUPPORTED <= build.version <= MAX_SUPPORTED:
        raise UnsupportedBuild(f"Python {build.label()} is not supported",
                                "pyprof-ebpf supports CPython 3.8 to 3.14")
    if build.free_threaded:
        # A 32-byte object header and per-thread bytecode (notes section 6.6).
        raise UnsupportedBuild(f"free-threaded Python {build.label()} is not supported",
                                "profile a default (GIL) build of CPython")
    if build.debug and build.version[:2] < (3, tables.FIRST_DEBUG_OFFSETS_MINOR):
        # --with-trace-refs adds _ob_next/_ob_prev to every object (notes section 6.8,
        # py-spy#173) and our 3.8-3.12 tables describe release builds only. From 3.13 the
        # target's own _Py_DebugOffsets describes its layout, debug or not, so it is profiled.
        raise UnsupportedBuild(f"Python {build.label()} is not supported",
                                "debug builds before 3.13 change object layouts; "
                                "profile a release build")
    return build


@dataclasses.dataclass(frozen=True)
class TargetPython:
    """Everything user space needs to configure the BPF walker for one process."""

    interpreter: Interpreter
    build: PythonBuild
    offsets: Offsets


def inspect_process(pid: int) -> TargetPython:
    """Find, identify and describe the CPython runtime of ``pid``; raise if it is unsupported.

    For 3.13+ the ``_Py_DebugOffsets`` block is read from the live process, not the file: it is
    what the running interpreter actually uses (notes section 1.7).
    """
    interp = find_interpreter(pid)
    live = None
    if interp.facts.debug_cookie_vaddr is not None:
        live = read_memory(pid, interp.runtime_address, tables.DEBUG_OFFSETS_MAX_SIZE)
    build = check_supported(detect_build(interp.facts, live))
    return TargetPython(interp, build, offsets_for(build.version, live))
