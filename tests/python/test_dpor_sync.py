"""Cooperative primitives: safe programs pass, waits never hang, patches come off afterwards."""

import queue
import re
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from dpor_testutil import State, load, run_in_new_process  # noqa: E402

import frontrun  # noqa: E402

PROG = load(
    """
    import queue
    import threading
    import time

    MODULE_LOCK = threading.Lock()
    MODULE_RLOCK = threading.RLock()
    counter = 0

    def locked_increment(s):
        with s.lock:
            s.x += 1

    def rlock_increment(s):
        with s.lock:
            with s.lock:
                s.x += 1

    def explicit_acquire(s):
        s.lock.acquire()
        try:
            s.x += 1
        finally:
            s.lock.release()

    def module_lock_increment(s):
        global counter
        with MODULE_LOCK:
            counter += 1

    def module_rlock_increment(s):
        global counter
        with MODULE_RLOCK:
            with MODULE_RLOCK:
                counter += 1

    def unlocked_module_increment(s):
        global counter
        counter += 1

    def sem_increment(s):
        with s.sem:
            s.x += 1

    def setter(s):
        s.x = 42
        s.event.set()

    def waiter(s):
        s.event.wait()
        s.seen = s.x

    def put_two(s):
        s.q.put(1)
        s.q.put(2)

    def get_two(s):
        s.got.append(s.q.get())
        s.got.append(s.q.get())

    def put_low_then_high(s):
        s.q.put(2)
        s.q.put(1)

    def get_one(s):
        s.got.append(s.q.get())

    def barrier_phase(s):
        s.before.append(1)
        s.barrier.wait()
        s.after.append(len(s.before))

    def sleepy_increment(s):
        with s.lock:
            v = s.x
            time.sleep(0.5)
            s.x = v + 1

    def timed_acquire(s):
        s.ok.append(s.other.acquire(timeout=5))

    def timed_event_wait(s):
        s.ok = s.event.wait(timeout=5)

    def timed_queue_get(s):
        try:
            s.ok = s.q.get(timeout=5)
        except queue.Empty:
            s.ok = "empty"

    def holder(s):
        s.other.acquire()

    def nonblocking_try(s):
        if s.lock.acquire(blocking=False):
            s.x += 1
            s.lock.release()
        else:
            s.missed += 1

    def try_probe(s):
        got = s.lock.acquire(blocking=False)
        if got:
            s.lock.release()
        s.tries.append(got)
        s.event.set()

    def hold_until_probed(s):
        with s.lock:
            s.event.wait()

    def hold_briefly(s):
        with s.lock:
            s.held += 1

    def use_local(s):
        s.local.value = getattr(s.local, "value", 0) + 1
        s.values.append(s.local.value)

    def spawner(s):
        threads = [threading.Thread(target=locked_increment, args=(s,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        s.done = s.x
    """,
    name="dpor_sync_prog",
)


def holds(setup, threads, invariant, **kw):
    started = time.monotonic()
    result = frontrun.explore_dpor(setup, threads, invariant, timeout=60, **kw)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
    assert time.monotonic() - started < 30
    return result


def test_lock_makes_increment_safe():
    holds(lambda: State(x=0, lock=threading.Lock()), [PROG.locked_increment] * 3, lambda s: s.x == 3)


def test_rlock_reentry():
    holds(lambda: State(x=0, lock=threading.RLock()), [PROG.rlock_increment] * 2, lambda s: s.x == 2)


def test_explicit_acquire_release():
    holds(lambda: State(x=0, lock=threading.Lock()), [PROG.explicit_acquire] * 2, lambda s: s.x == 2)


def reset_counter():
    PROG.counter = 0
    return State()


def test_module_level_lock_made_at_import():
    assert type(PROG.MODULE_LOCK).__module__ in ("_thread", "builtins")  # a real lock
    result = holds(reset_counter, [PROG.module_lock_increment] * 2, lambda s: PROG.counter == 2)
    assert result.num_explored == 2


def test_module_level_rlock_made_at_import():
    holds(reset_counter, [PROG.module_rlock_increment] * 2, lambda s: PROG.counter == 2)


REAL_TRIES = load(
    """
    import threading

    A = threading.Lock()  # made at import: real locks, not the exploration's cooperative ones
    B = threading.Lock()
    REFRESHING = threading.Lock()

    def both_orders(take):  # threads that hold one lock and take the other: A then B, B then A
        def once(first, second, name):
            def run(s):
                with first:
                    got = take(second)
                    if got:
                        second.release()
                    s.done.append((name, got))
            return run
        return [once(A, B, "a"), once(B, A, "b")]

    TRIES = both_orders(lambda lock: lock.acquire(blocking=False))
    TIMED = both_orders(lambda lock: lock.acquire(timeout=0.05))

    def refresh(s):
        if not REFRESHING.acquire(False):
            s.skipped += 1
            return
        try:
            s.version += 1
        finally:
            REFRESHING.release()
    """
)


def outcomes_of(threads):
    seen = set()

    def invariant(s):
        seen.add(tuple(sorted(s.done)))
        return len(s.done) == 2

    holds(lambda: State(done=[]), threads, invariant)
    return seen


def test_tries_of_real_locks_in_opposite_orders_neither_deadlock_nor_miss_a_failure():
    # A try of a lock made at import was a blocking acquire: a false deadlock, and the branch
    # where the try fails was never run.
    both = {(("a", x), ("b", y)) for x in (False, True) for y in (False, True)}
    assert outcomes_of(REAL_TRIES.TRIES) == both


def test_timed_acquires_of_real_locks_time_out_when_nothing_else_can_run():
    both = {(("a", x), ("b", y)) for x in (False, True) for y in (False, True)}
    assert outcomes_of(REAL_TRIES.TIMED) == both


def test_a_failed_try_of_a_real_lock_is_found():
    result = frontrun.explore_dpor(lambda: State(skipped=0, version=0), [REAL_TRIES.refresh] * 2,
                                   lambda s: s.skipped == 0)
    assert result.property_holds is False, result
    assert "try_acquire" in result.explanation and "REFRESHING.acquire(False)" in result.explanation, result.explanation
    # Its release, in C at the end of a thread that reports nothing after it, has no line of its own.
    assert "release  (by the time its function returned)" in result.explanation, result.explanation
    assert frontrun.replay(result.counterexample, lambda: State(skipped=0, version=0), [REAL_TRIES.refresh] * 2,
                           lambda s: s.skipped == 0).property_holds is False


REAL_DATACLASS = load(
    """
    import threading
    from dataclasses import dataclass, field

    @dataclass
    class Accounts:
        a: object = field(default_factory=threading.Lock)  # the real Lock, named at import
        b: object = field(default_factory=threading.Lock)

    def a_then_b(s):
        with s.a:
            with s.b:
                pass

    def b_then_a(s):
        with s.b:
            with s.a:
                pass
    """
)


def test_a_deadlock_on_locks_a_dataclass_made_names_no_place_in_generated_code():
    # "created at <string>:3": the dataclass's generated __init__, which no one can open.
    result = frontrun.explore_dpor(REAL_DATACLASS.Accounts, [REAL_DATACLASS.a_then_b, REAL_DATACLASS.b_then_a],
                                   lambda s: True)
    assert result.failure_kind == "deadlock", result
    assert "Accounts.a" in result.explanation and "<string>" not in result.explanation, result.explanation


def test_module_global_without_lock_races():
    result = frontrun.explore_dpor(reset_counter, [PROG.unlocked_module_increment] * 2, lambda s: PROG.counter == 2)
    assert result.failure_kind == "invariant"
    assert "global dpor_sync_prog.counter" in result.explanation


@pytest.mark.parametrize("kind", ["Semaphore", "BoundedSemaphore"])
def test_semaphore(kind):
    holds(lambda: State(x=0, sem=getattr(threading, kind)(1)), [PROG.sem_increment] * 2, lambda s: s.x == 2)


