"""Futures and semaphores are modelled by their state, not by their conditions' locks.

``concurrent.futures.Future``: a look (``result``, ``exception``, ``done``, ``cancelled``,
``running``) is one step that reads whether the future is done (or started); ``result()`` waits
until it is. ``threading.Semaphore``: a queue of tokens, an acquire takes the oldest. Each test
checks the exact executions a search takes, what the threads see, or both.
"""

import linecache
import re
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from dpor_testutil import CLOCK_PROGRAM, State, load, run_in_new_process  # noqa: E402

import frontrun  # noqa: E402

PROG = load(
    """
    import queue
    import time
    from concurrent.futures import (FIRST_COMPLETED, CancelledError, Future, ThreadPoolExecutor, TimeoutError,
                                    as_completed, wait)

    def set_one(s):
        s.f.set_result(1)

    def run_and_set(s):
        if s.f.set_running_or_notify_cancel():
            s.f.set_result(2)

    def fail(s):
        s.f.set_exception(KeyError("k"))

    def get(s):
        s.got = s.f.result()

    def get_error(s):
        try:
            s.f.result()
        except KeyError as e:
            s.got = ("raised", e.args)
        s.exc = s.f.exception()

    def look_done(s):
        s.got = s.f.done()

    def cancel(s):
        s.cancelled = s.f.cancel()

    def start(s):
        s.started = s.f.set_running_or_notify_cancel()

    def get_in_time(s):
        began = time.monotonic()
        try:
            s.got = s.f.result(timeout=5)
        except TimeoutError:
            s.got = "timed out"
        s.waited = time.monotonic() - began

    def get_cancelled(s):
        try:
            s.f.result()
        except CancelledError:
            s.got = "cancelled"

    def add_callback(s):
        s.f.add_done_callback(lambda f: s.calls.append(f.result()))

    def wait_for_first_error(s):
        from concurrent.futures import FIRST_EXCEPTION, wait

        done, pending = wait([s.f, s.g], return_when=FIRST_EXCEPTION)
        s.got = (len(done), len(pending), s.f in done)

    def set_first(s):
        s.fs[0].set_result(0)

    def set_second(s):
        s.fs[1].set_result(1)

    def yield_as_completed(s):
        try:
            for f in as_completed(s.fs, timeout=0.5):
                s.order.append(f.result())
        except TimeoutError:
            s.order.append("timed out")

    def wait_for_first(s):
        done, _ = wait(s.fs, return_when=FIRST_COMPLETED)
        s.order = sorted(f.result() for f in done)

    def wait_for_all(s):
        done, not_done = wait(s.fs, timeout=0.5)
        s.order = (tuple(sorted(f.result() for f in done)), len(not_done))

    def set_both(s):
        s.fs[0].set_result(0)
        s.fs[1].set_result(1)

    def wait_no_time(s):
        s.order = tuple(sorted(f.result() for f in wait(s.fs, timeout=0).done))

    def wait_for_no_futures(s):
        try:
            wait([1, 2])
        except Exception as e:
            s.got = type(e).__name__

    def cancel_then_wait(s):
        s.f.cancel()
        s.got = len(wait([s.f], timeout=0.5).done)

    def pool_waits(s):
        with ThreadPoolExecutor(2) as ex:
            fs = [ex.submit(task, s) for _ in range(2)]
            done, _ = wait(fs)
        s.order = len(done)

    def pool_results(s):
        with ThreadPoolExecutor(2) as ex:
            fs = [ex.submit(task, s) for _ in range(2)]
            for f in fs:
                f.result()
        s.order = 2

    def pool_as_completed(s):
        with ThreadPoolExecutor(2) as ex:
            fs = [ex.submit(task_numbered, s, i) for i in range(2)]
            s.order = [f.result() for f in as_completed(fs)]

    def task_numbered(s, i):
        with s.lock:
            s.x += 1
        return i

    def guarded_increment(s):
        with s.sem:
            v = s.x
            s.x = v + 1

    def release(s):
        s.sem.release()

    def take(s):
        s.got = s.sem.acquire()

    def try_take(s):
        s.got = s.sem.acquire(timeout=0)

    def bad_calls(s):
        for call in (lambda: s.sem.acquire(False, 1), lambda: s.sem.release(0)):
            try:
                call()
            except ValueError as e:
                s.errors.append(str(e))

    def release_twice(s):
        s.sem.release()
        s.sem.release()

    def take_in_time_then_give_two(s):
        s.first = s.sem.acquire(timeout=0.5)
        s.sem.release()
        s.sem.release()

    def take_in_time(s):
        s.second = s.sem.acquire(timeout=0.5)

    def get_in_time_then_put_two(s):
        try:
            s.first = s.q.get(timeout=0.5)
        except queue.Empty:
            s.first = False
        s.q.put(1)
        s.q.put(2)

    def get_in_time_from_queue(s):
        try:
            s.second = s.q.get(timeout=0.5)
        except queue.Empty:
            s.second = False

    def task(s):
        with s.lock:
            s.x += 1

    def three_tasks_two_workers(s):
        with ThreadPoolExecutor(2) as ex:
            for f in [ex.submit(task, s) for _ in range(3)]:
                f.result()

    def own_pool(s):
        mine = []
        with ThreadPoolExecutor(1) as ex:
            ex.submit(mine.append, 1)
            ex.submit(mine.append, 2)
        s.ran.append(mine)
    """,
    name="dpor_futures_prog",
)


