"""``recording()``: see what rewritten code reports, without an exploration.

Inside ``with recording() as events:``, the report guard of every rewritten code object is on
(for every thread: the guard is one flag, shared and reference-counted across nested and
concurrent users), and each access the *current thread* reports is appended to ``events``
as it happens. An event has the attributes

``kind``
    ``attr_load attr_store attr_delete item_load item_store item_delete global_load
    global_store global_delete cell_load cell_store cell_delete call call_return builtin_call
    inplace with_enter contains iter`` (policy ``all`` adds ``name_load name_store name_delete
    call_site``);
``obj``, ``key``
    the object accessed and the key: attribute name, subscript (a ``slice`` for slicing),
    global name (``obj`` = the module globals), variable name (``obj`` = the cell), method name
    (``obj`` = the receiver), operator (``obj`` = the left operand of ``+=``), the name a builtin
    was called by (``obj`` = the callable; also the reading builtins of
    ``_native.READING_BUILTINS``, ``len sorted enumerate str ...``, called by name), ``None`` for
    ``contains`` (``obj`` = the container of ``x in c``), ``iter`` (``obj`` = the iterable of a
    ``for`` or comprehension) and ``operand`` (``obj`` = a value whose contents a truth test,
    comparison, operator, unpacking, ``*``/``**`` expansion or f-string reads);
``method``, ``args``, ``result``
    the method name of call events, the first arguments of ``builtin_call``, the returned
    object of ``call_return``;
``file``, ``line``, ``code``
    where: the reporting code object and the line of the access;
``is_write``
    whether the event is a store, a delete or an in-place operation (``attr_store``,
    ``item_delete``, ``inplace``, ...). A call's is False whatever it does: whether
    ``obj.append(x)`` changes ``obj`` depends on what ``obj`` is, which an exploration
    decides when it runs (a list's ``append`` writes it, a method of your own class reports its
    own accesses).

An event holds its objects (``obj``, ``args``, ``result``) for as long as it lives: what the
block reports is not freed inside it.

Events are reported *before* the access (``call_return`` after the call returned). Accesses
to exact immutable builtins (``int float complex bool str bytes tuple frozenset None``) are not
reported: ``x += 1`` on an int, ``s.upper()``, ``len(t)`` or ``for c in s`` touch nothing shared.
"""

from __future__ import annotations

import contextlib

from frontrun import _native

__all__ = ["recording", "Event"]

Event = _native.Event


@contextlib.contextmanager
def recording():
    """Collect the events this thread reports while the block runs (a live list)."""
    events = _native._recording_begin()
    try:
        yield events
    finally:
        _native._recording_end(events)
