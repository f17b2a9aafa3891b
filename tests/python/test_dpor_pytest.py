"""The pytest plugin's ``frontrun_explore`` fixture and ``frontrun_dpor`` marker, end to end."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CODE = """
import threading

class Counter:
    def __init__(self):
        self.value = 0
        self.lock = threading.Lock()

def unsafe_increment(c):
    c.value += 1

def safe_increment(c):
    with c.lock:
        c.value += 1

def increment_unless_busy(c):
    if c.lock.acquire(timeout=1):
        c.value += 1
        c.lock.release()
"""

TESTS = """
import pytest
from counter import Counter, increment_unless_busy, safe_increment, unsafe_increment

def test_safe(frontrun_explore):
    result = frontrun_explore(Counter, [safe_increment] * 2, lambda c: c.value == 2)
    assert result.property_holds is True and result.num_explored == 2

def test_unsafe(frontrun_explore):
    frontrun_explore(Counter, [unsafe_increment] * 2, lambda c: c.value == 2)

@pytest.mark.frontrun_dpor(max_executions=1)
def test_marker_limits(frontrun_explore):
    result = frontrun_explore(Counter, [safe_increment] * 2, lambda c: c.value == 2, allow_inconclusive=True)
    assert result.property_holds is None and result.num_explored == 1

@pytest.mark.frontrun_dpor(max_executions=1)
def test_inconclusive_fails(frontrun_explore):
    frontrun_explore(Counter, [safe_increment] * 2, lambda c: c.value == 2)

def test_timed_acquire_waits_by_default(frontrun_explore):
    frontrun_explore(Counter, [increment_unless_busy] * 2, lambda c: c.value == 2)

@pytest.mark.frontrun_dpor(timeouts="any_time")
def test_timed_acquire_times_out_early(frontrun_explore):
    frontrun_explore(Counter, [increment_unless_busy] * 2, lambda c: c.value == 2)
"""


def test_fixture_and_marker(tmp_path):
    (tmp_path / "counter.py").write_text(textwrap.dedent(CODE))
    (tmp_path / "test_counter.py").write_text(textwrap.dedent(TESTS))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(tmp_path), env.get("PYTHONPATH", "")] if p)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "frontrun.pytest_plugin",
         "--frontrun", "--frontrun-include", "counter", "-rf", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert "3 failed, 3 passed" in out, out
    assert "FAILED test_counter.py::test_timed_acquire_times_out_early" in out
    assert 'Timed out (timeouts="any_time"' in out
    assert "frontrun found a failing interleaving (invariant)" in out
    assert "Race on Counter.value" in out
    assert "c.value += 1" in out
    assert "counterexample:" in out
    assert "max_executions=1" in out
