"""The marker transformation used by frontrun's hook tests (in-process and in children)."""

import types

MARK = "MARK"
REWRITTEN = "REWRITTEN"
calls = []


def _mark_const(const):
    if isinstance(const, str):
        return REWRITTEN if const == MARK else const
    if isinstance(const, types.CodeType):
        return mark_code(const)
    if type(const) is tuple:  # folded constants such as ("MARK", 2)
        return tuple(_mark_const(c) for c in const)
    return const


def mark_code(code: types.CodeType) -> types.CodeType:
    consts = tuple(_mark_const(c) for c in code.co_consts)
    return code.replace(co_consts=consts) if consts != code.co_consts else code


def marked(original):
    def rewrite(code, policy, resource_methods):
        calls.append((code.co_filename, code.co_name, policy))
        return mark_code(original(code, policy, resource_methods))

    rewrite.frontrun_marker = True
    return rewrite


def patch():
    from frontrun.rewrite import _core

    if not getattr(_core._rewrite_impl, "frontrun_marker", False):
        _core._rewrite_impl = marked(_core._rewrite_impl)
