"""Which modules get rewritten, and with which policy.

Patterns
    A pattern is a module-name glob or a path glob:

    * module-name glob: ``myapp`` (the module or package *and everything under it*),
      ``myapp.*`` (the same: the package and its submodules), ``tests.test_*`` (``fnmatch`` rules, ``*`` also crosses dots).
      It matches the name a module is imported by and the dotted path of its file under the
      project root (``tests/test_io.py`` is ``tests.test_io`` even when pytest imports it as
      ``test_io``);
    * path glob: anything with a ``/`` (or ``os.sep``), ending in ``.py``, or starting with ``.``
      or ``~``: ``src/``, ``./scripts``, ``tests/test_*.py``, ``/abs/dir``. Relative paths are
      taken from the project root. A path without glob characters selects that file or every
      file under that directory; a glob also selects everything under the directories it matches.

    Any pattern may carry its own policy: ``("vendor.db", "resources")`` in Python,
    ``["vendor.db", "resources"]`` or ``{pattern = "vendor.db", policy = "resources"}`` in TOML,
    ``vendor.db=resources`` on a command line.

Selection rules, in order
    1. frontrun's own modules are never rewritten.
    2. A module matching an ``exclude`` pattern is not rewritten.
    3. If ``include`` patterns are given, the first one matching selects the module, with that
       pattern's policy or else the global one; no match means not rewritten.
    4. Without ``include`` patterns (the default) the user's own code is selected: source files
       under the project root or the script's directory, except the standard library,
       site-packages/dist-packages and anything else under ``sys.prefix``/``sys.base_prefix``
       (unless the project itself lives there, as in ``/usr/src/app``).

Configuration (``pyproject.toml``, found from the start directory upwards; its directory is the
project root, else the current directory is)::

    [tool.frontrun]
    include = ["myapp", ["vendor.db", "resources"]]   # default: the project's own code
    exclude = ["myapp.generated.*"]
    policy = "shared"                  # "resources" | "shared" | "all"
    resource_methods = ["mylib.Pool.get"]   # additions to the built-in list; a dotted entry
                                            # only applies to that class (and subclasses)
    cache_dir = ".frontrun-cache"      # optional; default: next to the sources, in __pycache__

Explicit arguments (``install(...)``, command-line options) replace ``include`` and ``policy``
and add to ``exclude`` and ``resource_methods``.
"""

from __future__ import annotations

import fnmatch
import os
import site
import sys
import sysconfig

from frontrun.rewrite._core import (DEFAULT_POLICY, FRONTRUN_DIR, POLICIES, check_policy, normalize_resource_methods,
                                    warn_at_user_code)

_GLOB_CHARS = frozenset("*?[")
_FRONTRUN_DIR = os.path.realpath(FRONTRUN_DIR)


def _is_path_pattern(text: str) -> bool:
    return "/" in text or os.sep in text or text.endswith(".py") or text.startswith((".", "~"))


def _has_glob(text: str) -> bool:
    return not _GLOB_CHARS.isdisjoint(text)


def _is_under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


class _Record:
    """A small immutable record (the launcher does not import `dataclasses`, and with it
    `inspect`, before the hook: those modules could not be rewritten then)."""

    __slots__ = ()

    def __init__(self, *args, **kwargs):
        values = dict(zip(self.__slots__, args), **kwargs)
        for name, default in zip(self.__slots__, self._defaults()):
            object.__setattr__(self, name, values.pop(name) if name in values else default)
        if values:
            raise TypeError(f"{type(self).__name__}: unexpected {', '.join(values)}")

    def _defaults(self):
        raise NotImplementedError

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _fields(self):
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other):
        return type(other) is type(self) and other._fields() == self._fields()

    def __hash__(self):
        return hash(self._fields())

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{n}={v!r}' for n, v in zip(self.__slots__, self._fields()))})"


