"""FIFO queues modelled by their items: a get depends on the put of its own item only.

A ``queue.Queue`` (bounded or not) or ``queue.SimpleQueue`` used by explored threads is searched
by the order of its puts and the order of its gets, not by every order of their lock operations
(in a bounded queue a put also depends on the get that made its room). LIFO and priority queues
keep the cooperative lock (``test_dpor_sync.test_queues``).
"""

import itertools
import queue
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from dpor_testutil import State, load  # noqa: E402

import frontrun  # noqa: E402

PROG = load(
    """
    import queue

    def produce_a(s):
        for i in range(3):
            s.q.put(("a", i))

    def produce_b(s):
        for i in range(3):
            s.q.put(("b", i))

    def consume_six(s):
        for _ in range(6):
            s.got.append(s.q.get())

    def consume_one(s):
        s.got.append(s.q.get())

    def put_one(s):
        s.q.put(1)

    def take_if_any(s):
        if not s.q.empty():
            s.got.append(s.q.get_nowait())

    def wait_briefly(s):
        try:
            s.got.append(s.q.get(timeout=1.0))
        except queue.Empty:
            s.got.append("empty")

    def work(s):
        for _ in range(2):
            item = s.q.get()
            s.q.task_done()
            s.done.append(item)  # after task_done: join() may return before it

    def work_then_mark(s):
        for _ in range(2):
            item = s.q.get()
            s.done.append(item)
            s.q.task_done()

    def submit_and_join(s):
        s.q.put(1)
        s.q.put(2)
        s.q.join()
        s.seen_after_join = list(s.done)

    def join_only(s):
        s.q.put(1)
        s.q.join()

    def check_then_get(s):
        if not s.q.empty():
            s.got.append(s.q.get())

    def get_one(s):
        s.got.append(s.q.get())

    def check_get_check(s):
        if not s.q.empty():
            s.first = s.q.get()
        s.empty_after = s.q.empty()

    def get_second(s):
        s.second = s.q.get()

    def put_y(s):
        s.q.put("y")

    def timed_get_then_nowait(s):
        try:
            s.got.append(s.q.get(timeout=0.5))
        except queue.Empty:
            s.got.append("timed out")
        try:
            s.got.append(s.q.get_nowait())
        except queue.Empty:
            s.got.append("empty")

    def get_at_once(s):
        try:
            s.other = s.q.get(timeout=0)
        except queue.Empty:
            s.other = "empty"

    def timed_get(s):
        try:
            s.other = s.q.get(timeout=0.5)
        except queue.Empty:
            s.other = "timed out"

    def close(s):
        s.q.shutdown()

    def close_now(s):
        s.q.shutdown(immediate=True)

    def get_or_closed(s):
        try:
            s.got.append(s.q.get())
        except queue.ShutDown:
            s.got.append("closed")

    def put_two(s):
        s.q.put("p0")
        s.q.put("p1")

    def put_now(s):
        try:
            s.q.put_nowait("n")
        except queue.Full:
            s.got.append("full")

    def consume_three(s):
        for _ in range(3):
            s.got.append(s.q.get())

    def put_or_closed(s):
        try:
            s.q.put(2)
        except queue.ShutDown:
            s.got.append("put refused")
    """,
    name="dpor_queue_prog",
)


def explore(setup, threads, invariant=lambda s: True, **kw):
    return frontrun.explore_dpor(setup, threads, invariant, stop_on_first=False, **kw)


def queue_of(*items, maxsize=0):
    """A queue made (and filled) in setup(), before the threads begin."""
    q = queue.Queue(maxsize)
    for item in items:
        q.put(item)
    return q


