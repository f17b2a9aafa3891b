"""The import hook in-process: spec fidelity, selection, rewriting, instrument_module."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.resources
import importlib.util
import inspect
import pkgutil
import runpy
import subprocess
import sys
import textwrap
import types
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from hook_testutil import MARK, REWRITTEN, canonical, code_objects, marker, run, sandbox  # noqa: E402,F401

import frontrun.rewrite as fr  # noqa: E402
from frontrun.rewrite import _core, _hook  # noqa: E402


# --- rewrite_code ------------------------------------------------------------------------------


def test_rewrite_code_is_pure_and_validates():
    code = compile("def f():\n    return 'MARK'\n", "<t>", "exec")
    before = canonical(code)
    result = fr.rewrite_code(code)
    assert isinstance(result, types.CodeType)
    assert canonical(code) == before  # the input is never modified
    for policy in fr.POLICIES:
        assert isinstance(fr.rewrite_code(code, policy), types.CodeType)
    with pytest.raises(ValueError, match="unknown frontrun policy"):
        fr.rewrite_code(code, "everything")
    with pytest.raises(TypeError):
        fr.rewrite_code("x = 1")


def test_rewrite_code_goes_through_the_rewriter(marker):
    code = compile("def f():\n    return 'MARK'\n", "<t>", "exec")
    result = fr.rewrite_code(code, "all", ["b.m", "a.m", "b.m"])
    namespace = {}
    exec(result, namespace)
    assert namespace["f"]() == REWRITTEN
    assert marker[-1][2] == "all"


def test_unsupported_version_leaves_code_and_warns_once(monkeypatch):
    class UnsupportedVersion(ValueError):
        pass

    def refuse(code, policy, methods):
        raise UnsupportedVersion("no tables for this interpreter")

    monkeypatch.setattr(_core, "UnsupportedVersion", UnsupportedVersion)
    monkeypatch.setattr(_core, "_rewrite_impl", refuse)
    monkeypatch.setattr(_core, "_unsupported_warned", False)
    code = compile("x = 1", "<t>", "exec")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert fr.rewrite_code(code) is code
        assert fr.rewrite_code(code) is code
    assert len(caught) == 1
    assert "cannot rewrite bytecode for this interpreter" in str(caught[0].message)


def test_malformed_code_error_propagates(monkeypatch):
    def malformed(code, policy, methods):
        raise ValueError("malformed exception table")

    monkeypatch.setattr(_core, "_rewrite_impl", malformed)
    with pytest.raises(ValueError, match="malformed exception table"):
        fr.rewrite_code(compile("x = 1", "<t>", "exec"))


@pytest.mark.skipif(not _core.native_available(), reason="the native rewriter is not in this build")
def test_native_rewriter_changes_shared_state_code():
    code = compile("import threading\nclass C:\n    def f(self):\n        self.x = self.x + 1\n", "<t>", "exec")
    assert canonical(fr.rewrite_code(code, "all")) != canonical(code)


# --- finder and loader ---------------------------------------------------------------------------


def test_install_puts_one_finder_first_and_uninstall_removes_it(sandbox):
    first = fr.install(include=["hookpkg"], use_config=False)
    second = fr.install(include=["hookpkg"], use_config=False)
    assert sys.meta_path[0] is second
    assert sum(isinstance(f, _hook.FrontrunFinder) for f in sys.meta_path) == 1
    assert fr.installed() is second and first is not second
    fr.uninstall()
    assert not any(isinstance(f, _hook.FrontrunFinder) for f in sys.meta_path)
    assert fr.installed() is None


def test_selected_module_is_rewritten_with_full_spec_fidelity(sandbox, marker):
    fr.install(include=["hookpkg"], use_config=False)
    import hookpkg
    import hookpkg.nested.deep
    import hookpkg.sub

    assert hookpkg.value() == REWRITTEN
    assert hookpkg.sub.value() == REWRITTEN
    assert hookpkg.sub.parent_value() == REWRITTEN
    assert hookpkg.nested.deep.value() == REWRITTEN

    package_dir = sandbox / "hookpkg"
    spec = hookpkg.__spec__
    assert isinstance(spec.loader, fr.FrontrunLoader)
    assert hookpkg.__loader__ is spec.loader
    assert hookpkg.__file__ == str(package_dir / "__init__.py") == spec.origin
    assert hookpkg.__path__ == [str(package_dir)] == spec.submodule_search_locations
    assert spec.has_location and spec.parent == "hookpkg"
    assert hookpkg.sub.__spec__.parent == "hookpkg" and hookpkg.sub.__package__ == "hookpkg"

    # __cached__ names frontrun's own cache file, next to (never instead of) CPython's.
    cached = Path(spec.cached)
    assert getattr(hookpkg, "__cached__", spec.cached) == spec.cached  # 3.15 dropped __cached__
    assert cached.parent == package_dir / "__pycache__"
    assert cached.name.startswith(f"__init__.{sys.implementation.cache_tag}-frontrun-")
    assert cached.name != Path(importlib.util.cache_from_source(hookpkg.__file__)).name
    assert cached.is_file()
    assert importlib.util.source_from_cache(spec.cached) == hookpkg.__file__  # a well-formed cache name

    loader = hookpkg.__loader__
    assert loader.is_package("hookpkg") and not hookpkg.sub.__loader__.is_package("hookpkg.sub")
    assert loader.get_filename("hookpkg") == hookpkg.__file__
    assert loader.get_source("hookpkg") == (package_dir / "__init__.py").read_text()
    assert "return \"MARK\"" in inspect.getsource(hookpkg.value)

    # Resources, through the loader's resource reader and through get_data.
    assert importlib.resources.files("hookpkg").joinpath("data.txt").read_text() == "hello from hookpkg\n"
    assert pkgutil.get_data("hookpkg", "data.txt") == b"hello from hookpkg\n"


def test_get_code_serves_runpy(sandbox, marker, capsys):
    fr.install(include=["hookpkg"], use_config=False)
    code = importlib.util.find_spec("hookpkg.sub").loader.get_code("hookpkg.sub")
    assert any(c == REWRITTEN for c in code.co_consts + tuple(
        x for c in code.co_consts if isinstance(c, types.CodeType) for x in c.co_consts))
    runpy.run_module("hookpkg.sub", run_name="__main__")
    assert capsys.readouterr().out == f"sub as main: {REWRITTEN}\n"


def test_namespace_package_untouched_but_its_modules_rewritten(sandbox, marker):
    fr.install(include=["hooknspkg"], use_config=False)
    import hooknspkg.inner

    namespace = sys.modules["hooknspkg"]
    assert namespace.__spec__.origin in (None, "namespace")  # 3.10 vs later spelling
    assert not isinstance(namespace.__spec__.loader, (fr.FrontrunLoader, _hook.PytestChainLoader))
    assert getattr(namespace, "__file__", None) is None
    assert list(namespace.__path__) == [str(sandbox / "hooknspkg")]
    assert isinstance(hooknspkg.inner.__loader__, fr.FrontrunLoader)
    assert hooknspkg.inner.value() == REWRITTEN


def _plain_code(path: Path) -> types.CodeType:
    return compile(path.read_bytes(), str(path), "exec", dont_inherit=True)


def _assert_functions_identical(module, path: Path):
    compiled = code_objects(_plain_code(path))
    seen = 0
    for obj in list(vars(module).values()) + list(vars(module.Thing).values()):
        if isinstance(obj, types.FunctionType):
            match = [c for c in compiled.values() if c.co_name == obj.__name__ and c.co_firstlineno == obj.__code__.co_firstlineno]
            assert len(match) == 1
            assert canonical(obj.__code__) == canonical(match[0])
            seen += 1
    assert seen == 2


@pytest.mark.parametrize("how", ["other-include", "default-outside-root"])
def test_unselected_module_is_byte_identical_to_a_plain_import(sandbox, marker, tmp_path, how):
    if how == "other-include":
        fr.install(include=["hookpkg"], use_config=False)
    else:
        project = tmp_path / "elsewhere"
        project.mkdir()
        fr.install(root=str(project), use_config=False)  # hookother lies outside that project
    import hookother

    assert type(hookother.__loader__) is importlib.machinery.SourceFileLoader
    assert hookother.value() == MARK
    assert hookother.__spec__.cached == importlib.util.cache_from_source(hookother.__file__)
    _assert_functions_identical(hookother, sandbox / "hookother" / "__init__.py")
    # The whole module code object as the loader hands it out, against compile().
    plain = _plain_code(sandbox / "hookother" / "__init__.py")
    served = hookother.__loader__.get_code("hookother")
    assert canonical(served) == canonical(plain)
    assert not [c for c in marker if "hookother" in c[0]]


def test_default_selection_takes_project_code_only(sandbox, marker):
    fr.install(root=str(sandbox), use_config=False)
    import json

    import hookpkg

    assert hookpkg.value() == REWRITTEN
    assert type(json.__loader__) is importlib.machinery.SourceFileLoader  # stdlib untouched
    assert not any(isinstance(getattr(m, "__loader__", None), fr.FrontrunLoader)
                   for name, m in sys.modules.items() if name.split(".")[0] in ("frontrun", "pytest", "_pytest"))


def test_exclude_and_per_pattern_policy(sandbox, marker):
    fr.install(include=[("hookpkg.sub", "resources"), "hookpkg*"], exclude=["hookpkg.nested.*"],
               policy="all", use_config=False)
    import hookpkg.nested.deep
    import hookpkg.sub

    assert hookpkg.sub.__loader__.policy == "resources"
    assert hookpkg.__loader__.policy == "all"
    assert type(hookpkg.nested.deep.__loader__) is importlib.machinery.SourceFileLoader
    assert hookpkg.nested.deep.value() == MARK


def test_path_patterns(sandbox, marker):
    fr.install(include=["hookpkg/sub.py", "./hooknspkg/"], root=str(sandbox), use_config=False)
    import hooknspkg.inner
    import hookpkg.sub

    assert hookpkg.sub.value() == REWRITTEN
    assert hooknspkg.inner.value() == REWRITTEN
    assert hookpkg.value() == MARK


def test_reload_rewrites_again(sandbox, marker):
    fr.install(include=["hookpkg"], use_config=False)
    import hookpkg.sub

    (sandbox / "hookpkg" / "sub.py").write_text("def value():\n    return 'MARK', 2\n")
    importlib.reload(hookpkg.sub)
    assert hookpkg.sub.value() == (REWRITTEN, 2)


def test_syntax_error_is_the_plain_one(sandbox):
    (sandbox / "hookbroken.py").write_text("x = 1\ndef f(:\n    pass\n")
    with pytest.raises(SyntaxError) as plain:
        import hookbroken  # noqa: F401
    sys.modules.pop("hookbroken", None)
    importlib.invalidate_caches()
    fr.install(include=["hookbroken"], use_config=False)
    with pytest.raises(SyntaxError) as hooked:
        import hookbroken  # noqa: F401,F811
    assert hooked.type is plain.type
    for field in ("msg", "lineno", "offset", "filename", "text", "end_lineno", "end_offset"):
        assert getattr(hooked.value, field) == getattr(plain.value, field), field
    assert str(hooked.value) == str(plain.value)


def test_extension_and_builtin_modules_pass_through(sandbox):
    fr.install(include=["_csv", "math"], use_config=False)
    for name in ("_csv", "math"):
        sys.modules.pop(name, None)
    import _csv
    import math

    assert not isinstance(getattr(_csv, "__loader__", None), fr.FrontrunLoader)
    assert not isinstance(getattr(math, "__loader__", None), fr.FrontrunLoader)


ZIPPED_COUNTER = """\
class Counter:
    def __init__(self):
        self.n = 0

