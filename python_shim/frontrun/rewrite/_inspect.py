"""``python -m frontrun.rewrite inspect TARGET --out DIR``: what the rewriter does, without running.

TARGET is an import name (``myapp``, ``myapp.models``; found on ``sys.path`` without executing
anything) or a path (a ``.py`` file, a package directory, or a plain directory of modules).
For each module it writes:

* ``DIR/<a>/<b>/<c>.pyc`` (``DIR/<pkg>/__init__.pyc`` for a package): the rewritten module as a
  checked hash-based pyc for the target interpreter;
* ``DIR/<a.b.c>.txt``: the site table (line, kind, name), counts per kind, and the disassembly
  before and after, injected instructions (guards, reports, the instrumented copy of each run of
  sites) marked with ``+``;
* ``DIR/index.txt``: one line per module (sites and counts, or the error), and totals;
* ``DIR/.frontrun-inspect-files``: the pycs and reports written, so that the next run into DIR
  removes those it does not write again (a module removed since would still import from DIR).

``--python-version X.Y`` (other than the running one) compiles with that interpreter
(``--python PATH``, else ``pythonX.Y`` on ``PATH``) and rewrites its pyc through the native
marshal layer. Exit status: 0, 1 if some module failed (e.g. a syntax error), 2 for usage errors.

Native calls (``frontrun._native``):

* ``rewrite_report(code, policy, resource_methods) -> (new_code, sites, listing_before, listing_after)``
* ``rewrite_pyc_report(pyc, policy, resource_methods) -> (new_pyc, sites, listing_before, listing_after)``

When they are missing this still runs: ``rewrite_code`` (or nothing) does the rewriting, ``dis``
makes the listings, and the report says that the site table is unavailable.
"""

from __future__ import annotations

import _imp
import argparse
import dis
import importlib.machinery
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field

from frontrun import _native
from frontrun.rewrite import _cache, _core
from frontrun.rewrite._config import make_selection

POLICIES = _core.POLICIES
MANIFEST = ".frontrun-inspect-files"  # what a run wrote, for the next run into the same DIR


class InspectError(Exception):
    """A bad target or option: reported as ``error: ...`` with exit status 2."""


@dataclass
class ModuleSource:
    name: str
    path: str
    is_package: bool = False


@dataclass
class ModuleResult:
    module: ModuleSource
    pyc_path: str | None = None
    report_path: str | None = None
    sites: list = field(default_factory=list)
    error: str | None = None
    policy: str | None = None  # when not the run's own: an include pattern's
    excluded: bool = False  # by an exclude pattern: not rewritten, as the hook would not

    def counts(self) -> Counter:
        return Counter(kind for _line, kind, _name in self.sites)


# --- finding the modules -------------------------------------------------------------------


def _walk_package_dir(directory: str, prefix: str) -> list[ModuleSource]:
    """All source modules under ``directory`` named ``prefix.<relative dotted path>``."""
    modules = []

    def unreadable(error: OSError) -> None:
        raise InspectError(f"cannot read directory {error.filename!r}: {error.strerror}")

    for current, dirs, files in os.walk(directory, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if d.isidentifier())
        relative = os.path.relpath(current, directory)
        parts = [] if relative == "." else relative.split(os.sep)
        for filename in sorted(files):
            stem, ext = os.path.splitext(filename)
            if ext != ".py" or not stem.isidentifier():
                continue
            path = os.path.join(current, filename)
            if stem == "__init__":
                name_parts = [prefix, *parts] if prefix else parts
                if not name_parts:
                    continue  # an __init__.py directly in a plain directory names no module
                modules.append(ModuleSource(".".join(name_parts), path, is_package=True))
            else:
                name_parts = [prefix, *parts, stem] if prefix else [*parts, stem]
                modules.append(ModuleSource(".".join(name_parts), path))
    return modules


def _package_name_of_dir(directory: str) -> str:
    """Dotted name of ``directory`` when it is a package: walk up while ``__init__.py`` exists."""
    parts = []
    directory = os.path.abspath(directory)
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        parts.append(os.path.basename(directory))
        directory = os.path.dirname(directory)
    return ".".join(reversed(parts))