class Pattern(_Record):
    # path: for path patterns, the absolute, symlink-resolved pattern; None for module-name globs.
    __slots__ = ("text", "policy", "path")

    def _defaults(self):
        return (None, None, None)

    def matches(self, name: str, filename: str | None, aliases=(), real: str | None = None,
                package_too: bool = True) -> bool:
        """``aliases``: the file's dotted names under the project's roots (``dotted_names``).
        ``package_too``: ``myapp.*`` matches ``myapp`` itself (else its submodules only)."""
        if self.path is None:
            return any(self._matches_name(n, package_too) for n in (name, *aliases))
        if filename is None:
            return False
        target = real or os.path.normcase(os.path.realpath(filename))
        pattern = os.path.normcase(self.path)
        if not _has_glob(pattern):
            return _is_under(target, pattern)
        return fnmatch.fnmatch(target, pattern) or fnmatch.fnmatch(target, pattern.rstrip(os.sep) + os.sep + "*")

    def names_an_existing_module(self, roots) -> bool:
        """Whether a module this pattern selects exists on disk, imported or not: a path
        pattern's file or directory, a module-name pattern's top-level module or package under
        one of ``roots`` or on ``sys.path`` (nothing is imported to find it)."""
        if self.path is not None:
            if _has_glob(self.path):
                import glob

                return bool(glob.glob(self.path))
            return os.path.exists(self.path)
        top = self.text.split(".", 1)[0]
        for directory in dict.fromkeys([*roots, *(p for p in sys.path if isinstance(p, str))]):
            try:
                entries = os.listdir(directory or os.curdir)
            except OSError:
                continue
            for entry in entries:
                stem, ext = os.path.splitext(entry)
                if ext == ".py" or (not ext and os.path.isdir(os.path.join(directory or os.curdir, entry))):
                    if fnmatch.fnmatchcase(stem, top) if _has_glob(top) else stem == top:
                        return True
        return False

    def _matches_name(self, name: str, package_too: bool = True) -> bool:
        if _has_glob(self.text):
            # `myapp.*` is the package too: its `__init__` is where a package's API most often
            # lives (`cachetools.*` left `cachetools.LRUCache` unrewritten, and its race unseen).
            return fnmatch.fnmatchcase(name, self.text) or (
                package_too and self.text.endswith(".*") and name == self.text[:-2])
        return name == self.text or name.startswith(self.text + ".")


def dotted_names(real: str, roots) -> list[str]:
    """The dotted names the source file ``real`` (resolved, normcased) has under each of ``roots``:
    a module-name pattern matches them too, since a module may be imported by another name (pytest
    imports a test module in a directory without ``__init__.py`` by its basename)."""
    names = []
    for root in roots:
        prefix = root.rstrip(os.sep) + os.sep
        if not real.startswith(prefix):
            continue
        stem, ext = os.path.splitext(real[len(prefix):])
        if ext not in (".py", ".pyw"):
            continue
        parts = stem.split(os.sep)
        if parts[-1] == "__init__":
            parts.pop()
        if parts and all(part.isidentifier() for part in parts):
            names.append(".".join(parts))
    return names


def _split_policy(spec: str) -> tuple[str, str | None]:
    """``"pat=policy"`` as ``(pat, policy)``; ``(spec, None)`` without one."""
    head, sep, tail = spec.rpartition("=")
    # "myapp=Shared" is a misspelt policy: no module name has an '=' (a path may).
    if sep and head and (tail in POLICIES or not _is_path_pattern(head)):
        return head, tail
    return spec, None


def from_cwd(specs) -> list:
    """Command-line patterns, their relative path globs taken from the current directory, where
    a path typed on a command line is (a table's are from its project root), and shown as typed."""
    out = []
    for spec in specs:
        text, policy = _split_policy(spec)
        if _is_path_pattern(text) and not os.path.isabs(os.path.expanduser(text)):
            spec = {"pattern": text, "root": os.getcwd()}
            if policy is not None:
                spec["policy"] = policy
        out.append(spec)
    return out


def parse_pattern(spec, root: str) -> Pattern:
    """Accept ``"pat"``, ``"pat=policy"``, ``("pat", "policy")`` or ``{"pattern":…, "policy":…}``."""
    policy = None
    if isinstance(spec, dict):
        # ("root": a command-line pattern's own directory, `from_cwd`.)
        unknown = set(spec) - {"pattern", "policy", "root"}
        if unknown or "pattern" not in spec:
            raise ValueError(f"a frontrun pattern table needs 'pattern' (and optionally 'policy'), got {spec!r}")
        text, policy = spec["pattern"], spec.get("policy")
        root = spec.get("root", root)
    elif isinstance(spec, (tuple, list)):
        if len(spec) != 2:
            raise ValueError(f"a frontrun pattern pair is (pattern, policy), got {spec!r}")
        text, policy = spec
    elif isinstance(spec, str):
        text, policy = _split_policy(spec)
    else:
        raise TypeError(f"a frontrun pattern must be a string, pair or table, got {spec!r}")
    if not isinstance(text, str) or not text:
        raise ValueError(f"empty or non-string frontrun pattern: {spec!r}")
    if policy is not None:
        check_policy(policy)
    path = None
    if _is_path_pattern(text):
        path = os.path.realpath(os.path.join(root, os.path.expanduser(text)))
    return Pattern(text, policy, path)


