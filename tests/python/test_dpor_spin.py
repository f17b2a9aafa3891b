"""Busy waits and polling loops: a thread that keeps reading what nothing changes gives way to
the others, and the search tries the write it waits for before each of its first few reads,
not once per extra round. Loops whose locals change as they read (counting, bounded retries)
are not waits: every position of a write among their reads is still explored."""

import queue
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from dpor_testutil import State, load  # noqa: E402

import frontrun  # noqa: E402

PROG = load(
    """
    import time

    def publish(s):
        s.data = 1
        s.ready = True

    def publish_after_a_nap(s):
        time.sleep(0.001)
        s.data = 1
        time.sleep(0.001)
        s.ready = True

    def work_until_stopped(s):
        while not s.ready:
            s.data += 1
            time.sleep(0.01)
        s.seen = s.data

    def stop_after_a_nap(s):
        time.sleep(0.05)
        s.ready = True

    def retry_lock_until_free(s):
        while not s.lock.acquire(blocking=False):
            time.sleep(0.01)
        s.data += 1
        s.lock.release()

    def fill_slowly(s):
        for i in range(8):
            s.data += 1
            time.sleep(0)

    def check_for_six(s):
        time.sleep(0)
        if s.data == 6:
            s.seen = "six"

    def try_lock_until_free(s):
        while not s.lock.acquire(blocking=False):
            pass
        s.data += 1
        s.lock.release()

    def back_off(first, second, nap=False, timeout=-1):
        # Deadlock avoidance: take one lock, try the other, let go of both and retry on failure.
        def run(s):
            one, other = getattr(s, first), getattr(s, second)
            while True:
                with one:
                    if other.acquire(timeout=timeout) if timeout >= 0 else other.acquire(blocking=False):
                        s.data += 1
                        other.release()
                        return
                if nap:
                    time.sleep(0.001)
        return run

    def back_off_a_few_times(first, second):
        def run(s):
            one, other = getattr(s, first), getattr(s, second)
            for attempt in range(3):
                with one:
                    if other.acquire(blocking=False):
                        s.data += 1
                        other.release()
                        return
                time.sleep(0.001)
        return run

    def try_lock_a_few_times(s):
        for attempt in range(3):
            if s.lock.acquire(blocking=False):
                s.data += 1
                s.lock.release()
                return
            time.sleep(0.01)

    def hold_lock_for_a_step(s):
        with s.lock:
            s.seen = 1

    def hold_lock_a_while(s):
        with s.lock:
            time.sleep(0.05)
            s.data += 1

    def publish_flag_first(s):
        s.ready = True
        s.data = 1

    def spin(s):
        while not s.ready:
            pass
        s.seen = s.data

    def poll(s):
        while not s.ready:
            time.sleep(0.01)
        s.seen = s.data

    def count(s):
        total = 0
        for _ in range(5):
            total += s.data
        s.seen = total

    def retry(s):
        tries = 0
        while not s.ready:
            tries += 1
            if tries == 6:
                break
        s.seen = tries

    def write_data(s):
        s.data = 1

    def poll_event(s):
        while not s.event.is_set():
            time.sleep(0.01)
        s.seen = s.data

    def publish_by_event(s):
        s.data = 1
        s.event.set()

    def publish_by_event_too_early(s):
        s.event.set()
        s.data = 1

    def set_ready(s):
        s.ready = True

    def start_and_poll_alive(s):
        import threading

        t = threading.Thread(target=write_data, args=(s,))
        t.start()
        while t.is_alive():
            time.sleep(0.01)
        s.seen = s.data

    def start_and_check_alive_once(s):
        import threading

        t = threading.Thread(target=write_data, args=(s,))
        t.start()
        time.sleep(0.01)
        s.seen = "running" if t.is_alive() else s.data
    """
)


def setup():
    return State(data=0, ready=False, seen=None)


class Defaults:
    """State whose flag and data have class defaults: a load reads the class attribute, then
    the instance's, in one report of two steps."""

    data = 0
    ready = False
    seen = None


@pytest.mark.parametrize("state", [setup, Defaults], ids=["instance", "class_default"])
@pytest.mark.parametrize("waiter", ["spin", "poll"])
def test_a_wait_for_a_flag_set_after_the_data_holds(waiter, state):
    result = frontrun.explore_dpor(setup=state, threads=[PROG.publish, getattr(PROG, waiter)],
                                   invariant=lambda s: s.seen == 1)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
    # The write before each of the waiter's first four reads of the flag, or after them (the
    # first read has no earlier frame state to compare with). With class defaults the loop's
    # read is a report's last step, which makes both reads: a spin's re-read all the same (it was
    # not, and every later round's reversal was explored: 13 executions).
    assert result.num_explored == 5
    assert result.stats["spins_cut"] >= 1


