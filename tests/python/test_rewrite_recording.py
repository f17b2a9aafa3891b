"""recording(): the exact events rewritten code reports, on every interpreter.

Each case compiles a small module, rewrites it, runs one function inside ``recording()`` and
compares ``(kind, obj, key, line)`` with the expected list; objects are named by identity.
"""

import asyncio
import builtins
import heapq
import sys
import textwrap
import threading

import pytest

from frontrun import _native
from frontrun._recording import recording

FILE = "<recording-test>"


def load(source, policy="shared", resource_methods=()):
    code = compile(textwrap.dedent(source), FILE, "exec", dont_inherit=True)
    new = _native.rewrite_code(code, policy, tuple(resource_methods))
    assert new is not code
    namespace = {"__name__": "rwtest"}
    exec(new, namespace)
    return namespace


def shown(events, **names):
    """``(kind, name of obj, key, line)`` per event; obj by identity among ``names``, else its type."""
    by_id = {id(v): k for k, v in names.items()}

    def name(o):
        if id(o) in by_id:
            return by_id[id(o)]
        return type(o).__name__

    out = []
    for e in events:
        key = e.key if isinstance(e.key, (str, int, slice, type(None))) else name(e.key)
        out.append((e.kind, name(e.obj), key, e.line))
    return out


def record(fn, *args):
    with recording() as events:
        result = fn(*args)
    return result, list(events)


def assert_no_report_errors():
    assert _native.report_errors()[0] == 0, _native.report_errors()


ACCOUNTS = """
class Account:
    def __init__(self):
        self.balance = 0

class Bank:
    def __init__(self):
        self.accounts = {"a": Account()}

def deposit(s):
    s.accounts["a"].balance += 1
"""


def test_attribute_of_subscript_of_attribute():
    ns = load(ACCOUNTS)
    bank = ns["Bank"]()
    acc = bank.accounts["a"]
    _, events = record(ns["deposit"], bank)
    assert shown(events, bank=bank, accounts=bank.accounts, acc=acc) == [
        ("attr_load", "bank", "accounts", 11),
        ("item_load", "accounts", "a", 11),
        ("attr_load", "acc", "balance", 11),
        ("inplace", "int", "+=", 11),
        ("attr_store", "acc", "balance", 11),
    ]
    assert acc.balance == 1
    assert all(e.file == FILE for e in events)
    assert [e.is_write for e in events] == [False, False, False, True, True]
    assert_no_report_errors()


def test_inplace_on_containers():
    ns = load(
        """
        class Holder:
            def __init__(self):
                self.lst = []

        def local_list(x):
            lst = []
            lst += [x]
            return lst

        def attribute_list(h, x):
            h.lst += [x]
        """
    )
    lst, events = record(ns["local_list"], 5)
    assert shown(events, lst=lst) == [("inplace", "lst", "+=", 8)]
    h = ns["Holder"]()
    inner = h.lst
    _, events = record(ns["attribute_list"], h, 1)
    assert shown(events, h=h, lst=inner) == [
        ("attr_load", "h", "lst", 12),
        ("inplace", "lst", "+=", 12),
        ("attr_store", "h", "lst", 12),
    ]


def test_state_accessing_builtins():
    ns = load(
        """
        import heapq

        def push(h):
            heapq.heappush(h, 1)

        def get(o):
            return getattr(o, "x")

        def set_(o):
            setattr(o, "x", 2)
        """
    )
    h = []
    _, events = record(ns["push"], h)
    assert shown(events, heapq_module=heapq, push=heapq.heappush, h=h, g=ns) == [
        ("global_load", "g", "heapq", 5),
        ("builtin_call", "push", "heappush", 5),
    ]
    assert events[1].args == (h, 1) and events[1].args[0] is h and events[1].method == "heappush"

    class O:
        x = 1

    o = O()
    result, events = record(ns["get"], o)
    assert result == 1
    # getattr is not a global of the module: the load is from the builtins dict.
    assert shown(events, getattr=getattr, o=o, b=builtins.__dict__) == [
        ("global_load", "b", "getattr", 8),
        ("builtin_call", "getattr", "getattr", 8),
    ]
    assert events[1].args[0] is o and events[1].args[1] == "x"
    _, events = record(ns["set_"], o)
    assert events[-1].kind == "builtin_call" and events[-1].obj is setattr and events[-1].args == (o, "x")


def test_container_methods():
    ns = load(
        """
        def lookup(d, k):
            return d.get(k)

        def choose(lst, a, b, c):
            lst.append(a if c else b)
            lst.append([i for i in (a, b)])
        """
    )
    d = {"k": 1}
    result, events = record(ns["lookup"], d, "k")
    assert result == 1
    assert shown(events, d=d) == [("call", "d", "get", 3)]
    assert events[0].method == "get"
    lst = []
    _, events = record(ns["choose"], lst, 1, 2, False)
    assert lst == [2, [1, 2]]
    assert shown(events, lst=lst) == [("call", "lst", "append", 6), ("call", "lst", "append", 7)]


