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
        # `+=` on an int rebinds (no inplace event); the store is the write.
        ("attr_store", "acc", "balance", 11),
    ]
    assert acc.balance == 1
    assert all(e.file == FILE for e in events)
    assert [e.is_write for e in events] == [False, False, False, True]
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


def test_inplace_on_immutables_is_not_reported():
    ns = load(
        """
        def ints(n):
            x = 0
            for i in range(n):
                x += 1
            return x

        def lists():
            lst = []
            lst += [1]
            return lst

        def others(s, t, f):
            s += "a"
            t += (1,)
            f *= 2.0
            return s, t, f
        """
    )
    result, events = record(ns["ints"], 3)
    assert result == 3
    assert [e for e in events if e.kind == "inplace"] == []
    lst, events = record(ns["lists"])
    assert lst == [1]
    assert shown(events, lst=lst) == [("inplace", "lst", "+=", 10)]
    result, events = record(ns["others"], "s", (0,), 1.5)
    assert result == ("sa", (0, 1), 3.0)
    assert events == []

    class MyInt(int):
        pass

    # A subclass may define a mutating __iadd__: still reported.
    _, events = record(ns["others"], "s", (0,), MyInt(1))
    assert [(e.kind, type(e.obj).__name__) for e in events] == [("inplace", "MyInt")]
    assert_no_report_errors()


def test_immutable_receivers_and_subscripts_are_not_reported():
    ns = load(
        """
        def reads(s, t, b):
            return s.upper(), t[0], b[1:], s.startswith("a")
        """
    )
    result, events = record(ns["reads"], "ab", (1, 2), b"xy")
    assert result == ("AB", 1, b"y", True)
    assert events == []


def test_container_reads_by_builtins_in_and_for():
    ns = load(
        """
        def size(lst):
            return len(lst)

        def has(d, k):
            return k in d

        def total(lst):
            t = 0
            for v in lst:
                t += v
            return t

        def many(lst):
            return bool(lst), sorted(lst), list(lst), sum(lst), min(lst), max(lst), any(lst), all(lst)

        def comprehension(s):
            return [x for x in s]

        def scalars(text, n):
            return len(text), n in (1, 2), [c for c in text]

        def delegate(lst):
            yield from lst
        """
    )
    lst, d = [3, 1, 2], {"k": 1}
    result, events = record(ns["size"], lst)
    assert result == 3
    assert shown(events, lst=lst, len=len, b=builtins.__dict__) == [
        ("global_load", "b", "len", 3),
        ("builtin_call", "len", "len", 3),
    ]
    assert events[1].args == (lst,) and events[1].args[0] is lst and events[1].method == "len"
    result, events = record(ns["has"], d, "k")
    assert result is True
    assert shown(events, d=d) == [("contains", "d", "k", 6)]  # the key looked for, too
    assert not events[0].is_write
    result, events = record(ns["total"], lst)
    assert result == 6
    assert shown(events, lst=lst) == [("iter", "lst", None, 10)]
    _, events = record(ns["many"], lst)
    calls = [(e.key, e.args[0] is lst) for e in events if e.kind == "builtin_call"]
    assert calls == [(n, True) for n in ("bool", "sorted", "list", "sum", "min", "max", "any", "all")]
    s = {1, 2}
    _, events = record(ns["comprehension"], s)
    assert [(e.kind, e.obj is s) for e in events] == [("iter", True)]
    # Nothing shared: a str, a tuple constant, iterating a str.
    result, events = record(ns["scalars"], "ab", 2)
    assert result == (2, True, ["a", "b"])
    assert [e.kind for e in events] == ["global_load"]
    # `yield from`'s iterable is read as a loop's is, named so its iterator keeps send/throw.
    gen = ns["delegate"](lst)
    result, events = record(list, gen)
    assert result == lst
    assert shown(events, lst=lst) == [("iter", "lst", "yield from", 24)]
    assert_no_report_errors()


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


def test_container_methods_called_through_super():
    ns = load(
        """
        class Log(list):
            def add(self, x, *more):
                super().append(x)
                super(Log, self).extend(more)
                try:
                    return super().__getitem__(len(self) - 1 if more else 0)
                except IndexError:
                    return None

            def gen(self):
                yield super().pop()
        """
    )
    log = ns["Log"]()
    result, events = record(log.add, 1, 2, 3)
    assert (result, log) == (3, [1, 2, 3])
    # 3.12+ (LOAD_SUPER_ATTR): the call of the method on `self`; 3.10/3.11 load it from the
    # super object, which the runtime maps to its object.
    receivers = [e.obj if type(e.obj) is not super else e.obj.__self__ for e in events if e.kind == "call"]
    assert [e.key for e in events if e.kind == "call"] == ["append", "extend", "__getitem__"]
    assert all(r is log for r in receivers)
    assert [e.line for e in events if e.kind == "call"] == [4, 5, 7]
    result, events = record(lambda: list(log.gen()))
    assert (result, log) == ([3], [1, 2])
    assert [(e.key, e.line) for e in events if e.kind == "call"] == [("pop", 12)]
    assert_no_report_errors()