def bump(c):
    c.n += 1
    return c.n

def fail(c):
    c.n += 1
    raise KeyError(c.n)
"""


def _events_of(module):
    from frontrun.rewrite import recording

    c = module.Counter()
    with recording() as events:
        assert module.bump(c) == 1
    return [(e.kind, e.key) for e in events]


def _zip_package(sandbox):
    import zipfile

    archive = sandbox / "hookzip.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("hookzip/__init__.py", ZIPPED_COUNTER)
        z.writestr("hookzip/data.txt", "zipped data\n")
    sys.path.insert(0, str(archive))
    return archive


def test_a_selected_module_in_a_zip_archive_is_rewritten(sandbox):
    import zipimport

    archive = _zip_package(sandbox)
    try:
        import hookzip

        plain = (hookzip.__file__, _events_of(hookzip))
        with pytest.raises(KeyError) as plain_error:
            hookzip.fail(hookzip.Counter())
        del sys.modules["hookzip"]
        fr.install(include=["hookzip"], use_config=False)
        import hookzip  # noqa: F811
    finally:
        sys.path.remove(str(archive))
    assert plain == (str(archive / "hookzip" / "__init__.py"), [])
    assert isinstance(hookzip.__loader__, zipimport.zipimporter)
    assert isinstance(hookzip.__loader__, _hook.FrontrunZipLoader)
    assert hookzip.__file__ == plain[0]
    assert _events_of(hookzip) == [("attr_load", "n"), ("attr_store", "n"), ("attr_load", "n")]
    assert importlib.resources.files("hookzip").joinpath("data.txt").read_text() == "zipped data\n"
    with pytest.raises(KeyError) as hooked_error:
        hookzip.fail(hookzip.Counter())
    lines = lambda info: [(e.name, e.lineno, str(e.statement).strip()) for e in info.traceback[1:]]  # noqa: E731
    assert lines(hooked_error) == lines(plain_error) != []


def test_a_selected_module_with_only_a_pyc_is_rewritten(sandbox):
    import py_compile

    source = sandbox / "hookpyc_src.py"
    source.write_text(ZIPPED_COUNTER)
    py_compile.compile(str(source), cfile=str(sandbox / "hookpyc.pyc"), doraise=True)
    source.unlink()
    importlib.invalidate_caches()
    import hookpyc

    assert _events_of(hookpyc) == []
    del sys.modules["hookpyc"]
    fr.install(include=["hookpyc"], use_config=False)
    import hookpyc  # noqa: F811

    assert isinstance(hookpyc.__loader__, importlib.machinery.SourcelessFileLoader)
    assert isinstance(hookpyc.__loader__, _hook.FrontrunSourcelessLoader)
    assert hookpyc.__file__ == str(sandbox / "hookpyc.pyc")
    # Its module file is known as rewritten too: at exit its globals get the guard.
    assert _core._native.is_rewritten_file(hookpyc.__file__)
    assert _events_of(hookpyc) == [("attr_load", "n"), ("attr_store", "n"), ("attr_load", "n")]


class _StringLoader:
    """Another tool's loader: runs a module from a string."""

    def __init__(self, source):
        self.source = source

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(self.source, module.__dict__)


