"""pytest plugin: rewrite the code under test, and the tests, as pytest imports them.

Enabling
    Installed, the plugin is loaded automatically (entry point ``frontrun``) but does nothing
    until enabled by any of:

    * a ``[tool.frontrun]`` table in ``pyproject.toml`` (searched upwards from the directory of
      the configuration file pytest chose, else from its rootdir);
    * ``--frontrun``, ``--frontrun-include``, ``--frontrun-exclude`` or ``--frontrun-policy``;
    * the ini setting ``frontrun = true``, or ``frontrun_include``.

    ``--no-frontrun`` turns it off; ``-p no:frontrun`` does not load it at all (loaded by a
    conftest's ``pytest_plugins`` or ``-p frontrun.pytest_plugin`` all the same, it installs nothing).

Options (command line > ini > ``[tool.frontrun]`` > defaults)
    ``--frontrun-include PAT`` (repeatable; ini ``frontrun_include``, one pattern a line),
    ``--frontrun-exclude PAT`` (``frontrun_exclude``), ``--frontrun-policy P`` (``frontrun_policy``),
    ``--frontrun-resource-method M`` (``frontrun_resource_methods``). Pattern syntax and the
    default selection (the project's own code) are in ``frontrun.rewrite._config``.

When
    In ``pytest_load_initial_conftests`` (first): after pytest installed its assertion
    rewriting hook, before any ``conftest.py``, test module or package under test is imported.
    frontrun's finder goes in front of pytest's, so a test module is assert-rewritten by pytest
    and then rewritten by frontrun. A plugin registered later (``pytest_plugins`` in a
    conftest) installs in ``pytest_configure`` instead; selected modules imported before that
    are instrumented in place, noted in the terminal summary. The hook is removed in
    ``pytest_unconfigure``.

Without autoloading (``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``, or frontrun not installed as a
distribution): ``pytest -p frontrun.pytest_plugin``, or in the rootdir's ``conftest.py``::

    pytest_plugins = ["frontrun.pytest_plugin"]

Or, with no plugin at all, as the first line of the rootdir's ``conftest.py``::

    import frontrun.rewrite; frontrun.rewrite.install()

which reads ``[tool.frontrun]`` like the plugin (the conftest itself is not rewritten).

Exploring from a test
    The ``frontrun_explore`` fixture runs :func:`frontrun.explore_dpor` and fails the test with
    its explanation (and the counterexample to replay) when an interleaving breaks the
    invariant, deadlocks, raises or runs away; an inconclusive search fails too unless
    ``allow_inconclusive=True``. It returns the result otherwise::

        def test_transfer(frontrun_explore):
            frontrun_explore(Bank, [teller, teller], money_is_conserved)

    ``@pytest.mark.frontrun_dpor(preemption_bound=..., max_executions=..., timeout=...,
    allow_inconclusive=...)`` sets the fixture's defaults for one test.
"""

from __future__ import annotations

import os
import sys
import warnings

import pytest

_INSTALLED_KEY = "_frontrun_installed_hook"
# Notes for the end of the session: written when the hook is installed they would be lost, since
# pytest captures output from before the first conftest is loaded until the session ends.
_NOTES_KEY = "_frontrun_notes"


# The same module is reachable under two plugin names: "frontrun" (the entry point) and
# "frontrun.pytest_plugin" (``-p``/``pytest_plugins``). pluggy refuses to register one module
# twice, so once it is registered under one name, the other name is blocked: pytest then skips it.
_PLUGIN_NAMES = ("frontrun", "frontrun.pytest_plugin")


_OFF_KEY = "_frontrun_switched_off"


def _block_other_name(pluginmanager) -> None:
    name = pluginmanager.get_name(sys.modules[__name__])
    for other in _PLUGIN_NAMES:
        if other == name or pluginmanager.has_plugin(other):
            continue
        if pluginmanager.is_blocked(other):
            # Blocked before this module was registered, so not by it: `-p no:frontrun` with the
            # plugin loaded by a conftest's `pytest_plugins` or by `-p frontrun.pytest_plugin`.
            setattr(pluginmanager, _OFF_KEY, True)
        else:
            pluginmanager.set_blocked(other)


