"""BTF reader: against a small crafted blob (exact expectations) and the live kernel file."""

import json
import os
import struct

import pytest

from pyprof_ebpf import loader
from pyprof_ebpf.btf import (KIND_ENUM, KIND_FUNC_PROTO, KIND_INT, KIND_PTR, KIND_STRUCT,
                             KIND_TYPEDEF, KIND_UNION, Btf)
from pyprof_ebpf.errors import BtfError


class BtfBuilder:
    """Writes a BTF blob the way the kernel lays it out (include/uapi/linux/btf.h)."""

    def __init__(self):
        self.strs = b"\0"
        self.types = b""
        self.count = 0

    def s(self, name):
        if not name:
            return 0
        off = len(self.strs)
        self.strs += name.encode() + b"\0"
        return off

    def add(self, kind, name, vlen, size_or_type, extra=b"", kflag=0):
        info = (kflag << 31) | (kind << 24) | vlen
        self.types += struct.pack("<III", self.s(name), info, size_or_type) + extra
        self.count += 1
        return self.count

    def int_(self, name, size):
        return self.add(KIND_INT, name, 0, size, struct.pack("<I", size * 8))

    def struct_(self, name, size, members, kind=KIND_STRUCT, kflag=0):
        extra = b"".join(struct.pack("<III", self.s(n), t, off) for n, t, off in members)
        return self.add(kind, name, len(members), size, extra, kflag)

    def blob(self):
        hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(self.types), len(self.types), len(self.strs))
        return hdr + self.types + self.strs


@pytest.fixture
def crafted():
    # GIVEN struct inner { u32 a; u64 b; }; struct outer { u32 x; union { u32 y; struct inner in; };
    #       typedef'd inner tin; u32 flag:3 (bitfield at bit 320) } and an enum
    b = BtfBuilder()
    u32 = b.int_("u32", 4)
    u64 = b.int_("u64", 8)
    inner = b.struct_("inner", 16, [("a", u32, 0), ("b", u64, 64)])
    anon = b.struct_("", 16, [("y", u32, 0), ("in", inner, 0)], kind=KIND_UNION)
    tdef = b.add(KIND_TYPEDEF, "inner_t", 0, inner)
    b.struct_("outer", 48, [("x", u32, 0), ("", anon, 64), ("tin", tdef, 192), ("flag", u32, (3 << 24) | 320)],
              kflag=1)
    b.add(KIND_ENUM, "color", 2, 4, struct.pack("<Ii", b.s("RED"), 0) + struct.pack("<Ii", b.s("BLUE"), 7))
    void_ptr = b.add(KIND_PTR, "", 0, 0)
    proto = b.add(KIND_FUNC_PROTO, "", 3, 0, struct.pack("<II", 0, void_ptr) * 3)
    fptr = b.add(KIND_PTR, "", 0, proto)
    b.add(KIND_TYPEDEF, "btf_trace_demo", 0, fptr)
    return Btf(b.blob())


def test_member_offsets_through_anonymous_unions_and_typedefs(crafted):
    assert crafted.offset("outer.x") == 0
    assert crafted.offset("outer.y") == 8             # inside the anonymous union
    assert crafted.offset("outer.in.b") == 16         # union at 8 + b at 8
    assert crafted.offset("outer.tin.b") == 32        # through a typedef: 24 + 8
    assert crafted.member("outer.tin").size == 16
    assert crafted.member("outer.flag").bitfield_size == 3
    assert crafted.struct_size("outer") == 48


def test_enum_and_func_proto(crafted):
    assert crafted.enum_value("BLUE", "color") == 7
    assert crafted.enum_value("BLUE") == 7
    assert crafted.func_proto_params("btf_trace_demo") == 3
    assert crafted.enumerators("color") == {"RED": 0, "BLUE": 7}
    with pytest.raises(BtfError):
        crafted.enumerators("flavour")


