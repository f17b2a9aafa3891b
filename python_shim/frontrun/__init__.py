"""frontrun: systematic concurrency testing for Python.

Selected modules are rewritten at import time so that their shared-state accesses report
themselves; the DPOR engine in `frontrun._native` explores every meaningfully different
interleaving of the test's threads.

    result = frontrun.explore_dpor(setup, [thread_a, thread_b], invariant)
    if not result.property_holds:
        print(result.explanation)
        frontrun.replay(result.counterexample, setup, [thread_a, thread_b], invariant)
"""

from frontrun import _native

__version__ = _native.__version__

# The exploration machinery is imported on first use: `import frontrun` stays light.
_LAZY = {
    "explore_dpor": "frontrun._dpor",
    "replay": "frontrun._dpor",
    "DporResult": "frontrun._dpor",
    "NotInstrumentedError": "frontrun._dpor",
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
