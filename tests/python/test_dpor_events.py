"""How reported events become engine operations: containers, builtins, resources, cells, globals."""

import heapq
import sqlite3
import sys
import threading
from collections import deque
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from dpor_testutil import State, load  # noqa: E402

import frontrun  # noqa: E402

PROG = load(
    """
    import heapq
    import operator
    import random
    import sqlite3
    import threading
    from random import shuffle

    def append_one(s):
        s.items.append(1)

    def pop_if_any(s):
        if len(s.items) > 0:
            s.items.pop()

    def read_item_0(s):
        v = s.items[0]

    def write_item_0(s):
        s.items[0] = 5

    def write_item_1(s):
        s.items[1] = 5

    def write_last(s):
        s.items[-1] = 7

    def write_key_a(s):
        s.d["a"] = 1

    def write_key_b(s):
        s.d["b"] = 1

    def dict_get_a(s):
        v = s.d.get("a")

    def delete_first(s):
        del s.x[0]

    def read_second(s):
        s.seen = s.x[1]

    def bump_last(s):
        s.x[-1] += 1

    def bump_fourth(s):
        s.x[3] += 1

    def dict_setdefault_a(s):
        s.d.setdefault("a", 0)

    def dict_pop_a(s):
        s.d.pop("a", None)

    def dict_keys(s):
        v = list(s.d.keys())

    def heap_push(s):
        heapq.heappush(s.heap, 1)

    def heap_push_via_attr(s):
        h = s.heap
        heapq.heappush(h, 2)

    def shuffle_module(s):
        random.shuffle(s.items)

    def shuffle_own_rng(s):
        s.rng.shuffle(s.items)

    def shuffle_imported(s):
        shuffle(s.items)

    def shuffle_through_a_local(s):
        mix = s.rng.shuffle
        mix(s.items)

    def iadd_items(s):
        operator.iadd(s.items, [1])

    def iadd_number(s):
        s.total = operator.iadd(s.total, 1)

    def copy_items(s):
        s.seen = list(s.items)

    def setattr_x(s):
        setattr(s, "x", 1)

    class Counter:
        def __init__(self):
            self._value = 0

        @property
        def value(self):
            return self._value

        @value.setter
        def value(self, v):
            self._value = v

    def bump_counter(s):
        s.counter.value += 1

    def getattr_x(s):
        v = getattr(s, "x")

    def getattr_y(s):
        v = getattr(s, "y")

    def setitem_k(s):
        operator.setitem(s.d, "k", 1)

    def getitem_k(s):
        v = operator.getitem(s.d, "k")

    def deque_append(s):
        s.q.append(1)

    def deque_popleft(s):
        # (`if s.q:` would branch on a truth test the rewriter does not report.)
        try:
            s.q.popleft()
        except IndexError:
            pass

    def list_extend_inplace(s):
        lst = s.items
        lst += [1]

    def make_counter():
        count = 0

        def bump(s):
            nonlocal count
            count += 1
            s.result = count

        return bump

    def db_insert(db):
        db.execute("INSERT INTO t VALUES (1)")
        db.commit()

    def db_cursor_insert(db):
        cur = db.cursor()
        cur.execute("INSERT INTO t VALUES (2)")
        db.commit()

    def local_write(s):
        s.local.v = 1
        s.local.v = 2
    """,
    name="dpor_events_prog",
)


def explored(setup, threads, invariant=lambda s: True):
    result = frontrun.explore_dpor(setup, threads, invariant)
    assert result.property_holds is True, result.explanation
    return result.num_explored


def test_list_methods_write_the_whole_list():
    assert explored(lambda: State(items=[]), [PROG.append_one, PROG.append_one]) == 2
    assert explored(lambda: State(items=[1, 2]), [PROG.append_one, PROG.read_item_0]) == 2


def test_list_indexes_by_value_negative_ones_the_whole_list():
    assert explored(lambda: State(items=[0, 0]), [PROG.write_item_0, PROG.write_item_1]) == 1
    assert explored(lambda: State(items=[0, 0]), [PROG.write_item_1, PROG.write_last]) == 2
    # Which element `[-1]` is depends on the length when the step is taken, which another order
    # of the threads changes: it is the whole list, whatever its length (one order more here).
    assert explored(lambda: State(items=[0, 0]), [PROG.write_item_0, PROG.write_last]) == 2


