"""``python -m frontrun.rewrite``: parity with plain ``python`` and the rewriting it adds."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from hook_testutil import MARK, REWRITTEN, run  # noqa: E402

LAUNCHER = ["-m", "frontrun.rewrite"]

REPORT = """\
import json, sys
dunders = sorted(k for k in globals() if k.startswith("__"))
def local():
    return "MARK"
spec = globals().get("__spec__")
print(json.dumps({
    "argv": sys.argv, "path0": sys.path[0], "file": __file__, "name": __name__,
    "spec": None if spec is None else [spec.name, spec.origin, spec.parent],
    "cached": globals().get("__cached__", "<unset>"), "spec_cached": spec and spec.cached,
    "package": __package__, "dunders": dunders,
    "loader": type(__loader__).__name__, "doc": __doc__,
    "main_module_is_us": sys.modules["__main__"].__dict__ is globals(),
    "builtins": type(__builtins__).__name__, "local": local(), "helper": helper.value(),
    "json_loader": type(sys.modules["json"].__loader__).__name__,
}))
"""


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    (root / "app").mkdir(parents=True)
    (root / "scripts").mkdir()
    (root / "helper.py").write_text('def value():\n    return "MARK"\n')
    (root / "main.py").write_text('"""main doc"""\nimport helper\n' + REPORT)
    (root / "scripts" / "tool.py").write_text("import sys\nsys.path.insert(1, %r)\nimport helper\n" % str(root) + REPORT)
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "cli.py").write_text("import helper\n" + REPORT)
    (root / "app" / "__main__.py").write_text("import helper\n" + REPORT)
    (root / "rundir").mkdir()
    (root / "rundir" / "__main__.py").write_text("import sys\nsys.path.insert(1, %r)\nimport helper\n" % str(root) + REPORT)
    return root


def report(proc) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("target", ["main.py", "./main.py", "scripts/tool.py", "scripts/../main.py", "ABS"])
def test_script_parity_with_plain_python(project, target):
    if target == "ABS":
        target = str(project / "main.py")
    plain = report(run([target, "a", "--b"], cwd=project))
    launched = report(run([*LAUNCHER, target, "a", "--b"], cwd=project))
    assert launched == plain
    assert plain["argv"] == [target, "a", "--b"] and plain["name"] == "__main__"


@pytest.mark.parametrize("target", [["-m", "app.cli"], ["-m", "app"], ["rundir"]])
def test_module_and_directory_parity_with_plain_python(project, target):
    plain = report(run([*target, "x", "-y"], cwd=project))
    launched = report(run([*LAUNCHER, *target, "x", "-y"], cwd=project))
    # All three run through runpy, so the module's spec comes from the hook: its loader and cache
    # file are frontrun's, and everything else is identical.
    assert launched.pop("loader") == "FrontrunLoader" and plain.pop("loader") == "SourceFileLoader"
    assert "-frontrun-" in launched.pop("spec_cached") and "-frontrun-" not in plain.pop("spec_cached")
    launched_cached, plain_cached = launched.pop("cached"), plain.pop("cached")
    if sys.version_info < (3, 15):
        assert "-frontrun-" in launched_cached and "-frontrun-" not in plain_cached
    else:
        assert launched_cached == plain_cached == "<unset>"
    assert launched == plain


def test_main_script_and_its_imports_are_rewritten(project):
    plain = report(run(["main.py"], cwd=project, marker=True))
    launched = report(run([*LAUNCHER, "main.py"], cwd=project, marker=True))
    assert (plain["local"], plain["helper"]) == (MARK, MARK)
    assert (launched["local"], launched["helper"]) == (REWRITTEN, REWRITTEN)
    assert launched["json_loader"] == "SourceFileLoader"  # the standard library is left alone
    assert list((project / "__pycache__").glob("helper.*-frontrun-*.pyc"))
    assert not list((project / "__pycache__").glob("main.*"))  # like python: no pyc for __main__


def test_dash_m_module_is_rewritten(project):
    launched = report(run([*LAUNCHER, "-m", "app.cli"], cwd=project, marker=True))
    assert (launched["local"], launched["helper"]) == (REWRITTEN, REWRITTEN)


@pytest.mark.parametrize(
    "options, local, helper",
    [
        (["--exclude", "helper"], REWRITTEN, MARK),
        (["--include", "helper"], REWRITTEN, REWRITTEN),  # the main script unless excluded
        (["--include=helper", "--exclude=main.py"], MARK, REWRITTEN),
        (["--include", "helper=resources", "--policy", "all"], REWRITTEN, REWRITTEN),
        (["--no-config"], REWRITTEN, REWRITTEN),
    ],
)
def test_selection_options(project, options, local, helper):
    launched = report(run([*LAUNCHER, *options, "main.py"], cwd=project, marker=True))
    assert (launched["local"], launched["helper"]) == (local, helper)


def test_pyproject_configuration(project):
    (project / "pyproject.toml").write_text('[tool.frontrun]\nexclude = ["helper"]\n')
    launched = report(run([*LAUNCHER, "main.py"], cwd=project, marker=True))
    assert (launched["local"], launched["helper"]) == (REWRITTEN, MARK)
    launched = report(run([*LAUNCHER, "--no-config", "main.py"], cwd=project, marker=True))
    assert launched["helper"] == REWRITTEN


@pytest.mark.parametrize(
    "args, message",
    [
        (["--policy", "bogus", "main.py"], "unknown frontrun policy 'bogus'"),
        (["--frobnicate", "main.py"], "unknown option --frobnicate"),
        ([], "no script, -m module or -c command to run"),
        (["--include"], "--include needs a value"),
        (["-m"], "-m needs a module name"),
        (["-c"], "-c needs a command"),
    ],
)
def test_usage_errors(project, args, message):
    proc = run([*LAUNCHER, *args], cwd=project)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_help(project):
    proc = run([*LAUNCHER, "--help"], cwd=project)
    assert proc.returncode == 0 and "usage: python -m frontrun.rewrite" in proc.stdout


def test_double_dash_ends_the_options(project):
    launched = report(run([*LAUNCHER, "--", "main.py", "--include", "x"], cwd=project))
    assert launched["argv"] == ["main.py", "--include", "x"]


COMMAND_REPORT = """\
import json, sys
import helper
def local():
    return "MARK"
