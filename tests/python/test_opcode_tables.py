"""The checked-in opcode table of this interpreter must be what generate.py produces now."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_table_regenerates_identically():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "opcode_tables" / "generate.py"), "--check"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "up to date" in proc.stdout


def test_table_describes_this_interpreter():
    import importlib.util
    import marshal
    import opcode

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    lines = (ROOT / "opcode_tables" / f"cpython-{version}.txt").read_text().splitlines()
    header = dict(l.split(None, 1) for l in lines if l and not l.startswith(("#", "op ")))
    assert header["version"] == version
    assert int(header["magic"]) == int.from_bytes(importlib.util.MAGIC_NUMBER[:2], "little")
    assert int(header["marshal_version"]) == marshal.version
    ops = {l.split()[1]: int(l.split()[2]) for l in lines if l.startswith("op ")}
    expected = {n: c for n, c in opcode.opmap.items() if c < 256 and not n.startswith("INSTRUMENTED_")}
    assert ops == expected