def modules_for_path(target: str) -> list[ModuleSource]:
    path = os.path.abspath(target)
    if os.path.isfile(path):
        if not path.endswith(".py"):
            raise InspectError(f"{target!r} is not a .py file")
        stem = os.path.splitext(os.path.basename(path))[0]
        package = _package_name_of_dir(os.path.dirname(path))
        if stem == "__init__":
            if not package:
                raise InspectError(f"{target!r}: __init__.py outside a package")
            return [ModuleSource(package, path, is_package=True)]
        return [ModuleSource(f"{package}.{stem}" if package else stem, path)]
    if os.path.isdir(path):
        modules = _walk_package_dir(path, _package_name_of_dir(path))
        if not modules:
            raise InspectError(f"no Python modules under {target!r}")
        return modules
    raise InspectError(f"{target!r}: no such file or directory")


def _find_spec(name: str, search: list[str]):
    """``PathFinder.find_spec`` without its namespace-package paths, which look the parent
    package up in ``sys.modules`` (here nothing is imported): a namespace package's spec
    lists its portions in a plain list."""
    portions: list[str] = []
    for entry in search:
        finder = _path_entry_finder(entry)
        spec = finder.find_spec(name) if finder is not None and hasattr(finder, "find_spec") else None
        if spec is None:
            continue
        if spec.loader is not None:
            return spec
        portions.extend(spec.submodule_search_locations or ())
    if not portions:
        return None
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = portions
    return spec


def _path_entry_finder(entry: str):
    """The finder the import system would use for one ``sys.path`` entry (created, not cached)."""
    entry = entry or os.getcwd()
    if entry in sys.path_importer_cache:
        return sys.path_importer_cache[entry]
    for hook in sys.path_hooks:
        try:
            return hook(entry)
        except ImportError:
            continue
    return None


def modules_for_name(name: str, search_path: list[str] | None = None) -> list[ModuleSource]:
    """Resolve an import name along ``sys.path`` without importing (so without running) anything."""
    if not all(part.isidentifier() for part in name.split(".")):
        raise InspectError(f"{name!r} is neither an existing path nor a module name")
    if name in sys.builtin_module_names:
        raise InspectError(f"{name!r} is built into the interpreter: it has no Python source")
    search = list(search_path if search_path is not None else sys.path)
    parts = name.split(".")
    spec = None
    for i in range(len(parts)):
        partial = ".".join(parts[: i + 1])
        spec = _find_spec(partial, search)
        if spec is None:
            raise InspectError(f"no module named {partial!r} (searched sys.path, nothing was imported)")
        if i < len(parts) - 1:
            if spec.submodule_search_locations is None:
                raise InspectError(f"{partial!r} is not a package, so {name!r} cannot be found in it")
            search = list(spec.submodule_search_locations)
    assert spec is not None
    if spec.submodule_search_locations is not None:
        modules = []
        for directory in spec.submodule_search_locations:  # the walk includes __init__.py
            modules.extend(_walk_package_dir(directory, name))
        if not modules:
            raise InspectError(f"package {name!r} contains no Python source modules")
        return modules
    if not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
        raise InspectError(f"{name!r} is not a Python source module (loader: {type(spec.loader).__name__})")
    return [ModuleSource(name, spec.origin)]


def resolve_target(target: str) -> list[ModuleSource]:
    if os.path.exists(target) or os.sep in target or "/" in target or target.endswith(".py"):
        return modules_for_path(target)
    # Found as `python -m NAME` finds it: from the current directory first (the launcher took
    # it off sys.path for its own imports).
    cwd = os.getcwd()
    return modules_for_name(target, [cwd, *(p for p in sys.path if p not in ("", cwd))])


# --- rewriting ------------------------------------------------------------------------------


def _listing(code) -> str:
    out = io.StringIO()
    dis.dis(code, file=out)
    return out.getvalue()


