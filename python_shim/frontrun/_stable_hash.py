"""Sets of the program's objects iterate in the same order in every execution.

An instance of a class that keeps ``object.__hash__`` hashes by its address, and where the
allocator puts an object differs from one execution to the next: a set of such objects (a
bus's subscribers, a crawler's visited nodes) was iterated in another order, and the search
stopped on "nondeterminism". While an exploration runs, the program's classes that hash so
(and the library classes it names: a ``queue.Queue`` per subscriber) hash an object made
during it by the order in which it was first hashed in its execution (the same under the same
schedule). An object that was alive before the exploration keeps its address hash, since it
may already be in a set; so does one of a class that cannot be weakly referenced (nothing
would say when its number is free again).

A numbered object keeps its number for life. The classes get ``object.__hash__`` back once the
exploration is over and no numbered object is left.
"""

import gc
import weakref

from frontrun import _native

_object_hash = object.__hash__

_exploring = False  # None while an exploration begins: nothing numbered, nothing put back
_next = 0
_numbered = {}  # id(obj) -> (number, weakref that forgets it)
_before = {}  # id -> weakref of the patched classes' instances alive when the exploration began
_patched = {}  # id(class) -> (class, its own __hash__ entry before: None if it had none)


def _stable_hash(obj):
    entry = _numbered.get(id(obj))
    if entry is not None:
        return entry[0]
    if not _exploring:
        return _object_hash(obj)
    alive_before = _before.get(id(obj))
    if alive_before is not None and alive_before() is obj:
        return _object_hash(obj)
    global _next
    _next += 1
    key = id(obj)
    _numbered[key] = (_next, weakref.ref(obj, lambda _ref, key=key: _forget(key)))
    return _next


def _forget(key):
    _numbered.pop(key, None)
    if not _numbered and _exploring is False:
        _unpatch()


def _unpatch():
    for cls, own in list(_patched.values()):
        if cls.__dict__.get("__hash__") is _stable_hash:
            try:
                if own is None:
                    delattr(cls, "__hash__")
                else:
                    setattr(cls, "__hash__", own)
            except (AttributeError, TypeError):
                pass
    _patched.clear()


def begin(classes):
    """Numbering on for an exploration of a program whose classes are ``classes``."""
    global _exploring, _next
    _exploring = None
    for cls in classes:
        if id(cls) in _patched or cls.__hash__ is not _object_hash or not cls.__weakrefoffset__:
            continue
        own = cls.__dict__.get("__hash__")
        try:
            cls.__hash__ = _stable_hash
        except Exception:  # a metaclass that forbids it
            continue
        _patched[id(cls)] = (cls, own)
    _before.clear()
    if _patched:
        # (The weak reference tells such an object from a later one at its address.)
        hashed_here = tuple(_with_subclasses(cls for cls, _ in _patched.values()))
        _before.update((id(obj), weakref.ref(obj)) for obj in _native._instances_of(gc.get_objects(), hashed_here))
    _exploring, _next = True, 0


def _with_subclasses(classes):
    """``classes`` and all their subclasses."""
    found, seen, pending = [], set(), list(classes)
    while pending:
        cls = pending.pop()
        if id(cls) not in seen:
            seen.add(id(cls))
            found.append(cls)
            pending.extend(type.__subclasses__(cls))
    return found


def new_execution():
    """Objects an execution makes are numbered from the start again."""
    global _next
    _next = 0


def end():
    global _exploring
    _exploring = False
    _before.clear()
    if not _numbered:
        _unpatch()
