"""Dump the position and exception tables of every stdlib code object to a binary corpus.

Run under the interpreter whose tables you want:  python dump_tables_corpus.py OUT [LIBDIR]
With FRONTRUN_DUMP_PYTEST_REWRITE=1 (and pytest importable), every file with an `assert` is
also dumped as pytest's assertion rewriter compiles it (ASTs with synthesized locations).
`examples/codecs_check.rs` reads the corpus and checks the Rust codecs against it.

Layout (little endian):
  b"FRTC" u8 major u8 minor
  then per code object:
    u32 units, i32 firstlineno,
    u32 n + co_code, u32 n + line/location table, u32 n + exception table (empty on 3.10),
    u32 n + starts (one byte per code unit: 1 where an instruction, EXTENDED_ARGs included, begins),
    u32 n + n * 4 i32 positions (line, end_line, col, end_col; None = i32 min).
  3.11+: positions are exactly `co_positions()`.
  3.10: positions are `co_lines()` expanded to one per code unit (line only; units no range
  covers get None), since 3.10 has no `co_positions()`.
"""
import opcode
import os
import struct
import sys
import sysconfig
import warnings

NONE = -(2**31)


def cache_counts():
    entries = getattr(opcode, "_inline_cache_entries", None)
    counts = [0] * 256
    if entries is None:
        return counts
    if isinstance(entries, (list, tuple)):
        for op, n in enumerate(entries):
            counts[op] = n
    else:  # dict (3.13+) or frozendict (3.15), keyed by name
        for name, n in entries.items():
            op = opcode.opmap.get(name)
            if op is not None and op < 256:
                counts[op] = n
    return counts


CACHES = cache_counts()
EXTENDED_ARG = opcode.opmap["EXTENDED_ARG"]


def instruction_starts(code):
    raw = code.co_code
    units = len(raw) // 2
    starts = bytearray(units)
    i = 0
    while i < units:
        starts[i] = 1
        while i < units and raw[2 * i] == EXTENDED_ARG:
            i += 1
        if i < units:
            i += 1 + CACHES[raw[2 * i]]
    return bytes(starts)


def opt(v):
    return NONE if v is None else v


