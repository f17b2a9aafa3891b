"""The pytest plugin's ``frontrun_explore`` fixture and ``frontrun_dpor`` marker, end to end."""

import re
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

@pytest.mark.frontrun_dpor(max_executions=1, allow_inconclusive=True)
def test_marker_allows_inconclusive(frontrun_explore):
    result = frontrun_explore(Counter, [safe_increment] * 2, lambda c: c.value == 2)
    assert result.property_holds is None and result.num_explored == 1

@pytest.mark.frontrun_dpor(1)
def test_marker_positional(frontrun_explore):
    frontrun_explore(Counter, [safe_increment] * 2, lambda c: c.value == 2)

def test_code_outside_the_selection(frontrun_explore):
    from plain_helpers import bump
    frontrun_explore(Counter, [bump] * 2, lambda c: c.value == 2)
"""


def test_fixture_and_marker(tmp_path):
    (tmp_path / "counter.py").write_text(textwrap.dedent(CODE))
    (tmp_path / "test_counter.py").write_text(textwrap.dedent(TESTS))
    (tmp_path / "plain_helpers.py").write_text("def bump(c):\n    c.value += 1\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(tmp_path), env.get("PYTHONPATH", "")] if p)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "frontrun.pytest_plugin",
         "--frontrun", "--frontrun-include", "counter", "-rfE", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert "4 failed, 4 passed, 1 error" in out, out
    assert "ERROR test_counter.py::test_marker_positional - Failed: frontrun_dpor marker" in out, out
    assert "pytest_plugin.py" not in out, out  # no traceback through the plugin's source
    assert ("frontrun_dpor marker takes keyword options only (preemption_bound, max_executions, timeout, "
            "stop_on_first, max_steps, timeouts, allow_inconclusive), got positional 1") in out, out
    # Code the hook does not select: said so, with the selection and what to change.
    assert ("bump (plain_helpers, " in out and "is not selected by the import hook (include: counter; exclude: -; "
            "policy: shared): add it to the include patterns (pytest --frontrun-include PAT") in out, out
    assert "FAILED test_counter.py::test_timed_acquire_times_out_early" in out
    assert 'Timed out (timeouts="any_time"' in out
    # The failure names the fixture's call (it has no traceback); frontrun's frames stay hidden.
    # What happened first (the short summary keeps the start of the line: "FAILED ... - Failed:
    # frontrun found a failing interl..."), then where.
    assert "FAILED test_counter.py::test_unsafe - Failed: frontrun found a failing interl" in out, out
    assert re.search(r"frontrun found a failing interleaving \(invariant\) after \d+ executions at \S*test_counter.py:10:", out), out
    assert "_dpor.py" not in out, out
    assert "Race on Counter.value" in out
    assert "c.value += 1" in out
    assert "counterexample:" in out
    assert "max_executions=1" in out


MEMBER_TEST = """
from frontrun import explore_dpor
from alpha.counter import bump

def test_counter():
    result = explore_dpor(lambda: type("C", (), {"value": 0})(), [bump] * 2, lambda c: c.value == 2)
    assert result.property_holds, result.explanation
"""


def monorepo(tmp_path):
    """A root pyproject.toml with pytest's section and no [tool.frontrun]; a member project with
    a table of its own."""
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["packages"]\n')
    member = tmp_path / "packages" / "alpha"
    (member / "alpha").mkdir(parents=True)
    (member / "tests").mkdir()
    (member / "pyproject.toml").write_text('[project]\nname = "alpha"\nversion = "0"\n\n'
                                           '[tool.frontrun]\ninclude = ["alpha.*"]\n')
    (member / "alpha" / "__init__.py").write_text("")
    (member / "alpha" / "counter.py").write_text("def bump(c):\n    c.value += 1\n")
    (member / "tests" / "test_alpha.py").write_text(textwrap.dedent(MEMBER_TEST))
    return member


def run_pytest(cwd, *args, pythonpath=()):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), *filter(None, [env.get("PYTHONPATH", "")])])
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    return proc.stdout + proc.stderr


def test_a_member_projects_table_applies_when_pytest_runs_in_it(tmp_path):
    # pytest chose the root's pyproject.toml (the only one with a pytest section), and the lookup
    # from there never saw the member's table: NotInstrumentedError, whose advice was to add one.
    member = monorepo(tmp_path)
    out = run_pytest(member, pythonpath=[member])
    assert "Race on " in out and ".value" in out and "1 failed" in out, out
    assert "NotInstrumentedError" not in out, out


def test_not_instrumented_under_pytest_says_why_the_plugin_installed_no_hook(tmp_path):
    member = monorepo(tmp_path)
    # From the root, the member's table lies below pytest's configuration: not looked for.
    out = run_pytest(tmp_path, pythonpath=[member])
    assert "NotInstrumentedError" in out, out
    assert ("frontrun's import hook is not installed in this process: frontrun's pytest plugin found no "
            f"[tool.frontrun] table (looked in the pyproject.toml files of {tmp_path} and the directories above") in out, out
    out = run_pytest(member, "--no-frontrun", pythonpath=[member])
    assert "not installed in this process: frontrun's pytest plugin is switched off (--no-frontrun" in out, out
    out = run_pytest(member, "-p", "no:frontrun", pythonpath=[member])
    assert "not installed in this process: pytest runs without frontrun's plugin (disabled by -p no:frontrun" in out, out
