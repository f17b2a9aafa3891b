"""When timed waits time out: only when nothing else can run (default), or at any point while
they wait (``timeouts="any_time"``), which finds code that ignores a wait's result."""

import datetime
import queue
import re
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from dpor_testutil import CLOCK_PROGRAM, State, load  # noqa: E402

import frontrun  # noqa: E402

_REAL_MONOTONIC = time.monotonic

PROG = load(
    """
    import queue
    import threading

    def produce(s):
        s.data = 1
        s.event.set()

    def consume_ignoring_the_result(s):
        s.event.wait(timeout=0.5)
        s.seen = s.data

    def consume_checking_the_result(s):
        if not s.event.wait(timeout=0.5):
            s.event.wait()
        s.seen = s.data

    def poll(s):
        while not s.event.wait(0.01):
            pass
        s.seen = s.data

    def hold_briefly(s):
        with s.lock:
            s.n = s.n + 1

    def acquire_or_go_ahead(s):
        if s.lock.acquire(timeout=0.05):
            try:
                s.n = s.n + 1
            finally:
                s.lock.release()
        else:
            s.n = s.n + 1

    def work(s):
        s.data = 42

    def join_briefly(s):
        w = threading.Thread(target=work, args=(s,))
        w.start()
        w.join(timeout=1.0)
        s.seen = s.data

    def join_until_done(s):
        w = threading.Thread(target=work, args=(s,))
        w.start()
        w.join(timeout=1.0)
        if w.is_alive():
            w.join()
        s.seen = s.data

    def wait_for_joiner(s):
        s.event.wait()

    def join_then_release(s):
        w = threading.Thread(target=wait_for_joiner, args=(s,))
        w.start()
        w.join(timeout=0.5)
        s.seen = w.is_alive()
        s.event.set()
        w.join()

    def put(s):
        s.q.put("job")

    def get_once(s):
        s.seen = s.q.get(timeout=0.5)

    def get_until_there(s):
        while True:
            try:
                s.seen = s.q.get(timeout=0.5)
                return
            except queue.Empty:
                continue

    def notify_ready(s):
        with s.cond:
            s.ready = True
            s.cond.notify()

    def wait_once(s):
        with s.cond:
            if not s.ready:
                s.cond.wait(timeout=1.0)
            s.seen = s.ready

    def wait_for_ready(s):
        with s.cond:
            if not s.cond.wait_for(lambda: s.ready, timeout=1.0):
                s.cond.wait_for(lambda: s.ready)
            s.seen = s.ready

    def fire(s):
        s.fired = True

    def start_and_cancel_timer(s):
        t = threading.Timer(5.0, fire, args=(s,))
        t.start()
        t.cancel()
        t.join()

    def never_set(s):
        if s.data:
            s.event.set()
    """,
    name="dpor_timeouts_prog",
)


def events():
    return State(event=threading.Event(), data=None, seen="unset")


def counters():
    return State(lock=threading.Lock(), n=0)


def for_data():
    return State(data=None, seen="unset")


def queues():
    return State(q=queue.Queue(), seen=None)


def conditions():
    return State(cond=threading.Condition(), ready=False, seen=None)


def timers():
    return State(fired=False)


def explore(setup, threads, invariant, **kw):
    return frontrun.explore_dpor(setup, threads, invariant, timeout=60, **kw)


def fails_only_with_early_timeouts(setup, threads, invariant, kind, *lines):
    """Holds by default; fails with ``timeouts="any_time"``, and the replayed counterexample
    (which says how timeouts go) fails the same way. Returns the failing result."""
    assert explore(setup, threads, invariant).property_holds is True
    result = explore(setup, threads, invariant, timeouts="any_time")
    assert result.property_holds is False, result.inconclusive_reason
    assert result.failure_kind == kind, result.explanation
    assert 'Timed out (timeouts="any_time"' in result.explanation
    for line in lines:
        assert line in result.explanation, result.explanation
    assert result.counterexample.startswith("timeouts=any_time;")
    again = frontrun.replay(result.counterexample, setup, threads, invariant)
    assert (again.property_holds, again.failure_kind) == (False, kind), again.inconclusive_reason
    return result


def test_an_event_wait_whose_result_is_ignored():
    result = fails_only_with_early_timeouts(
        events, [PROG.produce, PROG.consume_ignoring_the_result], lambda s: s.seen == 1, "invariant",
        "s.event.wait(timeout=0.5)", "s.seen = s.data",
    )
    assert "  thread 1  wait " in result.explanation