def explore(setup, threads, invariant=None, **kw):
    return frontrun.explore_dpor(setup, threads, invariant, timeout=120, stop_on_first=False, **kw)


def outcomes(setup, threads, look, **kw):
    """Every outcome ``look(state)`` of a complete search, and the result."""
    seen = set()

    def invariant(s):
        seen.add(look(s))
        return True

    result = explore(setup, threads, invariant, **kw)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
    return seen, result


def future_state(**kw):
    return lambda: State(f=Future(), got=None, **kw)


# ---------------------------------------------------------------------------- futures


@pytest.mark.parametrize("setter", ["set_one", "run_and_set"])
def test_result_waits_for_the_set_in_one_execution(setter):
    # With the lock, the owner's look came before, between or after the worker's two changes:
    # three executions that all see the same result.
    seen, result = outcomes(future_state(), [PROG.get, getattr(PROG, setter)], lambda s: s.got)
    assert seen == {1 if setter == "set_one" else 2}
    assert result.num_explored == 1


def test_done_is_explored_before_and_after_the_set():
    seen, result = outcomes(future_state(), [PROG.look_done, PROG.set_one], lambda s: s.got)
    assert seen == {False, True}
    assert result.num_explored == 2


def test_start_and_done_look_commute():
    # Starting a future does not change whether it is done.
    seen, result = outcomes(future_state(started=None), [PROG.look_done, PROG.start], lambda s: (s.got, s.started))
    assert seen == {(False, True)}
    assert result.num_explored == 1


def test_cancel_races_with_start():
    seen, result = outcomes(future_state(started=None, cancelled=None), [PROG.cancel, PROG.start],
                            lambda s: (s.cancelled, s.started, s.f.cancelled()))
    assert seen == {(True, False, True), (False, True, False)}
    assert result.num_explored == 2


def test_a_cancelled_future_raises_in_its_waiter():
    seen, _ = outcomes(future_state(cancelled=None), [PROG.get_cancelled, PROG.cancel], lambda s: (s.got, s.cancelled))
    assert seen == {("cancelled", True)}


def test_an_exception_set_is_raised_by_result_and_returned_by_exception():
    seen, _ = outcomes(future_state(exc=None), [PROG.get_error, PROG.fail],
                       lambda s: (s.got, type(s.exc).__name__, s.exc.args))
    assert seen == {(("raised", ("k",)), "KeyError", ("k",))}


def test_a_timed_result_times_out_only_when_nothing_else_can_run():
    seen, _ = outcomes(future_state(waited=None), [PROG.get_in_time, PROG.set_one], lambda s: s.got)
    assert seen == {1}
    # Alone, it times out on the modelled clock, which moved on by its timeout.
    seen, _ = outcomes(future_state(waited=None), [PROG.get_in_time], lambda s: (s.got, s.waited >= 5))
    assert seen == {("timed out", True)}


