"""Stack aggregation: samples in, counted stacks and run metadata out.

Responsibility: the data model shared by the sampler pipeline and the writers (``Frame``,
``Sample``, ``Metadata``) and ``Profile``, which counts identical stacks per (pid, iid, tid) in a
dict keyed by tuples, so the per-sample cost is one hash of a tuple the decoder built anyway.
It also answers summary questions (top functions by self time) for the CLI.

It must not do I/O, print, or know about BPF, /proc or any output format: it is pure, and
``output`` turns a ``Profile`` into bytes. Names and paths stored here are raw (possibly hostile)
strings from target memory; escaping them is the writers' job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple


class Frame(NamedTuple):
    """One stack frame. ``function`` is the qualname (``Class.method``) on CPython 3.11+.

    ``kind`` is ``"py"`` for Python frames, ``"native"``/``"kernel"`` for optional extra frames
    and ``"marker"`` for pseudo-frames the tool itself inserts (``TRUNCATED``).
    A NamedTuple, not a dataclass: frames are hashed once per sample as part of the stack key.
    """

    filename: str
    function: str
    line: int
    kind: str = "py"

    @classmethod
    def native(cls, module: str, symbol: str) -> "Frame":
        return cls(module, symbol, 0, "native")

    @classmethod
    def kernel(cls, symbol: str) -> "Frame":
        # Austin's own spelling of a kernel frame (austinp -k): ``kernel:<symbol>:0``.
        return cls("kernel", symbol, 0, "kernel")


# Put at the root end of a stack whose outermost frames were cut off: the BPF walker starts at
# the leaf, so truncation always loses the frames nearest the root.
TRUNCATED = Frame("", "<truncated>", 0, "marker")


class Sample(NamedTuple):
    """One decoded sample. ``frames`` run outermost (root) first, leaf last."""

    pid: int
    tid: int
    iid: int
    frames: Tuple[Frame, ...]
    weight_us: int
    truncated: bool = False


class StackKey(NamedTuple):
    pid: int
    iid: int
    tid: int
    frames: Tuple[Frame, ...]


class FunctionStat(NamedTuple):
    """A ``top_functions`` row. ``frame.line`` is 0 unless lines were asked for."""

    frame: Frame
    self_us: int
    share: float


@dataclass
class Metadata:
    """Facts about the run that every format reports in its header or footer."""

    mode: str = "cpu"  # Austin's vocabulary: cpu | wall
    rate_hz: int = 0
    interval_us: int = 0
    multiprocess: bool = False
    command: List[str] = field(default_factory=list)
    start_time: Optional[float] = None  # time.time() seconds
    end_time: Optional[float] = None
    errors: int = 0  # samples that could not be decoded (not in the stacks)
    lost: int = 0  # samples the kernel dropped (perf buffer overrun)
    left_running: int = 0  # targets still alive when profiling ended

    @property
    def duration_us(self) -> int:
        if self.start_time is None:
            return 0
        end = self.end_time if self.end_time is not None else time.time()
        return max(0, round((end - self.start_time) * 1_000_000))


class Profile:
    """Counts of identical stacks per thread, plus run metadata and per-process facts."""

    def __init__(self, meta: Optional[Metadata] = None) -> None:
        self.meta = meta if meta is not None else Metadata()
        self.process_names: Dict[int, str] = {}
        self.python_versions: Dict[int, str] = {}
        # StackKey -> [sample count, summed µs]; a mutable list so a hit costs one lookup.
        self._stacks: Dict[StackKey, List[int]] = {}
        self.sample_count = 0
        self.total_us = 0

    def set_process(self, pid: int, name: Optional[str] = None,
                    python_version: Optional[str] = None) -> None:
        if name is not None:
            self.process_names[pid] = name
        if python_version is not None:
            self.python_versions[pid] = python_version

    def add(self, sample: Sample, count: int = 1) -> None:
        """Add ``count`` identical samples (``weight_us`` each)."""
        frames = (TRUNCATED,) + sample.frames if sample.truncated else sample.frames
        key = StackKey(sample.pid, sample.iid, sample.tid, frames)
        us = sample.weight_us * count
        entry = self._stacks.get(key)
        if entry is None:
            self._stacks[key] = [count, us]
        else:
            entry[0] += count
            entry[1] += us
        self.sample_count += count
        self.total_us += us

    def merge(self, other: "Profile") -> None:
        """Add ``other``'s stacks and counters into this profile (e.g. per-CPU partials)."""
        for key, (count, us) in other._stacks.items():
            entry = self._stacks.setdefault(key, [0, 0])
            entry[0] += count
            entry[1] += us
        self.sample_count += other.sample_count
        self.total_us += other.total_us
        for attr in ("errors", "lost", "left_running"):
            setattr(self.meta, attr, getattr(self.meta, attr) + getattr(other.meta, attr))
        self.process_names.update(other.process_names)
        self.python_versions.update(other.python_versions)

    def stacks(self) -> Iterator[Tuple[StackKey, int, int]]:
        """(key, sample count, µs) for every distinct stack, sorted so output is reproducible."""
        for key in sorted(self._stacks):
            count, us = self._stacks[key]
            yield key, count, us

    def threads(self) -> Dict[Tuple[int, int, int], List[Tuple[Tuple[Frame, ...], int, int]]]:
        """(pid, iid, tid) -> [(frames, count, µs), ...], in ``stacks()`` order."""
        out: Dict[Tuple[int, int, int], List[Tuple[Tuple[Frame, ...], int, int]]] = {}
        for key, count, us in self.stacks():
            out.setdefault((key.pid, key.iid, key.tid), []).append((key.frames, count, us))
        return out

    def top_functions(self, n: int = 10, *, by_line: bool = False) -> List[FunctionStat]:
        """The ``n`` leaf functions with most self time; share is of all sampled µs."""
        self_us: Dict[Frame, int] = {}
        for key, (_, us) in self._stacks.items():
            if not key.frames or key.frames[-1].kind == "marker":
                continue  # no frame to charge: a thread caught outside Python code
            leaf = key.frames[-1]
            if not by_line:
                leaf = leaf._replace(line=0)
            self_us[leaf] = self_us.get(leaf, 0) + us
        total = self.total_us or 1
        ranked = sorted(self_us.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        return [FunctionStat(frame, us, us / total) for frame, us in ranked]