def test_a_timed_acquire_that_goes_ahead_without_the_lock():
    fails_only_with_early_timeouts(
        counters, [PROG.hold_briefly, PROG.acquire_or_go_ahead], lambda s: s.n == 2, "invariant",
        "acquire dpor_timeouts_prog.py",
    )


def test_a_join_with_a_timeout_that_does_not_check_the_thread_ended():
    fails_only_with_early_timeouts(
        for_data, [PROG.join_briefly], lambda s: s.seen == 42, "invariant", "w.join(timeout=1.0)",
    )


def test_a_queue_get_with_a_timeout_that_does_not_handle_empty():
    fails_only_with_early_timeouts(queues, [PROG.put, PROG.get_once], lambda s: s.seen == "job", "exception", "Empty")


def test_a_condition_wait_without_a_predicate_loop():
    fails_only_with_early_timeouts(
        conditions, [PROG.notify_ready, PROG.wait_once], lambda s: s.seen is True, "invariant",
        "s.cond.wait(timeout=1.0)",
    )


def test_a_timer_cancelled_after_it_started_may_have_fired():
    fails_only_with_early_timeouts(timers, [PROG.start_and_cancel_timer], lambda s: not s.fired, "invariant")


@pytest.mark.parametrize(
    "setup, threads, invariant",
    [
        (events, ["produce", "consume_checking_the_result"], lambda s: s.seen == 1),
        (events, ["produce", "poll"], lambda s: s.seen == 1),
        (for_data, ["join_until_done"], lambda s: s.seen == 42),
        (queues, ["put", "get_until_there"], lambda s: s.seen == "job"),
        (conditions, ["notify_ready", "wait_for_ready"], lambda s: s.seen is True),
    ],
    ids=["event-checked", "event-polled", "join-checked", "queue-retried", "wait-for-predicate"],
)
def test_code_that_handles_a_timeout_holds_with_early_timeouts(setup, threads, invariant):
    result = explore(setup, [getattr(PROG, t) for t in threads], invariant, timeouts="any_time")
    assert result.property_holds is True, result.explanation or result.inconclusive_reason


def test_early_timeouts_explore_both_outcomes_of_a_wait():
    seen = set()

    def consume(s):
        seen.add(s.event.wait(timeout=0.5))

    assert explore(events, [PROG.produce, consume], None).property_holds is True
    assert seen == {True}
    seen.clear()
    assert explore(events, [PROG.produce, consume], None, timeouts="any_time").property_holds is True
    assert seen == {True, False}


def test_a_timeout_that_fired_when_nothing_else_could_run_is_explained():
    result = explore(events, [PROG.never_set, PROG.consume_ignoring_the_result], lambda s: s.seen == 1)
    assert result.property_holds is False
    assert "Timed out (when no other thread could run):" in result.explanation
    assert "  thread 1  wait " in result.explanation and "s.event.wait(timeout=0.5)" in result.explanation
    assert not result.counterexample.startswith("timeouts=")


@pytest.mark.parametrize("timeouts", ["when_stuck", "any_time"])
def test_a_timed_join_of_a_thread_that_waits_for_the_joiner_times_out(timeouts):
    # It used to wait for the thread whatever its timeout: a deadlock no real run has.
    result = explore(events, [PROG.join_then_release], lambda s: s.seen is True, timeouts=timeouts)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason


POLLING = load(
    """
    import queue

    def drain(s):
        while True:
            try:
                s.got.append(s.q.get(timeout=0.1))
            except queue.Empty:
                if s.stop.is_set():
                    return

    def feed(s):
        s.q.put(1)
        s.stop.set()
    """
)


def test_a_polling_loops_time_outs_are_one_line():
    # Each time-out of the loop's get was a line of its own: some fifty identical lines.
    result = frontrun.explore_dpor(lambda: State(q=queue.Queue(), stop=threading.Event(), got=[]),
                                   [POLLING.feed, POLLING.drain], lambda s: s.got == [1], timeouts="any_time",
                                   timeout=60)
    assert result.property_holds is False, result.explanation
    timed_out = result.explanation.split("Timed out (")[1].splitlines()[1:]
    polls = [line for line in timed_out if "s.q.get(timeout=0.1)" in line]
    assert len(polls) == 1 and re.search(r"\(\d+ times in a row\)$", polls[0]), result.explanation