def test_a_result_no_one_sets_is_a_deadlock_naming_the_future():
    result = explore(future_state(), [PROG.get])
    assert result.property_holds is False and result.failure_kind == "deadlock"
    assert "waits for the result of the future state.f" in result.explanation, result.explanation


def test_a_callback_runs_once_whether_added_before_or_after_the_set():
    setup = lambda: State(f=Future(), calls=[])  # noqa: E731
    seen, result = outcomes(setup, [PROG.add_callback, PROG.set_one], lambda s: tuple(s.calls))
    assert seen == {(1,)}
    assert result.num_explored == 2


class Logged(Future):
    def result(self, timeout=None):
        return ("logged", super().result(timeout))


@pytest.mark.parametrize("other", [Future, Logged], ids=["futures", "with-a-subclass"])
def test_wait_for_the_first_error_returns_once_one_fails(other):
    # wait() installs its waiter holding every future's lock and looks at a done future's
    # exception (a step, without the lock) while it holds them; the worker's change takes the lock.
    setup = lambda: State(f=Future(), g=other(), got=None)  # noqa: E731
    seen, _ = outcomes(setup, [PROG.wait_for_first_error, PROG.fail], lambda s: s.got)
    assert seen == {(1, 1, True)}


def test_a_subclass_that_overrides_result_keeps_the_lock():
    seen, result = outcomes(lambda: State(f=Logged(), got=None), [PROG.get, PROG.set_one], lambda s: s.got)
    assert seen == {("logged", 1)}
    assert result.num_explored > 1  # its condition's lock, taken in both orders


def test_futures_are_themselves_again_after_the_search():
    explore(future_state(), [PROG.get, PROG.set_one])
    f = Future()
    threading.Timer(0.01, f.set_result, (7,)).start()
    assert f.result(timeout=5) == 7
    assert Future.result.__module__ == "concurrent.futures._base"


# ---------------------------------------------------------------------------- wait() and as_completed()


def waiting_state():
    return State(fs=[Future(), Future()], order=[])


def test_as_completed_yields_in_the_order_the_futures_finish():
    seen, _ = outcomes(waiting_state, [PROG.yield_as_completed, PROG.set_first, PROG.set_second],
                       lambda s: tuple(s.order))
    assert seen == {(0, 1), (1, 0)}
    # One never finishes: the one that does comes first, then the time is up.
    seen, _ = outcomes(waiting_state, [PROG.yield_as_completed, PROG.set_second], lambda s: tuple(s.order))
    assert seen == {(1, "timed out")}


def test_wait_returns_what_is_done_when_it_returns():
    seen, _ = outcomes(waiting_state, [PROG.wait_for_first, PROG.set_first, PROG.set_second], lambda s: tuple(s.order))
    assert seen == {(0,), (1,), (0, 1)}
    seen, _ = outcomes(waiting_state, [PROG.wait_for_all, PROG.set_second], lambda s: s.order)
    assert seen == {((1,), 1)}


def test_wait_counts_what_finished_before_it_let_go_of_each_future():
    # concurrent.futures takes its waiter off the futures one by one: the second one, set after,
    # may be counted and the first not. (A fuzzer comparing with the original found it.)
    seen, _ = outcomes(waiting_state, [PROG.wait_no_time, PROG.set_both], lambda s: s.order)
    assert seen == {(), (0,), (0, 1), (1,)}


def test_a_cancelled_future_no_worker_saw_is_not_done_for_wait():
    # (As concurrent.futures has it: wait() counts it once set_running_or_notify_cancel ran.)
    seen, _ = outcomes(lambda: State(f=Future(), got=None), [PROG.cancel_then_wait], lambda s: s.got)
    assert seen == {0}
    # Started first, it is not cancelled and not done; told of its cancellation, it is done.
    seen, _ = outcomes(lambda: State(f=Future(), got=None, started=None), [PROG.cancel_then_wait, PROG.start],
                       lambda s: (s.got, s.started))
    assert seen == {(0, True), (1, False)}


