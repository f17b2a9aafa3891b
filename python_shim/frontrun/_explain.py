"""Failure explanations, built from a replay of the failing schedule with every step recorded.

The report lists, per racing location, only the accesses that conflict (different threads, at
least one write), in execution order, with file, line and source text; then what failed; then
how to replay it.
"""

from __future__ import annotations

import itertools
import linecache
import os
import re
import sys
import sysconfig
import threading
import tracemalloc
import types
from concurrent.futures import Future

from frontrun import _coop
from frontrun._dpor import _CONTAINERS, SQLITE_HEADER, CachedFunction, FileResource, kind_is, own_attr
from frontrun.rewrite._core import FRONTRUN_DIR

# frontrun's stand-ins for the stdlib's primitives: the program called them.
_STAND_INS = os.path.abspath(_coop.__file__)

WHOLE = (1 << 64) - 1
# How many keys an object holds (`len(d)`, the engine's `SIZE`): read by `len`, changed by
# insertions and deletions of any key.
SIZE = (1 << 64) - 2
# `Thread.is_alive` reads the thread's entry here (the runtime's `LIVENESS`); its exit writes it.
LIVENESS = (1 << 64) - 1
DATA = ("read", "write", "delete", "insert", "exit")
LOCK_USES = ("acquire", "release", "locked")
# The location two insertions of different keys race on: the order of the container's keys.
KEY_ORDER = "key order"
MAX_LOCATIONS = 4
MAX_LINES = 16


class Step:
    __slots__ = ("index", "thread", "kind", "access", "obj", "key_id", "key", "file", "line", "caller_file",
                 "caller_line")

    def __init__(self, index, raw):
        self.index = index
        (self.thread, self.kind, self.access, self.obj, self.key_id, self.key, self.file, self.line,
         self.caller_file, self.caller_line) = raw
        if self.access == "exit":
            self.obj, self.key_id = LIVENESS, self.thread

    def conflicts(self, other):
        if self.thread == other.thread or self.obj != other.obj:
            return False
        if self.access not in DATA or other.access not in DATA:
            return False
        if self.access == "read" and other.access == "read":
            return False
        if self.access == "insert" and other.access == "insert":
            return True
        if self._resizes(other) or other._resizes(self):
            return True
        return self.key_id == other.key_id or WHOLE in (self.key_id, other.key_id)

    def _resizes(self, other):
        """Whether this step changes the size ``other`` reads (an insertion against ``len``)."""
        return other.key_id == SIZE and self.access in ("insert", "delete")

    def location_with(self, other):
        """The location this step and a conflicting ``other`` race on."""
        if self.key_id != other.key_id and self.access == other.access == "insert":
            return self.obj, KEY_ORDER
        if SIZE in (self.key_id, other.key_id):
            return self.obj, SIZE
        return self.obj, self.key_id if self.key_id != WHOLE else other.key_id


def _short(path):
    if not path:
        return "?"
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    if not rel.startswith(".."):
        return rel
    # Outside the working directory (an installed library): the path below its sys.path entry,
    # `cachetools/__init__.py` rather than a bare `__init__.py`.
    path = os.path.abspath(path)
    below = [os.path.relpath(path, entry) for entry in _path_entries() if _is_within(path, entry)]
    return min(below, key=len) if below else os.path.basename(path)


def _path_entries():
    return [os.path.abspath(entry) for entry in sys.path if isinstance(entry, str) and entry]


def _is_within(path, directory):
    return path.startswith(directory.rstrip(os.sep) + os.sep)


_library_dirs = None


def _in_library(file):
    """Whether ``file`` is the standard library's or an installed package's, not the program's."""
    global _library_dirs
    if _library_dirs is None:
        paths = sysconfig.get_paths()
        _library_dirs = tuple({os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib")
                               if paths.get(k)})
    return bool(file) and any(_is_within(os.path.realpath(file), d) for d in _library_dirs)


def _where(file, line):
    return f"{_short(file)}:{line}" if file else "?"


def _source(file, line):
    if not file or not line:
        return ""
    return linecache.getline(file, line).strip()


def _created_at(obj):
    site = own_attr(obj, "_frontrun_site")
    if kind_is(site, tuple) and len(site) == 2:
        return _where(*site)
    try:
        tb = tracemalloc.get_object_traceback(obj) or _traceback_behind_preheader(obj)
    except Exception:
        tb = None
    if not tb:
        return None
    frames = list(tb)
    if os.path.abspath(frames[-1].filename).startswith(FRONTRUN_DIR):
        # Made by frontrun itself: `setup` is a class (the state), or our own bookkeeping. Its
        # caller is the explore_dpor() call, which made nothing.
        return None
    # Out to frontrun's call of setup() or of a thread (a stand-in of frontrun's, `_coop`, is
    # passed through: the program called it).
    outside = []
    for frame in reversed(frames):
        path = os.path.abspath(frame.filename)
        if path.startswith(FRONTRUN_DIR):
            if path != _STAND_INS:
                break
            continue
        outside.append(frame)
    # The program's line that made it, if a library made it on the program's behalf (a pool's
    # `submit` makes the future, `threading.RLock()` the lock, a dataclass's generated
    # `__init__` the list): the library's own line says nothing of which one it is.
    for frame in outside:
        if not frame.filename.startswith("<") and not _in_library(frame.filename):
            return _where(frame.filename, frame.lineno)
    # A library's line, else nothing: generated code's (`<string>:3`, a dataclass's `__init__`
    # called by frontrun with `setup=S`) names no place the reader can open.
    shown = next((frame for frame in outside if not frame.filename.startswith("<")), None)
    return _where(shown.filename, shown.lineno) if shown else None


