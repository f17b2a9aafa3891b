"""The contract of rewrite_code / rewrite_report, and the per-version facts the rewriter relies
on, checked against the running interpreter."""

import builtins
import dis
import gc
import marshal
import os
import sys
import sysconfig
import textwrap
import types

import pytest

from frontrun import _native

VERSION = sys.version_info[:2]


def compile_source(source, name="<api-test>"):
    return compile(textwrap.dedent(source), name, "exec", dont_inherit=True)


def nested(code, name):
    for c in code.co_consts:
        if isinstance(c, types.CodeType) and c.co_name == name:
            return c
    raise LookupError(name)


def test_module_attributes():
    assert isinstance(_native.REWRITER_VERSION, int) and _native.REWRITER_VERSION >= 1
    assert issubclass(_native.UnsupportedVersion, ValueError)
    # Importing the module installs what rewritten code loads.
    assert builtins.__frontrun_on__ is False
    assert builtins.__frontrun_report__ is _native.report


def test_recording_is_part_of_the_rewrite_api():
    from frontrun.rewrite import Event, recording, rewrite_code

    ns = {}
    exec(rewrite_code(compile_source("def f(o):\n    o.x = len(o.items)\n"), "shared"), ns)
    o = types.SimpleNamespace(items=[1])
    with recording() as events:
        ns["f"](o)
    assert all(isinstance(e, Event) for e in events)
    assert [(e.kind, e.key) for e in events if e.obj is o] == [("attr_load", "items"), ("attr_store", "x")]
    assert [e.line for e in events if e.obj is o] == [2, 2]


@pytest.mark.parametrize("policy", ["resources", "shared", "all"])
def test_unselected_code_is_the_same_object(policy):
    code = compile_source(
        """
        def f(a, b):
            c = (a, b)
            return c
        """
    )
    f = nested(code, "f")
    assert _native.rewrite_code(f, policy, ()) is f
    if policy == "resources":
        # The module body stores the function (a name op, selected only by `all`).
        assert _native.rewrite_code(code, policy, ()) is code


def test_parent_is_rebuilt_only_for_changed_children():
    code = compile_source(
        """
        def plain(a):
            return a

        def touch(o):
            return o.attr
        """
    )
    new = _native.rewrite_code(code, "resources", ())
    assert new is code
    new = _native.rewrite_code(code, "shared", ())
    assert new is not code
    assert nested(new, "plain") is nested(code, "plain")
    assert nested(new, "touch") is not nested(code, "touch")
    # Only the changed child differs; the module body itself has no shared-policy site.
    assert new.co_code == code.co_code


def test_rewriting_twice_changes_nothing():
    code = compile_source("def f(o):\n    o.x = o.y\n")
    once = _native.rewrite_code(code, "all", ())
    assert _native.rewrite_code(once, "all", ()) is once


def test_errors():
    with pytest.raises(TypeError):
        _native.rewrite_code("not code", "shared", ())
    code = compile_source("def f(o):\n    return o.x\n")
    with pytest.raises(ValueError, match="policy"):
        _native.rewrite_code(code, "everything", ())
    f = nested(code, "f")
    # Only malformations CPython itself can hold: a dangling EXTENDED_ARG, a bad exception table.
    bad = f.replace(co_code=f.co_code + bytes([dis.opmap["EXTENDED_ARG"], 0]))
    with pytest.raises(ValueError, match="f"):
        _native.rewrite_code(bad, "shared", ())
    if VERSION >= (3, 11):
        with pytest.raises(ValueError, match="exception table"):
            _native.rewrite_code(f.replace(co_exceptiontable=b"\x00\x01"), "shared", ())


def test_rewritten_code_marshals_and_runs():
    code = compile_source(
        """
        class O:
            pass

        def f(o, d):
            o.x = d["k"]
            return o.x, d.get("k")
        """
    )
    new = _native.rewrite_code(code, "all", ())
    loaded = marshal.loads(marshal.dumps(new))
    ns = {}
    exec(loaded, ns)
    assert ns["f"](ns["O"](), {"k": 3}) == (3, 3)


