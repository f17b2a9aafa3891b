"""The pure rewriting step: a thin wrapper over ``frontrun._native.rewrite_code``.

Everything else in :mod:`frontrun.rewrite` (the import hook, the cache, ``instrument_module``,
the launcher) goes through :func:`rewrite_code` here, looked up at call time, so a test can
replace ``_rewrite_impl`` with a marker transformation and see it applied everywhere.
"""

from __future__ import annotations

import os
import sys
import types
import warnings

from frontrun import _native

POLICIES = ("resources", "shared", "all")
DEFAULT_POLICY = "shared"

# The native entry points; None while this build has no rewriter (colleagues' Rust side).
_native_rewrite = getattr(_native, "rewrite_code", None)
UnsupportedVersion = getattr(_native, "UnsupportedVersion", None)
# Code loaded rewritten from the cache is noted as `rewrite_code` notes what it rewrites.
note_rewritten_file = getattr(_native, "note_rewritten_file", lambda file: None)

_unsupported_warned = False
# The frontrun package's directory.
FRONTRUN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Frames a warning about an import skips to name the program's line: frontrun's and importlib's.
_IMPORT_MACHINERY = (FRONTRUN_DIR + os.sep, "<frozen importlib", os.path.join(os.path.dirname(os.__file__), "importlib", ""))


def warn_at_user_code(message, category=UserWarning, stacklevel=2):
    """``warnings.warn`` attributed to the first frame outside frontrun and importlib (the
    program's ``import`` or ``install()``), where 3.12+ can skip frames by file; before,
    ``stacklevel`` frames up."""
    if sys.version_info >= (3, 12):
        warnings.warn(message, category, skip_file_prefixes=_IMPORT_MACHINERY)
    else:
        warnings.warn(message, category, stacklevel=stacklevel + 1)


def rewriter_version() -> str:
    """Identity of the rewriter for cache keys: changes whenever its output may change."""
    version = getattr(_native, "REWRITER_VERSION", None)
    if _native_rewrite is None:
        return "identity"
    return f"native-{version}"


def native_available() -> bool:
    return _native_rewrite is not None


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise ValueError(f"unknown frontrun policy {policy!r}; expected one of {', '.join(POLICIES)}")
    return policy


def normalize_resource_methods(resource_methods) -> tuple[str, ...]:
    if resource_methods is None:
        return ()
    if isinstance(resource_methods, str):
        resource_methods = [resource_methods]
    methods = []
    for method in resource_methods:
        if not isinstance(method, str) or not method:
            raise TypeError(f"resource method names must be non-empty strings, got {method!r}")
        methods.append(method)
    # Order and duplicates carry no meaning; normalising keeps cache keys stable.
    return tuple(sorted(set(methods)))


def _rewrite_impl(code: types.CodeType, policy: str, resource_methods: tuple[str, ...]) -> types.CodeType:
    if _native_rewrite is None:
        return code
    return _native_rewrite(code, policy, resource_methods)


def _warn_unsupported_once(exc: BaseException) -> None:
    global _unsupported_warned
    if _unsupported_warned:
        return
    _unsupported_warned = True
    warnings.warn(
        f"frontrun cannot rewrite bytecode for this interpreter ({exc}); "
        "modules run un-instrumented, so frontrun sees no shared-state accesses in them",
        RuntimeWarning,
        stacklevel=3,
    )


def rewrite_code(
    code: types.CodeType, policy: str = DEFAULT_POLICY, resource_methods=()
) -> types.CodeType:
    """Return ``code`` with report calls injected around shared-state accesses.

    Pure: ``code`` is not modified; the same object comes back when nothing was selected.
    Malformed code raises ``ValueError``. On an interpreter the rewriter does not know, the code
    is returned unchanged and a ``RuntimeWarning`` is issued once per process.
    """
    if not isinstance(code, types.CodeType):
        raise TypeError(f"rewrite_code() expects a code object, got {type(code).__name__}")
    check_policy(policy)
    resource_methods = normalize_resource_methods(resource_methods)
    try:
        return _rewrite_impl(code, policy, resource_methods)
    except Exception as exc:
        if UnsupportedVersion is not None and isinstance(exc, UnsupportedVersion):
            _warn_unsupported_once(exc)
            return code
        raise
