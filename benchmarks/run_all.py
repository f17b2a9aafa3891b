"""Run every Python benchmark on every interpreter of the matrix (`make bench`).

Each script prints its own ratios against a baseline measured in the same run; this only
runs them in turn with the right interpreter:

* rewrite_overhead.py     — inactive overhead and rewrite time vs compile(), every version;
* bytecode_roundtrip.py   — decode+encode vs the `bytecode` library (3.11+, installed into a
                            benchmark venv of its own so the test venvs stay clean);
* dpor_vs_frontrun07.py   — the DPOR runtime vs frontrun 0.7.0 from PyPI (3.11).
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("FRONTRUN_CACHE", Path.home() / ".cache" / "frontrun"))
UV = CACHE / "tools" / "bin" / "uv"


def pythons():
    rows = [line.split() for line in (CACHE / "pythons.txt").read_text().splitlines()]
    return {r[0]: (r[1], Path(r[2]) / "bin" / "python") for r in rows if len(r) == 3}


def bench_venv(version, interpreter):
    """A venv with frontrun and bytecode==0.19.1, apart from the test venvs."""
    venv = CACHE / "bench" / f"venv-{version}"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([UV, "venv", "-q", "-p", interpreter, venv], check=True)
    wheels = sorted((ROOT / "target" / "wheels").glob("*.whl"))
    subprocess.run([UV, "pip", "install", "-q", "--python", python, "--reinstall-package", "frontrun",
                    *wheels, "bytecode==0.19.1"], check=True)
    return python


def run(title, cmd):
    print(f"\n=== {title}", flush=True)
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=False)


def main():
    table = pythons()
    for version, (interpreter, venv_python) in table.items():
        run(f"rewrite overhead, Python {version}", [venv_python, "benchmarks/rewrite_overhead.py", *sys.argv[1:]])
    for version, (interpreter, _) in table.items():
        if version != "3.10":  # bytecode 0.19.1 dropped 3.10
            run(f"bytecode round trip vs bytecode 0.19.1, Python {version}",
                [bench_venv(version, interpreter), "benchmarks/bytecode_roundtrip.py"])
    if "3.11" in table:
        run("DPOR runtime vs frontrun 0.7.0 (Python 3.11)", [table["3.11"][1], "benchmarks/dpor_vs_frontrun07.py"])


if __name__ == "__main__":
    main()