def _traceback_behind_preheader(obj):
    """3.11: an instance of a Python class has its dict pointers before its GC header, and
    ``get_object_traceback`` looks for the allocation after them (3.12 looks in the right place)."""
    if sys.version_info[:2] != (3, 11):
        return None
    flags = type(obj).__flags__
    managed_dict, gc = 1 << 4, 1 << 14
    if not flags & managed_dict or not tracemalloc.is_tracing():
        return None
    import ctypes

    pointer = ctypes.sizeof(ctypes.c_void_p)
    get = ctypes.pythonapi._PyTraceMalloc_GetTraceback
    get.restype, get.argtypes = ctypes.py_object, [ctypes.c_uint, ctypes.c_size_t]
    frames = get(0, id(obj) - 2 * pointer * (1 + bool(flags & gc)))
    return tracemalloc.Traceback(frames) if frames else None


def _is_globals(obj):
    # A Python module's globals have __builtins__; a C module's dict (`time`) has its spec.
    return type(obj) is dict and "__name__" in obj and ("__builtins__" in obj or "__spec__" in obj)


# Method calls reported with their method name; "resource": a resource method's call.
CALLS = ("call", "resource")
# Steps on a generator's "running" (the runtime's `GEN_RUNNING`): its frame is the object.
GENERATOR_STEPS = ("resume", "inside")


def _by_path(obj, title):
    """`state.counts['a']` for a location titled `Counter['a']`, when the state reaches its
    object (a global or a closure variable keeps its title)."""
    path = _paths.of(obj) if obj is not None else None
    if path is None:
        return title
    tname = obj.__qualname__ if kind_is(obj, type) else type(obj).__name__
    rest = title[len(tname):]
    return path + rest if title.startswith(tname) and rest[:1] in (".", "[") else title


def _location_name(step, obj):
    key = step.key
    if step.obj == LIVENESS:
        return f"whether thread {step.key_id} is alive"
    if step.kind in GENERATOR_STEPS:
        code = obj.f_code if kind_is(obj, types.FrameType) else None
        name = getattr(code, "co_qualname", None) or getattr(code, "co_name", "?")
        return f"generator {name}()"
    if step.kind.startswith("global") or _is_globals(obj):
        module = obj.get("__name__", "?") if type(obj) is dict else "?"
        return f"global {module}.{key}"
    if step.kind.startswith("cell"):
        return f"closure variable {key}"
    if kind_is(obj, (FileResource, CachedFunction)):
        return repr(obj)
    # A class's own attributes are named after it (`Widget.count`), not after `type`.
    tname = obj.__qualname__ if kind_is(obj, type) else type(obj).__name__
    if step.kind.startswith("attr") or step.kind == "builtin_call" and isinstance(key, str) and step.key_id != WHOLE:
        return f"{tname}.{key}"
    if step.kind == "resource":
        return f"the calls of {tname}"
    if step.key_id == WHOLE:
        return f"{tname} as a whole"
    return f"{tname}[{key!r}]"


# Values never named by a path: nothing can change them, and small ints and strings are shared.
_UNNAMED = (int, float, str, bytes, bool, type(None))
# Module globals that are not the program's state: modules, functions, classes.
_NOT_STATE = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)


def _class_state(cls, path, own=None):
    """``(value, path)`` of the containers ``cls`` (and its bases) hold: state its instances
    share (a `registry = {}` in the class body). Reached through an instance (``own``, its
    ``__dict__``, whose entries shadow them), each is named after the class that holds it
    (``Tagger.tags``): ``state.a.tags`` would hide that ``state.b.tags`` is the same list."""
    found = {}
    for klass in reversed(cls.__mro__[:-1]):
        for k, v in vars(klass).items():
            if isinstance(k, str) and not k.startswith("__") and kind_is(v, _CONTAINERS):
                found[k] = v, klass
    if own is None:
        return [(v, f"{path}.{k}") for k, (v, _klass) in found.items()]
    return [(v, f"{klass.__qualname__}.{k}") for k, (v, klass) in found.items() if k not in own]


class _Paths:
    """Names objects by how the test state reaches them (``state.accounts['alice']``)."""

    def __init__(self, state, limit=4, budget=5000):
        self.found = {}
        self.by_path = {}
        self.limit, self.budget = limit, budget
        if state is not None:
            self.add_root(state, "state")

    def add_root(self, root, path):
        """Names ``root`` and what it reaches, where the state did not name them first."""
        if id(root) in self.found:
            return
        self.found[id(root)] = path
        self.by_path[path] = root
        frontier = [(root, path)]
        for _ in range(self.limit):
            nxt = []
            for obj, path in frontier:
                for child, child_path in self._children(obj, path):
                    self.budget -= 1
                    if self.budget <= 0:
                        return
                    if id(child) in self.found or kind_is(child, _UNNAMED):
                        continue
                    self.found[id(child)] = child_path
                    self.by_path[child_path] = child
                    nxt.append((child, child_path))
            frontier = nxt

    @staticmethod
    def _children(obj, path):
        try:
            if kind_is(obj, dict):
                return [(v, f"{path}[{k!r}]") for k, v in list(dict.items(obj))[:50]]
            if kind_is(obj, (list, tuple)):
                return [(v, f"{path}[{i}]") for i, v in enumerate(list(obj)[:50])]
            if kind_is(obj, type):
                return _class_state(obj, path)
            d = own_attr(obj, "__dict__")
            if type(d) is dict:
                own = [(v, f"{path}.{k}") for k, v in d.items() if isinstance(k, str) and not k.startswith("__")]
                return own + _class_state(type(obj), path, d)
        except Exception:
            pass
        return []

    def of(self, obj):
        return self.found.get(id(obj))

    def holder(self, obj, kinds):
        """The outermost object of one of ``kinds`` on the path to ``obj`` (the Queue whose
        ``mutex`` it is, the Event whose condition's lock it is), with its path."""
        path = self.of(obj)
        found = None, None
        while path and "." in path:
            path = path.rsplit(".", 1)[0]
            holder = self.by_path.get(path)
            if kind_is(holder, kinds):
                found = holder, path
        return found


_paths = _Paths(None)


