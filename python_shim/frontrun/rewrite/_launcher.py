"""``python -m frontrun.rewrite``: run a program with the import hook installed from the start.

The program sees what plain ``python`` would give it: ``sys.argv``, ``sys.path[0]``, a fresh
``__main__`` module (``__file__``, ``__loader__``, ``__spec__`` as CPython sets them), the
exit status (``SystemExit`` passes through; an uncaught exception prints its traceback through
``sys.excepthook`` and exits 1) and tracebacks without the launcher's frames. The main script
is compiled through the rewriting loader too; it is rewritten unless an exclude pattern names it.
"""

from __future__ import annotations

import builtins
import collections
import itertools
import importlib.machinery
import importlib.util
import os
import runpy
import sys
import types
import warnings

USAGE = """\
usage: python -m frontrun.rewrite [options] (script.py | -m module | -c command | -) [args ...]
       python -m frontrun.rewrite inspect TARGET --out DIR [--policy P] [--python-version X.Y]

Run a Python program with frontrun's import-time rewriter installed.

options:
  --include PAT          rewrite modules matching PAT (repeatable); a module glob (myapp,
                         myapp.*, tests.test_*) or a path glob (src/, tools/*.py);
                         PAT=POLICY gives that pattern its own policy.
                         Default: the project's own code (see [tool.frontrun] in pyproject.toml)
  --exclude PAT          never rewrite modules matching PAT (repeatable)
  --policy P             resources | shared | all (default: shared)
  --resource-method M    also treat method M as a resource operation (repeatable)
  --cache-dir DIR        keep rewritten pycs under DIR instead of __pycache__
  --no-config            ignore [tool.frontrun] in pyproject.toml
  -h, --help             show this help
"""

_VALUE_OPTIONS = {"--include", "--exclude", "--policy", "--resource-method", "--cache-dir"}


class UsageError(Exception):
    pass


# The environment variable that hands the launcher's selection (``install()``'s arguments, as
# JSON) to the pytest plugin of a child interpreter: pytest-xdist's workers.
LAUNCHER_SETTINGS = "FRONTRUN_LAUNCHER_SETTINGS"


def parse_args(argv: list[str]) -> tuple[dict, str, str, list[str]]:
    """``(options, kind, target, program_args)`` with ``kind`` in {"script", "module", "command",
    "stdin"} (``-``: the program is on standard input)."""
    options: dict = {"include": [], "exclude": [], "policy": None, "resource_method": [], "cache_dir": None,
                     "no_config": False}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            raise SystemExit(_print_usage(0))
        if arg == "--no-config":
            options["no_config"] = True
            i += 1
            continue
        name, eq, value = arg.partition("=")
        if name in _VALUE_OPTIONS:
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"{name} needs a value")
                value = argv[i + 1]
                i += 1
            key = name[2:].replace("-", "_")
            if isinstance(options[key], list):
                options[key].append(value)
            else:
                options[key] = value
            i += 1
            continue
        if arg == "-m":
            if i + 1 >= len(argv):
                raise UsageError("-m needs a module name")
            return options, "module", argv[i + 1], argv[i + 2 :]
        if arg == "-c":
            if i + 1 >= len(argv):
                raise UsageError("-c needs a command")
            return options, "command", argv[i + 1], argv[i + 2 :]
        if arg == "--":
            i += 1
            if i >= len(argv):
                break
            return options, "stdin" if argv[i] == "-" else "script", argv[i], argv[i + 1 :]
        if arg == "-":
            return options, "stdin", arg, argv[i + 1 :]
        if arg.startswith("-"):
            raise UsageError(f"unknown option {arg}")
        return options, "script", arg, argv[i + 1 :]
    raise UsageError("no script, -m module or -c command to run")


def _print_usage(status: int) -> int:
    (sys.stdout if status == 0 else sys.stderr).write(USAGE)
    return status