def test_injected_names_and_constants():
    code = compile_source("def f(o):\n    return o.x\n")
    f = _native.rewrite_code(nested(code, "f"), "shared", ())
    assert f.co_names[-2:] == ("__frontrun_on__", "__frontrun_report__")
    sites = [c for c in f.co_consts if isinstance(c, tuple)]
    assert sites == [(1, 2, "x")]


def test_rewrite_report():
    code = compile_source(
        """
        import heapq

        def f(o, h):
            o.items.append(1)
            heapq.heappush(h, o.x)
        """,
        name="m.py",
    )
    new, sites, before, after = _native.rewrite_report(code, "shared", ())
    assert isinstance(new, types.CodeType)
    assert (5, "attr_load", "f: items") in sites
    assert (5, "call", "f: append") in sites
    assert (6, "builtin_call", "f: heappush") in sites
    assert (6, "attr_load", "f: x") in sites
    assert all(isinstance(line, int) and isinstance(kind, str) for line, kind, _ in sites)
    assert "Disassembly of f" in before and "Disassembly of f" in after
    assert "+" not in "".join(line[:1] for line in before.splitlines())
    marked = [line for line in after.splitlines() if line.startswith("+ ")]

    def opname(line):
        return next(w for w in line[2:].split() if w.isupper() and not w.endswith(":"))

    # Injected: the guard and report sequences, stashes, and the region's instrumented copy of
    # original instructions (ending in a jump past the untouched original, or back to it).
    original_ops = {opname(line) for line in before.splitlines() if line[:2] == "  " and "Disassembly" not in line}
    injected_ops = {"COPY", "DUP_TOP", "ROT_N", "ROT_TWO", "LOAD_CONST", "CALL", "PRECALL", "CALL_FUNCTION",
                    "POP_TOP", "SWAP", "NOT_TAKEN", "LOAD_CLOSURE", "LOAD_FAST", "LOAD_GLOBAL",
                    "POP_JUMP_IF_FALSE", "POP_JUMP_FORWARD_IF_FALSE", "JUMP_FORWARD",
                    # 3.14+: guards jump to reports placed after the code, which jump back;
                    # each such block is preceded by an unreachable NOP on its line.
                    "POP_JUMP_IF_TRUE", "JUMP_BACKWARD_NO_INTERRUPT", "NOP"}
    assert marked and {opname(line) for line in marked} <= injected_ops | original_ops
    assert any("__frontrun_on__" in line for line in marked)
    # The original instructions are all there, unmarked.
    original = [line.split()[1:3] for line in before.splitlines() if line[:2] == "  " and "Disassembly" not in line]
    assert len([line for line in after.splitlines() if line.startswith("  ")]) >= len(original)


def test_a_generator_has_a_yield_site_at_each_yield_but_not_in_delegation_or_awaits():
    code = compile_source(
        """
        def swap():
            a, b = 0, 1
            while True:
                yield a
                a, b = b, a

        def delegate():
            yield from swap()

        def pairs():
            x = yield 1
            return x, (yield x)

        def doubled():
            return (i * 2 for i in range(3))

        class Ready:
            def __await__(self):
                return iter(())

        async def wait():
            await Ready()
        """,
        name="m.py",
    )
    _new, sites, _before, _after = _native.rewrite_report(code, "shared", ())
    # (3.10 code objects have no qualified name: `<genexpr>` alone.)
    yields = sorted((line, where.rpartition(".")[2]) for line, kind, where in sites if kind == "yield")
    assert yields == [(5, "swap"), (12, "pairs"), (13, "pairs"), (16, "<genexpr>")]
    _new, sites, _before, _after = _native.rewrite_report(code, "resources", ())
    assert not [s for s in sites if s[1] == "yield"]
    # Rewritten, they still run as before (the yield site is skipped while nothing listens).
    namespace = {}
    exec(_native.rewrite_code(code, "all", ()), namespace)
    g = namespace["swap"]()
    assert [next(g) for _ in range(4)] == [0, 1, 0, 1]
    d = namespace["delegate"]()
    assert [next(d) for _ in range(3)] == [0, 1, 0]
    p = namespace["pairs"]()
    assert (next(p), p.send("ab")) == (1, "ab")
    with pytest.raises(StopIteration) as stopped:
        p.send("c")
    assert stopped.value.value == ("ab", "c")
    assert list(namespace["doubled"]()) == [0, 2, 4]
    coroutine = namespace["wait"]()
    with pytest.raises(StopIteration):
        coroutine.send(None)


