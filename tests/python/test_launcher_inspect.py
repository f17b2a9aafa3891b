"""``python -m frontrun.rewrite inspect``: targets, files written, index, errors."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import marshal
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from hook_testutil import REWRITTEN, child_env, copy_hookdata, run  # noqa: E402

from frontrun import _native  # noqa: E402
from frontrun.rewrite import _inspect  # noqa: E402

INSPECT = ["-m", "frontrun.rewrite", "inspect"]
HAS_REPORT = hasattr(_native, "rewrite_report")


@pytest.fixture
def tree(tmp_path):
    copy_hookdata(tmp_path / "src", "hookpkg", "hooknspkg", "hookother")
    return tmp_path


def index_modules(out: Path) -> dict[str, str]:
    lines = (out / "index.txt").read_text().splitlines()
    table = lines[lines.index(next(l for l in lines if l.startswith("module"))) + 1 :]
    return {line.split()[0]: line for line in table if line.strip() and not line.startswith("total:")}


def load_pyc(path: Path, source: Path) -> types.CodeType:
    data = path.read_bytes()
    assert data[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(data[4:8], "little") == 0b11
    assert data[8:16] == importlib.util.source_hash(source.read_bytes())
    return marshal.loads(data[16:])


@pytest.mark.parametrize("how", ["path", "name"])
def test_package_target_writes_pycs_reports_and_index(tree, how):
    out = tree / "out"
    target = "src/hookpkg" if how == "path" else "hookpkg"
    proc = run([*INSPECT, target, "--out", str(out)], cwd=tree, marker=True, pythonpath=[tree / "src"])
    assert proc.returncode == 0, proc.stderr
    assert "4 of 4 modules written" in proc.stdout
    expected = {
        "hookpkg": "hookpkg/__init__.pyc",
        "hookpkg.sub": "hookpkg/sub.pyc",
        "hookpkg.nested": "hookpkg/nested/__init__.pyc",
        "hookpkg.nested.deep": "hookpkg/nested/deep.pyc",
    }
    index = index_modules(out)
    assert set(index) == set(expected)
    src = tree / "src"
    for module, pyc in expected.items():
        assert pyc in index[module]
        source = src / pyc.replace(".pyc", ".py")
        code = load_pyc(out / pyc, source)
        assert code.co_filename == str(source)
        report = (out / f"{module}.txt").read_text()
        assert f"module: {module}" in report and f"source: {source}" in report
        assert "--- before ---" in report and "--- after (+ = injected) ---" in report
        assert "policy: shared" in report
    assert "total: 4 modules rewritten" in (out / "index.txt").read_text()

    # The pyc is runnable and holds the rewritten code.
    namespace = {"__name__": "hookpkg.nested.deep"}
    exec(load_pyc(out / "hookpkg/nested/deep.pyc", src / "hookpkg/nested/deep.py"), namespace)
    if HAS_REPORT:
        assert "sites (" in (out / "hookpkg.txt").read_text()
    else:
        assert namespace["value"]() == REWRITTEN
        assert "sites: (unavailable)" in (out / "hookpkg.txt").read_text()
        assert "RETURN" in (out / "hookpkg.txt").read_text()  # a real disassembly


def test_a_second_run_into_the_same_directory_leaves_no_file_of_a_module_gone_since(tree):
    out = tree / "out"
    assert run([*INSPECT, "src/hookpkg", "--out", str(out)], cwd=tree).returncode == 0
    (out / "notes.txt").write_text("mine")
    (tree / "src" / "hookpkg" / "nested" / "deep.py").unlink()
    proc = run([*INSPECT, "src/hookpkg", "--out", str(out)], cwd=tree)
    assert proc.returncode == 0, proc.stderr
    assert set(index_modules(out)) == {"hookpkg", "hookpkg.sub", "hookpkg.nested"}
    # Its pyc would still import from DIR; its report would still describe it.
    assert not (out / "hookpkg/nested/deep.pyc").exists() and not (out / "hookpkg.nested.deep.txt").exists()
    assert (out / "hookpkg/sub.pyc").is_file() and (out / "notes.txt").read_text() == "mine"
    # A name the manifest gives outside DIR is never removed.
    (tree / "keep.txt").write_text("keep")
    with open(out / ".frontrun-inspect-files", "a") as f:
        f.write("../keep.txt\n" + str(tree / "keep.txt") + "\n")
    assert run([*INSPECT, "src/hookpkg", "--out", str(out)], cwd=tree).returncode == 0
    assert (tree / "keep.txt").read_text() == "keep" and (out / "hookpkg/sub.pyc").is_file()


def test_single_module_targets(tree):
    out = tree / "out"
    proc = run([*INSPECT, "src/hookpkg/nested/deep.py", "--out", str(out), "--policy", "all"], cwd=tree)
    assert proc.returncode == 0, proc.stderr
    assert set(index_modules(out)) == {"hookpkg.nested.deep"}  # dotted name from the package tree
    assert (out / "hookpkg/nested/deep.pyc").is_file()
    assert "policy: all" in (out / "hookpkg.nested.deep.txt").read_text()

    out2 = tree / "out2"
    proc = run([*INSPECT, "hookpkg.sub", "--out", str(out2), "--resource-method", "pool.get"], cwd=tree,
               pythonpath=[tree / "src"])
    assert proc.returncode == 0, proc.stderr
    assert set(index_modules(out2)) == {"hookpkg.sub"}
    assert "resource methods: pool.get" in (out2 / "hookpkg.sub.txt").read_text()
    # A dotted name is found from the current directory, as `python -m hookpkg.sub` finds it.
    proc = run([*INSPECT, "hookpkg.sub", "--out", str(tree / "out3")], cwd=tree / "src")
    assert proc.returncode == 0, proc.stderr
    assert set(index_modules(tree / "out3")) == {"hookpkg.sub"}


def test_namespace_package_and_plain_directory(tree):
    out = tree / "out"
    proc = run([*INSPECT, "hooknspkg", "--out", str(out)], cwd=tree, pythonpath=[tree / "src"])
    assert proc.returncode == 0, proc.stderr
    assert set(index_modules(out)) == {"hooknspkg.inner"}
    # By a dotted name inside it: its portions are found without importing the parent.
    (tree / "src" / "hooknspkg" / "sub").mkdir()
    (tree / "src" / "hooknspkg" / "sub" / "leaf.py").write_text("x = 1\n")
    (tree / "src" / "hookpkg" / "nssub").mkdir()
    (tree / "src" / "hookpkg" / "nssub" / "leaf.py").write_text("x = 1\n")
    for target, modules in [("hooknspkg.inner", {"hooknspkg.inner"}), ("hooknspkg.sub", {"hooknspkg.sub.leaf"}),
                            ("hooknspkg.sub.leaf", {"hooknspkg.sub.leaf"}),
                            ("hookpkg.nssub.leaf", {"hookpkg.nssub.leaf"})]:
        shutil.rmtree(out)
        proc = run([*INSPECT, target, "--out", str(out)], cwd=tree, pythonpath=[tree / "src"])
        assert proc.returncode == 0, proc.stderr
        assert set(index_modules(out)) == modules, target
    out2 = tree / "out2"
    proc = run([*INSPECT, "src", "--out", str(out2)], cwd=tree)
    assert proc.returncode == 0, proc.stderr
    assert {"hookpkg", "hookpkg.sub", "hooknspkg.inner", "hookother"} <= set(index_modules(out2))


def test_nothing_is_executed(tree):
    (tree / "src" / "hookpkg" / "__init__.py").write_text("raise SystemExit('executed!')\n")
    out = tree / "out"
    proc = run([*INSPECT, "hookpkg.sub", "--out", str(out)], cwd=tree, pythonpath=[tree / "src"])
    assert proc.returncode == 0, proc.stderr
    assert "executed!" not in proc.stdout + proc.stderr


def test_module_errors_are_listed_and_the_rest_written(tree):
    (tree / "src" / "hookpkg" / "broken.py").write_text("def f(:\n    pass\n")
    out = tree / "out"
    proc = run([*INSPECT, "src/hookpkg", "--out", str(out)], cwd=tree)
    assert proc.returncode == 1
    assert "hookpkg.broken: SyntaxError" in proc.stderr
    index = index_modules(out)
    assert "ERROR  SyntaxError" in index["hookpkg.broken"] and "(line 1)" in index["hookpkg.broken"]
    assert (out / "hookpkg/sub.pyc").is_file() and not (out / "hookpkg/broken.pyc").exists()
    assert "1 error" in (out / "index.txt").read_text()
    # An error with no line (a null byte, 3.12+; a ValueError before) names none.
    (tree / "src" / "hookpkg" / "broken.py").write_bytes(b"x = 1\ny = 'a\x00b'\n")
    proc = run([*INSPECT, "src/hookpkg", "--out", str(out)], cwd=tree)
    assert proc.returncode == 1 and "hookpkg.broken:" in proc.stderr
    assert "null bytes" in index_modules(out)["hookpkg.broken"] and "None" not in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "target, message",
    [
        ("no_such_module_xyz", "no module named 'no_such_module_xyz'"),
        ("hookpkg.missing", "no module named 'hookpkg.missing'"),
        ("hookpkg.sub.deeper", "'hookpkg.sub' is not a package"),
        ("src/nothere.py", "no such file or directory"),
        ("src/hookpkg/data.txt", "is not a .py file"),
        ("not a-name", "neither an existing path nor a module name"),
        ("fakeext", "not a Python source module (loader: ExtensionFileLoader)"),
        ("sys", "built into the interpreter"),
    ],
)
def test_bad_targets(tree, target, message):
    # Found as an extension module by its name alone; never loaded.
    (tree / "src" / ("fakeext" + importlib.machinery.EXTENSION_SUFFIXES[0])).write_bytes(b"")
    proc = run([*INSPECT, target, "--out", str(tree / "out")], cwd=tree, pythonpath=[tree / "src"])
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (tree / "out" / "index.txt").exists()


def test_usage_errors(tree):
    assert run([*INSPECT, "hookpkg"], cwd=tree).returncode == 2  # --out is required
    proc = run([*INSPECT, "src/hookpkg", "--out", str(tree / "o"), "--policy", "most"], cwd=tree)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    proc = run([*INSPECT, "src/hookpkg", "--out", str(tree / "o"), "--python-version", "three"], cwd=tree)
    assert proc.returncode == 2 and "expected X.Y" in proc.stderr
    (tree / "file").write_text("")
    proc = run([*INSPECT, "src/hookpkg", "--out", str(tree / "file")], cwd=tree)
    assert proc.returncode == 2 and "not a directory" in proc.stderr


def test_other_version_interpreter_mismatch_is_an_error(tree):
    other = "3.11" if sys.version_info[:2] == (3, 10) else "3.10"
    proc = run([*INSPECT, "src/hookpkg", "--out", str(tree / "o"), "--python-version", other,
                "--python", sys.executable], cwd=tree)
    assert proc.returncode == 2
    assert f"is Python {sys.version_info[0]}.{sys.version_info[1]}, not {other}" in proc.stderr


def _run_unprivileged(args, cwd):
    """Root reads and writes whatever the modes say: drop that power for one command."""
    prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, sys.executable, *args], cwd=str(cwd), env=child_env(), capture_output=True,
                          text=True, timeout=120)


def test_interpreter_and_output_errors_are_one_line_each(tree):
    other = "3.11" if sys.version_info[:2] == (3, 10) else "3.10"
    for interpreter, message in [("/nonexistent/python", "cannot run /nonexistent/python: No such file"),
                                 ("/bin/false", "it exited with status 1 and printed nothing"),
                                 ("/bin/true", "/bin/true is not a Python interpreter (it printed 'nothing')"),
                                 ("/bin/echo", "/bin/echo is not a Python interpreter (it printed '-I -c")]:
        proc = run([*INSPECT, "src/hookpkg", "--out", str(tree / "o"), "--python-version", other,
                    "--python", interpreter], cwd=tree)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    (tree / "locked").mkdir()
    (tree / "locked").chmod(0o555)
    proc = _run_unprivileged([*INSPECT, "src/hookpkg", "--out", str(tree / "locked" / "o")], cwd=tree)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"cannot write {tree / 'locked' / 'o'}: Permission denied" in proc.stderr


def test_an_unreadable_directory_is_an_error_not_a_smaller_package(tree):
    hidden = tree / "src" / "hookpkg" / "hidden"
    hidden.mkdir()
    (hidden / "mod.py").write_text("x = 1\n")
    hidden.chmod(0)
    try:
        proc = _run_unprivileged([*INSPECT, "src/hookpkg", "--out", str(tree / "o")], cwd=tree)
    finally:
        hidden.chmod(0o755)
    assert proc.returncode == 2, proc.stderr
    assert f"cannot read directory {str(hidden)!r}: Permission denied" in proc.stderr
    assert not (tree / "o" / "index.txt").exists()


def test_a_failed_write_is_that_modules_error_and_no_earlier_index_survives(tree):
    out = tree / "o"
    assert run([*INSPECT, "src/hookpkg", "--out", str(out)], cwd=tree).returncode == 0
    (out / "hookpkg" / "sub.pyc").unlink()
    (out / "hookpkg" / "sub.pyc").mkdir()  # the next run cannot write there
    proc = run([*INSPECT, "src/hookpkg", "--out", str(out), "--policy", "all"], cwd=tree)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "hookpkg.sub: cannot write" in proc.stderr
    index = (out / "index.txt").read_text()
    assert "policy all" in index and "ERROR  cannot write" in index_modules(out)["hookpkg.sub"]
    assert "policy: all" in (out / "hookpkg.txt").read_text()


@pytest.mark.parametrize("version", ["3.9", "3.16", "2.7"])
def test_a_version_without_opcode_tables_is_a_usage_error(tree, version):
    proc = run([*INSPECT, "src/hookpkg", "--out", str(tree / "o"), "--python-version", version], cwd=tree)
    assert proc.returncode == 2
    assert f"--python-version {version}: not a supported version (frontrun rewrites 3.10, 3.11, 3.12, 3.13, 3.14, 3.15)" in proc.stderr
    assert not (tree / "o").exists()


def _other_interpreter():
    for minor in range(10, 16):
        if minor == sys.version_info[1]:
            continue
        found = shutil.which(f"python3.{minor}")
        if found and run_version(found) == (3, minor):
            return found, (3, minor)
    return None, None


def run_version(exe):
    import subprocess

    try:
        out = subprocess.run([exe, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                             text=True, timeout=30)
    except OSError:
        return None
    return tuple(map(int, out.stdout.split())) if out.returncode == 0 else None


def test_other_version_compiles_with_that_interpreter(tree):
    exe, version = _other_interpreter()
    if exe is None:
        pytest.skip("no other python3.X on PATH")
    out = tree / "out"
    proc = run([*INSPECT, "src/hookpkg", "--out", str(out), "--python-version", "%d.%d" % version], cwd=tree)
    assert proc.returncode == 0, proc.stderr
    data = (out / "hookpkg/sub.pyc").read_bytes()
    assert data[:4] != importlib.util.MAGIC_NUMBER  # that interpreter's magic number
    assert int.from_bytes(data[4:8], "little") == 0b11
    assert f"python {version[0]}.{version[1]}" in (out / "index.txt").read_text()


def _listed_interpreters():
    """(version, interpreter) of ~/.cache/frontrun/pythons.txt, other versions than this one."""
    listing = Path.home() / ".cache" / "frontrun" / "pythons.txt"
    out = []
    if listing.exists():
        for line in listing.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2:
                version = tuple(map(int, parts[0].split(".")))
                if version != sys.version_info[:2] and run_version(parts[1]) == version:
                    out.append((version, parts[1]))
    return out


@pytest.mark.skipif(not hasattr(_native, "rewrite_pyc_report"), reason="no rewrite_pyc_report")
def test_other_version_end_to_end_rewrites_for_that_interpreter(tree):
    import subprocess

    found = _listed_interpreters()
    if not found:
        pytest.skip("no other interpreter listed in ~/.cache/frontrun/pythons.txt")
    # One other version: the next one up (or the last), so each test interpreter picks another.
    version, exe = next((f for f in found if f[0] > sys.version_info[:2]), found[-1])
    out = tree / "out"
    proc = run([*INSPECT, "src/hookpkg", "--out", str(out), "--python-version", "%d.%d" % version,
                "--python", exe], cwd=tree)
    assert proc.returncode == 0, proc.stderr
    assert "4 of 4 modules written" in proc.stdout
    index = (out / "index.txt").read_text()
    assert f"python {version[0]}.{version[1]}" in index and ", 0 errors" in index
    report = (out / "hookpkg.sub.txt").read_text()
    assert "sites (" in report and "sites: (unavailable)" not in report and "note:" not in report
    assert "global_load" in report and "\n+ " in report.split("--- after")[1]
    # The pyc is that interpreter's (magic, checked hash of the source) and loads and runs there.
    data = (out / "hookpkg/sub.pyc").read_bytes()
    assert data[:4] != importlib.util.MAGIC_NUMBER and int.from_bytes(data[4:8], "little") == 0b11
    check = (
        "import builtins, importlib.util, marshal, sys\n"
        "builtins.__frontrun_on__ = False\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "assert data[:4] == importlib.util.MAGIC_NUMBER\n"
        "code = marshal.loads(data[16:])\n"
        "assert '__frontrun_report__' in code.co_names or any(\n"
        "    '__frontrun_report__' in c.co_names for c in code.co_consts if hasattr(c, 'co_names'))\n"
        "ns = {'__name__': 'hookpkg.sub'}\n"
        "sys.modules['hookpkg'] = type(sys)('hookpkg')\n"
        "exec(code, ns)\n"
        "print(ns['value']())\n"
    )
    done = subprocess.run([exe, "-I", "-c", check, str(out / "hookpkg/sub.pyc")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["MARK"]


def test_other_version_plumbing_in_process(tree, monkeypatch):
    """The --python-version path without a second interpreter: the compile step is faked."""
    fake_magic = b"\x01\x02\r\n"

    def fake_compile(interpreter, version, sources, workdir):
        return {s: fake_magic + (0b11).to_bytes(4, "little") + b"h" * 8 + marshal.dumps(compile("x=1", s, "exec"))
                for s in sources}

    seen = []

    def fake_report(pyc, policy, methods):
        seen.append((pyc[:4], policy, methods))
        return pyc, [(1, "store_global", "x")], "before listing", "+ after listing"

    monkeypatch.setattr(_inspect, "compile_with", fake_compile)
    monkeypatch.setattr(_inspect, "find_interpreter", lambda version, explicit: "python-other")
    monkeypatch.setattr(_native, "rewrite_pyc_report", fake_report, raising=False)
    out = tree / "out"
    modules = _inspect.resolve_target(str(tree / "src" / "hookpkg"))
    results = _inspect.inspect_modules(modules, str(out), "shared", ("m.x",), (3, 99))
    assert all(r.error is None for r in results)
    assert seen and seen[0] == (fake_magic, "shared", ("m.x",))
    assert (out / "hookpkg/sub.pyc").read_bytes()[:4] == fake_magic
    report = (out / "hookpkg.sub.txt").read_text()
    assert "python: 3.99" in report and "store_global" in report and "+ after listing" in report
    assert "store_global=1" in (out / "index.txt").read_text()


def test_native_report_is_used_when_present(tree, monkeypatch):
    def fake_report(code, policy, methods):
        return code, [(2, "load_attr", "self.count"), (2, "store_attr", "self.count"), (5, "load_attr", "x.y")], \
            "BEFORE", "  a\n+ injected\n"

    monkeypatch.setattr(_native, "rewrite_report", fake_report, raising=False)
    out = tree / "out"
    results = _inspect.inspect_modules(_inspect.resolve_target(str(tree / "src" / "hookpkg" / "sub.py")),
                                       str(out), "shared", (), sys.version_info[:2])
    assert results[0].error is None
    report = (out / "hookpkg.sub.txt").read_text()
    assert "sites (3):" in report and "self.count" in report and "+ injected" in report
    assert "load_attr            2" in report
    assert "load_attr=2 store_attr=1" in (out / "index.txt").read_text()


def test_other_version_uses_its_cached_pycs_without_an_interpreter(tree):
    import subprocess

    found = _listed_interpreters()
    if not found:
        pytest.skip("no other interpreter listed in ~/.cache/frontrun/pythons.txt")
    version, exe = next((f for f in found if f[0] > sys.version_info[:2]), found[-1])
    # That interpreter writes its own __pycache__ once; inspect then needs no interpreter.
    # Checked-hash pycs too, whose hash is keyed by that version's magic number (it is not
    # this interpreter's), when both hash alike (3.11 and later).
    modes = ["timestamp"] + (["checked-hash"] if min(version, sys.version_info[:2]) >= (3, 11) else [])
    for mode in modes:
        subprocess.run([exe, "-m", "compileall", "-q", "-f", "--invalidation-mode", mode,
                        str(tree / "src" / "hookpkg")], check=True, timeout=120)
        out = tree / f"out-{mode}"
        proc = run([*INSPECT, "src/hookpkg", "--out", str(out), "--python-version", "%d.%d" % version,
                    "--python", "/nonexistent/python"], cwd=tree)
        assert proc.returncode == 0, (mode, proc.stderr)
        assert "4 of 4 modules written" in proc.stdout
    data = (out / "hookpkg/sub.pyc").read_bytes()
    assert int.from_bytes(data[:2], "little") != int.from_bytes(importlib.util.MAGIC_NUMBER[:2], "little")
    # A stale cache (source edited afterwards) is not trusted: the bogus interpreter is needed.
    sub = tree / "src" / "hookpkg" / "sub.py"
    sub.write_text(sub.read_text() + "\n# edited\n")
    proc = run([*INSPECT, "src/hookpkg", "--out", str(tree / "out2"), "--python-version", "%d.%d" % version,
                "--python", "/nonexistent/python"], cwd=tree)
    assert proc.returncode != 0


def test_the_site_table_names_where_and_what_and_the_counts_say_what_kinds_mean(tmp_path):
    (tmp_path / "tally.py").write_text(
        "class Tally:\n"
        "    def bump(self):\n"
        "        v = self.n\n"
        "        self.n = v + 1\n"
        "        print(v)\n"
    )
    out = tmp_path / "out"
    results = _inspect.inspect_modules(_inspect.resolve_target(str(tmp_path / "tally.py")), str(out), "shared", (),
                                       sys.version_info[:2])
    assert results[0].error is None
    report = (out / "tally.txt").read_text()
    table = report.split("sites (", 1)[1].split("counts:", 1)[0]
    rows = [line.split() for line in table.splitlines()[2:] if line.strip()]
    where = "Tally.bump" if sys.version_info >= (3, 11) else "bump"  # 3.10 code has no co_qualname
    assert ["3", "attr_load", f"{where}:", "n"] in rows
    assert ["4", "attr_store", f"{where}:", "n"] in rows
    assert ["5", "builtin_call", f"{where}:", "print"] in rows
    assert ["1", "call_site", "<module>"] in rows  # the class statement; no name: where alone
    assert "[]" not in table
    counts = report.split("counts:", 1)[1].split("---", 1)[0]
    assert "attr_load            1  obj.name read" in counts
    assert "call_site            1  any other call" in counts


def test_the_projects_configuration_is_what_is_inspected(tmp_path):
    # [tool.frontrun]'s policy and resource methods, as the hook would use them; options add to
    # or override them, and --no-config leaves them out.
    (tmp_path / "pyproject.toml").write_text('[tool.frontrun]\npolicy = "all"\nresource_methods = ["publish"]\n')
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("def notify(bus, m):\n    bus.publish(m)\n    bus.flush()\n")

    def header(*options):
        out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
        proc = run([*INSPECT, "app", "--out", str(out), *options], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        report = (out / "app.txt").read_text()
        return (out / "index.txt").read_text().splitlines()[0], report

    first, report = header()
    assert "policy all, resource methods publish" in first
    assert "call_return      notify: publish" in report
    assert "policy shared, resource methods publish, write" in header("--policy", "shared", "--resource-method", "write")[0]
    first, report = header("--no-config")
    assert "policy shared, resource methods -" in first and "call_return      notify: publish" not in report
    (tmp_path / "pyproject.toml").write_text('[tool.frontrun]\npolicy = "bogus"\n')
    proc = run([*INSPECT, "app", "--out", str(tmp_path / "bad")], cwd=tmp_path)
    assert proc.returncode == 2 and "unknown frontrun policy 'bogus'" in proc.stderr


def test_per_pattern_policies_and_excludes_of_the_configuration_apply(tmp_path):
    # The report said "policy shared" for a module whose include pattern says `all`, and listed
    # an excluded module as rewritten: the hook does neither.
    (tmp_path / "pyproject.toml").write_text(
        '[tool.frontrun]\ninclude = ["app.*=all", "app"]\nexclude = ["app.generated"]\n')
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("X = 1\n")
    (tmp_path / "app" / "mod.py").write_text("def f(p):\n    p.x = p.y + 1\n    return len(p.items)\n")
    (tmp_path / "app" / "generated.py").write_text("def g(p):\n    p.x = 2\n")
    out = tmp_path / "out"
    proc = run([*INSPECT, "app", "--out", str(out)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "2 of 3 modules written" in proc.stdout and "1 excluded by [tool.frontrun]" in proc.stdout
    index = (out / "index.txt").read_text()
    assert "(policy all)" in next(line for line in index.splitlines() if line.startswith("app.mod "))
    assert "excluded by an exclude pattern: not rewritten" in next(
        line for line in index.splitlines() if line.startswith("app.generated "))
    assert not (out / "app.generated.txt").exists()
    assert "policy: all" in (out / "app.mod.txt").read_text()
    assert "policy: shared" in (out / "app.txt").read_text()
