"""Locate a CPython runtime in ELF files and in live processes.

Responsibility: with pyelftools, pull out of one ELF file the facts the profiler needs
(``_PyRuntime``, ``Py_Version``, the ``_Py_DebugOffsets`` cookie, ``PyCode_Type``, PIE or not), and
in a live process find which mapped file holds ``_PyRuntime``, its load bias and the runtime's
address, reading ``/proc/PID/{exe,maps,mem}``. It does not decide versions (``detect.py``) or
offsets (``offsets.py``). Parsed facts are cached per (st_dev, st_ino, mtime, size), so a fleet of
processes running one binary costs one parse. Everything read from a target is bounded.

Where ``_PyRuntime`` lives (notes section 5): with ``--enable-shared`` (pyenv) it is in
``libpython3.X.so.1.0`` and the ``python3.X`` executable is a shim that only ``DT_NEEDED``s it;
in a static build (Debian ``/usr/bin/python3.11``, non-PIE ``ET_EXEC``) it is in the executable.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import struct
import threading

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from ..errors import NotPrivileged, ProcessGone, PyprofError, UnsupportedPython
from . import tables

MAX_READ = 1 << 20  # largest single /proc/PID/mem read we allow
MAX_MAPS_BYTES = 64 << 20  # /proc/PID/maps beyond this is not a process we can handle
_CACHE_MAX = 64
PAGE = 4096  # x86-64; mappings start at page-aligned file offsets

# libpython3.12.so.1.0, libpython3.13t.so, libpython3.8d.so; python3.11, python3.13t
LIBPYTHON_RE = re.compile(r"(?:^|/)libpython(\d)\.(\d+)(t?)(d?)m?\.so(?:\.[\d.]+)?$")
PYTHON_EXE_RE = re.compile(r"(?:^|/)python(\d)\.(\d+)(t?)(d?)m?$")
# Exported only by Py_REF_DEBUG (so Py_DEBUG) builds: Include/object.h (3.8-3.11),
# Include/cpython/object.h (3.12+). Unverified on a debug binary; the file name is the other signal.
DEBUG_BUILD_SYMBOLS = ("_Py_NegativeRefcount", "_Py_RefTotal", "_Py_GetGlobalRefTotal")


@dataclasses.dataclass(frozen=True)
class ElfFacts:
    """What one ELF file tells us, before any process is involved. Addresses are file vaddrs."""

    path: str
    pie: bool  # ET_DYN (shared library or PIE): needs a load bias; ET_EXEC: bias 0
    first_load: tuple[int, int]  # (p_offset, p_vaddr) of the first PT_LOAD
    runtime_vaddr: int | None
    runtime_source: str | None  # ".dynsym", ".symtab" or ".PyRuntime" (section)
    runtime_file_bytes: bytes | None  # start of _PyRuntime if it is initialised data, else None
    py_version_vaddr: int | None
    py_version: int | None  # PY_VERSION_HEX from the Py_Version symbol (3.11+)
    debug_cookie_vaddr: int | None  # == runtime_vaddr when the file holds "xdebugpy" there
    pycode_type_vaddr: int | None
    none_vaddr: int | None  # _Py_NoneStruct, 3.13+ entry frames point f_executable at it
    debug_symbols: bool  # exports a Py_REF_DEBUG-only symbol


@dataclasses.dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    perms: str
    offset: int
    inode: int
    path: str


@dataclasses.dataclass(frozen=True)
class Interpreter:
    """Where the CPython runtime of one live process is."""

    pid: int
    path: str  # as the target sees it (from /proc/PID/maps)
    facts: ElfFacts
    load_bias: int
    runtime_address: int
    shared_library: bool


_cache: dict[tuple[int, int, int, int], ElfFacts] = {}
_cache_lock = threading.Lock()


_ELF64_SYM = struct.Struct("<IBBHQQ")  # st_name, st_info, st_other, st_shndx, st_value, st_size


def _symbols(elf: ELFFile, names: tuple[str, ...]) -> dict[str, tuple[int, str]]:
    """Defined symbols among ``names``: .dynsym first, then .symtab.

    A raw scan of the section bytes, not pyelftools' per-symbol objects: pyenv's libpython has a
    ~100k-entry .symtab that pyelftools needs tens of seconds to index (measured: 35 s), while
    a process that exec'd a moment ago must be described within milliseconds.
    """
    found: dict[str, tuple[int, str]] = {}
    for section_name in (".dynsym", ".symtab"):
        wanted = [n for n in names if n not in found]
        section = elf.get_section_by_name(section_name)
        if not wanted or not isinstance(section, SymbolTableSection):
            continue
        strtab = elf.get_section(section["sh_link"]).data()
        offsets: dict[int, str] = {}
        for name in wanted:       # every string-table offset whose string is exactly `name`
            needle, pos = name.encode() + b"\0", 0
            while (pos := strtab.find(needle, pos)) >= 0:
                if pos == 0 or strtab[pos - 1] == 0:
                    offsets[pos] = name
                pos += 1
        if not offsets:
            continue
        for st_name, _info, _other, shndx, value, _size in _ELF64_SYM.iter_unpack(
                section.data()[: section.data_size - section.data_size % _ELF64_SYM.size]):
            name = offsets.get(st_name)
            if name and value and shndx != 0 and name not in found:
                found[name] = (value, section_name)
    return found


def _file_bytes(fh, loads: list, vaddr: int, size: int) -> bytes | None:
    """Bytes at ``vaddr`` stored in the file; None when they are in .bss (past p_filesz)."""
    for seg in loads:
        lo, filesz = seg["p_vaddr"], seg["p_filesz"]
        if lo <= vaddr < lo + filesz:
            fh.seek(seg["p_offset"] + vaddr - lo)
            return fh.read(min(size, lo + filesz - vaddr))
    return None


def _parse(fh, path: str) -> ElfFacts:
    elf = ELFFile(fh)
    if elf.elfclass != 64 or elf["e_machine"] != "EM_X86_64":
        raise UnsupportedPython(f"{path}: not an x86-64 ELF", "pyprof-ebpf supports x86-64 only")
    loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
    if not loads:
        raise UnsupportedPython(f"{path}: ELF file without PT_LOAD segments")
    syms = _symbols(elf, ("_PyRuntime", "Py_Version", "PyCode_Type", "_Py_NoneStruct") + DEBUG_BUILD_SYMBOLS)
    runtime = syms.get("_PyRuntime")
    if runtime is None:
        # Stripped builds: _PyRuntime is placed in its own section (3.10+, notes section 5;
        # GENERATE_DEBUG_SECTION in 3.14, py-spy PR #718).
        section = elf.get_section_by_name(".PyRuntime")
        if section is not None and section["sh_addr"]:
            runtime = (section["sh_addr"], ".PyRuntime")
    runtime_bytes = cookie_vaddr = None
    if runtime is not None:
        runtime_bytes = _file_bytes(fh, loads, runtime[0], tables.DEBUG_OFFSETS_MAX_SIZE)
        if runtime_bytes is not None and runtime_bytes[:8] == b"xdebugpy":
            cookie_vaddr = runtime[0]
    py_version = None
    pv = syms.get("Py_Version")  # const uint32_t in .rodata (Python/getversion.c, 3.11+)
    if pv is not None:
        raw = _file_bytes(fh, loads, pv[0], 4)
        if raw is not None and len(raw) == 4:
            py_version = struct.unpack("<I", raw)[0]
    code_type, none = syms.get("PyCode_Type"), syms.get("_Py_NoneStruct")
    return ElfFacts(
        path=path, pie=elf["e_type"] == "ET_DYN",
        first_load=(loads[0]["p_offset"], loads[0]["p_vaddr"]),
        runtime_vaddr=runtime[0] if runtime else None,
        runtime_source=runtime[1] if runtime else None,
        runtime_file_bytes=runtime_bytes,
        py_version_vaddr=pv[0] if pv else None, py_version=py_version,
        debug_cookie_vaddr=cookie_vaddr,
        pycode_type_vaddr=code_type[0] if code_type else None,
        none_vaddr=none[0] if none else None,
        debug_symbols=any(s in syms for s in DEBUG_BUILD_SYMBOLS),
    )


def parse_elf(path: str, display_path: str | None = None) -> ElfFacts:
    """Parse ``path`` (cached by file identity). ``display_path`` names it in ``facts.path``."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())  # identity of what we actually opened (no TOCTOU)
            key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            with _cache_lock:
                hit = _cache.get(key)
            if hit is not None:
                return hit
            try:
                facts = _parse(fh, display_path or path)
            except (ELFError, struct.error, ValueError, KeyError, IndexError) as err:
                # pyelftools raises a variety of errors on corrupt input; all mean "not usable".
                raise UnsupportedPython(f"{path}: unreadable ELF file ({err})") from err
    except FileNotFoundError as err:
        raise UnsupportedPython(f"{path}: no such file") from err
    except PermissionError as err:
        raise NotPrivileged(f"cannot open {path}", "run pyprof-ebpf as root") from err
    with _cache_lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.pop(next(iter(_cache)))  # oldest first: dicts keep insertion order
        _cache[key] = facts
    return facts