@pytest.mark.parametrize("waiter", ["spin", "poll"])
def test_a_wait_for_a_publisher_that_sleeps_first_holds(waiter):
    # Both threads give way (one sleeps, one waits): they take turns, so the publisher wakes up
    # and sets the flag. (The waiter went on alone until the step limit: a false runaway.)
    result = frontrun.explore_dpor(setup=setup, threads=[getattr(PROG, waiter), PROG.publish_after_a_nap],
                                   invariant=lambda s: s.seen == 1, max_steps=400)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
    # A few executions: the writes before each of the waiter's first reads, its later rounds cut.
    assert result.num_explored <= 7 and result.stats["spins_cut"] >= 1


@pytest.mark.parametrize("waiter", ["spin", "poll"])
def test_a_wait_for_a_flag_set_before_the_data_is_a_race(waiter):
    result = frontrun.explore_dpor(setup=setup, threads=[PROG.publish_flag_first, getattr(PROG, waiter)],
                                   invariant=lambda s: s.seen == 1)
    assert result.property_holds is False
    assert result.failure_kind == "invariant"
    assert "Race on State.data" in result.explanation or "Race on State.ready" in result.explanation


def test_a_wait_that_nothing_ends_is_reported_as_a_runaway():
    result = frontrun.explore_dpor(setup=setup, threads=[PROG.write_data, PROG.spin], invariant=lambda s: True,
                                   max_steps=300)
    assert result.property_holds is False
    assert result.failure_kind == "runaway"
    assert "did not finish within the step limit" in result.explanation
    # Its last steps, each with what it read.
    last = result.explanation.splitlines()[1:-1]
    assert len(last) == 5 and all(line.split()[:3] == ["thread", "1", "read"] for line in last), last
    assert all(line.endswith("while not s.ready:  [State.ready]") for line in last), last


def test_a_runaway_that_sleeps_shows_its_sleeps_and_what_it_read():
    result = frontrun.explore_dpor(setup=setup, threads=[PROG.poll], invariant=lambda s: True, max_steps=60)
    assert result.failure_kind == "runaway"
    last = [line.split(None, 4)[2:] for line in result.explanation.splitlines()[1:-1]]
    steps = {(what, line.rsplit("  ", 1)[-1]) for what, _, line in last}
    expected = {("read", "[State.ready]"), ("read", "[global time.sleep]"), ("sleep", "time.sleep(0.01)")}
    # (The load of the module global `time` is a step on some versions only.)
    assert expected <= steps <= expected | {("read", f"[global {PROG.__name__}.time]")}, last


@pytest.mark.parametrize("publisher, holds", [("publish_by_event", True), ("publish_by_event_too_early", False)])
def test_polling_an_event(publisher, holds):
    # Event.is_set() reads the event and set() writes it: a poll of it explores like a flag's.
    import threading

    result = frontrun.explore_dpor(setup=lambda: State(data=0, event=threading.Event(), seen=None),
                                   threads=[PROG.poll_event, getattr(PROG, publisher)], invariant=lambda s: s.seen == 1,
                                   max_steps=2000)
    assert result.property_holds is holds, result.explanation or result.inconclusive_reason
    if holds:
        assert result.num_explored <= 6 and result.stats["spins_cut"] >= 1


@pytest.mark.parametrize("seen", range(6))
def test_a_counting_loop_sees_the_write_between_any_two_reads(seen):
    # total = 5 reads of data, each 0 or 1 by where the write falls: every value is reachable.
    result = frontrun.explore_dpor(setup=setup, threads=[PROG.count, PROG.write_data],
                                   invariant=lambda s: s.seen != seen)
    assert result.property_holds is False, f"total {seen} never seen"
    assert result.stats["spins_cut"] == 0


@pytest.mark.parametrize("tries", [0, 1, 3, 6])
def test_a_bounded_retry_loop_is_explored_to_its_last_try(tries):
    result = frontrun.explore_dpor(setup=setup, threads=[PROG.retry, PROG.set_ready],
                                   invariant=lambda s: s.seen != tries)
    assert result.property_holds is False, f"{tries} tries never seen"


