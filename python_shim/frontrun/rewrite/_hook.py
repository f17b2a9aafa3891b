"""The import hook: a ``sys.meta_path`` finder whose loaders rewrite selected modules.

How it finds and loads
    ``FrontrunFinder`` sits at ``sys.meta_path[0]``. For each import it asks the finders after
    it (the ones the import system would ask next, normally ``PathFinder``) for the spec, and:

    * returns that very spec untouched when the module is not selected, or has no Python code
      of its own (extension modules, namespace packages, frozen and builtin modules) or
      already carries a frontrun loader;
    * for a selected source module, swaps in ``FrontrunLoader`` (a ``SourceFileLoader``
      subclass, so ``get_source``/``get_filename``/``is_package``/``get_data``/
      ``get_resource_reader`` behave as before; ``get_code`` — used by ``exec_module`` and by
      ``runpy`` for ``-m`` — compiles exactly as CPython does, rewrites, and caches);
    * for a selected module claimed by pytest's ``AssertionRewritingHook`` (test files,
      conftest), wraps pytest's loader in ``PytestChainLoader``: pytest rewrites the asserts
      and compiles (or takes its own cached pyc), then frontrun rewrites that code object just
      before pytest executes it. Those modules are not cached by frontrun (pytest caches its half).
    * for a selected module in a zip archive (``zipimporter``) or with only a pyc
      (``SourcelessFileLoader``), swaps in a subclass of that loader whose ``get_code`` rewrites
      (nothing cached: there is no source to key a cache on, or no place to write it);
    * for a selected Python file any other loader executes (another tool's import hook), leaves
      the spec alone and warns once per module (``UnrewrittenModuleWarning``): frontrun cannot see how that
      loader runs the module.

    The spec keeps ``origin``, ``submodule_search_locations``, ``loader_state`` and
    ``has_location``; ``spec.cached`` (hence ``__cached__``) names frontrun's cache file.

Modules imported before the hook
    ``install()`` instruments selected modules already in ``sys.modules`` in place with
    ``instrument_module`` (function ``__code__`` swap) and warns once naming them: their
    module-level code already ran un-rewritten.
"""

from __future__ import annotations

import builtins
import functools
import importlib.machinery
import importlib.util
import os
import sys
import threading
import types
import warnings
import weakref
import zipimport

from frontrun.rewrite import _cache, _core
from frontrun.rewrite._config import Selection, make_selection

_SourceFileLoader = importlib.machinery.SourceFileLoader


class AlreadyImportedWarning(UserWarning):
    """Selected modules were imported before the frontrun hook and were instrumented in place
    (``modules``: their names)."""

    modules: tuple[str, ...] = ()


class UnrewrittenModuleWarning(UserWarning):
    """A selected module is loaded by a loader frontrun does not know how to rewrite for."""


# 3.15+: ``SourceLoader.get_code`` passes the module's name on to ``source_to_code``.
_SOURCE_TO_CODE_TAKES_NAME = "fullname" in _SourceFileLoader.source_to_code.__code__.co_varnames[
    : _SourceFileLoader.source_to_code.__code__.co_argcount]


