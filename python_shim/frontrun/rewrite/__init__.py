"""frontrun's import-time rewriter, from Python.

``install()`` puts an import hook in ``sys.meta_path`` that rewrites the selected modules' code
(report calls around shared-state accesses) as they are imported; nothing else is touched.

Public API::

    rewrite_code(code, policy="shared", resource_methods=()) -> CodeType   # pure
    install(include=None, exclude=None, policy=None, resource_methods=None, *, root=None, ...)
    uninstall()
    installed() -> FrontrunFinder | None
    instrument_module(module, policy="shared", resource_methods=()) -> int
    recording() -> context manager collecting the events this thread reports (``Event``)

Ways to run a program with the hook in place from its first import:

* ``python -m frontrun.rewrite [--include PAT]... [--exclude PAT]... [--policy P] script.py [args]``
  (or ``-m module``); ``python -m frontrun.rewrite inspect TARGET --out DIR`` shows what the
  rewriter does to a module without running it;
* under pytest: the ``frontrun`` plugin (see ``frontrun.pytest_plugin``).

Selection rules and configuration: ``frontrun.rewrite._config``; cache rules:
``frontrun.rewrite._cache``; the loaders and their pytest interplay: ``frontrun.rewrite._hook``.
"""

from frontrun.rewrite._config import Pattern, Selection, make_selection
from frontrun._recording import Event, recording
from frontrun.rewrite._core import POLICIES, native_available, rewrite_code
from frontrun.rewrite._hook import (
    AlreadyImportedWarning,
    FrontrunFinder,
    FrontrunLoader,
    install,
    installed,
    instrument_module,
    uninstall,
)

__all__ = [
    "POLICIES",
    "AlreadyImportedWarning",
    "Event",
    "FrontrunFinder",
    "FrontrunLoader",
    "Pattern",
    "Selection",
    "install",
    "installed",
    "instrument_module",
    "make_selection",
    "native_available",
    "recording",
    "rewrite_code",
    "uninstall",
]
