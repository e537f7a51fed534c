"""One profiling run: the sampler, the session, and the profile they produce.

Responsibility: connect a ``Sampler`` to a ``Session`` (CPython discovery at every exec and
attach, a forked child inheriting its parent's description), keep the live counters the CLI
shows, and at the end turn raw samples into an ``aggregate.Profile`` through ``symbolize``
(while the BPF maps holding captured code objects still exist). Prints nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Optional

from . import _abi_gen as abi
from .aggregate import Frame, Metadata, Profile, Sample
from .cpython.elf import read_memory
from .events import ProcEvent
from .sampler import Sampler
from .session import Session
from .symbolize import Symbolizer

SF = abi.PyprofSampleFlag


@dataclass
class Status:
    samples: int
    processes: int
    lost: int


class Recording:
    def __init__(self, sampler: Sampler, session: Session):
        self.sampler, self.session = sampler, session
        self.pythons = sampler.pythons
        self.comms = {}
        self.sym = Symbolizer(sampler.code_info, read_memory)
        self._last_resolve = 0.0
        # Set by profile(): what the profile leaves out, for the summary.
        self.non_python = 0
        self.refused_samples: Counter = Counter()
        self.unresolved_frames = 0
        session.observers.append(self._on_event)
        session.tickers.append(self._tick)
        self.started = time.time()

    def _on_event(self, ev: ProcEvent) -> None:
        if ev.kind == "exec":
            self.pythons.on_exec(ev.pid, ev.start, ev.filename)
            self.comms[ev.pid] = ev.comm
        elif ev.kind == "fork":
            self.pythons.on_fork(ev.pid, ev.start, ev.ppid)
            self.comms.setdefault(ev.pid, ev.comm)
        elif ev.kind == "exit":
            self.pythons.on_exit(ev.pid)

    def add_existing(self) -> None:
        """Describe processes found by bootstrap (attach, --all, --cgroup)."""
        for pid, proc in self.session.tree.live.items():
            self.comms[pid] = proc.comm
            self.pythons.add(pid, proc.start)
        self.pythons.retry()

    def _tick(self) -> None:
        if self.pythons.pending:
            self.pythons.retry()
        now = time.monotonic()
        if self.sampler.fresh and now - self._last_resolve > 0.2:
            self._last_resolve = now
            self.resolve_fresh()
        # Poll fast while a new process waits for discovery (its first samples matter).
        self.session.poll_ms = 10 if self.pythons.pending else 100

    def resolve_fresh(self) -> None:
        """Symbolize the code objects of stacks first seen since the last call, while their
        processes are most likely alive (BPF captured most of them already; the rest are
        read from /proc/PID/mem)."""
        fresh, self.sampler.fresh = self.sampler.fresh, []
        for raw in fresh:
            if raw.user_stack_id >= 0:
                self.sampler.stack_symbols(raw.user_stack_id, raw.pid)
            off = self.pythons.offsets(raw.pid)
            if off is None:
                continue
            for code, _addrq, tag in raw.frames:
                self.sym.code(raw.pid, code, tag, off)

    def status(self) -> Status:
        return Status(self.sampler.received, len(self.session.tree.procs),
                      self.sampler.sample_counters()["ring_drops"])

    def profile(self, meta: Metadata, native: bool, kernel: bool) -> Profile:
        prof = Profile(meta)
        self.resolve_fresh()
        sym = self.sym
        interval = meta.interval_us
        errors = non_python = 0
        refused: Counter = Counter()
        for raw, count in self.sampler.samples.items():
            off = self.pythons.offsets(raw.pid)
            if not raw.frames:
                if raw.flags & SF.PYPROF_SF_READ_ERROR:
                    errors += count
                elif raw.pid in self.pythons.refused:
                    refused[raw.pid] += count
                else:
                    non_python += count     # not Python, or a thread outside Python code
                continue
            if off is None:
                errors += count
                continue
            frames = [sym.frame(raw.pid, code, tag, addrq, off) for code, addrq, tag in reversed(raw.frames)]
            if native:
                frames += [Frame.native(mod, name) for mod, name in self._native_leaf(raw)]
            if kernel:
                frames += [Frame.kernel(name) for _, name in self.sampler.stack_symbols(raw.kernel_stack_id, -1)]
            prof.add(Sample(raw.pid, raw.tid, 0, tuple(frames), interval,
                            truncated=bool(raw.flags & SF.PYPROF_SF_TRUNCATED)), count)
        for pid in {raw.pid for raw in self.sampler.samples}:
            prof.set_process(pid, self.comms.get(pid), self.pythons.versions.get(pid) or None)
        meta.errors += errors
        self.non_python = non_python
        self.refused_samples = refused          # pid -> samples of a refused interpreter
        self.unresolved_frames = sym.unresolved
        return prof

    def _native_leaf(self, raw) -> list:
        """Native frames below the innermost Python frame: the C calls it is making (the part
        of the native stack after the last interpreter evaluation loop frame)."""
        names = self.sampler.stack_symbols(raw.user_stack_id, raw.pid)
        last_eval = max((i for i, (_, n) in enumerate(names) if "EvalFrame" in n), default=-1)
        return names[last_eval + 1:]

    def first_sample_delay(self) -> Optional[float]:
        if self.sampler.first_sample_at is None:
            return None
        return self.sampler.first_sample_at - self.session.started_monotonic