def main(argv: list[str] | None = None) -> None:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "inspect":
        from frontrun.rewrite import _inspect

        raise SystemExit(_inspect.main(argv[1:]))
    try:
        options, kind, target, program_args = parse_args(argv)
    except UsageError as exc:
        sys.stderr.write(f"python -m frontrun.rewrite: error: {exc}\n\n")
        raise SystemExit(_print_usage(2)) from None

    from frontrun.rewrite import _config, _hook

    # Configuration is looked up from the script's directory (the cwd for -m, -c and -), which
    # is also a root of "the user's own code" and where its own modules are (`_program_starts`).
    if kind in ("module", "command", "stdin"):
        start = os.getcwd()
    elif os.path.isdir(target):
        start = os.path.abspath(target)
    else:
        start = os.path.dirname(os.path.realpath(target))
    settings = dict(
        include=_config.from_cwd(options["include"]) or None,
        exclude=_config.from_cwd(options["exclude"]) or None,
        policy=options["policy"],
        resource_methods=options["resource_method"] or None,
        root=start,
        extra_roots=[start],
        use_config=not options["no_config"],
        cache_dir=options["cache_dir"],
    )
    _hook.launched = True
    try:
        with warnings.catch_warnings():
            # Said, never raised (`-W error` is for the program's warnings): it stops nothing.
            warnings.simplefilter("default", _hook.AlreadyImportedWarning)
            finder = _hook.install(**settings)
    except (ValueError, TypeError, OSError) as exc:
        sys.stderr.write(f"python -m frontrun.rewrite: error: {exc}\n")
        raise SystemExit(2) from None
    # pytest's worker processes (pytest-xdist) load the plugin, which installs the same hook.
    # (json only now: imported before the hook, it could not be rewritten if included.)
    import json

    os.environ[LAUNCHER_SETTINGS] = json.dumps(settings)

    _program_starts(start)
    if kind == "module":
        _run_guarded(lambda: _run_module(target, program_args))
    elif kind == "command":
        _run_guarded(lambda: _run_source(target, "<string>", ["-c", *program_args], finder))
    elif kind == "stdin":
        source = sys.stdin.buffer.read()
        _run_guarded(lambda: _run_source(source, "<stdin>", ["-", *program_args], finder))
    else:
        _run_guarded(lambda: _run_script(target, program_args, finder))


def _program_starts(program_dir: str) -> None:
    """The program's view of what python had loaded: the current directory back on
    ``sys.path`` (``frontrun._launch_start`` took it off), and the modules the launcher imported
    forgotten where the program's own directory has one of that name (a ``json.py`` beside the
    script is what its ``import json`` gets from plain python). The launcher keeps its own."""
    import frontrun

    if frontrun._LAUNCH_PATH0 is not None:
        sys.path.insert(0, frontrun._LAUNCH_PATH0)
        frontrun._LAUNCH_PATH0 = None
    before = frontrun._LAUNCH_MODULES
    if before is None:
        return
    for name in [n for n in sys.modules if n not in before]:
        top = name.partition(".")[0]
        if top == "frontrun" or top in sys.builtin_module_names:
            continue
        own = os.path.join(program_dir, top)
        if os.path.isfile(own + ".py") or os.path.isfile(own + ".pyc") or os.path.isfile(os.path.join(own, "__init__.py")):
            del sys.modules[name]


def _fresh_main() -> types.ModuleType:
    """A ``__main__`` like the one the interpreter creates at startup."""
    main = types.ModuleType("__main__")
    if sys.version_info < (3, 14):
        main.__annotations__ = {}  # set at startup until PEP 649
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    return main


def _run_module(name: str, args: list[str]) -> None:
    sys.argv = [name, *args]
    _fresh_main()
    # What CPython's ``-m`` itself calls: argv[0], __spec__, __file__ and the error messages
    # ("No module named ...") come out identical. The module's code comes from our loader.
    runpy._run_module_as_main(name, alter_argv=True)


def _run_script(path: str, args: list[str], finder) -> None:
    sys.argv = [path, *args]
    full_path = os.path.join(os.getcwd(), path)
    safe_path = _safe_path()
    if os.path.isdir(path) or _is_zipfile(path):
        # A directory or zip with __main__.py: python puts it on sys.path and runs __main__.
        if not safe_path:
            sys.path[0] = os.path.abspath(path)
        else:
            sys.path.insert(0, os.path.abspath(path))
        _fresh_main()
        runpy._run_module_as_main("__main__", alter_argv=False)
        return
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as exc:
        sys.stderr.write(f"{sys.executable}: can't open file {full_path!r}: [Errno {exc.errno}] {exc.strerror}\n")
        raise SystemExit(2) from None
    if not safe_path:
        sys.path[0] = os.path.dirname(os.path.realpath(path))
    main = _fresh_main()
    main.__file__ = full_path
    if sys.version_info < (3, 15):  # 3.15 stopped setting __cached__
        main.__cached__ = None
    try:
        if path.endswith(".pyc") or source[:2] == importlib.util.MAGIC_NUMBER[:2]:
            # A compiled script, as python runs one (run_pyc_file): its code, rewritten.
            main.__loader__ = importlib.machinery.SourcelessFileLoader("__main__", full_path)
            code = _pyc_main(source, full_path, finder)
        else:
            main.__loader__ = importlib.machinery.SourceFileLoader("__main__", full_path)
            code = _compile_main(source, full_path, finder)
        below = _frames_below()
        exec(code, main.__dict__); collections.deque(map(setattr, below, *_NO_TRACE), maxlen=0)  # noqa: E702
    finally:
        # python forgets the script's file once it has run (atexit handlers, ``-i`` see none).
        main.__dict__.pop("__file__", None)
        main.__dict__.pop("__cached__", None)


