"""Run one fixture program as __main__, plain or rewritten, for the rewriter's tests.

    python rw_runner.py MODE POLICY FIXTURE

MODE: ``plain`` (compile only), ``off`` (rewritten, guard off), ``record`` (rewritten, inside
``recording()``: the guard is on for every thread, the main thread's events are collected).
With FRONTRUN_RW_SUMMARY=path, writes ``{"events": n, "errors": [count, last]}`` there.
Every mode runs the program from the same line, so tracebacks match.
"""

import contextlib
import json
import os
import sys
import types

mode, policy, path = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
with open(path, "rb") as f:
    source = f.read()
code = compile(source, path, "exec", dont_inherit=True)
if mode != "plain":
    from frontrun import _native
    from frontrun._recording import recording

    code = _native.rewrite_code(code, policy, ())
module = types.ModuleType("__main__")
module.__file__ = path
module.__builtins__ = __builtins__
sys.modules["__main__"] = module
sys.argv = [path]
sys.path[0] = os.path.dirname(path)
events = []
context = recording() if mode == "record" else contextlib.nullcontext([])


def summary():
    target = os.environ.get("FRONTRUN_RW_SUMMARY")
    if target and mode != "plain":
        with open(target, "w") as f:
            json.dump({"events": len(events), "errors": list(_native.report_errors())}, f)


try:
    with context as events:
        exec(code, module.__dict__)
finally:
    summary()