class FrontrunLoader(_SourceFileLoader):
    """``SourceFileLoader`` whose code objects are rewritten (and cached under their own name)."""

    def __init__(self, fullname: str, path: str, policy: str, selection: Selection):
        super().__init__(fullname, path)
        self.policy = policy
        self.resource_methods = selection.resource_methods
        key = _cache.cache_key(_core.rewriter_version(), policy, selection.resource_methods)
        self.cache_file = _cache.cache_path(path, key, selection.cache_dir)

    def source_to_code(self, data, path, fullname=None, *, _optimize=-1):
        __tracebackhide__ = True  # pytest leaves our frames out of e.g. a SyntaxError's traceback
        # The base class compiles exactly as a plain import does (dont_inherit=True, optimize=-1),
        # so a SyntaxError carries the same message, filename and line number; from 3.15 with the
        # module's name too, which the SyntaxWarnings of its compilation are attributed to.
        if fullname is None:
            code = super().source_to_code(data, path, _optimize=_optimize)
        else:
            code = super().source_to_code(data, path, fullname, _optimize=_optimize)
        return _core.rewrite_code(code, self.policy, self.resource_methods)

    def get_code(self, fullname):
        __tracebackhide__ = True
        source_path = self.get_filename(fullname)
        source = self.get_data(source_path)
        source_hash = importlib.util.source_hash(source)
        code = _cache.load(self.cache_file, source_path, source_hash)
        if code is not None:
            _core.note_rewritten_file(code.co_filename)
            if sys.flags.verbose:
                print(f"# frontrun: rewritten code object from {self.cache_file}", file=sys.stderr)
            return code
        # Compiled by importlib's own source_to_code, as a plain import compiles (through its
        # `_call_with_frames_removed`), then rewritten.
        if _SOURCE_TO_CODE_TAKES_NAME:
            code = _SourceFileLoader.source_to_code(self, source, source_path, fullname)
        else:
            code = _SourceFileLoader.source_to_code(self, source, source_path)
        code = _core.rewrite_code(code, self.policy, self.resource_methods)
        if sys.flags.verbose:
            print(f"# frontrun: rewrote {source_path} (policy {self.policy})", file=sys.stderr)
        _cache.store(self.cache_file, source_path, source_hash, code)
        return code


# An import statement drops importlib's frames from the traceback of an error it raises, up to
# its `_call_with_frames_removed` (CPython's remove_importlib_frames), when all the frames in that
# run are importlib's: get_code takes importlib's file name, so that `try: import bad` / `except
# SyntaxError` shows the traceback plain python shows, and `python -m bad` the same frames.
FrontrunLoader.get_code.__code__ = FrontrunLoader.get_code.__code__.replace(
    co_filename=_SourceFileLoader.get_code.__code__.co_filename)


# --- zip archives and pyc-only modules ---------------------------------------------------------


class _RewritingGetCode:
    """Mixed into a loader class whose ``exec_module`` (``_LoaderBasics``') runs ``get_code``'s
    code object: that code comes back rewritten."""

    _frontrun_policy: str
    _frontrun_resource_methods: tuple

    def get_code(self, fullname):
        __tracebackhide__ = True
        code = super().get_code(fullname)
        if code is None:
            return None
        # A pyc's module file is not the file its code was compiled from (shutdown needs both).
        _core.note_rewritten_file(self.get_filename(fullname))
        return _core.rewrite_code(code, self._frontrun_policy, self._frontrun_resource_methods)


class FrontrunZipLoader(_RewritingGetCode, zipimport.zipimporter):
    """``zipimporter`` for a selected module in a zip archive, rewriting its code."""


class FrontrunSourcelessLoader(_RewritingGetCode, importlib.machinery.SourcelessFileLoader):
    """``SourcelessFileLoader`` for a selected module shipped as a pyc only, rewriting its code."""


_REWRITING_SUBCLASS = {
    zipimport.zipimporter: FrontrunZipLoader,
    importlib.machinery.SourcelessFileLoader: FrontrunSourcelessLoader,
}

_unrewritten_warned = set()  # the names warned of


def _rewriting_copy(loader, policy: str, selection: Selection):
    """The same loader (same archive, prefix, path), as its rewriting subclass."""
    cls = _REWRITING_SUBCLASS[type(loader)]
    copy = cls.__new__(cls)
    copy.__dict__.update(loader.__dict__)
    copy._frontrun_policy = policy
    copy._frontrun_resource_methods = selection.resource_methods
    return copy


def _warn_unrewritten(name: str, loader) -> None:
    if name in _unrewritten_warned:
        return
    _unrewritten_warned.add(name)
    cls = type(loader)
    _core.warn_at_user_code(
        f"frontrun: the selected module {name!r} is loaded by {cls.__module__}.{cls.__qualname__}, "
        "which frontrun cannot rewrite for; it runs un-instrumented (so may other modules that "
        "loader imports). Load it with the plain source loader to have it rewritten.",
        UnrewrittenModuleWarning,
    )


def _is_python_file(origin) -> bool:
    """Whether a spec's origin is a Python source or bytecode file (its loader runs its code)."""
    return isinstance(origin, str) and origin.endswith((".py", ".pyw", ".pyc"))