def test_an_unknown_timeouts_mode_is_refused():
    with pytest.raises(ValueError, match="timeouts must be 'when_stuck' or 'any_time'"):
        frontrun.explore_dpor(events, [PROG.produce], timeouts="sometimes")


@pytest.mark.parametrize("option, value, error, message", [
    ("max_executions", "10", TypeError, "max_executions must be an int or None, not str '10'"),
    ("max_executions", 0, ValueError, "max_executions must be at least 1, not 0"),
    ("preemption_bound", -1, ValueError, "preemption_bound must be at least 0, not -1"),
    ("preemption_bound", 1.5, TypeError, "preemption_bound must be an int or None, not float 1.5"),
    ("max_steps", None, TypeError, "max_steps must be an int, not NoneType None"),
    ("max_steps", True, TypeError, "max_steps must be an int, not bool True"),
    ("timeout", "5", TypeError, "timeout must be a number of seconds or None, not str '5'"),
    ("timeout", -1, ValueError, "timeout must be more than 0 seconds, not -1"),
])
def test_a_bad_option_value_is_refused_by_its_name(option, value, error, message):
    # They failed deep inside with "unsupported operand type(s) for -: 'str' and 'int'" or "can't
    # convert negative int to unsigned", naming no option; a timeout of -1 searched nothing.
    with pytest.raises(error, match=re.escape(message)):
        frontrun.explore_dpor(events, [PROG.produce], **{option: value})


def test_a_runaway_names_the_step_limit_it_ran_past():
    result = frontrun.explore_dpor(events, [PROG.produce, PROG.consume_checking_the_result], max_steps=1)
    assert result.failure_kind == "runaway" and "step limit (max_steps=1)" in result.explanation, result.explanation


EQUAL_DEADLINES = load(
    """
    import threading

    def wait_a_little(s):
        threading.Event().wait(0.05)

    def made_then_started(s):
        t = threading.Thread(target=wait_a_little, args=(s,), daemon=False)
        s.x = 1
        t.start()

    def made_and_started(s):
        s.x = 2
        threading.Thread(target=wait_a_little, args=(s,), daemon=False).start()
    """
)


def test_equal_deadlines_time_out_in_the_same_order_in_a_replay():
    # Two waits with one deadline. The tie once went to the lower thread number, which the
    # search and a replay did not agree on: the replay of the race left its schedule, and the
    # explanation was empty.
    threads = [EQUAL_DEADLINES.made_then_started, EQUAL_DEADLINES.made_and_started]
    setup = lambda: State(x=0)  # noqa: E731
    result = frontrun.explore_dpor(setup, threads, lambda s: s.x != 1, timeout=60)
    assert result.property_holds is False and result.failure_kind == "invariant"
    assert "Race on State.x" in result.explanation, result.explanation
    again = frontrun.replay(result.counterexample, setup, threads, lambda s: s.x != 1)
    assert again.property_holds is False and again.failure_kind == "invariant", again.inconclusive_reason


TIES = load(
    """
    import threading
    import time

    def wait_then_set_second(s):
        s.a = s.first.wait(0.5)
        if not s.a:
            s.second.set()

    def wait_then_set_first(s):
        s.b = s.second.wait(0.5)
        if not s.b:
            s.first.set()

    def wait_half_a_second(s):
        threading.Event().wait(0.5)
        s.ends.append(time.monotonic() - s.start)
    """
)


def test_waits_with_one_deadline_end_in_every_order():
    # Each thread waits half a second for an event, then sets the other's. In a real run the
    # one begun a microsecond sooner times out sooner, and may set the other's in time: three
    # outcomes. The wait begun first used to time out alone, and the other was always set.
    outcomes = set()

    def record(s):
        outcomes.add((s.a, s.b))
        return True

    setup = lambda: State(first=threading.Event(), second=threading.Event(), a=None, b=None)  # noqa: E731
    threads = [TIES.wait_then_set_second, TIES.wait_then_set_first]
    for order in (threads, threads[::-1]):
        outcomes.clear()
        result = explore(setup, order, record, stop_on_first=False)
        assert result.property_holds is True and result.stats["complete"]
        assert outcomes == {(False, False), (False, True), (True, False)}


def test_waits_that_time_out_together_move_the_clock_once():
    # Each moved it on by its timeout: the second read 1 s.
    ends = set()

    def record(s):
        ends.update(s.ends)
        return True

    setup = lambda: State(start=time.monotonic(), ends=[])  # noqa: E731
    result = explore(setup, [TIES.wait_half_a_second] * 2, record, stop_on_first=False)
    assert result.property_holds is True and ends and all(0.5 < end < 0.501 for end in ends), ends


