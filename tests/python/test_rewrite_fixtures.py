"""Every fixture program behaves identically rewritten (policies ``all`` and ``shared``) and
plain: same stdout, stderr (tracebacks with line numbers) and exit status, with the report
guard off and with reporting on (so the report path's stack handling is exercised too)."""

import glob
import json
import os
import subprocess
import sys

import pytest

import frontrun

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURES = sorted(glob.glob(os.path.join(ROOT, "fixtures", "*.py")))
RUNNER = os.path.join(HERE, "rw_runner.py")
# The frontrun under test, whatever the subprocess's working directory.
PACKAGE_PATH = os.pathsep.join(
    [os.path.dirname(os.path.dirname(os.path.abspath(frontrun.__file__)))]
    + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)


def run(mode, policy, fixture, tmp_path):
    summary = tmp_path / f"{mode}-{policy}.json"
    env = dict(os.environ, PYTHONHASHSEED="0", FRONTRUN_RW_SUMMARY=str(summary), PYTHONPATH=PACKAGE_PATH)
    proc = subprocess.run(
        [sys.executable, RUNNER, mode, policy, fixture],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=os.path.dirname(fixture),
    )
    info = json.loads(summary.read_text()) if summary.exists() else None
    return proc, info


@pytest.fixture(scope="module")
def plain_runs():
    return {}


@pytest.mark.parametrize("fixture", FIXTURES, ids=os.path.basename)
@pytest.mark.parametrize("mode,policy", [("off", "all"), ("record", "all"), ("record", "shared")])
def test_fixture_output_unchanged(fixture, mode, policy, tmp_path, plain_runs):
    with open(fixture, "rb") as f:
        try:
            compile(f.read(), fixture, "exec")
        except SyntaxError:
            pytest.skip(f"{os.path.basename(fixture)} is not Python {sys.version_info[0]}.{sys.version_info[1]}")
    if fixture not in plain_runs:
        plain_runs[fixture] = run("plain", "all", fixture, tmp_path)[0]
    plain = plain_runs[fixture]
    rewritten, info = run(mode, policy, fixture, tmp_path)
    assert rewritten.stdout == plain.stdout
    assert rewritten.stderr == plain.stderr
    assert rewritten.returncode == plain.returncode
    assert info is not None
    assert info["errors"][0] == 0, info["errors"]
    if mode == "record":
        assert info["events"] > 0