def _frozen_source(spec):
    """The source file of a frozen stdlib module (3.11+ freezes ``os``, ``runpy``, ...), if it has one."""
    if spec.origin != "frozen":
        return None
    filename = getattr(spec.loader_state, "filename", None)
    return filename if _is_python_file(filename) and os.path.isfile(filename) else None


def _source_origin(spec):
    """Where a spec's code comes from, for selection: its file, or a frozen module's source."""
    return spec.origin if _is_python_file(spec.origin) else _frozen_source(spec)


# --- pytest's assertion rewriting -------------------------------------------------------------
#
# pytest's AssertionRewritingHook.exec_module ends with ``exec(co, module.__dict__)`` where ``co``
# is its assert-rewritten code (fresh or from its pyc cache). We shadow the name ``exec`` in
# ``_pytest.assertion.rewrite``'s globals with ``_intercepting_exec``: on the thread importing a
# module through PytestChainLoader, and for that module's namespace only, it rewrites the code
# object before executing it; every other call is the builtin ``exec`` unchanged.

_chain_state = threading.local()
_pytest_rewrite_modules: list[types.ModuleType] = []
_chain_failure_warned = False


class _PendingChain:
    __slots__ = ("namespace", "policy", "resource_methods", "rewritten")

    def __init__(self, namespace, policy, resource_methods):
        self.namespace = namespace
        self.policy = policy
        self.resource_methods = resource_methods
        self.rewritten = False


def _intercepting_exec(source, globals=None, locals=None, /, **kwargs):
    __tracebackhide__ = True  # pytest leaves this frame out of its tracebacks
    if globals is None:  # what the builtin does: run in the caller's namespace
        caller = sys._getframe(1)
        globals = caller.f_globals
        if locals is None:
            locals = caller.f_locals
    pending = getattr(_chain_state, "pending", None)
    if (
        pending is not None
        and not pending.rewritten
        and globals is pending.namespace
        and isinstance(source, types.CodeType)
    ):
        source = _core.rewrite_code(source, pending.policy, pending.resource_methods)
        pending.rewritten = True
    if locals is None:
        return builtins.exec(source, globals, **kwargs)
    return builtins.exec(source, globals, locals, **kwargs)


def _is_pytest_assertion_hook(loader) -> bool:
    cls = type(loader)
    return cls.__name__ == "AssertionRewritingHook" and cls.__module__ == "_pytest.assertion.rewrite"


def _hook_pytest_exec(loader) -> None:
    module = sys.modules.get(type(loader).__module__)
    if module is None or module.__dict__.get("exec") is _intercepting_exec:
        return
    module.exec = _intercepting_exec
    _pytest_rewrite_modules.append(module)


def _unhook_pytest_exec() -> None:
    while _pytest_rewrite_modules:
        module = _pytest_rewrite_modules.pop()
        if module.__dict__.get("exec") is _intercepting_exec:
            del module.exec


class PytestChainLoader:
    """pytest's assertion rewriting first, then frontrun's rewriting, for one module."""

    def __init__(self, inner, policy: str, selection: Selection):
        # An importlib.abc.Loader, as pytest's is (``isinstance`` of a test module's
        # ``__loader__``). pytest imported that module; importing it with the hook would cost
        # the launcher ``typing`` and more on 3.10 and 3.11, before anything can be rewritten.
        abc = sys.modules.get("importlib.abc")
        if abc is not None and not issubclass(PytestChainLoader, abc.Loader):
            abc.Loader.register(PytestChainLoader)
        self.inner = inner
        self.policy = policy
        self.resource_methods = selection.resource_methods

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        __tracebackhide__ = True
        _hook_pytest_exec(self.inner)
        pending = _PendingChain(module.__dict__, self.policy, self.resource_methods)
        previous = getattr(_chain_state, "pending", None)
        _chain_state.pending = pending
        try:
            self.inner.exec_module(module)
        finally:
            _chain_state.pending = previous
        if not pending.rewritten:
            _warn_chain_failure(module.__name__)

    def __getattr__(self, name):
        # get_data, get_resource_reader, mark_rewrite, ...: pytest's loader answers.
        return getattr(self.inner, name)