def _frame_of(generator):
    for attribute in ("gi_frame", "cr_frame", "ag_frame"):
        frame = getattr(generator, attribute, None)
        if frame is not None:
            return frame
    return None


def _describe_object(rt, n):
    if n == LIVENESS:
        return "Thread.is_alive() and the thread's exit"
    obj = rt.object(n)
    code = obj.f_code if kind_is(obj, types.FrameType) else None
    if code is not None:
        # (The generator's frame stands for it: named by the path to the generator, if any.)
        path = next((p for p, held in list(_paths.by_path.items())
                     if kind_is(held, (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType))
                     and _frame_of(held) is obj), None)
        return (f"object {rt.shown(n)}" + (f" = {path}" if path else "")
                + f", defined at {_where(code.co_filename, code.co_firstlineno)}")
    where = _created_at(obj) if obj is not None else None
    path = _paths.of(obj) if obj is not None else None
    return f"object {rt.shown(n)}" + (f" = {path}" if path else "") + (f", created at {where}" if where else "")


_METHOD_CALL = re.compile(r"\.\w+\s*\(")


def _accessor(obj, step):
    """"the setter of Counter.value" when `step` was made inside a getter, setter or deleter of
    a property of `obj`'s class: its line says less than the line that used the property."""
    if obj is None or not step.caller_file or not step.file or not step.line:
        return None
    for cls in type(obj).__mro__:
        for name, attr in vars(cls).items():
            if not isinstance(attr, property):
                continue
            for role, fn in (("getter", attr.fget), ("setter", attr.fset), ("deleter", attr.fdel)):
                code = getattr(fn, "__code__", None)
                if code is not None and code.co_filename == step.file:
                    lines = [line for _, _, line in code.co_lines() if line]
                    if lines and min(lines) <= step.line <= max(lines):
                        return f"the {role} of {cls.__qualname__}.{name}"
    return None


def _step_line(step, width, accessor=None):
    # A sleep is a step that touches nothing (the engine has it read a location of its own).
    what = step.kind if step.kind in GENERATOR_STEPS or step.kind == "sleep" else step.access
    if step.kind == "resource":
        what = "call"
    if step.access == "exit":
        return f"  thread {step.thread}  exit   (its function returned)"
    if step.access == "release" and not step.file:
        # A real lock's release is seen at the thread's next report, or at its end: this one.
        return f"  thread {step.thread}  release  (by the time its function returned)"
    where = _where(step.file, step.line)
    text = _source(step.file, step.line)
    if accessor:
        # Shown at the line that used the property, the accessor's own line in brackets.
        text = f"{_source(step.caller_file, step.caller_line)}  [in {accessor}, {where}: {text}]"
        where = _where(step.caller_file, step.caller_line)
    # Which call of the line, when it has several (`db.execute(q).fetchone()` is two steps).
    if step.kind in CALLS and isinstance(step.key, str) and len(_METHOD_CALL.findall(text)) > 1:
        text = f"{text}  [.{step.key}()]"
    elif step.kind == "held" and isinstance(step.key, str):
        text = f"{text}  [{_inside_call(step.key)}]"
    elif step.kind == "factory":
        text = f"{text}  [inside the default factory for {step.key!r}, which is not stored yet]"
    if step.index in _coop.step_notes:
        text = f"{text}  [{_coop.step_notes[step.index]}]"
    return f"  thread {step.thread}  {what:<6} {where:<{width}}  {text}".rstrip()


def _inside_call(method):
    """Where a "held" step is: inside `lst.sort(key=f)` (f runs while the list is empty), or
    inside `lst.extend(gen)` / `lst += gen` (gen runs while the list is part way filled)."""
    if method == "sort":
        return "inside .sort(), which holds it"
    call = method if not method.isidentifier() else f".{method}()"
    return f"inside {call}, which is not done with it"


def _what_it_touched(rt, step):
    """`  [W.stop]`: the location of a step shown without its race (a runaway's last steps)."""
    if step.access not in DATA or step.kind == "sleep":
        return ""
    try:
        return f"  [{_location_name(step, rt.object(step.obj))}]"
    except Exception:
        return ""


def _conflicting_locations(steps, racy_pairs, since=0):
    """Locations (obj, key_id) to show, and whether they race: those of engine races (accesses
    nothing orders), else any cross-thread conflict (ordered by synchronisation) from step
    ``since`` on."""
    order = []
    seen = set()
    for a, b in racy_pairs:
        sa, sb = steps[a], steps[b]
        if not sa.conflicts(sb):
            continue
        loc = sa.location_with(sb)
        if loc not in seen:
            seen.add(loc)
            order.append(loc)
    if order:
        return order, True
    data = _distinct([s for s in steps[since:] if s.access in DATA])
    for i, s in enumerate(data):
        for t in data[i + 1:]:
            if s.conflicts(t):
                loc = s.location_with(t)
                if loc not in seen:
                    seen.add(loc)
                    order.append(loc)
    return order, False


def _distinct(steps):
    """The first step of each (thread, access, object, key): whether steps conflict depends on
    nothing else, and a loop over a long list is many equal reads."""
    firsts = {}
    for s in steps:
        firsts.setdefault((s.thread, s.access, s.obj, s.key_id), s)
    return list(firsts.values())


def _runs(accesses):
    """Consecutive equal accesses (a loop's steps) as one line: [(first step, count)]."""
    def same(s):
        return s.thread, s.access, s.file, s.line, s.key if s.kind in CALLS else None

    runs = []
    for s in accesses:
        if runs and same(runs[-1][0]) == same(s):
            runs[-1][1] += 1
        else:
            runs.append([s, 1])
    return [(s, n) for s, n in runs]