print(json.dumps({
    "argv": sys.argv, "path0": sys.path[0], "name": __name__, "file": globals().get("__file__"),
    "cached": globals().get("__cached__", "<unset>"), "spec": repr(__spec__), "loader": repr(__loader__),
    "dunders": sorted(k for k in globals() if k.startswith("__")), "doc": __doc__, "package": __package__,
    "main_module_is_us": sys.modules["__main__"].__dict__ is globals(),
}))
print(json.dumps({"local": local(), "helper": helper.value()}))
"""


@pytest.mark.parametrize("how", ["-c", "-"])
def test_command_and_standard_input_parity_with_plain_python(project, how):
    def both(args):
        if how == "-c":
            return run([*args, "-c", COMMAND_REPORT, "a", "-b"], cwd=project, marker=True)
        return run([*args, "-", "a", "-b"], cwd=project, marker=True, input=COMMAND_REPORT)

    plain, launched = both([]), both(LAUNCHER)
    assert plain.returncode == launched.returncode == 0, launched.stderr
    plain_globals, plain_marks = map(json.loads, plain.stdout.splitlines())
    launched_globals, launched_marks = map(json.loads, launched.stdout.splitlines())
    assert launched_globals == plain_globals
    assert plain_globals["argv"] == [how, "a", "-b"] and plain_globals["path0"] == ""
    # The command is the user's own code, like a script: rewritten, and so are its imports.
    assert plain_marks == {"local": MARK, "helper": MARK}
    assert launched_marks == {"local": REWRITTEN, "helper": REWRITTEN}


@pytest.mark.parametrize("case", ["uncaught", "chained", "in-import", "exit-3", "syntax-error", "error-importing",
                                  "error-in-import-module", "import-error", "error-in-exec-module",
                                  "import-error-in-get-source"])
def test_command_exit_status_and_traceback_parity(project, case):
    # `importlib.import_module` keeps importlib's frames in the traceback, an `import` does not.
    (project / "helper.py").write_text('def value():\n    return "MARK"\n\ndef explode():\n    raise LookupError("deep")\n')
    (project / "boom.py").write_text('x = 1\nraise ValueError("at import")\n')
    plain = run(["-c", EXIT_CASES[case]], cwd=project)
    launched = run([*LAUNCHER, "-c", EXIT_CASES[case]], cwd=project)
    assert (launched.returncode, launched.stdout, launched.stderr) == (plain.returncode, plain.stdout, plain.stderr)


def test_a_race_in_a_command_is_found_and_explained(project):
    command = textwrap.dedent(
        """\
        from frontrun import explore_dpor
        class S:
            n = 0
        def bump(s):
            v = s.n
            s.n = v + 1
        result = explore_dpor(S, [bump, bump], lambda s: s.n == 2)
        print(result.property_holds, result.num_explored)
        print(result.explanation)
        """
    )
    proc = run([*LAUNCHER, "-c", command], cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("False 2\nRace on S.n")
    assert "thread 0  read   <string>:5" in proc.stdout


def test_a_script_another_module_compiles_is_said_to_be_not_rewritten(project):
    # `-m cProfile script.py` compiles the script itself: the error said to use the launcher,
    # which the user was using.
    script = project / "race_under_profile.py"
    script.write_text(textwrap.dedent(
        """\
        import frontrun
        class S:
            n = 0
        def bump(s):
            s.n += 1
        try:
            frontrun.explore_dpor(S, [bump, bump], lambda s: s.n == 2)
        except frontrun.NotInstrumentedError as exc:
            print(exc)
        """
    ))
    proc = run([*LAUNCHER, "-m", "cProfile", str(script)], cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "that another module (cProfile, pdb, trace, ...) compiled and ran as __main__ itself" in proc.stdout
    assert "only the launcher rewrites" not in proc.stdout


EXIT_CASES = {
    "normal": "print('hi')",
    "exit-3": "import sys\nsys.exit(3)",
    "exit-message": "import sys\nsys.exit('bye now')",
    "exit-none": "raise SystemExit",
    "os-exit": "import os, sys\nsys.stdout.flush()\nos._exit(7)",
    "uncaught": "def f():\n    raise ValueError('boom')\nf()",
    "chained": "try:\n    1/0\nexcept ZeroDivisionError as e:\n    raise KeyError('k') from e",
    "in-import": "import helper\nhelper.explode()",
    "custom-excepthook": "import sys\nsys.excepthook = lambda t, v, tb: print('hooked', t.__name__)\nraise OSError(2)",
    "syntax-error": "x = 1\ndef f(:\n    pass",
    "syntax-error-in-import": "import broken",
    "import-error": "import no_such_module_here",
    "error-importing": "import boom",
    "error-in-import-module": "import importlib\nimportlib.import_module('boom')",
    # importlib's functions called from Python keep their frames, as only an import statement's
    # are trimmed (the launcher trimmed these too).
    "error-in-exec-module": "import importlib.util\nspec = importlib.util.spec_from_file_location('boom', 'boom.py')\n"
                            "spec.loader.exec_module(importlib.util.module_from_spec(spec))",
    "import-error-in-get-source": "import importlib.util\nimportlib.util.find_spec('json').loader.get_source('x')",
    "exit-in-thread-atexit": "import atexit\natexit.register(lambda: print('atexit ran'))\nraise RuntimeError('late')",
    "excepthook-exits": "import sys\ndef hook(*exc):\n    print('hooked')\n    sys.exit(5)\nsys.excepthook = hook\nraise ValueError",
    "excepthook-raises": "import sys\ndef hook(*exc):\n    1/0\nsys.excepthook = hook\nprint('out', end='')\nraise ValueError(1)",
    "excepthook-none": "import sys\nsys.excepthook = None\nraise ValueError(1)",
    "excepthook-missing": "import sys\ndel sys.excepthook\nraise ValueError(1)",
}


@pytest.mark.parametrize("case", sorted(EXIT_CASES))
@pytest.mark.parametrize("how", ["script", "module"])
def test_exit_status_output_and_traceback_parity(project, case, how):
    (project / "helper.py").write_text('def value():\n    return "MARK"\n\ndef explode():\n    raise LookupError("deep")\n')
    (project / "broken.py").write_text("def g(\n")
    (project / "case.py").write_text(EXIT_CASES[case] + "\n")
    target = ["case.py"] if how == "script" else ["-m", "case"]
    plain = run([*target], cwd=project)
    launched = run([*LAUNCHER, *target], cwd=project)
    assert launched.returncode == plain.returncode
    assert launched.stdout == plain.stdout
    # Import machinery frames are the one allowed difference: frontrun's loader replaces
    # importlib's get_code, so when runpy calls it directly (-m) its frozen frames differ.
    assert without_importlib_frames(launched.stderr) == without_importlib_frames(plain.stderr)
    # No frame of frontrun's own (3.14/3.15 themselves live under ~/.cache/frontrun/pythons).
    assert os.path.join("frontrun", "rewrite") not in launched.stderr
    assert 'frontrun' not in launched.stderr.replace(os.path.join(".cache", "frontrun", "pythons"), "")
    if how == "script":
        assert launched.stderr == plain.stderr


def without_importlib_frames(text: str) -> str:
    return "".join(line for line in text.splitlines(True) if 'File "<frozen importlib._bootstrap' not in line)


@pytest.mark.parametrize("target", [["path0.py"], ["-c", "import sys; print(sys.path)"], ["rundir"]])
def test_isolated_mode_keeps_the_script_directory_off_the_path(project, target):
    (project / "path0.py").write_text("import sys\nprint(sys.path)\n")
    (project / "rundir" / "__main__.py").write_text("import sys\nprint(sys.path)\n")
    plain = run(["-I", *target], cwd=project)
    launched = run(["-I", *LAUNCHER, *target], cwd=project)
    assert plain.returncode == launched.returncode == 0, launched.stderr
    assert launched.stdout == plain.stdout


def test_missing_targets_match_plain_python(project):
    for target in (["nothere.py"], ["-m", "nothere"], ["-m", "app.nothere"]):
        plain = run(target, cwd=project)
        launched = run([*LAUNCHER, *target], cwd=project)
        assert (launched.returncode, launched.stderr) == (plain.returncode, plain.stderr), target


INTERRUPTED = {
    "plain": ("raise KeyboardInterrupt\n", ""),
    # python dies of the signal after finishing: atexit handlers run, a custom hook reports.
    "hook-and-atexit": (
        "import atexit, sys\n"
        "atexit.register(lambda: print('atexit ran'))\n"
        "sys.excepthook = lambda t, v, tb: print('hooked', t.__name__)\n"
        "raise KeyboardInterrupt\n",
        "hooked KeyboardInterrupt\natexit ran\n",
    ),
    # The program's hook stays in place while it finishes: a thread that fails as it is joined
    # reports through it, an atexit handler sees it.
    "hook-while-finishing": (
        "import atexit, sys, threading, time\n"
        "def hook(t, v, tb):\n"
        "    print('hooked', t.__name__, v, flush=True)\n"
        "sys.excepthook = hook\n"
        "threading.excepthook = lambda a: sys.excepthook(a.exc_type, a.exc_value, a.exc_traceback)\n"
        "atexit.register(lambda: print('atexit sees', sys.excepthook.__name__))\n"
        "def late():\n"
        "    time.sleep(0.2)\n"
        "    raise ValueError('late')\n"
        "threading.Thread(target=late).start()\n"
        "raise KeyboardInterrupt\n",
        "hooked KeyboardInterrupt \nhooked ValueError late\natexit sees hook\n",
    ),
}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("case", sorted(INTERRUPTED))
def test_keyboard_interrupt_dies_of_sigint_like_python(project, case):
    source, printed = INTERRUPTED[case]
    (project / "case.py").write_text(source)
    plain = run(["case.py"], cwd=project)
    launched = run([*LAUNCHER, "case.py"], cwd=project)
    assert plain.returncode == launched.returncode == -signal.SIGINT
    assert plain.stdout == launched.stdout == printed
    assert launched.stderr == plain.stderr


def test_main_module_pickles_like_plain_python(project):
    (project / "case.py").write_text(textwrap.dedent("""\
        import pickle
        class Point:
            def __init__(self, x):
                self.x = x
        print(pickle.loads(pickle.dumps(Point(3))).x, Point.__module__)
    """))
    plain = run(["case.py"], cwd=project)
    launched = run([*LAUNCHER, "case.py"], cwd=project)
    assert launched.stdout == plain.stdout == "3 __main__\n"


def test_install_from_a_script_selects_the_script_directory(project, tmp_path):
    # Run from elsewhere: the project root (cwd) does not contain the script, its directory does.
    (project / "case.py").write_text(textwrap.dedent("""\
        import frontrun.rewrite
        frontrun.rewrite.install(use_config=False)
        import helper
        print(helper.value(), type(helper.__loader__).__name__)
    """))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run([str(project / "case.py")], cwd=elsewhere, marker=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{REWRITTEN} FrontrunLoader\n"


def test_compile_flags_are_the_modules_own(project):
    # frontrun's modules use `from __future__ import annotations`: it must not leak into user code.
    code = "def f(x: int):\n    pass\nprint(f.__annotations__)\n"
    (project / "case.py").write_text(code + "import annotated\n")
    (project / "annotated.py").write_text(code)
    plain = run(["case.py"], cwd=project)
    launched = run([*LAUNCHER, "case.py"], cwd=project)
    assert launched.stdout == plain.stdout == "{'x': <class 'int'>}\n" * 2


def test_optimization_level_has_its_own_cache_file(project):
    (project / "case.py").write_text("import opt\nprint(opt.f(), opt.f.__doc__)\n")
    (project / "opt.py").write_text('def f():\n    """doc"""\n    assert False, "MARK"\n    return 1\n')
    normal = run([*LAUNCHER, "case.py"], cwd=project)
    assert normal.returncode == 1 and "AssertionError: MARK" in normal.stderr
    optimized = run(["-OO", *LAUNCHER, "case.py"], cwd=project)
    assert optimized.returncode == 0 and optimized.stdout == "1 None\n"
    assert len(list((project / "__pycache__").glob("opt.*-frontrun-*.pyc"))) == 2
    assert run(["-OO", *LAUNCHER, "case.py"], cwd=project).stdout == "1 None\n"  # from its cache


def test_zip_application_parity_with_plain_python(project):
    import zipfile

    archive = project / "app.pyz"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("__main__.py", "import sys, json\nprint(json.dumps({'argv': sys.argv, 'path0': sys.path[0], "
                                  "'name': __name__, 'file': __file__}))\n")
    plain = report(run(["app.pyz", "z"], cwd=project))
    launched = report(run([*LAUNCHER, "app.pyz", "z"], cwd=project))
    assert launched == plain and plain["path0"] == str(archive)
    # A file that is not a zip runs as a script, whatever its name.
    (project / "notzip.pyz").write_text("print('{\"ran\": 1}')\n")
    assert report(run([*LAUNCHER, "notzip.pyz"], cwd=project)) == report(run(["notzip.pyz"], cwd=project)) == {"ran": 1}


def test_the_launcher_imports_little_before_the_hook(project):
    # Modules the launcher imported before installing the hook could not be rewritten if a user
    # included them; it keeps clear of the heavy ones.
    script = project / "modules.py"
    script.write_text("import sys, json\nprint(json.dumps(sorted(sys.modules)))\n")
    added = set(report(run([*LAUNCHER, "modules.py"], cwd=project))) - set(report(run(["modules.py"], cwd=project)))
    assert not added & {"inspect", "dataclasses", "typing", "zipfile", "shutil", "pathlib", "ast", "dis", "tokenize"}


def test_the_types_module_itself_can_be_rewritten(project):
    # A fresh import of `types` (as test.support's import_fresh_module does) is partly
    # initialised while its code is rewritten: the rewriter must not look CodeType up in it.
    (project / "fresh.py").write_text(
        "import sys, warnings\nwarnings.simplefilter('ignore')\nsys.modules.pop('types')\nimport types\n"
        "print(types.CodeType is type(compile('', '', 'exec')), '__frontrun_on__' in types.coroutine.__code__.co_names)\n"
    )
    proc = run([*LAUNCHER, "--include", "types", "fresh.py"], cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True"]


# Code that runs after the interpreter has begun to shut down: finalization restores the builtins
# CPython started with before its last collections, so the guard must be found elsewhere.
SHUTDOWN_MODULE = textwrap.dedent("""\
    log = []

    class Resource:
        def __init__(self, name):
            self.name = name
            self.me = self  # a cycle: only the collector frees it

        def __del__(self):
            log.append(self.name)
            print("closing", self.name, len(log))

    def worker():
        try:
            yield 1
        finally:
            log.append("gen")
            print("generator cleanup", len(log))

    r = Resource("in-module")
    g = worker()
    next(g)