def test_waiting_on_a_pool_costs_what_its_results_do():
    # wait() installed a waiter whose lock and event each finishing future took, and took every
    # future's lock to install and remove it: 2,116 executions on 3.12 (3.10: 409), against 136
    # (21) for result() on each.
    def setup():
        return State(x=0, lock=threading.Lock(), order=None)

    waited = explore(setup, [PROG.pool_waits], lambda s: s.x == 2 and s.order == 2)
    each = explore(setup, [PROG.pool_results], lambda s: s.x == 2)
    assert waited.property_holds is True and each.property_holds is True
    assert waited.num_explored == each.num_explored
    # as_completed: 6,004 (1,225) executions; both orders of the results.
    seen, completed = outcomes(setup, [PROG.pool_as_completed], lambda s: tuple(s.order))
    assert seen == {(0, 1), (1, 0)}
    assert completed.num_explored < 6 * each.num_explored, (completed.num_explored, each.num_explored)


def test_a_wait_no_one_ends_is_a_deadlock_naming_a_future():
    result = explore(waiting_state, [PROG.wait_for_first])
    assert result.property_holds is False and result.failure_kind == "deadlock"
    assert "waits in wait() or as_completed() for futures no other thread will set, among them the future state.fs[0]" \
        in result.explanation, result.explanation


def test_wait_for_what_is_not_a_future_fails_as_without_frontrun():
    from concurrent.futures import wait

    seen, _ = outcomes(lambda: State(got=None), [PROG.wait_for_no_futures], lambda s: s.got)
    with pytest.raises(Exception) as plain:
        wait([1, 2])
    assert seen == {type(plain.value).__name__}


def test_wait_and_as_completed_are_themselves_again_after_the_search():
    import concurrent.futures

    explore(waiting_state, [PROG.yield_as_completed, PROG.set_first, PROG.set_second])
    assert concurrent.futures.wait.__code__.co_filename.endswith("_base.py")
    assert concurrent.futures.as_completed.__code__.co_filename.endswith("_base.py")
    f = Future()
    threading.Timer(0.01, f.set_result, (7,)).start()
    assert [g.result() for g in concurrent.futures.as_completed([f], timeout=5)] == [7]


# ---------------------------------------------------------------------------- semaphores


@pytest.mark.parametrize("kind", ["Semaphore", "BoundedSemaphore"])
def test_a_semaphore_of_one_orders_two_holders(kind):
    setup = lambda: State(x=0, sem=getattr(threading, kind)(1))  # noqa: E731
    seen, result = outcomes(setup, [PROG.guarded_increment] * 2, lambda s: (s.x, s.sem._value))
    assert seen == {(2, 1)}
    assert result.num_explored == 2  # who takes the token first


def tokens(threads):
    """Every (what the take got, tokens left) of ``threads`` over a semaphore of none, and the result."""
    return outcomes(lambda: State(sem=threading.Semaphore(0), got=None), threads, lambda s: (s.got, s.sem._value))


def test_an_acquire_waits_for_the_release_in_one_execution():
    seen, result = tokens([PROG.take, PROG.release])
    assert seen == {(True, 0)}
    assert result.num_explored == 1


def test_a_try_is_explored_before_and_after_the_release():
    seen, result = tokens([PROG.try_take, PROG.release])
    assert seen == {(True, 0), (False, 1)}
    assert result.num_explored == 2


def test_a_take_depends_only_on_the_release_of_its_token():
    # Two releases, one take: the take waits for the first token and is not ordered against the
    # second release (with the lock: every order of the three).
    seen, result = tokens([PROG.take, PROG.release_twice])
    assert seen == {(True, 1)}
    assert result.num_explored == 1


def test_a_bounded_semaphore_released_too_often_raises():
    result = explore(lambda: State(sem=threading.BoundedSemaphore(1)), [PROG.release])
    assert result.property_holds is False and result.failure_kind == "exception"
    assert "ValueError: Semaphore released too many times" in result.explanation, result.explanation


def test_semaphore_arguments_are_checked_as_threading_does():
    seen, _ = outcomes(lambda: State(sem=threading.Semaphore(1), errors=[]), [PROG.bad_calls], lambda s: tuple(s.errors))
    assert seen == {("can't specify timeout for non-blocking acquire", "n must be one or more")}


def test_a_take_no_one_releases_is_a_deadlock_naming_the_semaphore():
    result = explore(lambda: State(sem=threading.Semaphore(0), got=None), [PROG.take])
    assert result.property_holds is False and result.failure_kind == "deadlock"
    assert "waits on the semaphore state.sem" in result.explanation, result.explanation
    assert "which no other thread will release" in result.explanation


