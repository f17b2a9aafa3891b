"""frontrun.bytecode on the running interpreter: stdlib round trip, agreement with `dis`,
insertion on the fixture programs, and the disassembly snapshots in fixtures/expected/.

Snapshots: set FRONTRUN_UPDATE_EXPECTED=1 to (re)write fixtures/expected/<version>/.
"""

import contextlib
import dis
import glob
import io
import os
import sys
import time
import traceback
import types

import pytest

from frontrun import _native
from frontrun import bytecode

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "fixtures")
VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"


def walk(code):
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from walk(c)


def exception_table(code):
    return getattr(code, "co_exceptiontable", b"")


def test_roundtrip_stdlib(stdlib):
    codes = equal_stack = 0
    start = time.perf_counter()
    rebuilt = [bytecode.reassemble(m) for m in stdlib]
    elapsed = time.perf_counter() - start
    mismatches = []
    for module, again in zip(stdlib, rebuilt):
        for old, new in zip(walk(module), walk(again), strict=True):
            codes += 1
            for attr in ("co_code", "co_linetable", "co_exceptiontable", "co_names", "co_varnames"):
                if getattr(old, attr, None) != getattr(new, attr, None):
                    mismatches.append((old.co_filename, old.co_qualname if hasattr(old, "co_qualname") else old.co_name, attr))
            assert new.co_stacksize >= old.co_stacksize
        # Equal code objects compare equal all the way down (consts recursively).
        if module != again:
            mismatches.append((module.co_filename, "<module>", "code object inequality"))
    for code in (c for m in stdlib for c in walk(m)):
        equal_stack += bytecode.stacksize(code) == code.co_stacksize
    print(
        f"[{VERSION}] round trip: {codes} code objects in {elapsed:.2f}s, "
        f"{codes - len(mismatches)} byte-identical, stack size analysis == co_stacksize for {equal_stack}"
    )
    assert mismatches == []
    # Every difference found so far is explained and matched (see stackdepth.rs); a drop here
    # means a new CPython quirk or a regression.
    assert equal_stack >= codes * 0.999


def test_stacksize_never_below_cpython(stdlib):
    below = [(c.co_filename, c.co_name) for m in stdlib for c in walk(m) if bytecode.stacksize(c) < c.co_stacksize]
    assert below == []


def dis_line_numbers(code):
    """Line of every instruction offset, from co_lines (works on every version)."""
    lines = {}
    for start, end, line in code.co_lines():
        for off in range(start, end, 2):
            lines[off] = line
    return lines


def test_instructions_agree_with_dis(stdlib):
    compared = 0
    for code in (c for m in stdlib for c in walk(m)):
        ours = bytecode.instructions(code)
        theirs = [i for i in dis.get_instructions(code) if i.opname not in ("EXTENDED_ARG", "CACHE")]
        assert len(ours) == len(theirs), code
        lines = dis_line_numbers(code)
        for (offset, opname, arg, argval, target, line), ins in zip(ours, theirs):
            expected_target = getattr(ins, "jump_target", None)
            if expected_target is None and ins.opcode in dis.hasjrel + dis.hasjabs:
                expected_target = ins.argval
            assert (offset, opname, arg, target) == (ins.offset, ins.opname, ins.arg, expected_target), (code, ins)
            assert line == lines.get(offset), (code, ins)
            compared += 1
    print(f"\n[{VERSION}] {compared} instructions agree with dis")


FIXTURE_FILES = sorted(glob.glob(os.path.join(FIXTURES, "*.py")))


def compile_fixture(path):
    with open(path) as f:
        source = f.read()
    try:
        return compile(source, path, "exec", dont_inherit=True)
    except SyntaxError:
        pytest.skip(f"{os.path.basename(path)} needs a newer Python")


def run_module(code):
    """Execute a fixture module and its main(); return everything it printed, including the
    traceback of an exception escaping main()."""
    out = io.StringIO()
    namespace = {"__name__": "fixture_under_test"}
    with contextlib.redirect_stdout(out):
        try:
            exec(code, namespace)
            namespace["main"]()
        except BaseException:
            print(traceback.format_exc())
    return out.getvalue()


