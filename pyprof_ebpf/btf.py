"""Reader of the kernel's BTF type information (``/sys/kernel/btf/vmlinux``).

Responsibility: answer "at which byte offset is ``struct.member.member``" and "what is the
value of enumerator X" for the *running* kernel, so BPF programs never take a struct layout
from a kernel header tree (bcc compiles against whatever headers exist; on a 6.18 kernel with
6.1 headers a header-derived ``task->tgid`` reads the wrong bytes).

Input: the raw BTF blob. Output: integers. It does not load anything into the kernel and
never prints. Format reference: the kernel's Documentation/bpf/btf.rst and
include/uapi/linux/btf.h (header, ``struct btf_type``, kinds 1..19).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

from .errors import BtfError

VMLINUX = "/sys/kernel/btf/vmlinux"
BTF_MAGIC = 0xEB9F

# include/uapi/linux/btf.h: enum of BTF_KIND_*
KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_FWD = 1, 2, 3, 4, 5, 6, 7
KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT = 8, 9, 10, 11
KIND_FUNC, KIND_FUNC_PROTO, KIND_VAR, KIND_DATASEC, KIND_FLOAT = 12, 13, 14, 15, 16
KIND_DECL_TAG, KIND_TYPE_TAG, KIND_ENUM64 = 17, 18, 19

# Bytes that follow the 12-byte struct btf_type, as (fixed, per-vlen-entry).
_EXTRA = {
    KIND_INT: (4, 0), KIND_PTR: (0, 0), KIND_ARRAY: (12, 0), KIND_STRUCT: (0, 12),
    KIND_UNION: (0, 12), KIND_ENUM: (0, 8), KIND_FWD: (0, 0), KIND_TYPEDEF: (0, 0),
    KIND_VOLATILE: (0, 0), KIND_CONST: (0, 0), KIND_RESTRICT: (0, 0), KIND_FUNC: (0, 0),
    KIND_FUNC_PROTO: (0, 8), KIND_VAR: (4, 0), KIND_DATASEC: (0, 12), KIND_FLOAT: (0, 0),
    KIND_DECL_TAG: (4, 0), KIND_TYPE_TAG: (0, 0), KIND_ENUM64: (0, 12),
}
_NAMED = frozenset((KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_ENUM64, KIND_TYPEDEF, KIND_INT,
                    KIND_FUNC))
_TYPE = struct.Struct("<III")     # struct btf_type: name_off, info, size/type
_MODIFIERS = (KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG)


@dataclass(frozen=True)
class Member:
    """Where a (possibly nested) member lives: byte offset from the outer struct, and size."""

    offset: int
    size: int
    bitfield_size: int = 0


class Btf:
    """An index over one BTF blob. Types are decoded lazily; the index pass is one linear scan."""

    def __init__(self, data: bytes):
        if len(data) < 24:
            raise BtfError("BTF blob too short", "check that /sys/kernel/btf/vmlinux is readable")
        magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != BTF_MAGIC:
            raise BtfError(f"bad BTF magic {magic:#x}", "the file is not kernel BTF")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        self._data = data
        self._types_start = hdr_len + type_off
        self._strs = data[hdr_len + str_off: hdr_len + str_off + str_len]
        if self._types_start + type_len > len(data) or len(self._strs) != str_len:
            raise BtfError("BTF header points outside the blob", "the BTF file is truncated")
        # _index[type_id] = (blob offset of btf_type, kind, vlen, kind_flag, name_off, size_or_type)
        self._index: List[Tuple[int, int, int, int, int, int]] = [(0, 0, 0, 0, 0, 0)]  # id 0 = void
        # Named types by (kind, name offset): names are decoded only when asked for, because
        # decoding ~70k names was most of the parse time (it runs at every start-up).
        self._by_off: Dict[Tuple[int, int], List[int]] = {}
        self._named_cache: Dict[Tuple[int, str], List[int]] = {}
        index, by_off, unpack, extra = self._index, self._by_off, _TYPE.unpack_from, _EXTRA
        pos, end = self._types_start, self._types_start + type_len
        while pos < end:
            name_off, info, size_or_type = unpack(data, pos)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            sizes = extra.get(kind)
            if sizes is None:
                raise BtfError(f"unknown BTF kind {kind} at byte {pos}", "upgrade pyprof-ebpf")
            if name_off and kind in _NAMED:
                key = (kind, name_off)
                if key in by_off:
                    by_off[key].append(len(index))
                else:
                    by_off[key] = [len(index)]
            index.append((pos, kind, vlen, info >> 31, name_off, size_or_type))
            pos += 12 + sizes[0] + sizes[1] * vlen

    def _named(self, kind: int, name: str) -> List[int]:
        """Type ids of kind ``kind`` named ``name``, in id order."""
        hit = self._named_cache.get((kind, name))
        if hit is not None:
            return list(hit)
        offs, needle = [], name.encode() + b"\0"
        if self._strs.startswith(needle):
            offs.append(0)
        at = self._strs.find(b"\0" + needle)
        while at >= 0:
            offs.append(at + 1)
            at = self._strs.find(b"\0" + needle, at + 1)
        # A name is a whole string of the section: BTF writers (libbpf's strset, used by
        # pahole) deduplicate equal strings but never share a suffix of a longer one.
        tids = sorted(tid for off in offs for tid in self._by_off.get((kind, off), ()))
        self._named_cache[(kind, name)] = tids
        return list(tids)

    @classmethod
    def from_file(cls, path: str = VMLINUX) -> "Btf":
        try:
            with open(path, "rb") as f:
                return cls(f.read())
        except FileNotFoundError as err:
            raise BtfError(f"{path} not found",
                           "the kernel needs CONFIG_DEBUG_INFO_BTF=y (any distro kernel since 5.8)") from err
        except PermissionError as err:
            raise BtfError(f"{path} is not readable", "run as root") from err

    def _str(self, off: int) -> str:
        end = self._strs.find(b"\0", off)
        return self._strs[off:end if end >= 0 else None].decode("utf-8", "replace")

    def _resolve(self, tid: int) -> int:
        """Skip typedefs and qualifiers."""
        for _ in range(64):
            _, kind, _, _, _, ref = self._index[tid]
            if kind not in _MODIFIERS:
                return tid
            tid = ref
        raise BtfError("BTF typedef chain too deep", "the BTF blob is malformed")

    def _size(self, tid: int) -> int:
        tid = self._resolve(tid)
        pos, kind, _, _, _, size = self._index[tid]
        if kind in (KIND_INT, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_ENUM64, KIND_FLOAT):
            return size
        if kind == KIND_PTR:
            return 8
        if kind == KIND_ARRAY:
            elem, _idx, nelems = struct.unpack_from("<III", self._data, pos + 12)
            return self._size(elem) * nelems
        return 0

    def _members(self, tid: int) -> Iterator[Tuple[str, int, int, int]]:
        """(name, type_id, bit_offset, bitfield_size) of a struct/union's direct members."""
        pos, _kind, vlen, kflag, _, _ = self._index[tid]
        for i in range(vlen):
            name_off, mtype, moff = struct.unpack_from("<III", self._data, pos + 12 + 12 * i)
            if kflag:
                yield self._str(name_off), mtype, moff & 0xFFFFFF, moff >> 24
            else:
                yield self._str(name_off), mtype, moff, 0

    def find_struct(self, name: str) -> int:
        """Type id of the complete struct (or union) ``name``."""
        for kind in (KIND_STRUCT, KIND_UNION):
            for tid in self._named(kind, name):
                if self._index[tid][5] > 0 or self._index[tid][2] > 0:
                    return tid
        raise BtfError(f"struct {name} not in kernel BTF", "this kernel is not supported yet")

    def struct_size(self, name: str) -> int:
        return self._index[self.find_struct(name)][5]

    def _find_member(self, tid: int, name: str, depth: int = 0) -> Optional[Tuple[int, int, int]]:
        """(type_id, bit_offset, bitfield_size), looking through anonymous struct/union members
        (task_struct keeps fields inside ``struct { ... }`` randomization groups)."""
        if depth > 8:
            return None
        for mname, mtype, bitoff, bsize in self._members(tid):
            if mname == name:
                return mtype, bitoff, bsize
            if not mname:
                inner = self._resolve(mtype)
                if self._index[inner][1] in (KIND_STRUCT, KIND_UNION):
                    found = self._find_member(inner, name, depth + 1)
                    if found:
                        return found[0], bitoff + found[1], found[2]
        return None

    def member(self, path: str) -> Member:
        """Resolve ``"task_struct.thread.fsbase"``: a struct name, then members of embedded
        structs (not through pointers). Raises BtfError naming the missing piece."""
        struct_name, *names = path.split(".")
        if not names:
            raise BtfError(f"{path!r} names no member", "use struct.member")
        tid, bitoff, bsize = self.find_struct(struct_name), 0, 0
        for i, name in enumerate(names):
            kind = self._index[tid][1]
            if kind not in (KIND_STRUCT, KIND_UNION):
                raise BtfError(f"{'.'.join([struct_name] + names[:i])} is not a struct",
                               "only embedded structs can be walked")
            found = self._find_member(tid, name)
            if found is None:
                raise BtfError(f"kernel BTF has no member {path}", "this kernel is not supported yet")
            mtype, off, bsize = found
            bitoff += off
            tid = self._resolve(mtype)
        if bsize == 0 and bitoff % 8:
            raise BtfError(f"{path} is not byte aligned", "this kernel is not supported yet")
        return Member(offset=bitoff // 8, size=self._size(tid), bitfield_size=bsize)

    def offset(self, path: str) -> int:
        return self.member(path).offset

    def has_member(self, path: str) -> bool:
        try:
            self.member(path)
            return True
        except BtfError:
            return False

    def _enum_entries(self, tid: int) -> Iterator[Tuple[str, int]]:
        """(name, value) of each enumerator of the ENUM or ENUM64 type ``tid``."""
        pos, kind, vlen, kflag, _, _ = self._index[tid]
        for i in range(vlen):
            if kind == KIND_ENUM:
                name_off, val = struct.unpack_from("<Ii" if kflag else "<II", self._data, pos + 12 + 8 * i)
            else:
                name_off, lo, hi = struct.unpack_from("<III", self._data, pos + 12 + 12 * i)
                val = (hi << 32) | lo
            yield self._str(name_off), val

    def enum_value(self, enumerator: str, enum_name: Optional[str] = None) -> int:
        """Value of an enumerator, optionally restricted to ``enum enum_name``."""
        candidates: List[int]
        if enum_name:
            candidates = self._named(KIND_ENUM, enum_name) + self._named(KIND_ENUM64, enum_name)
        else:
            candidates = [t for t, e in enumerate(self._index) if e[1] in (KIND_ENUM, KIND_ENUM64)]
        for tid in candidates:
            for name, val in self._enum_entries(tid):
                if name == enumerator:
                    return val
        raise BtfError(f"kernel BTF has no enumerator {enumerator}", "this kernel is not supported yet")

    def enumerators(self, enum_name: str) -> Dict[str, int]:
        """All enumerators of ``enum enum_name`` (the first complete definition)."""
        for tid in self._named(KIND_ENUM, enum_name) + self._named(KIND_ENUM64, enum_name):
            out = dict(self._enum_entries(tid))
            if out:
                return out
        raise BtfError(f"kernel BTF has no enum {enum_name}", "this kernel is not supported yet")

    def func_proto_params(self, typedef_name: str) -> int:
        """Number of parameters of the function-pointer typedef ``typedef_name``
        (e.g. ``btf_trace_sched_process_exit``: tracepoint args + the leading ``void *``)."""
        for tid in self._named(KIND_TYPEDEF, typedef_name):
            target = self._resolve(tid)
            if self._index[target][1] == KIND_PTR:
                target = self._resolve(self._index[target][5])
            if self._index[target][1] == KIND_FUNC_PROTO:
                return self._index[target][2]
        raise BtfError(f"kernel BTF has no typedef {typedef_name}", "this kernel is not supported yet")


_cache: Dict[str, Btf] = {}


def kernel_btf(path: str = VMLINUX) -> Btf:
    """The running kernel's BTF, parsed once per process."""
    key = f"{path}:{os.stat(path).st_mtime_ns}" if os.path.exists(path) else path
    if key not in _cache:
        _cache[key] = Btf.from_file(path)
    return _cache[key]