SEQUENCES = {
    "list": lambda: [1, 2, 3, 4],
    "deque": lambda: deque([1, 2, 3, 4]),
    "UserList": lambda: __import__("collections").UserList([1, 2, 3, 4]),
    "array": lambda: __import__("array").array("i", [1, 2, 3, 4]),
}


@pytest.mark.parametrize("kind", sorted(SEQUENCES))
def test_a_deletion_moves_every_later_element_and_negative_indexes_are_positions(kind):
    # `del s[0]` moves s[1] down: it conflicts with a read of s[1] (it did not: one execution).
    make = SEQUENCES[kind]
    setup = lambda: State(x=make(), seen=None)  # noqa: E731
    result = frontrun.explore_dpor(setup, [PROG.delete_first, PROG.read_second], lambda s: s.seen == 3)
    assert result.property_holds is False and result.num_explored == 2, result.explanation
    # s[-1] is s[3] of four elements, in any mutable sequence (array and UserList were missed).
    result = frontrun.explore_dpor(setup, [PROG.bump_last, PROG.bump_fourth], lambda s: s.x[3] == 6)
    assert result.property_holds is False and result.failure_kind == "invariant"


def test_dict_keys_by_value_key_methods_by_key_others_on_the_whole():
    # Two new keys: the dict's order of keys is theirs, so both orders of the insertions count.
    assert explored(lambda: State(d={}), [PROG.write_key_a, PROG.write_key_b]) == 2
    assert explored(lambda: State(d={"a": 0, "b": 0}), [PROG.write_key_a, PROG.write_key_b]) == 1
    assert explored(lambda: State(d={}), [PROG.write_key_a, PROG.write_key_a]) == 2
    # get/setdefault/pop of one key are accesses of that key, as d[k] is.
    assert explored(lambda: State(d={}), [PROG.dict_get_a, PROG.write_key_b]) == 1
    assert explored(lambda: State(d={}), [PROG.dict_get_a, PROG.write_key_a]) == 2
    assert explored(lambda: State(d={"b": 0}), [PROG.dict_pop_a, PROG.write_key_b]) == 1
    assert explored(lambda: State(d={"a": 0}), [PROG.dict_pop_a, PROG.dict_get_a]) == 2
    assert explored(lambda: State(d={}), [PROG.dict_setdefault_a, PROG.dict_setdefault_a]) == 2
    assert explored(lambda: State(d={"b": 0}), [PROG.dict_setdefault_a, PROG.write_key_b]) == 1
    # A method of the whole dict conflicts with any key's write.
    assert explored(lambda: State(d={}), [PROG.dict_keys, PROG.write_key_b]) == 2
    # So does a subclass's own `get`, which may read any key.
    class Folded(dict):
        def get(self, k, default=None):
            return dict.get(self, k.lower(), default)

    assert explored(lambda: State(d=Folded()), [PROG.dict_get_a, PROG.write_key_b]) == 2


def test_heapq_writes_its_heap():
    assert explored(lambda: State(heap=[]), [PROG.heap_push, PROG.heap_push_via_attr]) == 2


@pytest.mark.parametrize("how", ["module", "own_rng", "imported", "through_a_local"])
def test_shuffle_writes_its_list(how):
    # `random.shuffle` is Python the user did not select: its stores were not seen, and the list
    # it was given counted as read only, so a copy taken before the shuffle was never explored.
    setup = lambda: State(items=list(range(10)), rng=__import__("random").Random(5), seen=None)  # noqa: E731
    shuffled = getattr(PROG, "shuffle_" + how)
    result = frontrun.explore_dpor(setup, [shuffled, PROG.copy_items], lambda s: s.seen != list(range(10)))
    assert result.property_holds is False and result.num_explored == 2, result.explanation
    assert "thread 0  write" in result.explanation, result.explanation


def test_in_place_operators_write_a_container():
    setup = lambda: State(items=[], seen=None, total=0)  # noqa: E731
    result = frontrun.explore_dpor(setup, [PROG.iadd_items, PROG.copy_items], lambda s: s.seen == [1])
    assert result.property_holds is False and result.num_explored == 2, result.explanation
    # Of a number it makes a new one: only the attribute is shared.
    assert explored(setup, [PROG.iadd_number, PROG.copy_items]) == 1