""")


@pytest.mark.parametrize("policy", ["shared", "all"])
def test_rewritten_code_run_at_shutdown_behaves_as_plain(project, policy):
    (project / "atshutdown.py").write_text(SHUTDOWN_MODULE)
    (project / "case.py").write_text(SHUTDOWN_MODULE.replace("in-module", "in-main") + "import atshutdown\nprint('main done')\n")
    plain = run(["case.py"], cwd=project)
    assert plain.returncode == 0 and "closing in-module" in plain.stdout and "generator cleanup" in plain.stdout
    for attempt in ("rewritten", "from the cache"):
        launched = run([*LAUNCHER, "--policy", policy, "case.py"], cwd=project)
        # Which module's cycles the last collection frees first is not the launcher's to keep.
        assert sorted(launched.stdout.splitlines()) == sorted(plain.stdout.splitlines()), attempt
        assert (launched.returncode, launched.stderr) == (0, plain.stderr), attempt


def test_reports_made_at_exit_still_reach_the_runtime(project):
    # This atexit handler is registered before frontrun's own, so it runs after it: the guard
    # the rewritten module's globals got at exit must follow recording() on and off.
    (project / "counter.py").write_text("class Counter:\n    n = 0\n\ndef bump(c):\n    c.n = c.n + 1\n")
    (project / "case.py").write_text(textwrap.dedent("""\
        import atexit

        def at_exit():
            import counter
            from frontrun.rewrite import recording
            print(counter.__dict__.get("__frontrun_on__"))
            with recording() as events:
                counter.bump(counter.Counter)
            print(counter.__dict__.get("__frontrun_on__"), [(e.kind, e.key) for e in events])

        atexit.register(at_exit)
        import frontrun.rewrite
        frontrun.rewrite.install(include=["counter"], use_config=False)
        import counter
        print(counter.__dict__.get("__frontrun_on__"))
    """))
    proc = run(["case.py"], cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["None", "False", "False [('attr_load', 'n'), ('attr_store', 'n')]"]
    assert proc.stderr == ""


def test_a_module_the_interpreter_imported_at_start_up_is_named_without_advice_to_use_the_launcher(tmp_path):
    # The warning about modules imported before the hook told a launcher user to run the
    # program with the launcher.
    (tmp_path / "prog.py").write_text("print('ran')\n")
    done = run([*LAUNCHER, "--include", "collections", "prog.py"], cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == "ran\n", done.stderr
    assert "AlreadyImportedWarning" in done.stderr and "collections" in done.stderr, done.stderr
    assert "imported at interpreter start-up or by frontrun itself" in done.stderr
    assert "python -m frontrun.rewrite ..." not in done.stderr
    # Under -W error the program's warnings are errors; the launcher's says what it did and goes on.
    done = run(["-W", "error", *LAUNCHER, "--include", "collections", "prog.py"], cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == "ran\n", done.stderr
    assert "AlreadyImportedWarning" in done.stderr


ENDING = """\
import atexit, json, sys
def local():
    return "MARK"