def _proc_gone(pid: int, err: OSError) -> PyprofError:
    if isinstance(err, PermissionError):
        return NotPrivileged(f"cannot inspect process {pid}", "run pyprof-ebpf as root")
    return ProcessGone(f"process {pid} is gone")


def read_maps(pid: int) -> list[Mapping]:
    """File-backed mappings of ``pid`` (anonymous and special ones are dropped)."""
    try:
        with open(f"/proc/{pid}/maps", "rb") as fh:
            data = fh.read(MAX_MAPS_BYTES)
    except OSError as err:
        raise _proc_gone(pid, err) from err
    out = []
    for line in data.decode("utf-8", "surrogateescape").splitlines():
        fields = line.split(None, 5)
        if len(fields) < 6 or not fields[5].startswith("/"):
            continue
        lo, hi = fields[0].split("-")
        out.append(Mapping(int(lo, 16), int(hi, 16), fields[1], int(fields[2], 16),
                           int(fields[4]), fields[5]))
    return out


def load_bias(facts: ElfFacts, mappings: list[Mapping]) -> int:
    """Load bias of the ELF described by ``facts`` given its mappings in one process.

    bias = start of the mapping of the first PT_LOAD's page - that PT_LOAD's page-aligned vaddr
    (notes section 5; py-spy and Austin agree). ET_EXEC files are not relocated: bias 0.
    """
    if not facts.pie:
        return 0
    p_offset, p_vaddr = facts.first_load
    starts = [m.start for m in mappings if m.offset == p_offset & ~(PAGE - 1)]
    if not starts:
        raise UnsupportedPython(f"{facts.path}: first PT_LOAD is not mapped")
    return min(starts) - (p_vaddr & ~(PAGE - 1))