def rewrite_current(source: bytes, path: str, policy: str, resource_methods) -> tuple[bytes, list, str, str, str]:
    """``(pyc, sites, before, after, note)`` for the running interpreter."""
    code = compile(source, path, "exec", dont_inherit=True)
    report = getattr(_native, "rewrite_report", None)
    note = ""
    if report is not None:
        new_code, sites, before, after = report(code, policy, tuple(resource_methods))
    else:
        new_code = _core.rewrite_code(code, policy, resource_methods)
        sites = None
        before, after = _listing(code), _listing(new_code)
        note = "frontrun._native.rewrite_report is not available in this build: no site table, no markers."
    pyc = _cache.pyc_bytes(new_code, importlib.util.source_hash(source))
    return pyc, sites, before, after, note


def rewrite_other(pyc: bytes, policy: str, resource_methods) -> tuple[bytes, list, str, str, str]:
    """The same for a pyc compiled by another interpreter version."""
    report = getattr(_native, "rewrite_pyc_report", None)
    if report is None:
        note = ("frontrun._native.rewrite_pyc_report is not available in this build: "
                "the pyc is the interpreter's own, not rewritten.")
        return pyc, None, "(unavailable)\n", "(unavailable)\n", note
    new_pyc, sites, before, after = report(pyc, policy, tuple(resource_methods))
    return new_pyc, sites, before, after, ""


_COMPILE_HELPER = r"""
import json, os, py_compile, sys
out = sys.argv[1]
results = []
for index, source in enumerate(sys.argv[2:]):
    target = os.path.join(out, "%d.pyc" % index)
    try:
        py_compile.compile(source, cfile=target, dfile=source, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
        results.append([source, target, None])
    except py_compile.PyCompileError as exc:
        error = exc.exc_value
        results.append([source, None, "%s: %s" % (type(error).__name__, error)])
print(json.dumps({"version": list(sys.version_info[:2]), "results": results}))
"""


