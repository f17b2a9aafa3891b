"""Helpers shared by tests/python/test_hook*.py, test_launcher*.py and test_pytest_plugin*.py."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import frontrun
from frontrun.rewrite import _cache, _core, _hook

DATA = Path(__file__).resolve().parent
HOOKDATA = DATA / "hookdata"
MARKER_SITE = DATA / "marker_site"
# The directory that makes `import frontrun` find the frontrun under test, for child processes.
FRONTRUN_PARENT = Path(frontrun.__file__).resolve().parent.parent

if str(MARKER_SITE) not in sys.path:
    sys.path.append(str(MARKER_SITE))
import frontrun_marker  # noqa: E402

MARK, REWRITTEN = frontrun_marker.MARK, frontrun_marker.REWRITTEN


def copy_hookdata(dest: Path, *names: str) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names or [p.name for p in HOOKDATA.iterdir() if p.name != "README.txt"]:
        source = HOOKDATA / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, dest / name)
    return dest


def child_env(marker: bool = False, pythonpath=(), **extra: str) -> dict:
    env = dict(os.environ)
    paths = [str(MARKER_SITE)] if marker else []
    paths += [str(p) for p in pythonpath] + [str(FRONTRUN_PARENT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    for key in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "PYTEST_ADDOPTS", "PYTEST_PLUGINS"):
        env.pop(key, None)
    env.update(extra)
    return env


def run(args, cwd, marker: bool = False, pythonpath=(), env_extra=None, timeout=120, **kwargs):
    return subprocess.run(
        [sys.executable, *args],
        cwd=str(cwd),
        env=child_env(marker, pythonpath, **(env_extra or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def code_objects(code: types.CodeType, prefix: str = "") -> dict:
    """Every code object under ``code`` keyed by a qualified path, for recursive comparison."""
    key = f"{prefix}/{code.co_qualname if hasattr(code, 'co_qualname') else code.co_name}@{code.co_firstlineno}"
    found = {key: code}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found.update(code_objects(const, key))
    return found


_CODE_FIELDS = [
    name
    for name in (
        "co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_nlocals", "co_stacksize", "co_flags",
        "co_firstlineno", "co_code", "co_names", "co_varnames", "co_freevars", "co_cellvars", "co_filename",
        "co_name", "co_qualname", "co_linetable", "co_lnotab", "co_exceptiontable",
    )
    if hasattr(types.CodeType, name)
]


def canonical(obj):
    """Everything a code object holds, recursively, as plain comparable data.

    (``marshal.dumps`` bytes are no good for this: its back-reference flags depend on refcounts.)
    """
    if isinstance(obj, types.CodeType):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # co_lnotab on 3.12+
            fields = tuple((name, getattr(obj, name)) for name in _CODE_FIELDS)
        return ("code", fields, tuple(canonical(c) for c in obj.co_consts))
    if type(obj) in (tuple, frozenset):
        return (type(obj).__name__, tuple(canonical(c) for c in obj))
    return (type(obj).__name__, repr(obj))


def entry_point_installed() -> bool:
    from importlib.metadata import entry_points

    return any(ep.name == "frontrun" for ep in entry_points(group="pytest11"))


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A fresh copy of the test packages on sys.path; hook and imports undone afterwards."""
    root = copy_hookdata(tmp_path / "proj")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(_cache, "_unwritable_dirs", set())
    monkeypatch.setattr(_hook, "_warned_already_imported", set())
    monkeypatch.setattr(_cache, "STATS", dict.fromkeys(_cache.STATS, 0))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    before = set(sys.modules)
    importlib.invalidate_caches()
    try:
        yield root
    finally:
        _hook.uninstall()
        for name in set(sys.modules) - before:
            del sys.modules[name]
        importlib.invalidate_caches()


@pytest.fixture
def marker(monkeypatch):
    """Make rewriting visible: rewritten code has "MARK" constants replaced by "REWRITTEN"."""
    frontrun_marker.calls.clear()
    monkeypatch.setattr(_core, "_rewrite_impl", frontrun_marker.marked(_core._rewrite_impl))
    return frontrun_marker.calls
