"""Run the Python test suite on every interpreter of the matrix and print a table.

Reads `$FRONTRUN_CACHE/pythons.txt` (lines `version interpreter venv`, written by
scripts/pythons.sh). Two interpreters run at a time (the machines have two cores). A missing
interpreter fails the run under CI=true; elsewhere it is reported and the rest still run.
Exit status is non-zero on any failure, error or missing interpreter under CI.
"""

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MATRIX = ["3.10", "3.11", "3.12", "3.13", "3.14", "3.15"]
ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("FRONTRUN_CACHE", Path.home() / ".cache" / "frontrun"))
REPORTS = ROOT / "target" / "test-reports"


def load_pythons():
    found = {}
    for line in (CACHE / "pythons.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            found[parts[0]] = Path(parts[2]) / "bin" / "python"
    return found


def run_suite(version, python):
    REPORTS.mkdir(parents=True, exist_ok=True)
    junit = REPORTS / f"junit-{version}.xml"
    log = REPORTS / f"pytest-{version}.log"
    junit.unlink(missing_ok=True)
    started = time.monotonic()
    cmd = [str(python), "-m", "pytest", "tests/python", "-q", "-p", "no:cacheprovider",
           "-o", "console_output_style=classic", f"--junitxml={junit}", *sys.argv[1:]]
    with open(log, "w") as out:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    elapsed = time.monotonic() - started
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    if junit.exists():
        suites = ET.parse(junit).getroot()
        for suite in suites.iter("testsuite"):
            total = int(suite.get("tests", 0))
            failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skipped = int(suite.get("skipped", 0))
            counts["failed"] += failed
            counts["skipped"] += skipped
            counts["passed"] += total - failed - skipped
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and not counts["failed"]):
        counts["failed"] += 1  # pytest itself broke (collection error, crash, no tests)
    return version, counts, elapsed, proc.returncode, log


def main():
    pythons = load_pythons()
    missing = [v for v in MATRIX if v not in pythons]
    results = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for version, counts, elapsed, rc, log in pool.map(lambda v: run_suite(v, pythons[v]),
                                                          [v for v in MATRIX if v in pythons]):
            results[version] = (counts, elapsed)
            print(f"--- Python {version}: pytest exit {rc} in {elapsed:.0f}s (log: {log.relative_to(ROOT)})")
            if counts["failed"]:
                print(log.read_text()[-6000:])
    print()
    print(f"{'python':<8}{'passed':>8}{'failed':>8}{'skipped':>9}{'seconds':>9}")
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    for version in MATRIX:
        if version in missing:
            print(f"{version:<8}{'MISSING: interpreter not found':>34}")
            continue
        counts, elapsed = results[version]
        for k in totals:
            totals[k] += counts[k]
        print(f"{version:<8}{counts['passed']:>8}{counts['failed']:>8}{counts['skipped']:>9}{elapsed:>9.0f}")
    print()
    ci = os.environ.get("CI") == "true"
    if missing:
        print(f"missing interpreters: {', '.join(missing)}" + (" (fatal under CI)" if ci else ""))
    print(f"{totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
    if totals["failed"] or (missing and ci) or not totals["passed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
