"""Rewritten code is indistinguishable to tools that watch it: tracebacks (lines and PEP 657
columns), sys.settrace line events, and coverage's line coverage match the original, with the
report guard off and on."""

import ast
import contextlib
import glob
import io
import os
import sys
import textwrap
import threading
import traceback

import pytest

from frontrun import _native
from frontrun._recording import recording

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Fixtures that run quickly in-process and do not start threads the tracer would miss.
FIXTURES = [
    f
    for f in sorted(glob.glob(os.path.join(ROOT, "fixtures", "*.py")))
    if os.path.basename(f) not in ("rw_threads.py",)
]


def compiled(path):
    with open(path, "rb") as f:
        source = f.read()
    try:
        return compile(source, path, "exec", dont_inherit=True)
    except SyntaxError:
        pytest.skip(f"{os.path.basename(path)} is not Python {sys.version_info[0]}.{sys.version_info[1]}")


def run_module(code, path):
    namespace = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()):
        try:
            exec(code, namespace)
        except SystemExit:
            pass
    return out.getvalue()


GUARDS = {"off": contextlib.nullcontext, "recording": recording}


@pytest.mark.parametrize("guard", GUARDS)
def test_traceback_lines_and_columns(guard):
    source = textwrap.dedent(
        """
        class O:
            def __init__(self):
                self.a = self
                self.items = []

        def attr_chain(o):
            return o.a.a.missing.b

        def in_arguments(o):
            o.items.append(
                1 / len(o.items))

        def in_call(o):
            o.items.pop()

        def subscript(d):
            return d["a"]["b"]
        """
    )
    code = compile(source, "<tb>", "exec", dont_inherit=True)
    plain, rewritten = {}, {}
    exec(code, plain)
    exec(_native.rewrite_code(code, "all", ()), rewritten)

    def failure(ns, name, arg):
        try:
            ns[name](arg)
        except Exception:
            return traceback.format_exc()
        raise AssertionError("no exception")

    with GUARDS[guard]():
        for name, arg in [("attr_chain", None), ("in_arguments", None), ("in_call", None), ("subscript", {"a": {}})]:
            a = failure(plain, name, arg if arg is not None else plain["O"]())
            b = failure(rewritten, name, arg if arg is not None else rewritten["O"]())
            assert a == b


def trace(code, path):
    events = []

    def tracer(frame, event, arg):
        if frame.f_code.co_filename != path:
            return None
        events.append((frame.f_code.co_name, event, frame.f_lineno))
        return tracer

    sys.settrace(tracer)
    threading.settrace(tracer)
    try:
        output = run_module(code, path)
    finally:
        sys.settrace(None)
        threading.settrace(None)
    return events, output


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("fixture", FIXTURES, ids=os.path.basename)
def test_settrace_events_unchanged(fixture, guard):
    code = compiled(fixture)
    plain_events, plain_out = trace(code, fixture)
    new = _native.rewrite_code(code, "all", ())
    with GUARDS[guard]():
        events, out = trace(new, fixture)
    assert out == plain_out
    assert events == plain_events


RESUMED_SOURCE = textwrap.dedent(
    """
    class O:
        n = 0

    def gen(o):
        while True:
            try:
                x = yield o.n
            except ValueError:
                pass
            else:
                o.n = x

    def plain_yield(o):
        got = yield o.n
        o.n = got

    g = gen(O())
    next(g)
    g.send(1)
    g.throw(ValueError)
    g.send(2)
    h = plain_yield(O())
    next(h)
    try:
        h.send(3)
    except StopIteration:
        pass
    print(g.send(4))
    g.close()  # here, not when a later collection finds it (in another traced run)
    """
)


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("policy", ["shared", "all"])
def test_a_generator_resumed_at_a_yield_traces_as_the_original(policy, guard):
    # 3.12+ fires a line event at a line start right after RESUME even on the same line: the
    # untouched copy of a region ending at the yield's RESUME made the rewritten generator
    # trace its yield line twice when resumed (coverage arcs, pdb stepping).
    code = compile(RESUMED_SOURCE, "<resumed>", "exec")
    plain_events, plain_out = trace(code, "<resumed>")
    new = _native.rewrite_code(code, policy, ())
    with GUARDS[guard]():
        events, out = trace(new, "<resumed>")
    assert out == plain_out == "4\n"
    assert events == plain_events