def _warn_chain_failure(name: str) -> None:
    global _chain_failure_warned
    if _chain_failure_warned:
        return
    _chain_failure_warned = True
    warnings.warn(
        f"frontrun could not rewrite {name!r} after pytest's assertion rewriting (this pytest "
        "version executes modules differently); test modules run un-instrumented. "
        "Run pytest with --assert=plain to let frontrun rewrite them directly.",
        RuntimeWarning,
        stacklevel=2,
    )


# The loaders whose modules come out rewritten.
_FRONTRUN_LOADERS = (FrontrunLoader, PytestChainLoader, _RewritingGetCode)


# --- the finder ------------------------------------------------------------------------------


class FrontrunFinder:
    """Meta path finder that hands selected source modules to frontrun's loaders."""

    def __init__(self, selection: Selection):
        self.selection = selection
        self._searching = threading.local()
        # name -> file of every module it selected, imported or not (one whose code failed to
        # compile matched the patterns all the same).
        self.selected: dict[str, str] = {}

    def __repr__(self):
        return f"<FrontrunFinder {self.selection.describe()}>"

    def _skip_by_name(self, fullname: str) -> bool:
        if fullname == "frontrun" or fullname.startswith("frontrun."):
            return True
        # (Module-name include patterns cannot decide by the name alone: they match a file's
        # dotted path under the project root too.)
        return fullname in sys.builtin_module_names

    def find_spec(self, fullname, path=None, target=None):
        if self._skip_by_name(fullname):
            return None
        searching = self._searching.__dict__.setdefault("names", set())
        if fullname in searching:  # a later finder asked the import system again: step aside
            return None
        searching.add(fullname)
        try:
            spec = self._find_with_later_finders(fullname, path, target)
        finally:
            searching.discard(fullname)
        if spec is None:
            return None
        return self.adapt_spec(spec, path)

    def _find_with_later_finders(self, fullname, path, target):
        meta_path = sys.meta_path
        position = next((i for i, f in enumerate(meta_path) if f is self), -1)
        for finder in meta_path[position + 1 :]:
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                if sys.version_info >= (3, 12):
                    continue  # a legacy find_module()-only finder, which the import system skips too
                # 3.10/3.11 ask it (a deprecated fallback): let the import system keep the order.
                return None
            spec = find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None

    def adapt_spec(self, spec, path=None):
        """Give ``spec`` a rewriting loader when it is selected; otherwise return it as it is."""
        loader = spec.loader
        source = _frozen_source(spec)
        if source is not None and self.selection.policy_for(spec.name, source) is not None:
            # A frozen module that is selected (included by name: the stdlib is not by default)
            # is imported from its source file instead, which can be rewritten.
            found = importlib.machinery.PathFinder.find_spec(spec.name, path)
            if found is not None and type(found.loader) is _SourceFileLoader:
                return self.adapt_spec(found)
            return spec
        if type(loader) is _SourceFileLoader:
            policy = self.selection.policy_for(spec.name, spec.origin)
            if policy is None:
                return spec
            self.selected[spec.name] = spec.origin
            new_loader = FrontrunLoader(spec.name, spec.origin, policy, self.selection)
            spec.loader = new_loader
            if new_loader.cache_file is not None:
                spec.cached = new_loader.cache_file
            return spec
        if _is_pytest_assertion_hook(loader):
            policy = self.selection.policy_for(spec.name, spec.origin)
            if policy is None:
                return spec
            self.selected[spec.name] = spec.origin
            spec.loader = PytestChainLoader(loader, policy, self.selection)
            return spec
        if type(loader) in _REWRITING_SUBCLASS:
            policy = self.selection.policy_for(spec.name, spec.origin)
            if policy is not None:
                spec.loader = _rewriting_copy(loader, policy, self.selection)
            return spec
        if (
            _is_python_file(spec.origin)
            and not isinstance(loader, _FRONTRUN_LOADERS)
            and self.selection.policy_for(spec.name, spec.origin) is not None
        ):
            _warn_unrewritten(spec.name, loader)
        return spec

    def invalidate_caches(self):
        pass

    def unmatched_includes(self) -> list[str]:
        """The include patterns that match no module in ``sys.modules``, nor any this finder
        selected (one that failed to import matched), nor any module on disk: a mistyped name.
        (One whose module exists was only not imported: a run of some of the tests, or
        pytest-xdist's controller, which leaves the imports to its workers.)"""
        modules = []
        files = [(name, getattr(module, "__file__", None)) for name, module in list(sys.modules.items())]
        for name, file in files + list(dict(self.selected).items()):
            real = os.path.normcase(os.path.realpath(file)) if isinstance(file, str) else None
            # (A module-name pattern matches a file's dotted path under the roots too: `tests`.)
            modules.append((name, real, self.selection._aliases(real)))
        return [p.text for p in self.selection.include
                if not any(p.matches(name, real, aliases, real) for name, real, aliases in modules)
                and not p.names_an_existing_module(self.selection.roots)]