atexit.register(lambda: print(json.dumps({"file_at_exit": "__file__" in sys.modules["__main__"].__dict__})))
print(json.dumps({"dunders": [k for k in globals() if k.startswith("__")], "local": local()}))
"""


def test_main_globals_and_their_end_match_plain_python(project):
    # The order of __main__'s globals, and python forgetting __file__ once the script has run.
    (project / "ending.py").write_text(ENDING)
    plain = run(["ending.py"], cwd=project)
    launched = run([*LAUNCHER, "ending.py"], cwd=project)
    assert plain.returncode == launched.returncode == 0, launched.stderr
    assert launched.stdout == plain.stdout
    assert '"file_at_exit": false' in plain.stdout


def test_a_compiled_script_runs_rewritten(project):
    import py_compile

    (project / "ending.py").write_text(ENDING)
    py_compile.compile(str(project / "ending.py"), cfile=str(project / "ending.pyc"), doraise=True)
    (project / "ending.py").unlink()
    plain = run(["ending.pyc", "x"], cwd=project, marker=True)
    launched = run([*LAUNCHER, "ending.pyc", "x"], cwd=project, marker=True)
    assert plain.returncode == launched.returncode == 0, launched.stderr
    assert f'"local": "{MARK}"' in plain.stdout
    assert launched.stdout == plain.stdout.replace(f'"local": "{MARK}"', f'"local": "{REWRITTEN}"')


@pytest.mark.parametrize("mode", ["script", "-c"])
def test_pdb_stepping_past_the_programs_end_stops_where_python_stops(project, mode):
    # `next` after the program's last line stopped in the launcher's own lines (its frames are
    # below the program's), where plain python has none. (threading is imported, as frontrun
    # imports it: python then stops in threading._shutdown too.)
    program = "import threading\nbreakpoint()\nx = 1\n"
    (project / "bp.py").write_text(program)
    args = ["bp.py"] if mode == "script" else ["-c", program]
    steps = "n\nn\nn\nc\n"
    plain = run(args, cwd=project, input=steps)
    launched = run([*LAUNCHER, *args], cwd=project, input=steps)
    assert "--Return--" in plain.stdout and "_shutdown()" in plain.stdout, plain.stdout
    assert (launched.returncode, launched.stdout) == (plain.returncode, plain.stdout), launched.stdout


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_a_damaged_compiled_script_fails_as_python_says(project, damage):
    # marshal's own EOFError or ValueError came out instead of python's RuntimeError.
    import py_compile

    (project / "ending.py").write_text(ENDING)
    py_compile.compile(str(project / "ending.py"), cfile=str(project / "ending.pyc"), doraise=True)
    good = (project / "ending.pyc").read_bytes()
    (project / "ending.pyc").write_bytes(good[:20] if damage == "truncated" else good[:16] + b"\xff" * 40)
    plain = run(["ending.pyc"], cwd=project)
    launched = run([*LAUNCHER, "ending.pyc"], cwd=project)
    assert plain.returncode == launched.returncode == 1
    assert plain.stderr.splitlines()[-1] == launched.stderr.splitlines()[-1] == "RuntimeError: Bad code object in .pyc file"


@pytest.mark.parametrize("ending", ["1/0", "raise SystemExit(3)"])
def test_interactive_mode_after_the_program_sees_its_exception(project, ending):
    # `python -i`: the traceback as python prints it, then the prompt, where pdb.pm() would
    # find the program's exception (not the launcher's exit).
    (project / "fails.py").write_text(f"import sys\nx = 5\n{ending}\n")
    asked = 'print("last:", repr(sys.last_value), x)\n'
    plain = run(["-i", "fails.py"], cwd=project, input=asked)
    launched = run(["-i", *LAUNCHER, "fails.py"], cwd=project, input=asked)
    assert "last:" in plain.stdout
    assert (launched.returncode, launched.stdout, launched.stderr) == (plain.returncode, plain.stdout, plain.stderr)


def test_a_syntax_error_caught_around_an_import_shows_what_python_shows(project):
    # The import statement drops importlib's frames up to its `_call_with_frames_removed`: the
    # loader's own frames in between kept it from doing so.
    (project / "broken.py").write_text("x = (\n")
    (project / "catches.py").write_text(
        "import traceback\ntry:\n    import broken\nexcept SyntaxError:\n    traceback.print_exc()\n"
        "try:\n    __import__('broken')\nexcept SyntaxError:\n    traceback.print_exc()\n")
    plain = run(["catches.py"], cwd=project)
    launched = run([*LAUNCHER, "catches.py"], cwd=project)
    assert plain.returncode == launched.returncode == 0, launched.stderr
    assert "importlib" not in plain.stderr and launched.stderr == plain.stderr


def test_the_programs_modules_named_like_the_launchers_are_its_own(project):
    # json, fnmatch, threading: modules the launcher itself imports. Beside the script, python
    # gives the script its own; and one in the current directory is not the launcher's either.
    app = project / "app2"
    app.mkdir()
    for name in ("json", "fnmatch", "threading"):
        (app / f"{name}.py").write_text(f"WHO = 'local {name}'\n")
    (app / "main.py").write_text(
        "import json, fnmatch, threading\nprint(json.WHO, fnmatch.WHO, threading.WHO)\n")
    (project / "fnmatch.py").write_text("print('the current directory's fnmatch ran')\n")
    plain = run(["app2/main.py"], cwd=project)
    launched = run([*LAUNCHER, "app2/main.py"], cwd=project)
    assert plain.stdout == "local json local fnmatch local threading\n", plain.stderr
    assert (launched.returncode, launched.stdout) == (0, plain.stdout), launched.stderr


def test_an_object_posing_as_a_module_in_sys_modules_is_left_alone_at_exit(project):
    # cffi's Lib claims ModuleType as its __class__: the exit handler that keeps the guard names
    # in rewritten modules failed on it (TypeError), and stopped before the modules after it.
    (project / "poser.py").write_text(
        "import sys, types\n"
        "class Poser:\n"
        "    __class__ = property(lambda self: types.ModuleType)\n"
        "sys.modules['poser_lib'] = Poser()\n"
        "print('ran')\n")
    plain = run(["poser.py"], cwd=project)
    launched = run([*LAUNCHER, "poser.py"], cwd=project)
    assert (launched.returncode, launched.stdout, launched.stderr) == (plain.returncode, plain.stdout, plain.stderr)


# A counter whose increment is a read and a write: two threads can lose one.
COUNTER = "class Counter:\n    def __init__(self):\n        self.n = 0\n\n    def incr(self):\n        self.n += 1\n"


def test_a_pass_through_code_of_yours_left_unrewritten_is_warned_of(tmp_path):
    # The threads reach their race only through a module the selection leaves out: one execution,
    # nothing shared seen. It passed, unsaid; now a NotInstrumentedWarning names that code.
    (tmp_path / "counter.py").write_text(COUNTER)
    (tmp_path / "main.py").write_text(
        "import warnings\n"
        "from frontrun import explore_dpor\n"
        "from counter import Counter\n\n"
        "def bump(c):\n    c.incr()\n\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    r = explore_dpor(Counter, [bump, bump], lambda c: c.n == 2)\n"
        "print('RESULT', r.property_holds, r.num_explored)\n"
        "for w in seen:\n"
        "    print('WARNING', w.category.__name__, w.filename.rsplit('/', 1)[-1], w.message)\n"
    )
    excluded = run(["-m", "frontrun.rewrite", "--exclude", "counter", "main.py"], cwd=tmp_path)
    out = excluded.stdout + excluded.stderr
    assert "RESULT True 1" in out, out
    incr = "Counter.incr" if sys.version_info >= (3, 11) else "incr"  # (3.10 code has no qualname)
    assert ("WARNING NotInstrumentedWarning main.py frontrun explored one execution: the threads shared nothing "
            "it saw, but they ran code of yours that is not rewritten, whose accesses it cannot see: "
            f"{incr} (counter.py:5)") in out, out
    whole = run(["-m", "frontrun.rewrite", "main.py"], cwd=tmp_path)
    out = whole.stdout + whole.stderr
    assert "RESULT False" in out and "WARNING" not in out, out


def app_module(root, name, source):
    """Writes ``app/<name>.py`` (and the package's ``__init__.py``) under ``root``."""
    (root / "app").mkdir(exist_ok=True)
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / f"{name}.py").write_text(source)


