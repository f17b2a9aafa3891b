"""The cache of rewritten modules: names, format, reuse, invalidation, failure modes, concurrency."""

from __future__ import annotations

import errno
import importlib
import importlib.util
import marshal
import os
import re
import subprocess
import sys
import threading
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from hook_testutil import REWRITTEN, child_env, copy_hookdata, marker, sandbox  # noqa: E402,F401

import frontrun.rewrite as fr  # noqa: E402
from frontrun.rewrite import _cache, _core  # noqa: E402

TAG = sys.implementation.cache_tag
NAME_RE = re.compile(rf"^(?P<stem>\w+)\.{re.escape(TAG)}-frontrun-(?P<key>[0-9a-f]{{16}})\.pyc$")


def frontrun_pycs(directory: Path) -> list[Path]:
    pycache = directory / "__pycache__"
    return sorted(p for p in pycache.glob("*.pyc") if "-frontrun-" in p.name) if pycache.is_dir() else []


def fresh_import(name: str):
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]
    importlib.invalidate_caches()
    return importlib.import_module(name)


def test_cache_file_name_format_and_reuse(sandbox, marker):
    fr.install(include=["hookpkg"], use_config=False)
    package = fresh_import("hookpkg")
    [pyc] = frontrun_pycs(sandbox / "hookpkg")
    match = NAME_RE.match(pyc.name)
    assert match and match["stem"] == "__init__"
    assert pyc == Path(package.__spec__.cached)
    # Never CPython's own name (nor pytest's): both can live side by side.
    assert pyc.name != Path(importlib.util.cache_from_source(package.__file__)).name
    assert "-pytest-" not in pyc.name

    data = pyc.read_bytes()
    source = (sandbox / "hookpkg" / "__init__.py").read_bytes()
    assert data[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(data[4:8], "little") == 0b11  # PEP 552: hash-based, checked
    assert data[8:16] == importlib.util.source_hash(source)
    cached_code = marshal.loads(data[16:])
    namespace = {}
    exec(cached_code, namespace)
    assert namespace["value"]() == REWRITTEN  # the cache holds the rewritten code

    rewrites = len(marker)
    assert _cache.STATS["writes"] == 1 and _cache.STATS["hits"] == 0
    again = fresh_import("hookpkg")
    assert again is not package
    assert again.value() == REWRITTEN
    assert len(marker) == rewrites  # served from the cache: the rewriter did not run
    assert _cache.STATS["hits"] == 1 and _cache.STATS["writes"] == 1


def test_key_separates_policies_and_resource_methods(sandbox, marker):
    keys = set()
    for policy, methods in (("shared", ()), ("all", ()), ("shared", ("pool.get",))):
        fr.install(include=["hookpkg"], policy=policy, resource_methods=methods, use_config=False)
        fresh_import("hookpkg")
        keys.add(NAME_RE.match(Path(sys.modules["hookpkg"].__spec__.cached).name)["key"])
    assert len(keys) == 3
    assert len(frontrun_pycs(sandbox / "hookpkg")) == 3
    k = _cache.cache_key
    assert k("v", "shared", ("a", "b")) == k("v", "shared", ("a", "b"))
    assert len({k("v", "shared", ()), k("v2", "shared", ()), k("v", "shared", (), optimize=1)}) == 3


def test_stale_cache_is_rebuilt_when_the_source_changes(sandbox, marker):
    fr.install(include=["hookpkg"], use_config=False)
    fresh_import("hookpkg.sub")
    source = sandbox / "hookpkg" / "sub.py"
    stat = source.stat()
    source.write_text(source.read_text().replace('return "MARK"', 'return "MARK", "v2"', 1))
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: only the hash tells
    assert fresh_import("hookpkg.sub").value() == (REWRITTEN, "v2")


@pytest.mark.parametrize("damage", [b"", b"garbage", None, "magic", "flags"])
def test_corrupted_cache_is_recompiled_silently(sandbox, marker, damage):
    fr.install(include=["hookpkg"], use_config=False)
    pyc = Path(fresh_import("hookpkg").__spec__.cached)
    good = pyc.read_bytes()
    if damage is None:
        bad = good[:16] + b"\x00\x01\x02 not marshal"
    elif damage == "magic":
        bad = b"\x00\x00\x0d\x0a" + good[4:]
    elif damage == "flags":
        bad = good[:4] + b"\x01\x00\x00\x00" + good[8:]
    else:
        bad = damage
    pyc.write_bytes(bad)
    with warnings_as_errors():
        assert fresh_import("hookpkg").value() == REWRITTEN
    assert pyc.read_bytes()[:16] == good[:16]  # rewritten, valid again
    marshal.loads(pyc.read_bytes()[16:])


def test_a_cache_file_damaged_anywhere_in_its_code_is_rebuilt(sandbox, marker):
    # One changed byte in the marshal data: now and then it unmarshalled to a code object (the
    # wrong code, run), or marshal failed with a SystemError that stopped the import.
    fr.install(include=["hookpkg"], use_config=False)
    pyc = Path(fresh_import("hookpkg").__spec__.cached)
    good = pyc.read_bytes()
    for at in range(16, len(good), max(1, len(good) // 97)):
        for value in (good[at] ^ 0x84, good[at] ^ 0x01):
            pyc.write_bytes(good[:at] + bytes([value]) + good[at + 1:])
            rewrites = len(marker)
            with warnings_as_errors():
                assert fresh_import("hookpkg").value() == REWRITTEN
            assert len(marker) == rewrites + 1, at  # rebuilt, not run from the damaged file
            assert pyc.read_bytes() == good


class warnings_as_errors:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def test_cached_code_follows_a_moved_tree(sandbox, marker, tmp_path, monkeypatch):
    fr.install(include=["hookpkg"], use_config=False)
    fresh_import("hookpkg")
    moved = tmp_path / "moved"
    moved.mkdir()
    (sandbox / "hookpkg").rename(moved / "hookpkg")
    monkeypatch.syspath_prepend(str(moved))
    rewrites = len(marker)
    package = fresh_import("hookpkg")
    assert len(marker) == rewrites  # reused
    assert package.value.__code__.co_filename == str(moved / "hookpkg" / "__init__.py")


def test_unwritable_directory_works_without_cache_and_without_retrying(sandbox, marker, monkeypatch):
    attempts = []
    real_makedirs = os.makedirs

    def read_only_makedirs(path, *args, **kwargs):
        if str(path).startswith(str(sandbox)):
            attempts.append(path)
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_makedirs(path, *args, **kwargs)

    monkeypatch.setattr(os, "makedirs", read_only_makedirs)
    fr.install(include=["hookpkg"], use_config=False)
    with warnings_as_errors():
        package = fresh_import("hookpkg")
        import hookpkg.nested.deep  # noqa: F401
        import hookpkg.sub
    assert package.value() == REWRITTEN and hookpkg.sub.value() == REWRITTEN
    assert frontrun_pycs(sandbox / "hookpkg") == []
    # One attempt per directory, not one per module.
    assert len(attempts) == len(set(attempts)) == 2


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_directory_for_real(sandbox, marker):
    package_dir = sandbox / "hookpkg"
    package_dir.chmod(0o555)
    try:
        fr.install(include=["hookpkg"], use_config=False)
        assert fresh_import("hookpkg").value() == REWRITTEN
        assert not (package_dir / "__pycache__").exists()
    finally:
        package_dir.chmod(0o755)


def test_pycache_that_is_a_file(sandbox, marker):
    (sandbox / "hookpkg" / "__pycache__").write_text("not a directory")
    fr.install(include=["hookpkg"], use_config=False)
    with warnings_as_errors():
        assert fresh_import("hookpkg").value() == REWRITTEN


def test_dont_write_bytecode_writes_nothing_but_still_reads(sandbox, marker, monkeypatch):
    fr.install(include=["hookpkg"], use_config=False)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    assert fresh_import("hookpkg").value() == REWRITTEN
    assert frontrun_pycs(sandbox / "hookpkg") == []
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    fresh_import("hookpkg")
    [pyc] = frontrun_pycs(sandbox / "hookpkg")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    rewrites = len(marker)
    fresh_import("hookpkg")
    assert len(marker) == rewrites  # an existing cache file is still used


def test_pycache_prefix(sandbox, marker, monkeypatch, tmp_path):
    prefix = tmp_path / "pycs"
    monkeypatch.setattr(sys, "pycache_prefix", str(prefix))
    fr.install(include=["hookpkg"], use_config=False)
    package = fresh_import("hookpkg")
    cached = Path(package.__spec__.cached)
    expected_dir = Path(importlib.util.cache_from_source(package.__file__)).parent
    assert cached.parent == expected_dir and str(cached).startswith(str(prefix))
    assert cached.is_file() and NAME_RE.match(cached.name)
    assert not (sandbox / "hookpkg" / "__pycache__").exists()


def test_configured_cache_dir(sandbox, marker, tmp_path):
    cache_dir = tmp_path / "frontrun-cache"
    fr.install(include=["hookpkg"], use_config=False, cache_dir=str(cache_dir))
    package = fresh_import("hookpkg")
    cached = Path(package.__spec__.cached)
    assert cached.is_file()
    assert cached.parent == cache_dir / str(sandbox / "hookpkg").lstrip(os.sep)
    assert not (sandbox / "hookpkg" / "__pycache__").exists()


def test_uncacheable_code_is_used_uncached(sandbox, monkeypatch):
    def with_unmarshallable_const(code, policy, methods):
        return code.replace(co_consts=code.co_consts + (object(),))

    monkeypatch.setattr(_core, "_rewrite_impl", with_unmarshallable_const)
    fr.install(include=["hookpkg"], use_config=False)
    with warnings_as_errors():
        assert fresh_import("hookpkg").value() == "MARK"
    assert frontrun_pycs(sandbox / "hookpkg") == []


def test_eight_threads_importing_one_package(sandbox, marker):
    # Enough modules that the threads really race on import locks and cache writes.
    package = sandbox / "racepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for i in range(20):
        (package / f"m{i}.py").write_text(f"def value():\n    return 'MARK', {i}\n")
    fr.install(include=["racepkg"], use_config=False)
    barrier = threading.Barrier(8)
    results, errors = [], []

    def worker(offset):
        try:
            barrier.wait()
            for j in range(20):
                i = (j + offset) % 20
                module = importlib.import_module(f"racepkg.m{i}")
                results.append((i, module.value()))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n * 3,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == sorted((i, (REWRITTEN, i)) for i in range(20) for _ in range(8))
    pycs = frontrun_pycs(package)
    assert len(pycs) == 21
    assert not list((package / "__pycache__").glob("*.tmp"))
    for pyc in pycs:
        assert isinstance(marshal.loads(pyc.read_bytes()[16:]), types.CodeType)


CHILD = """
import importlib, sys
import frontrun.rewrite as fr
fr.install(include=["racepkg"], use_config=False)
values = [importlib.import_module("racepkg.m%d" % i).value() for i in range(20)]
assert values == [("REWRITTEN", i) for i in range(20)], values
print("ok")
"""


def test_four_processes_importing_one_package(tmp_path):
    package = tmp_path / "racepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for i in range(20):
        (package / f"m{i}.py").write_text(f"def value():\n    return 'MARK', {i}\n")
    for round_ in range(2):  # first round races on writing, the second on reading
        env = child_env(marker=True, pythonpath=[tmp_path])
        procs = [
            subprocess.Popen([sys.executable, "-c", CHILD], cwd=str(tmp_path), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        outputs = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
        for out, err, code in outputs:
            assert code == 0, err
            assert out == "ok\n" and err == ""
    pycs = frontrun_pycs(package)
    assert len(pycs) == 21
    assert not list((package / "__pycache__").glob("*.tmp"))
    for pyc in pycs:
        data = pyc.read_bytes()
        source = (package / (NAME_RE.match(pyc.name)["stem"] + ".py")).read_bytes()
        assert data[8:16] == importlib.util.source_hash(source)
        assert isinstance(marshal.loads(data[16:]), types.CodeType)


NOTED_CHILD = """
import frontrun.rewrite as fr
from frontrun import _native, _dpor
fr.install(include=["notedpkg"], use_config=False)
import notedpkg
from frontrun.rewrite import _cache
print(_cache.STATS["hits"], _native.is_rewritten_file(notedpkg.__file__),
      _dpor._unseen_callee(notedpkg.passes_through, None))
"""


def test_code_from_the_cache_counts_as_rewritten(tmp_path):
    # A selected function with nothing to rewrite reports for itself (its reads would be
    # reports); that holds whether its module was rewritten now or came from the cache.
    package = tmp_path / "notedpkg"
    package.mkdir()
    (package / "__init__.py").write_text("def passes_through(x):\n    return x\n")
    outputs = []
    for _ in range(2):
        env = child_env(pythonpath=[tmp_path])
        done = subprocess.run([sys.executable, "-c", NOTED_CHILD], cwd=str(tmp_path), env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs == ["0 True False\n", "1 True False\n"]