# --- modules imported before the hook ----------------------------------------------------------

_instrumented_modules: weakref.WeakSet = weakref.WeakSet()
_warned_already_imported: set[str] = set()


def _same_file(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return True
    if a == b:
        return True
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def _module_functions(module: types.ModuleType):
    """Functions defined by ``module``: top level, in its classes (nested too), behind
    staticmethod/classmethod/property/cached_property and ``functools.wraps`` wrappers."""
    name = module.__name__
    filename = module.__dict__.get("__file__")
    frozen = f"<frozen {name}>"  # a frozen stdlib module's code names no file
    seen: set[int] = set()
    stack = list(module.__dict__.values())
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, types.FunctionType):
            if obj.__module__ == name and (obj.__code__.co_filename == frozen
                                           or _same_file(obj.__code__.co_filename, filename)):
                yield obj
            wrapped = obj.__dict__.get("__wrapped__")
            if wrapped is not None:
                stack.append(wrapped)
        elif isinstance(obj, (staticmethod, classmethod, types.MethodType)):
            stack.append(obj.__func__)
        elif isinstance(obj, property):
            stack.extend(f for f in (obj.fget, obj.fset, obj.fdel) if f is not None)
        elif isinstance(obj, functools.cached_property):
            stack.append(obj.func)
        elif isinstance(obj, type):
            if obj.__module__ == name:
                stack.extend(vars(obj).values())
        elif not isinstance(obj, types.ModuleType):
            try:
                attributes = object.__getattribute__(obj, "__dict__")
            except Exception:
                continue
            if isinstance(attributes, dict) and attributes.get("__wrapped__") is not None:
                stack.append(attributes["__wrapped__"])  # e.g. functools.lru_cache wrappers


def instrument_module(module: types.ModuleType, policy: str = _core.DEFAULT_POLICY, resource_methods=()) -> int:
    """Rewrite, in place, the functions of an already imported module.

    Swaps ``__code__`` of every function the module defines (see ``_module_functions``); closures
    keep working because rewriting keeps ``co_freevars``. Module-level code is not re-run, and
    code objects held elsewhere (e.g. lambdas inside containers) are not found. Returns the
    number of functions changed. A module loaded through the hook is already rewritten: 0.
    """
    if not isinstance(module, types.ModuleType):
        raise TypeError(f"instrument_module() expects a module, not {type(module).__name__}")
    _core.check_policy(policy)
    resource_methods = _core.normalize_resource_methods(resource_methods)
    spec = module.__dict__.get("__spec__")
    if spec is not None and isinstance(spec.loader, _FRONTRUN_LOADERS):
        return 0
    if module in _instrumented_modules:
        return 0
    changed = 0
    for func in _module_functions(module):
        old = func.__code__
        new = _core.rewrite_code(old, policy, resource_methods)
        if new is old or len(new.co_freevars) != len(old.co_freevars):
            continue
        func.__code__ = new
        changed += 1
    _instrumented_modules.add(module)
    return changed


def shown_names(names) -> str:
    names = list(names)
    return ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")


# Set by the launcher before it installs the hook, first thing in its process.
launched = False