def _open_target_file(pid: int, path: str, mappings: list[Mapping]) -> ElfFacts:
    # Open the file the target maps, not whatever our mount namespace calls `path`: via
    # /proc/PID/root (containers), else /proc/PID/map_files (deleted files, as bcc does).
    # intel/gprofiler#996: "(deleted)" libraries must not crash the profiler.
    clean = path[: -len(" (deleted)")] if path.endswith(" (deleted)") else path
    inode = mappings[0].inode
    candidate = f"/proc/{pid}/root{clean}"
    try:
        if os.stat(candidate).st_ino == inode:
            return parse_elf(candidate, display_path=clean)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise _proc_gone(pid, err) from err
    m = mappings[0]
    return parse_elf(f"/proc/{pid}/map_files/{m.start:x}-{m.end:x}", display_path=clean)


def find_interpreter(pid: int) -> Interpreter:
    """Which file of ``pid`` holds ``_PyRuntime``, where it is loaded, and the runtime address."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError as err:
        if err.errno == errno.ENOENT and os.path.exists(f"/proc/{pid}"):
            raise UnsupportedPython(f"process {pid} has no executable (kernel thread?)") from err
        raise _proc_gone(pid, err) from err
    by_path: dict[str, list[Mapping]] = {}
    for m in read_maps(pid):
        by_path.setdefault(m.path, []).append(m)
    # A mapped libpython wins: the executable is then only a shim (OTel skips it the same way).
    libs = [p for p in by_path if LIBPYTHON_RE.search(p.replace(" (deleted)", ""))]
    exe_key = next((p for p in by_path if p.replace(" (deleted)", "") ==
                    exe.replace(" (deleted)", "")), None)
    candidates = libs + ([exe_key] if exe_key else [])
    for path in candidates:
        facts = _open_target_file(pid, path, by_path[path])
        if facts.runtime_vaddr is None:
            continue
        bias = load_bias(facts, by_path[path])
        return Interpreter(pid=pid, path=facts.path, facts=facts, load_bias=bias,
                           runtime_address=bias + facts.runtime_vaddr,
                           shared_library=path in libs)
    raise UnsupportedPython(f"process {pid} ({exe}): no _PyRuntime in "
                            f"{', '.join(candidates) or 'any mapped file'}",
                            "it is not CPython, or CPython is embedded in an unrecognised file")


def _alive(pid: int) -> bool:
    # A zombie keeps /proc/PID but loses its mm (reads return nothing) and its exe link.
    try:
        os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    return True


def read_memory(pid: int, address: int, size: int) -> bytes:
    """Read exactly ``size`` bytes at ``address`` in ``pid`` (bounded by ``MAX_READ``)."""
    if not 0 < size <= MAX_READ or not 0 <= address < 1 << 47:
        raise ValueError(f"refusing to read {size} bytes at {address:#x}")
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    except OSError as err:
        raise _proc_gone(pid, err) from err
    try:
        data = os.pread(fd, size, address)
    except OSError as err:
        data = b""
        if err.errno not in (errno.EIO, errno.EFAULT):
            raise _proc_gone(pid, err) from err
    finally:
        os.close(fd)
    if len(data) != size:
        if not _alive(pid):
            raise ProcessGone(f"process {pid} is gone")
        raise UnsupportedPython(f"process {pid}: cannot read {size} bytes at {address:#x}")
    return data
