"""CPython's own regression tests, with the test module rewritten under policy `all`.

For every interpreter in $FRONTRUN_CACHE/pythons.txt and every module below, runs the module
plainly and then through `python -m frontrun.rewrite --policy all --include <module>`, and
requires identical per-test outcomes (pass/fail/error/skip/xfail for every test id) plus proof
that the module really was rewritten. A module a version does not ship is reported as absent.

    python scripts/cpython_regrtests.py            # the full list (make cpython-tests)
    python scripts/cpython_regrtests.py --subset   # the part `make test` runs in CI
    python scripts/cpython_regrtests.py test_grammar test_with --versions 3.12 3.15
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("FRONTRUN_CACHE", Path.home() / ".cache" / "frontrun"))
DRIVER = ROOT / "scripts" / "regrtest_driver.py"

MODULES = """
test_grammar test_exceptions test_generators test_coroutines test_asyncgen test_with
test_contextlib test_patma test_scope test_class test_descr test_unpack test_augassign
test_listcomps test_setcomps test_dictcomps test_genexps test_raise test_except_star
test_exception_group test_keywordonlyarg test_positional_only_arg test_fstring test_types
test_dataclasses test_enum test_functools test_itertools test_collections test_heapq
test_bisect test_json test_weakref test_property test_super test_iter test_int test_list
test_dict test_set test_tuple test_threading test_queue test_traceback
test_sys_settrace test_pdb test_bdb test_trace test_doctest test_typing test_ordered_dict
""".split()

# What `make test` runs on every interpreter: the language-construct modules, fast to run.
SUBSET = """
test_grammar test_generators test_coroutines test_with test_patma test_scope test_augassign
test_listcomps test_raise test_except_star test_fstring test_super test_sys_settrace test_bdb
""".split()

# (version or "*", module) -> why it cannot be compared. Empty: every listed module must match.
# Not listed, by nature: test_monitoring (INSTRUCTION events and offsets, and the guards' own
# BRANCH/JUMP events, are those of the rewritten code), test_inspect's getclosurevars tests (the
# guard and report names are in co_names), test_dis/test_peepholer/test_compile (they read
# their own bytecode).
EXCLUDED: dict[tuple[str, str], str] = {}

TIMEOUT = 900


def pythons():
    table = {}
    for line in (CACHE / "pythons.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            table[parts[0]] = Path(parts[2]) / "bin" / "python"
    return table


def run(cmd, cwd):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0")
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {TIMEOUT}s"
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("FRONTRUN-REGRTEST "):
            return json.loads(line.split(" ", 1)[1]), ""
    return None, (proc.stdout[-2000:] + proc.stderr[-4000:])


def compare(version, python, module):
    name = f"test.{module}"
    with tempfile.TemporaryDirectory() as cwd:
        probe = subprocess.run([python, "-c", f"import importlib.util as u; print(u.find_spec({name!r}) is not None)"],
                               capture_output=True, text=True, cwd=cwd)
        if probe.stdout.strip() != "True":
            return "absent", ""
        started = time.monotonic()
        plain, plain_err = run([python, str(DRIVER), name], cwd)
        # A package's tests live in its submodules (test_json, test_dataclasses on 3.12+).
        rewritten, rw_err = run([python, "-m", "frontrun.rewrite", "--policy", "all", "--include", name,
                                 "--include", f"{name}.*", str(DRIVER), name], cwd)
        elapsed = time.monotonic() - started
    if plain is None:
        return "baseline-broken", plain_err
    if rewritten is None:
        return "FAIL", f"rewritten run produced no report:\n{rw_err}"
    if not rewritten["rewritten_code_objects"]:
        return "FAIL", "the module was not rewritten (no code object carries the guard)"
    a, b = plain["outcomes"], rewritten["outcomes"]
    if a != b:
        diff = sorted(t for t in set(a) | set(b) if a.get(t) != b.get(t))
        lines = [f"  {t}: plain={a.get(t)} rewritten={b.get(t)}" for t in diff[:20]]
        return "FAIL", "\n".join(lines) + "\n" + rewritten["log"][-3000:]
    counts = {}
    for outcome in a.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    summary = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    return "ok", f"{len(a)} tests ({summary}), {rewritten['rewritten_code_objects']} code objects rewritten, {elapsed:.0f}s"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("modules", nargs="*")
    parser.add_argument("--subset", action="store_true")
    parser.add_argument("--versions", nargs="*")
    args = parser.parse_args()
    modules = args.modules or (SUBSET if args.subset else MODULES)
    table = pythons()
    versions = [v for v in (args.versions or sorted(table, key=lambda v: tuple(map(int, v.split("."))))) if v in table]
    jobs = [(v, m) for v in versions for m in modules
            if (v, m) not in EXCLUDED and ("*", m) not in EXCLUDED]
    failures = 0
    results = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {job: pool.submit(compare, job[0], str(table[job[0]]), job[1]) for job in jobs}
        for (version, module), future in futures.items():
            status, detail = future.result()
            results[(version, module)] = status
            print(f"{version} {module:<28} {status:<8} {detail.splitlines()[0] if detail and status == 'ok' else ''}")
            if status not in ("ok", "absent"):
                failures += 1
                print(detail)
    for key, why in EXCLUDED.items():
        print(f"excluded {key}: {why}")
    ok = sum(s == "ok" for s in results.values())
    absent = sum(s == "absent" for s in results.values())
    print(f"\ncpython regrtests: {ok} matched, {failures} differed, {absent} absent "
          f"({len(modules)} modules x {len(versions)} interpreters)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
