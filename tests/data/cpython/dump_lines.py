# Run by tests/unit/test_cpython_linetable.py under each installed CPython (3.8+ syntax only).
# Prints JSON: for every code object of tricky.py (plus generated very long functions), the raw
# line table, co_firstlineno and CPython's own answer for every instruction offset, and the
# (f_lasti, f_lineno) pairs of live frames recorded by tricky.here().
import ctypes
import json
import os
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))


def generated():
    # Line jumps > 127 and > 255 (lnotab/PEP 626 need multi-entry deltas), a one-line run of
    # more than 255 bytecode bytes, columns > 127 (3.11+ LONG entries) and backwards jumps.
    wide = "[" + ", ".join(["x"] * 300) + "]"
    lines = ["", "", "def long_jumps():", "    x = here()"]
    lines += ["    # filler %d" % i for i in range(300)]
    lines += ["    y = here()", "    z = %s + [here()]" % wide, "    w = here()"]
    lines += ["    for i in range(2):"] + ["        # loop filler %d" % i for i in range(150)]
    lines += ["        x += here()", "    return (x +"]
    lines += ["        # tail filler %d" % i for i in range(200)]
    lines += ["        y + len(z) + w)", ""]
    lines += ["def backwards(n):", "    return sum(", "        v"]
    lines += ["        # inner %d" % i for i in range(140)]
    lines += ["        for v in range(n)", "        if here())", ""]
    return "\n".join(lines)


def code_objects(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from code_objects(const)


def main():
    with open(os.path.join(HERE, "tricky.py")) as fh:
        source = fh.read() + generated()
    code = compile(source, "tricky.py", "exec")
    namespace = {"__name__": "tricky"}
    exec(code, namespace)
    namespace["drive"]()
    namespace["long_jumps"]()
    namespace["backwards"](4)

    addr2line = ctypes.pythonapi.PyCode_Addr2Line
    addr2line.argtypes = [ctypes.py_object, ctypes.c_int]
    addr2line.restype = ctypes.c_int
    new_table = sys.version_info >= (3, 10)
    out = {"version": list(sys.version_info[:3]), "codes": [], "frames": []}
    for co in code_objects(code):
        table = co.co_linetable if new_table else co.co_lnotab
        n = len(co.co_code)
        truth = {a: addr2line(co, a) for a in range(-2, n + 2, 2)}
        lines = None
        if hasattr(co, "co_lines"):
            lines = [[s, e, ln] for s, e, ln in co.co_lines()]
        out["codes"].append({
            "name": co.co_name, "firstlineno": co.co_firstlineno, "table": table.hex(),
            "code_len": n, "addr2line": truth, "co_lines": lines,
        })
    for name, first, lasti, lineno in namespace["RECORDS"]:
        out["frames"].append([name, first, lasti, lineno])
    json.dump(out, sys.stdout)


main()