def _shown_runs(runs):
    """``runs`` to show: when there are more than fit, a long stretch of one thread's keeps its
    first and last two, the rest one ``(thread, count)`` line, so that every switch between the
    threads (where they meet) stays in view rather than falling in the cut tail."""
    if len(runs) <= MAX_LINES:
        return runs
    shown = []
    start = 0
    for end in range(1, len(runs) + 1):
        if end < len(runs) and runs[end][0].thread == runs[start][0].thread:
            continue
        stretch = runs[start:end]
        if len(stretch) > 4:
            shown += [stretch[0], (stretch[0][0].thread, sum(c for _, c in stretch[1:-2]))] + stretch[-2:]
        else:
            shown += stretch
        start = end
    return shown


def _accesses_to(steps, loc):
    obj, key = loc
    if key == KEY_ORDER:
        touching = [s for s in steps if s.obj == obj and (s.access == "insert" or s.key_id == WHOLE and s.access in DATA)]
    elif key == SIZE:
        touching = [s for s in steps if s.obj == obj and s.access in DATA
                    and (s.key_id in (SIZE, WHOLE) or s.access in ("insert", "delete"))]
    else:
        touching = [s for s in steps if s.access in DATA and s.obj == obj and (key == WHOLE or s.key_id in (key, WHOLE))]
    kinds = _distinct(touching)
    return [s for s in touching if any(s.conflicts(o) for o in kinds)]


def _final_value(obj, step):
    if step.kind in GENERATOR_STEPS:
        return None
    if kind_is(obj, CachedFunction):
        info = obj.cache_info()
        return f"{info.currsize} cached, computed {info.misses} time{'s' if info.misses != 1 else ''}"
    if kind_is(obj, FileResource):
        try:
            if os.path.isdir(obj.path):
                return _brief(repr(sorted(os.listdir(obj.path))))
            with open(obj.path, "rb") as f:
                data = f.read(81)
        except FileNotFoundError:
            return "(no such file)"
        except OSError:
            return None
        if data.startswith(SQLITE_HEADER):
            return _database_rows(obj.path)
        text = repr(data[:80].decode("utf-8", "replace"))
        return text + ("..." if len(data) > 80 else "")
    try:
        if _is_globals(obj) or step.kind.startswith("global"):  # a module's attribute too
            return repr(obj[step.key])
        if step.kind.startswith("attr"):
            return repr(getattr(obj, step.key))
        if (step.kind.startswith("item") or step.kind == "factory") and step.key_id != WHOLE:
            return repr(obj[step.key])
        if step.kind.startswith("cell"):
            return repr(obj.cell_contents)
        if step.kind == "builtin_call" and isinstance(step.key, str) and step.key_id != WHOLE:
            # `setattr(s, "count", ...)`, `operator.setitem(d, "k", ...)` (as `_location_name` names it)
            return repr(obj[step.key] if kind_is(obj, dict) else getattr(obj, step.key))
        return _brief(repr(obj))
    except Exception:
        return None