def test_getattr_setattr_by_name():
    assert explored(lambda: State(x=0, y=0), [PROG.setattr_x, PROG.getattr_x]) == 2
    assert explored(lambda: State(x=0, y=0), [PROG.setattr_x, PROG.getattr_y]) == 1
    # Explained as the attribute they stand for, with its value at the end.
    result = frontrun.explore_dpor(lambda: State(x=0, y=0), [PROG.setattr_x, PROG.getattr_x], lambda s: False)
    assert result.property_holds is False
    assert "Order of use of State.x (object #1" in result.explanation, result.explanation
    assert "  afterwards state.x = 1" in result.explanation.splitlines(), result.explanation


def test_a_race_inside_a_property_is_shown_at_the_line_that_used_it():
    result = frontrun.explore_dpor(lambda: State(counter=PROG.Counter()), [PROG.bump_counter] * 2,
                                   lambda s: s.counter.value == 2)
    assert result.property_holds is False
    lines = result.explanation.splitlines()
    assert lines[0].startswith("Race on Counter._value (object #"), result.explanation
    where = f"{Path(PROG.__file__).name}:{PROG.bump_counter.__code__.co_firstlineno + 1}"
    getter = f"[in the getter of Counter.value, {Path(PROG.__file__).name}:{PROG.Counter.value.fget.__code__.co_firstlineno + 2}: return self._value]"
    setter = f"[in the setter of Counter.value, {Path(PROG.__file__).name}:{PROG.Counter.value.fset.__code__.co_firstlineno + 2}: self._value = v]"
    shown = [line.split(None, 4) for line in lines[1:5]]
    assert [(w[2], w[3], w[4]) for w in shown] == [("read", where, f"s.counter.value += 1  {getter}")] * 2 + [
        ("write", where, f"s.counter.value += 1  {setter}")] * 2, result.explanation
    assert [w[1] for w in shown] in (["0", "1", "1", "0"], ["1", "0", "0", "1"]), result.explanation


def test_operator_getitem_setitem():
    assert explored(lambda: State(d={"k": 0}), [PROG.setitem_k, PROG.getitem_k]) == 2
    # Explained as the subscripts they stand for (they were shown as an attribute, `dict.k`),
    # and a new key is an insertion.
    result = frontrun.explore_dpor(lambda: State(d={}), [PROG.setitem_k, PROG.getitem_k], lambda s: False)
    assert result.property_holds is False
    # (An invariant that always fails fails with the threads one after the other.)
    assert "Order of use of dict['k'] (object #2" in result.explanation, result.explanation
    assert "insert" in result.explanation and "afterwards state.d['k'] = 1" in result.explanation
    assert "dict.k" not in result.explanation


def test_deque_methods():
    result = frontrun.explore_dpor(lambda: State(q=deque()), [PROG.deque_append, PROG.deque_popleft], lambda s: True)
    assert result.property_holds is True and result.num_explored == 2


def test_inplace_on_a_list_writes_it():
    assert explored(lambda: State(items=[]), [PROG.list_extend_inplace, PROG.append_one]) == 2


def test_closure_cells_are_shared_state():
    bump = PROG.make_counter()
    result = frontrun.explore_dpor(lambda: State(result=None), [bump, bump], lambda s: True)
    assert result.property_holds is True
    assert result.num_explored > 1


def test_resource_calls_conflict_through_the_connection():
    def setup():
        db = sqlite3.connect(":memory:", check_same_thread=False)
        db.execute("CREATE TABLE t (v INTEGER)")
        return db

    # A cursor made by the connection counts as the connection.
    n = explored(setup, [PROG.db_insert, PROG.db_cursor_insert],
                 lambda db: db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 2)
    assert n > 1


OWN_CLOSE = load(
    """
    import sqlite3

    class Channel:
        def __init__(self):
            self.name = "orders"
            self.closed = False

        def close(self):
            self.closed = True

    class LoggedConnection(sqlite3.Connection):
        def execute(self, sql, *args):
            return super().execute(sql, *args)

    def read_name(s):
        s.seen = s.channel.name

    def close_channel(s):
        s.channel.close()

    def insert(db):
        db.execute("INSERT INTO t VALUES (1)")
    """,
    name="dpor_own_close_prog",
)