JUMP_SOURCE = textwrap.dedent(
    """
    import contextlib

    class O:
        def __init__(self):
            self.x = 0
            self.items = [0]
            self.ctx = contextlib.nullcontext()

    def lines(output, o):
        output.append(1)
        o.x = len(
            output)
        output.append(o.x)
        for i in [1, 2]:
            output.append(
                i)
            o.items.append(i)
        output.append(o.items[-1])

    def deep(output, o):
        # Lines whose reports come after operands are pushed (`total > 5`), jumped to from
        # inside a `with`, a `for` and an `except`, whose stack entries such a report's
        # out-of-line code (3.14+) must not take for its operands.
        total = 7
        with o.ctx:
            total += len(output)
        if total > 5:
            output.append(total)
        for i in [1, 2]:
            total += i
        total += i + o.items[0]
        try:
            output.append(o.missing)
        except AttributeError:
            output.append(total)
        output.append(total > 5)

    def blocks(output, o):
        try:
            output.append(o.x)
            with o.ctx:
                output.append(2)
                o.items.append(
                    o.x)
        except AttributeError:
            output.append(5)
        finally:
            output.append(6)
        while o.x < 2:
            o.x += 1
            output.append(o.x)
        # Last: on 3.10 a jump from after a comprehension call finds a loop block that
        # was never opened (its GET_ITER) and pops a value that is not there.
        output.append([x.bit_length()
                       for x in output
                       if x])
    """
)


def jumped(fn, new_class, from_line, to_line):
    """Runs `fn`, jumping once from `from_line` to `to_line` (as a debugger's `jump` does)."""
    output, said = [], []

    def tracer(frame, event, arg):
        if frame.f_code is not fn.__code__:
            return None
        if event == "line" and frame.f_lineno == from_line and not said:
            try:
                frame.f_lineno = to_line
                said.append("jumped")
            except ValueError as e:
                said.append(str(e))
        return tracer

    sys.settrace(tracer)
    try:
        fn(output, new_class())
    except Exception as e:
        output.append(type(e).__name__)
    finally:
        sys.settrace(None)
    return output, said


@pytest.mark.parametrize("guard", GUARDS)
def test_debugger_jumps_unchanged(guard):
    """`frame.f_lineno = n` from every line to every line: the same outcome, refusal included.
    CPython jumps to the start of line n with the deepest stack that fits, so a line must not
    seem to start again mid-way (where a rewritten region's untouched copy begins)."""
    code = compile(JUMP_SOURCE, "<jumps>", "exec")
    plain, rewritten = {}, {}
    exec(code, plain)
    exec(_native.rewrite_code(code, "all", ()), rewritten)
    # Statement lines only: a jump into a continuation line can crash CPython 3.10 itself.
    statements = {node.name: sorted({s.lineno for s in ast.walk(node) if isinstance(s, ast.stmt)} - {node.lineno})
                  for node in ast.parse(JUMP_SOURCE).body if isinstance(node, ast.FunctionDef)}
    compared = 0
    for name in ("lines", "blocks", "deep"):
        body = statements[name]
        assert rewritten[name].__code__.co_code != plain[name].__code__.co_code
        for from_line in body:
            for to_line in body:
                expected = jumped(plain[name], plain["O"], from_line, to_line)
                with GUARDS[guard]():
                    got = jumped(rewritten[name], rewritten["O"], from_line, to_line)
                assert got == expected, (name, from_line, to_line)
                compared += expected[1] == ["jumped"]
    assert compared > 50


def measured(code, path, core, branch=False):
    """A coverage.py run of the module `code` with the given core; the stopped Coverage."""
    import coverage

    old = os.environ.get("COVERAGE_CORE")
    os.environ["COVERAGE_CORE"] = core
    try:
        cov = coverage.Coverage(data_file=None, include=[path], config_file=False, branch=branch)
    finally:
        if old is None:
            os.environ.pop("COVERAGE_CORE")
        else:
            os.environ["COVERAGE_CORE"] = old
    cov.start()
    try:
        run_module(code, path)
    finally:
        cov.stop()
    return cov


def covered_lines(code, path, core):
    return sorted(measured(code, path, core).get_data().lines(path) or [])