def _instrument_already_imported(selection: Selection, stacklevel: int) -> list[str]:
    instrumented = []
    for key, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType) or module in _instrumented_modules:
            continue
        spec = module.__dict__.get("__spec__")
        # Any loader of a Python file: the plain one, pytest's assertion rewriter (a package
        # that is also a pytest plugin is imported by it before any hook), a zip archive's,
        # the frozen stdlib's (3.11+: ``os`` is imported before any hook).
        origin = _source_origin(spec) if spec is not None else None
        if origin is None:
            continue
        if isinstance(spec.loader, _FRONTRUN_LOADERS):
            continue  # loaded through a hook: rewritten already
        if getattr(spec, "_initializing", False):
            continue  # still executing (e.g. the conftest.py calling install()): half-defined
        policy = selection.policy_for(spec.name, origin)
        if policy is None:
            continue
        instrument_module(module, policy, selection.resource_methods)
        if os.path.basename(origin) != "conftest.py":  # the one-line conftest hook's own
            instrumented.append(key)
    fresh = sorted(set(instrumented) - _warned_already_imported)
    if fresh:
        _warned_already_imported.update(fresh)
        warning = AlreadyImportedWarning(
            "frontrun: these modules were imported before the frontrun import hook was installed: "
            f"{shown_names(fresh)}. Their functions were instrumented in place, but their module-level "
            "code already ran un-instrumented and code objects held elsewhere keep the old code. "
            + (
                # (The launcher installs it first thing: these came with the interpreter's start-up,
                # or with the standard library modules frontrun itself needs.)
                "They were imported at interpreter start-up or by frontrun itself, before any import "
                "hook could be."
                if launched else
                "Install the hook earlier: run the program with `python -m frontrun.rewrite ...`, use "
                "the pytest plugin, or call frontrun.rewrite.install() before importing them."
            )
        )
        warning.modules = tuple(fresh)
        warnings.warn(warning, stacklevel=stacklevel)
    return instrumented


# --- install / uninstall -----------------------------------------------------------------------

_install_lock = threading.RLock()
_active: FrontrunFinder | None = None


def install(
    include=None,
    exclude=None,
    policy: str | None = None,
    resource_methods=None,
    *,
    root: str | None = None,
    extra_roots=(),
    use_config: bool = True,
    cache_dir: str | None = None,
    instrument_imported: bool = True,
    _stacklevel: int = 1,
) -> FrontrunFinder:
    """Install the import hook at ``sys.meta_path[0]`` (replacing an earlier one) and return it.

    ``include``/``exclude`` are patterns (see ``frontrun.rewrite._config``); ``None`` means "as
    configured in ``[tool.frontrun]``", found from ``root`` (default: the current directory)
    upwards. Selected modules already imported are instrumented in place, with one warning.
    """
    global _active
    selection = make_selection(
        include,
        exclude,
        policy,
        resource_methods,
        root=root,
        extra_roots=tuple(extra_roots) + _main_script_dir(),
        use_config=use_config,
        cache_dir=cache_dir,
    )
    with _install_lock:
        _remove_finders()
        finder = FrontrunFinder(selection)
        sys.meta_path.insert(0, finder)
        _active = finder
    if instrument_imported:
        _instrument_already_imported(selection, stacklevel=_stacklevel + 2)
    return finder


def _main_script_dir() -> tuple[str, ...]:
    """The directory of the script being run (``python app/main.py``), one of the default roots."""
    main = sys.modules.get("__main__")
    if main is None or main.__dict__.get("__spec__") is not None:
        return ()  # -m, or an interactive session: the project root alone decides
    path = main.__dict__.get("__file__")
    if not isinstance(path, str) or not os.path.isfile(path):
        return ()
    directory = os.path.dirname(os.path.realpath(path))
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        real_prefix = os.path.realpath(prefix)
        if directory == real_prefix or directory.startswith(real_prefix + os.sep):
            return ()  # a console script such as bin/pytest is not the user's code
    return (directory,)


def _remove_finders() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, FrontrunFinder)]


def uninstall() -> None:
    """Remove the hook. Modules already imported (or instrumented) stay rewritten."""
    global _active
    with _install_lock:
        _remove_finders()
        _unhook_pytest_exec()
        _active = None


def installed() -> FrontrunFinder | None:
    """The active finder, or None when the hook is not installed."""
    finder = _active
    return finder if finder is not None and any(f is finder for f in sys.meta_path) else None


def move_to_front() -> bool:
    """Put the active finder back at ``sys.meta_path[0]`` (pytest inserts its own hook there)."""
    with _install_lock:
        finder = installed()
        if finder is None:
            return False
        if sys.meta_path[0] is not finder:
            sys.meta_path.remove(finder)
            sys.meta_path.insert(0, finder)
        return True
