"""frontrun: systematic concurrency testing for Python.

Selected modules are rewritten at import time so that their shared-state accesses report
themselves; the DPOR engine in `frontrun._native` explores every meaningfully different
interleaving of the test's threads.

    result = frontrun.explore_dpor(setup, [thread_a, thread_b], invariant)
    if not result.property_holds:
        print(result.explanation)
        frontrun.replay(result.counterexample, setup, [thread_a, thread_b], invariant)

PYTEST_DONT_REWRITE: pytest assert-rewrites the packages of plugins it loads by entry point,
and warns when one is already imported, as frontrun is under ``python -m frontrun.rewrite -m
pytest``; frontrun has no test assertions to rewrite.
"""

import sys


def _launch_start():
    """Under ``python -m frontrun.rewrite`` (``sys.argv[0]`` is "-m" while runpy finds it): the
    modules python itself had imported, and the current directory taken off ``sys.path`` while
    the launcher imports its own (a ``fnmatch.py`` there is the program's, not the launcher's).
    The launcher puts it back before the program runs (``_launcher._program_starts``)."""
    argv = getattr(sys, "orig_argv", [])
    if sys.argv[:1] != ["-m"] or "-m" not in argv[1:-1] or argv[argv.index("-m", 1) + 1] != "frontrun.rewrite":
        return None, None
    path0 = sys.path.pop(0) if sys.path and sys.path[0] not in sys.path[1:] and _cwd_entry(sys.path[0]) else None
    return frozenset(sys.modules), path0


def _cwd_entry(entry):
    import os

    try:
        return os.path.samefile(entry, os.getcwd())
    except (OSError, ValueError, TypeError):
        return False


_LAUNCH_MODULES, _LAUNCH_PATH0 = _launch_start()

import atexit  # noqa: E402
import types  # noqa: E402

from frontrun import _native  # noqa: E402

__version__ = _native.__version__

# What a new subinterpreter gets in place of the two builtins `_native` sets here: rewritten
# code run there (`concurrent.interpreters`, `InterpreterPoolExecutor`) loads them, and the
# extension cannot be imported into another interpreter. Nothing listens there: guard off.
_SUBINTERPRETER_BUILTINS = f"""
import builtins
builtins.{_native.GUARD_NAME} = False
builtins.{_native.REPORT_NAME} = lambda *values: values[0] if values else None
"""


def _prime_subinterpreters():
    """Wraps the interpreter factory (``_interpreters.create``, 3.12's ``_xxsubinterpreters``)
    so that every new interpreter has the stand-ins before it runs anything."""
    for name, run in (("_interpreters", "exec"), ("_xxsubinterpreters", "run_string")):
        try:
            module = __import__(name)
        except ImportError:
            continue
        create = module.create
        if getattr(create, "__frontrun__", False):
            return

        def primed(*args, _create=create, _run=getattr(module, run), **kwargs):
            interp = _create(*args, **kwargs)
            _run(interp, _SUBINTERPRETER_BUILTINS)
            return interp

        primed.__frontrun__ = True
        primed.__doc__ = create.__doc__
        module.create = primed
        return


_prime_subinterpreters()


def _keep_names_through_shutdown():
    """At exit, rewritten modules get the two names in their own globals: finalization then
    restores the builtins CPython started with, and a rewritten ``__del__`` or generator
    ``finally`` run by the last collections would otherwise fail its guard with NameError."""
    module_dict = types.ModuleType.__dict__["__dict__"].__get__  # no __getattr__ (lazy modules)
    for module in list(sys.modules.values()):
        # (type(), not isinstance: an object in sys.modules may claim ModuleType as its
        # __class__, as cffi's Lib and test doubles do, and is no module to take a dict from)
        if not issubclass(type(module), types.ModuleType):
            continue
        namespace = module_dict(module)
        # (A script's ``__main__`` has no ``__file__`` once it has run: its loader has the path.)
        file = namespace.get("__file__") or getattr(namespace.get("__loader__"), "path", None)
        if isinstance(file, str) and _native.is_rewritten_file(file):
            _native._keep_names_in(module)


atexit.register(_keep_names_through_shutdown)

# The exploration machinery is imported on first use: `import frontrun` stays light.
_LAZY = {
    "explore_dpor": "frontrun._dpor",
    "replay": "frontrun._dpor",
    "DporResult": "frontrun._dpor",
    "NotInstrumentedError": "frontrun._dpor",
    "NotInstrumentedWarning": "frontrun._dpor",
    "LeftoverStateWarning": "frontrun._dpor",
    "SeparateConnectionsWarning": "frontrun._dpor",
    "ExecutionAborted": "frontrun._dpor",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'frontrun' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
