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
    # A resource's calls are shown as calls, not as writes (a SELECT writes nothing).
    "inventory.py": ["Race on the calls of Connection", "call   examples/inventory.py:29  db.execute(\"UPDATE stock",
                     "invariant never_oversold failed"],
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


def test_a_race_inside_a_library_names_its_file_below_the_sys_path_entry(tmp_path):
    # Outside the working directory a file was shown by its base name: a race in an installed
    # package read `__init__.py:3`, which says nothing about where.
    lib = tmp_path / "lib" / "tallies"
    lib.mkdir(parents=True)
    (lib / "__init__.py").write_text("class Tally:\n    def __init__(self):\n        self.n = 0\n\n"
                                     "    def add(self):\n        self.n += 1\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "prog.py").write_text(
        "import tallies\nfrom frontrun import explore_dpor\n\n"
        "r = explore_dpor(tallies.Tally, [lambda t: t.add(), lambda t: t.add()], lambda t: t.n == 2)\n"
        "print(r.explanation)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "lib")}
    proc = subprocess.run([sys.executable, "-m", "frontrun.rewrite", "--include", "tallies", "--include", "prog",
                           "prog.py"], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Race on Tally.n" in out, out
    assert f"write  tallies{os.sep}__init__.py:6  self.n += 1" in out, out
