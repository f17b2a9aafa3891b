"""Rewritten code is indistinguishable to tools that watch it: tracebacks (lines and PEP 657
columns), sys.settrace line events, and coverage's line coverage match the original, with the
report guard off and on."""

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


def covered_lines(code, path, core):
    import coverage

    old = os.environ.get("COVERAGE_CORE")
    os.environ["COVERAGE_CORE"] = core
    try:
        cov = coverage.Coverage(data_file=None, include=[path], config_file=False)
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
    return sorted(cov.get_data().lines(path) or [])


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