@pytest.mark.parametrize("path", ["outer.nope", "nosuch.x", "outer.x.y"])
def test_missing_members_raise_with_the_path(crafted, path):
    with pytest.raises(BtfError) as err:
        crafted.member(path)
    assert path.split(".")[0] in str(err.value) or "nosuch" in str(err.value)
    assert not crafted.has_member(path)


def test_malformed_blobs_are_rejected():
    with pytest.raises(BtfError, match="magic"):
        Btf(b"\0" * 64)
    good = BtfBuilder()
    good.int_("u32", 4)
    blob = good.blob()
    with pytest.raises(BtfError):
        Btf(blob[:30])


@pytest.mark.skipif(not os.path.exists("/sys/kernel/btf/vmlinux"), reason="kernel has no BTF")
def test_live_kernel_btf_resolves_what_the_tracker_needs():
    btf = Btf.from_file()
    tgid, pid = btf.member("task_struct.tgid"), btf.member("task_struct.pid")
    assert (tgid.size, pid.size) == (4, 4) and tgid.offset == pid.offset + 4   # pid_t pid; pid_t tgid;
    assert btf.member("task_struct.start_boottime").size == 8
    assert btf.member("task_struct.comm").size == 16
    assert 0 < btf.offset("task_struct.thread.fsbase") < btf.struct_size("task_struct")
    assert btf.enum_value("memory_cgrp_id", "cgroup_subsys_id") >= 0
    # sched_process_exit has (task) or (task, group_dead), plus the leading void *.
    assert btf.func_proto_params("btf_trace_sched_process_exit") in (2, 3)


LIVE = pytest.mark.skipif(not os.access("/sys/kernel/btf/vmlinux", os.R_OK),
                          reason="kernel BTF is absent or unreadable")


@pytest.fixture
def facts_cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setattr(loader, "cache_root", lambda: str(folder))
    return folder


def _forbid_parsing(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("BTF was parsed although a trusted cache entry exists")
    monkeypatch.setattr(loader, "Btf", refuse)


@LIVE
def test_kernel_facts_are_cached_per_btf_blob(facts_cache, monkeypatch):
    # GIVEN an empty cache WHEN the facts are asked for twice
    first = loader.kernel_facts()
    files = list(facts_cache.glob("kfacts-*.json"))
    _forbid_parsing(monkeypatch)
    second = loader.kernel_facts()
    # THEN the second answer comes from the one cache file, equal to a fresh parse
    assert len(files) == 1 and oct(files[0].stat().st_mode & 0o777) == "0o644"
    assert second == first
    assert first["defines"] == loader.kernel_defines(Btf.from_file())
    assert first["cgroup_subsys"]["memory_cgrp_id"] == first["defines"]["MEMORY_CGRP_ID"]


@LIVE
@pytest.mark.parametrize("spoil", ["group-writable", "garbage", "missing-required", "symlink"])
def test_untrusted_cache_entries_are_recomputed_not_used(facts_cache, tmp_path, spoil):
    # GIVEN a cache entry someone else could have written, or a damaged one
    good = loader.kernel_facts()
    entry = next(facts_cache.glob("kfacts-*.json"))
    planted = tmp_path / "planted.json"
    lie = dict(good, defines=dict(good["defines"], OFF_TASK_TGID=4))
    planted.write_text(json.dumps(lie))
    if spoil == "group-writable":
        entry.write_text(json.dumps(lie))
        entry.chmod(0o664)
    elif spoil == "garbage":
        entry.write_text("{not json")
    elif spoil == "missing-required":
        entry.write_text(json.dumps(dict(good, defines={"OFF_TASK_TGID": 4})))
    else:
        entry.unlink()
        entry.symlink_to(planted)
    # WHEN the facts are asked for again
    again = loader.kernel_facts()
    # THEN the lie is not used, and the entry is rewritten in place (never through the link)
    assert again == good
    assert not entry.is_symlink() and json.loads(entry.read_text()) == good
    assert json.loads(planted.read_text()) == lie