def _frames_below():
    """The frames below the program's (the launcher's and runpy's): once the program has run,
    they lose their trace function in the line that ran it, by C calls alone (a call of a Python
    function, or a line of its own, would be a place to stop), so a debugger stepping on (pdb's
    ``next`` after the program's last line) finds no line of the launcher's to stop at, as under
    plain python, where no frame is below the program's. (Done where the program runs, not in a
    helper: a frame more below the program's.)"""
    below = []
    frame = sys._getframe(1)
    while frame is not None:
        below.append(frame)
        frame = frame.f_back
    return below


_NO_TRACE = (itertools.repeat("f_trace"), itertools.repeat(None))


def _pyc_main(data: bytes, path: str, finder):
    import marshal

    if data[:4] != importlib.util.MAGIC_NUMBER:
        raise RuntimeError("Bad magic number in .pyc file")
    try:
        code = marshal.loads(memoryview(data)[16:])
    except Exception:  # (python says the same whatever marshal found wrong)
        code = None
    if not isinstance(code, types.CodeType):
        raise RuntimeError("Bad code object in .pyc file")
    policy = finder.selection.policy_for_target("__main__", path)
    if policy is None:
        return code
    from frontrun.rewrite import _core

    _core.note_rewritten_file(path)  # (its code's own file name is where it was compiled)
    return _core.rewrite_code(code, policy, finder.selection.resource_methods)


def _safe_path() -> bool:
    """Whether python leaves the script's directory off ``sys.path`` (``-P``; ``-I`` implies
    it, and on 3.10, which has no ``-P``, is the only way to ask for it)."""
    return bool(getattr(sys.flags, "safe_path", sys.flags.isolated))


def _run_source(source, filename: str, argv: list[str], finder) -> None:
    """``python -c command`` / ``python -`` (the source on standard input)."""
    sys.argv = argv
    if not _safe_path():
        sys.path[0] = ""
    main = _fresh_main()
    main.__loader__ = importlib.machinery.BuiltinImporter
    main.__spec__ = None
    if filename == "<stdin>":
        main.__file__ = filename
        if sys.version_info < (3, 15):
            main.__cached__ = None
    code = _compile_main(source, filename, finder)
    if filename == "<string>":
        import linecache

        # As python -c does on 3.13+, for tracebacks with source lines: 3.13 keys the lines by
        # file name, 3.14+ by code object.
        register = getattr(linecache, "_register_code", None)
        if register is not None:
            register(filename if sys.version_info < (3, 14) else code, source, filename)
    below = _frames_below()
    exec(code, main.__dict__); collections.deque(map(setattr, below, *_NO_TRACE), maxlen=0)  # noqa: E702


def _compile_main(source: bytes, path: str, finder):
    from frontrun.rewrite._hook import FrontrunLoader

    selection = finder.selection
    policy = selection.policy_for_target("__main__", path)
    if policy is None:
        return compile(source, path, "exec", dont_inherit=True)
    return FrontrunLoader("__main__", path, policy, selection).source_to_code(source, path)


def _is_zipfile(path: str) -> bool:
    # As `python path` decides: zipimport (loaded at startup) accepts it; `zipfile` would
    # import a dozen modules before the hook.
    import zipimport

    if not os.path.isfile(path):
        return False
    try:
        zipimport.zipimporter(path)
    except zipimport.ZipImportError:
        return False
    return True


# --- errors as plain python reports them -----------------------------------------------------

# runpy is not in the list: ``python -m`` shows runpy's frames too, and so do we.
_OWN_FILES = {
    os.path.normcase(os.path.abspath(os.path.join(os.path.dirname(__file__), name)))
    for name in ("_launcher.py", "__main__.py", "_hook.py")
}


def _is_own_frame(tb) -> bool:
    filename = tb.tb_frame.f_code.co_filename
    return not filename.startswith("<") and os.path.normcase(os.path.abspath(filename)) in _OWN_FILES


def _is_importlib_frame(tb) -> bool:
    return tb.tb_frame.f_code.co_filename.startswith("<frozen importlib._bootstrap")


