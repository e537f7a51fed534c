"""Rules on bpf/*.c that keep start-up fast and that no compiler would enforce."""

import re
from pathlib import Path

BPF = Path(__file__).resolve().parents[2] / "bpf"


def test_user_reads_bypass_bccs_per_call_symbol_lookup():
    # bcc's frontend resolves bpf_probe_read_user in the kernel's symbols at every call site
    # it sees (about 28 ms each on this machine): user reads go through read_user/read_user_str.
    calls = [(p.name, n) for p in sorted(BPF.glob("*.c"))
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"\bbpf_probe_read_user(_str)?\s*\(", line)]
    assert calls == [], "call read_user()/read_user_str() instead: %s" % calls
    assert "BPF_FUNC_probe_read_user" in (BPF / "pyprof.bpf.c").read_text()
