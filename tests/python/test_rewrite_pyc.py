"""``rewrite_pyc_report``: rewriting a pyc made by another interpreter version, over the native
marshal layer and that version's opcode table.

For every interpreter we can find (``~/.cache/frontrun/pythons.txt``, ``python3.X`` on PATH):
compile a fixture with it, rewrite the pyc *here* (whatever version runs the tests), then run the
result back in that interpreter, with the guard off and with a Python stand-in for the report
native, and compare its output with the plain program's.
"""

from __future__ import annotations

import json
import marshal
import os
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from frontrun import _native

VERSIONS = [(3, minor) for minor in range(10, 16)]

FIXTURE = textwrap.dedent(
    """
    import asyncio
    import threading


    class Account:
        def __init__(self):
            self.balance = 0
            self.history = []
            self.lock = threading.Lock()

        def deposit(self, n):
            with self.lock:
                self.balance += n
                self.history.append(n)
            self.lock.acquire()
            try:
                self.history += [n * 2]
            finally:
                self.lock.release()


    def counter():
        n = 0

        def bump(k=1):
            nonlocal n
            n += k
            return n

        return bump


    def gen(items):
        for i, x in enumerate(items):
            if x in (2, 4):
                yield x * i
        yield from sorted(items)


    async def work(acc):
        await asyncio.sleep(0)
        acc.deposit(len(acc.history))
        return [h async for h in agen(acc.history)]


    async def agen(items):
        for x in items:
            yield x


    acc = Account()
    threads = [threading.Thread(target=acc.deposit, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bump = counter()
    bump(); bump(5)
    table = {k: v for k, v in zip("abc", range(3))}
    try:
        table["zz"]
    except KeyError as e:
        print("missing", e)
    print(acc.balance, sorted(acc.history), bump(), list(gen([1, 2, 3, 4])), table, max(table.values()))
    # (Sorted: the threads' history is in the order they took the lock.)
    print(sorted(asyncio.run(work(acc)))[-3:], "b" in table, sum(len(k) for k in table))
    """
)

# Runs a pyc in the interpreter that made it: the report names are Python stand-ins, so no
# frontrun is needed there. Prints the program's output, then a JSON line about the reports.
RUN_PYC = r"""
import builtins, json, marshal, sys
path, mode = sys.argv[1], sys.argv[2]
reports = []
builtins.__frontrun_on__ = mode == "on"

def stand_in(*a):
    reports.append(a[-1])
    return a[0]  # as the native: an `iter` site's loop runs on the result


builtins.__frontrun_report__ = stand_in
with open(path, "rb") as f:
    code = marshal.loads(f.read()[16:])

def names(c):
    out = set(c.co_names)
    for k in c.co_consts:
        if hasattr(k, "co_code"):
            out |= names(k)
    return out

exec(code, {"__name__": "__main__"})
kinds = sorted({r[0] for r in reports})
print(json.dumps({"reports": len(reports), "kinds": kinds,
                  "guarded": "__frontrun_on__" in names(code) and "__frontrun_report__" in names(code)}))
"""

COMPILE = r"""
import py_compile, sys
py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True,
                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
"""