# Where an import statement enters importlib (``PyImport_ImportModuleLevelObject``).
_IMPORT_STATEMENT_ENTRIES = frozenset({"_find_and_load", "_handle_fromlist"})


def _is_import_module(tb) -> bool:
    code = tb.tb_frame.f_code
    return code.co_name == "import_module" and os.path.basename(os.path.dirname(code.co_filename)) == "importlib"


def _entries(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next


def trim_traceback(tb, exc=None):
    """``tb`` without the launcher's and the loader's frames, and the import machinery's as
    CPython leaves them: an ``import`` statement drops each run of importlib frames up to its
    ``_call_with_frames_removed`` (all of them for an ImportError), which the loader's frames
    in between kept it from doing (they stand for importlib's own ``get_code``, which compiles
    through ``_call_with_frames_removed``); ``importlib.import_module`` drops none, nor does a
    call of importlib's functions from Python (``spec.loader.exec_module(module)``): only a run
    that the import statement began (at ``_find_and_load`` or ``_handle_fromlist``) is trimmed."""
    always = isinstance(exc, ImportError)
    kept, start, trimmable, after_own = [], None, False, False
    for entry in _entries(tb):
        if _is_own_frame(entry):
            if start is not None and trimmable:
                del kept[start:]
            after_own = True
            continue
        if not _is_importlib_frame(entry):
            kept.append(entry)
            start, after_own = None, False
            continue
        if start is None:
            # (A run the loader's or the launcher's frames began stands for one importlib began.)
            start = len(kept)
            trimmable = (after_own or entry.tb_frame.f_code.co_name in _IMPORT_STATEMENT_ENTRIES) and not (
                kept and _is_import_module(kept[-1]))
        kept.append(entry)
        if trimmable and (always or entry.tb_frame.f_code.co_name == "_call_with_frames_removed"):
            del kept[start:]
    for entry, following in zip(kept, kept[1:] + [None]):
        entry.tb_next = following
    return kept[0] if kept else None


def _inspecting() -> bool:
    """Whether python enters interactive mode once the program ends (``-i``, PYTHONINSPECT)."""
    return bool(sys.flags.inspect or (not sys.flags.ignore_environment and os.environ.get("PYTHONINSPECT")))


def _run_guarded(run) -> None:
    try:
        run()
    except SystemExit as exc:
        if not _inspecting():
            raise
        uncaught = exc  # `python -i` prints it as any other and goes on to the prompt
    except BaseException as exc:
        uncaught = exc
    else:
        return
    # Outside the except block: the hook runs with no exception being handled, as in python.
    _report_uncaught(uncaught)


def _report_uncaught(exc: BaseException) -> None:
    """What python does with an exception that ends the program (``PyErr_Print`` and
    ``Py_RunMain``)."""
    tb = trim_traceback(exc.__traceback__, exc)
    exc.__traceback__ = tb
    sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, tb
    if sys.version_info >= (3, 12):
        sys.last_exc = exc
    hook = getattr(sys, "excepthook", _MISSING)
    if hook is _MISSING:
        sys.stderr.write("sys.excepthook is missing\n")
        sys.__excepthook__(type(exc), exc, tb)
    else:
        try:
            hook(type(exc), exc, tb)
        except SystemExit:
            raise  # a hook may end the program with its own status
        except BaseException as hook_exc:
            hook_exc.__traceback__ = trim_traceback(hook_exc.__traceback__)
            sys.stdout.flush()
            sys.stderr.write("Error in sys.excepthook:\n")
            sys.__excepthook__(type(hook_exc), hook_exc, hook_exc.__traceback__)
            sys.stderr.write("\nOriginal exception was:\n")
            sys.__excepthook__(type(exc), exc, tb)
    if isinstance(exc, KeyboardInterrupt):
        # python finishes (threads joined, atexit handlers run) and then dies of SIGINT, so the
        # parent sees an interrupted child. It does that for an interrupt that leaves the
        # launcher's own ``-m`` run: let this one do so, with nothing more to print.
        hook = sys.__dict__.get("excepthook", _MISSING)

        def print_nothing(*exc_info):
            # Python calls it once for this interrupt; then the program's hook is back (for a
            # thread that fails while being joined, an atexit handler that looks).
            if hook is _MISSING:
                del sys.excepthook
            else:
                sys.excepthook = hook

        sys.excepthook = print_nothing
        raise exc
    if not _inspecting():
        raise SystemExit(1)
    # `python -i`: on to the prompt, where ``pdb.pm()`` finds the program's exception.


_MISSING = object()
