"""frontrun's DPOR runtime against frontrun 0.7.0 from PyPI, on the same programs, in one run.

    python benchmarks/dpor_vs_frontrun07.py [--ours-python PY] [--repeat N]

frontrun 0.7.0 is installed (once) into its own virtualenv under
``$FRONTRUN_CACHE/bench/frontrun-0.7.0`` with uv (``$FRONTRUN_CACHE/tools/bin/uv``). Its wheel is
CPython 3.11 only, so both sides run on the 3.11 interpreter of ``pythons.txt`` (ours from its
venv there, where ``make install`` put this checkout), each program in a fresh subprocess:

* ours:   ``frontrun.explore_dpor(setup, threads, invariant)`` on code rewritten at import;
* 0.7.0:  ``frontrun.explore(setup, workers, invariant, preemption_bound=None, ...)`` under its
  ``frontrun`` launcher, which it requires.

Both explore without a preemption bound and without stopping early (every program here is
correct, so both search to the end). Printed: executions, seconds, executions/second, and the
ratio ours/0.7.0. Then the overhead check: two threads that each run a 200 000-iteration
local loop before one shared write, explored, against a plain run of the two thread bodies.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CACHE = Path(os.environ.get("FRONTRUN_CACHE", Path.home() / ".cache" / "frontrun"))
VENV_07 = CACHE / "bench" / "frontrun-0.7.0"
UV = CACHE / "tools" / "bin" / "uv"

PROGRAMS_SOURCE = '''
import threading


class State:
    def __init__(self):
        self.x = 0
        self.y = 0
        self.lock = threading.Lock()


def three_writes(s):
    s.x = 1
    s.x = 2
    s.x = 3


def read_then_write(s):
    v = s.x
    s.x = v + 1


def locked_increment(s):
    with s.lock:
        s.x += 1


def x_then_y(s):
    s.x = 1
    s.y = 1


def y_then_x(s):
    s.y = 2
    s.x = 2


def local_loop_then_write_x(s):
    total = 0
    for i in range(200_000):
        total = total + i
    s.x = total


def local_loop_then_write_y(s):
    total = 0
    for i in range(200_000):
        total = total + i
    s.y = total


def augmented_loop_then_write_x(s):
    total = 0
    for i in range(200_000):
        total += i  # the rewriter reports every `+=` (it cannot know `total` is a number)
    s.x = total


def augmented_loop_then_write_y(s):
    total = 0
    for i in range(200_000):
        total += i
    s.y = total


PROGRAMS = {
    "2 threads x 3 writes": [three_writes, three_writes],
    "3 threads read-then-write": [read_then_write] * 3,
    "4 threads read-then-write": [read_then_write] * 4,
    "3 locked increments": [locked_increment] * 3,
    "opposite write orders": [x_then_y, y_then_x],
}
LOOP_SHARED = [local_loop_then_write_x, local_loop_then_write_x]
LOOP_DISJOINT = [local_loop_then_write_x, local_loop_then_write_y]
AUG_DISJOINT = [augmented_loop_then_write_x, augmented_loop_then_write_y]
'''


# ---------------------------------------------------------------------------- child side


def child(mode: str, program: str, workdir: str) -> None:
    sys.path.insert(0, workdir)
    if mode == "ours":
        import frontrun.rewrite

        frontrun.rewrite.install(include=["bench_programs"])
    import bench_programs as P  # noqa: N812

    loops = {"loop-shared": P.LOOP_SHARED, "loop-disjoint": P.LOOP_DISJOINT, "loop-augmented": P.AUG_DISJOINT}
    threads = loops.get(program) or P.PROGRAMS[program]

    def invariant(s):
        return True

    if mode == "plain":
        def plain():
            s = P.State()
            for fn in threads:
                fn(s)  # the thread bodies one after the other, unrewritten, no frontrun at all

        plain()  # warm-up, as for the explorations
        print(json.dumps({"executions": 1, "seconds": min(timed(plain))}))
        return
    import frontrun

    def explore():
        if mode == "ours":
            return frontrun.explore_dpor(P.State, threads, invariant, stop_on_first=False)
        return frontrun.explore(
            setup=P.State, workers=list(threads), invariant=invariant, preemption_bound=None,
            stop_on_first=False, max_executions=100_000, reproduce_on_failure=0,
        )

    result = explore()  # warm-up: imports and first-use costs are not the search's
    print(json.dumps({"executions": result.num_explored, "seconds": min(timed(explore)),
                      "holds": result.property_holds}))


def timed(fn, runs=3, budget=2.0):
    """Wall times of up to ``runs`` calls (fewer once ``budget`` seconds are spent): the
    machine is shared, the best of a few is the least disturbed."""
    times = []
    spent = 0.0
    while len(times) < runs and (not times or spent < budget):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
        spent += times[-1]
    return times


# ---------------------------------------------------------------------------- parent side


def pythons():
    found = {}
    path = CACHE / "pythons.txt"
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                found[parts[0]] = (parts[1], parts[2])
    return found


def ensure_frontrun07(interpreter: str) -> Path:
    python = VENV_07 / "bin" / "python"
    if python.exists():
        check = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('frontrun'))"],
                               capture_output=True, text=True)
        if check.stdout.strip() == "0.7.0":
            return python
    uv = str(UV) if UV.exists() else "uv"
    VENV_07.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([uv, "venv", "-q", "-p", interpreter, str(VENV_07)], check=True)
    subprocess.run([uv, "pip", "install", "-q", "--python", str(python), "frontrun==0.7.0"], check=True)
    return python


def run_child(python, mode, program, workdir, timeout=600):
    env = dict(os.environ)
    if mode == "fr07":
        env.pop("PYTHONPATH", None)  # 0.7.0 must not see this checkout's package
    # 0.7.0 runs only under its own launcher (``frontrun CMD``: its I/O interception set up).
    launcher = [str(Path(python).parent / "frontrun")] if mode == "fr07" else []
    proc = subprocess.run([*launcher, str(python), __file__, "--child", mode, program, workdir],
                          capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} {program!r} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def best_of(repeat, python, mode, program, workdir):
    runs = [run_child(python, mode, program, workdir) for _ in range(repeat)]
    return min(runs, key=lambda r: r["seconds"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ours-python", help="interpreter with this checkout's frontrun installed")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    args = parser.parse_args()
    found = pythons()
    if "3.11" not in found:
        sys.exit("benchmark: no 3.11 interpreter in pythons.txt (frontrun 0.7.0 ships cp311 wheels only)")
    interpreter, venv = found["3.11"]
    ours = args.ours_python or str(Path(venv) / "bin" / "python")
    theirs = ensure_frontrun07(interpreter)
    workdir = tempfile.mkdtemp(prefix="frontrun-bench-")
    (Path(workdir) / "bench_programs.py").write_text(textwrap.dedent(PROGRAMS_SOURCE))

    print(f"ours:  {ours}\n0.7.0: {theirs}\n")
    header = f"{'program':<28} {'ours exec':>9} {'ours s':>8} {'ours/s':>9}   {'0.7 exec':>8} {'0.7 s':>8} {'0.7/s':>8}   {'rate ratio':>10} {'time ratio':>10}"
    print(header)
    print("-" * len(header))
    ratios = []
    total_ours = total_theirs = 0.0
    programs = ["2 threads x 3 writes", "3 threads read-then-write", "4 threads read-then-write",
                "3 locked increments", "opposite write orders"]
    for program in programs:
        a = best_of(args.repeat, ours, "ours", program, workdir)
        b = best_of(args.repeat, theirs, "fr07", program, workdir)
        rate_a = a["executions"] / a["seconds"]
        rate_b = b["executions"] / b["seconds"]
        ratios.append(rate_a / rate_b)
        total_ours += a["seconds"]
        total_theirs += b["seconds"]
        print(f"{program:<28} {a['executions']:>9} {a['seconds']:>8.3f} {rate_a:>9.0f}   {b['executions']:>8} "
              f"{b['seconds']:>8.3f} {rate_b:>8.0f}   {rate_a / rate_b:>9.1f}x {b['seconds'] / a['seconds']:>9.1f}x")
    geo = 1.0
    for r in ratios:
        geo *= r
    geo **= 1 / len(ratios)
    print(f"\nexecutions/second, ours vs 0.7.0: geometric mean {geo:.1f}x (goal >= 20x); "
          f"total time {total_theirs:.2f}s vs {total_ours:.2f}s ({total_theirs / total_ours:.1f}x)")

    print("\nlocal loop of 200 000 iterations, then one shared write (2 threads): exploration time "
          "against the plain run\n(the two thread bodies one after the other, unrewritten, without frontrun)")
    plain = best_of(args.repeat, ours, "plain", "loop-disjoint", workdir)
    print(f"  plain run: {plain['seconds']:.4f}s")
    cases = (("loop-disjoint", "writes to different attributes", "  (goal <= 1.2x)"),
             ("loop-shared", "writes to one attribute", ""),
             ("loop-augmented", "`total += i`, different attrs", ""))
    for program, label, goal in cases:
        a = best_of(args.repeat, ours, "ours", program, workdir)
        per = a["seconds"] / a["executions"]
        print(f"  {label:<32} {a['executions']} execution(s), {a['seconds']:.4f}s = "
              f"{a['seconds'] / plain['seconds']:.2f}x the plain run; per execution "
              f"{per / plain['seconds']:.2f}x{goal}")
    b = best_of(1, theirs, "fr07", "loop-disjoint", workdir)
    print(f"  0.7.0, different attributes: {b['executions']} execution(s), {b['seconds']:.3f}s = "
          f"{b['seconds'] / plain['seconds']:.1f}x the plain run")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
