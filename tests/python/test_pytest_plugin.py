"""The pytest plugin, run in child pytest processes on a small project."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from hook_testutil import MARK, REWRITTEN, entry_point_installed, run  # noqa: E402

AUTOLOADED = entry_point_installed()
# Without the installed distribution the entry point is missing: load the plugin by module name.
LOAD = [] if AUTOLOADED else ["-p", "frontrun.pytest_plugin"]

TEST_MODULE = """\
import importlib.abc, json, sys
import mypkg

def local():
    return "MARK"

def test_report():
    print("REPORT " + json.dumps({
        "pkg": mypkg.value(), "test": local(),
        "pkg_loader": type(mypkg.__loader__).__name__,
        "test_loader": type(sys.modules[__name__].__loader__).__name__,
        "is_loader": isinstance(sys.modules[__name__].__loader__, importlib.abc.Loader),
    }))

def test_rich_assertion():
    x = [1, 2, 3]
    assert x == [1, 2, 4]
"""


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    (root / "mypkg").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "mypkg" / "__init__.py").write_text('def value():\n    return "MARK"\n')
    (root / "tests" / "test_chain.py").write_text(TEST_MODULE)
    (root / "pyproject.toml").write_text('[project]\nname = "demo"\n\n[tool.frontrun]\n')
    return root


def without_frontrun_table(project: Path) -> None:
    (project / "pyproject.toml").write_text('[project]\nname = "demo"\n')


def pytest_run(project, *args, env_extra=None, load=True):
    proc = run(
        ["-m", "pytest", "-s", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
         *(LOAD if load else []), *args, "tests"],
        cwd=project, marker=True, env_extra=env_extra,
    )
    output = proc.stdout + proc.stderr
    reports = [json.loads(line.split("REPORT ", 1)[1]) for line in proc.stdout.splitlines() if "REPORT " in line]
    return proc, output, (reports[0] if reports else None)


def assert_rich_assertion(proc, output):
    assert proc.returncode == 1, output  # exactly the one deliberate failure
    assert "1 failed, 1 passed" in output
    assert "assert [1, 2, 3] == [1, 2, 4]" in output
    assert "At index 2 diff: 3 != 4" in output


def test_assertion_rewriting_and_frontrun_rewriting_both_apply(project):
    proc, output, report = pytest_run(project)
    assert report == {"pkg": REWRITTEN, "test": REWRITTEN,
                      "pkg_loader": "FrontrunLoader", "test_loader": "PytestChainLoader", "is_loader": True}
    assert_rich_assertion(proc, output)  # pytest's assertion rewriting is still there
    assert "frontrun: rewriting on" in output
    # pytest cached its half; frontrun cached the package (test modules are not cached by frontrun).
    assert list((project / "tests" / "__pycache__").glob("test_chain.*-pytest-*.pyc"))
    assert not list((project / "tests" / "__pycache__").glob("*-frontrun-*"))
    assert list((project / "mypkg" / "__pycache__").glob("__init__.*-frontrun-*.pyc"))


def test_second_run_uses_both_caches(project):
    pytest_run(project)
    proc, output, report = pytest_run(project)
    assert (report["pkg"], report["test"]) == (REWRITTEN, REWRITTEN)
    assert_rich_assertion(proc, output)


def test_off_without_configuration(project):
    without_frontrun_table(project)
    proc, output, report = pytest_run(project)
    assert (report["pkg"], report["test"]) == (MARK, MARK)
    assert report["test_loader"] == "AssertionRewritingHook"
    assert "frontrun: rewriting on" not in output
    assert_rich_assertion(proc, output)


@pytest.mark.parametrize(
    "args, ini, pkg, test",
    [
        (["--frontrun"], "", REWRITTEN, REWRITTEN),
        (["--frontrun-include", "mypkg"], "", REWRITTEN, MARK),
        (["--frontrun-include", "tests/"], "", MARK, REWRITTEN),
        (["--frontrun-exclude", "mypkg"], "", MARK, REWRITTEN),
        (["--frontrun-policy", "all"], "", REWRITTEN, REWRITTEN),
        ([], "frontrun = true", REWRITTEN, REWRITTEN),
        ([], "frontrun_include =\n    mypkg", REWRITTEN, MARK),
        (["--frontrun-include", "test_*"], "frontrun_include = mypkg", MARK, REWRITTEN),  # command line wins
        # By module name, though pytest imports tests/test_chain.py (no __init__.py) as test_chain:
        # a module-name pattern matches the file's dotted path under the project root too.
        (["--frontrun-include", "tests"], "", MARK, REWRITTEN),
        (["--frontrun-include", "tests.test_*"], "", MARK, REWRITTEN),
        (["--frontrun-exclude", "tests"], "", REWRITTEN, MARK),
    ],
)
def test_enabling_by_options_and_ini(project, args, ini, pkg, test):
    without_frontrun_table(project)
    if ini:
        (project / "pytest.ini").write_text("[pytest]\n" + ini + "\n")
    proc, output, report = pytest_run(project, *args)
    assert (report["pkg"], report["test"]) == (pkg, test), output
    assert_rich_assertion(proc, output)
    assert "matches the include pattern" not in output


def test_a_mistyped_include_pattern_is_noted(project):
    # Rewriting nothing is not silent: the terminal summary names the pattern that matched nothing.
    without_frontrun_table(project)
    proc, output, report = pytest_run(project, "--frontrun-include", "mypkgg", "--frontrun-include", "mypkg")
    assert (report["pkg"], report["test"]) == (REWRITTEN, MARK), output
    assert "no module this session imported matches the include pattern 'mypkgg'" in output
    assert "'mypkg'" not in output.split("include pattern", 1)[1].split("\n")[0]


@pytest.mark.parametrize("pattern", ["otherpkg", "other*", "otherpkg.*", "tools/*.py", "tools/"])
def test_an_include_pattern_of_modules_this_run_did_not_import_is_not_called_mistyped(project, pattern):
    # Running some of the tests (a file, -k, --lf), or pytest-xdist's controller, which imports
    # none of them: the note called a pattern naming existing modules a mistyped name.
    without_frontrun_table(project)
    (project / "otherpkg").mkdir()
    (project / "otherpkg" / "__init__.py").write_text("")
    (project / "otherpkg" / "mod.py").write_text("X = 1\n")
    (project / "tools").mkdir()
    (project / "tools" / "helper.py").write_text("X = 1\n")
    proc, output, report = pytest_run(project, "--frontrun-include", "mypkg", "--frontrun-include", pattern,
                                      "--frontrun-include", "nosuchpkg")
    assert (report["pkg"], report["test"]) == (REWRITTEN, MARK), output
    assert "no module this session imported matches the include pattern 'nosuchpkg'," in output, output


def test_an_include_pattern_whose_modules_failed_to_compile_is_not_called_mistyped(project):
    # Both selected modules have syntax errors: the collection errors say so, as without
    # frontrun; the pattern is not "a mistyped name".
    without_frontrun_table(project)
    (project / "mypkg" / "__init__.py").write_text("def value(:\n")
    (project / "tests" / "test_chain.py").write_text("import mypkg\n")
    proc, output, _ = pytest_run(project, "--frontrun-include", "mypkg", "--frontrun-include", "tests")
    assert "SyntaxError" in output and proc.returncode != 0, output
    assert "matches the include pattern" not in output, output


def test_no_frontrun_wins_over_configuration(project):
    proc, output, report = pytest_run(project, "--no-frontrun")
    assert (report["pkg"], report["test"]) == (MARK, MARK)


def test_disabled_plugin(project):
    proc, output, report = pytest_run(project, "-p", "no:frontrun", load=False)
    assert (report["pkg"], report["test"]) == (MARK, MARK)
    assert_rich_assertion(proc, output)


@pytest.mark.parametrize("loaded_by", ["conftest", "-p"])
def test_disabled_plugin_stays_off_when_loaded_by_module_name(project, loaded_by):
    # `-p no:frontrun` blocks the entry point's name; a conftest's `pytest_plugins` (or `-p`) loads
    # the same module by its module name, and it installed the hook all the same.
    args = ["-p", "no:frontrun"]
    if loaded_by == "conftest":
        (project / "conftest.py").write_text('pytest_plugins = ["frontrun.pytest_plugin"]\n')
    else:
        args += ["-p", "frontrun.pytest_plugin"]
    proc, output, report = pytest_run(project, *args, load=False)
    assert (report["pkg"], report["test"]) == (MARK, MARK), output
    assert "frontrun: rewriting on" not in output
    assert_rich_assertion(proc, output)


def test_the_table_is_found_from_the_configuration_file_pytest_chose(project, tmp_path):
    # With --rootdir elsewhere, [tool.frontrun] was looked for from the rootdir and not found.
    (project / "pyproject.toml").write_text(
        '[project]\nname = "demo"\n\n[tool.pytest.ini_options]\naddopts = "-ra"\n\n[tool.frontrun]\n'
        'include = ["mypkg"]\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc, output, report = pytest_run(project, f"--rootdir={elsewhere}", "-c", str(project / "pyproject.toml"))
    assert f"rootdir: {elsewhere}" in output, output
    assert (report["pkg"], report["test"]) == (REWRITTEN, MARK), output
    assert "frontrun: rewriting on (include: mypkg;" in output


def test_plain_assert_mode_rewrites_test_modules_directly(project):
    proc, output, report = pytest_run(project, "--assert=plain")
    assert report == {"pkg": REWRITTEN, "test": REWRITTEN,
                      "pkg_loader": "FrontrunLoader", "test_loader": "FrontrunLoader", "is_loader": True}


def test_bad_policy_in_ini_is_a_usage_error(project):
    (project / "pytest.ini").write_text("[pytest]\nfrontrun_policy = fastest\n")
    proc, output, report = pytest_run(project)
    assert proc.returncode == 4
    assert "frontrun: unknown frontrun policy 'fastest'" in output


@pytest.mark.parametrize("autoload", [True, False])
@pytest.mark.parametrize("form", ["-p", "pytest_plugins"])
def test_explicit_plugin_loading(project, autoload, form):
    if autoload and not AUTOLOADED:
        pytest.skip("frontrun is not installed as a distribution: no entry point to collide with")
    args = []
    if form == "-p":
        args = ["-p", "frontrun.pytest_plugin"]
    else:
        (project / "conftest.py").write_text('pytest_plugins = ["frontrun.pytest_plugin"]\n')
    env = {} if autoload else {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc, output, report = pytest_run(project, *args, env_extra=env, load=False)
    assert "already registered" not in output
    assert (report["pkg"], report["test"]) == (REWRITTEN, REWRITTEN), output
    assert_rich_assertion(proc, output)


def test_entry_point_name_with_dash_p(project):
    if not AUTOLOADED:
        pytest.skip("frontrun is not installed as a distribution")
    proc, output, report = pytest_run(project, "-p", "frontrun", env_extra={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
                                      load=False)
    assert (report["pkg"], report["test"]) == (REWRITTEN, REWRITTEN), output


def test_conftest_one_liner_without_the_plugin(project):
    without_frontrun_table(project)
    (project / "conftest.py").write_text("import frontrun.rewrite; frontrun.rewrite.install()\n")
    proc, output, report = pytest_run(project, "-p", "no:frontrun", load=False)
    assert report == {"pkg": REWRITTEN, "test": REWRITTEN,
                      "pkg_loader": "FrontrunLoader", "test_loader": "PytestChainLoader", "is_loader": True}
    assert_rich_assertion(proc, output)
    assert "imported before" not in output  # the conftest calling install() is not "already imported"


def test_late_plugin_instruments_earlier_imports_and_warns(project):
    (project / "conftest.py").write_text('import mypkg\n\npytest_plugins = ["frontrun.pytest_plugin"]\n')
    proc, output, report = pytest_run(project, env_extra={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}, load=False)
    assert report["pkg"] == REWRITTEN and report["pkg_loader"] == "SourceFileLoader"  # in place
    assert report["test"] == REWRITTEN
    assert ("imported before the plugin could install the import hook (by pytest itself, a -p plugin or a "
            "conftest): mypkg") in output
    assert "run pytest under the launcher: python -m frontrun.rewrite -m pytest ...\n" in output  # one full stop


def test_modules_pytest_imported_first_are_noted_not_warned_as_errors(project):
    # `minversion` makes pytest import `packaging` before the plugin installs its hook; under
    # `filterwarnings = error` the note that they were instrumented in place ended the session.
    (project / "pyproject.toml").write_text(
        '[project]\nname = "demo"\n\n[tool.pytest.ini_options]\nminversion = "6.2"\nfilterwarnings = ["error"]\n\n'
        '[tool.frontrun]\ninclude = ["packaging*", "mypkg*", "tests*"]\n'
    )
    proc, output, report = pytest_run(project)
    assert report is not None and report["pkg"] == REWRITTEN, output
    assert_rich_assertion(proc, output)
    assert "a -p plugin or a conftest): packaging" in output


@pytest.mark.parametrize("flags", [(), ("-q",), ("-p", "no:terminal")])
def test_the_in_place_note_survives_output_capture(project, flags):
    # Without -s pytest captures output from before the first conftest until the session ends:
    # the note written when the hook was installed was swallowed. It is in the terminal summary
    # now (quiet runs too), or on stderr at the end without a terminal.
    # `-p mypkg`: pytest imports it as a plugin before the hook is installed.
    proc = run(["-m", "pytest", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
                "-p", "mypkg", "-p", "frontrun.pytest_plugin", *flags, "tests"],
               cwd=project, marker=True, env_extra={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert output.count("a -p plugin or a conftest): mypkg") == 1, output


def test_importlib_import_mode(project):
    proc, output, report = pytest_run(project, "--import-mode=importlib")
    assert report == {"pkg": REWRITTEN, "test": REWRITTEN,
                      "pkg_loader": "FrontrunLoader", "test_loader": "PytestChainLoader", "is_loader": True}
    assert_rich_assertion(proc, output)


def test_under_the_launcher_without_plugin_configuration(project):
    without_frontrun_table(project)
    proc = run(["-m", "frontrun.rewrite", "-m", "pytest", "-s", "-p", "no:cacheprovider",
                "-W", "ignore::pytest.PytestAssertRewriteWarning", *LOAD, "tests"], cwd=project, marker=True)
    output = proc.stdout + proc.stderr
    [report] = [json.loads(line.split("REPORT ", 1)[1]) for line in proc.stdout.splitlines() if "REPORT " in line]
    assert report == {"pkg": REWRITTEN, "test": REWRITTEN,
                      "pkg_loader": "FrontrunLoader", "test_loader": "PytestChainLoader", "is_loader": True}
    assert_rich_assertion(proc, output)


def test_under_the_launcher_its_options_stand_beside_the_projects_table(project):
    # With a [tool.frontrun] table the plugin installed a hook of its own, from the table alone,
    # in place of the launcher's: `--include tests/` was dropped and the tests ran un-rewritten.
    (project / "pyproject.toml").write_text('[project]\nname = "demo"\n\n[tool.frontrun]\ninclude = ["mypkg"]\n')
    proc = run(["-m", "frontrun.rewrite", "--include", "mypkg", "--include", "tests/", "-m", "pytest", "-s",
                "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning", *LOAD, "tests"],
               cwd=project, marker=True)
    output = proc.stdout + proc.stderr
    [report] = [json.loads(line.split("REPORT ", 1)[1]) for line in proc.stdout.splitlines() if "REPORT " in line]
    assert (report["pkg"], report["test"]) == (REWRITTEN, REWRITTEN), output
    assert "frontrun: rewriting on (include: mypkg, tests/" in output, output
    assert_rich_assertion(proc, output)


def test_under_the_launcher_pytest_has_no_rewrite_warning_about_frontrun(project):
    # The launcher imports frontrun before pytest loads its plugin by entry point; pytest would
    # warn that it cannot assert-rewrite it (frontrun's docstring says PYTEST_DONT_REWRITE).
    without_frontrun_table(project)
    proc = run(["-m", "frontrun.rewrite", "-m", "pytest", "-s", "-p", "no:cacheprovider",
                "-W", "error::pytest.PytestAssertRewriteWarning", "tests"], cwd=project, marker=True)
    output = proc.stdout + proc.stderr
    assert "PytestAssertRewriteWarning" not in output and "already imported" not in output, output
    assert_rich_assertion(proc, output)


def test_a_pytest_the_launched_program_starts_gets_the_launchers_selection(project):
    # pytest-xdist's workers are such processes: the plugin installs the launcher's hook there.
    without_frontrun_table(project)
    (project / "run_child.py").write_text(
        "import subprocess, sys\n"
        "child = subprocess.run([sys.executable, '-m', 'pytest', '-s', '-p', 'no:cacheprovider', '-W',\n"
        f"                       'ignore::pytest.PytestAssertRewriteWarning', *{LOAD!r}, 'tests'],\n"
        "                      capture_output=True, text=True)\n"
        "print(child.stdout + child.stderr)\n"
    )
    proc = run(["-m", "frontrun.rewrite", "--include", "mypkg", "run_child.py"], cwd=project, marker=True)
    output = proc.stdout + proc.stderr
    [report] = [json.loads(line.split("REPORT ", 1)[1]) for line in proc.stdout.splitlines() if "REPORT " in line]
    assert (report["pkg"], report["test"]) == (REWRITTEN, MARK), output  # as --include mypkg says
    assert report["pkg_loader"] == "FrontrunLoader"
    # Without the launcher above it, the same pytest run rewrites nothing (no configuration).
    _, _, plain = pytest_run(project)
    assert (plain["pkg"], plain["test"]) == (MARK, MARK)


def test_under_the_launcher_a_selected_pytest_plugin_is_instrumented_and_named(project):
    # `-p mypkg` (or a package's pytest11 entry point): pytest's assertion hook, which pytest
    # puts in front of the launcher's, imports the plugin itself. It ran un-rewritten, unsaid.
    proc = run(["-m", "frontrun.rewrite", "-m", "pytest", "-s", "-p", "no:cacheprovider",
                "-W", "ignore::pytest.PytestAssertRewriteWarning", "-p", "mypkg", *LOAD, "tests"],
               cwd=project, marker=True)
    output = proc.stdout + proc.stderr
    [report] = [json.loads(line.split("REPORT ", 1)[1]) for line in proc.stdout.splitlines() if "REPORT " in line]
    assert (report["pkg"], report["test"]) == (REWRITTEN, REWRITTEN), output
    assert output.count("loaded these selected modules itself (named with -p, or imported by a plugin): mypkg") == 1, output
    assert "import such a module from a conftest.py instead of naming it with -p" in output
    # (The launcher's hook was there first: not "imported before the plugin could install" it.)
    assert "imported before the plugin" not in output and "..." not in output
    assert_rich_assertion(proc, output)


def test_an_unknown_table_key_under_w_error_is_a_usage_error(project):
    # A misspelt key is warned of; under `-W error` that warning ended the session with pytest's
    # internal traceback, not a message.
    (project / "pyproject.toml").write_text('[project]\nname = "demo"\n\n[tool.frontrun]\nincldue = ["mypkg"]\n')
    proc, output, report = pytest_run(project, "-W", "error")
    assert proc.returncode == 4, output
    assert "ERROR: frontrun: " in output and "unknown [tool.frontrun] key 'incldue' ignored" in output, output
    assert "Traceback" not in output, output
    proc, output, report = pytest_run(project)
    assert "unknown [tool.frontrun] key 'incldue' ignored" in output and report is not None, output