def test_lock_and_synchronisation_method_calls():
    ns = load(
        """
        def explicit(lock):
            lock.acquire()
            lock.release()

        def timed(lock):
            if lock.acquire(timeout=0.5):
                lock.release()
            return lock.locked()

        def signal(ev, q):
            ev.set()
            q.put(1)
            return ev.is_set(), q.get_nowait()
        """
    )
    lock = threading.Lock()
    _, events = record(ns["explicit"], lock)
    assert shown(events, lock=lock) == [("call", "lock", "acquire", 3), ("call", "lock", "release", 4)]
    assert [e.method for e in events] == ["acquire", "release"]
    # A keyword call (3.10: a plain attribute load and CALL_FUNCTION_KW) reports the receiver too.
    result, events = record(ns["timed"], lock)
    assert result is False
    assert shown(events, lock=lock) == [
        ("call", "lock", "acquire", 7),
        ("call", "lock", "release", 8),
        ("call", "lock", "locked", 9),
    ]
    import queue

    ev, q = threading.Event(), queue.Queue()
    result, events = record(ns["signal"], ev, q)
    assert result == (True, 1)
    assert shown(events, ev=ev, q=q) == [
        ("call", "ev", "set", 12),
        ("call", "q", "put", 13),
        ("call", "ev", "is_set", 14),
        ("call", "q", "get_nowait", 14),
    ]
    assert_no_report_errors()


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
        ("iter", "range", None, 11),
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


def test_from_import_in_a_function_reads_the_modules_attribute():
    # `from m import name` reads `m.name` when the function runs: another thread's store of it is
    # raced against. A module's own imports (stored by name, run at import) are not reported.
    ns = load(
        """
        from heapq import heappush

        def read_later():
            from heapq import heapify as h, heappop
            return h, heappop
        """
    )
    result, events = record(ns["read_later"])
    assert result == (heapq.heapify, heapq.heappop)
    assert shown(events, heapq=heapq) == [("attr_load", "heapq", "heapify", 5), ("attr_load", "heapq", "heappop", 5)]
    assert ns["heappush"] is heapq.heappush


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
        ("cell_store", "cell", "x", 6),
        ("cell_load", "cell", "x", 7),
    ]
    # A second closure has its own cell: keyed by cell, not by code.
    other = ns["outer"]()
    _, events = record(other)
    assert events[0].obj is other.__closure__[0] and events[0].obj is not cell


def test_a_closure_that_only_reads_its_cell_reports_the_read():
    # 3.14's dis counts LOAD_DEREF among the local-variable ops: a nested function, lambda or
    # generator expression whose only cell op was that read reported nothing there.
    ns = load(
        """
        def outer():
            phase = "start"
            def peek():
                return phase
            lam = lambda: phase
            gen = lambda: list(c for c in phase)
            return peek, lam, gen
        """
    )
    (peek, lam, gen), _ = record(ns["outer"])
    cell = peek.__closure__[0]
    assert lam.__closure__[0] is cell
    for fn, line in ((peek, 5), (lam, 6)):
        _, events = record(fn)
        assert shown(events, cell=cell) == [("cell_load", "cell", "phase", line)]
    _, events = record(gen)
    assert ("cell_load", "cell", "phase", 7) in shown([e for e in events if e.obj is cell], cell=cell)


def test_a_global_read_first_in_a_branch_is_reported():
    # 3.14+ puts NOT_TAKEN after a conditional jump: the read that follows it was left out.
    ns = load(
        """
        G = None

        def init(flag):
            if flag:
                if G is None:
                    return 1
            return 0
        """
    )
    result, events = record(ns["init"], True)
    assert result == 1
    assert ("global_load", "g", "G", 6) in shown(events, g=ns)


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
        # It returns its first value (an `iter` site's loop runs on the result).
        assert report() is None
        assert report("not a site") == "not a site"
        assert report(1, (99, 1, "x")) == 1
        assert report((1, 1, "x")) == (1, 1, "x")  # attr_load without its object
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


