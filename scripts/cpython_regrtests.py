"""CPython's own regression tests, with the test module rewritten under policy `all`.

For every interpreter in $FRONTRUN_CACHE/pythons.txt and every module below, runs the module
plainly and then through `python -m frontrun.rewrite --policy all --include <module>`, and
requires identical per-test outcomes (pass/fail/error/skip/xfail for every test id) plus proof
that the module really was rewritten. Where LIBRARIES names the stdlib modules a test module
tests, they are rewritten too (and proved so): the tests then check the rewritten library's
behaviour, not only the rewritten tests'. A module a version does not ship is reported as absent.

    python scripts/cpython_regrtests.py            # the full list (make cpython-tests)
    python scripts/cpython_regrtests.py --subset   # the part `make test` runs in CI
    python scripts/cpython_regrtests.py test_grammar test_with --versions 3.12 3.15
"""

import argparse
import json
import os
import re
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
test_decimal test_fractions test_statistics test_difflib test_argparse test_optparse
test_pprint test_string test_textwrap test_csv test_configparser test_ast test_tokenize
test_re test_email test_mailbox test_calendar test_copy test_contextlib_async test_abc
test_weakset test_logging test_random test_pathlib test_zipfile test_ipaddress
test_urlparse test_htmlparser test_base64 test_glob test_fnmatch test_gettext test_pickle
test_pickletools test_unittest test_selectors test_shutil test_tempfile test_graphlib
test_sched test_reprlib test_shlex test_plistlib test_wave test_netrc test_tomllib
test_asyncio.test_tasks test_asyncio.test_locks test_asyncio.test_queues test_userdict
test_userlist test_userstring
""".split()

# The library modules (and their submodules) a test module tests, rewritten with it.
LIBRARIES = {
    "test_contextlib": ["contextlib"], "test_contextlib_async": ["contextlib"],
    "test_dataclasses": ["dataclasses"], "test_enum": ["enum"], "test_functools": ["functools"],
    "test_collections": ["collections"], "test_ordered_dict": ["collections"],
    "test_userdict": ["collections"], "test_userlist": ["collections"], "test_userstring": ["collections"],
    "test_heapq": ["heapq"], "test_json": ["json"], "test_weakref": ["weakref"],
    "test_threading": ["threading"], "test_traceback": ["traceback"], "test_typing": ["typing"],
    "test_doctest": ["doctest"], "test_pdb": ["pdb", "bdb"], "test_bdb": ["bdb"], "test_trace": ["trace"],
    "test_decimal": ["_pydecimal"], "test_fractions": ["fractions"], "test_statistics": ["statistics"],
    "test_difflib": ["difflib"], "test_argparse": ["argparse"], "test_optparse": ["optparse"],
    "test_pprint": ["pprint"], "test_string": ["string"], "test_textwrap": ["textwrap"], "test_csv": ["csv"],
    "test_configparser": ["configparser"], "test_ast": ["ast"], "test_tokenize": ["tokenize"],
    "test_re": ["re"], "test_email": ["email"], "test_mailbox": ["mailbox"], "test_calendar": ["calendar"],
    "test_copy": ["copy"], "test_abc": ["_py_abc"], "test_weakset": ["_weakrefset"], "test_logging": ["logging"],
    "test_random": ["random"], "test_pathlib": ["pathlib"], "test_zipfile": ["zipfile"],
    "test_ipaddress": ["ipaddress"], "test_urlparse": ["urllib"], "test_htmlparser": ["html"],
    "test_base64": ["base64"], "test_glob": ["glob"], "test_fnmatch": ["fnmatch"], "test_gettext": ["gettext"],
    "test_pickle": ["pickle"], "test_pickletools": ["pickletools"], "test_unittest": ["unittest"],
    "test_selectors": ["selectors"], "test_shutil": ["shutil"], "test_tempfile": ["tempfile"],
    "test_graphlib": ["graphlib"], "test_sched": ["sched"], "test_reprlib": ["reprlib"], "test_shlex": ["shlex"],
    "test_plistlib": ["plistlib"], "test_wave": ["wave"], "test_netrc": ["netrc"], "test_tomllib": ["tomllib"],
    "test_asyncio.test_tasks": ["asyncio"], "test_asyncio.test_locks": ["asyncio"],
    "test_asyncio.test_queues": ["asyncio"],
}

# What `make test` runs on every interpreter: the language-construct modules and a few
# libraries rewritten with their tests, fast to run.
SUBSET = """
test_grammar test_generators test_coroutines test_with test_patma test_scope test_augassign
test_listcomps test_raise test_except_star test_fstring test_super test_sys_settrace test_bdb
test_fractions test_textwrap test_pprint test_configparser test_argparse test_json test_dataclasses
test_enum test_functools test_contextlib
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
        libraries = LIBRARIES.get(module, [])
        plain, plain_err = run([python, str(DRIVER), name, *libraries], cwd)
        # A package's tests live in its submodules (test_json, test_dataclasses on 3.12+).
        includes = [arg for pkg in [name, *libraries] for arg in ("--include", pkg, "--include", f"{pkg}.*")]
        rewritten, rw_err = run([python, "-m", "frontrun.rewrite", "--policy", "all", *includes, str(DRIVER), name,
                                 *libraries], cwd)
        elapsed = time.monotonic() - started
    if plain is None:
        return "baseline-broken", plain_err
    if rewritten is None:
        return "FAIL", f"rewritten run produced no report:\n{rw_err}"
    if not rewritten["rewritten_code_objects"]:
        return "FAIL", "the module was not rewritten (no code object carries the guard)"
    missed = [lib for lib, count in rewritten["library_code_objects"].items() if not count]
    if missed:
        return "FAIL", f"not rewritten (no code object carries the guard): {', '.join(missed)}"
    a, b = outcomes(plain), outcomes(rewritten)
    if a != b:
        diff = sorted(t for t in set(a) | set(b) if a.get(t) != b.get(t))
        lines = [f"  {t}: plain={a.get(t)} rewritten={b.get(t)}" for t in diff[:20]]
        return "FAIL", "\n".join(lines) + "\n" + rewritten["log"][-3000:]
    counts = {}
    for outcome in a.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    summary = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    libs = sum(rewritten["library_code_objects"].values())
    library_part = f" (+{libs} in {', '.join(libraries)})" if libraries else ""
    return "ok", (f"{len(a)} tests ({summary}), {rewritten['rewritten_code_objects']}{library_part} code objects "
                  f"rewritten, {elapsed:.0f}s")


def outcomes(report):
    """Outcome by test id, with object addresses in ids (subtests named by a function's repr)
    left out: they differ from one run to the next."""
    return {re.sub(r" at 0x[0-9a-f]+", "", test): outcome for test, outcome in report["outcomes"].items()}


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