def test_event():
    holds(lambda: State(x=0, seen=None, event=threading.Event()), [PROG.waiter, PROG.setter], lambda s: s.seen == 42)


@pytest.mark.parametrize("make", [queue.Queue, queue.LifoQueue, queue.PriorityQueue, queue.SimpleQueue, lambda: queue.Queue(1)])
def test_queues(make):
    def setup():
        return State(q=(make() if not isinstance(make, type) else getattr(queue, make.__name__)()), got=[])

    holds(setup, [PROG.put_two, PROG.get_two], lambda s: sorted(s.got) == [1, 2])


def test_a_queue_taken_in_the_wrong_order_names_its_mutex_once():
    # The consumer expects the higher priority item, which the producer puts second.
    setup = lambda: State(q=queue.PriorityQueue(), got=[])  # noqa: E731
    result = frontrun.explore_dpor(setup, [PROG.put_low_then_high, PROG.get_one], lambda s: s.got == [1])
    assert result.property_holds is False and result.failure_kind == "invariant"
    text = result.explanation
    assert "without the lock state.q.mutex (created at " in text, text
    assert "state.q.mutex (state.q.mutex" not in text


def test_barrier():
    holds(
        lambda: State(before=[], after=[], barrier=threading.Barrier(2)),
        [PROG.barrier_phase] * 2,
        lambda s: s.after == [2, 2],
    )


def test_sleep_is_a_yield_point_without_real_sleep():
    started = time.monotonic()
    holds(lambda: State(x=0, lock=threading.Lock()), [PROG.sleepy_increment] * 2, lambda s: s.x == 2)
    assert time.monotonic() - started < 0.5


def test_timed_acquire_times_out_instead_of_hanging():
    # Whoever comes second waits for a lock that is never released: it times out.
    result = holds(
        lambda: State(other=threading.Lock(), ok=[]),
        [PROG.timed_acquire, PROG.timed_acquire],
        lambda s: sorted(s.ok) == [False, True],
    )
    assert result.num_explored >= 2


def test_blocking_acquire_of_a_lock_never_released_is_a_deadlock():
    result = frontrun.explore_dpor(
        lambda: State(other=threading.Lock(), ok=[]), [PROG.holder, PROG.holder], lambda s: True
    )
    assert result.failure_kind == "deadlock"
    assert "State.other" in result.explanation


WAITS = load(
    """
    import queue
    import threading

    JOBS = queue.Queue()

    def take(s):
        s.q.get()

    def take_global(s):
        JOBS.get()

    def wait_event(s):
        s.event.wait()

    def wait_condition(s):
        with s.cv:
            s.cv.wait()

    def acquire_semaphore(s):
        s.sem.acquire()

    def take_and_keep(s):
        s.lock.acquire()  # and never releases it: returns holding it

    def take_after(s):
        with s.lock:
            pass

    def wait_barrier(s):
        s.barrier.wait()

    def token_then_lock(s):
        with s.sem:
            with s.lock:
                s.x += 1

    def lock_then_token(s):
        with s.lock:
            with s.sem:
                s.x += 1
    """,
    name="dpor_waits_prog",
)


def test_a_deadlock_names_what_each_thread_waits_on():
    import queue

    def setup():
        return State(q=queue.Queue(), event=threading.Event(), cv=threading.Condition(),
                     sem=threading.Semaphore(0), barrier=threading.Barrier(2))

    threads = [WAITS.take, WAITS.take_global, WAITS.wait_event, WAITS.wait_condition, WAITS.acquire_semaphore,
               WAITS.wait_barrier]
    result = frontrun.explore_dpor(setup, threads, lambda s: True)
    assert result.failure_kind == "deadlock"
    lines = result.explanation.splitlines()[1:13]
    waits = [re.sub(r" \(created at [^)]*\)", "", line) for line in lines[0::2]]
    assert waits == [
        "  thread 0 waits on the queue state.q, which no other thread will put to or take from",
        "  thread 1 waits on the queue dpor_waits_prog.JOBS, which no other thread will put to or take from",
        "  thread 2 waits on the event state.event, which no other thread will set",
        "  thread 3 waits on the condition state.cv, which no other thread will notify",
        "  thread 4 waits on the semaphore state.sem, which no other thread will release",
        "  thread 5 waits on the barrier state.barrier, which no other thread will reach",
    ], result.explanation
    assert all(line.startswith("      at dpor_waits_prog.py:") for line in lines[1::2]), result.explanation


def test_a_deadlock_on_a_lock_whose_holder_has_ended_says_so():
    result = frontrun.explore_dpor(lambda: State(lock=threading.Lock()), [WAITS.take_and_keep, WAITS.take_after],
                                   lambda s: True)
    assert result.failure_kind == "deadlock"
    assert "held by thread 0, which has ended without releasing it" in result.explanation, result.explanation


@pytest.mark.parametrize("kind", ["Semaphore", "BoundedSemaphore"])
def test_a_deadlock_on_a_semaphore_names_who_holds_its_token(kind):
    # A semaphore's token is held as a lock is: taken in the other order from a lock, the
    # waiter for the token is told who took it, and where; the taker holds it.
    result = frontrun.explore_dpor(lambda: State(x=0, lock=threading.Lock(), sem=getattr(threading, kind)(1)),
                                   [WAITS.token_then_lock, WAITS.lock_then_token], lambda s: True)
    assert result.failure_kind == "deadlock"
    lines = [re.sub(r" \(created at [^)]*\)|, created at [^)]*", "", line) for line in result.explanation.splitlines()]
    token_line = next(i for i, line in enumerate(lines) if "with s.sem:" in line and line.startswith("      at"))
    waiter, holder = (1, 0) if lines[token_line - 1].startswith("  thread 1") else (0, 1)
    assert lines[token_line - 1] == (
        f"  thread {waiter} holds State.lock (state.lock) and waits on the semaphore state.sem, whose token "
        f"thread {holder} holds (taken at dpor_waits_prog.py:{WAITS.token_then_lock.__code__.co_firstlineno + 1})"
    ), result.explanation
    taker = f"  thread {holder} holds a token of the semaphore state.sem and waits for State.lock (state.lock), held by "
    assert taker + f"thread {waiter}" in lines, result.explanation
    history = lines[lines.index("How they got there (lock operations in order):") + 1:]
    assert [line.split()[:3] for line in history[:2]] == [["thread", str(holder), "acquire"],
                                                          ["thread", str(waiter), "acquire"]], result.explanation
    assert "with s.sem:" in history[0] and "with s.lock:" in history[1], result.explanation


def test_timed_event_wait_times_out():
    holds(lambda: State(event=threading.Event(), ok=None), [PROG.timed_event_wait], lambda s: s.ok is False)


def test_timed_queue_get_times_out():
    holds(lambda: State(q=queue.Queue(), ok=None), [PROG.timed_queue_get], lambda s: s.ok == "empty")


def test_nonblocking_acquire():
    result = frontrun.explore_dpor(
        lambda: State(x=0, missed=0, lock=threading.Lock()), [PROG.nonblocking_try] * 2, lambda s: s.x + s.missed == 2
    )
    assert result.property_holds is True


def test_nonblocking_acquire_sees_the_lock_held_and_free():
    # The try is ordered against the other thread's acquire and release, so both answers
    # come up; an invariant that assumes the lock is always free is refuted.
    seen = set()

    def record(s):
        seen.add(tuple(s.tries))
        return True

    setup = lambda: State(lock=threading.Lock(), tries=[], held=0, event=threading.Event())
    holds(setup, [PROG.try_probe, PROG.hold_briefly], record)
    assert seen == {(True,), (False,)}
    result = frontrun.explore_dpor(setup, [PROG.try_probe, PROG.hold_briefly], lambda s: s.tries == [True])
    assert result.property_holds is False
    assert "hold_briefly" in result.explanation or "held" in result.explanation, result.explanation