def positions(code):
    units = len(code.co_code) // 2
    if sys.version_info >= (3, 11):
        return [tuple(opt(v) for v in p) for p in code.co_positions()]
    lines = [NONE] * units
    for start, end, line in code.co_lines():
        for u in range(start // 2, end // 2):
            if u < units:
                lines[u] = opt(line)
    return [(l, NONE, NONE, NONE) for l in lines]


def blob(b):
    return struct.pack("<I", len(b)) + b


def record(code):
    pos = positions(code)
    exc = getattr(code, "co_exceptiontable", b"")
    out = [
        struct.pack("<Ii", len(code.co_code) // 2, code.co_firstlineno),
        blob(code.co_code),
        blob(code.co_linetable),
        blob(exc),
        blob(instruction_starts(code)),
        struct.pack("<I", len(pos)),
    ]
    out.append(b"".join(struct.pack("<4i", *p) for p in pos))
    return b"".join(out)


def walk(code):
    yield code
    for c in code.co_consts:
        if hasattr(c, "co_code"):
            yield from walk(c)


def synthetic_sources():
    """Stress the rare table shapes the stdlib barely has (or not at all)."""
    many = ", ".join(str(i) for i in range(400))
    yield "long_range", f"x = [{many}]\n"  # 3.10: ranges > 254 bytes on one line
    gap = "\n" * 70000
    yield "line_gaps", (
        "def f(n):\n    for i in range(n):\n        a = i" + gap + "        b = i\n"
        "    return b" + "\n" * 200 + "\n\nz = 1\n"
    )  # line deltas of ±70000, ±200: multi-chunk svarints, 3.10 (0, ±127) runs
    yield "wide_columns", (
        "def g(a, b):\n"
        "    x = a" + " " * 90 + "+ b\n"  # one-line form (col < 128)
        "    y = a" + " " * 200 + "+ b\n"  # long form, 2-chunk column
        "    z = a" + " " * 5000 + "+ g(a, b)" + " " * 300000 + "+ b\n"  # 3- and 4-chunk columns
        "    return (a\n" + "\n" * 5000 + "            + b)\n"  # multi-line span
    )
    consts = "; ".join(f"v{i} = {i}.5" for i in range(70000))
    yield "extended_args", f"def h():\n    {consts}\n    return v1\n"  # 1 and 2 EXTENDED_ARGs
    names = "; ".join(f"g{i}.attr{i}()" for i in range(300))
    yield "long_instructions", f"def k():\n    {names}\n"  # EXTENDED_ARG + caches > 8 units
    args = ", ".join(f"a{i}" for i in range(300))
    yield "deep_handler", (
        f"def m(y):\n    return f({args}, [x for x in y])\n"  # 3.12+: depth > 63
        "def n():\n    try:\n" + "        pass; z = 1\n" * 3000 + "    except E:\n        pass\n"
        "    try:\n        q()\n    finally:\n        r()\n"
        "async def o():\n    async with a as b:\n        async for c in d:\n            await e\n"
        "class C:\n    @dec\n    def p(self, /, a=lambda: (yield), *, b=(i for i in ())): pass\n"
    )


def synthetic_trees():
    """Hand-built ASTs with locations no parser produces (tools like pytest build such trees)."""
    import ast

    def call(name, line, col, **end):
        at = dict(lineno=line, col_offset=col, **end)
        func = ast.Name(name, ast.Load(), **at)
        return ast.Expr(ast.Call(func, [], [], **at), **at)

    def some(line, col, end_line, end_col):
        return dict(end_lineno=end_line, end_col_offset=end_col)

    variants = {
        "missing_end": [call("f", 3, 0), call("g", 3, 4)],
        "end_none": [call("f", 3, 0, **some(0, 0, None, None))],
        "line_zero": [call("f", 0, 0, **some(0, 0, 0, 0))],
        "no_columns": [call("f", 2, -1, **some(2, -1, 2, -1)), call("g", 2, -1, **some(2, -1, 2, -1))],
        "mixed_columns": [call("f", 2, -1, **some(2, -1, 2, 5)), call("g", 2, 3, **some(2, 3, 2, -1))],
        "no_columns_multiline": [call("f", 2, -1, **some(2, -1, 4, -1))],
        "negative_line": [call("f", -5, 1, **some(-5, 1, -5, 3)), call("g", 7, 1, **some(7, 1, 7, 3))],
        "huge": [call("f", 2**24, 2**20, **some(0, 0, 2**24 + 5, 2**21)), call("g", 1, 0, **some(1, 0, 1, 1))],
        "same_line_repeated": [call("f", 4, 0, **some(4, 0, 4, 3)) for _ in range(3)],
    }
    for name, body in variants.items():
        yield name, ast.Module(body=body, type_ignores=[])


def pytest_rewritten(path, source):
    """`source` as pytest's assertion rewriter compiles it, or None without pytest."""
    try:
        import ast
        from _pytest.assertion.rewrite import rewrite_asserts
    except ImportError:
        return None
    tree = ast.parse(source, path)
    if not any(isinstance(node, ast.Assert) for node in ast.walk(tree)):
        return None
    rewrite_asserts(tree, source, path)
    return compile(tree, path, "exec", dont_inherit=True)


def main():
    out_path = sys.argv[1]
    lib = sys.argv[2] if len(sys.argv) > 2 else sysconfig.get_paths()["stdlib"]
    files = skipped = objects = rewritten_files = 0
    rewrite = os.environ.get("FRONTRUN_DUMP_PYTEST_REWRITE") == "1"
    with open(out_path, "wb") as out:
        out.write(b"FRTC" + bytes(sys.version_info[:2]))
        for root, dirs, names in os.walk(lib):
            dirs[:] = sorted(d for d in dirs if d not in ("site-packages", "__pycache__"))
            for name in sorted(names):
                if not name.endswith(".py"):
                    continue
                path = os.path.join(root, name)
                try:
                    with open(path, "rb") as f:
                        source = f.read()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        top = compile(source, path, "exec", dont_inherit=True)
                except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, MemoryError):
                    skipped += 1
                    continue
                files += 1
                for code in walk(top):
                    out.write(record(code))
                    objects += 1
                if rewrite:
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            rewritten = pytest_rewritten(path, source)
                    except Exception:  # the rewriter's own limits, not ours
                        rewritten = None
                    if rewritten is not None:
                        rewritten_files += 1
                        for code in walk(rewritten):
                            out.write(record(code))
                            objects += 1
        synthetic = list(synthetic_sources()) + list(synthetic_trees())
        for name, source in synthetic:
            try:
                top = compile(source, f"<synthetic {name}>", "exec", dont_inherit=True)
            except (ValueError, TypeError, SyntaxError) as e:  # newer compilers validate ranges
                print(f"  synthetic {name}: not compiled ({e})")
                continue
            for code in walk(top):
                out.write(record(code))
                objects += 1
    print(
        f"{sys.version.split()[0]}: {files} files ({skipped} skipped), {rewritten_files} also "
        f"pytest-rewritten, {len(synthetic)} synthetic, {objects} code objects -> {out_path}"
    )


if __name__ == "__main__":
    main()
