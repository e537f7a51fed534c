"""ELF discovery, version detection and live-process lookup against the real interpreters.

Uses the pyenv builds (shared libpython, PIE) and Debian's static non-PIE /usr/bin/python3.11.
The live tests spawn each interpreter, wait until it is blocked reading stdin, then find its
runtime, walk its thread and frames with our Offsets (using only data flags, as the BPF walker
will), and compare with what the target reports about itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import selectors
import struct
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from pyprof_ebpf.cpython import detect, elf, linetable, tables
from pyprof_ebpf.cpython.offsets import offsets_for
from pyprof_ebpf.errors import ProcessGone, UnsupportedBuild, UnsupportedPython

PYENV = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"
TARGETS = {  # id -> (interpreter, file expected to hold _PyRuntime)
    "3.8": (PYENV / "3.8.18/bin/python3.8", PYENV / "3.8.18/lib/libpython3.8.so.1.0"),
    "3.9": (PYENV / "3.9.18/bin/python3.9", PYENV / "3.9.18/lib/libpython3.9.so.1.0"),
    "3.10": (PYENV / "3.10.13/bin/python3.10", PYENV / "3.10.13/lib/libpython3.10.so.1.0"),
    "3.11": (PYENV / "3.11.7/bin/python3.11", PYENV / "3.11.7/lib/libpython3.11.so.1.0"),
    "3.12": (PYENV / "3.12.1/bin/python3.12", PYENV / "3.12.1/lib/libpython3.12.so.1.0"),
    "3.13": (PYENV / "3.13.0/bin/python3.13", PYENV / "3.13.0/lib/libpython3.13.so.1.0"),
    "debian-3.11": (Path("/usr/bin/python3.11"), Path("/usr/bin/python3.11")),
}
IDS = sorted(TARGETS)

CHILD = '''
import ctypes, os, sys, threading
def wait_here():
    print(json.dumps(info), flush=True)
    sys.stdin.readline()  # WAIT-LINE
import json
info = {
    "pid": os.getpid(), "version": list(sys.version_info[:3]),
    "runtime": ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, "_PyRuntime")),
    "ident": threading.get_ident(),
    "native": threading.get_native_id() if hasattr(threading, "get_native_id") else None,
}
wait_here()  # CALL-LINE
'''
WAIT_LINE = next(i for i, l in enumerate(CHILD.splitlines(), 1) if "WAIT-LINE" in l)
CALL_LINE = next(i for i, l in enumerate(CHILD.splitlines(), 1) if "CALL-LINE" in l)


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}


def need(target_id):
    exe, lib = TARGETS[target_id]
    if not exe.exists() or not lib.exists():
        pytest.skip(f"{exe} is not installed")
    return exe, lib


def blocked_in_read(pid):
    # /proc/PID/syscall: "0 0x0 ..." = blocked in read(0, ...) (x86-64 __NR_read == 0).
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return len(fields) > 1 and fields[0] == "0" and int(fields[1], 16) == 0


@contextmanager
def spawn_target(exe):
    """Start ``exe`` running CHILD; yield its self-report once it blocks on stdin; always reap."""
    proc = subprocess.Popen([str(exe), "-c", CHILD], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=clean_env())
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout=30), "target never reported readiness"
        info = json.loads(proc.stdout.readline())
        deadline = time.monotonic() + 30
        while not blocked_in_read(proc.pid):  # the readiness line comes just before the read
            assert time.monotonic() < deadline and proc.poll() is None, "target not blocked"
            time.sleep(0.01)
        yield info
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdin.close()
        proc.stdout.close()


def interpreter_version(exe):
    out = subprocess.run([str(exe), "-c", "import sys; print(list(sys.version_info[:3]))"],
                         capture_output=True, text=True, timeout=30, env=clean_env(), check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("target_id", IDS)
def test_runtime_symbol_and_version_from_file(target_id):
    # GIVEN the file that holds the runtime
    exe, lib = need(target_id)
    # WHEN parsed and run through the version ladder
    facts = elf.parse_elf(str(lib))
    build = detect.detect_build(facts)
    # THEN _PyRuntime is found and the version is the one the interpreter reports
    want = interpreter_version(exe)
    assert facts.runtime_vaddr and facts.runtime_source == ".dynsym"
    assert facts.pycode_type_vaddr
    assert [build.major, build.minor] == want[:2]
    if want[:2] >= [3, 11]:
        assert build.micro == want[2]
        assert build.source == ("_Py_DebugOffsets" if want[:2] >= [3, 13] else "Py_Version")
    else:
        assert build.source == "filename" and build.micro is None
    assert not build.free_threaded and not build.debug
    assert facts.pie == (target_id != "debian-3.11")
    detect.check_supported(build)


def test_symbol_ladder_dynsym_then_symtab_then_section(tmp_path):
    # GIVEN copies of libpython3.13 whose string tables no longer name _PyRuntime: first only
    # .dynstr (the .dynsym rung fails), then every copy (as if stripped: only the section)
    _, lib = need("3.13")
    facts = elf.parse_elf(str(lib))
    data = bytearray(lib.read_bytes())
    hits = []
    start = 0
    while (idx := data.find(b"\0_PyRuntime\0", start)) > 0:
        hits.append(idx)
        start = idx + 1
    assert len(hits) >= 2, "expected _PyRuntime in .dynstr and .strtab (and maybe .debug_str)"
    sources = []
    for n, idx in enumerate(hits):
        data[idx + 1:idx + 11] = b"_XyRuntime"
        copy = tmp_path / f"libpython3.13.so.{n}"
        copy.write_bytes(bytes(data))
        # WHEN parsed
        stripped = elf.parse_elf(str(copy))
        # THEN the next rung finds the same address
        assert stripped.runtime_vaddr == facts.runtime_vaddr
        sources.append(stripped.runtime_source)
    assert sources[0] == ".symtab" and sources[-1] == ".PyRuntime"


def test_parse_cache_is_by_file_identity():
    _, lib = need("3.12")
    first = elf.parse_elf(str(lib))
    # Same inode reached by another path (as /proc/PID/root/... would be) costs no second parse.
    assert elf.parse_elf(f"/proc/self/root{lib}") is first


def test_shim_executable_has_no_runtime():
    exe, _ = need("3.12")
    facts = elf.parse_elf(str(exe))
    assert facts.runtime_vaddr is None
    assert detect.detect_build(facts).source == "filename"


def _facts(path):
    return elf.ElfFacts(path=path, pie=True, first_load=(0, 0), runtime_vaddr=None,
                        runtime_source=None, runtime_file_bytes=None, py_version_vaddr=None,
                        py_version=None, debug_cookie_vaddr=None, pycode_type_vaddr=None,
                        none_vaddr=None, debug_symbols=False)


@pytest.mark.parametrize("name,version,ft,debug", [
    ("libpython3.13t.so.1.0", (3, 13), True, False),
    ("libpython3.12d.so", (3, 12), False, True),
    ("python3.14d", (3, 14), False, True),
    ("libpython3.13d.so.1.0", (3, 13), False, True),
    ("python3.10", (3, 10), False, False),
    ("libpython3.7m.so.1.0", (3, 7), False, False),
], ids=["ft-lib", "debug-lib-3.12", "debug-exe-3.14", "debug-lib-3.13", "exe", "old-m"])
def test_name_rung_and_flags(name, version, ft, debug):
    build = detect.detect_build(_facts(f"/opt/x/{name}"))
    assert (build.version, build.free_threaded, build.debug) == (version, ft, debug)
    # debug builds are refused only where no _Py_DebugOffsets describes them (before 3.13)
    refused = ft or (debug and version < (3, 13)) or version < (3, 8)
    with pytest.raises(UnsupportedPython) if refused else _nothing():
        detect.check_supported(build)


@contextmanager
def _nothing():
    yield


FETCHED_314D = Path(os.environ.get("PYPROF_PYTHONS", "/var/cache/pyprof-ebpf/pythons")) / "3.14/usr/bin/python3.14d"


def test_real_debug_build_314d_is_detected_and_accepted():
    # GIVEN Debian sid's python3.14d (tests/fetch_pythons.sh): non-PIE, libpython linked in
    if not FETCHED_314D.exists():
        pytest.skip(f"{FETCHED_314D} is missing (run tests/fetch_pythons.sh)")
    facts = elf.parse_elf(str(FETCHED_314D))
    build = detect.detect_build(facts)
    # THEN it is a 3.14 debug build whose layout comes from its own _Py_DebugOffsets
    assert (build.version, build.debug, build.free_threaded) == ((3, 14), True, False)
    assert build.source == "_Py_DebugOffsets" and not facts.pie and facts.runtime_vaddr
    detect.check_supported(build)
    assert offsets_for(build.version, facts.runtime_file_bytes).source == "_Py_DebugOffsets"


BUILT_313T = Path(os.environ.get("PYPROF_PYTHONS", "/var/cache/pyprof-ebpf/pythons")) / "3.13t/bin/python3.13t"


def test_real_free_threaded_313t_is_detected_and_refused():
    # GIVEN a real free-threaded build (tests/build_free_threaded.sh, run by scripts/test.sh)
    if not BUILT_313T.exists():
        pytest.skip(f"{BUILT_313T} is missing (build it with tests/build_free_threaded.sh)")
    facts = elf.parse_elf(str(BUILT_313T))
    build = detect.detect_build(facts, facts.runtime_file_bytes)
    # THEN its own _Py_DebugOffsets says free-threaded, and it is refused for good, by name
    assert (build.version, build.free_threaded, build.source) == ((3, 13), True, "_Py_DebugOffsets")
    with pytest.raises(UnsupportedBuild, match="free-threaded Python 3.13.*t is not supported"):
        detect.check_supported(build)
    with pytest.raises(UnsupportedBuild, match="free-threaded"):
        offsets_for(build.version, facts.runtime_file_bytes)


def test_debug_offsets_free_threaded_flag_is_detected():
    _, lib = need("3.13")
    facts = elf.parse_elf(str(lib))
    raw = bytearray(facts.runtime_file_bytes)
    raw[16:24] = struct.pack("<Q", 1)
    build = detect.detect_build(facts, bytes(raw))
    assert build.free_threaded
    with pytest.raises(UnsupportedPython, match="free-threaded"):
        detect.check_supported(build)


def test_unknown_file_is_unsupported():
    facts = elf.parse_elf("/bin/true" if os.path.exists("/bin/true") else "/usr/bin/true")
    assert facts.runtime_vaddr is None
    with pytest.raises(UnsupportedPython):
        detect.detect_build(facts)


def test_garbage_and_truncated_files_are_unsupported(tmp_path):
    _, lib = need("3.12")
    for n, blob in enumerate((b"not an elf at all" * 10, lib.read_bytes()[:3000])):
        path = tmp_path / f"libpython3.12.so.{n}"
        path.write_bytes(blob)
        with pytest.raises(UnsupportedPython):
            elf.parse_elf(str(path))


@pytest.mark.parametrize("pie,first_load,maps,want", [
    (True, (0, 0), [(0x7F0000001000, 0x1000), (0x7F0000000000, 0)], 0x7F0000000000),
    (True, (0x2000, 0x402000), [(0x555500002000, 0x2000)], 0x555500002000 - 0x402000),
    (False, (0, 0x400000), [(0x400000, 0)], 0),
], ids=["pie", "offset-first-load", "et-exec"])
def test_load_bias(pie, first_load, maps, want):
    facts = dataclasses.replace(_facts("x"), pie=pie, first_load=first_load)
    mappings = [elf.Mapping(lo, lo + 0x1000, "r--p", off, 1, "/x") for lo, off in maps]
    assert elf.load_bias(facts, mappings) == want


def test_load_bias_requires_the_first_segment_mapped():
    facts = dataclasses.replace(_facts("x"), pie=True, first_load=(0, 0))
    with pytest.raises(UnsupportedPython):
        elf.load_bias(facts, [elf.Mapping(0x1000, 0x2000, "r-xp", 0x5000, 1, "/x")])


# ---- live processes -------------------------------------------------------------------------

def _reader(pid):
    def u64(addr):
        return struct.unpack("<Q", elf.read_memory(pid, addr, 8))[0]
    return u64


def read_str(pid, off, p):
    u64 = _reader(pid)
    state = struct.unpack("<I", elf.read_memory(pid, p + off.PyASCIIObject_state, 4))[0]
    length = u64(p + off.PyASCIIObject_length)
    assert 0 < length < 4096
    kind = (state >> off.unicode_kind_shift) & 7
    assert (state >> off.unicode_compact_bit) & 1
    if (state >> off.unicode_ascii_bit) & 1:
        return elf.read_memory(pid, p + off.PyASCIIObject_size, length).decode("ascii")
    raw = elf.read_memory(pid, p + off.PyCompactUnicodeObject_size, length * kind)
    return raw.decode({1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}[kind])


def walk(pid, interp, off, ident):
    """Reference user-space copy of the BPF walk: no version checks, only Offsets data."""
    u64 = _reader(pid)
    pycode_type = interp.load_bias + interp.facts.pycode_type_vaddr
    istate = u64(interp.runtime_address + off.PyRuntimeState_interpreters_head)
    ts = u64(istate + off.PyInterpreterState_threads_head)
    for _ in range(64):
        if not ts or u64(ts + off.PyThreadState_thread_id) == ident:
            break
        ts = u64(ts + off.PyThreadState_next)
    assert ts, "thread state of the main thread not found"
    frame = u64(ts + off.tstate_frame)
    if off.cframe_indirection:
        frame = u64(frame + off._PyCFrame_current_frame)
    frames = []
    for _ in range(128):
        if not frame:
            break
        previous = u64(frame + off.frame_previous)
        if off._PyInterpreterFrame_owner >= 0:
            owner = elf.read_memory(pid, frame + off._PyInterpreterFrame_owner, 1)[0]
            if owner >= off.owner_skip_min:
                frame = previous
                continue
        code = u64(frame + off.frame_code) & off.code_ptr_mask
        if u64(code + off.PyObject_ob_type) != pycode_type:
            frame = previous
            continue
        if off.instr_kind == linetable.InstrKind.INSTR_POINTER:
            raw = u64(frame + off.frame_instr)
        else:
            raw = struct.unpack("<i", elf.read_memory(pid, frame + off.frame_instr, 4))[0]
        addrq = linetable.addrq_from_frame(off.instr_kind, raw, code,
                                           off.PyCodeObject_co_code_adaptive)
        first = struct.unpack("<i", elf.read_memory(pid, code + off.PyCodeObject_co_firstlineno,
                                                    4))[0]
        table_obj = u64(code + off.code_linetable)
        size = u64(table_obj + off.PyBytesObject_ob_size)
        assert size < 1 << 16
        table = elf.read_memory(pid, table_obj + off.PyBytesObject_ob_sval, size) if size else b""
        name_off = off.PyCodeObject_co_qualname if off.PyCodeObject_co_qualname >= 0 \
            else off.PyCodeObject_co_name
        frames.append((read_str(pid, off, u64(code + name_off)),
                       read_str(pid, off, u64(code + off.PyCodeObject_co_filename)),
                       linetable.line_for(off.linetable_format, table, first, addrq)))
        frame = previous
    return ts, frames


@pytest.mark.parametrize("target_id", IDS)
def test_live_find_interpreter_and_walk(target_id):
    exe, lib = need(target_id)
    with spawn_target(exe) as info:
        pid = info["pid"]
        # WHEN we locate the runtime from outside
        interp = elf.find_interpreter(pid)
        # THEN it is in the expected file at the address the target computes itself
        assert os.path.samefile(interp.path, lib)
        assert interp.runtime_address == info["runtime"]
        assert interp.shared_library == (target_id != "debian-3.11")
        if target_id == "debian-3.11":
            assert interp.load_bias == 0
        # AND the full attach path identifies the exact version
        target = detect.inspect_process(pid)
        assert [target.build.major, target.build.minor] == info["version"][:2]
        off = target.offsets
        # AND walking memory with those offsets finds this thread and its Python stack
        ts, frames = walk(pid, interp, off, info["ident"])
        if off.PyThreadState_native_thread_id >= 0:
            native = _reader(pid)(ts + off.PyThreadState_native_thread_id)
            assert native == info["native"] == pid
        assert frames[:2] == [("wait_here", "<string>", WAIT_LINE),
                              ("<module>", "<string>", CALL_LINE)], frames


def test_live_debug_offsets_313():
    exe, lib = need("3.13")
    with spawn_target(exe) as info:
        interp = elf.find_interpreter(info["pid"])
        live = elf.read_memory(info["pid"], interp.runtime_address,
                               tables.DEBUG_OFFSETS_SIZE[13])
        assert live[:8] == b"xdebugpy"
        from pyprof_ebpf.cpython.offsets import parse_debug_offsets
        d = parse_debug_offsets(live)
        assert d["version"] >> 16 == 0x030D and d["free_threaded"] == 0
        # the statically initialised file copy and the live block agree
        assert offsets_for((3, 13), live) == offsets_for((3, 13), interp.facts.runtime_file_bytes)
        assert d["pyobject.size"] == 16 and d["pyobject.ob_type"] == 8
        assert 0 < d["thread_state.size"] < 4096 < d["interpreter_state.size"] < 1 << 20


def test_vanished_process_raises_process_gone():
    exe, _ = need("3.12")
    with spawn_target(exe) as info:
        pid = info["pid"]
        interp = elf.find_interpreter(pid)
    # spawn_target killed and reaped it
    with pytest.raises(ProcessGone):
        elf.find_interpreter(pid)
    with pytest.raises(ProcessGone):
        elf.read_memory(pid, interp.runtime_address, 8)


def test_read_memory_bounds():
    with pytest.raises(ValueError):
        elf.read_memory(os.getpid(), 0x1000, elf.MAX_READ + 1)
    with pytest.raises(ValueError):
        elf.read_memory(os.getpid(), -8, 8)
    with pytest.raises(UnsupportedPython):
        elf.read_memory(os.getpid(), 0x10, 8)  # unmapped page in a live process
