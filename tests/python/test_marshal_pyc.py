"""The Rust marshal layer reads and writes back every stdlib pyc of this interpreter."""

import importlib.util
import marshal
import py_compile
import sys
import sysconfig
import types
from pathlib import Path

import pytest

from frontrun import _native

STDLIB = Path(sysconfig.get_paths()["stdlib"])
TAG = sys.implementation.cache_tag


def stdlib_pycs(tmp_path_factory):
    """The interpreter's own cached pycs; compiled into a temp dir where it ships none. (Not
    frontrun's caches of rewritten stdlib modules, which other tests leave there: a CRC follows
    their marshal data.)"""
    found = sorted(p for p in STDLIB.rglob(f"__pycache__/*.{TAG}*.pyc") if "-frontrun-" not in p.name)
    if len(found) >= 500:
        return found
    out = tmp_path_factory.mktemp("pycs")
    for i, src in enumerate(sorted(STDLIB.glob("*.py"))):
        for mode in (py_compile.PycInvalidationMode.TIMESTAMP, py_compile.PycInvalidationMode.CHECKED_HASH):
            try:
                found.append(Path(py_compile.compile(str(src), cfile=str(out / f"{i}-{mode.name}.pyc"),
                                                     doraise=True, invalidation_mode=mode)))
            except py_compile.PyCompileError:
                pass
    return found


@pytest.fixture(scope="module")
def pycs(tmp_path_factory):
    return stdlib_pycs(tmp_path_factory)


def test_every_stdlib_pyc_round_trips_byte_identically(pycs):
    assert len(pycs) > 300
    for path in pycs:
        data = path.read_bytes()
        assert _native.pyc_roundtrip(data) == data, path
        payload = data[16:]
        assert _native.roundtrip_marshal(payload, sys.version_info[:2]) == payload, path


def test_written_pyc_loads_to_an_equal_code_object(pycs):
    for path in pycs[:: max(1, len(pycs) // 400)]:
        data = path.read_bytes()
        again = _native.pyc_roundtrip(data)
        assert same_value(marshal.loads(again[16:]), marshal.loads(data[16:])), path


def same_value(a, b):
    """`a == b`, where a NaN constant (test_float's) is equal to a NaN: code objects holding
    one are never `==`."""
    if type(a) is not type(b):
        return False
    if isinstance(a, types.CodeType):
        return (a.replace(co_consts=()) == b.replace(co_consts=())
                and same_value(a.co_consts, b.co_consts))
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, (float, complex)):
        return repr(a) == repr(b)
    return a == b


def test_pyc_info_reads_the_header(pycs):
    info = _native.pyc_info(pycs[0].read_bytes())
    assert info["magic"] == int.from_bytes(importlib.util.MAGIC_NUMBER[:2], "little")
    assert tuple(info["version"]) == sys.version_info[:2]


@pytest.mark.parametrize("bad", [b"", b"\x00" * 15, importlib.util.MAGIC_NUMBER + b"\x00" * 12 + b"Q",
                                 b"\xff\xff\r\n" + b"\x00" * 12 + b"\xe3"])
def test_malformed_pyc_is_a_clear_value_error(bad):
    with pytest.raises(ValueError) as info:
        _native.pyc_roundtrip(bad)
    assert str(info.value)


def test_read_pyc_gives_the_code_of_this_interpreter(pycs):
    from frontrun.bytecode import read_pyc

    pyc = read_pyc(pycs[0])
    assert pyc.version == sys.version_info[:2]
    assert pyc.code == marshal.loads(pycs[0].read_bytes()[16:])
    assert pyc.name == "<module>"


@pytest.mark.parametrize("mode", ["timestamp", "checked-hash", "unchecked-hash"])
def test_write_pyc_is_importable_like_py_compile(tmp_path, mode):
    import importlib.machinery
    import subprocess

    from frontrun.bytecode import read_pyc, write_pyc

    src = tmp_path / "mod.py"
    src.write_text("ANSWER = sum(range(7))\n")
    code = compile(src.read_text(), str(src), "exec")
    out = tmp_path / "mod.pyc"
    write_pyc(out, code, source_path=src, invalidation_mode=mode)
    expected = tmp_path / "expected.pyc"
    py_compile.compile(str(src), cfile=str(expected), invalidation_mode=py_compile.PycInvalidationMode[mode.upper().replace("-", "_")])
    assert out.read_bytes()[:16] == expected.read_bytes()[:16]
    assert read_pyc(out).code == code
    loader = importlib.machinery.SourcelessFileLoader("mod", str(out))
    spec = importlib.util.spec_from_loader("mod", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    assert module.ANSWER == 21
    # The file a sourceless import runs is exactly what the Rust writer produced.
    run = subprocess.run([sys.executable, str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_another_versions_pyc_is_read_but_not_materialised(tmp_path):
    import subprocess
    from pathlib import Path as P

    from frontrun.bytecode import read_pyc

    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    table = P.home() / ".cache" / "frontrun" / "pythons.txt"
    others = [l.split() for l in table.read_text().splitlines() if l.split()[0] != here] if table.exists() else []
    if not others:
        pytest.skip("no other interpreter provisioned")
    version, interp = others[0][0], others[0][1]
    src = tmp_path / "other.py"
    src.write_text("def f():\n    return 42\n")
    out = tmp_path / "other.pyc"
    subprocess.run([interp, "-c", f"import py_compile; py_compile.compile({str(src)!r}, cfile={str(out)!r})"], check=True)
    pyc = read_pyc(out)
    assert pyc.version == tuple(map(int, version.split(".")))
    assert pyc.name == "<module>" and pyc.filename == str(src)
    with pytest.raises(ValueError, match="inspect"):
        pyc.code


def test_read_pyc_names_the_file_of_a_bad_pyc(tmp_path):
    from frontrun.bytecode import read_pyc

    bad = tmp_path / "bad.pyc"
    bad.write_bytes(importlib.util.MAGIC_NUMBER + b"\x00" * 12 + b"\xe3\x00")
    with pytest.raises(ValueError, match="bad.pyc"):
        read_pyc(bad)