CLOCK = load(CLOCK_PROGRAM)


def test_the_clock_starts_every_execution_at_the_same_reading():
    # What a wait has left is worked out from the clock (`Condition.wait_for`, `as_completed`):
    # with real time in it, it differed from one execution to the next.
    seen = set()

    def invariant(s):
        seen.add((s.started, s.first, s.second - s.first, s.wall - s.first))
        return True

    setup = lambda: State(started=time.monotonic(), first=None, second=None, wall=None, x=0)  # noqa: E731
    result = frontrun.explore_dpor(setup, [CLOCK.read_sleep_read, CLOCK.write], invariant, stop_on_first=False)
    assert result.property_holds is True and result.num_explored == 2
    assert len(seen) == 1, seen
    ((started, first, slept, wall_ahead),) = seen
    assert first > started and slept == pytest.approx(1.0, abs=1e-3)
    assert wall_ahead == pytest.approx(time.time() - time.monotonic(), abs=60)
    # Outside an exploration, the real clock.
    assert time.monotonic is _REAL_MONOTONIC


def test_waits_that_work_out_their_time_left_repeat_their_schedules():
    from concurrent.futures import Future

    setup = lambda: State(fs=[Future(), Future()], seen=[])  # noqa: E731
    for _ in range(3):
        result = frontrun.explore_dpor(setup, [CLOCK.wait_twice_for_either] * 2 + [CLOCK.finish_one], None, timeout=120)
        assert result.property_holds is True, result.inconclusive_reason


SIDE_BY_SIDE = load(
    """
    import threading
    import time

    def nap_between_readings(s):
        first = time.monotonic()
        time.sleep(1.0)
        s.gap = time.monotonic() - first

    def nap_long(s):
        time.sleep(10.0)

    def stamp_after_a_nap(s):
        time.sleep(5.0)
        s.stamp = time.monotonic()

    def age_of_the_stamp(s):
        stamp = s.stamp
        if stamp is not None:
            s.age = time.monotonic() - stamp

    def nap_then_wait_a_second(s):
        time.sleep(10.0)
        threading.Event().wait(1.0)
        s.order.append("nap, then 1 s")

    def wait_five_seconds(s):
        threading.Event().wait(5.0)
        s.order.append("5 s")

    def wait_a_tenth(s):
        s.got = s.ev.wait(0.1)

    def nap_then_set(s):
        time.sleep(1.0)
        s.ev.set()

    def hold_while_napping(s):
        with s.lock:
            s.held.set()
            time.sleep(2.0)

    def try_for_half_a_second(s):
        s.held.wait()
        s.got = s.lock.acquire(timeout=0.5)
        if s.got:
            s.lock.release()

    def beat_until_stopped(s):
        while not s.stop.wait(0.5):
            s.beats += 1

    def stop_after_a_nap(s):
        time.sleep(1.2)
        s.stop.set()
    """
)


def test_threads_sleeping_side_by_side_do_not_add_up_their_sleeps():
    # One clock for all the threads moved on by each one's sleeps: a thread that slept 1 s
    # beside one that slept 10 s saw 11 s go by.
    seen = set()

    def record(s):
        seen.add(round(s.gap, 3))
        return True

    result = explore(lambda: State(gap=None), [SIDE_BY_SIDE.nap_between_readings, SIDE_BY_SIDE.nap_long], record,
                     stop_on_first=False)
    assert result.property_holds is True and seen == {1.0}, seen
    # A thread that has seen another's reading is no earlier than that reading.
    seen.clear()

    def record_age(s):
        seen.add(s.age)
        return True

    result = explore(lambda: State(stamp=None, age=None), [SIDE_BY_SIDE.stamp_after_a_nap,
                                                           SIDE_BY_SIDE.age_of_the_stamp], record_age,
                     stop_on_first=False)
    assert result.property_holds is True and None in seen and len(seen) == 2, seen
    assert all(age is None or 0 <= age < 0.001 for age in seen), seen


def test_a_deadline_counts_from_the_waiters_own_time():
    # The wait of a thread that slept 10 s first ends at 11 s, after another's 5 s wait (it
    # ended at 1 s on a clock that only timeouts moved).
    orders = set()

    def record(s):
        orders.add(tuple(s.order))
        return True

    result = explore(lambda: State(order=[]), [SIDE_BY_SIDE.nap_then_wait_a_second, SIDE_BY_SIDE.wait_five_seconds],
                     record, stop_on_first=False)
    assert result.property_holds is True and orders == {("5 s", "nap, then 1 s")}, orders