def pytest_addoption(parser, pluginmanager):
    # Called once, as soon as this module is registered (a historic hook).
    _block_other_name(pluginmanager)
    group = parser.getgroup("frontrun", "frontrun import-time rewriting")
    group.addoption(
        "--frontrun", dest="frontrun", action="store_const", const=True, default=None,
        help="rewrite the project's modules at import time (also on with a [tool.frontrun] table)",
    )
    group.addoption(
        "--no-frontrun", dest="frontrun", action="store_const", const=False,
        help="do not install frontrun's import hook",
    )
    group.addoption(
        "--frontrun-include", dest="frontrun_include", action="append", default=[], metavar="PAT",
        help="rewrite modules matching PAT (module glob or path glob; PAT=POLICY); repeatable",
    )
    group.addoption(
        "--frontrun-exclude", dest="frontrun_exclude", action="append", default=[], metavar="PAT",
        help="never rewrite modules matching PAT; repeatable",
    )
    group.addoption(
        "--frontrun-policy", dest="frontrun_policy", default=None, choices=("resources", "shared", "all"),
        help="rewriting policy (default: shared)",
    )
    group.addoption(
        "--frontrun-resource-method", dest="frontrun_resource_methods", action="append", default=[],
        metavar="M", help="also treat method M as a resource operation; repeatable",
    )
    parser.addini("frontrun", type="bool", default=False, help="install frontrun's import hook")
    parser.addini("frontrun_include", type="linelist", default=[], help="frontrun include patterns")
    parser.addini("frontrun_exclude", type="linelist", default=[], help="frontrun exclude patterns")
    parser.addini("frontrun_policy", type="string", default="", help="frontrun rewriting policy")
    parser.addini("frontrun_resource_methods", type="linelist", default=[], help="frontrun resource methods")


# Why the plugin installed no hook in this session, for NotInstrumentedError to say.
off_reason: str | None = None


def _settings(config, options):
    """``(enabled, install_kwargs)`` from the command line, ini and ``[tool.frontrun]``."""
    from frontrun.rewrite import _config

    flag = getattr(options, "frontrun", None)
    # (Paths on the command line are from the current directory; the ini's from its directory.)
    include = _config.from_cwd(getattr(options, "frontrun_include", None) or []) or list(
        config.getini("frontrun_include")
    )
    exclude = _config.from_cwd(getattr(options, "frontrun_exclude", None) or []) + list(
        config.getini("frontrun_exclude")
    )
    policy = getattr(options, "frontrun_policy", None) or config.getini("frontrun_policy") or None
    methods = list(getattr(options, "frontrun_resource_methods", None) or []) + list(
        config.getini("frontrun_resource_methods")
    )
    root = str(config.rootpath)
    # [tool.frontrun] is looked up from the configuration file pytest chose (`-c`, or one above
    # the rootdir), else from the rootdir; from the directory pytest was run in when a table
    # lies between the two (a monorepo member's, whose pyproject.toml has no pytest section).
    inipath = getattr(config, "inipath", None)
    start = str(inipath.parent) if inipath is not None else root
    invoked = str(config.invocation_params.dir)
    found = None  # (the lookup from `start` finds the table the lookup from below it found)
    if invoked != start and _config._is_under(invoked, start):
        found = _config.discover(invoked)
        member = os.path.dirname(found[2]) if found[1] is not None else start
        if member != start and _config._is_under(member, start):
            start = member
    global off_reason
    off_reason = None
    if flag is False or getattr(config.pluginmanager, _OFF_KEY, False):
        off_reason = "frontrun's pytest plugin is switched off (--no-frontrun or -p no:frontrun)"
        return False, {}
    enabled = bool(flag) or bool(include or exclude or policy) or bool(config.getini("frontrun"))
    if not enabled:
        _root, table, _pyproject = found or _config.discover(start)
        enabled = table is not None
        if not enabled:
            off_reason = (f"frontrun's pytest plugin found no [tool.frontrun] table (looked in the pyproject.toml "
                          f"files of {start} and the directories above, from pytest's configuration file) and no "
                          "--frontrun option")
    kwargs = dict(
        include=include or None,
        exclude=exclude or None,
        policy=policy,
        resource_methods=methods or None,
        root=start,
        extra_roots=(root,),
    )
    return enabled, kwargs