def _version_of(exe):
    try:
        out = subprocess.run([exe, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                             text=True, timeout=60)
    except OSError:
        return None
    return tuple(map(int, out.stdout.split())) if out.returncode == 0 else None


def find_interpreter(version):
    """An interpreter of ``version`` (checked), or None."""
    candidates = []
    listing = Path.home() / ".cache" / "frontrun" / "pythons.txt"
    if listing.exists():
        for line in listing.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "%d.%d" % version:
                candidates.append(parts[1])
    found = shutil.which("python%d.%d" % version)
    if found:
        candidates.append(found)
    if sys.version_info[:2] == version:
        candidates.insert(0, sys.executable)
    for exe in candidates:
        if _version_of(exe) == version:
            return exe
    return None


def run(exe, *args, cwd=None):
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def compiled_by(version, text, source):
    """``(interpreter, source, pyc)``: ``text`` written to ``source`` and compiled by an
    interpreter of ``version`` (the test is skipped without one)."""
    exe = find_interpreter(version)
    if exe is None:
        pytest.skip("no Python %d.%d found" % version)
    source.write_text(text)
    pyc = source.with_suffix(".pyc")
    run(exe, "-I", "-c", COMPILE, str(source), str(pyc))
    return exe, source, pyc


def code_bytes(code):
    """co_code of a code object and all nested ones, in order."""
    out = [code.co_code]
    for k in code.co_consts:
        if isinstance(k, types.CodeType):
            out += code_bytes(k)
    return out


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: "%d.%d" % v)
def test_pyc_of_another_version_rewritten_here_runs_there(version, tmp_path):
    exe, source, pyc = compiled_by(version, FIXTURE, tmp_path / "fixture.py")
    (tmp_path / "run_pyc.py").write_text(RUN_PYC)
    plain = run(exe, "-I", str(source))
    assert plain.count("\n") == 3  # the fixture ran to the end

    failures_before = len(_native.rewrite_failures())
    for policy in ("shared", "all"):
        new_pyc, sites, before, after = _native.rewrite_pyc_report(pyc.read_bytes(), policy, ())
        assert len(_native.rewrite_failures()) == failures_before, _native.rewrite_failures()
        assert new_pyc[:4] == pyc.read_bytes()[:4]  # that version's magic, header kept
        assert new_pyc[4:16] == pyc.read_bytes()[4:16]
        kinds = {kind for _line, kind, _name in sites}
        assert {"attr_load", "attr_store", "call", "inplace", "with_enter", "iter", "contains", "cell_load",
                "builtin_call"} <= kinds, kinds
        # 3.10 code objects have no qualname: the site says "deposit: acquire".
        assert any(kind == "call" and name.endswith("deposit: acquire") for _line, kind, name in sites), sites
        assert "Disassembly of" in before and "\n+ " in after and "\n+ " not in before
        assert "__frontrun_report__" in after
        out = tmp_path / f"rewritten-{policy}.pyc"
        out.write_bytes(new_pyc)
        for mode in ("off", "on"):
            lines = run(exe, "-I", str(tmp_path / "run_pyc.py"), str(out), mode).splitlines()
            info = json.loads(lines[-1])
            assert "\n".join(lines[:-1]) + "\n" == plain, (policy, mode)
            assert info["guarded"]
            if mode == "off":
                assert info["reports"] == 0
            else:
                assert info["reports"] > 50 and len(info["kinds"]) > 8, info

    if version == sys.version_info[:2]:
        # Same version: the marshal path and the live path make the very same bytecode.
        live = _native.rewrite_code(compile(FIXTURE, str(source), "exec", dont_inherit=True), "shared", ())
        via_pyc = marshal.loads(_native.rewrite_pyc_report(pyc.read_bytes(), "shared", ())[0][16:])
        assert code_bytes(via_pyc) == code_bytes(live)


def test_bad_pycs_are_value_errors():
    with pytest.raises(ValueError):
        _native.rewrite_pyc_report(b"\x00\x01\r\n" + bytes(12) + marshal.dumps(1), "shared", ())
    with pytest.raises(ValueError):
        _native.rewrite_pyc_report(b"short", "shared", ())
    import importlib.util

    header = importlib.util.MAGIC_NUMBER + bytes(12)
    with pytest.raises(ValueError, match="policy"):
        _native.rewrite_pyc_report(header + marshal.dumps(compile("x = 1", "f", "exec")), "bogus", ())
    with pytest.raises(ValueError, match="code object"):
        _native.rewrite_pyc_report(header + marshal.dumps(1), "shared", ())