def test_polling_a_thread_until_it_ends_holds():
    # Thread.is_alive() reads the thread's liveness and its exit writes it: the loop ends where
    # the schedule says (it was a "nondeterminism" stop), and its extra rounds are cut as a spin.
    result = frontrun.explore_dpor(setup=setup, threads=[PROG.start_and_poll_alive], invariant=lambda s: s.seen == 1)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
    assert result.num_explored <= 6 and result.stats["spins_cut"] >= 1


def test_a_thread_seen_alive_before_its_exit_is_explained():
    result = frontrun.explore_dpor(setup=setup, threads=[PROG.start_and_check_alive_once],
                                   invariant=lambda s: s.seen == 1)
    assert result.property_holds is False and result.failure_kind == "invariant"
    lines = result.explanation.splitlines()
    assert lines[0] == "Race on whether thread 1 is alive (Thread.is_alive() and the thread's exit):", lines
    assert lines[1].split()[:3] == ["thread", "0", "read"] and "t.is_alive()" in lines[1], lines
    assert lines[2].split()[:3] == ["thread", "1", "exit"], lines
    # The other order is explored too: seen after the exit, the data is there.
    result = frontrun.explore_dpor(setup=setup, threads=[PROG.start_and_check_alive_once],
                                   invariant=lambda s: s.seen == "running")
    assert result.property_holds is False and result.failure_kind == "invariant"


def test_a_loop_that_works_and_sleeps_until_stopped_is_explored_for_a_few_rounds():
    # Each round writes, so it is no spin: the stop can come after any round. A thread that
    # goes round while the other is ready to run starves it after a few rounds, which the
    # search does not explore (a fair scheduler would run the other): bounded, not a timeout.
    seen = set()

    def record(s):
        seen.add(s.seen)
        return s.seen == s.data

    result = frontrun.explore_dpor(setup=setup, threads=[PROG.work_until_stopped, PROG.stop_after_a_nap],
                                   invariant=record, stop_on_first=False, timeout=60)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
    assert result.stats["complete"] and result.stats["unfair"] >= 1
    # The stop before each of the first rounds, and after them (FAIR_ROUNDS = 8, plus the
    # round under way when the stopper became ready).
    assert seen == set(range(10)), seen
    assert result.num_explored == 10


@pytest.mark.parametrize("retry, explored", [("retry_lock_until_free", 5), ("try_lock_until_free", 7)])
def test_a_trylock_retry_loop_is_bounded(retry, explored):
    # A failed try is a round too: with or without a sleep between tries, the holder gets to
    # release the lock (the busy loop was a false runaway, the sleeping one a search without
    # end). A try that fails as the one before it did (same lock, same holder, same locals)
    # gets two rounds ahead of the ready holder, not eight (`STUTTER_ROUNDS`). Before 3.14 the
    # compiler puts a second copy of the loop's test at its end: the first try is made at
    # another place than the others, and the second one does not repeat it yet.
    import threading

    if sys.version_info >= (3, 14):
        explored -= 1

    result = frontrun.explore_dpor(setup=lambda: State(data=0, lock=threading.Lock()),
                                   threads=[getattr(PROG, retry), PROG.hold_lock_a_while],
                                   invariant=lambda s: s.data == 2, stop_on_first=False, timeout=60)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
    assert result.stats["complete"] and result.num_explored == explored


def test_a_bounded_retry_gives_up_while_the_holder_is_switched_out():
    # Its locals change from try to try (the attempt count): its tries do not repeat, and the
    # search lets it use up all three while the holder, one step from its release, waits.
    import threading

    result = frontrun.explore_dpor(setup=lambda: State(data=0, seen=0, lock=threading.Lock()),
                                   threads=[PROG.try_lock_a_few_times, PROG.hold_lock_for_a_step],
                                   invariant=lambda s: s.data == 1, timeout=60)
    assert result.property_holds is False and result.failure_kind == "invariant"


