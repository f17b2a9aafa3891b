"""The rewriter on real code: every stdlib module rewrites without error under every policy and
passes the rewriter's own stack check, and CPython's own test modules pass as often rewritten
(with every report's event built) as plain.

The CPython test list is a quick subset; FRONTRUN_RW_CPYTHON_FULL=1 runs the longer one.
"""

import os
import subprocess
import sys
import types

import pytest

import frontrun
from frontrun import _native

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "rw_cpython_tests.py")
PACKAGE_PATH = os.pathsep.join(
    [os.path.dirname(os.path.dirname(os.path.abspath(frontrun.__file__)))]
    + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)


@pytest.mark.parametrize("policy", ["resources", "shared", "all"])
def test_stdlib_rewrites_cleanly(stdlib, policy):
    failures_before = len(_native.rewrite_failures())
    changed = 0
    for code in stdlib:
        new = _native.rewrite_code(code, policy, ())
        changed += new is not code
    assert _native.rewrite_failures()[failures_before:] == []
    if policy != "resources":
        assert changed > len(stdlib) * 0.9


QUICK = [
    "test.test_heapq",
    "test.test_scope",
    "test.test_with",
    "test.test_contextlib",
    "test.test_generators",
    "test.test_coroutines",
    "test.test_exceptions",
    "test.test_patma",
    "test.test_listcomps",
    "test.test_dataclasses",
    "test.test_functools",
    "test.test_collections",
]
FULL = QUICK + [
    "test.test_json",
    "test.test_textwrap",
    "test.test_contextlib_async",
    "test.test_asyncgen",
    "test.test_setcomps",
    "test.test_dictcomps",
    "test.test_unpack",
    "test.test_unpack_ex",
    "test.test_keywordonlyarg",
    "test.test_class",
    "test.test_super",
    "test.test_property",
    "test.test_enum",
    "test.test_fractions",
    "test.test_statistics",
    "test.test_string",
    "test.test_shlex",
    "test.test_csv",
    "test.test_configparser",
    "test.test_argparse",
    "test.test_pprint",
    "test.test_queue",
    "test.test_itertools",
    "test.test_operator",
    "test.test_bisect",
    "test.test_difflib",
    "test.test_copy",
    "test.test_grammar",
    "test.test_raise",
]


def run_suite(mode, policy, modules):
    proc = subprocess.run(
        [sys.executable, RUNNER, mode, policy, *modules],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=PACKAGE_PATH),
        timeout=1800,
    )
    return proc


@pytest.mark.parametrize("policy", ["shared", "all"])
def test_cpython_test_modules_pass_rewritten(policy):
    pytest.importorskip("test.support")
    modules = FULL if os.environ.get("FRONTRUN_RW_CPYTHON_FULL") else QUICK
    modules = [m for m in modules if os.path.exists(os.path.join(os.path.dirname(os.__file__), *m.split("."))+ ".py")]
    plain = run_suite("plain", policy, modules)
    rewritten = run_suite("active", policy, modules)
    assert rewritten.returncode == plain.returncode == 0, rewritten.stderr[-3000:]
    assert rewritten.stdout == plain.stdout, rewritten.stderr[-3000:]
    assert "internal failures [] report errors (0, None)" in rewritten.stderr


def test_stdlib_input_passes_the_stack_check(stdlib):
    """The check that guards every rewrite holds for what CPython compiles (so a failure after
    rewriting is the rewriter's)."""
    def walk(code):
        yield code
        for c in code.co_consts:
            if isinstance(c, types.CodeType):
                yield from walk(c)

    problems = [(c.co_filename, c.co_name, p) for m in stdlib for c in walk(m) if (p := _native._rewrite_check(c))]
    assert problems[:5] == []


def test_rewritten_stack_size_is_the_flow_analysis(stdlib):
    """The rewriter sizes the stack from its own stack check; over the stdlib that must be what
    the encoder's independent flow analysis gives for the code that can run (or the original,
    when larger). Unreachable handlers, which CPython's count includes, never run."""
    def pairs(old, new):
        yield old, new
        old_codes = [c for c in old.co_consts if isinstance(c, types.CodeType)]
        new_codes = [c for c in new.co_consts if isinstance(c, types.CodeType)]
        for o, n in zip(old_codes, new_codes, strict=True):
            yield from pairs(o, n)

    checked = 0
    wrong = []
    for module in stdlib:
        for old, new in pairs(module, _native.rewrite_code(module, "all", ())):
            if new is old:
                continue
            checked += 1
            expected = max(old.co_stacksize, _native.bytecode_stacksize(new, reachable_only=True))
            if new.co_stacksize != expected:
                wrong.append((old.co_filename, old.co_firstlineno, new.co_stacksize, expected))
    assert wrong[:5] == []
    assert checked > 1000