@pytest.mark.parametrize("case", ["event", "lock"])
def test_a_timed_wait_times_out_before_a_sleep_that_ends_after_it(case):
    # A sleeping thread could always run, so the wait timed out only once it had woken and set
    # the event (or let go of the lock): `ev.wait(0.1)` beside `sleep(1.0); ev.set()` returned
    # True after 1 s, and `acquire(timeout=0.5)` of a lock held across `sleep(2.0)` got it.
    # The ends of sleeps and timeouts come in the order of their times.
    if case == "event":
        setup = lambda: State(ev=threading.Event(), got=None)  # noqa: E731
        threads = [SIDE_BY_SIDE.wait_a_tenth, SIDE_BY_SIDE.nap_then_set]
    else:
        setup = lambda: State(lock=threading.Lock(), held=threading.Event(), got=None)  # noqa: E731
        threads = [SIDE_BY_SIDE.hold_while_napping, SIDE_BY_SIDE.try_for_half_a_second]
    result = explore(setup, threads, lambda s: s.got is False, stop_on_first=False)
    assert result.property_holds is True and result.stats["complete"], result.explanation


def test_the_other_clocks_are_modelled_too():
    # `monotonic_ns()`, `time_ns()` and `perf_counter()` read real time: across `sleep(2.0)` they
    # moved a fraction of a millisecond, and a deadline poll on `monotonic_ns()` ran to the
    # step limit.
    p = load("""
        import time

        def read_around_a_nap(s):
            before = (time.monotonic_ns(), time.time_ns(), time.perf_counter(), time.perf_counter_ns())
            time.sleep(2.0)
            after = (time.monotonic_ns(), time.time_ns(), time.perf_counter(), time.perf_counter_ns())
            s.moved = [b - a for a, b in zip(before, after)]

        def poll_until_a_deadline(s):
            deadline = time.monotonic_ns() + 1_000_000_000
            while time.monotonic_ns() < deadline:
                s.polls += 1
                time.sleep(0.1)
        """)
    seen = []
    result = explore(lambda: State(moved=None), [p.read_around_a_nap], lambda s: seen.append(s.moved) or True)
    assert result.property_holds is True
    ns, wall_ns, seconds, perf_ns = seen[0]
    assert [round(ns / 1e9, 3), round(wall_ns / 1e9, 3), round(seconds, 3), round(perf_ns / 1e9, 3)] == [2.0] * 4
    result = explore(lambda: State(polls=0), [p.poll_until_a_deadline], lambda s: 9 <= s.polls <= 11)
    assert result.property_holds is True, result.explanation


CALENDAR = load(
    """
    import datetime
    import time
    from datetime import date, datetime as DT, timedelta

    CLOCKS = [
        lambda: time.clock_gettime(time.CLOCK_MONOTONIC),
        lambda: time.clock_gettime_ns(time.CLOCK_REALTIME) / 1e9,
        lambda: datetime.datetime.now().timestamp(),
        lambda: DT.now(datetime.timezone.utc).timestamp(),
        lambda: time.mktime(time.localtime()),
        lambda: time.mktime(time.strptime(time.ctime())),
        lambda: time.mktime(time.strptime(time.asctime())),
        lambda: time.mktime(time.strptime(time.strftime("%c"))),
        lambda: time.mktime(time.gmtime()) - time.mktime(time.gmtime(0)),
    ]

    def read_around_a_nap(s):
        before = [clock() for clock in CLOCKS]
        time.sleep(2 * 86400.0)
        s.moved = [round(clock() - b) for clock, b in zip(CLOCKS, before)]
        s.days = (date.today() - s.today).days

    class Token:
        def __init__(self):
            self.expires = DT.now() + timedelta(seconds=1)
            self.refreshes = 0

        def get(self):
            if DT.now() >= self.expires:  # check-then-act, unlocked
                self.refreshes += 1
                self.expires = DT.now() + timedelta(seconds=1)

    def refresh_after_a_nap(token):
        time.sleep(2.0)
        token.get()
    """
)