def test_nonblocking_acquire_never_waits():
    # A try that finds the lock free takes it at once: no schedule lets the holder in
    # between and leave the trying thread waiting (which would be a false deadlock here).
    setup = lambda: State(lock=threading.Lock(), tries=[], event=threading.Event())
    result = holds(setup, [PROG.try_probe, PROG.hold_until_probed], lambda s: len(s.tries) == 1)
    assert result.num_explored >= 2


def test_threads_spawned_by_workers_are_explored():
    holds(lambda: State(x=0, done=None, lock=threading.Lock()), [PROG.spawner], lambda s: s.done == 2)


def test_a_thread_runs_nothing_before_it_is_first_scheduled():
    # What a thread does before its first report (here a C lru_cache lookup that misses, then
    # the call) happens when the thread is first scheduled, not as soon as it is started: in the
    # first execution one thread runs after the other, and the second finds the result cached.
    prog = load(
        """
        import functools

        computed = []

        def fresh_cache():
            computed.clear()

            @functools.lru_cache(maxsize=None)
            def compute(x):
                computed.append(x)
                return x

            return compute

        def call(compute):
            compute(1)
        """
    )
    per_execution = []

    def check(_):
        per_execution.append(len(prog.computed))
        return True

    result = frontrun.explore_dpor(prog.fresh_cache, [prog.call, prog.call], check, max_executions=1)
    assert result.num_explored == 1
    assert per_execution == [1]


CACHED = load(
    """
    import functools

    class Service:
        def __init__(self):
            self.created = 0
            self.seen = []

        @functools.cached_property
        def conn(self):
            self.created += 1
            return object()

    def use(s):
        s.conn
        s.seen.append(s.created)
    """,
    name="dpor_cached_property_prog",
)


def test_cached_property_misses_are_explored():
    # 3.12 dropped cached_property's lock: two threads that both miss compute twice. 3.10/3.11
    # compute under a lock made at import, taken in the model only: safe, and nothing hangs.
    result = frontrun.explore_dpor(CACHED.Service, [CACHED.use, CACHED.use], lambda s: s.created == 1, timeout=60)
    if sys.version_info >= (3, 12):
        assert result.property_holds is False and result.failure_kind == "invariant"
        assert "Race on Service.conn" in result.explanation, result.explanation
        assert frontrun.replay(result.counterexample, CACHED.Service, [CACHED.use, CACHED.use],
                               lambda s: s.created == 1).property_holds is False
    else:
        assert result.property_holds is True, result.explanation or result.inconclusive_reason
        assert result.num_explored > 1


def test_thread_local_per_explored_thread_and_execution():
    module_local = threading.local()

    result = holds(
        lambda: State(local=module_local, values=[]),
        [PROG.use_local] * 2,
        lambda s: s.values == [1, 1],
    )
    assert result.num_explored >= 1


NEW_THREAD_STATE = load(
    """
    import contextvars, threading

    class Counter(threading.local):
        def __init__(self):
            self.count = 0

    COUNTER = Counter()
    VAR = contextvars.ContextVar("var", default=0)

    def bump(s):
        COUNTER.count += 1
        VAR.set(VAR.get() + 1)
        s.seen.append((COUNTER.count, VAR.get()))

    def bump_in_a_thread(s):
        t = threading.Thread(target=bump, args=(s,))
        t.start()
        t.join()
    """,
    name="dpor_new_thread_state_prog",
)


@pytest.mark.parametrize("thread", ["bump", "bump_in_a_thread"])
def test_every_thread_starts_with_fresh_thread_state(thread):
    # Workers are reused across tasks and executions; each explored thread must still find a
    # threading.local subclass freshly __init__-ed and an empty contextvars context.
    fn = getattr(NEW_THREAD_STATE, thread)
    for _ in range(2):
        holds(lambda: State(seen=[]), [fn, fn, fn], lambda s: s.seen == [(1, 1)] * 3)


LOCAL_WITH_ARGUMENTS = load(
    """
    import threading

    class Settings(threading.local):
        def __init__(self, dsn):
            self.dsn = dsn

    SETTINGS = Settings("db://x")

    def use(seen):
        seen.append(SETTINGS.dsn)
    """
)


def test_a_thread_local_made_with_arguments_has_its_values_in_every_thread():
    # Python re-runs __init__ with the local's arguments in each new thread; a reused worker
    # found it cleared (AttributeError: no attribute 'dsn').
    p = LOCAL_WITH_ARGUMENTS
    for _ in range(2):
        holds(list, [p.use, p.use, p.use], lambda seen: seen == ["db://x"] * 3)


def test_lru_cache_defined_after_an_earlier_exploration_is_stood_in_for():
    # A script defines more between explorations: the bindings are looked for again.
    from frontrun.rewrite import rewrite_code

    prog = load(
        """
        computed = []

        def fresh():
            computed.clear()
            return []

        def touch(seen):
            seen.append(0)
        """
    )
    assert frontrun.explore_dpor(prog.fresh, [prog.touch] * 2, lambda seen: True).property_holds is True
    later = (
        "import functools\n"
        "@functools.lru_cache(maxsize=None)\n"
        "def late():\n"
        "    computed.append(1)\n"
        "    return object()\n"
        "def user(seen):\n"
        "    seen.append(late())\n"
    )
    exec(rewrite_code(compile(later, prog.__file__, "exec"), "shared"), prog.__dict__)
    result = frontrun.explore_dpor(prog.fresh, [prog.user] * 2, lambda seen: len(prog.computed) == 1)
    assert result.property_holds is False and "Race on lru_cache of late()" in result.explanation, (
        result.inconclusive_reason
    )