def test_positions_of_injected_code_are_the_served_instructions():
    code = compile_source("def f(o):\n    x = 1\n    return o.attr\n")
    f = _native.rewrite_code(nested(code, "f"), "shared", ())
    lines = {line for _, _, line in f.co_lines() if line is not None}
    assert lines == {line for _, _, line in nested(code, "f").co_lines() if line is not None}
    if VERSION >= (3, 11):
        positions = set(f.co_positions())
        original = set(nested(code, "f").co_positions())
        assert positions == original


# --- facts ------------------------------------------------------------------------------


@pytest.mark.skipif(VERSION < (3, 11), reason="BINARY_OP is 3.11+")
def test_binary_op_arguments():
    ops = [name for name, _ in dis._nb_ops]
    assert ops.index("NB_INPLACE_ADD") == 13 and ops.index("NB_INPLACE_XOR") == 25
    assert [sym for _, sym in dis._nb_ops[13:26]] == [
        "+=", "&=", "//=", "<<=", "@=", "*=", "%=", "|=", "**=", ">>=", "-=", "/=", "^="
    ]
    if VERSION >= (3, 14):
        assert ops.index("NB_SUBSCR") == 26


@pytest.mark.skipif(VERSION < (3, 14), reason="LOAD_SPECIAL is 3.14+")
def test_load_special_arguments():
    names = dis._special_method_names
    assert names.index("__enter__") == 0 and names.index("__aenter__") == 2


def test_yield_from_iterable_op():
    """Facts::get_iter_arg_yield_from: 3.15 starts `yield from` with GET_ITER and a nonzero
    argument (a `for` has 0); before, with GET_YIELD_FROM_ITER."""
    code = compile_source("def f(x):\n    for i in x: pass\n    yield from x\n")
    ops = [(i.opname, i.arg) for i in dis.get_instructions(nested(code, "f")) if "ITER" in i.opname]
    if VERSION >= (3, 15):
        assert "GET_YIELD_FROM_ITER" not in dis.opmap
        assert ops[0] == ("GET_ITER", 0) and ops[-1][0] == "GET_ITER" and ops[-1][1] != 0
    else:
        assert ops[0][0] == "GET_ITER" and ops[-1][0] == "GET_YIELD_FROM_ITER"


def test_calling_convention_and_cells():
    code = compile_source("def f():\n    g(1)\n")
    ops = [i.opname for i in dis.get_instructions(nested(code, "f"))]
    if VERSION == (3, 10):
        assert "CALL_FUNCTION" in ops and "COPY" not in dis.opmap and "ROT_N" in dis.opmap
    elif VERSION == (3, 11):
        assert "PRECALL" in ops and "CALL" in ops
    else:
        assert "CALL" in ops and "PRECALL" not in dis.opmap
    # 3.13+: LOAD_CLOSURE is a pseudo-op; cells are pushed with LOAD_FAST on the same index.
    assert ("LOAD_CLOSURE" in dis.opmap and dis.opmap["LOAD_CLOSURE"] < 256) == (VERSION < (3, 13))
    # 3.11/3.12 put the NULL below the callable, 3.13+ above.
    code = compile_source("def f(o):\n    o.m()\n")
    listing = [i for i in dis.get_instructions(nested(code, "f"))]
    if (3, 11) <= VERSION < (3, 13):
        assert any("NULL" in (i.argrepr or "") or i.opname == "LOAD_METHOD" for i in listing)