def _install(config, options) -> None:
    from frontrun.rewrite import _hook

    if getattr(config, _INSTALLED_KEY, None) is not None:
        return
    enabled, kwargs = _settings(config, options)
    launched = _launcher_settings()
    if _hook.launched or (launched is not None and _hook.installed() is not None):
        # Under `python -m frontrun.rewrite -m pytest` the launcher's hook is already there, with
        # its options and the project's [tool.frontrun] (not to be replaced by the table alone),
        # but pytest put its assertion hook in front of it since: restore the order. That hook
        # imported the -p and entry-point plugins meanwhile; selected ones are instrumented in place.
        _hook.move_to_front()
        finder = _hook.installed()
        if finder is not None:
            _noting_imported_first(config, lambda: _hook._instrument_already_imported(finder.selection, 2))
        return
    if launched is not None:
        # A pytest the launcher's program started (pytest-xdist's workers): the launcher's selection.
        kwargs = launched
    elif not enabled:
        _hook.move_to_front()  # (one a conftest installed itself, if any)
        return
    try:
        finder = _noting_imported_first(config, lambda: _hook.install(**kwargs, _stacklevel=3))
    except (ValueError, TypeError) as exc:
        raise pytest.UsageError(f"frontrun: {exc}") from None
    setattr(config, _INSTALLED_KEY, finder)


def _noting_imported_first(config, install):
    """Run ``install``, which instruments the selected modules pytest imported first (`packaging`
    for `minversion`, -p plugins) in place and warns of them. As a warning here, a project's
    `filterwarnings = error` would end the session before it starts: it is a terminal-summary note."""
    from frontrun.rewrite import _hook

    with warnings.catch_warnings(record=True) as noted:
        warnings.simplefilter("always")  # each is noted or warned again below, under the filters
        result = install()
    for w in noted:
        if issubclass(w.category, _hook.AlreadyImportedWarning):
            _notes(config).append(_imported_first_note(getattr(w.message, "modules", ())) or str(w.message))
        else:
            try:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
            except Warning as exc:  # `-W error`: a usage error, not pytest's internal traceback
                raise pytest.UsageError(f"frontrun: {exc}") from None
    return result


def _launcher_settings():
    """The selection ``python -m frontrun.rewrite`` ran a parent process with, if it did."""
    import json

    from frontrun.rewrite._launcher import LAUNCHER_SETTINGS

    text = os.environ.get(LAUNCHER_SETTINGS)
    if not text:
        return None
    try:
        settings = json.loads(text)
    except ValueError:
        return None
    return settings if isinstance(settings, dict) else None


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    _install(early_config, early_config.known_args_namespace)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    _install(config, config.option)
    config.addinivalue_line(
        "markers",
        "frontrun_dpor(**options): default explore_dpor options (preemption_bound, max_executions, "
        "timeout, stop_on_first, max_steps, timeouts) and allow_inconclusive for the frontrun_explore fixture",
    )


_EXPLORE_OPTIONS = ("preemption_bound", "max_executions", "timeout", "stop_on_first", "max_steps", "timeouts")
_MARKER_OPTIONS = _EXPLORE_OPTIONS + ("allow_inconclusive",)


@pytest.fixture
def frontrun_explore(request):
    """``explore(setup, threads, invariant=None, *, allow_inconclusive=False, **options)``: runs
    ``frontrun.explore_dpor`` and fails the test with the explanation unless the property holds."""
    marker = request.node.get_closest_marker("frontrun_dpor")
    defaults = dict(marker.kwargs) if marker is not None else {}
    # The test's error, said without a traceback (the plugin's own source says nothing of it).
    if marker is not None and marker.args:
        pytest.fail(
            f"frontrun_dpor marker takes keyword options only ({', '.join(_MARKER_OPTIONS)}), "
            f"got positional {', '.join(map(repr, marker.args))}", pytrace=False
        )
    unknown = set(defaults) - set(_MARKER_OPTIONS)
    if unknown:
        pytest.fail(f"frontrun_dpor marker: unknown option(s) {', '.join(sorted(unknown))} "
                    f"(known: {', '.join(_MARKER_OPTIONS)})", pytrace=False)
    inconclusive_default = defaults.pop("allow_inconclusive", False)

    def explore(setup, threads, invariant=None, *, allow_inconclusive=inconclusive_default, **options):
        __tracebackhide__ = True
        from frontrun import explore_dpor

        caller = sys._getframe(1)
        # The failure shows no traceback: it names the call, for a test that explores twice
        # (after what happened: the short summary keeps a line's start).
        at = f" at {_shown_path(caller.f_code.co_filename)}:{caller.f_lineno}"
        result = explore_dpor(setup, threads, invariant, **{**defaults, **options})
        runs = f"{result.num_explored} execution{'s' if result.num_explored != 1 else ''}"
        if result.property_holds is False:
            pytest.fail(
                f"frontrun found a failing interleaving ({result.failure_kind}) after {runs}{at}:\n"
                f"{result.explanation}",
                pytrace=False,
            )
        if result.property_holds is None and not allow_inconclusive:
            pytest.fail(
                f"frontrun could not finish the search ({runs}){at}: {result.inconclusive_reason}",
                pytrace=False,
            )
        return result

    return explore