def test_a_module_first_imported_inside_an_exploration(tmp_path, monkeypatch):
    # Its import-time locks are cooperative ones, which must do all that a real lock does at
    # import: concurrent.futures.thread (imported by the first `cf.ThreadPoolExecutor`, maybe
    # inside an exploration) registers its lock's `_at_fork_reinit` with os.register_at_fork.
    (tmp_path / "late_locks.py").write_text(
        "import os, threading\n"
        "lock, rlock = threading.Lock(), threading.RLock()\n"
        "os.register_at_fork(after_in_child=lock._at_fork_reinit)\n"
        "os.register_at_fork(after_in_child=rlock._at_fork_reinit)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "late_locks", raising=False)
    prog = load(
        """
        import importlib

        def importer(s):
            mod = importlib.import_module("late_locks")
            with mod.lock, mod.rlock, mod.rlock:
                s.x += 1
        """
    )
    holds(lambda: State(x=0), [prog.importer], lambda s: s.x == 1)
    sys.modules.pop("late_locks", None)


def test_patches_are_restored():
    before = (threading.Lock, threading.RLock, threading.Condition, queue.SimpleQueue, time.sleep, threading.Thread.start)
    holds(lambda: State(x=0, lock=threading.Lock()), [PROG.locked_increment] * 2, lambda s: s.x == 2)
    after = (threading.Lock, threading.RLock, threading.Condition, queue.SimpleQueue, time.sleep, threading.Thread.start)
    assert before == after
    import builtins

    assert builtins.__frontrun_on__ is False


def test_cooperative_objects_work_outside_explored_threads():
    seen = {}

    def setup():
        s = State(x=0, lock=threading.Lock(), q=queue.Queue(), event=threading.Event())
        with s.lock:  # the controller thread: an ordinary lock
            s.q.put(5)
        s.event.set()
        seen["lock_type"] = type(s.lock).__name__
        return s

    def inv(s):
        with s.lock:
            return s.x == 2 and s.q.get_nowait() == 5 and s.event.is_set()

    holds(setup, [PROG.locked_increment] * 2, inv)
    assert seen["lock_type"] == "Lock"


def test_explorations_reuse_workers_listed_only_while_exploring():
    import _thread

    def setup():
        return State(x=0, lock=threading.Lock(), listed=[])

    workers = set()

    def listed(s):
        workers.add(threading.get_ident())
        s.listed.append(threading.current_thread() in threading.enumerate())

    holds(setup, [PROG.locked_increment] * 2, lambda s: s.x == 2)
    os_threads = _thread._count()
    for _ in range(3):
        holds(setup, [PROG.locked_increment] * 2, lambda s: s.x == 2)
    holds(setup, [listed, PROG.locked_increment], lambda s: s.listed == [True])
    # The same worker threads served every exploration...
    assert _thread._count() == os_threads
    # ...and between explorations only the program's own threads are listed.
    assert workers
    assert not workers & {t.ident for t in threading.enumerate()}


def test_the_test_threads_are_named_apart_as_the_explanation_calls_them():
    # Every worker's placeholder Thread was "Dummy-1": per-thread results keyed by
    # threading.current_thread().name had one key, whatever the schedule.
    def setup():
        return State(by_name={}, lock=threading.Lock())

    record = load(
        """
        import threading

        def record(s):
            with s.lock:
                s.by_name[threading.current_thread().name] = threading.get_ident()
        """
    ).record
    names = []

    def invariant(s):
        names.append(sorted(s.by_name))
        return len(s.by_name) == 3

    holds(setup, [record, record, record], invariant)
    assert names and all(n == ["thread 0", "thread 1", "thread 2"] for n in names), names


ACQ = load(
    """
    import threading

    PLAIN = threading.Lock()
    total = 0

    def explicit(s):
        global total
        PLAIN.acquire()
        try:
            total += 1
        finally:
            PLAIN.release()
    """,
    name="dpor_sync_acquire_prog",
)


def test_module_level_lock_explicit_acquire_release():
    from frontrun._recording import recording

    with recording() as events:
        ACQ.explicit(State())
    ACQ.total = 0
    calls = [(e.key, e.obj) for e in events if e.kind == "call"]
    assert ("acquire", ACQ.PLAIN) in calls and ("release", ACQ.PLAIN) in calls, calls

    def setup():
        ACQ.total = 0
        return State()

    result = frontrun.explore_dpor(setup, [ACQ.explicit] * 2, lambda s: ACQ.total == 2, timeout=20)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason


REAL = load(
    """
    import threading

    COND = threading.Condition(threading.Lock())
    SEM = threading.Semaphore(1)
    EVENT = threading.Event()

    def cond_waiter(s):
        with COND:
            while not s.ready:
                COND.wait()
            s.seen = s.x

    def cond_notifier(s):
        with COND:
            s.x = 42
            s.ready = True
            COND.notify_all()

    def sem_increment(s):
        with SEM:
            v = s.x
            s.x = v + 1

    def event_setter(s):
        s.x = 42
        EVENT.set()

    def event_waiter(s):
        EVENT.wait()
        s.seen = s.x
    """,
    name="dpor_sync_real_prog",
)


def _reports_call(fn, method, *args):
    from frontrun._recording import recording

    with recording() as events:
        fn(*args)
    return any(e.kind == "call" and e.key == method for e in events)


def test_condition_over_a_real_lock_made_at_import_never_hangs():
    def setup():
        return State(x=0, ready=False, seen=None)

    result = holds(setup, [REAL.cond_waiter, REAL.cond_notifier], lambda s: s.seen == 42)
    assert result.num_explored >= 2
    # The real condition is itself again afterwards.
    assert type(REAL.COND) is threading.Condition and not REAL.COND._lock.locked()


def test_semaphore_made_at_import_never_hangs():
    holds(lambda: State(x=0), [REAL.sem_increment] * 3, lambda s: s.x == 3)
    assert type(REAL.SEM._cond) is threading.Condition


def test_event_made_at_import_never_hangs():
    REAL.EVENT.clear()
    assert _reports_call(REAL.event_setter, "set", State(x=0))

    def setup():
        REAL.EVENT.clear()
        return State(x=0, seen=None)

    holds(setup, [REAL.event_waiter, REAL.event_setter], lambda s: s.seen == 42)
    assert type(REAL.EVENT._cond) is threading.Condition


POOL = load(
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed, wait

    def bump(s):
        s.x += 1

    def bump_locked(s):
        with s.lock:
            s.x += 1

    def fan_out(s):
        with ThreadPoolExecutor(max_workers=2) as ex:
            for f in [ex.submit(bump, s) for _ in range(2)]:
                f.result()

    def fan_out_locked(s):
        with ThreadPoolExecutor(max_workers=2) as ex:
            for f in [ex.submit(bump_locked, s) for _ in range(2)]:
                f.result()

    def fan_out_as_completed(s):
        with ThreadPoolExecutor(max_workers=2) as ex:
            for f in as_completed([ex.submit(bump, s) for _ in range(2)]):
                f.result()

    def fan_out_wait(s):
        with ThreadPoolExecutor(max_workers=2) as ex:
            wait([ex.submit(bump, s) for _ in range(2)])

    def fan_out_wait_locked(s):
        with ThreadPoolExecutor(max_workers=1) as ex:
            done, _ = wait([ex.submit(bump_locked, s) for _ in range(2)])
            s.done = len(done)

    def own_pool(s):
        with ThreadPoolExecutor(max_workers=1) as ex:
            ex.submit(bump_locked, s).result()

    def client(s):
        s.pool.submit(bump, s).result()

    def client_locked(s):
        s.pool.submit(bump_locked, s).result()

    def try_take(s):
        s.got = s.sem.acquire(timeout=0)

    def give(s):
        s.sem.release()
    """,
    name="dpor_pool_prog",
)


def pool_state(shared):
    from concurrent.futures import ThreadPoolExecutor

    def setup():
        s = State(x=0, lock=threading.Lock())
        if shared:
            s.pool = ThreadPoolExecutor(max_workers=2)
        return s

    return setup


@pytest.mark.parametrize(
    "threads, shared, racy",
    [
        (["fan_out"], False, True),
        (["fan_out_locked"], False, False),
        (["own_pool", "own_pool"], False, False),
        (["client", "client"], True, True),
        (["client_locked", "client_locked"], True, False),
        (["fan_out_as_completed"], False, True),
        (["fan_out_wait"], False, True),
        (["fan_out_wait_locked"], False, False),
    ],
    ids=["inside-racy", "inside-locked", "own-pools", "shared-racy", "shared-locked", "as-completed", "wait",
         "wait-locked"],
)
def test_thread_pool_executor(threads, shared, racy):
    # Pool workers are explored threads; one left idle when the test's threads are done is not a
    # deadlock; a second worker is started when the first is busy (`acquire(timeout=0)` on the
    # idle semaphore does not wait for it).
    setup = pool_state(shared)
    result = frontrun.explore_dpor(setup, [getattr(POOL, t) for t in threads], lambda s: s.x == 2, timeout=120)
    if racy:
        assert result.property_holds is False and result.failure_kind == "invariant", result.explanation
        assert "Race on State.x" in result.explanation and "s.x += 1" in result.explanation
        # The pool joins its workers in the order of a set of threads: the same in every run.
        for _ in range(5):
            again = frontrun.replay(result.counterexample, setup, [getattr(POOL, t) for t in threads], lambda s: s.x == 2)
            assert again.property_holds is False and again.failure_kind == "invariant", again.inconclusive_reason
    else:
        assert result.property_holds is True, (result.failure_kind, result.inconclusive_reason, result.explanation)


LRU = load(
    """
    import functools, threading

    computed = []
    LOCK = threading.Lock()

    @functools.lru_cache(maxsize=None)
    def client():
        computed.append("client")
        return object()

    class Holder:
        @functools.cache
        def config(self):
            computed.append("config")
            return {}

    HOLDER = Holder()

    def fresh():
        computed.clear()
        return []

    def user(seen):
        seen.append(client())

    def method_user(seen):
        seen.append(HOLDER.config())

    def locked_user(seen):
        with LOCK:
            seen.append((client(), HOLDER.config()))
    """,
    name="dpor_lru_prog",
)


@pytest.mark.parametrize("user", ["user", "method_user"])
def test_lru_cache_computed_twice_is_found(user):
    # The C wrapper's look and store are unseen; while an exploration runs, a stand-in whose
    # cache is empty at every execution's start reports them: both threads may miss.
    real = LRU.client
    real_info = real.cache_info()
    threads = [getattr(LRU, user)] * 2
    result = frontrun.explore_dpor(LRU.fresh, threads, lambda seen: seen[0] is seen[1], timeout=60)
    assert result.property_holds is False and result.failure_kind == "invariant", result.inconclusive_reason
    assert "Race on lru_cache of " in result.explanation, result.explanation
    again = frontrun.replay(result.counterexample, LRU.fresh, threads, lambda seen: seen[0] is seen[1])
    assert again.property_holds is False
    # The module's own wrapper is back, its cache as it was.
    assert LRU.client is real and real.cache_info() == real_info
    assert type(LRU.Holder.__dict__["config"]).__name__ == "_lru_cache_wrapper"


PER_INSTANCE_LRU = load(
    """
    import functools

    class Repo:
        def __init__(self, warm=False):
            self.loads = 0
            self.get = functools.lru_cache(maxsize=None)(self._load)  # a cache per instance
            if warm:
                self.get(1)

        def _load(self, key):
            self.loads += 1
            return key

    def fetch(repo):
        repo.got = repo.get(1)
    """,
    name="dpor_lru_instance_prog",
)


def test_a_per_instance_lru_cache_computed_twice_is_found():
    # The wrapper is made with the state, so it is not a module's or class's: it was looked up
    # in C unseen, and only one execution ran (the second thread always hit).
    repo = PER_INSTANCE_LRU.Repo
    result = frontrun.explore_dpor(repo, [PER_INSTANCE_LRU.fetch] * 2, lambda r: r.loads == 1, timeout=60)
    assert result.property_holds is False and result.failure_kind == "invariant", result.inconclusive_reason
    assert re.search(r"Race on lru_cache of Repo._load\(\) \(object #\d+ = state.get,", result.explanation), result.explanation
    assert "afterwards state.get = 1 cached, computed 2 times" in result.explanation
    again = frontrun.replay(result.counterexample, repo, [PER_INSTANCE_LRU.fetch] * 2, lambda r: r.loads == 1)
    assert again.property_holds is False


def test_a_per_instance_lru_cache_warmed_in_setup_is_kept():
    # Its cache cannot be copied into a stand-in; an empty one would compute again.
    result = holds(lambda: PER_INSTANCE_LRU.Repo(warm=True), [PER_INSTANCE_LRU.fetch] * 2, lambda r: r.loads == 1)
    assert result.num_explored >= 1


def test_lru_cache_rebound_since_an_earlier_exploration_stays_rebound(monkeypatch):
    frontrun.explore_dpor(LRU.fresh, [LRU.user] * 2, lambda seen: True)
    stub = lambda: "stub"  # noqa: E731
    monkeypatch.setattr(LRU, "client", stub)
    result = holds(LRU.fresh, [LRU.user] * 2, lambda seen: seen == ["stub", "stub"])
    assert result.num_explored >= 1 and LRU.client is stub


def test_lru_cache_under_a_lock_is_computed_once_in_every_execution():
    # Every execution starts with the cache empty, so each computes once and schedules repeat
    # (a cache kept from the first execution made the next ones diverge).
    result = holds(LRU.fresh, [LRU.locked_user] * 2, lambda seen: sorted(LRU.computed) == ["client", "config"])
    assert result.num_explored >= 2


def test_logging_through_a_handler_made_at_import_never_hangs():
    # logging holds the handler's lock (a real RLock, made at import) around emit(), which here
    # is rewritten code: a thread parked inside must not block the next one to log for real.
    prog = load(
        """
        import logging

        class ListHandler(logging.Handler):
            def __init__(self):
                super().__init__()
                self.records = []

            def emit(self, record):
                n = len(self.records)
                self.records.append((n, record.getMessage()))

        HANDLER = ListHandler()
        LOG = logging.getLogger("frontrun-test-handler-at-import")
        LOG.propagate = False
        LOG.addHandler(HANDLER)
        LOG.setLevel(logging.INFO)

        def fresh():
            HANDLER.records.clear()
            return HANDLER

        def worker(h):
            LOG.info("from %s", len(h.records))
        """
    )
    real_lock = prog.HANDLER.lock
    result = holds(prog.fresh, [prog.worker, prog.worker], lambda h: [n for n, _ in h.records] == [0, 1])
    assert result.num_explored > 1
    assert prog.HANDLER.lock is real_lock


SERVICE = load(
    """
    import queue, threading

    class Service:
        def __init__(self):
            self.q = queue.Queue()
            self.total = 0
            threading.Thread(target=self._run, daemon=True).start()

        def _run(self):
            while True:
                n = self.q.get()
                self.total += n
                self.q.task_done()

        def submit(self, n):
            self.q.put(n)
            self.q.join()

    def client(s):
        s.submit(1)

    def client_then_bump(s):
        s.submit(1)
        s.total += 10
    """,
    name="dpor_service_prog",
)


@pytest.mark.parametrize("threads, racy", [(["client"], False), (["client", "client_then_bump"], True)])
def test_a_thread_setup_starts_is_explored(threads, racy):
    # A service that starts its worker in __init__, made by setup(): the worker is explored
    # (after the test's threads), left waiting at the end like a daemon, never a real thread.
    threads = [getattr(SERVICE, t) for t in threads]
    result = frontrun.explore_dpor(SERVICE.Service, threads, lambda s: s.total == 1 + 11 * (len(threads) - 1),
                                   timeout=60)
    if racy:
        assert result.property_holds is False and result.failure_kind == "invariant", result.inconclusive_reason
        assert "Race on Service.total" in result.explanation and "thread 2" in result.explanation
    else:
        assert result.property_holds is True, (result.failure_kind, result.inconclusive_reason, result.explanation)
        assert threading.active_count() < 10  # no real thread per execution


WAITING_SETUP = load(
    """
    import queue, threading, time
    from concurrent.futures import ThreadPoolExecutor

    class ReadyService:
        # __init__ waits for its worker's "ready" event.
        def __init__(self):
            self.q = queue.Queue()
            self.ready = threading.Event()
            self.total = 0
            threading.Thread(target=self._run, daemon=True).start()
            if not self.ready.wait(timeout=3):
                raise RuntimeError("worker did not start")

        def _run(self):
            self.ready.set()
            while True:
                self.total += self.q.get()
                self.q.task_done()

    class Warmed:
        # A warm-up thread joined, then a pool used in a with block.
        def __init__(self):
            self.d = {}
            t = threading.Thread(target=self._warm)
            t.start()
            t.join()
            with ThreadPoolExecutor(2) as ex:
                self.squares = list(ex.map(lambda x: x * x, range(3)))
            self.hits = 0

        def _warm(self):
            self.d["warm"] = True

    class Polled:
        # Polls with sleeps until the worker says it started.
        def __init__(self):
            self.started = False
            self.n = 0
            threading.Thread(target=self._start, daemon=True).start()
            while not self.started:
                time.sleep(0.01)

        def _start(self):
            self.started = True

    def submit(s):
        s.q.put(5)
        s.q.join()

    def bump(s):
        s.total = s.total + 100

    def hit(s):
        s.hits += 1

    def hit_locked(s):
        with s.lock:
            s.hits += 1

    def count(s):
        s.n += 1
    """,
    name="dpor_waiting_setup_prog",
)


def test_a_setup_that_waits_for_a_thread_it_starts_runs_in_the_exploration():
    # Such a setup() cannot run before the exploration (its threads only run inside it): it runs
    # as an explored thread the test's threads wait for, and its threads are explored with them.
    p = WAITING_SETUP
    result = frontrun.explore_dpor(p.ReadyService, [p.submit, p.bump], lambda s: s.total == 105)
    assert result.property_holds is False and result.failure_kind == "invariant", result.inconclusive_reason
    assert "Race on ReadyService.total" in result.explanation
    # What setup() did before it returned (`self.total = 0`) is not shown: it came before the
    # test's threads began. Its worker's later steps are.
    assert "thread 2" not in result.explanation and "self.total = 0" not in result.explanation
    assert "thread 3 runs ReadyService._run(), started by setup()" in result.explanation
    again = frontrun.replay(result.counterexample, p.ReadyService, [p.submit, p.bump], lambda s: s.total == 105)
    assert again.property_holds is False and again.failure_kind == "invariant"
    assert frontrun.explore_dpor(p.ReadyService, [p.submit], lambda s: s.total == 5).property_holds is True

    def warmed_ok(s):
        return s.d == {"warm": True} and s.squares == [0, 1, 4]

    racy = frontrun.explore_dpor(p.Warmed, [p.hit, p.hit], lambda s: warmed_ok(s) and s.hits == 2)
    assert racy.property_holds is False and "Race on Warmed.hits" in racy.explanation

    def locked():
        w = p.Warmed()
        w.lock = threading.Lock()
        return w

    assert frontrun.explore_dpor(locked, [p.hit_locked, p.hit_locked], lambda s: warmed_ok(s) and s.hits == 2).property_holds

    polled = frontrun.explore_dpor(p.Polled, [p.count, p.count], lambda s: s.started and s.n == 2)
    assert polled.property_holds is False and "Race on Polled.n" in polled.explanation


def test_a_setup_that_waits_and_then_fails_raises_its_error():
    # As any setup() that fails the first time: its own error, as it is.
    def setup():
        s = WAITING_SETUP.ReadyService()
        raise KeyError("no config")

    with pytest.raises(KeyError, match="no config"):
        frontrun.explore_dpor(setup, [WAITING_SETUP.bump], lambda s: True)


def test_joining_an_explored_thread_after_its_execution_returns():
    # An invariant that shuts the executor down joins workers that ran in the model only.
    prog = load(
        """
        from concurrent.futures import ThreadPoolExecutor

        class S:
            def __init__(self):
                self.ex = ThreadPoolExecutor(max_workers=2)
                self.hits = 0

        def task(s):
            s.hits = s.hits + 1

        def submit(s):
            s.ex.submit(task, s).result()

        def shut_down_and_check(s):
            s.ex.shutdown(wait=True)
            return s.hits == 2
        """
    )
    result = frontrun.explore_dpor(prog.S, [prog.submit, prog.submit], prog.shut_down_and_check)
    assert result.property_holds is False and result.failure_kind == "invariant"
    assert "Race on S.hits" in result.explanation and "raising" not in result.explanation


def test_a_started_thread_is_its_own_current_thread():
    # multiprocessing's pools keep their handler threads' state on the Thread object and read it
    # through threading.current_thread().
    prog = load(
        """
        import threading

        class Worker(threading.Thread):
            def run(self):
                me = threading.current_thread()
                self.s.seen.append((me is self, me.ident == threading.get_ident(), me.state))

        def starter(s):
            w = Worker()
            w.s, w.state = s, "running"
            w.start()
            w.join()
        """
    )
    holds(lambda: State(seen=[]), [prog.starter, prog.starter], lambda s: s.seen == [(True, True, "running")] * 2)


def test_wait_with_no_time_left_does_not_wait_for_others():
    # Semaphore.acquire(timeout=0) fails when the semaphore is taken, even if another thread
    # would release it later.
    setup = lambda: State(sem=threading.Semaphore(0), got=None)  # noqa: E731
    result = frontrun.explore_dpor(setup, [POOL.try_take, POOL.give], lambda s: s.got)
    assert result.property_holds is False and result.failure_kind == "invariant"
    both = frontrun.explore_dpor(setup, [POOL.give, POOL.try_take], lambda s: s.got is not None)
    assert both.property_holds is True


def test_pool_workers_leave_nothing_for_interpreter_exit(tmp_path):
    # concurrent.futures joins its workers at exit and logs a worker's exception; explored workers
    # were never real threads, and their unwinding at an execution's end is not an error.
    program = """
        from concurrent.futures import ThreadPoolExecutor

        def bump(s):
            with s.lock:
                s.x += 1

        def fan_out(s):
            with ThreadPoolExecutor(max_workers=2) as ex:
                ex.submit(bump, s).result()

        def client(s):
            s.pool.submit(bump, s).result()
        """
    script = """
        import threading
        from concurrent.futures import ThreadPoolExecutor
        r = frontrun.explore_dpor(lambda: State(x=0, lock=threading.Lock()), [P.fan_out], lambda s: s.x == 1)
        print('inside', r.property_holds)
        setup = lambda: State(x=0, lock=threading.Lock(), pool=ThreadPoolExecutor(max_workers=2))
        r = frontrun.explore_dpor(setup, [P.client, P.client], lambda s: s.x == 2)
        print('shared', r.property_holds)
        """
    done = run_in_new_process(tmp_path, program, script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["inside", "True", "shared", "True"]
    assert "cannot join thread" not in done.stderr
    assert "Exception in worker" not in done.stderr
    assert done.stderr.strip() == ""


@pytest.mark.filterwarnings("ignore::frontrun.NotInstrumentedWarning")  # only its lock is seen
def test_explored_threads_get_threading_settrace_and_setprofile_hooks():
    # As every new thread does: coverage.py measures code that only explored threads run.
    traced, profiled = set(), set()

    def trace(frame, event, arg):
        if event == "call":
            traced.add(frame.f_code.co_name)
        return None

    def profile(frame, event, arg):
        if event == "call":
            profiled.add(frame.f_code.co_name)

    def only_in_a_thread(s):
        with s.lock:
            s.x += 1

    threading.settrace(trace)
    threading.setprofile(profile)
    try:
        result = frontrun.explore_dpor(lambda: State(x=0, lock=threading.Lock()), [only_in_a_thread] * 2,
                                       lambda s: s.x == 2)
    finally:
        threading.settrace(None)
        threading.setprofile(None)
    assert result.property_holds is True
    assert "only_in_a_thread" in traced and "only_in_a_thread" in profiled
    # Once the hooks are gone, the next exploration's threads run without them.
    traced.clear()
    result = frontrun.explore_dpor(lambda: State(x=0, lock=threading.Lock()), [only_in_a_thread], lambda s: s.x == 1)
    assert result.property_holds is True and "only_in_a_thread" not in traced


HANDOFF = load(
    """
    import threading

    def waiter(s):
        s.lock.acquire()
        s.seen = s.data

    def producer(s):
        s.data = 42
        s.lock.release()

    def fire(s):
        s.fired = True

    class Buffer:
        def __init__(self):
            self.lock = threading.Lock()
            self.not_full = threading.Condition(self.lock)
            self.not_empty = threading.Condition(self.lock)
            self.items = []

        def put(self, x):
            with self.not_full:
                while self.items:
                    self.not_full.wait()
                self.items.append(x)
                self.not_empty.notify()

        def get_notifying_the_wrong_one(self):
            with self.not_empty:
                while not self.items:
                    self.not_empty.wait()
                self.items.pop()
                self.not_empty.notify()  # should be not_full

    def put_two(b):
        b.put(1)
        b.put(2)

    def get_two(b):
        b.get_notifying_the_wrong_one()
        b.get_notifying_the_wrong_one()

    def hold_and_work(s):
        with s.lock:
            s.work += 1

    def look(s):
        s.seen = s.lock.locked()

    def release_if_locked(s):
        if s.lock.locked():
            s.lock.release()

    def start_timer(s):
        s.daemon = threading.current_thread().daemon
        threading.Timer(0.01, fire, args=(s,)).start()
    """
)


@pytest.mark.parametrize("kind", ["cooperative", "real"])
def test_a_lock_taken_in_setup_is_held_until_a_thread_releases_it(kind):
    # `setup()` takes the lock (a hand-off: the producer releases it). It was seen free, so the
    # waiter went straight on (a cooperative lock), or blocked for ever in C (a real one).
    import _thread

    def setup():
        lock = threading.Lock() if kind == "cooperative" else _thread.allocate_lock()
        lock.acquire()
        return State(lock=lock, data=None, seen=None)

    threads = [HANDOFF.waiter, HANDOFF.producer]
    result = frontrun.explore_dpor(setup, threads, lambda s: s.seen == 42, timeout=60)
    assert result.property_holds is True and result.num_explored == 1, result.explanation or result.inconclusive_reason
    if kind == "cooperative":
        # The invariant sees the lock as the threads left it: the waiter's (it saw setup()'s
        # real lock taken for ever), or let go of by the producer alone.
        result = frontrun.explore_dpor(setup, threads, lambda s: s.lock.locked(), timeout=60)
        assert result.property_holds is True, result.explanation
        result = frontrun.explore_dpor(setup, [HANDOFF.producer], lambda s: not s.lock.locked(), timeout=60)
        assert result.property_holds is True, result.explanation
    # No one releases it: the waiter waits for ever, and the deadlock says where the lock was taken.
    result = frontrun.explore_dpor(setup, [HANDOFF.waiter], lambda s: True, timeout=60)
    assert result.property_holds is False and result.failure_kind == "deadlock", result.inconclusive_reason
    assert "taken before the threads began (in setup() or by the caller) and not released" in result.explanation
    assert "state.lock" in result.explanation


def test_a_timer_a_test_thread_starts_is_not_a_daemon_and_fires():
    # A test's thread stands for one the program started: a Timer it starts inherits daemon=False
    # and fires once the others are done (a daemon's wait never times out at the end).
    result = frontrun.explore_dpor(lambda: State(fired=False, daemon=None), [HANDOFF.start_timer],
                                   lambda s: s.fired and s.daemon is False, timeout=60)
    assert result.property_holds is True, (result.explanation, result.inconclusive_reason)


def test_lock_locked_looks_at_the_lock_in_its_place():
    # `lock.locked()` was not a step: the look was never tried inside the other thread's
    # critical section, and `seen` was always False. (A real lock's release is seen only at
    # its thread's next step, so a look at one can find it free before the model does.)
    def setup():
        return State(lock=threading.Lock(), work=0, seen=None)

    threads = [HANDOFF.hold_and_work, HANDOFF.look]
    result = frontrun.explore_dpor(setup, threads, lambda s: s.seen is False, timeout=60)
    assert result.property_holds is False and result.failure_kind == "invariant", result.inconclusive_reason
    assert frontrun.replay(result.counterexample, setup, threads, lambda s: s.seen is False).property_holds is False


def test_a_release_finds_the_lock_free_when_it_runs_not_when_asked():
    # Both threads saw setup()'s lock held, and both released it: the second release was
    # checked against the lock as it was before the first (a real lock raises).
    def setup():
        lock = threading.Lock()
        lock.acquire()
        return State(lock=lock)

    threads = [HANDOFF.release_if_locked] * 2
    result = frontrun.explore_dpor(setup, threads, None, timeout=60)
    assert result.property_holds is False and result.failure_kind == "exception", result.inconclusive_reason
    assert "RuntimeError: release unlocked lock" in result.explanation
    # Nothing but the lock is shared: its uses, in order, tell the story.
    uses = re.findall(r"thread (\d)  (locked|release) ", result.explanation)
    assert sorted(uses[:2]) == [("0", "locked"), ("1", "locked")] and [u[1] for u in uses[2:]] == ["release"] * 2, (
        result.explanation)
    # One thread alone releases it once.
    assert frontrun.explore_dpor(setup, threads[:1], lambda s: not s.lock.locked(), timeout=60).property_holds


def test_a_deadlock_names_the_condition_each_thread_waits_on():
    # Two conditions over one lock: both waits read "a condition of the lock state.lock".
    threads = [HANDOFF.put_two, HANDOFF.get_two]
    result = frontrun.explore_dpor(HANDOFF.Buffer, threads, None, timeout=60)
    assert result.property_holds is False and result.failure_kind == "deadlock"
    assert "waits on the condition state.not_full" in result.explanation, result.explanation
    assert "waits on the condition state.not_empty" in result.explanation, result.explanation


ACQUIRE_ARGUMENTS = load(
    """
    def acquire_with(s):
        s.x += 1
        s.lock.acquire(*s.arguments)

    def release_it(s):
        s.lock.release()
    """
)


@pytest.mark.parametrize("kind", ["Lock", "RLock"])
@pytest.mark.parametrize("arguments", [(True, -5), (True, None), (False, 1), (True, -1.5)])
def test_acquire_arguments_are_checked_as_a_real_lock_checks_them(kind, arguments):
    # A deadline already past (`acquire(timeout=deadline - now)`) raises; it was taken as a
    # wait without a timeout.
    try:
        getattr(threading, kind)().acquire(*arguments)
    except (ValueError, TypeError) as exc:
        expected = f"{type(exc).__name__}: {exc}"
    setup = lambda: State(lock=getattr(threading, kind)(), x=0, arguments=arguments)  # noqa: E731
    result = frontrun.explore_dpor(setup, [ACQUIRE_ARGUMENTS.acquire_with], lambda s: True)
    assert result.property_holds is False and result.failure_kind == "exception"
    assert expected in result.explanation
    assert "_coop.py" not in result.explanation  # a real lock raises from C: no frame of its own


@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_releasing_a_lock_not_held_shows_the_callers_line_last(kind):
    setup = lambda: State(lock=getattr(threading, kind)())  # noqa: E731
    result = frontrun.explore_dpor(setup, [ACQUIRE_ARGUMENTS.release_it], lambda s: True)
    assert result.property_holds is False and result.failure_kind == "exception"
    lines = result.explanation.splitlines()
    raised = next(i for i, line in enumerate(lines) if line.startswith("RuntimeError"))
    source = [line.strip() for line in lines[:raised] if set(line.strip()) - set("~^ ")]  # no carets
    assert source[-1] == "s.lock.release()" and "_coop.py" not in result.explanation


IMPORTED = load(
    """
    import time
    from queue import SimpleQueue
    from threading import Lock
    from time import monotonic, sleep

    def setup():
        return State(q=SimpleQueue(), lock=Lock(), got=None, n=0)

    class State:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    def consume(s):
        s.got = s.q.get()  # a C SimpleQueue would block for real, holding the turn

    def produce(s):
        with s.lock:
            s.n += 1
        s.q.put(s.n)

    def nap(s):
        began = monotonic()
        sleep(0.25)
        sleep(0.5)
        s.napped = monotonic() - began
        s.same = sleep is time.sleep
    """
)


def test_names_imported_from_queue_and_threading_are_cooperative():
    # `from queue import SimpleQueue` bound the C class at import: its get() waited for real.
    real = (IMPORTED.SimpleQueue, IMPORTED.Lock)
    result = frontrun.explore_dpor(IMPORTED.setup, [IMPORTED.consume, IMPORTED.produce], lambda s: s.got == 1,
                                   timeout=60)
    assert result.property_holds is True, result.inconclusive_reason
    assert result.num_explored == 1
    assert (IMPORTED.SimpleQueue, IMPORTED.Lock) == real  # put back afterwards
    assert IMPORTED.SimpleQueue is queue.SimpleQueue and IMPORTED.Lock is threading.Lock


def test_sleep_and_clock_imported_from_time_are_the_modelled_ones():
    seen = []
    result = frontrun.explore_dpor(lambda: State(), [IMPORTED.nap], lambda s: seen.append((s.napped, s.same)) or True)
    assert result.property_holds is True
    # The modelled clock moved on by the sleeps (and a microsecond a step); `sleep` was ours.
    assert seen == [(pytest.approx(0.75, abs=1e-5), True)]
    assert IMPORTED.sleep is time.sleep and IMPORTED.monotonic is time.monotonic


CAPTURED = load(
    """
    import abc
    import queue
    import time

    FACTORIES = {"simple": queue.SimpleQueue}

    class Service(abc.ABC):  # (a metaclass of its own)
        clock = time.monotonic

        def __init__(self, queue_cls=queue.SimpleQueue, *, sleep=time.sleep):
            self.q = queue_cls()
            self.other = FACTORIES["simple"]()
            self.sleep = sleep
            self.got = []

    def consume(s):
        began = s.clock()
        s.got.append(s.q.get())  # a C SimpleQueue would block for real, holding the turn
        s.got.append(s.other.get())
        s.sleep(1.0)
        s.waited = s.clock() - began

    def produce(s):
        s.q.put(1)
        s.other.put(2)
    """
)


def test_queues_and_clocks_captured_as_defaults_class_attributes_or_dict_values_are_cooperative():
    # A default argument, a class attribute and a registry's value took the C SimpleQueue and
    # the real clock at import: the consumer's get() blocked for real until the time ran out.
    result = frontrun.explore_dpor(CAPTURED.Service, [CAPTURED.consume, CAPTURED.produce],
                                   lambda s: s.got == [1, 2] and s.waited == pytest.approx(1.0, abs=1e-3),
                                   timeout=60)
    assert result.property_holds is True, result.inconclusive_reason or result.explanation
    # All put back afterwards.
    assert CAPTURED.Service.__init__.__defaults__ == (queue.SimpleQueue,)
    assert CAPTURED.Service.__init__.__kwdefaults__ == {"sleep": time.sleep}
    assert CAPTURED.Service.__dict__["clock"] is time.monotonic and CAPTURED.FACTORIES["simple"] is queue.SimpleQueue


EMPTY_QUEUE = load(
    """
    def take(s):
        if not s.q.empty():
            s.q.get_nowait()
    """
)


def test_an_error_passed_on_by_a_stand_in_shows_no_frame_of_frontrun():
    """`get_nowait()` on a queue another thread emptied raises `Empty` in queue.py, as without
    frontrun: the stand-in methods between the caller and it are not shown."""
    import queue

    def setup():
        q = queue.LifoQueue()
        q.put(1)
        return State(q=q)

    result = frontrun.explore_dpor(setup, [EMPTY_QUEUE.take] * 2, lambda s: True)
    assert result.property_holds is False and result.failure_kind == "exception"
    assert "_queue.Empty" in result.explanation or "queue.Empty" in result.explanation
    assert "s.q.get_nowait()" in result.explanation and "queue.py" in result.explanation
    assert "_coop.py" not in result.explanation


ONE_SLOT = load(
    """
    import threading

    class Slot:
        def __init__(self):
            self.cond = threading.Condition()
            self.item = None

        def put(self, x):
            with self.cond:
                while self.item is not None:
                    self.cond.wait()
                self.item = x
                self.cond.notify()  # may wake the other putter

        def get(self):
            with self.cond:
                while self.item is None:
                    self.cond.wait()
                self.item = None
                self.cond.notify()  # may wake the other getter
    """
)


def test_a_lost_wakeup_shows_whom_each_notify_woke():
    """notify() on a condition two kinds of waiters share: the deadlock's history says which
    thread each notify woke, so the one that woke a waiter of the wrong kind is in sight."""
    slot = ONE_SLOT.Slot
    threads = [lambda s: s.put(1), lambda s: s.put(2), lambda s: s.get(), lambda s: s.get()]
    result = frontrun.explore_dpor(slot, threads, lambda s: True)
    assert result.property_holds is False and result.failure_kind == "deadlock", result.explanation
    history = result.explanation.split("How they got there (lock operations in order):\n")[1]
    woke = re.findall(r"thread (\d+)  notify  \S+  self\.cond\.notify\(\)  # may wake the other (\w+)  \[wakes thread (\d+)\]",
                      history)
    assert woke, result.explanation
    # Some notify woke a thread of the notifier's own kind: putters are 0 and 1, getters 2 and 3.
    assert any((int(n) < 2) == (int(w) < 2) for n, _, w in woke), result.explanation


EVENT_DRAIN = load(
    """
    def produce(s):
        for i in (1, 2):
            s.items.append(i)
            s.ev.set()

    def consume(s):
        while len(s.got) < 2:
            s.ev.wait()
            while s.items:
                s.got.append(s.items.pop(0))
            s.ev.clear()  # a set() between the drain and this clear() is lost
    """
)


CONDITION_IF = load(
    """
    def put(b):
        with b.cv:
            b.items.append(1)
            b.cv.notify_all()

    def get(b):
        with b.cv:
            if not b.items:  # `if`, not `while`: another getter may take it first
                b.cv.wait()
            b.got.append(b.items.pop(0))
    """
)


def test_a_conditions_lock_is_called_the_condition():
    # It was "the lock state.cv._lock", a name the program never wrote.
    setup = lambda: State(cv=threading.Condition(), items=[], got=[])  # noqa: E731
    result = frontrun.explore_dpor(setup, [CONDITION_IF.get, CONDITION_IF.get, CONDITION_IF.put, CONDITION_IF.put],
                                   lambda s: len(s.got) == 2)
    assert result.property_holds is False, result.explanation
    assert "the condition state.cv (created at " in result.explanation, result.explanation
    assert "_lock" not in result.explanation, result.explanation


def test_an_events_calls_are_told_as_calls_not_as_its_locks_operations():
    # The history showed `s.ev.set()` as "acquire", "notify", "release" of a lock the program
    # never named (the event's condition's).
    setup = lambda: State(ev=threading.Event(), items=[], got=[])  # noqa: E731
    result = frontrun.explore_dpor(setup, [EVENT_DRAIN.produce, EVENT_DRAIN.consume], lambda s: True)
    assert result.property_holds is False and result.failure_kind == "deadlock", result.explanation
    history = result.explanation.split("How they got there (lock operations in order):\n")[1].split("Race on")[0]
    calls = re.findall(r"thread (\d)  (\w+) +\S+ +(s\.ev\.\w+)\(\)", history)
    assert calls and all(what in ("event", "notify") for _, what, _ in calls), result.explanation
    assert ("1", "event", "s.ev.clear") in calls and ("0", "event", "s.ev.set") in calls, result.explanation
    assert "acquire" not in history and "release" not in history, result.explanation


CHECK_OUTSIDE = load(
    """
    import threading

    class Mailbox:
        def __init__(self):
            self.cv = threading.Condition()
            self.items = []

    def post(m):
        with m.cv:
            m.items.append(1)
            m.cv.notify()

    def wait_for_mail(m):
        if not m.items:  # checked outside the lock
            with m.cv:
                m.cv.wait()
    """
)


def test_a_wait_after_a_check_outside_the_lock_shows_the_notify_that_woke_no_one_and_the_race():
    # The deadlock's history had neither the notify that came before the wait (it woke no
    # one) nor the unlocked check of the list that let the thread wait after it.
    result = frontrun.explore_dpor(CHECK_OUTSIDE.Mailbox, [CHECK_OUTSIDE.post, CHECK_OUTSIDE.wait_for_mail],
                                   lambda m: True)
    assert result.property_holds is False and result.failure_kind == "deadlock", result.explanation
    history = result.explanation.split("How they got there (lock operations in order):\n")[1]
    assert re.search(r"thread 0  notify  \S+  m\.cv\.notify\(\)  \[no thread was waiting: it wakes no one\]", history)
    race = history.split("Race on list as a whole")[1]
    lines = [line.split()[1:3] for line in race.splitlines()[1:3]]
    assert lines == [["1", "read"], ["0", "write"]] and "if not m.items:" in race, result.explanation