@pytest.mark.parametrize("kind", ["semaphore", "queue"])
def test_either_of_two_waits_with_one_deadline_may_time_out_first(kind):
    # Both wait 0.5 s for what only the first gives out after its own wait. Each may time out
    # first: the second then finds nothing, or takes what the first gave. (Such a wait begins
    # when its thread arrives at its step, an order the search does not choose: the thread that
    # arrived first always timed out first, and (False, False) was never seen.)
    import queue

    if kind == "semaphore":
        setup = lambda: State(sem=threading.Semaphore(0), first=None, second=None)  # noqa: E731
        threads = [PROG.take_in_time_then_give_two, PROG.take_in_time]
    else:
        setup = lambda: State(q=queue.Queue(), first=None, second=None)  # noqa: E731
        threads = [PROG.get_in_time_then_put_two, PROG.get_in_time_from_queue]
    seen, _ = outcomes(setup, threads, lambda s: (s.first, bool(s.second)))
    assert seen == {(False, False), (False, True)}


# ---------------------------------------------------------------------------- pools


def test_a_pool_of_two_workers_running_three_locked_tasks():
    # The pool's futures and idle-worker semaphore were searched through their locks: 27,969
    # executions on 3.12.
    result = explore(lambda: State(x=0, lock=threading.Lock()), [PROG.three_tasks_two_workers], lambda s: s.x == 3)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
    assert result.num_explored < 6000, result.num_explored


def test_two_threads_each_with_their_own_pool():
    # Every pool's submit() holds a lock made at import across its queue put: another thread's
    # submit blocked on it for real, and each execution stalled.
    result = explore(lambda: State(ran=[]), [PROG.own_pool] * 2, lambda s: s.ran == [[1, 2], [1, 2]])
    assert result.property_holds is True, result.explanation or result.inconclusive_reason


def test_workers_started_between_two_searches_do_not_shift_setup_lock_names(tmp_path):
    # The second search needs a third worker, started before its first execution: the lock of
    # that worker's placeholder Thread took the name of setup()'s first lock in that execution
    # only, so the futures' locks had other names than in the next ones ("nondeterminism").
    # (A fresh process: the pool grows only once in a process.)
    script = """
        from concurrent.futures import Future
        r = frontrun.explore_dpor(lambda: State(x=0), [P.write] * 2, None)
        print(r.property_holds)
        setup = lambda: State(fs=[Future(), Future()], seen=[])
        r = frontrun.explore_dpor(setup, [P.wait_twice_for_either] * 2 + [P.finish_one], None, timeout=120)
        print(r.property_holds, r.inconclusive_reason)
        """
    done = run_in_new_process(tmp_path, CLOCK_PROGRAM, script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "None"], done.stdout


STARVED = load(
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    def waiter(s):
        s.ev.wait()

    def drive(s):
        with ThreadPoolExecutor(max_workers=1) as pool:
            first = pool.submit(waiter, s)
            pool.submit(s.ev.set)
            first.result()
    """
)


def test_a_starved_pool_is_explained_by_the_programs_lines():
    """One worker, its task waiting for the next task: the deadlock is told at the program's
    lines, the future created at its submit() line; the pool's own lock operations (its shutdown
    lock in every submit(), the future's condition) are left out, and said to be."""
    result = frontrun.explore_dpor(lambda: State(ev=threading.Event()), [STARVED.drive], lambda s: True)
    assert result.property_holds is False and result.failure_kind == "deadlock", result.explanation
    text = result.explanation
    assert "thread 0 waits for the result of the future" in text
    history = text.split("How they got there (lock operations in order):\n")[1].split("where:")[0]
    assert "s.ev.wait()" in history and "concurrent/futures" not in history, text
    assert "lock operations inside libraries left out" in history
    made = re.search(r"future \(unnamed\) \(created at (\S+):(\d+)\)", text)
    assert made and STARVED.__file__.endswith(made[1]), text
    assert "first = pool.submit(waiter, s)" in linecache.getline(STARVED.__file__, int(made[2]))