def compile_with(interpreter: str, version: tuple[int, int], sources: list[str], workdir: str) -> dict:
    """Compile ``sources`` with another interpreter: ``{source: pyc_bytes | error_text}``."""
    try:
        proc = subprocess.run(
            [interpreter, "-I", "-c", _COMPILE_HELPER, workdir, *sources],
            capture_output=True,
            text=True,
        )
    except OSError as exc:
        raise InspectError(f"cannot run {interpreter}: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        reason = proc.stderr.strip() or f"it exited with status {proc.returncode} and printed nothing"
        raise InspectError(f"{interpreter} failed to compile the sources:\n{reason}")
    try:
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
        answer["version"], answer["results"]
    except (IndexError, ValueError, TypeError, KeyError):
        printed = proc.stdout.strip()[:200] or "nothing"
        raise InspectError(f"{interpreter} is not a Python interpreter (it printed {printed!r})") from None
    if tuple(answer["version"]) != version:
        found = ".".join(map(str, answer["version"]))
        raise InspectError(f"{interpreter} is Python {found}, not {version[0]}.{version[1]}")
    compiled = {}
    for source, target, error in answer["results"]:
        if error is not None:
            compiled[source] = error
        else:
            with open(target, "rb") as f:
                compiled[source] = f.read()
    return compiled


def cached_pyc(source: str, version: tuple[int, int]) -> bytes | None:
    """``__pycache__/<name>.cpython-3XY.pyc`` beside ``source`` when it is current for it.

    Timestamp pycs must match the source's mtime and size, hash pycs its hash; the header is
    read by the Rust marshal layer, so no interpreter of that version is needed.
    """
    directory, name = os.path.split(source)
    path = os.path.join(directory, "__pycache__", f"{os.path.splitext(name)[0]}.cpython-{version[0]}{version[1]}.pyc")
    try:
        with open(path, "rb") as f:
            data = f.read()
        with open(source, "rb") as f:
            source_bytes = f.read()
        info = _native.pyc_info(data)
    except (OSError, ValueError):
        return None
    if tuple(info["version"]) != version:
        return None
    if "hash" in info:
        # Keyed by that version's magic number, not this interpreter's (importlib.util's). (3.10
        # hashes with SipHash-2-4, 3.11+ with SipHash-1-3: across them it is taken as stale.)
        current = info["hash"] == _imp.source_hash(int.from_bytes(data[:4], "little"), source_bytes)
    else:
        st = os.stat(source)
        current = info["mtime"] == int(st.st_mtime) & 0xFFFFFFFF and info["source_size"] == st.st_size & 0xFFFFFFFF
    return data if current else None


def find_interpreter(version: tuple[int, int], explicit: str | None) -> str:
    if explicit:
        return explicit
    found = shutil.which(f"python{version[0]}.{version[1]}")
    if found is None:
        raise InspectError(
            f"no python{version[0]}.{version[1]} on PATH to compile for Python {version[0]}.{version[1]}; "
            "pass --python PATH"
        )
    return found


# --- output ---------------------------------------------------------------------------------


def pyc_relpath(module: ModuleSource) -> str:
    parts = module.name.split(".")
    if module.is_package:
        parts.append("__init__")
    return os.path.join(*parts) + ".pyc"


def _format_counts(counts: Counter) -> str:
    return " ".join(f"{kind}={n}" for kind, n in sorted(counts.items())) or "-"


# What each kind in a report's site table stands for (the events `recording()` shows).
KIND_MEANINGS = {
    "attr_load": "obj.name read",
    "attr_store": "obj.name assigned (also by augmented assignment)",
    "attr_delete": "del obj.name",
    "item_load": "c[k] or c[a:b] read",
    "item_store": "c[k] or c[a:b] assigned",
    "item_delete": "del c[k]",
    "global_load": "module global read",
    "global_store": "module global assigned",
    "global_delete": "del of a module global",
    "cell_load": "closure variable read",
    "cell_store": "closure variable assigned (nonlocal)",
    "cell_delete": "del of a closure variable",
    "name_load": "name read in a class or module body",
    "name_store": "name assigned in a class or module body",
    "name_delete": "del of a name in a class or module body",
    "call": "method call on its receiver (container methods, resource methods)",
    "call_return": "object a resource method returned",
    "builtin_call": "call of a builtin that reads or writes its arguments (len, sorted, print, getattr, setattr, heapq.*, ...)",
    "call_site": "any other call: its callee and first arguments, classified at run time",
    "inplace": "augmented assignment to a local that may alias a container (lst += ...)",
    "with_enter": "context manager a with statement enters (a lock taken)",
    "contains": "container `in` looks into",
    "iter": "iterable a loop, comprehension or unpacking walks",
    "operand": "operand whose contents an operator, truth test, unpacking or f-string reads",
    "yield": "a generator about to yield: where another thread may find it running",
}


def format_report(module: ModuleSource, version: str, policy: str, resource_methods, sites, before, after, note) -> str:
    lines = [
        f"module: {module.name}",
        f"source: {module.path}",
        f"python: {version}",
        f"policy: {policy}",
        f"resource methods: {', '.join(resource_methods) or '-'}",
        f"rewriter: {_core.rewriter_version()}",
    ]
    if note:
        lines.append(f"note: {note}")
    lines.append("")
    if sites is None:
        lines.append("sites: (unavailable)")
    else:
        lines.append(f"sites ({len(sites)}):")
        lines.append(f"  {'line':>6}  {'kind':<16} where: name")
        for line, kind, name in sites:
            lines.append(f"  {line if line is not None else '-':>6}  {kind:<16} {name}")
        lines.append("")
        lines.append("counts:")
        counts = Counter(kind for _line, kind, _name in sites)
        for kind, n in sorted(counts.items()):
            lines.append(f"  {kind:<16} {n:>5}  {KIND_MEANINGS.get(kind, '')}".rstrip())
        if not counts:
            lines.append("  (none)")
    lines += ["", "--- before ---", before.rstrip("\n"), "", "--- after (+ = injected) ---",
              "(a guard `LOAD_GLOBAL __frontrun_on__; POP_JUMP_IF_FALSE` leads each run of sites: the marked",
              " instrumented copy runs while frontrun listens, the unmarked original that follows otherwise)",
              after.rstrip("\n"), ""]
    return "\n".join(lines)


def _write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def inspect_modules(
    modules: list[ModuleSource],
    out_dir: str,
    policy: str,
    resource_methods: tuple[str, ...],
    version: tuple[int, int],
    interpreter: str | None = None,
    policy_of=None,
) -> list[ModuleResult]:
    """``policy_of(module)``: the module's own policy (an include pattern's), None when an
    exclude pattern leaves it alone; default: ``policy`` for every module."""
    current = sys.version_info[:2] == version
    version_text = f"{version[0]}.{version[1]}"
    compiled = {}
    if not current:
        # That version's own up-to-date pycs need no interpreter; compile only the rest.
        compiled = {m.path: pyc for m in modules if (pyc := cached_pyc(m.path, version)) is not None}
        missing = [m.path for m in modules if m.path not in compiled]
        if missing:
            with tempfile.TemporaryDirectory() as workdir:
                compiled.update(compile_with(find_interpreter(version, interpreter), version, missing, workdir))
    # An index from an earlier run must not stand beside this run's files if this one fails.
    index_path = os.path.join(out_dir, "index.txt")
    os.makedirs(out_dir, exist_ok=True)
    manifest_path = os.path.join(out_dir, MANIFEST)
    earlier = _files_of_manifest(manifest_path)
    if os.path.lexists(index_path):
        os.remove(index_path)
    results = []
    for module in modules:
        result = ModuleResult(module)
        results.append(result)
        own = policy_of(module) if policy_of is not None else policy
        if own is None:
            result.excluded = True
            continue
        result.policy = own if own != policy else None
        try:
            if current:
                with open(module.path, "rb") as f:
                    source = f.read()
                pyc, sites, before, after, note = rewrite_current(source, module.path, own, resource_methods)
            else:
                original = compiled[module.path]
                if isinstance(original, str):
                    raise _CompileFailed(original)
                pyc, sites, before, after, note = rewrite_other(original, own, resource_methods)
        except SyntaxError as exc:
            result.error = f"SyntaxError: {exc.msg}" + (f" (line {exc.lineno})" if exc.lineno is not None else "")
            continue
        except _CompileFailed as exc:
            result.error = str(exc)
            continue
        except (ValueError, OSError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            continue
        report = format_report(module, version_text, own, resource_methods, sites, before, after, note)
        pyc_path, report_path = pyc_relpath(module), f"{module.name}.txt"
        try:
            _write(os.path.join(out_dir, pyc_path), pyc)
            _write(os.path.join(out_dir, report_path), report.encode("utf-8"))
        except OSError as exc:
            result.error = f"cannot write {exc.filename or pyc_path}: {exc.strerror or exc}"
            continue
        result.sites = list(sites or [])
        result.pyc_path, result.report_path = pyc_path, report_path
    # An earlier run's pycs and reports that this one did not write (a module since removed,
    # or one that failed now) would still import from DIR: they go.
    written = {path for r in results for path in (r.pyc_path, r.report_path) if path}
    for path in earlier - written:
        try:
            os.remove(os.path.join(out_dir, path))
        except OSError:
            pass
    _write(manifest_path, "".join(f"{path}\n" for path in sorted(written)).encode("utf-8"))
    _write(index_path, format_index(results, version_text, policy, resource_methods).encode())
    return results


def _files_of_manifest(manifest_path: str) -> set[str]:
    """The pycs and reports an earlier run wrote (its manifest: one path under DIR per line);
    nothing outside DIR is ever named."""
    try:
        with open(manifest_path, encoding="utf-8") as f:
            paths = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return set()
    return {p for p in paths if p and not os.path.isabs(p) and ".." not in p.split(os.sep)}


class _CompileFailed(Exception):
    pass


def format_index(results: list[ModuleResult], version: str, policy: str, resource_methods) -> str:
    lines = [
        f"frontrun inspect: python {version}, policy {policy}, "
        f"resource methods {', '.join(resource_methods) or '-'}, rewriter {_core.rewriter_version()}",
        "",
    ]
    width = max([len("module")] + [len(r.module.name) for r in results])
    lines.append(f"{'module':<{width}}  {'sites':>5}  {'pyc':<30}  {'report':<30}  kinds")
    total = Counter()
    errors = excluded = 0
    for r in results:
        if r.excluded:
            excluded += 1
            lines.append(f"{r.module.name:<{width}}  -      excluded by an exclude pattern: not rewritten")
            continue
        if r.error is not None:
            errors += 1
            lines.append(f"{r.module.name:<{width}}  ERROR  {r.error}")
            continue
        counts = r.counts()
        total.update(counts)
        own = f"  (policy {r.policy})" if r.policy else ""
        lines.append(f"{r.module.name:<{width}}  {len(r.sites):>5}  {r.pyc_path:<30}  {r.report_path:<30}  "
                     f"{_format_counts(counts)}{own}")
    lines.append("")
    ok = len(results) - errors - excluded
    lines.append(f"total: {ok} module{'s' if ok != 1 else ''} rewritten, {sum(total.values())} sites "
                 f"({_format_counts(total)}), {errors} error{'s' if errors != 1 else ''}"
                 + (f", {excluded} excluded" if excluded else ""))
    return "\n".join(lines) + "\n"


def _parse_version(text: str) -> tuple[int, int]:
    try:
        major, minor = (int(part) for part in text.split("."))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X.Y, got {text!r}") from None
    return major, minor


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m frontrun.rewrite inspect",
        description="Write the rewritten pyc and a report for each module of TARGET, without running it.",
    )
    parser.add_argument("target", metavar="TARGET", help="import name (myapp, myapp.mod) or path (.py file, directory)")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for the pycs, reports and index.txt")
    parser.add_argument("--policy", default=None, choices=POLICIES,
                        help="default: [tool.frontrun]'s policy, else shared")
    parser.add_argument("--resource-method", action="append", default=[], metavar="M",
                        help="also treat method M as a resource operation (repeatable; added to "
                             "[tool.frontrun]'s resource_methods)")
    parser.add_argument("--no-config", action="store_true",
                        help="ignore [tool.frontrun] in the target's pyproject.toml")
    parser.add_argument("--python-version", type=_parse_version, default=sys.version_info[:2], metavar="X.Y",
                        help="rewrite for this interpreter version (default: the running one)")
    parser.add_argument("--python", metavar="PATH", help="interpreter to compile with for --python-version")
    args = parser.parse_args(argv)
    supported = _native.supported_versions()
    if tuple(args.python_version) not in supported:
        names = ", ".join(f"{major}.{minor}" for major, minor in supported)
        version = "{}.{}".format(*args.python_version)
        parser.error(f"--python-version {version}: not a supported version (frontrun rewrites {names})")
    try:
        modules = resolve_target(args.target)
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise InspectError(f"--out {args.out!r} exists and is not a directory")
        # What the hook would use for this project: [tool.frontrun] beside the target.
        start = os.path.dirname(os.path.abspath(modules[0].path)) if modules else os.getcwd()
        try:
            selection = make_selection(policy=args.policy, resource_methods=args.resource_method, root=start,
                                       use_config=not args.no_config)
        except (ValueError, TypeError) as exc:  # a malformed [tool.frontrun]
            raise InspectError(str(exc)) from None
        results = inspect_modules(modules, args.out, selection.policy, selection.resource_methods,
                                  args.python_version, args.python,
                                  policy_of=lambda m: selection.policy_for_target(m.name, m.path))
    except InspectError as exc:
        sys.stderr.write(f"python -m frontrun.rewrite inspect: error: {exc}\n")
        return 2
    except OSError as exc:  # --out cannot be made or written
        where = f" {exc.filename}" if exc.filename else ""
        sys.stderr.write(f"python -m frontrun.rewrite inspect: error: cannot write{where}: {exc.strerror or exc}\n")
        return 2
    failed = [r for r in results if r.error is not None]
    excluded = sum(r.excluded for r in results)
    print(f"{len(results) - len(failed) - excluded} of {len(results)} modules written to {args.out} (see index.txt)"
          + (f"; {excluded} excluded by [tool.frontrun]" if excluded else ""))
    for r in failed:
        sys.stderr.write(f"{r.module.name}: {r.error}\n")
    return 1 if failed else 0
