"""Run one CPython regression-test module and print its per-test outcomes as JSON.

    python scripts/regrtest_driver.py test.test_grammar                   # plain
    python -m frontrun.rewrite --policy all --include test.test_grammar \\
        scripts/regrtest_driver.py test.test_grammar                      # rewritten
    python scripts/regrtest_driver.py test.test_json json                 # + json's count

Used by scripts/cpython_regrtests.py, which compares the two runs. When the module was
rewritten, the driver also proves it: it counts the module's code objects that carry the
rewriter's guard name, so a run that silently skipped rewriting cannot pass as equal; and
likewise for each library module named after it (the code under test, rewritten too).
"""

import importlib
import io
import json
import signal
import sys
import types
import unittest

GUARD = "__frontrun_on__"


def rewritten_code_objects(name):
    """Code objects carrying the guard in module `name` and, for a package, its submodules."""
    seen, count, stack = set(), 0, []
    modules = [m for n, m in list(sys.modules.items()) if m is not None and (n == name or n.startswith(name + "."))]
    values = [v for m in modules for v in vars(m).values()]
    for value in values:
        if isinstance(value, types.FunctionType):
            stack.append(value.__code__)
        elif isinstance(value, type):
            for attr in vars(value).values():
                fn = getattr(attr, "__func__", attr)
                if isinstance(fn, types.FunctionType):
                    stack.append(fn.__code__)
    while stack:
        code = stack.pop()
        if id(code) in seen:
            continue
        seen.add(id(code))
        count += GUARD in code.co_names
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return count


class Outcomes(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes = {}

    def _set(self, test, outcome):
        self.outcomes[test.id()] = outcome

    def addSuccess(self, test):
        super().addSuccess(test)
        self._set(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._set(test, "fail")

    def addError(self, test, err):
        super().addError(test, err)
        self._set(test, "error")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._set(test, "skip")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._set(test, "xfail")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._set(test, "xpass")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._set(subtest, "fail")


def main():
    # A shell's background job inherits SIGINT ignored, and so would every child the tests
    # start; test_threading's interrupt tests then wait forever. Restore Python's default.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    name = sys.argv[1]
    module = importlib.import_module(name)
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    stream = io.StringIO()
    runner = unittest.TextTestRunner(stream=stream, resultclass=Outcomes, verbosity=0)
    result = runner.run(suite)
    report = {
        "module": name,
        "rewritten_code_objects": rewritten_code_objects(name),
        "library_code_objects": {library: rewritten_code_objects(library) for library in sys.argv[2:]},
        "outcomes": result.outcomes,
        "log": stream.getvalue()[-4000:] if not result.wasSuccessful() else "",
    }
    sys.stdout.flush()
    sys.__stdout__.write("\nFRONTRUN-REGRTEST " + json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