CORES = ["ctrace"] + (["sysmon"] if sys.version_info >= (3, 12) else [])


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("fixture", FIXTURES, ids=os.path.basename)
def test_coverage_lines_unchanged(fixture, core):
    pytest.importorskip("coverage")
    code = compiled(fixture)
    plain = covered_lines(code, fixture, core)
    assert plain
    new = _native.rewrite_code(code, "all", ())
    assert covered_lines(new, fixture, core) == plain
    with recording():
        assert covered_lines(new, fixture, core) == plain


def branch_report(code, path, core):
    analysis = measured(code, path, core, branch=True)._analyze(path)
    return sorted(analysis.missing), sorted(analysis.missing_branch_arcs().items()), analysis.numbers.n_branches


# sys.monitoring measures branches from 3.14 (BRANCH_LEFT/RIGHT); before, coverage falls back.
BRANCH_CORES = ["ctrace"] + (["sysmon"] if sys.version_info >= (3, 14) else [])


@pytest.mark.parametrize("core", BRANCH_CORES)
@pytest.mark.parametrize("fixture", FIXTURES, ids=os.path.basename)
def test_branch_coverage_report_unchanged(fixture, core):
    """Branch coverage reports the same missing lines and branches. (Under sysmon a guard's own
    branch event can add an arc between consecutive lines of one block; a line with one exit is
    not a branch, so the report does not change.)"""
    pytest.importorskip("coverage")
    code = compiled(fixture)
    plain = branch_report(code, fixture, core)
    new = _native.rewrite_code(code, "all", ())
    assert branch_report(new, fixture, core) == plain
    with recording():
        assert branch_report(new, fixture, core) == plain



RAISING = textwrap.dedent(
    """
    def subscript(d):
        x = d["k"]
        return x

    def attribute(o):
        y = o.missing
        return y

    def check_all(values):
        errors = []
        for k, v in enumerate(values):
            if v < 0:
                errors.append(k)
        if errors:
            raise ValueError(errors)
        return sum(values)

    for fn, arg in ((subscript, {}), (attribute, object()), (check_all, [-1])):
        try:
            fn(arg)
        except Exception:
            pass
    """
)


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("policy", ["shared", "all"])
@pytest.mark.parametrize("core", BRANCH_CORES)
def test_a_line_that_raises_after_a_guard_adds_no_arc(tmp_path, core, policy, guard):
    # Under sys.monitoring (3.14+), coverage.py turns a taken jump into an arc to the line it
    # expects next: a guard taken on a line that then raised marked the next line as run.
    pytest.importorskip("coverage")
    path = str(tmp_path / "raising.py")
    with open(path, "w") as f:
        f.write(RAISING)
    code = compile(RAISING, path, "exec", dont_inherit=True)
    plain = measured(code, path, core, branch=True)
    new = _native.rewrite_code(code, policy, ())
    assert new is not code
    with GUARDS[guard]():
        rewritten = measured(new, path, core, branch=True)
    assert sorted(rewritten.get_data().arcs(path)) == sorted(plain.get_data().arcs(path))
    assert sorted(rewritten._analyze(path).missing) == sorted(plain._analyze(path).missing) == [4, 8, 17]


def test_region_never_starts_at_a_loop_exit():
    """3.15 inlines `all(genexpr)` into a loop whose exit (a FOR_ITER target, reached at a fixed
    offset) is followed by calls on the same line; a region reaching back to the line's start
    must not begin there (it executed a cache entry)."""
    source = textwrap.dedent(
        """
        import collections

        class D(collections.OrderedDict):
            pass

        class T:
            def check(self, x):
                return x

            def run(self, od):
                return self.check(all(type(p) == list for p in od.__reduce__()[1]))

            def run_any(self, items):
                return self.check(any(x.bit_length() > 2 for x in items)), self.check(len(items))
        """
    )
    code = compile(source, "<loop-exit>", "exec")
    plain, rewritten = {}, {}
    exec(code, plain)
    exec(_native.rewrite_code(code, "all", ()), rewritten)
    for guard in GUARDS.values():
        with guard():
            for ns in (plain, rewritten):
                t = ns["T"]()
                assert t.run(ns["D"]([("a", 1), ("b", 2)])) is True
                assert t.run_any([1, 2]) == (False, 2)
                assert t.run_any([1, 9]) == (True, 2)