def _system_dirs(roots) -> tuple[str, ...]:
    """Directories whose modules are never part of "the user's own code"."""
    dirs = set()
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(key):
            dirs.add(paths[key])
    try:
        dirs.update(site.getsitepackages())
    except AttributeError:  # some embedded/virtualenv site modules lack it
        pass
    user_site = getattr(site, "USER_SITE", None)
    if user_site:
        dirs.add(user_site)
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        real = os.path.realpath(prefix)
        # A project living inside the prefix (/usr/src/app with prefix /usr) keeps its code.
        if not any(_is_under(root, real) for root in roots):
            dirs.add(prefix)
    return tuple(sorted({os.path.normcase(os.path.realpath(d)) for d in dirs}))


def find_pyproject(start: str) -> str | None:
    directory = os.path.abspath(start)
    while True:
        candidate = os.path.join(directory, "pyproject.toml")
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _loads_toml(text: str) -> dict:
    try:
        import tomllib
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            from frontrun.rewrite import _toml as tomllib
    return tomllib.loads(text)


def read_frontrun_table(pyproject: str) -> dict | None:
    """The ``[tool.frontrun]`` table of ``pyproject``, or None when it has none (one that never
    says "frontrun" is not parsed: a member project's, or another tool's, may be anything)."""
    with open(pyproject, "rb") as f:
        data = f.read()
    if b"frontrun" not in data:
        return None
    text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as a text-mode read
    try:
        document = _loads_toml(text)
    except ValueError as exc:
        raise ValueError(f"cannot parse {pyproject}: {exc}") from None
    table = document.get("tool", {}).get("frontrun")
    if table is not None and not isinstance(table, dict):
        raise ValueError(f"{pyproject}: [tool.frontrun] must be a table")
    return table


def discover(start: str | None = None) -> tuple[str, dict | None, str | None]:
    """``(project_root, frontrun_table_or_None, pyproject_path_or_None)`` for ``start`` (default
    cwd): the nearest ``pyproject.toml`` with a ``[tool.frontrun]`` table (one without it is
    passed over, as a monorepo's member project's is), else the nearest one, without a table."""
    start = os.path.abspath(start or os.getcwd())
    nearest = pyproject = find_pyproject(start)
    if nearest is None:
        return start, None, None
    while pyproject is not None:
        try:
            table = read_frontrun_table(pyproject)
        except OSError:
            table = None
        if table is not None:
            return os.path.dirname(pyproject), table, pyproject
        above = os.path.dirname(os.path.dirname(pyproject))
        pyproject = None if above == os.path.dirname(pyproject) else find_pyproject(above)
    return os.path.dirname(nearest), None, nearest


def _as_list(value, key: str, source: str) -> list:
    if value is None:
        return []
    if isinstance(value, (str, dict)):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{source}: {key} must be a list, got {value!r}")
    return list(value)


