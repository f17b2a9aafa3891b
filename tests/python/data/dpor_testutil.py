"""Helpers for the DPOR runtime tests: rewritten test programs from source text.

``load(source)`` writes the source to a real file (so explanations can show source lines),
compiles it, rewrites it with frontrun's rewriter and runs it as a fresh module.
"""

import importlib.util
import itertools
import os
import subprocess
import sys
import tempfile
import textwrap

from frontrun.rewrite import rewrite_code

_DIR = tempfile.mkdtemp(prefix="frontrun-dpor-tests-")
_counter = itertools.count()


def load(source, name=None, policy="shared", resource_methods=()):
    name = name or f"dpor_prog_{next(_counter)}"
    path = os.path.join(_DIR, name + ".py")
    text = textwrap.dedent(source)
    with open(path, "w") as f:
        f.write(text)
    code = compile(text, path, "exec", dont_inherit=True)
    # A real spec and loader, as an imported module has (tracebacks read source through them).
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, path))
    sys.modules[name] = module
    exec(rewrite_code(code, policy, resource_methods), module.__dict__)
    return module


class State:
    """A plain namespace for test state."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


# Threads that read the clock and wait with timeouts worked out from it (test_dpor_timeouts),
# also run in a fresh interpreter (test_dpor_futures).
CLOCK_PROGRAM = """
import time
from concurrent.futures import TimeoutError, as_completed

def read_sleep_read(s):
    s.first = time.monotonic()
    time.sleep(1)
    s.second = time.monotonic()
    s.wall = time.time()
    s.x = 2

def write(s):
    s.x = 1

def wait_twice_for_either(s):
    for _ in range(2):
        try:
            s.seen.append(sorted(s.fs.index(f) for f in as_completed(s.fs, timeout=0.5)))
        except TimeoutError:
            s.seen.append("timed out")

def finish_one(s):
    s.fs[0].set_result(1)
"""


def run_in_new_process(directory, program, script):
    """Runs ``script`` in a new interpreter (``directory`` holds it), with ``State`` and ``frontrun``
    imported and ``P`` the module ``load(program)`` made; returns the finished process."""
    path = os.path.join(directory, "fresh_process.py")
    with open(path, "w") as f:
        f.write(
            f"import sys\nsys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
            "from dpor_testutil import State, load\nimport frontrun\n"
            f"P = load({textwrap.dedent(program)!r}, name='fresh_process_prog')\n" + textwrap.dedent(script)
        )
    return subprocess.run([sys.executable, path], capture_output=True, text=True, timeout=300)