def test_the_calendar_clocks_are_modelled_too():
    # `datetime.now()`, `date.today()`, `time.localtime()`, `ctime()`, `clock_gettime()` read
    # real time: a token that expires after a sleep never expired, and its refresh race was
    # missed. (Two days' sleep: today() moves by two, whatever the time of day.)
    seen = []
    result = explore(lambda: State(moved=None, today=datetime.date.today(), days=None),
                     [CALENDAR.read_around_a_nap], lambda s: seen.append((s.moved, s.days)) or True)
    assert result.property_holds is True
    assert seen[0] == ([2 * 86400] * len(CALENDAR.CLOCKS), 2)
    result = explore(CALENDAR.Token, [CALENDAR.refresh_after_a_nap], lambda t: t.refreshes == 1)
    assert result.property_holds is True, result.explanation
    result = explore(CALENDAR.Token, [CALENDAR.refresh_after_a_nap] * 2, lambda t: t.refreshes == 1)
    assert result.property_holds is False
    assert "Token.expires" in result.explanation
    # Outside the exploration the C methods are back.
    assert all(type(cls.__dict__[name]) is not classmethod
               for cls, name in [(datetime.datetime, "now"), (datetime.datetime, "utcnow"), (datetime.date, "today")])
    assert datetime.datetime.now().year >= 2026 and time.localtime is CALENDAR.time.localtime


def test_a_heartbeat_beats_as_often_as_its_interval_fits_in_the_others_sleep():
    # `while not stop.wait(0.5)` beside `sleep(1.2); stop.set()`: the wait never timed out while
    # the sleeper could run, so the heartbeat never beat (a real run beats twice).
    beats = set()

    def record(s):
        beats.add(s.beats)
        return True

    result = explore(lambda: State(stop=threading.Event(), beats=0),
                     [SIDE_BY_SIDE.beat_until_stopped, SIDE_BY_SIDE.stop_after_a_nap], record, stop_on_first=False)
    assert result.property_holds is True and result.stats["complete"]
    assert beats == {2}, beats


STAMPED = load(
    """
    import time

    def stamp(s):
        s.events[time.time_ns()] = "a"
        s.keys.append(f"sample-{time.time()}")
    """
)


def test_threads_that_see_nothing_of_each_other_read_different_times():
    """Two threads that share nothing are at the same modelled time, but read it apart, as
    threads running at once would: a timestamp as an id does not collide."""
    result = frontrun.explore_dpor(lambda: State(events={}, keys=[]), [STAMPED.stamp] * 3,
                                   lambda s: len(s.events) == 3 and len(set(s.keys)) == 3)
    assert result.property_holds is True, result.explanation


LOCKED_ROUNDS = load(
    """
    def rounds(s):
        for _ in range(3):
            with s.lock:
                s.n += 1
    """
)


def test_a_search_out_of_time_says_how_far_the_bounded_searches_got():
    # It said only "the budget ran out": not that the searches with one and two preemptions
    # had found nothing, or which of them it ran out in.
    result = frontrun.explore_dpor(lambda: State(lock=threading.Lock(), n=0), [LOCKED_ROUNDS.rounds] * 4,
                                   lambda s: s.n == 12, timeout=3)
    reason = result.inconclusive_reason
    assert result.property_holds is None and reason.startswith("timeout: the 3s budget ran out"), reason
    if ", during the search with at most 1 preemption" not in reason:
        assert re.search(r"the search(es)? with at most 1( and 2)? preemptions before it ran \d+ executions and found "
                         r"no failure$", reason), reason


FIRE_ONCE = load(
    """
    def fire_on_timeout(s):
        s.event.wait(0.5)
        if not s.event.is_set():
            s.fired = True
        s.event.set()

    def cancel(s):
        if not s.fired:
            s.event.set()
            s.cancelled = True
    """
)


def test_an_event_set_is_its_step_where_the_flag_changes():
    # Event.set()'s step came before it took the event's lock, and the flag changed only after:
    # another thread's is_set() between the two read False, yet the explanation listed the set
    # first and showed that race instead of the one that failed (on `fired`).
    result = frontrun.explore_dpor(lambda: State(event=threading.Event(), fired=False, cancelled=False),
                                   [FIRE_ONCE.cancel, FIRE_ONCE.fire_on_timeout],
                                   lambda s: not (s.fired and s.cancelled), timeouts="any_time")
    assert result.property_holds is False
    lines = result.explanation.splitlines()
    assert lines[0].startswith("Race on State.fired (object #1 = state"), result.explanation
    assert [line.split()[:3] for line in lines[1:3]] == [["thread", "0", "read"], ["thread", "1", "write"]], lines
    assert "Race on Event" not in result.explanation