def test_a_method_of_the_programs_named_like_a_resource_method_is_not_one():
    # `close` of the program's own class was a write of the whole channel, ordered against
    # the other thread's read of its name (and shown as "Race on Channel.name" when a test
    # failed); what it does is reported inside it.
    setup = lambda: State(channel=OWN_CLOSE.Channel(), seen=None)  # noqa: E731
    threads = [OWN_CLOSE.read_name, OWN_CLOSE.close_channel]
    assert explored(setup, threads, lambda s: s.seen == "orders" and s.channel.closed) == 1
    # A class that extends a connection written in C keeps it a resource, its override too.
    def connect():
        db = sqlite3.connect(":memory:", check_same_thread=False, factory=OWN_CLOSE.LoggedConnection)
        db.execute("CREATE TABLE t (v INTEGER)")
        return db

    # (Its two calls are ordered: 2 executions; 3.10/3.11 report `super().execute` as a call
    # of its own, ordered too.)
    assert explored(connect, [OWN_CLOSE.insert] * 2, lambda db: True) >= 2


class Registry:
    """Not rewritten: its state is only seen through the calls configured as resource methods."""

    def __init__(self):
        self._names = []

    def exists(self, name):
        return name in self._names

    def register(self, name):
        self._names.append(name)

    def count(self, name):
        return self._names.count(name)


class Shelf(Registry):
    pass


REGISTRY_PROG = load(
    """
    def register_once(r):
        if not r.exists("a"):
            r.register("a")
    """,
    resource_methods=("register", "exists"),
)


def test_configured_resource_methods_expose_check_then_act():
    # The rewriter reports `exists`/`register` calls; the runtime needs the same configuration.
    qualified = [f"{__name__}.Registry.exists", f"{__name__}.Registry.register"]
    threads = [REGISTRY_PROG.register_once, REGISTRY_PROG.register_once]
    result = frontrun.explore_dpor(Registry, threads, lambda r: r.count("a") == 1, resource_methods=qualified)
    assert result.property_holds is False
    # The explanation's replay, and a later replay of the counterexample, report the same calls.
    assert result.reproduced is True
    assert "Race on the calls of Registry" in result.explanation
    again = frontrun.replay(result.counterexample, Registry, threads, lambda r: r.count("a") == 1)
    assert again.property_holds is False
    # A subclass matches through its bases.
    result = frontrun.explore_dpor(Shelf, threads, lambda r: r.count("a") == 1, resource_methods=qualified)
    assert result.property_holds is False
    # Without the configuration (or with entries for another class) the runtime sees nothing
    # shared and says so instead of passing.
    other = [f"{__name__}.State.exists", f"{__name__}.State.register"]
    for methods in [(), other]:
        with pytest.raises(frontrun.NotInstrumentedError):
            frontrun.explore_dpor(Registry, threads, lambda r: r.count("a") == 1, resource_methods=methods)


def test_thread_locals_are_not_shared_state():
    assert explored(lambda: State(local=threading.local()), [PROG.local_write, PROG.local_write]) == 1


def test_branching_on_a_containers_size_is_explored_exactly():
    # `len(s.items)` reads the whole list: before or after the append, 2 traces.
    result = frontrun.explore_dpor(lambda: State(items=[]), [PROG.append_one, PROG.pop_if_any], lambda s: True)
    assert result.property_holds is True
    assert result.num_explored == 2


def test_reports_outside_explored_threads_are_ignored():
    # The invariant and setup run rewritten code on the controller thread: no effect on the count.
    def setup():
        s = State(items=[])
        PROG.append_one(s)
        return s

    def inv(s):
        PROG.append_one(s)
        return len(s.items) == 4

    assert explored(setup, [PROG.append_one, PROG.append_one], inv) == 2


def test_the_hooks_configured_resource_methods_reach_the_runtime():
    from frontrun import _dpor, rewrite

    assert "execute" in _dpor._resource_methods()
    rewrite.install(include=["no_such_module_here"], resource_methods=["mylib.Pool.checkout"], use_config=False)
    try:
        assert "mylib.Pool.checkout" in _dpor._resource_methods()
    finally:
        rewrite.uninstall()
    assert "mylib.Pool.checkout" not in _dpor._resource_methods()