def test_two_producers_and_a_consumer_explore_each_order_of_the_items_once():
    seen = []

    def record(s):
        seen.append(tuple(s.got))
        return True

    result = explore(lambda: State(q=queue.Queue(), got=[]), [PROG.produce_a, PROG.produce_b, PROG.consume_six], record)
    assert result.property_holds is True and result.stats["complete"]
    # Each order of a's and b's items (each producer's own in order) is one execution.
    want = set()
    for places in itertools.combinations(range(6), 3):
        a, b = iter([("a", i) for i in range(3)]), iter([("b", i) for i in range(3)])
        want.add(tuple(next(a) if n in places else next(b) for n in range(6)))
    assert len(want) == 20
    assert set(seen) == want and result.num_explored == 20


def test_simple_queue_is_modelled_too():
    result = explore(lambda: State(q=queue.SimpleQueue(), got=[]), [PROG.produce_a, PROG.produce_b, PROG.consume_six],
                     lambda s: len(s.got) == 6)
    assert result.property_holds is True and result.num_explored == 20


def test_items_put_in_setup_are_taken_first_in_order():
    def setup():
        return State(q=queue_of("s0", "s1"), got=[])

    outcomes = set()

    def record(s):
        outcomes.add((tuple(s.got), s.q.qsize()))
        return True

    result = explore(setup, [PROG.consume_one, PROG.consume_one, PROG.put_one], record)
    assert result.property_holds is True
    # The two gets take s0 and s1 (and append them in either order); the put is left queued.
    assert outcomes == {(("s0", "s1"), 1), (("s1", "s0"), 1)}


@pytest.mark.parametrize("threads, kind, said", [
    # Two threads check that the queue has an item, then take it without waiting: the second
    # get_nowait raises queue.Empty.
    ((PROG.take_if_any, PROG.take_if_any), "exception", "Empty"),
    # One checks and then gets, while the other gets: the first may block for good (the
    # other's get also runs between the check and the get).
    ((PROG.check_then_get, PROG.get_one), "deadlock", "waits on the queue state.q"),
])
def test_another_get_between_a_check_and_a_get_is_found(threads, kind, said):
    result = frontrun.explore_dpor(lambda: State(q=queue_of("x"), got=[]), list(threads), lambda s: True)
    assert result.property_holds is False and result.failure_kind == kind
    assert said in result.explanation
    if kind == "exception":
        # No data is shared but the queue: its uses, in order, show the check and the get apart.
        assert "the queue state.q" in result.explanation and "was used in this order" in result.explanation
        uses = re.findall(r"^  thread (\d)  queue ", result.explanation, re.M)
        assert len(uses) == 4 and set(uses[:2]) == {"0", "1"}, result.explanation


def test_a_timed_get_sees_the_put_or_times_out():
    outcomes = set()

    def record(s):
        outcomes.add(tuple(s.got))
        return True

    # By default a timed wait times out only when nothing else can run: the put comes first.
    result = explore(lambda: State(q=queue.Queue(), got=[]), [PROG.wait_briefly, PROG.put_one], record)
    assert result.property_holds is True and outcomes == {(1,)}
    # With timeouts="any_time", it may also time out before the put.
    outcomes.clear()
    result = explore(lambda: State(q=queue.Queue(), got=[]), [PROG.wait_briefly, PROG.put_one], record,
                     timeouts="any_time")
    assert result.property_holds is True and outcomes == {(1,), ("empty",)}
    # Alone, it times out (nothing else can run), and the explanation says so.
    result = frontrun.explore_dpor(lambda: State(q=queue.Queue(), got=[]), [PROG.wait_briefly],
                                   lambda s: s.got != ["empty"])
    assert result.property_holds is False and "Timed out" in result.explanation


def test_a_get_with_no_time_to_wait_does_not_wait_for_the_others():
    # get(timeout=0) finds the queue empty at once, as get_nowait does, before or after the put
    # (a timed get with time to wait waits until nothing else can run: the put comes first).
    outcomes = set()

    def record(s):
        outcomes.add(s.other)
        return True

    result = explore(lambda: State(q=queue.Queue(), got=[], other=None), [PROG.get_at_once, PROG.put_one], record)
    assert result.property_holds is True and outcomes == {1, "empty"}
    alone = frontrun.explore_dpor(lambda: State(q=queue.Queue(), other=None), [PROG.get_at_once],
                                  lambda s: s.other != "empty")
    assert alone.property_holds is False and "Timed out" not in alone.explanation