class _StringFinder:
    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith("hookstring"):
            origin = None if fullname.endswith("_moves") else f"/elsewhere/{fullname}.py"
            return importlib.util.spec_from_loader(fullname, _StringLoader(ZIPPED_COUNTER), origin=origin)
        return None


def test_a_selected_module_another_loader_runs_is_left_alone_with_one_warning(sandbox, monkeypatch):
    monkeypatch.setattr(_hook, "_unrewritten_warned", set())
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, _StringFinder()])
    fr.install(include=["hookstring*"], use_config=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import hookstring_moves  # no file behind it (six.moves): nothing to say
    with pytest.warns(_hook.UnrewrittenModuleWarning, match="'hookstring_a' is loaded by .*_StringLoader") as caught:
        import hookstring_a
    if sys.version_info >= (3, 12):  # the import statement, not frontrun's or importlib's frames
        assert [w.filename for w in caught] == [__file__]
    with pytest.warns(_hook.UnrewrittenModuleWarning, match="'hookstring_b' is loaded by"):
        import hookstring_b  # each module is named
    del sys.modules["hookstring_a"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import hookstring_a  # noqa: F811 (once per module)
    assert isinstance(hookstring_a.__loader__, _StringLoader)
    assert _events_of(hookstring_a) == _events_of(hookstring_b) == _events_of(hookstring_moves) == []


class _LegacyFinder:
    """A finder of before 3.4: find_module() only (the import system skips it from 3.12)."""

    def find_module(self, fullname, path=None):
        return None


@pytest.mark.skipif(sys.version_info < (3, 12), reason="3.10/3.11 still ask a find_module() finder")
def test_a_legacy_finder_behind_the_hook_does_not_turn_rewriting_off(sandbox, monkeypatch):
    fr.install(include=["hookother"], use_config=False)
    monkeypatch.setattr(sys, "meta_path", [sys.meta_path[0], _LegacyFinder(), *sys.meta_path[1:]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImportWarning)
        import hookother
    assert isinstance(hookother.__loader__, fr.FrontrunLoader)


def test_frontrun_never_rewrites_itself(sandbox):
    finder = fr.install(include=["*"], use_config=False, instrument_imported=False)
    assert finder.find_spec("frontrun.rewrite._cache") is None
    spec = importlib.util.find_spec("frontrun")
    assert finder.selection.policy_for("frontrun.x", spec.origin) is None
    assert finder.selection.policy_for("renamed", spec.origin) is None


# --- instrument_module -------------------------------------------------------------------------


def test_instrument_module_swaps_code_everywhere(sandbox, marker):
    import instrumented as m

    counter = m.counter
    assert m.top() == MARK
    changed = fr.instrument_module(m)
    assert changed >= 12

    assert m.top() == REWRITTEN
    assert counter() == (1, REWRITTEN) and counter() == (2, REWRITTEN)  # closure cell kept
    assert m.make_counter()() == (1, REWRITTEN)
    assert m.decorated() == (REWRITTEN, REWRITTEN)  # the wrapper and the wrapped function
    assert m.cached() == REWRITTEN
    w = m.Widget()
    assert w.method() == m.Widget.static() == m.Widget.klass() == w.prop == REWRITTEN
    w.prop = 1
    assert w.stored == (1, REWRITTEN)
    assert w.cached_prop == REWRITTEN
    assert m.Widget.Inner().method() == REWRITTEN
    assert m.join("a", "b") == "a/b".replace("/", __import__("os").sep)
    assert not isinstance(m.join.__code__, type(None)) and m.join.__module__ != m.__name__
    # Objects only reachable through containers are documented as not found.
    assert m.lambda_in_container["f"]() == MARK
    # A second call changes nothing more.
    assert fr.instrument_module(m) == 0
    # Not a module (a name, or None from sys.modules.get): said so, not an AttributeError.
    for wrong in ("instrumented", None):
        with pytest.raises(TypeError, match="expects a module"):
            fr.instrument_module(wrong)


def test_instrument_module_leaves_other_modules_functions(sandbox, marker):
    import os.path

    import instrumented as m

    before = os.path.join.__code__
    fr.instrument_module(m)
    assert os.path.join.__code__ is before


def test_install_instruments_already_imported_modules_and_warns_once(sandbox, marker):
    import hookpkg
    import instrumented

    with pytest.warns(fr.AlreadyImportedWarning) as record:
        fr.install(include=["instrumented", "hookpkg"], use_config=False)
    assert len(record) == 1
    message = str(record[0].message)
    assert "hookpkg" in message and "instrumented" in message and "python -m frontrun.rewrite" in message
    assert record[0].filename == __file__  # points at the install() call
    assert instrumented.top() == REWRITTEN and hookpkg.value() == REWRITTEN

    fr.uninstall()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fr.install(include=["instrumented", "hookpkg"], use_config=False)


class _OtherToolsLoader(importlib.machinery.SourceFileLoader):
    """A loader another tool put in place (pytest's assertion rewriter loads the packages that
    are pytest plugins before any hook is installed)."""


def test_modules_another_loader_imported_before_the_hook_are_instrumented_too(sandbox, marker):
    path = sandbox / "instrumented.py"
    loader = _OtherToolsLoader("instrumented", str(path))
    spec = importlib.util.spec_from_file_location("instrumented", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["instrumented"] = module
    loader.exec_module(module)
    assert module.top() == MARK
    with pytest.warns(fr.AlreadyImportedWarning, match="instrumented"):
        fr.install(include=["instrumented"], use_config=False)
    assert module.top() == REWRITTEN


def test_modules_loaded_by_the_hook_are_not_instrumented_twice(sandbox, marker):
    fr.install(include=["hookpkg"], use_config=False)
    import hookpkg

    calls = len(marker)
    assert fr.instrument_module(hookpkg) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fr.install(include=["hookpkg"], use_config=False)
    assert len(marker) == calls


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 freezes no stdlib module")
def test_a_frozen_stdlib_module_that_is_included_is_rewritten_from_its_source(tmp_path):
    # `os` (imported at startup) and `runpy` are frozen: their loader is FrozenImporter, which
    # the hook passed by without a word.
    script = tmp_path / "frozen.py"
    script.write_text(
        "import sys, warnings\n"
        "import frontrun.rewrite as fr\n"
        "assert 'runpy' not in sys.modules\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    fr.install(include=['os', 'runpy'], use_config=False)\n"
        "import runpy\n"
        "def rewritten(f):\n"
        "    return '__frontrun_on__' in f.__code__.co_names\n"
        "print(runpy.__spec__.origin.endswith('runpy.py'), rewritten(runpy.run_path), rewritten(__import__('os').makedirs))\n"
        "print(['os' in getattr(w.message, 'modules', ()) for w in caught])\n"
    )
    proc = subprocess.run([sys.executable, "-X", "frozen_modules=on", str(script)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["True True True", "[True]"]


def test_the_warnings_of_compiling_a_module_are_attributed_as_a_plain_import_does(tmp_path):
    # 3.15 passes the module's name to compile() (`source_to_code(data, path, fullname)`), and a
    # SyntaxWarning of its compilation is attributed to it: the hook's loader left the name out
    # (and refused it), so a filter by module name matched differently.
    (tmp_path / "wpkg").mkdir()
    (tmp_path / "wpkg" / "__init__.py").write_text("")
    (tmp_path / "wpkg" / "mod.py").write_text("x = 1\ny = x is 1\n")
    script = textwrap.dedent("""
        import sys, warnings
        sys.dont_write_bytecode = True
        if sys.argv[1] == "hook":
            import frontrun.rewrite
            frontrun.rewrite.install(include=["wpkg.*"], policy="all")
        with warnings.catch_warnings(record=True) as log:
            warnings.simplefilter("ignore")
            warnings.filterwarnings("always", module=r"wpkg\\.mod$")
            import wpkg.mod
        print([(w.category.__name__, w.lineno) for w in log], type(wpkg.mod.__loader__).__name__)
        loader = wpkg.mod.__loader__
        try:
            loader.source_to_code(b"pass", "x.py", "x")
            print("takes a name")
        except TypeError:
            print("takes no name")
    """)
    (tmp_path / "main.py").write_text(script)
    plain, hooked = (run(["main.py", how], cwd=tmp_path) for how in ("plain", "hook"))
    assert plain.returncode == hooked.returncode == 0, (plain.stderr, hooked.stderr)
    assert hooked.stdout.splitlines()[0].endswith("FrontrunLoader")
    assert hooked.stdout.replace("FrontrunLoader", "SourceFileLoader") == plain.stdout