@pytest.mark.parametrize("nap, timeout", [(False, -1), (True, -1), (True, 0.01)])
def test_two_threads_that_take_one_lock_and_try_the_other_get_on(nap, timeout):
    # Switched out after a failed try, still holding its first lock, each thread handed the
    # livelock to the other for ever (a runaway at the step limit on the first execution): a
    # thread that holds a lock is let go on until it lets go of it. And the search ends: past
    # a few rounds in lockstep (each failing its try as it did the round before, of a lock the
    # other holds while it backs off too), races are not reversed (`LOCKSTEP_ROUNDS`); the
    # schedules that went on in step were a search without end. A timed try's later tries
    # (made as it waits) do not count: its first try is the one that repeats.
    import threading

    result = frontrun.explore_dpor(setup=lambda: State(data=0, a=threading.Lock(), b=threading.Lock()),
                                   threads=[PROG.back_off("a", "b", nap, timeout), PROG.back_off("b", "a", nap, timeout)],
                                   invariant=lambda s: s.data == 2, timeout=120)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
    assert result.stats["complete"] and result.stats["lockstep_cut"] >= 1


def test_threads_that_back_off_a_bounded_number_of_times_can_all_give_up():
    # Three attempts each, in lockstep: both give up (no cut: the attempt count changes).
    import threading

    result = frontrun.explore_dpor(setup=lambda: State(data=0, a=threading.Lock(), b=threading.Lock()),
                                   threads=[PROG.back_off_a_few_times("a", "b"), PROG.back_off_a_few_times("b", "a")],
                                   invariant=lambda s: s.data >= 1, timeout=60)
    assert result.property_holds is False and result.failure_kind == "invariant"


BUSY = load(
    """
    import queue
    import threading

    def count_until_stopped(s):
        while not s.ready:
            s.data += 1
        s.seen = s.data

    def count_under_the_lock_until_stopped(s):
        while True:
            with s.lock:
                if s.ready:
                    return
                s.data += 1

    def stop(s):
        s.ready = True

    def stop_under_the_lock(s):
        with s.lock:
            s.ready = True

    def take_when_there(s):
        while True:
            try:
                s.seen = s.q.get_nowait()
                return
            except queue.Empty:
                continue

    def put_one(s):
        s.q.put(42)
    """,
    name="dpor_busy_prog",
)


def test_a_consumer_that_busy_polls_a_queue_gets_its_item():
    # get_nowait() in a loop, no sleep: a false runaway before polls of a flag counted as rounds.
    result = frontrun.explore_dpor(setup=lambda: State(q=queue.Queue(), seen=None),
                                   threads=[BUSY.take_when_there, BUSY.put_one], invariant=lambda s: s.seen == 42)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
    assert result.stats["complete"]


@pytest.mark.parametrize("worker, stopper", [("count_until_stopped", "stop"),
                                             ("count_under_the_lock_until_stopped", "stop_under_the_lock")])
def test_a_loop_that_works_without_sleeping_until_stopped_is_bounded(worker, stopper):
    # Reading the flag again, unchanged and from a frame whose locals are as they were, is a round
    # of a loop that polls it while it works: the stopper gets to run (it was a false runaway).
    import threading

    seen = set()

    def record(s):
        seen.add(s.data)
        return s.ready

    result = frontrun.explore_dpor(setup=lambda: State(ready=False, data=0, seen=None, lock=threading.Lock()),
                                   threads=[getattr(BUSY, worker), getattr(BUSY, stopper)], invariant=record,
                                   stop_on_first=False, timeout=60)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
    assert result.stats["complete"] and result.stats["unfair"] >= 1 and result.num_explored < 300
    assert set(range(9)) <= seen, seen
    # A check a few rounds in is still found.
    late = frontrun.explore_dpor(setup=lambda: State(ready=False, data=0, seen=None, lock=threading.Lock()),
                                 threads=[getattr(BUSY, worker), getattr(BUSY, stopper)],
                                 invariant=lambda s: s.data != 5)
    assert late.property_holds is False and late.failure_kind == "invariant"


def test_a_check_several_rounds_into_a_sleeping_loop_is_still_found():
    # Fairness bounds how long a ready thread waits (FAIR_ROUNDS), not where it may look in.
    result = frontrun.explore_dpor(setup=setup, threads=[PROG.fill_slowly, PROG.check_for_six],
                                   invariant=lambda s: s.seen != "six")
    assert result.property_holds is False and result.failure_kind == "invariant"
    assert "Race on State.data" in result.explanation, result.explanation


CALLS_IN_A_LOOP = load(
    """
    LIMIT = 5

    def describe(v):
        if isinstance(v, bool):
            return "bool"
        if isinstance(v, int):
            return "int"
        if isinstance(v, bytes):
            return "bytes"
        return "other"

    def limit():
        return LIMIT

    def dispatch_then_finish(s):
        for _ in range(12):
            describe("x")  # one frame after another in the same state: its loop gets on
        s.done = True

    def sum_then_finish(s):
        total = 0
        for _ in range(400):
            total += limit()
        s.done = True

    def look(s):
        s.started = True
        if s.done:
            s.seen_done = True
    """
)