def _shown_path(path):
    """``path`` relative to the current directory when it is under it, as pytest shows files."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith(os.pardir) else relative


def pytest_report_header(config):
    from frontrun.rewrite import _core, _hook

    finder = getattr(config, _INSTALLED_KEY, None) or (_hook.installed() if _hook.launched else None)
    if finder is None:
        return None

    rewriter = _core.rewriter_version()
    return f"frontrun: rewriting on ({finder.selection.describe()}; rewriter {rewriter})"


def _imported_first_note(modules) -> str:
    """The note for selected modules pytest imported before this plugin could install the
    hook: the plugin cannot be earlier, the launcher can."""
    if not modules:
        return ""
    from frontrun.rewrite import _hook

    names = _hook.shown_names(modules)
    if _launcher_settings() is not None:
        # Under the launcher already: pytest put its assertion hook in front of frontrun's
        # before it imported the -p plugins, and that hook loads them itself.
        return (
            f"frontrun: pytest's assertion rewriting hook, which pytest puts before frontrun's, loaded "
            f"these selected modules itself (named with -p, or imported by a plugin): {names}. Their "
            "functions were instrumented in place, but their module-level code ran un-instrumented and "
            "code objects held elsewhere keep the old code. To have them rewritten as they are imported, "
            "import such a module from a conftest.py instead of naming it with -p, or run with --assert=plain."
        )
    return (
        f"frontrun: these selected modules were imported before the plugin could install the import hook "
        f"(by pytest itself, a -p plugin or a conftest): {names}. Their functions were instrumented in "
        "place, but their module-level code ran un-instrumented and code objects held elsewhere keep the "
        "old code. To have them rewritten as they are imported, run pytest under the launcher: "
        "python -m frontrun.rewrite -m pytest ..."
    )


def _notes(config) -> list[str]:
    if getattr(config, _NOTES_KEY, None) is None:
        setattr(config, _NOTES_KEY, [])
    return getattr(config, _NOTES_KEY)


def pytest_sessionfinish(session):
    finder = getattr(session.config, _INSTALLED_KEY, None)
    unmatched = finder.unmatched_includes() if finder is not None else []
    if unmatched:
        _notes(session.config).append(
            f"frontrun: no module this session imported matches the include pattern"
            f"{'s' if len(unmatched) > 1 else ''} {', '.join(map(repr, unmatched))}, so nothing it names was "
            "rewritten (a module name, `pkg` or `pkg.sub*`, or a path, `src/` or `tests/test_*.py`)."
        )


def pytest_terminal_summary(terminalreporter, config):
    notes = _notes(config)
    if notes:
        terminalreporter.write_sep("=", "frontrun")
        for note in notes:
            terminalreporter.write_line(note)
        notes.clear()


def pytest_unconfigure(config):
    # No terminal (`-p no:terminal`) or no session: the notes go to stderr, uncaptured by now.
    for note in _notes(config):
        sys.stderr.write(f"{note}\n")
    finder = getattr(config, _INSTALLED_KEY, None)
    if finder is None:
        return
    from frontrun.rewrite import _hook

    if _hook.installed() is finder:
        _hook.uninstall()
    setattr(config, _INSTALLED_KEY, None)
