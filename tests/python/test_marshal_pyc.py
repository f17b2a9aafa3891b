"""The Rust marshal layer reads and writes back every stdlib pyc of this interpreter."""

import importlib.util
import marshal
import py_compile
import sys
import sysconfig
from pathlib import Path

import pytest

from frontrun import _native

STDLIB = Path(sysconfig.get_paths()["stdlib"])
TAG = sys.implementation.cache_tag


def stdlib_pycs(tmp_path_factory):
    """The interpreter's own cached pycs; compiled into a temp dir where it ships none."""
    found = sorted(STDLIB.rglob(f"__pycache__/*.{TAG}*.pyc"))
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
        assert marshal.loads(again[16:]) == marshal.loads(data[16:]), path


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