@pytest.mark.parametrize("worker", ["dispatch_then_finish", "sum_then_finish"])
def test_a_helper_called_with_the_same_arguments_by_a_loop_that_gets_on_is_not_a_spin(worker):
    # Each call of the helper read the same global from a frame with the same locals, so it
    # looked like a polling loop; after a few such rounds the worker had to give way, and the
    # schedule where it finishes before the other thread looks was never tried: "proved".
    setup = lambda: State(done=False, started=False, seen_done=False)  # noqa: E731
    result = frontrun.explore_dpor(setup, [getattr(CALLS_IN_A_LOOP, worker), CALLS_IN_A_LOOP.look],
                                   lambda s: not s.seen_done)
    assert result.property_holds is False and result.failure_kind == "invariant"


ASYNC_POLLER = load(
    """
    import asyncio

    async def wait_for_flag(s):
        while not s.flag:
            await asyncio.sleep(0)

    def poll(s):
        asyncio.run(wait_for_flag(s))

    def set_flag(s):
        s.flag = True
    """
)


def test_a_coroutine_polling_with_sleep_zero_is_a_wait():
    # The event loop's own frames above the coroutine change every round (new handles): only
    # rewritten frames count for whether a loop gets on, else this was a runaway.
    result = frontrun.explore_dpor(lambda: State(flag=False), [ASYNC_POLLER.poll, ASYNC_POLLER.set_flag],
                                   lambda s: True, timeout=120)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason


TWICE_SOURCE = """
    def finish(job):
        job.state = "ready"

    def wait_ready_or_failed(job):
        while job.state != "ready" and job.state != "failed":  # two looks a round
            pass
        job.outcome = job.state

    def peterson(i):
        def enter(p):
            p.flag[i] = True
            p.turn = 1 - i
            while p.flag[1 - i] and p.turn == 1 - i:  # `i` from the closure, at two places
                pass
            p.counter += 1
            p.flag[i] = False
        return enter
    """


def test_a_busy_wait_that_looks_twice_a_round_gives_way():
    # The frame's state includes where it is, so the two looks a round alternated between two
    # states, and a look counted as a spin round only from the state of the look before: the
    # waiter ran its 100,000 steps alone ("runaway"), and Peterson's lock took 16,000
    # executions instead of 60.
    p = load(TWICE_SOURCE)
    result = frontrun.explore_dpor(setup=lambda: State(state="pending", outcome=None),
                                   threads=[p.wait_ready_or_failed, p.finish],
                                   invariant=lambda s: s.outcome == "ready", max_executions=100)
    assert result.property_holds is True, result.explanation
    assert result.stats["spins_cut"] >= 1
    result = frontrun.explore_dpor(setup=lambda: State(flag=[False, False], turn=0, counter=0),
                                   threads=[p.peterson(0), p.peterson(1)],
                                   invariant=lambda s: s.counter == 2, max_executions=500)
    assert result.property_holds is True, result.inconclusive_reason
    assert result.num_explored <= 100


NOTING = load(
    """
    import tracemalloc

    traced = []

    def spin_noting(s):
        while not s.ready:
            traced.append(tracemalloc.is_tracing())

    def count_noting(s):
        traced.append(tracemalloc.is_tracing())
        s.data += 1
    """
)


def test_a_runaways_replay_does_not_trace_allocations_and_a_races_does():
    # The replay that explains a failure traces allocations to say where objects were made; a
    # runaway's replay goes to the step limit, which that made seven times slower.
    def fresh():
        NOTING.traced.clear()  # what is left is the last execution's: the replay's
        return setup()

    result = frontrun.explore_dpor(setup=fresh, threads=[PROG.write_data, NOTING.spin_noting],
                                   invariant=lambda s: True, max_steps=300)
    assert result.failure_kind == "runaway"
    assert NOTING.traced and not any(NOTING.traced)
    result = frontrun.explore_dpor(setup=fresh, threads=[NOTING.count_noting, NOTING.count_noting],
                                   invariant=lambda s: s.data == 2)
    assert result.failure_kind == "invariant"
    assert True in NOTING.traced