def _database_rows(path, tables=3, rows=3):
    """What a sqlite3 database holds, briefly: `t [(1, 110)]; u [] (2 tables)`."""
    import sqlite3

    try:
        db = _coop._orig.get("sqlite3.connect", sqlite3.connect)(f"file:{path}?mode=ro", uri=True)
    except Exception:
        return None
    try:
        names = [n for (n,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
        shown = []
        for name in names[:tables]:
            quoted = '"' + name.replace('"', '""') + '"'
            found = db.execute(f"SELECT * FROM {quoted} LIMIT {rows + 1}").fetchall()
            text = repr(found[:rows])
            shown.append(f"{name} {text[:-1] + ', ...]' if len(found) > rows else text}")
        more = f" ({len(names)} tables)" if len(names) > tables else ""
        return "; ".join(shown) + more if shown else "(no tables)"
    except Exception:
        return None
    finally:
        db.close()


def _final_size(obj):
    try:
        return str(len(obj))
    except Exception:
        return None


def _final_keys(obj):
    try:
        return _brief(repr(list(obj)))
    except Exception:
        return None


def _brief(text):
    return text if len(text) <= 80 else text[:77] + "..."


def _interleaved(accesses):
    """Whether some thread's accesses to the location have another thread's in between (a lost
    update, a torn read); else the threads used it one after the other."""
    seen = set()
    last = None
    for s in accesses:
        if s.thread != last:
            if s.thread in seen:
                return True
            seen.add(s.thread)
            last = s.thread
    return False


def race_report(rt, steps, since=0):
    """The report's lines, and whether they show a race (else synchronised uses, or nothing).
    Steps before ``since`` (a ``setup()`` run as a thread, until it returned) are left out."""
    races = [(a, b) for a, b in rt.races() if a >= since]
    locs, racing = _conflicting_locations(steps, races, since)
    told = steps[since:]
    found = []
    shown_as = {}  # the same accesses under two locations (a key and the whole object): once
    for loc in locs:
        accesses = _accesses_to(told, loc)
        if not accesses:
            continue
        same = tuple(s.index for s in accesses)
        if same in shown_as:
            if loc[1] == WHOLE:  # every key's: named after the whole object
                found[shown_as[same]] = (loc, accesses, found[shown_as[same]][2])
            continue
        shown_as[same] = len(found)
        found.append((loc, accesses, _interleaved(accesses)))
    # A key's race also shows under the whole object when one of its accesses is of all of it
    # (`"a" in d` then `d.move_to_end("a")`); the key's block tells it without the other
    # keys' accesses the whole one adds.
    keyed = [(loc, {s.index for s in acc}) for loc, acc, inter in found if loc[1] not in (WHOLE, KEY_ORDER) and inter]
    found = [f for f in found if f[0][1] != WHOLE or not any(
        loc[0] == f[0][0] and indices <= {s.index for s in f[1]} for loc, indices in keyed)]
    shown_as = {tuple(s.index for s in acc): i for i, (_, acc, _) in enumerate(found)}
    synchronised = set()
    if racing and found and not any(inter for _, _, inter in found):
        # No racing location interleaves in this schedule: a check and its act in separate
        # critical sections (a cache looked up under a lock, filled under it again later) let
        # another thread in between. The synchronised locations whose uses interleave show it.
        for loc in _conflicting_locations(steps, [], since)[0]:
            accesses = _accesses_to(told, loc)
            same = tuple(s.index for s in accesses)
            if accesses and same not in shown_as and _interleaved(accesses):
                shown_as[same] = len(found)
                synchronised.add(loc)
                found.append((loc, accesses, True))
    # The locations whose accesses interleave explain the failure: they come first, in full. The
    # others were used by one thread after the other in this schedule: one line each. So are a
    # library's own (a pool's handler threads racing on its state, benign by its design) when
    # the program's code races too: its race is the one to read.
    inside = {i for i, (_, accesses, _) in enumerate(found) if all(_in_library(s.file) for s in accesses)}
    if any(inter and i not in inside for i, (_, _, inter) in enumerate(found)):
        found = [(loc, acc, inter and i not in inside, i in inside) for i, (loc, acc, inter) in enumerate(found)]
    else:
        found = [(loc, acc, inter, False) for loc, acc, inter in found]
    if any(f[2] for f in found):
        found.sort(key=lambda f: not f[2])
    # The threads ran one after the other: nothing came between any two of one thread's steps,
    # so the order of the threads, not a race within them, is what fails.
    sequential = not _interleaved(told)
    out = []
    shown = 0
    for loc, accesses, inter, library in found:
        if shown == MAX_LOCATIONS:
            break
        shown += 1
        named = next((s for s in accesses if s.key_id == loc[1]), accesses[0])
        obj = rt.object(loc[0])
        if loc[1] == KEY_ORDER:
            title = f"the order of {type(obj).__name__ if obj is not None else '?'}'s keys"
        elif loc[1] == SIZE:
            title = f"the size of {type(obj).__name__ if obj is not None else '?'}"
        else:
            title = _location_name(named, obj)
        if library and out:
            files = ", ".join(dict.fromkeys(_short(s.file) for s in accesses))
            threads = ", ".join(f"thread {t}" for t in dict.fromkeys(s.thread for s in accesses))
            out.append(f"Also {title} ({_describe_object(rt, loc[0])}): used by {threads} inside {files}.")
            continue
        if not inter and out:
            order = ", then ".join(f"thread {t}" for t in dict.fromkeys(s.thread for s in accesses))
            out.append(f"Also {title} ({_describe_object(rt, loc[0])}): used by {order}, one after the other "
                       "in this schedule (not interleaved).")
            continue
        if loc in synchronised:
            out.append(f"Order of use of {title} ({_describe_object(rt, loc[0])}), each use synchronised, "
                       "but another thread's came in between:")
        elif racing and sequential:
            out.append(f"Order of use of {title} ({_describe_object(rt, loc[0])}), one thread after the other:")
        elif racing:
            out.append(f"Race on {title} ({_describe_object(rt, loc[0])}):")
        else:
            # Synchronised accesses (under one lock, say): the order the threads ran in fails.
            out.append(f"Order of use of {title} ({_describe_object(rt, loc[0])}), synchronised but in this order:")
        accessors = {s.index: _accessor(obj, s) for s in accesses}
        at = {s.index: (s.caller_file, s.caller_line) if accessors[s.index] else (s.file, s.line) for s in accesses}
        width = max(len(_where(*at[s.index])) for s in accesses)
        runs = _shown_runs(_runs(accesses))
        for s, count in runs[:MAX_LINES]:
            if isinstance(s, int):  # (a thread's steps left out)
                out.append(f"  ... {count} more by thread {s}")
                continue
            line = _step_line(s, width, accessors[s.index])
            out.append(line + (f"  ({count} times in a row)" if count > 1 else ""))
        if len(runs) > MAX_LINES:
            out.append(f"  ... {sum(c for _, c in runs[MAX_LINES:])} more")
        if loc[1] == KEY_ORDER:
            value = _final_keys(obj)
        elif loc[1] == SIZE:
            value = _final_size(obj)
        else:
            value = _final_value(obj, named) if obj is not None else None
        if value is not None and " object at 0x" not in value:
            # The whole object is named by its path from the state, if it has one.
            if loc[1] == SIZE:
                named_as = f"len({_paths.of(obj) or type(obj).__name__})"
            elif loc[1] == WHOLE and obj is not None:
                named_as = _paths.of(obj) or title
            else:
                named_as = _by_path(obj, title)
            out.append(f"  afterwards {named_as} = {value}")
    if len(found) > shown:
        out.append(f"(and {len(found) - shown} more racing locations)")
    return out, racing and bool(out)


def lock_order_report(rt, steps):
    """For failures with no conflicting data access in view: the order locks were taken in,
    or, for a lock a thread looked at (``locked()``, a try), every use of it: a look that
    another thread's release or acquisition follows is a check and its act apart."""
    uses = [s for s in steps if s.access in LOCK_USES or s.kind == "try_acquire"]
    out = []
    for n in dict.fromkeys(s.obj for s in uses):
        mine = [s for s in uses if s.obj == n]
        looked = any(s.access == "locked" or s.kind == "try_acquire" for s in mine)
        if not looked:
            mine = [s for s in mine if s.access == "acquire"]
        if len({s.thread for s in mine}) < 2:
            continue
        label = _lock_label(rt, n)
        if looked:
            out.append(f"No two threads touched the same data; {label} was used in this order:")
        else:
            out.append(f"No two threads touched the same data without {label} in between; it was taken in this order:")
        out += _listed(mine)
    # A modelled queue's steps are its synchronisation too (`if not q.empty(): q.get_nowait()`).
    queued = [s for s in steps if s.access == "queue"]
    for n in dict.fromkeys(s.obj for s in queued):
        mine = [s for s in queued if s.obj == n]
        if len({s.thread for s in mine}) < 2:
            continue
        q = rt.object(n)
        what = "semaphore" if kind_is(q, threading.Semaphore) else "future" if kind_is(q, Future) else "queue"
        label = _modelled_label(q, what)
        out.append(f"No two threads touched the same data; {label} was used in this order:")
        out += _listed(mine)
    return out


def _listed(steps):
    width = max(len(_where(s.file, s.line)) for s in steps)
    lines = [_step_line(s, width) for s in steps[:MAX_LINES]]
    if len(steps) > MAX_LINES:
        lines.append(f"  ... {len(steps) - MAX_LINES} more")
    return lines


def _lock_label(rt, n):
    obj = rt.object(n)
    owner = own_attr(obj, "_frontrun_owner", obj)
    if kind_is(owner, _coop._SqliteWriteLock):
        return repr(owner)[1:-1]
    name = rt.lock_name(n)
    path = _paths.of(owner)
    where = _created_at(obj) if obj is not None else None
    condition, condition_path = _paths.holder(owner, (threading.Condition, _coop.Condition))
    if not name and condition is not None and path == f"{condition_path}._lock":
        # (`with cv:` takes it: the program names the condition, not `cv._lock`.)
        return f"the condition {condition_path}" + (f" (created at {where})" if where else "")
    label = name or (f"the lock {path}" if path else f"lock {rt.shown(n)}")
    named = path and label.endswith(path)
    details = [d for d in (path if not named else None, f"created at {where}" if where else None) if d]
    return f"{label} ({', '.join(details)})" if details else label


def _waitables():
    import queue
    import threading

    # The object a wait is on, by the lock of the condition it waits with (a Queue's mutex,
    # an Event's or Barrier's condition's lock): what it waits for, and who would end it.
    return (
        (queue.Queue, "the queue", "put to or take from"),
        (threading.Event, "the event", "set"),
        (threading.Barrier, "the barrier", "reach"),
        (threading.Semaphore, "the semaphore", "release"),
        (threading.Condition, "the condition", "notify"),
    )


def _condition_wait(rt, n, thread):
    obj = rt.object(n)
    lock = own_attr(obj, "_frontrun_owner", obj)
    waitables = _waitables()
    holder, path = _paths.holder(lock, tuple(kind for kind, _, _ in waitables))
    if holder is None or kind_is(holder, _coop.Condition):
        # Which of the conditions over the lock (a buffer's `not_full` and `not_empty`).
        cond = _coop.last_condition_wait.get(thread + 1)
        named = _paths.of(cond) if cond is not None and cond is not holder else None
        if named:
            holder, path = cond, named
    if holder is None:
        return f"waits on a condition of {_lock_label(rt, n)} that no one will notify"
    what, ends = next((w, e) for kind, w, e in waitables if kind_is(holder, kind))
    where = _created_at(holder)
    return f"waits on {what} {path}" + (f" (created at {where})" if where else "") + f", which no other thread will {ends}"


def _semaphore_steps(rt, steps):
    """The takes and gives of tokens of the program's semaphores (their counted steps), each
    with how it is shown: "acquire" or "release"."""
    counted = {_coop._GETS: "acquire", _coop._PUTS: "release"}
    kinds = {}

    def is_semaphore(n):
        if n not in kinds:
            kinds[n] = kind_is(rt.object(n), threading.Semaphore)
        return kinds[n]

    return [(s, counted[s.key]) for s in steps if s.access == "queue" and s.key in counted and is_semaphore(s.obj)]


def _modelled_label(q, what):
    """"the queue state.q (created at f.py:3)": a modelled queue, semaphore or future."""
    where = _created_at(q) if q is not None else None
    return f"the {what} {_paths.of(q) or '(unnamed)'}" + (f" (created at {where})" if where else "")


def _still_held(takes_and_gives):
    """Each thread's takes (of a lock, of a semaphore's token) it has not given back, from
    `(step, took)` pairs in order: `{thread: [step, ...]}`, a give undoing its latest take."""
    held = {}
    for s, took in takes_and_gives:
        mine = held.setdefault(s.thread, [])
        if took:
            mine.append(s)
        else:
            taken = next((i for i in range(len(mine) - 1, -1, -1) if mine[i].obj == s.obj), None)
            if taken is not None:
                del mine[taken]
    return held


def _semaphore_holders(rt, q, thread, tokens):
    """Who holds tokens of the semaphore `q` the waiting `thread` cannot take: ", whose token
    thread 1 holds (taken at f.py:11)", or "" when no thread took more than it gave back."""
    holders = {t: [s for s in held if rt.object(s.obj) is q] for t, held in tokens.items()}
    holders = {t: held for t, held in holders.items() if held}
    if not holders:
        return ""
    names = [("itself" if t == thread else f"thread {t}") for t in holders]
    wheres = ", ".join(_where(h[-1].file, h[-1].line) for h in holders.values())
    count = "token" if sum(map(len, holders.values())) == 1 else "tokens"
    who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f", whose {count} {who} {'holds' if len(names) == 1 else 'hold'} (taken at {wheres})"


def _queue_wait(rt, q, how, thread, tokens):
    """A wait in a modelled queue, semaphore or future (``_coop``'s, which wait without a
    condition)."""
    what = {"acquire": "semaphore", "result": "future", "wait": "future"}.get(how, "queue")
    named = _modelled_label(q, what)
    if how == "join":
        return f"waits in join() on {named}, which no other thread will call task_done() on"
    if how == "acquire":
        return f"waits on {named}" + (_semaphore_holders(rt, q, thread, tokens) or ", which no other thread will release")
    if how == "result":
        return f"waits for the result of {named}, which no other thread will set"
    if how == "wait":
        return f"waits in wait() or as_completed() for futures no other thread will set, among them {named}"
    return f"waits on {named}, which no other thread will put to or take from"


def deadlock_report(rt, steps):
    waiters = rt.deadlock_waiters()
    out = ["Deadlock: every live thread is waiting, and none can go on."]
    held = _still_held((s, s.access == "acquire") for s in steps if s.access in ("acquire", "release"))
    token_steps = _semaphore_steps(rt, steps)
    tokens = _still_held((s, what == "acquire") for s, what in token_steps)
    ended = {s.thread for s in steps if s.access == "exit"}
    for thread, what, n, holder, file, line in waiters:
        at = f"\n      at {_where(file, line)}  {_source(file, line)}" if file else ""
        mine = [_lock_label(rt, s.obj) for s in held.get(thread, [])]
        # (Not a library's own: a pool's semaphore of idle workers says nothing of the wait.)
        own_tokens = (s.obj for s in tokens.get(thread, []) if s.file and not _in_library(s.file))
        mine += [f"a token of {_modelled_label(rt.object(obj), 'semaphore')}" for obj in dict.fromkeys(own_tokens)]
        # Said right after the thread: "held by thread 1 while holding X" read as thread 1's.
        who = f"thread {thread}"
        if mine:
            who += " holds " + ", ".join(mine) + " and"
        if what == "lock":
            by = f", held by thread {holder}" if holder is not None and holder >= 0 else ""
            if holder in ended:
                by += ", which has ended without releasing it"
            if holder == thread:
                by = ", held by itself (a Lock is not reentrant)"
            elif holder == -1:  # the root: taken before the execution and never released
                by = ", taken before the threads began (in setup() or by the caller) and not released"
            out.append(f"  {who} waits for {_lock_label(rt, n)}{by}{at}")
        elif what == "condition":
            out.append(f"  {who} {_condition_wait(rt, n, thread)}{at}")
        elif what == "join":
            out.append(f"  {who} waits to join thread {n - 1}{at}")
        elif thread + 1 in _coop.queue_waits:
            out.append(f"  {who} {_queue_wait(rt, *_coop.queue_waits[thread + 1], thread, tokens)}{at}")
        else:
            out.append(f"  {who} is blocked{at}")
    lock_steps = [s for s in steps if s.access in ("acquire", "release") and s.file]
    # A library's own locks (a pool's shutdown lock taken in submit(), a future's condition)
    # are left out when the program's own lines took locks too: they say nothing of the wait.
    own = [s for s in lock_steps if not _in_library(s.file)]
    left_out = len(lock_steps) - len(own) if own else 0
    if own:
        lock_steps = own
    calls = _primitive_calls(rt, lock_steps)
    lock_steps = [s for s in lock_steps if calls.get(s.index, True)]
    # A semaphore's tokens are held as locks are (`with sem:`).
    shown_tokens = [(s, what) for s, what in token_steps if s.file and (not own or not _in_library(s.file))]
    if shown_tokens:
        calls.update((s.index, what) for s, what in shown_tokens)
        lock_steps = sorted(lock_steps + [s for s, _ in shown_tokens], key=lambda s: s.index)
    if lock_steps:
        out.append("How they got there (lock operations in order):")
        width = max(len(_where(s.file, s.line)) for s in lock_steps)
        shown = lock_steps[-MAX_LINES:]
        # Which waiter each notify() woke: a lost wakeup is a notify that woke the wrong one.
        notifies = [n for n in _coop.notified if n[3] is not None and n[0] > shown[0].index]
        for s in shown:
            while notifies and notifies[0][0] <= s.index:
                out.append(_notify_line(notifies.pop(0), width))
            what = calls.get(s.index) or s.access
            out.append(_step_line(s, width).replace(f"  {s.access:<6}", f"  {what:<7}", 1))
        out += [_notify_line(n, width) for n in notifies]
        if left_out:
            out.append(f"  ({left_out} lock operations inside libraries left out)")
    return out


def _primitive_calls(rt, lock_steps):
    """The lock steps that are a call of an Event, Queue, Barrier or Semaphore (its own
    condition's lock, taken and let go at one line): `{acquire's index: "event", ...}` for the
    one line each call is shown as, and `{release's index: None}` for the step it hides. Shown
    as lock operations, `ev.set()` read as "acquire ... release" of a lock the program never
    named."""
    # ("the event" -> "event"; a Condition's lock is the program's own `with cv:`.)
    kinds = tuple((kind, what.split()[-1]) for kind, what, _ in _waitables() if kind is not threading.Condition)
    kind_of = {}

    def kind(n):
        if n not in kind_of:
            obj = rt.object(n)
            holder, _ = _paths.holder(own_attr(obj, "_frontrun_owner", obj), tuple(k for k, _ in kinds))
            kind_of[n] = next((word for k, word in kinds if holder is not None and kind_is(holder, k)), None)
        return kind_of[n]

    calls, open_calls = {}, {}
    for s in lock_steps:
        key = (s.thread, s.obj, s.file, s.line)
        if s.access == "acquire" and kind(s.obj):
            open_calls[key] = s.index
        elif s.access == "release" and key in open_calls:
            calls[open_calls.pop(key)] = kind(s.obj)
            calls[s.index] = None
    return calls


def _notify_line(notify, width):
    _, notifier, woken, (file, line) = notify
    where = _where(file, line)
    wakes = "no thread was waiting: it wakes no one" if woken is None else f"wakes thread {woken - 1}"
    return f"  thread {notifier - 1}  notify  {where:<{width}}  {_source(file, line)}  [{wakes}]"


def _others_when_raised(steps, thread, message):
    """Where the other threads stood when `thread` raised (after its last step): each was
    parked at the next step it took."""
    mine = [s.index for s in steps if s.thread == thread and s.access != "exit"]
    cut = mine[-1] if mine else -1
    parked = {}
    for s in steps[cut + 1:]:
        if s.thread != thread and s.thread >= 0 and s.thread not in parked and s.file:
            parked[s.thread] = s
    if not parked:
        return []
    out = [f"When thread {thread} raised, the other threads were about to run:"]
    width = max(len(_where(s.file, s.line)) for s in parked.values())
    out += [_step_line(parked[t], width) for t in sorted(parked)]
    if "already executing" in message:
        out.append(
            f"(a generator or coroutine is not thread-safe: thread {thread} resumed it while another "
            "thread was running inside it)"
        )
    return out


def _timed_out_report():
    """The timed waits that timed out in the failing schedule: often the whole story."""
    if not _coop.timed_out:
        return []
    if _coop.timeouts_any_time:  # (the replay runs as the search did)
        head = 'Timed out (timeouts="any_time": a timed wait may end while the others still run):'
    else:
        head = "Timed out (when no other thread could run):"
    width = max(len(_where(*(site or (None, None)))) for _t, site, _w in _coop.timed_out)
    lines = [head]
    # A polling loop's time-outs, one after another at one wait, as one line.
    runs = [(timed_out, len(list(same))) for timed_out, same in itertools.groupby(_coop.timed_out)]
    for (thread, site, what), count in runs[:MAX_LINES]:
        file, line = site or (None, None)
        text = f"  thread {thread}  {what:<7} {_where(file, line):<{width}}  {_source(file, line)}".rstrip()
        lines.append(text + (f"  ({count} times in a row)" if count > 1 else ""))
    if len(runs) > MAX_LINES:
        lines.append(f"  ... {sum(c for _, c in runs[MAX_LINES:])} more")
    return lines


def _started_threads_shown(lines):
    """Which function each thread the test's threads or setup() started runs, for those the
    explanation names (the test's own are numbered as in ``threads``)."""
    named = set()
    for line in lines:
        named.update(int(n) for n in re.findall(r"\bthread (\d+)", line))
    shown = [
        f"  thread {n} runs {what}, started by {by}"
        for n, (what, by) in sorted(_coop.started_threads.items())
        if n in named
    ]
    return ["where:"] + shown if shown else []


def _name_globals_used(rt, steps):
    """Objects the threads reached through a module global are named after it (``app.CACHE``),
    and those reached through a closure variable after the variable (``cache``)."""
    for step in steps:
        if step.kind.startswith("cell") and isinstance(step.key, str):
            try:
                value = rt.object(step.obj).cell_contents
            except (AttributeError, ValueError):
                continue
            if value is not None and not kind_is(value, _UNNAMED + _NOT_STATE):
                _paths.add_root(value, step.key)
            continue
        # `COUNTS[...]` in its module, or `store.COUNTS[...]` (an attribute of the module).
        if not step.kind.startswith(("global", "attr")) or not isinstance(step.key, str):
            continue
        namespace = rt.object(step.obj)
        if step.kind.startswith("attr") and not _is_globals(namespace):
            continue
        value = namespace.get(step.key) if _is_globals(namespace) else None
        path = f"{namespace.get('__name__', '?')}.{step.key}"
        if kind_is(value, type):
            # The class itself (`Widget.count += 1`: "object #5 = app.Widget"), and the
            # containers it holds, named after it.
            _paths.add_root(value, path)
            for shared, at in _class_state(value, path):
                _paths.add_root(shared, at)
        elif value is not None and not kind_is(value, _UNNAMED + _NOT_STATE):
            _paths.add_root(value, path)


def explain(rt, run, invariant, schedule):
    global _paths
    _paths = _Paths(run.state)
    try:
        return _explanation(rt, run, invariant, schedule)
    finally:
        # (It held the failing execution's state alive until the next explanation.)
        _paths = _Paths(None)


def _explanation(rt, run, invariant, schedule):
    steps = [Step(i, raw) for i, raw in enumerate(rt.steps())]
    _name_globals_used(rt, steps)
    # A setup() run as a thread made the state before the test's threads began (they wait for
    # it): what it and the threads it started did until it returned is no part of the story.
    since = 1 + max((s.index for s in steps if s.thread == run.setup_thread and s.access == "exit"), default=-1)
    out = []
    if run.kind == "deadlock":
        out += deadlock_report(rt, steps)
        # A check outside the lock before a wait (a lost wakeup) is a race on the data.
        lines, raced = race_report(rt, steps, since)
        if raced:
            out += lines
    else:
        lines, raced = race_report(rt, steps, since)
        ran = {s.thread for s in steps[since:] if s.thread >= 0}
        if run.kind in ("invariant", "exception") and len(ran) == 1:
            # (A test of one thread that runs an event loop: frontrun does not order its tasks.)
            tasks = (" (an asyncio event loop's tasks are not interleaved: they ran in the order the loop "
                     "gave them)") if "asyncio" in sys.modules else ""
            out.append(f"Only thread {ran.pop()} ran: it failed on its own, with no other thread to interleave "
                       f"with{tasks}:")
        elif run.kind in ("invariant", "exception") and not _interleaved(steps[since:]):
            out.append("The threads ran one after the other, with no interleaving, and it still failed:")
        out += lines
        if not raced:
            out += lock_order_report(rt, steps[since:])
    out += _timed_out_report()
    if run.kind == "invariant":
        name = getattr(invariant, "__qualname__", None) or repr(invariant)
        line = f"invariant {name} failed"
        if run.invariant_error:
            line += " by raising:\n" + run.invariant_error.rstrip()
        out.append(line)
    elif run.kind == "exception":
        out.append(run.message.rstrip())
        out += _others_when_raised(steps, run.errors[0][0], run.message)
    elif run.kind == "runaway":
        out.append(run.message + " (a loop that never ends under this schedule?); its last steps:")
        thread = int(run.detail)
        last = [s for s in steps if s.thread == thread][-5:]
        if last:
            width = max(len(_where(s.file, s.line)) for s in last)
            out += [_step_line(s, width) + _what_it_touched(rt, s) for s in last]
    if run.kind in ("deadlock", "runaway") and run.errors:
        # A thread that raised while holding a lock (no `finally`) is often why the others wait.
        thread, text = run.errors[0]
        out.append(f"before that, thread {thread} raised an uncaught exception:\n{text.rstrip()}")
    if not out:
        out.append(run.message or "no failure")
    out += _started_threads_shown(out)
    out.append(f"counterexample: {schedule!r} (frontrun.replay(counterexample, setup, threads, invariant) reruns it)")
    return "\n".join(out)