LISTING_SOURCE = textwrap.dedent(
    '''
    """doc's "quotes"\\n"""
    BIG = 123456789012345678901234567890
    NEG = -98765432109876543210
    FLOATS = (0.1, 1e16, 1e-05, 123.456, -0.0, 2.5e300, 1e300 * 1e300)
    TEXT = ("tab\\there", 'it\\'s', "\\x00\\x7f\\u00e9\\u4e2d", b"\\x00bytes'\\"", (), (1,), 3j, (1-2.5j))
    SEEN = frozenset({"a"})

    def f(a, b=(1, "x"), *args, **kw):
        c = a < b
        d = a >= 2
        if a == 3 or b != 4:
            return [a, b, c, d, args, kw, ...]

        def g():
            nonlocal a
            a = a + 1
            return a, c
        return g
    '''
)

# In the interpreter that made the pyc: each instruction's offset, name and `dis` argrepr.
DIS_ARGREPRS = r"""
import dis, json, marshal, sys
with open(sys.argv[1], "rb") as f:
    code = marshal.loads(f.read()[16:])
out = []
def walk(c):
    for k in c.co_consts:
        if hasattr(k, "co_code"):
            walk(k)
    rows = [(i.offset, i.opname, i.argrepr) for i in dis.get_instructions(c)]
    out.append([getattr(c, "co_qualname", c.co_name), c.co_firstlineno, rows])
walk(code)
print(json.dumps(out))
"""


def listed_arguments(listing):
    """{(qualname, first line): {offset: (opname, what its argument stands for)}} of a listing."""
    found, current = {}, None
    for line in listing.splitlines():
        if line.startswith("Disassembly of "):
            name, first = line[len("Disassembly of "):].rstrip("):").rsplit(" (line ", 1)
            current = found.setdefault((name, int(first)), {})
        elif current is not None and len(line) > 14 and line[8:14].strip().isdigit():
            opname, _, arg = line[15:].partition(" ")
            arg = arg.strip()
            meaning = arg[arg.index("(") + 1:-1] if "(" in arg else None
            current[int(line[8:14])] = (opname, meaning)
    return found


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: "%d.%d" % v)
def test_listing_of_another_version_shows_what_dis_there_shows(version, tmp_path):
    exe, _, pyc = compiled_by(version, LISTING_SOURCE, tmp_path / "consts.py")
    (tmp_path / "dis_argreprs.py").write_text(DIS_ARGREPRS)
    expected = json.loads(run(exe, "-I", str(tmp_path / "dis_argreprs.py"), str(pyc)))
    listed = listed_arguments(_native.rewrite_pyc_report(pyc.read_bytes(), "shared", ())[2])
    compared = set()
    for qualname, first_line, rows in expected:
        ours = listed[(qualname, first_line)]
        for offset, opname, argrepr in rows:
            if not argrepr or argrepr.startswith("<code object") or opname == "EXTENDED_ARG":
                continue
            # dis's own decorations of a name or comparison: the listing shows the bare name/op.
            for prefix in ("NULL|self + ", "NULL + "):
                argrepr = argrepr.removeprefix(prefix)
            if argrepr.startswith("to L"):
                continue  # 3.13+ dis names jump targets by label; the listing gives the offset
            if argrepr.startswith("bool("):
                argrepr = argrepr[5:-1]
            assert ours[offset][0] == opname, (qualname, offset)
            if ours[offset][1] is None:
                continue  # an argument the listing shows as a plain number (counts, flags, ...)
            assert ours[offset][1] == argrepr, (qualname, offset, opname)
            compared.add(argrepr)
    namespace = {}
    exec(LISTING_SOURCE, namespace)
    constants = [repr(namespace[name]) for name in ("BIG", "NEG", "FLOATS", "TEXT")]
    assert set(constants) <= compared, constants
    assert {"d, args" if version >= (3, 13) else "d", "<", ">=", "==", "!=", "c", "BIG", "__doc__"} <= compared