def counter_exploration(module, threads):
    """A script's lines that explore two threads (``threads``) on ``module``'s Counter and print
    what the exploration raised."""
    return ("from frontrun import explore_dpor\n"
            f"from {module} import Counter\n"
            "try:\n"
            f"    explore_dpor(Counter, [{threads}], lambda c: c.n == 2)\n"
            "except Exception as e:\n"
            "    print('RAISED', type(e).__name__, e)\n")


def test_the_not_instrumented_error_names_the_unrewritten_code_the_threads_ran(tmp_path):
    # The error named only the thread functions (a script's lambdas), not the module that holds
    # the state they reach, which is the one to add to the include patterns.
    app_module(tmp_path, "counter", COUNTER)
    (tmp_path / "main.py").write_text(
        "import frontrun.rewrite\n"
        "frontrun.rewrite.install(include=['main'])\n"
        + counter_exploration("app.counter", "lambda c: c.incr(), lambda c: c.incr()"))
    proc = run(["main.py"], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert "RAISED NotInstrumentedError frontrun saw no shared-state access" in out, out
    assert "<lambda> (__main__, " in out, out
    incr = "Counter.incr" if sys.version_info >= (3, 11) else "incr"  # (3.10 code has no qualname)
    assert (f"* {incr} (app.counter, {tmp_path / 'app' / 'counter.py'}), which the threads ran, is not selected "
            "by the import hook (include: main;") in out, out


def test_a_module_left_out_by_an_exclude_pattern_is_said_to_be(tmp_path):
    # The advice was to add the module to the include patterns, which it matched already: the
    # exclude pattern wins, and the same error came back.
    (tmp_path / "counter.py").write_text(COUNTER)
    (tmp_path / "main.py").write_text(counter_exploration("counter", "Counter.incr, Counter.incr"))
    proc = run(["-m", "frontrun.rewrite", "--include", "counter", "--exclude", "counter", "main.py"], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert "RAISED NotInstrumentedError" in out, out
    assert "is left out by an exclude pattern (include: counter" in out and "take it out of the exclude" in out, out
    assert "add it to the include patterns" not in out, out


def test_thread_functions_left_unrewritten_are_warned_of_in_a_search_that_saw_other_code(tmp_path):
    # The library the threads call is selected and reports; the thread functions' own module is
    # not, so their read-then-write of `s.n` is unseen. The search passed in two interleavings,
    # unsaid.
    app_module(tmp_path, "store", "class Store:\n    def __init__(self):\n        self.items = {}\n        self.n = 0\n\n"
                                  "    def put(self, k, v):\n        self.items[k] = v\n")
    (tmp_path / "body.py").write_text(
        "import warnings\n"
        "from frontrun import explore_dpor\n"
        "from app.store import Store\n\n"
        "def worker(s):\n    s.put('a', 1)\n    v = s.n\n    s.n = v + 1\n\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    r = explore_dpor(Store, [worker, worker], lambda s: s.n == 2)\n"
        "print('RESULT', r.property_holds, r.num_explored)\n"
        "for w in seen:\n"
        "    print('WARNING', w.category.__name__, w.filename.rsplit('/', 1)[-1], w.message)\n")
    (tmp_path / "main.py").write_text(
        "import sys, frontrun.rewrite\nfrontrun.rewrite.install(include=sys.argv[1:])\nimport body\n")
    proc = run(["main.py", "app.*"], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert "RESULT True 2" in out, out
    assert ("WARNING NotInstrumentedWarning body.py frontrun explored 2 interleavings, but thread functions of "
            "yours are not rewritten: worker (body.py:5)") in out, out
    proc = run(["main.py", "app.*", "body"], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert "RESULT False" in out and "WARNING" not in out, out


def test_a_path_pattern_on_the_command_line_is_from_the_current_directory(tmp_path):
    # `--include tests/` with the script elsewhere: the pattern was taken from the script's
    # directory, and selected nothing, unsaid.
    project, elsewhere = tmp_path / "proj", tmp_path / "tools"
    (project / "tests").mkdir(parents=True)
    elsewhere.mkdir()
    (project / "tests" / "probe_mod.py").write_text("def f(o):\n    return o.x\n")
    (elsewhere / "run.py").write_text(
        "import sys\nsys.path.insert(0, 'tests')\nimport probe_mod\n"
        "print('REWRITTEN', '__frontrun_on__' in probe_mod.f.__code__.co_names)\n"
    )
    for pattern in ("tests/", "./tests/*.py", "tests/=all"):
        proc = run(["-m", "frontrun.rewrite", "--no-config", "--policy", "all", "--include", pattern,
                    str(elsewhere / "run.py")], cwd=project)
        assert "REWRITTEN True" in proc.stdout, (pattern, proc.stdout + proc.stderr)
    proc = run(["-m", "frontrun.rewrite", "--no-config", "--policy", "all", "--include", "other/",
                str(elsewhere / "run.py")], cwd=project)
    assert "REWRITTEN False" in proc.stdout, proc.stdout + proc.stderr


def test_threads_of_the_launched_script_that_touch_nothing_are_said_to_be_rewritten(tmp_path):
    # `def idle(s): pass` has nothing to rewrite: its code is the original's, and the diagnosis
    # said the script had been compiled by another module (cProfile, pdb) instead of the launcher.
    (tmp_path / "idle.py").write_text(
        "from frontrun import explore_dpor\n\n"
        "def idle(s):\n    pass\n\n"
        "try:\n    explore_dpor(object, [idle, idle])\nexcept Exception as e:\n    print('RAISED', e)\n"
    )
    proc = run(["-m", "frontrun.rewrite", "idle.py"], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert "RAISED frontrun saw no shared-state access" in out, out
    assert "is rewritten, and touched no shared state itself" in out, out
    assert "another module (cProfile, pdb" not in out, out
