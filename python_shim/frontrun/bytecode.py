"""Decode and re-encode CPython bytecode with frontrun's Rust codec.

The opcode table is chosen by the running interpreter's ``sys.version_info``; on a version
frontrun has no table for, every function raises ``ValueError`` naming that version.
"""

from frontrun import _native

__all__ = ["disassemble", "reassemble", "instructions", "stacksize"]


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
