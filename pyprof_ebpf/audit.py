"""Writers for ``pyprof-ebpf audit``: JSON Lines (streamed) and an indented tree (at the end).

Responsibility: format audit records. JSON Lines writes one record per line as it arrives
(``json.dumps`` escapes every control character, so names read from targets cannot break a
line); the tree view renders the whole session once it is over. No kernel access.
"""

from __future__ import annotations

import json
from typing import Dict, List, Optional, TextIO, Tuple

SIGNALS = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS",
           8: "SIGFPE", 9: "SIGKILL", 11: "SIGSEGV", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM"}


def _safe(text: str) -> str:
    """One-line, printable rendering of a target-controlled string for the tree view."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


class JsonLines:
    def __init__(self, out: TextIO):
        self.out = out

    # json.dumps leaves these raw with ensure_ascii=False, and str.splitlines() (and
    # JavaScript) treat them as line breaks: a target's argv must not split a record.
    _BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})

    def write(self, rec: dict) -> None:
        line = json.dumps(rec, ensure_ascii=False, separators=(",", ":")).translate(self._BREAKS)
        self.out.write(line + "\n")

    def close(self) -> None:
        self.out.flush()


class TreeView:
    """Collects records; ``close()`` prints ``pid comm [argv] -> ending (duration)`` lines
    indented under their creator, the way ``pstree`` nests them."""

    def __init__(self, out: TextIO, clk_tck: int = 100):
        self.out = out
        self.clk_tck = clk_tck
        self.procs: Dict[Tuple[int, int], dict] = {}
        self.order: List[Tuple[int, int]] = []
        self.summary: Optional[dict] = None

    def _key(self, pid: int, start: int) -> Tuple[int, int]:
        return pid, start * self.clk_tck // 1_000_000_000

    def write(self, rec: dict) -> None:
        ev = rec["event"]
        if ev == "summary":
            self.summary = rec
            return
        key = self._key(rec["pid"], rec["start"])
        p = self.procs.get(key)
        if p is None:
            p = self.procs[key] = {"pid": rec["pid"], "comm": rec["comm"], "parent": None,
                                   "argv": None, "end": None}
            self.order.append(key)
        if ev == "fork":
            p["parent"] = self._key(rec["ppid"], rec.get("parent_start", 0))
        elif ev == "exec":
            p["argv"] = rec.get("argv") or [rec.get("filename", "")]
            p["comm"] = rec["comm"]
        elif ev == "exit":
            if rec["signal"] is not None:
                how = f"killed by {SIGNALS.get(rec['signal'], 'signal %d' % rec['signal'])}"
                how += " (core dumped)" if rec.get("core_dumped") else ""
            else:
                how = f"exited {rec['exit_code']}"
            p["end"] = f"{how} after {rec['duration']:.3f}s"

    def close(self) -> None:
        kids: Dict[Tuple[int, int], List[Tuple[int, int]]] = {}
        roots = []
        for key in self.order:
            parent = self.procs[key]["parent"]
            if parent in self.procs and parent != key:
                kids.setdefault(parent, []).append(key)
            else:
                roots.append(key)

        def line(key, prefix, last, top):
            p = self.procs[key]
            argv = " ".join(p["argv"]) if p["argv"] else ""
            what = f"{p['pid']} {p['comm']}" + (f" [{argv}]" if argv else "")
            end = p["end"] or "still running"
            branch = "" if top else ("└─ " if last else "├─ ")
            self.out.write(f"{prefix}{branch}{_safe(what)}  {end}\n")
            children = kids.get(key, [])
            for i, k in enumerate(children):
                line(k, prefix + ("" if top else ("   " if last else "│  ")), i == len(children) - 1, False)

        for r in roots:
            line(r, "", True, True)
        if self.summary:
            s = self.summary
            self.out.write(f"-- {s['processes']} processes, {s['forks']} forks, {s['execs']} execs, "
                           f"{s['exits']} exits, {s['lost_events']} lost events, "
                           f"{len(s['left_running'])} left running\n")
        self.out.flush()
