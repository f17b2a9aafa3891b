"""Generate frontrun's opcode table for the running CPython.

    python3.X opcode_tables/generate.py            # writes opcode_tables/cpython-3.X.txt
    python3.X opcode_tables/generate.py --check    # exit 1 if the checked-in file differs

Everything comes from the interpreter itself (`opcode`, `dis`, `_opcode`, `importlib.util`,
`marshal`): numbers, caches, argument kinds and jump directions are read or *probed* by
disassembling crafted code objects, and stack effects are fitted to `dis.stack_effect`.
The few facts no module exposes (which ops never fall through) are listed here, by name,
and filtered by what the interpreter actually has. Free-threaded builds (3.13t, 3.14t) share
their base version's bytecode, magic number and cache tag, so they share its table.
"""

import dis
import importlib.util
import marshal
import opcode
import os
import sys
import sysconfig

# Control flow no metadata module states: unconditional jumps and ops that end a block.
UNCONDITIONAL_JUMPS = {"JUMP_FORWARD", "JUMP_ABSOLUTE", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT"}
NO_FALLTHROUGH = {"RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE"}
# 3.10 block-stack setup ops: their "jump" is the handler, entered only by an exception.
BLOCK_SETUP = {"SETUP_FINALLY", "SETUP_WITH", "SETUP_ASYNC_WITH"}

HERE = os.path.dirname(os.path.abspath(__file__))


def real_opcodes():
    """opmap without pseudo (>= 256) and instrumented ops."""
    return sorted(
        (code, name)
        for name, code in opcode.opmap.items()
        if code < 256 and not name.startswith("INSTRUMENTED_")
    )


def cache_count(name, code):
    entries = getattr(opcode, "_inline_cache_entries", None)
    if entries is None:
        return 0
    if isinstance(entries, (list, tuple)):
        return entries[code]
    return entries.get(name, 0)


def has_arg(code):
    if hasattr(dis, "hasarg"):
        return code in dis.hasarg
    return code >= opcode.HAVE_ARGUMENT


def jump_ops():
    ops = set(dis.hasjrel) | set(dis.hasjabs)
    ops |= set(getattr(dis, "hasjump", ()))
    return ops


# A code object to graft crafted bytes onto, with names, consts and locals to resolve against.
def _template():
    src = "def f(" + ", ".join(f"v{i}" for i in range(40)) + "):\n"
    src += "".join(f"    c{i} = 0\n" for i in range(4))
    src += "    def g():\n        return " + " + ".join(f"c{i}" for i in range(4)) + "\n"
    src += "    return g\n"
    ns = {}
    exec(compile(src, "<probe>", "exec"), ns)
    code = ns["f"].__code__
    return code.replace(co_names=tuple(f"n{i}" for i in range(64)),
                        co_consts=tuple(f"k{i}" for i in range(64)))


TEMPLATE = _template()
NOP = opcode.opmap["NOP"]


def probe(code, arg, lead_nops=4, trail_nops=8):
    """Disassemble `code arg` placed after `lead_nops` NOPs; return its dis.Instruction."""
    name = opcode.opname[code]
    caches = cache_count(name, code)
    raw = bytes([NOP, 0]) * lead_nops + bytes([code, arg]) + bytes(2 * caches)
    raw += bytes([NOP, 0]) * trail_nops
    fake = TEMPLATE.replace(co_code=raw, co_linetable=b"", **_empty_exc())
    try:
        for ins in dis.get_instructions(fake):
            if ins.offset == 2 * lead_nops:
                return ins, 2 * lead_nops + 2 + 2 * caches
    except Exception:
        return None, None
    return None, None


def _empty_exc():
    return {"co_exceptiontable": b""} if sys.version_info >= (3, 11) else {}


def jump_direction(code):
    ins, next_offset = probe(code, 2)
    if ins is None:
        return "?"
    target = getattr(ins, "jump_target", None)
    if target is None:
        target = ins.argval
    if target == next_offset + 4:
        return "fwd"
    if target == next_offset - 4:
        return "back"
    if target == 4:
        return "abs"
    raise SystemExit(f"cannot classify jump {opcode.opname[code]}: target {target}, next {next_offset}")


def name_shift(code):
    for arg in (12, 40):
        ins, _ = probe(code, arg)
        if ins is None or not isinstance(ins.argval, str):
            continue
        index = int(ins.argval[1:])
        for shift in range(4):
            if arg >> shift == index:
                return shift
    raise SystemExit(f"cannot find the name index shift of {opcode.opname[code]}")


def local_form(code):
    """'one' for a single local index, 'pair' for the 3.13+ a<<4|b superinstructions."""
    ins, _ = probe(code, 0x12)
    if ins is not None and isinstance(ins.argval, tuple):
        return "pair"
    return "one"


def compare_shift(code):
    ops = dis.cmp_op
    for shift in range(6):
        if all(
            probe(code, a << shift)[0] is not None and probe(code, a << shift)[0].argval == ops[a]
            for a in range(len(ops))
        ):
            return shift
    raise SystemExit(f"cannot find the compare shift of {opcode.opname[code]}")


def effect(code, arg, jump):
    try:
        if arg is None:
            return dis.stack_effect(code, jump=jump)
        return dis.stack_effect(code, arg, jump=jump)
    except ValueError:
        return None


HIGH_SAMPLES = [256 * k + low for k in (1, 2, 3, 7, 255, 256, 4095, 65535) for low in (0, 1, 2, 3, 7, 0x81, 0xFF)]


def fit_stack(code, jump):
    """Fit dis.stack_effect to  c + sum(w[i] * bit_i(arg & 0xff)) + h * (arg >> 8).

    That one shape covers constants, 'n - arg' (BUILD_*), flag bits (MAKE_FUNCTION,
    FORMAT_VALUE, LOAD_GLOBAL) and UNPACK_EX's two bytes; anything else is tabulated.
    """
    if not has_arg(code):
        e = effect(code, None, jump)
        return "invalid" if e is None else str(e)
    values = {a: effect(code, a, jump) for a in list(range(256)) + HIGH_SAMPLES}
    valid = {a: v for a, v in values.items() if v is not None}
    if not valid:
        return "invalid"
    c = values[0]
    weights = [values[1 << i] for i in range(8)]
    high = values[256]
    if c is not None and None not in weights and high is not None:
        weights = [w - c for w in weights]
        high -= c

        def model(a):
            low = a & 0xFF
            return c + sum(w for i, w in enumerate(weights) if low >> i & 1) + high * (a >> 8)

        if all(model(a) == v for a, v in valid.items()):
            if not any(weights) and not high:
                return str(c)
            return f"{c};{','.join(map(str, weights))};{high}"
    # Only small args are meaningful for the rest: tabulate 0..255, run-length coded.
    cells = ["x" if values[a] is None else str(values[a]) for a in range(256)]
    runs = []
    for cell in cells:
        if runs and runs[-1][0] == cell:
            runs[-1][1] += 1
        else:
            runs.append([cell, 1])
    return "table:" + ",".join(v if n == 1 else f"{v}*{n}" for v, n in runs)


def generate():
    major, minor = sys.version_info[:2]
    jumps = jump_ops()
    lines = [
        f"# CPython {major}.{minor} opcode table for frontrun.",
        f"# Generated by opcode_tables/generate.py under {sys.version.split()[0]}; do not edit.",
        "# op NAME CODE caches=N arg=KIND[:DETAIL] jump=DIR flow=KIND stack=NOJUMP/JUMP",
        "# stack: c, or 'c;w0..w7;h' = c + sum(w_i * bit_i(arg & 0xff)) + h * (arg >> 8), or table:v*run,.. (args 0..255, x = invalid)",
        f"version {major}.{minor}",
        f"magic {int.from_bytes(importlib.util.MAGIC_NUMBER[:2], 'little')}",
        f"marshal_version {marshal.version}",
        f"extended_arg {opcode.EXTENDED_ARG}",
        f"have_argument {opcode.HAVE_ARGUMENT}",
        f"cache_tag {sys.implementation.cache_tag}",
        f"location_table {'pep657' if (major, minor) >= (3, 11) else 'linetable310'}",
        f"exception_table {'yes' if (major, minor) >= (3, 11) else 'no'}",
        f"deref_index {'localsplus' if (major, minor) >= (3, 11) else 'cells_then_frees'}",
    ]
    for code, name in real_opcodes():
        arg_kind = "none"
        if has_arg(code):
            arg_kind = "other"
            if code in jumps:
                arg_kind = "jump"
            elif code in dis.hasconst:
                arg_kind = "const"
            elif code in dis.hasname:
                arg_kind = f"name:{name_shift(code)}"
            # 3.14's dis lists LOAD_DEREF under haslocal; its argument is a cell or free
            # variable's slot as before, and is read as one.
            elif code in dis.hasfree or name == "LOAD_DEREF":
                arg_kind = "free"
            elif code in dis.haslocal:
                arg_kind = f"local:{local_form(code)}"
            elif code in dis.hascompare:
                arg_kind = f"compare:{compare_shift(code)}"
        jump = jump_direction(code) if code in jumps else "-"
        if name in NO_FALLTHROUGH:
            flow = "end"
        elif name in UNCONDITIONAL_JUMPS:
            flow = "goto"
        elif name in BLOCK_SETUP and code in jumps:
            flow = "setup"
        elif code in jumps:
            flow = "branch"
        else:
            flow = "-"
        stack = f"{fit_stack(code, False)}/{fit_stack(code, True)}"
        lines.append(
            f"op {name} {code} caches={cache_count(name, code)} arg={arg_kind} jump={jump} flow={flow} stack={stack}"
        )
    return "\n".join(lines) + "\n"


def main():
    major, minor = sys.version_info[:2]
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        print("note: free-threaded build; its table is the default build's", file=sys.stderr)
    path = os.path.join(HERE, f"cpython-{major}.{minor}.txt")
    text = generate()
    if "--check" in sys.argv:
        with open(path) as f:
            old = f.read()
        # The interpreter's patch version is informational only.
        strip = lambda t: [l for l in t.splitlines() if not l.startswith("# Generated")]
        if strip(old) != strip(text):
            import difflib
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True), path, "regenerated"))
            sys.exit(1)
        print(f"{path}: up to date")
        return
    with open(path, "w") as f:
        f.write(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