def test_join_waits_for_every_task_done():
    def setup():
        return State(q=queue.Queue(), done=[], seen_after_join=None)

    good = frontrun.explore_dpor(setup, [PROG.submit_and_join, PROG.work_then_mark],
                                 lambda s: s.seen_after_join == [1, 2])
    assert good.property_holds is True and good.stats["complete"]
    # A worker that marks its work after task_done: join() can return before the mark.
    bad = frontrun.explore_dpor(setup, [PROG.submit_and_join, PROG.work], lambda s: s.seen_after_join == [1, 2])
    assert bad.property_holds is False and bad.failure_kind == "invariant"
    assert "Race on " in bad.explanation and "done" in bad.explanation


def test_a_join_no_one_finishes_is_a_deadlock_naming_the_queue():
    result = frontrun.explore_dpor(lambda: State(q=queue.Queue()), [PROG.join_only], lambda s: True)
    assert result.failure_kind == "deadlock"
    assert "thread 0 waits in join() on the queue state.q" in result.explanation
    assert "which no other thread will call task_done() on" in result.explanation


def test_task_done_called_too_often_raises_as_without_frontrun():
    def too_many(s):
        s.q.task_done()

    result = frontrun.explore_dpor(lambda: State(q=queue.Queue()), [too_many], lambda s: True)
    assert result.failure_kind == "exception" and "task_done() called too many times" in result.explanation


def test_the_queue_is_left_as_a_plain_run_leaves_it():
    # After the exploration the queue is an ordinary queue again, with the items left in it.
    holder = {}

    def setup():
        holder["q"] = q = queue.Queue()
        return State(q=q, got=[])

    result = explore(setup, [PROG.put_one, PROG.put_one], lambda s: s.q.qsize() == 2)
    assert result.property_holds is True
    q = holder["q"]
    assert q.qsize() == 2 and q.get_nowait() == 1 and q.get(timeout=0.1) == 1
    assert queue.Queue.put.__module__ == "queue" and queue.Queue.get.__module__ == "queue"


def test_a_thread_pool_still_finds_its_tasks_race():
    # The pool's work queue is modelled: its steps are synchronisation, not the race shown.
    PROG_POOL = load(
        """
        from concurrent.futures import ThreadPoolExecutor

        def inc(s):
            v = s.n
            s.n = v + 1

        def run_two(s):
            with ThreadPoolExecutor(max_workers=2) as ex:
                for f in [ex.submit(inc, s) for _ in range(2)]:
                    f.result()
        """,
        name="dpor_queue_pool_prog",
    )
    result = frontrun.explore_dpor(lambda: State(n=0), [PROG_POOL.run_two], lambda s: s.n == 2)
    assert result.property_holds is False
    assert "Race on State.n" in result.explanation and "SimpleQueue" not in result.explanation


@pytest.mark.skipif(not hasattr(queue.Queue, "shutdown"), reason="Queue.shutdown is new in 3.13")
def test_shutdown_ends_waiting_gets_and_refuses_puts():
    outcomes = set()

    def record(s):
        outcomes.add(tuple(sorted(map(str, s.got))))
        return True

    result = explore(lambda: State(q=queue.Queue(), got=[]), [PROG.get_or_closed, PROG.put_or_closed, PROG.close],
                     record)
    assert result.property_holds is True and result.stats["complete"]
    # The get takes the put's item, or finds the queue shut down and empty (the put came after
    # the shutdown, or it came before and the item is still there for no one).
    assert outcomes == {("2",), ("closed", "put refused")}
    outcomes.clear()
    result = explore(lambda: State(q=queue.Queue(), got=[]), [PROG.get_or_closed, PROG.put_or_closed, PROG.close_now],
                     record)
    assert result.property_holds is True
    assert outcomes == {("2",), ("closed", "put refused"), ("closed",)}