def test_line_event_after_an_inlined_call():
    """Facts::line_event_after_inlined_call: only 3.12 repeats a line's event at a jump target
    right after a Python call on the same line (so the rewriter puts none of its own there)."""
    ns = {}
    exec(compile_source("def s():\n    return 1\ndef f(c):\n    x = 2 if c else s(); y = 3\n    return x\n"), ns)
    events = []

    def tracer(frame, event, arg):
        if frame.f_code is ns["f"].__code__ and event == "line":
            events.append(frame.f_lineno)
        return tracer

    sys.settrace(tracer)
    try:
        ns["f"](0)
    finally:
        sys.settrace(None)
    assert events == ([4, 4, 5] if VERSION == (3, 12) else [4, 5])


def big_module(functions=200):
    """A module with enough bytecode that helper threads rewrite it."""
    body = "".join(
        f"def f{i}(o, k):\n    o.x{i} = o.items[k] + len(o.seen)\n    return o.y.append(k)\n\n" for i in range(functions)
    )
    return compile_source(body, "<big>")


def test_helper_threads_give_the_same_code(monkeypatch):
    """Helper threads (FRONTRUN_REWRITE_THREADS, default the machine's cores) change how fast a
    module is rewritten, never what comes out."""
    lib = sysconfig.get_paths()["stdlib"]
    modules = [big_module()]
    for name in ("typing.py", "argparse.py", "inspect.py", "dataclasses.py", os.path.join("asyncio", "tasks.py")):
        with open(os.path.join(lib, name), "rb") as f:
            modules.append(compile(f.read(), name, "exec", dont_inherit=True))
    for policy in ("shared", "all"):
        monkeypatch.setenv("FRONTRUN_REWRITE_THREADS", "1")
        alone = [_native.rewrite_code(m, policy, ()) for m in modules]
        monkeypatch.setenv("FRONTRUN_REWRITE_THREADS", "3")
        helped = [_native.rewrite_code(m, policy, ()) for m in modules]
        for a, h, m in zip(alone, helped, modules):
            assert a is not m
            # Code equality covers the bytecode, the tables and every nested code object.
            assert a == h and marshal.loads(marshal.dumps(a)) == marshal.loads(marshal.dumps(h))


def test_errors_on_helper_threads(monkeypatch):
    """A malformed function deep in a large module is reported as with one thread, and the
    rest of the module is not handed out half-rewritten."""
    monkeypatch.setenv("FRONTRUN_REWRITE_THREADS", "3")
    module = big_module()
    f = nested(module, "f7")
    bad = f.replace(co_code=f.co_code + bytes([dis.opmap["EXTENDED_ARG"], 0]))
    consts = tuple(bad if c is f else c for c in module.co_consts)
    with pytest.raises(ValueError, match="f7"):
        _native.rewrite_code(module.replace(co_consts=consts), "shared", ())
    # The same module without the bad function still rewrites.
    assert _native.rewrite_code(module, "shared", ()) is not module