def test_operands_whose_contents_are_read():
    ns = load(
        """
        def truth(c):
            if c:
                return not c
            return 2

        def compare(c, d):
            return c == d, c < d

        def arith(c, d):
            return c + d, c * 2

        def unpack(c):
            a, *b = c
            x, y = c
            return a

        def fmt(c):
            return f"{c}{c!r}-{c!s:>9}"

        def star(c, m):
            return [*c], {**m}, (*c, 1)

        def loop(c):
            while c:
                c.pop()
            return c or None

        def scalars(n):
            return n == 1, n + 1, f"{n}" if n > 0 else n

        def spread(c, m):
            return f(*c), f(*c, **m), f(1, *c), f(*())

        def f(*a, **k):
            return a
        """
    )
    c, d, m = [1, 2], [3], {"k": 1}
    errors_before = _native.report_errors()[0]

    def operands(name, *args):
        _, events = record(ns[name], *args)
        return shown(events, c=args[0], d=d, m=m)

    assert operands("truth", c) == [("operand", "c", None, 3), ("operand", "c", None, 4)]
    # One event per operand, left first; the constant 2 is not reported.
    assert operands("compare", c, d) == [("operand", "c", None, 8), ("operand", "d", None, 8)] * 2
    assert operands("arith", c, d) == [("operand", "c", None, 11), ("operand", "d", None, 11),
                                       ("operand", "c", None, 11)]
    assert operands("unpack", c) == [("operand", "c", None, 14), ("operand", "c", None, 15)]
    # The value of each replacement field (once: the conversion's str is not reported again).
    # An f-string's value is named so: its text shows what is nested in it too.
    assert operands("fmt", c) == [("operand", "c", "format", 19)] * 3
    assert operands("star", c, m) == [("operand", "c", None, 22), ("operand", "m", None, 22),
                                      ("operand", "c", None, 22)]
    # The loop test runs before each iteration and once more at the end.
    assert operands("loop", [1, 2]) == [
        ("operand", "c", None, 25), ("call", "c", "pop", 26),
        ("operand", "c", None, 25), ("call", "c", "pop", 26),
        ("operand", "c", None, 25), ("operand", "c", None, 27),
    ]
    # The list a call is spread from is handed to it as is (`f(*c)`), or copied first (with
    # another argument); a `**` mapping is always copied.
    spread = [e for e in operands("spread", c, m) if e[0] == "operand"]
    assert spread == [("operand", "c", None, 33), ("operand", "m", None, 33), ("operand", "c", None, 33),
                      ("operand", "c", None, 33)]
    # Operands that cannot be shared state (ints, strs) make no events.
    assert operands("scalars", 5) == []
    assert _native.report_errors()[0] == errors_before


def test_match_patterns_read_their_subject():
    ns = load(
        """
        class Point:
            __match_args__ = ("x",)

            def __init__(self, x):
                self.x = x

        def kind(subject):
            match subject:
                case {"type": t}:
                    return t
                case [_, _]:
                    return "pair"
                case Point(x=0):
                    return "origin"
                case Point(x):
                    return x
            return None
        """
    )
    m, pair, p = {"type": "move"}, [1, 2], ns["Point"](3)
    # Each pattern tried reads the subject: mapping and sequence patterns their container,
    # class patterns the object's attributes (read in C). Constants are not shared state.
    assert shown(record(ns["kind"], m)[1], m=m) == [("operand", "m", None, 10)]
    assert shown(record(ns["kind"], pair)[1], pair=pair) == [
        ("operand", "pair", None, 10), ("operand", "pair", None, 12),
    ]
    assert shown(record(ns["kind"], p)[1], p=p) == [
        ("operand", "p", None, 10), ("operand", "p", None, 12),
        ("global_load", "dict", "Point", 14), ("operand", "p", "case Class()", 14),
        ("global_load", "dict", "Point", 16), ("operand", "p", "case Class()", 16),
    ]


def test_arguments_of_calls_are_fetched():
    """A call's first two argument values travel with its report: the callee may be C or
    unselected Python, whose reads of them nothing else would report."""
    ns = load(
        """
        import json

        def joined(lst):
            return ",".join(lst)

        def dumped(d):
            return json.dumps(d)

        def keyed(lst, f):
            return sorted(lst, key=f)

        def plain(f, lst):
            return f(lst, 1)

        def scalars(f):
            return f("text"), f(1, 2), f()
        """
    )
    lst, d = ["b", "a"], {"k": 1}
    json = ns["json"]
    errors_before = _native.report_errors()[0]

    result, events = record(ns["joined"], lst)
    assert result == "b,a"
    assert shown(events, lst=lst) == [("call", "str", "join", 5)]
    assert events[0].obj == "," and events[0].method == "join" and events[0].args == (lst,)
    assert events[0].args[0] is lst

    result, events = record(ns["dumped"], d)
    assert result == '{"k": 1}'
    assert shown(events, json=json, g=ns, dumps=json.dumps, d=d) == [
        ("global_load", "g", "json", 8),
        ("attr_load", "json", "dumps", 8),
        ("call_site", "dumps", None, 8),
    ]
    assert events[2].args == (d,) and events[2].args[0] is d

    # Keyword arguments are fetched too: the values, in order.
    key = str.upper
    result, events = record(ns["keyed"], lst, key)
    assert result == ["a", "b"]
    assert [e.kind for e in events] == ["global_load", "builtin_call"]
    assert events[1].obj is sorted and events[1].args[0] is lst and events[1].args[1] is key

    seen = []
    result, events = record(ns["plain"], lambda *a: seen.append(a), lst)
    assert seen == [(lst, 1)]
    assert [(e.kind, e.args) for e in events] == [("call_site", (lst, 1))]

    # Arguments that cannot be shared state (a constant, ints, none at all) make no events.
    result, events = record(ns["scalars"], lambda *a: len(a))
    assert result == (1, 2, 0)
    assert events == []
    assert _native.report_errors()[0] == errors_before