def count_instructions(code):
    return sum(len(bytecode.instructions(c)) for c in walk(code))


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=os.path.basename)
def test_insertion_keeps_behaviour(path):
    code = compile_fixture(path)
    rewritten = _native._insert_nops_everywhere(code)
    inserted = count_instructions(rewritten) - count_instructions(code)
    assert inserted > 0 and inserted % 2 == 0
    for old, new in zip(walk(code), walk(rewritten), strict=True):
        # One LOAD_CONST pushes at most one slot more than the original ever held.
        assert old.co_stacksize <= bytecode.stacksize(new) <= old.co_stacksize + 1, new
        assert new.co_stacksize == max(old.co_stacksize, bytecode.stacksize(new))
        # Decoding the rewritten code works and re-encodes to itself.
        assert bytecode.reassemble(new, recursive=False).co_code == new.co_code
        # Inserted code carries the position of the instruction it serves: no new lines or
        # locations appear (tracebacks, coverage and debuggers see the same places).
        assert {line for _, _, line in new.co_lines()} == {line for _, _, line in old.co_lines()}
        if hasattr(old, "co_positions"):
            assert set(new.co_positions()) == set(old.co_positions())
    expected = run_module(code)
    assert run_module(rewritten) == expected
    assert "Traceback" in expected or "caught" in expected or path.endswith(("structures.py", "big_function.py"))


def extended_args(code):
    return sum(i.opname == "EXTENDED_ARG" for c in walk(code) for i in dis.get_instructions(c))


def test_big_function_needs_extended_arg():
    code = compile_fixture(os.path.join(FIXTURES, "big_function.py"))
    big = next(c for c in walk(code) if c.co_name == "big")
    assert any(i.opname == "EXTENDED_ARG" for i in dis.get_instructions(big))
    # Some block_N's jump crosses 255 code units only once the prologues are in.
    assert extended_args(_native._insert_nops_everywhere(code)) > extended_args(code)


def test_insertion_over_stdlib(stdlib):
    """Insertion never fails to encode and adds at most the one slot it pushes."""
    for module in stdlib[::7]:
        rewritten = _native._insert_nops_everywhere(module)
        for old, new in zip(walk(module), walk(rewritten), strict=True):
            assert old.co_stacksize <= new.co_stacksize <= old.co_stacksize + 1


SNAPSHOT_FUNCTIONS = {
    "gen_async.py": ["countdown", "delegate", "coro", "__anext__"],
    "exceptions.py": ["finally_return", "loop_control", "with_blocks"],
    "except_star.py": ["groups"],
    "structures.py": ["describe", "inc", "data_ops", "area"],
}


@pytest.mark.parametrize("name", sorted(SNAPSHOT_FUNCTIONS))
def test_disassembly_snapshots(name):
    code = compile_fixture(os.path.join(FIXTURES, name))
    wanted = SNAPSHOT_FUNCTIONS[name]
    found = {c.co_name: c for c in walk(code) if c.co_name in wanted}
    text = "".join(f"== {fn}\n{bytecode.disassemble(found[fn])}\n" for fn in wanted)
    expected_path = os.path.join(FIXTURES, "expected", VERSION, name.replace(".py", ".txt"))
    if os.environ.get("FRONTRUN_UPDATE_EXPECTED"):
        os.makedirs(os.path.dirname(expected_path), exist_ok=True)
        with open(expected_path, "w") as f:
            f.write(text)
    if not os.path.exists(expected_path):
        pytest.skip(f"no snapshot for {VERSION} (run with FRONTRUN_UPDATE_EXPECTED=1)")
    with open(expected_path) as f:
        assert text == f.read()


def test_disassembly_shows_labels_and_exception_table():
    def f(x):
        try:
            return x.a
        except AttributeError:
            return None

    text = bytecode.disassemble(f.__code__)
    assert "LOAD_ATTR" in text and "(a)" in text
    if sys.version_info >= (3, 11):
        assert "ExceptionTable:" in text and " -> L" in text
    else:
        assert "SETUP_FINALLY" in text and "(to L" in text


def test_instructions_fold_extended_arg():
    code = compile_fixture(os.path.join(FIXTURES, "big_function.py"))
    big = next(c for c in walk(code) if c.co_name == "big")
    ours = bytecode.instructions(big)
    assert all(op != "EXTENDED_ARG" for _, op, *_ in ours)
    assert any(arg is not None and arg > 255 for _, _, arg, *_ in ours)


def test_malformed_code_is_a_value_error():
    def f():
        return 1

    code = f.__code__
    if sys.version_info >= (3, 11):
        # (3.11+ de-specialises co_code on read, so an unknown opcode cannot be planted here;
        # the Rust tests cover that error.)
        broken = code.replace(co_exceptiontable=b"\x80\x01")
        with pytest.raises(ValueError, match="exception table"):
            bytecode.disassemble(broken)
        broken = code.replace(co_exceptiontable=b"\x80\x01\x3f\x00")
        with pytest.raises(ValueError, match="exception entry 0"):
            bytecode.reassemble(broken)
    else:
        bad_opcode = next(op for op in range(1, 256) if dis.opname[op].startswith("<"))
        broken = code.replace(co_code=bytes([bad_opcode, 0]) + code.co_code[2:])
        with pytest.raises(ValueError, match="unknown opcode"):
            bytecode.reassemble(broken)