def test_method_call_with_await_in_arguments():
    ns = load(
        """
        async def value(x):
            return x

        class Worker:
            def __init__(self):
                self.items = []

            async def run(self):
                self.items.append(await value(3))
                self.items.append([await value(i) for i in range(2)])
                return self.items
        """
    )
    w = ns["Worker"]()
    items = w.items
    result, events = record(asyncio.run, w.run())
    assert result == [3, [0, 1]]
    mine = [e for e in events if e.file == FILE]
    assert shown(mine, w=w, items=items, g=ns, b=builtins.__dict__) == [
        ("attr_load", "w", "items", 10),
        ("global_load", "g", "value", 10),
        ("call", "items", "append", 10),
        ("attr_load", "w", "items", 11),
        ("global_load", "b", "range", 11),
        ("global_load", "g", "value", 11),
        ("global_load", "g", "value", 11),
        ("call", "items", "append", 11),
        ("attr_load", "w", "items", 12),
    ]


def test_any_method_call_under_policy_all():
    ns = load(
        """
        class Obj:
            def m(self, x):
                return [x]

        def call(obj, a, b, c):
            return obj.m(a if c else b)
        """,
        policy="all",
    )
    obj = ns["Obj"]()
    result, events = record(ns["call"], obj, 1, 2, True)
    calls = [e for e in events if e.kind in ("call", "call_return")]
    assert shown(calls, obj=obj, result=result) == [("call", "obj", "m", 7), ("call_return", "obj", "m", 7)]
    assert calls[1].result is result


def test_globals():
    ns = load(
        """
        G = 0

        def bump():
            global G
            G = G + 1

        def drop():
            global G
            del G
        """
    )
    _, events = record(ns["bump"])
    assert shown(events, g=ns) == [("global_load", "g", "G", 6), ("global_store", "g", "G", 6)]
    assert ns["G"] == 1
    _, events = record(ns["drop"])
    assert shown(events, g=ns) == [("global_delete", "g", "G", 10)]
    assert "G" not in ns


def test_nonlocal_cells_report_the_cell():
    ns = load(
        """
        def outer():
            x = 0
            def inner():
                nonlocal x
                x += 1
                return x
            return inner
        """
    )
    inner, events = record(ns["outer"])
    cell = inner.__closure__[0]
    assert shown(events, cell=cell) == [("cell_store", "cell", "x", 3)]
    result, events = record(inner)
    assert result == 1
    assert shown(events, cell=cell) == [
        ("cell_load", "cell", "x", 6),
        ("inplace", "int", "+=", 6),
        ("cell_store", "cell", "x", 6),
        ("cell_load", "cell", "x", 7),
    ]
    # A second closure has its own cell: keyed by cell, not by code.
    other = ns["outer"]()
    _, events = record(other)
    assert events[0].obj is other.__closure__[0] and events[0].obj is not cell


def test_with_entry_reports_the_context_manager():
    ns = load(
        """
        def locked(lock, out):
            with lock:
                out.append(1)
        """
    )
    lock = threading.Lock()
    out = []
    _, events = record(ns["locked"], lock, out)
    assert shown(events, lock=lock, out=out) == [("with_enter", "lock", None, 3), ("call", "out", "append", 4)]


def test_resource_calls_before_and_after():
    source = """
        class Cursor:
            pass

        class Conn:
            def cursor(self):
                return Cursor()

        def use(conn):
            cur = conn.cursor()
            return cur
        """
    for policy in ("resources", "shared"):
        ns = load(source, policy=policy)
        conn = ns["Conn"]()
        cur, events = record(ns["use"], conn)
        events = [e for e in events if e.code.co_name == "use"]
        assert shown(events, conn=conn, cur=cur) == [("call", "conn", "cursor", 10), ("call_return", "conn", "cursor", 10)]
        assert events[1].result is cur


def test_user_resource_methods_and_sqlite():
    ns = load(
        """
        import sqlite3

        def query(conn):
            cur = conn.cursor()
            cur.execute("select 1")
            row = cur.fetchone()
            conn.frob()
            return cur, row
        """,
        policy="resources",
        resource_methods=("frob",),
    )
    import sqlite3

    class Conn(sqlite3.Connection):
        def frob(self):
            return "frobbed"

    conn = sqlite3.connect(":memory:", factory=Conn)
    (cur, row), events = record(ns["query"], conn)
    assert row == (1,)
    assert [(e.kind, e.key) for e in events] == [
        ("call", "cursor"),
        ("call_return", "cursor"),
        ("call", "execute"),
        ("call_return", "execute"),
        ("call", "fetchone"),
        ("call_return", "fetchone"),
        ("call", "frob"),
        ("call_return", "frob"),
    ]
    assert events[0].obj is conn and events[1].result is cur and events[2].obj is cur
    assert events[5].result == (1,) and events[7].result == "frobbed"


