"""Run CPython test modules with them (and the stdlib modules they import from now on)
rewritten, for the rewriter's robustness tests.

    python rw_cpython_tests.py MODE POLICY test.test_x [...]

MODE: ``plain`` (no rewriting), ``off`` (rewritten, guard off), ``active`` (rewritten, guard
on, every report builds its event and drops it: leak and weakref tests still pass). Prints one line per module:
``module tests failures errors skipped`` and, last, ``rewritten N`` and the internal failures.
"""

import importlib.machinery
import os
import sys
import unittest

mode, policy, modules = sys.argv[1], sys.argv[2], sys.argv[3:]
rewritten = []

if mode != "plain":
    from frontrun import _native

    class RewritingLoader(importlib.machinery.SourceFileLoader):
        def get_code(self, fullname):
            source = self.get_data(self.path)
            code = compile(source, self.path, "exec", dont_inherit=True)
            rewritten.append(fullname)
            return _native.rewrite_code(code, policy, ())

    STDLIB = os.path.dirname(os.__file__)

    class Finder:
        @classmethod
        def find_spec(cls, name, path=None, target=None):
            spec = importlib.machinery.PathFinder.find_spec(name, path, target)
            if (
                spec is None
                or not isinstance(spec.loader, importlib.machinery.SourceFileLoader)
                or not spec.origin.startswith(STDLIB)
                or "site-packages" in spec.origin
            ):
                return spec
            spec.loader = RewritingLoader(name, spec.origin)
            return spec

    sys.meta_path.insert(0, Finder)

if mode == "active":
    _native._reporting_activate(build_events=True)
if True:
    for name in modules:
        module = importlib.import_module(name)
        suite = unittest.defaultTestLoader.loadTestsFromModule(module)
        if hasattr(module, "load_tests") and not suite.countTestCases():
            suite = module.load_tests(unittest.defaultTestLoader, unittest.TestSuite(), None)
        with open(os.devnull, "w") as null:
            result = unittest.TextTestRunner(stream=null, verbosity=0).run(suite)
        print(name, result.testsRun, len(result.failures), len(result.errors), len(result.skipped), flush=True)
        for test, trace in (result.failures + result.errors)[:3]:
            print("  FAIL", test, trace.strip().splitlines()[-1][:200], file=sys.stderr)
if mode != "plain":
    print("rewritten", len(rewritten) > 0, file=sys.stderr)
    print("internal failures", _native.rewrite_failures(), "report errors", _native.report_errors(), file=sys.stderr)
