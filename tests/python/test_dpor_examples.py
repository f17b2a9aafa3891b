"""Every example runs as `python -m frontrun.rewrite examples/X.py` and reports what it should."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {
    "bank.py": ["Race on Account.balance", "if src.balance < amount:", "invariant money_is_conserved failed", "replay with:"],
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