def test_rewrites_from_several_threads_share_the_helpers(monkeypatch):
    """Threads rewriting at once (imports in several threads) share one pool of helpers; each
    gets exactly what it gets alone."""
    import threading

    modules = [big_module(k) for k in (60, 120, 200)]
    monkeypatch.setenv("FRONTRUN_REWRITE_THREADS", "1")
    alone = [_native.rewrite_code(m, "shared", ()) for m in modules]
    monkeypatch.setenv("FRONTRUN_REWRITE_THREADS", "3")
    results = {}

    def work(t):
        results[t] = [_native.rewrite_code(m, "shared", ()) for m in modules * 3]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1, 2, 3]
    for got in results.values():
        assert got == alone * 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_fork_after_rewriting_with_helpers():
    """The helper threads stop before `os.fork()`, so CPython (3.12+) has no extra threads to
    warn about, and the child, which has none of them, rewrites with helpers of its own. (In a
    fresh interpreter: threads other tests leave behind would make their own warning.)"""
    script = textwrap.dedent(
        """
        import os, sys, time, warnings
        sys.path.insert(0, %r)
        from test_rewrite_api import big_module
        from frontrun import _native

        def helpers():
            names = []
            for task in os.listdir("/proc/self/task"):
                with open(f"/proc/self/task/{task}/comm") as f:
                    names.append(f.read().strip())
            return sum(n.startswith("frontrun-rewrit") for n in names)

        def named_helpers():
            # A new thread names itself once it runs, which may be after the rewrite is done.
            deadline = time.monotonic() + 5
            while helpers() < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            return helpers()

        os.environ["FRONTRUN_REWRITE_THREADS"] = "3"
        module = big_module()
        expected = _native.rewrite_code(module, "shared", ())
        assert named_helpers() == 2
        warnings.simplefilter("error")
        pid = os.fork()
        if pid == 0:
            same = _native.rewrite_code(module, "shared", ()) == expected
            os._exit(0 if same and named_helpers() == 2 else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert helpers() == 0
        assert _native.rewrite_code(module, "shared", ()) == expected
        assert named_helpers() == 2
        print("ok")
        """
        % os.path.dirname(__file__)
    )
    import subprocess

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_rewritten_code_runs_in_a_subinterpreter():
    """A new interpreter (`concurrent.interpreters`, `InterpreterPoolExecutor`) cannot import
    the extension; it gets stand-ins for the two builtins, so rewritten code runs there too."""
    subinterpreters = pytest.importorskip("_interpreters" if sys.version_info >= (3, 13) else "_xxsubinterpreters")
    source = "class O:\n    pass\no = O()\no.x = [1]\no.x.append(2)\nassert o.x == [1, 2]\n"
    code = _native.rewrite_code(compile(source, "<sub>", "exec"), "all", ())
    assert _native.GUARD_NAME in code.co_names
    interp = subinterpreters.create()
    try:
        if sys.version_info >= (3, 13):
            assert subinterpreters.exec(interp, code) is None
        else:
            blob = marshal.dumps(code)
            subinterpreters.run_string(interp, f"import marshal\nexec(marshal.loads({blob!r}))")
    finally:
        subinterpreters.destroy(interp)


def test_the_collector_waits_while_a_module_is_rebuilt_and_is_left_as_it_was():
    # A module's rebuild makes many tuples and code objects: no collection starts midway.
    from frontrun.rewrite import rewrite_code

    source = "\n".join(f"def f{i}(o):\n    o.a = o.b + [{i}]\n    return o.c[{i}]\n" for i in range(200))
    code = compile(source, "<collector>", "exec")
    rewrite_code(code, "shared")  # the first rewrite of a process sets up its tables
    collections = []
    callback = lambda phase, info: collections.append(phase)  # noqa: E731
    threshold = gc.get_threshold()
    gc.set_threshold(1)
    gc.callbacks.append(callback)
    try:
        rewrite_code(code, "shared")
        during = len(collections)
    finally:
        gc.callbacks.remove(callback)
        gc.set_threshold(*threshold)
    # Up to 3.11 a collection starts at an allocation: 200 functions rebuilt set off hundreds
    # (762 before the pause). From 3.12 it waits for the next bytecode boundary anyway.
    assert during <= 4, during
    assert gc.isenabled()
    gc.disable()
    try:
        rewrite_code(code, "shared")
        assert not gc.isenabled()  # a caller's gc.disable() stands
    finally:
        gc.enable()


def test_rewritten_code_runs_in_an_interpreter_that_never_imported_frontrun(tmp_path):
    # Code shipped by value (marshal; cloudpickle, as joblib's and dask's workers take a
    # function of __main__) to a new interpreter: its guard found no `__frontrun_on__` there
    # and raised NameError. The installed frontrun.pth defines it, off, at start-up.
    import subprocess

    code = _native.rewrite_code(compile_source("def f(o):\n    return o.x + 1\n"), "all", ())
    assert "__frontrun_on__" in nested(code, "f").co_names
    payload = tmp_path / "code.bin"
    payload.write_bytes(marshal.dumps(code))
    script = (f"import marshal, sys, types\nns = {{}}\nexec(marshal.loads(open({str(payload)!r}, 'rb').read()), ns)\n"
              "print(ns['f'](types.SimpleNamespace(x=41)), 'frontrun' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["42", "False"], done.stderr
