"""Every example runs as `python -m frontrun.rewrite examples/X.py` and reports what it should."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {
    "bank.py": ["Race on Account.balance", "if src.balance < amount:", "invariant money_is_conserved failed",
                "frontrun.replay(counterexample, setup, threads, invariant) reruns it"],
    "lazy_cache.py": ["Race on global __main__._settings", "if _settings is None:", "invariant one_instance failed"],
    "producer_consumer.py": ["consumers waiting with 'if'", "IndexError: pop from empty list",
                             "consumers waiting with 'while'", "no failure"],
    "locked_counter.py": ["explored 6 interleavings", "no race"],
    "deadlock.py": ["Deadlock", "state.savings.lock", "state.checking.lock", "with target.lock:"],
    "inventory.py": ["Race on Connection", "db.execute(\"UPDATE stock", "invariant never_oversold failed"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example(name):
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-m", "frontrun.rewrite", f"examples/{name}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for text in EXPECTED[name]:
        assert text in out, f"{text!r} not in output:\n{out}"


def test_bank_explanation_lists_the_lost_update_and_only_mentions_the_sequential_one():
    proc = subprocess.run([sys.executable, "-m", "frontrun.rewrite", "examples/bank.py"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout
    races = [line for line in out.splitlines() if line.startswith("Race on")]
    assert len(races) == 1 and races[0].startswith("Race on Account.balance"), out
    assert "= state.accounts['alice']" in races[0]
    steps = [line.split() for line in out.splitlines() if line.startswith("  thread")]
    # Both threads read alice's balance before either writes it, with file:line and source text.
    first_write = next(i for i, s in enumerate(steps) if s[2] == "write")
    assert {s[1] for s in steps[:first_write] if s[2] == "read"} == {"0", "1"}
    assert {s[1] for s in steps[first_write:] if s[2] == "write"} == {"0", "1"}
    assert all(s[3].startswith("examples/bank.py:") for s in steps)
    # bob's account was updated by one thread after the other: said in one line, not listed.
    assert "state.accounts['bob']" in out and "one after the other" in out