class Selection(_Record):
    # roots: directories whose code is "the user's own" when no include pattern is given.
    __slots__ = ("include", "exclude", "policy", "resource_methods", "root", "roots", "cache_dir", "pyproject",
                 "system_dirs")

    def _defaults(self):
        return ((), (), DEFAULT_POLICY, (), os.getcwd(), (), None, None, ())

    def is_excluded(self, name: str, filename: str | None) -> bool:
        real = os.path.normcase(os.path.realpath(filename)) if filename else None
        return self._excluded(name, filename, real, self._aliases(real))

    def _aliases(self, real: str | None) -> list[str]:
        """The dotted names the patterns match besides the import name (``dotted_names``)."""
        if real is None or not (self.include or self.exclude):
            return []
        return dotted_names(real, self.roots)

    def _excluded(self, name, filename, real, aliases) -> bool:
        return any(pattern.matches(name, filename, aliases, real) for pattern in self.exclude)

    def policy_for(self, name: str, filename: str | None) -> str | None:
        """The policy to rewrite module ``name`` (source ``filename``) with, or None to leave it."""
        if name == "frontrun" or name.startswith("frontrun."):
            return None
        real = os.path.normcase(os.path.realpath(filename)) if filename else None
        if real is not None and _is_under(real, os.path.normcase(_FRONTRUN_DIR)):
            return None
        aliases = self._aliases(real)
        if self._excluded(name, filename, real, aliases):
            return None
        if self.include:
            # A pattern that names the module takes it before one that takes it only as the
            # package of `myapp.*` (`include = ["app.*=all", "app"]`: the package is `shared`).
            for package_too in (False, True):
                for pattern in self.include:
                    if pattern.matches(name, filename, aliases, real, package_too):
                        return pattern.policy or self.policy
            return None
        if real is None or not self._is_users_own(real):
            return None
        return self.policy

    def is_users_own(self, filename: str) -> bool:
        """Whether ``filename`` is the user's own code by where it is (what the default
        selection rewrites): under a root, not installed, not the standard library's."""
        real = os.path.normcase(os.path.realpath(filename))
        return not _is_under(real, os.path.normcase(_FRONTRUN_DIR)) and self._is_users_own(real)

    def _is_users_own(self, real: str) -> bool:
        if not any(_is_under(real, root) for root in self.roots):
            return False
        parts = real.split(os.sep)
        if "site-packages" in parts or "dist-packages" in parts:
            return False
        return not any(_is_under(real, d) for d in self.system_dirs)

    def policy_for_target(self, name: str, filename: str | None) -> str | None:
        """The policy for a module named explicitly (the script the launcher runs, the target
        of ``inspect``): ``policy_for``'s, else the global policy unless an exclude pattern
        matches it (None)."""
        policy = self.policy_for(name, filename)
        if policy is None and not self.is_excluded(name, filename):
            policy = self.policy
        return policy

    def describe(self) -> str:
        include = ", ".join(p.text + (f"={p.policy}" if p.policy else "") for p in self.include)
        exclude = ", ".join(p.text for p in self.exclude)
        return (
            f"include: {include or '<project code under ' + ', '.join(self.roots) + '>'}; "
            f"exclude: {exclude or '-'}; policy: {self.policy}"
        )


TABLE_KEYS = frozenset({"include", "exclude", "policy", "resource_methods", "cache_dir"})


def make_selection(
    include=None,
    exclude=None,
    policy: str | None = None,
    resource_methods=None,
    *,
    root: str | None = None,
    extra_roots=(),
    use_config: bool = True,
    cache_dir: str | None = None,
) -> Selection:
    """Merge explicit arguments with ``[tool.frontrun]`` (searched upwards from ``root``)."""
    start = os.path.abspath(root or os.getcwd())
    table, pyproject = None, None
    project_root = start
    if use_config:
        project_root, table, pyproject = discover(start)
    table = table or {}
    source = pyproject or "frontrun configuration"
    unknown = sorted(set(table) - TABLE_KEYS)
    if unknown:  # a misspelt key would otherwise change nothing, silently
        warn_at_user_code(f"{source}: unknown [tool.frontrun] key{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(map(repr, unknown))} ignored (known: {', '.join(sorted(TABLE_KEYS))})")

    include_specs = _as_list(include, "include", "install()") if include is not None else _as_list(
        table.get("include"), "include", source
    )
    exclude_specs = _as_list(table.get("exclude"), "exclude", source) + _as_list(exclude, "exclude", "install()")
    chosen_policy = check_policy(policy or table.get("policy") or DEFAULT_POLICY)
    methods = normalize_resource_methods(
        list(_as_list(table.get("resource_methods"), "resource_methods", source))
        + list(_as_list(resource_methods, "resource_methods", "install()"))
    )
    configured_cache = cache_dir or table.get("cache_dir")
    if configured_cache is not None:
        if not isinstance(configured_cache, str):
            raise TypeError(f"{source}: cache_dir must be a string")
        configured_cache = os.path.join(project_root, os.path.expanduser(configured_cache))

    roots = []
    for directory in (project_root, *extra_roots):
        real = os.path.normcase(os.path.realpath(directory))
        if real not in roots:
            roots.append(real)
    return Selection(
        include=tuple(parse_pattern(spec, project_root) for spec in include_specs),
        exclude=tuple(parse_pattern(spec, project_root) for spec in exclude_specs),
        policy=chosen_policy,
        resource_methods=methods,
        root=project_root,
        roots=tuple(roots),
        cache_dir=configured_cache,
        pyproject=pyproject,
        system_dirs=_system_dirs(roots),
    )