def test_a_bounded_buffer_orders_items_and_waits_for_room():
    seen = set()

    def record(s):
        seen.add(tuple(s.got))
        return True

    result = explore(lambda: State(q=queue.Queue(1), got=[]), [PROG.produce_a, PROG.produce_b, PROG.consume_six], record)
    assert result.property_holds is True and result.stats["complete"]
    # Room for one item changes no order the items can come in.
    assert len(seen) == 20 and result.num_explored == 20


def test_a_bounded_buffer_no_one_empties_is_a_deadlock():
    result = frontrun.explore_dpor(lambda: State(q=queue.Queue(1)), [PROG.put_two], lambda s: True)
    assert result.failure_kind == "deadlock"
    assert "thread 0 waits on the queue state.q" in result.explanation


def test_put_nowait_into_a_full_queue_raises_full_in_some_order():
    outcomes = set()

    def record(s):
        outcomes.add(tuple(sorted(map(str, s.got))))
        return True

    result = explore(lambda: State(q=queue.Queue(1), got=[]), [PROG.put_now, PROG.put_one, PROG.consume_one], record)
    # put_one waits for room, so the consumer takes one of the two items and one stays queued
    # (the put_nowait found the queue full before or after the get, or found room).
    assert result.property_holds is True
    assert ("1", "full") in outcomes and ("n",) in outcomes and ("1",) in outcomes


def test_a_get_that_waited_is_also_run_before_the_get_that_took_its_item():
    # The first thread's last look at the queue hides its get from the second thread's (which
    # waited for the put): the search still runs the second one's get first.
    def setup():
        return State(q=queue_of("x"), first=None, second=None, empty_after=None)

    outcomes = set()

    def record(s):
        outcomes.add((s.first, s.second))
        return True

    result = explore(setup, [PROG.check_get_check, PROG.get_second, PROG.put_y], record)
    assert result.property_holds is True and result.stats["complete"]
    assert outcomes == {("x", "y"), ("y", "x"), (None, "x")}


def test_a_waiting_get_is_also_run_before_every_get_of_another_thread_before_it():
    # The second thread's get waits (the first took the item), and the first thread's later
    # get_nowait comes between them: the search still runs the waiting get before the first
    # get, where it takes the item (found by the differential fuzzer against the lock model).
    def setup():
        return State(q=queue_of("x", maxsize=1), got=[], other=None)

    outcomes = set()

    def record(s):
        outcomes.add((tuple(s.got), s.other))
        return True

    result = explore(setup, [PROG.timed_get_then_nowait, PROG.timed_get], record)
    assert result.property_holds is True
    assert outcomes == {(("x", "empty"), "timed out"), (("timed out", "empty"), "x")}



MADE_BEFORE = load(
    """
    import queue

    Q = queue.SimpleQueue()  # C's, made at import: the exploration cannot see into its get()

    def get(s):
        try:
            s.got = Q.get(timeout=1.0)  # real time: ends by itself (a thread stopped inside
        except queue.Empty:             # C's get spun on 3.11)
            s.got = None

    def put(s):
        Q.put(1)
    """
)


def test_a_thread_blocked_in_a_call_frontrun_does_not_model_is_said_to_be(monkeypatch, capsys):
    # The consumer blocks in C's SimpleQueue.get() before the producer runs: the search hung
    # without a word. Now stderr says at once where the thread is.
    import frontrun._dpor as dpor

    monkeypatch.setattr(dpor, "STALL_NOTICE_SECONDS", 0.3)
    frontrun.explore_dpor(lambda: State(got=None), [MADE_BEFORE.get, MADE_BEFORE.put], lambda s: True,
                          max_executions=1)
    err = capsys.readouterr().err
    assert "frontrun: thread 0 has taken no step for 0.3 s, at " in err, err
    assert "in get (s.got = Q.get(timeout=1.0)" in err, err
    Q = MADE_BEFORE.Q
    while not Q.empty():  # what the executions left
        Q.get()
