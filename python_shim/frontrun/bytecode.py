"""Decode and re-encode CPython bytecode with frontrun's Rust codec.

The opcode table is chosen by the running interpreter's ``sys.version_info``; on a version
frontrun has no table for, every function raises ``ValueError`` naming that version.
"""

import importlib.util
import marshal
import os
import sys
from dataclasses import dataclass, field

from frontrun import _native

__all__ = ["disassemble", "reassemble", "instructions", "stacksize", "Pyc", "read_pyc", "write_pyc"]


def disassemble(code):
    """A dis-like listing: offsets, lines, labels, resolved arguments, exception regions."""
    return _native.bytecode_disassemble(code)


def reassemble(code, recursive=True):
    """Decode and encode ``code`` unchanged (and its nested code objects when ``recursive``).

    ``co_stacksize`` becomes the larger of the flow analysis and the original value.
    """
    return _native.bytecode_reassemble(code, recursive)


def instructions(code):
    """``(offset, opname, arg, argval, jump_target_offset, line)`` per instruction.

    Offsets are byte offsets of the opcode unit, as ``dis`` reports them; EXTENDED_ARG prefixes
    are folded into ``arg``; ``jump_target_offset`` is None for non-jumps.
    """
    return _native.bytecode_instructions(code)


def stacksize(code):
    """The maximum stack depth of ``code`` by flow analysis (no floor from ``co_stacksize``)."""
    return _native.bytecode_stacksize(code)


@dataclass(frozen=True)
class Pyc:
    """A pyc file of any supported CPython version, read by frontrun's Rust marshal layer.

    Timestamp pycs carry ``mtime`` and ``source_size``; PEP 552 hash pycs carry
    ``source_hash`` and ``check_source``.
    """

    version: tuple
    magic: int
    flags: int
    name: str
    filename: str
    mtime: int | None = None
    source_size: int | None = None
    source_hash: bytes | None = None
    check_source: bool | None = None
    payload: bytes = field(default=b"", repr=False)

    @property
    def code(self):
        """The module code object; only a pyc of the running interpreter's version has one."""
        here = sys.version_info[:2]
        if self.version != here:
            raise ValueError(
                f"a Python {self.version[0]}.{self.version[1]} pyc cannot become a code object of "
                f"this Python {here[0]}.{here[1]}; inspect it with "
                f"`python -m frontrun.rewrite inspect ... --python-version {self.version[0]}.{self.version[1]}`"
            )
        return marshal.loads(self.payload)


def read_pyc(path):
    """Read a pyc file of any CPython 3.10-3.15; ``ValueError`` says what is wrong with a bad one."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        info, payload = _native.read_pyc_parts(data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return Pyc(
        version=tuple(info["version"]), magic=info["magic"], flags=info["flags"],
        name=info.get("name"), filename=info.get("filename"), mtime=info.get("mtime"),
        source_size=info.get("source_size"), source_hash=info.get("hash"),
        check_source=info.get("check_source"), payload=payload,
    )


def write_pyc(path, code, *, source_path=None, invalidation_mode="timestamp", mtime=None, source_size=None):
    """Write ``code`` (of the running interpreter) as a pyc at ``path``, atomically.

    The header follows ``invalidation_mode`` like ``py_compile``: ``"timestamp"`` (from
    ``source_path``'s stat, or ``mtime`` and ``source_size``), ``"checked-hash"`` or
    ``"unchecked-hash"`` (from ``source_path``'s bytes).
    """
    header = {}
    if invalidation_mode == "timestamp":
        if source_path is not None:
            st = os.stat(source_path)
            mtime, source_size = int(st.st_mtime), st.st_size
        if mtime is None or source_size is None:
            raise ValueError("a timestamp pyc needs source_path, or mtime and source_size")
        header = {"mtime": mtime & 0xFFFFFFFF, "source_size": source_size & 0xFFFFFFFF}
    elif invalidation_mode in ("checked-hash", "unchecked-hash"):
        if source_path is None:
            raise ValueError("a hash-based pyc needs source_path")
        with open(source_path, "rb") as f:
            header = {"source_hash": importlib.util.source_hash(f.read()),
                      "check_source": invalidation_mode == "checked-hash"}
    else:
        raise ValueError(f"unknown invalidation_mode {invalidation_mode!r}")
    data = _native.build_pyc(marshal.dumps(code), sys.version_info[:2], **header)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