def test_subscripts_slices_and_deletes():
    ns = load(
        """
        def items(d, lst, o):
            d["k"] = lst[1:3]
            del d["k"]
            lst[::2] = [0, 0]
            o.a = 1
            del o.a
        """
    )

    class O:
        pass

    d, lst, o = {}, [1, 2, 3], O()
    _, events = record(ns["items"], d, lst, o)
    assert shown(events, d=d, lst=lst, o=o) == [
        ("item_load", "lst", slice(1, 3), 3),
        ("item_store", "d", "k", 3),
        ("item_delete", "d", "k", 4),
        ("item_store", "lst", slice(None, None, 2), 5),
        ("attr_store", "o", "a", 6),
        ("attr_delete", "o", "a", 7),
    ]


def test_only_the_recording_thread_is_recorded():
    ns = load(
        """
        def touch(o):
            o.x = 1
        """
    )

    class O:
        pass

    a, b = O(), O()
    with recording() as events:
        t = threading.Thread(target=ns["touch"], args=(b,))
        t.start()
        t.join()
        ns["touch"](a)
    assert shown(events, a=a, b=b) == [("attr_store", "a", "x", 3)]


def test_nested_recordings_and_the_guard():
    ns = load(
        """
        def touch(o):
            o.x = 1
        """
    )

    class O:
        pass

    o = O()
    assert builtins.__frontrun_on__ is False
    with recording() as outer:
        assert builtins.__frontrun_on__ is True
        with recording() as inner:
            ns["touch"](o)
        assert builtins.__frontrun_on__ is True
        ns["touch"](o)
    assert builtins.__frontrun_on__ is False
    assert len(inner) == 1 and len(outer) == 2
    # Nothing is reported with the guard off.
    ns["touch"](o)
    assert len(outer) == 2


def test_recordings_in_concurrent_threads_keep_the_guard_on():
    ns = load(
        """
        def touch(o, n):
            for _ in range(n):
                o.x = 1
        """
    )

    class O:
        pass

    barrier = threading.Barrier(3)
    counts = {}

    def run(name):
        o = O()
        with recording() as events:
            barrier.wait()
            ns["touch"](o, 200)
            barrier.wait()
        counts[name] = len([e for e in events if e.kind == "attr_store"])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts == {0: 200, 1: 200, 2: 200}
    assert builtins.__frontrun_on__ is False


def test_report_native_never_raises():
    report = builtins.__frontrun_report__
    before = _native.report_errors()[0]
    with recording() as events:
        assert report() is None
        assert report("not a site") is None
        assert report(1, (99, 1, "x")) is None
        assert report((1, 1, "x")) is None  # attr_load without its object
    assert events == []
    assert _native.report_errors()[0] == before + 3


def test_events_carry_file_and_line():
    ns = load(
        """
        def f(o):
            return (o.a,
                    o.b)
        """
    )

    class O:
        a = b = 1

    _, events = record(ns["f"], O())
    assert [(e.kind, e.key, e.line, e.file) for e in events] == [
        ("attr_load", "a", 3, FILE),
        ("attr_load", "b", 4, FILE),
    ]
    assert events[0].code.co_name == "f"
    assert "attr_load" in repr(events[0])


def test_sink_sees_every_thread_before_the_access():
    """The runtime's sink (here a Python callable behind the same Rust API) is called on the
    reporting thread, before the access, with no lock held: it may block and run Python code;
    reports made while it runs on that thread are dropped."""
    ns = load(
        """
        def touch(o, v):
            o.x = v
        """
    )

    class O:
        pass

    seen = []
    lock = threading.Lock()

    def sink(event):
        # Runs before the store: the old value is still there.
        with lock:
            seen.append((threading.current_thread().name, event.kind, event.key, getattr(event.obj, "x", None)))
        ns["touch"](O(), 0)  # re-entrant report from inside the sink: dropped

    o = O()
    errors_before = _native.report_errors()[0]
    _native._set_python_sink(sink)
    _native._reporting_activate()
    try:
        t = threading.Thread(target=ns["touch"], args=(o, 1), name="worker")
        t.start()
        t.join()
        ns["touch"](o, 2)
    finally:
        _native._reporting_deactivate()
        _native._set_python_sink(None)
    assert seen == [("worker", "attr_store", "x", None), ("MainThread", "attr_store", "x", 1)]
    assert o.x == 2
    assert _native.report_errors()[0] == errors_before
