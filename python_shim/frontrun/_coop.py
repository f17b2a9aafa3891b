"""Cooperative threading primitives, patched in for the duration of an exploration.

While ``explore_dpor`` runs, ``threading.Lock``/``RLock``/``Condition``, ``queue.SimpleQueue``,
``time.sleep``, ``Thread.start/join/is_alive``, ``Event.is_set/set/clear``,
``functools.cached_property.__get__`` and the ordering of ``concurrent.futures`` futures are
replaced, and logging handlers hold cooperative locks. ``Semaphore``,
``BoundedSemaphore``, ``Event``, ``Barrier`` and ``queue.Queue`` (and its subclasses) are written
in Python on top of ``Lock`` and ``Condition``, which they look up at construction, so the ones
made during the exploration are cooperative too; FIFO queues are modelled by their items
instead (``_queue_put``), semaphores by their tokens (``_semaphore_acquire``) and
``concurrent.futures`` futures by their state (``_future_result``). ``time.monotonic`` and
``time.time`` read a modelled clock in the threads frontrun runs (``_modelled_clock_read``).
``__import__`` and ``importlib.import_module``
run an explored thread's imports quietly (``quiet_import``).

In an explored thread every acquire, release and condition wait is an engine operation: the
engine knows who holds which lock, never runs a thread whose lock is taken, and reports a
deadlock when every live thread waits. Anywhere else (the thread running the exploration,
``setup`` and the invariant) the same objects behave like ordinary locks.

Real ``Condition``, ``Semaphore``, ``BoundedSemaphore``, ``Event``, ``Barrier`` and ``queue.Queue``
objects made *before* the exploration (at import) are made cooperative on first sight, when an
explored thread enters ``with`` on one or calls a method of it (``make_cooperative``), and put
back as they were when the exploration ends. A method called on one before any such report
(``cond.acquire()`` bound before the first ``with``; ``ev.wait()`` where the rewriter does not
report method calls) still runs on the real object.

A non-blocking or timed ``acquire`` is one engine step, a try, the same whatever the lock's
state (a thread's next step must depend only on its own past): when it runs it takes the lock if
it is free and fails otherwise, never waiting in between. The engine orders it against every
acquire, release and try of that lock, so DPOR explores it both before and after another
thread's critical section. A timed acquire that fails retries once the lock is released, and
times out when nothing else can run.

With ``timeouts="any_time"`` a timed wait may time out wherever it waits: a timed acquire is a
try, a timed condition wait re-acquires its lock whenever the engine runs it (notified or not,
ordered against the notifier's hold of that lock), and a timed ``join`` looks whether the thread
is alive and returns.
"""

from __future__ import annotations

import _thread
import builtins
import concurrent.futures._base as _futures
import concurrent.futures.thread as _futures_thread
import contextvars
import datetime as _datetime
import errno
import functools
import gc
import importlib
import itertools
import logging
import os
import queue
import random
import select as _select
import selectors
import socket
import subprocess
import sys
import tempfile as _tempfile
import threading
import time
import types
import uuid as _uuid
import warnings
import weakref
from collections import deque
from contextlib import contextmanager

from frontrun import _native

try:
    import fcntl as _fcntl
except ImportError:  # (not on Windows)
    _fcntl = None
try:
    import sqlite3 as _sqlite3
except ImportError:  # (a Python built without it)
    _sqlite3 = None

_rt = None  # the DporRuntime of the exploration in progress
_rt_pid = None  # the process it runs in
_pool = None
# The clock during an exploration. A sleep or a wait that times out takes no real time, but code
# that re-reads the clock (``Condition.wait_for(p, timeout)``, ``as_completed(fs, timeout)``)
# must see it pass. In the threads frontrun runs (explored threads, and setup() and the
# invariant in the exploring one) it is a modelled clock: it starts each execution at the same
# reading and moves only by sleeps, timeouts and a microsecond per read, so what a wait has left
# is the same whenever the schedule is (with real time in it, two such waits timed out in either
# order from one execution to the next, and the search stopped as nondeterministic). Each
# explored thread has its own (the engine keeps it): its sleeps and timeouts move it on, and it
# is never behind the time of what it has seen of the others (a release, an item, a write), so
# two threads sleeping side by side do not add up their sleeps. A timed wait that times out
# moves it to its length after the wait began. setup() reads the clock from 0, and the threads
# go on from where it left off; the invariant sees the latest time they reached. Other threads
# see real time, ahead by what sleeps and timeouts skipped.
_clock_offset = 0.0  # seconds the clock is ahead of real time, for other threads
_exec_clock = 0.0  # the modelled clock of setup() (and, once the threads began, their start)
_threads_began = False  # an explored thread has read the clock in this execution
_check_clock = 0.0  # the invariant's reading
# time.monotonic(), time.time() and time.perf_counter() when the exploration began
_clock_start = (0.0, 0.0, 0.0)
_checking_ident = None  # the exploring thread while it checks the invariant
_CLOCK_READ_TICK = 1e-6
# ``explore_dpor(timeouts="any_time")``: a timed wait may time out at any point while it waits,
# not only once nothing else can run.
timeouts_any_time = False

_orig = {}
_HERE = os.path.dirname(os.path.abspath(__file__))
_INTERNAL_FILES = {
    os.path.abspath(__file__),
    os.path.abspath(threading.__file__),
    os.path.abspath(queue.__file__),
}


_internal_names = {}  # co_filename -> whether it is frontrun's, threading's or queue's


def _is_internal(name):
    known = _internal_names.get(name)
    if known is None:
        path = os.path.abspath(name)
        known = _internal_names[name] = path in _INTERNAL_FILES or path.startswith(_HERE)
    return known


def _caller_site(depth=2, internal=_is_internal):
    """(file, line) of the first frame outside frontrun and the threading/queue modules (or
    whatever else ``internal`` says to pass)."""
    try:
        f = sys._getframe(depth)
    except ValueError:
        return None
    first = f
    while f is not None:
        if not internal(f.f_code.co_filename):
            return (f.f_code.co_filename, f.f_lineno)
        f = f.f_back
    # No caller outside them (a Timer's own thread): threading's or queue's own frame.
    f = first
    while f is not None:
        if not os.path.abspath(f.f_code.co_filename).startswith(_HERE):
            return (f.f_code.co_filename, f.f_lineno)
        f = f.f_back
    return None


def _managed():
    """The runtime, if the calling thread is an explored thread (not in a process forked from
    one: threading's own after-fork hook runs before frontrun's) and not importing a module."""
    rt = _rt
    if rt is not None and rt.current_id() is not None and _rt_pid == os.getpid():
        return None if _unexplored_now() else rt
    return None


def _unexplored_now():
    """Whether the calling thread runs unseen for now: a module body, a wait for a child."""
    if not (_importing or _outside):
        return False  # (the usual case, on every cooperative operation)
    ident = _thread.get_ident()
    return ident in _importing or ident in _outside


# Idents of explored threads running a module body (``quiet_import``).
_importing = set()
# Idents of explored threads waiting for a child process (``_popen_wait``).
_outside = set()


@contextmanager
def quiet_import():
    """Run an explored thread's import unseen: no reports, ordinary locks. A module body runs
    in the first execution only (later ones find the module in ``sys.modules``), so anything it
    reported would make the next executions differ from the schedules recorded. (For the
    explored thread's own use: ``_quietly`` checks.)"""
    ident = _thread.get_ident()
    _importing.add(ident)
    was_muted = _native._mute_reports(True)
    try:
        yield
    finally:
        _native._mute_reports(was_muted)
        _importing.discard(ident)


def _site(rt):
    return _caller_site(3) if rt.explaining else None


def watch_holding_call(caller):
    """``caller`` is about to call a holding method (``lst.sort(key=f)``): the first Python
    function the call runs (``f``, a ``__lt__``) is a step of the call's write of the list, so
    another thread may find it empty even when ``f`` touches nothing shared. Watched with a
    profile function of this thread's, which puts back the one before at that point or when
    the call returns (a key in C runs no Python: the sort is one step, as in CPython)."""
    previous = sys.getprofile()

    def watch(frame, event, arg):
        if event == "call" and frame.f_back is caller:
            sys.setprofile(previous)
            rt = _managed()
            if rt is not None:
                rt.held_point((caller.f_code.co_filename, caller.f_lineno) if rt.explaining else None)
        elif event in ("c_return", "c_exception") and frame is caller and getattr(arg, "__name__", None) == "sort":
            sys.setprofile(previous)

    sys.setprofile(watch)


def watch_iterating_call(caller, callee, containers, write=False, keys_only=()):
    """``caller`` is about to make a call that works on ``containers`` while it may run Python
    code (``max(d, key=f)``, ``list(map(f, d))``, ``lst.remove(x)`` with an item's ``__eq__``,
    ``heappush(h, x)`` with a ``__lt__``): each Python function it calls is a point where the
    call goes on, a step of its read (or ``write``) of them, so another thread may change a
    container between two items. Watched with a profile function of this thread's, which puts
    back the one before when the call returns. ``callee`` is the callable, ``(receiver, name)``
    for a method, or None for an operator (``x in lst``). (A call of a type, ``list(...)``, has
    no return event, nor has an operator: the watch ends when ``caller`` calls anything else or
    returns.) ``keys_only``: per container, whether the call walks that dict's keys alone."""
    previous = sys.getprofile()
    called = []  # the code the call runs in Python (`f`): the same every time

    if type(callee) is tuple:
        receiver, name = callee

        def is_callee(arg):
            return getattr(arg, "__self__", None) is receiver and getattr(arg, "__name__", None) == name
    else:
        def is_callee(arg):
            return callee is not None and arg is callee

    def watch(frame, event, arg):
        if event == "call":
            if frame.f_back is not caller:
                return
            if called and frame.f_code is not called[0]:
                sys.setprofile(previous)
                return
            called[:] = [frame.f_code]
            rt = _managed()
            if rt is not None:
                rt.iter_point(containers, (caller.f_code.co_filename, caller.f_lineno) if rt.explaining else None,
                              write, list(keys_only or ()))
        elif frame is caller:
            done = event == "return" or (
                is_callee(arg) if event in ("c_return", "c_exception") else event == "c_call" and not is_callee(arg)
            )
            if done:
                sys.setprofile(previous)

    sys.setprofile(watch)


def _check_acquire_arguments(blocking, timeout):
    """Raises what a real lock's ``acquire`` raises for these arguments (a negative or ``None``
    timeout, a timeout on a non-blocking call), with its version's message: a free lock of
    one's own checks them and returns at once."""
    probe = _thread.allocate_lock()
    probe.acquire(blocking, timeout)


def _name_by_maker(obj):
    """Names ``obj``, just made, by the thread that made it and how many it made before (an
    Event's lock, a Future): which thread uses it first is the schedule's. (Not frontrun's own
    objects, nor those an import makes: it runs in the first execution only; nor those of a
    worker that starts while setup() runs, whose names would have been setup()'s in that
    execution only.)"""
    if _rt is not None and _rt_pid == os.getpid() and not _unexplored_now() and (
            _rt.current_id() is not None or _thread.get_ident() == _setup_ident):
        _rt.reserve_name(obj)


class Lock:
    """``threading.Lock`` during an exploration."""

    __slots__ = ("_real", "_frontrun_site", "_frontrun_owner", "__weakref__")

    def __init__(self, _named=True):
        self._real = _thread.allocate_lock()
        self._frontrun_site = _caller_site(2)
        self._frontrun_owner = self  # the object the user holds (an RLock for its inner lock)
        if _named:
            _name_by_maker(self)

    def acquire(self, blocking=True, timeout=-1):
        rt = _managed()
        if rt is None:
            return self._real.acquire(blocking, timeout)
        _check_acquire_arguments(blocking, timeout)
        timed = timeout >= 0
        began = rt.clock() if timed else None
        if timed and timeouts_any_time:
            # Taken if free, else timed out: a try, ordered against the holder's release.
            got = rt.lock_acquire(self, False, None, _site(rt))
        else:
            got = rt.lock_acquire(self, blocking, timeout if timed else None, _site(rt))
        if not got and timed:
            _timed_out(rt, began, timeout, "acquire")
        return got

    def release(self):
        rt = _managed()
        if rt is None:
            self._real.release()
            return
        # Whether it is held is decided when the release runs: another thread's release may
        # come between a `locked()` and this one.
        if not rt.lock_release(self, _site(rt)):
            raise RuntimeError("release unlocked lock")
        if self._real.locked():
            # Taken outside the threads (in setup()), where the real lock is used: it is free
            # now for the invariant and what runs after the exploration too.
            self._real.release()

    def locked(self):
        rt = _managed()
        if rt is None:
            if _rt is not None and _thread.get_ident() in (_setup_ident, _checking_ident):
                return _rt.lock_state(self)[0]  # (setup() and the invariant see the model's)
            return self._real.locked()
        # A look at the lock, ordered against its acquisitions and releases.
        return rt.lock_locked(self, _site(rt))

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    # Condition protocol.
    def _is_owned(self):
        rt = _managed()
        if rt is None:
            if self._real.acquire(False):
                self._real.release()
                return False
            return True
        return rt.lock_state(self)[1]

    def _release_save(self):
        self.release()

    def _acquire_restore(self, _saved):
        # In an explored thread the engine took it back (``cond_wait``); elsewhere it is ours to.
        if _managed() is None:
            self._real.acquire()

    def _at_fork_reinit(self):
        # Modules registered it with os.register_at_fork at import (concurrent.futures.thread
        # does, and may first be imported inside an exploration).
        self._real._at_fork_reinit()

    acquire_lock, release_lock, locked_lock = acquire, release, locked

    @property
    def _frontrun_base(self):
        return self

    def __repr__(self):
        site = f" created at {self._frontrun_site[0]}:{self._frontrun_site[1]}" if self._frontrun_site else ""
        return f"<frontrun cooperative Lock{site}>"


class RLock:
    """``threading.RLock`` during an exploration: recursion counted here, one engine lock below."""

    __slots__ = ("_base", "_owner", "_count", "_real", "_frontrun_site", "__weakref__")

    def __init__(self, *args, _named=True, **kwargs):
        self._base = Lock(_named)
        self._base._frontrun_site = self._frontrun_site = _caller_site(2)
        self._base._frontrun_owner = self
        self._owner = None
        self._count = 0
        self._real = _orig["RLock"]()

    def acquire(self, blocking=True, timeout=-1):
        rt = _managed()
        if rt is None:
            return self._real.acquire(blocking, timeout)
        _check_acquire_arguments(blocking, timeout)
        me = rt.current_id()
        if self._owner == me:
            self._count += 1
            return True
        if not self._base.acquire(blocking, timeout):
            return False
        self._owner = me
        self._count = 1
        return True

    def release(self):
        rt = _managed()
        if rt is None:
            self._real.release()
            return
        if self._owner != rt.current_id():
            raise RuntimeError("cannot release un-acquired lock")
        self._count -= 1
        if self._count == 0:
            self._owner = None
            self._base.release()

    __enter__ = acquire

    def __exit__(self, *exc):
        self.release()

    def locked(self):
        return self._base.locked() if _managed() else self._count > 0

    def _is_owned(self):
        rt = _managed()
        if rt is None:
            return self._real._is_owned()
        return self._owner == rt.current_id()

    def _release_save(self):
        if _managed() is None:
            return ("real", self._real._release_save())
        saved = (self._count, self._owner)
        self._count = 0
        self._owner = None
        self._base.release()
        return saved

    def _acquire_restore(self, saved):
        if saved[0] == "real":
            self._real._acquire_restore(saved[1])
            return
        self._count, self._owner = saved

    def _at_fork_reinit(self):
        self._real._at_fork_reinit()
        self._base._at_fork_reinit()
        self._owner, self._count = None, 0

    def _recursion_count(self):
        rt = _managed()
        if rt is None:
            return self._real._recursion_count()
        return self._count if self._owner == rt.current_id() else 0

    @property
    def _frontrun_base(self):
        return self._base

    def __repr__(self):
        return f"<frontrun cooperative RLock owner={self._owner} count={self._count}>"


# Engine thread id -> the Condition it last waited on (named in a deadlock's explanation).
last_condition_wait = {}


class Condition:
    """``threading.Condition`` during an exploration.

    ``wait`` is two engine steps: the release of the lock (the waiter is registered before, under
    the lock), then the re-acquisition, which the engine only grants once the thread has been
    notified — or, for a wait with a timeout, when nothing else can run.
    """

    def __init__(self, lock=None):
        if lock is None:
            lock = RLock()
        self._lock = lock
        self.acquire = lock.acquire
        self.release = lock.release
        self._waiters = deque()  # engine thread ids
        self._real_waiters = deque()  # waiter locks of threads outside the exploration

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)

    def __repr__(self):
        return f"<frontrun cooperative Condition({self._lock!r}, {len(self._waiters)})>"

    def _at_fork_reinit(self):
        # threading's after-fork hook, in a child forked while a thread waited on it.
        self._lock._at_fork_reinit()
        self._waiters.clear()
        self._real_waiters.clear()

    def _is_owned(self):
        owned = getattr(self._lock, "_is_owned", None)
        if owned is not None:
            return owned()
        if self._lock.acquire(False):
            self._lock.release()
            return False
        return True

    def wait(self, timeout=None):
        return self._wait(timeout, timeouts_any_time)

    def _wait(self, timeout, any_time):
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        rt = _managed()
        base = getattr(self._lock, "_frontrun_base", None)
        if rt is None or base is None:
            return self._wait_real(timeout)
        if timeout is not None and timeout <= 0:
            # Time is up at once (`Semaphore.acquire(timeout=0)`, a deadline already past): the
            # lock is let go and taken back, and nothing waits for others to run out of work.
            saved = self._lock._release_save() if hasattr(self._lock, "_release_save") else self._lock.release()
            base.acquire()  # what `cond_wait` does once the engine grants it
            if hasattr(self._lock, "_acquire_restore"):
                self._lock._acquire_restore(saved)
            return False
        me = rt.current_id()
        self._waiters.append(me)
        last_condition_wait[me] = self
        saved = self._lock._release_save() if hasattr(self._lock, "_release_save") else self._lock.release()
        notified = False
        began = rt.clock() if timeout is not None else None
        try:
            notified = rt.cond_wait(base, timeout, _site(rt), any_time)
            if not notified and timeout is not None:
                _timed_out(rt, began, timeout, "wait")
        finally:
            if hasattr(self._lock, "_acquire_restore"):
                self._lock._acquire_restore(saved)
            if not notified:
                try:
                    self._waiters.remove(me)
                except ValueError:
                    pass
        return notified

    def _wait_real(self, timeout):
        _setup_would_wait()
        waiter = _thread.allocate_lock()
        waiter.acquire()
        self._real_waiters.append(waiter)
        saved = self._lock._release_save() if hasattr(self._lock, "_release_save") else self._lock.release()
        gotit = False
        try:
            if timeout is None:
                waiter.acquire()
                gotit = True
            elif timeout > 0:
                gotit = waiter.acquire(True, timeout)
            else:
                gotit = waiter.acquire(False)
            return gotit
        finally:
            if hasattr(self._lock, "_acquire_restore"):
                self._lock._acquire_restore(saved)
            else:
                self._lock.acquire()
            if not gotit:
                try:
                    self._real_waiters.remove(waiter)
                except ValueError:
                    pass

    def wait_for(self, predicate, timeout=None):
        endtime = None
        waittime = timeout
        result = predicate()
        while not result:
            if waittime is not None:
                if endtime is None:
                    endtime = time.monotonic() + waittime
                else:
                    waittime = endtime - time.monotonic()
                    if waittime <= 0:
                        break
            if not self.wait(waittime) and waittime is not None:
                # A modelled timeout: the time is up.
                result = predicate()
                break
            result = predicate()
        return result

    def notify(self, n=1):
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        rt = _rt
        told = rt is not None and rt.explaining and rt.current_id() is not None
        if told and not self._waiters and not self._real_waiters:
            # No one waits yet: a lost wakeup, when a thread waits after it.
            notified.append((rt.steps_taken(), rt.current_id(), None, _caller_site(2)))
        while n > 0 and self._waiters:
            thread = self._waiters.popleft()
            if rt is not None:
                rt.notify(thread)
                if told:
                    notified.append((rt.steps_taken(), rt.current_id(), thread, _caller_site(2)))
            n -= 1
        while n > 0 and self._real_waiters:
            self._real_waiters.popleft().release()
            n -= 1

    def notify_all(self):
        self.notify(len(self._waiters) + len(self._real_waiters))

    notifyAll = notify_all


class SimpleQueue(queue.Queue):
    """``queue.SimpleQueue`` during an exploration: an unbounded cooperative queue."""

    def __init__(self):
        super().__init__()

    def put(self, item, block=True, timeout=None):
        super().put(item, block, timeout)

    def put_nowait(self, item):
        self.put(item, block=False)


# ---------------------------------------------------------------------------- FIFO queues

# A ``queue.Queue`` (bounded or not, or a ``SimpleQueue``) used by explored threads is modelled
# by its items, not by its lock. Items are numbered in the order they are put: a put is one step
# that writes the queue's count of puts and its next item; a get is one step that writes the
# count of gets and the item it takes, the oldest (waiting, if there is none yet, for the put of
# that item). So a get depends on the put of the item it takes, not on every put, and the search
# orders puts among puts and gets among gets (with the lock, two producers of three items and
# one consumer had 18,480 orders for the 20 orders of the items). In a bounded queue a put also
# writes the item ``maxsize`` places before its own: the get of that one made its room. qsize,
# empty and full read both counts; task_done and join the count of puts and the unfinished
# tasks. Each step is the whole operation, as under the lock. Item numbers are counted keys
# (``engine::counted``): the same get takes another number when the puts and gets before it
# came in another order. LIFO and priority queues and subclasses that store items their own way
# or override these methods keep the lock.
_queue_models = {}  # id(queue or semaphore) -> its _QueueModel or _SemaphoreModel, for this execution
# The queue's keys its steps touch (not attribute names: no Python code touches them). The
# queue object, not the model, is the one touched: a model is made at the queue's first use in an
# execution, which comes in another order in another execution, and objects are numbered in
# the order they are first touched.
_PUTS, _GETS, _TASKS = "<put count>", "<get count>", "<unfinished tasks>"
# Engine id -> what it waits in (named in a deadlock): (queue, "put", "get" or "join"),
# (semaphore, "acquire"), (future, "result").
queue_waits = {}
# (SimpleQueue is the cooperative one below: its put and put_nowait pass to Queue's.)
_QUEUE_METHODS = ("put", "get", "put_nowait", "get_nowait", "qsize", "empty", "full", "task_done", "join",
                  "_init", "_put", "_get", "_qsize") + (("shutdown",) if hasattr(queue.Queue, "shutdown") else ())


class _QueueModel:
    """The counts of one queue in this execution."""

    def __init__(self, q):
        self.q = q  # kept alive: the key is its id
        self.puts, self.gets = len(q.queue), 0  # items are numbered from gets to puts - 1

    # (The runtime asks these while it decides what runs next: they read the queue's
    # __dict__, never a property that could run the program's code.)
    def has_item(self):
        return self.gets < self.puts or self.q.__dict__.get("is_shutdown", False)

    def has_room(self):
        bound = self.q.__dict__.get("maxsize", 0)
        return bound <= 0 or self.puts - self.gets < bound or self.q.__dict__.get("is_shutdown", False)

    def tasks_done(self):
        return not self.q.__dict__.get("unfinished_tasks")


def _modelled(obj, fits, model_class):
    """The runtime and ``obj``'s model in this execution (made at its first use there, if
    ``fits(obj)``), or (None, None) when ``obj`` keeps its lock."""
    rt = _managed()
    if rt is None:
        return None, None
    model = _queue_models.get(id(obj))
    if model is None:
        if not fits(obj):
            return None, None
        model = _queue_models[id(obj)] = model_class(obj)
    return rt, model


def _queue_fits(q):
    cls = type(q)
    return type(q.queue) is deque and not getattr(q, "is_shutdown", False) and all(
        getattr(cls, name) in (getattr(queue.Queue, name), getattr(SimpleQueue, name)) for name in _QUEUE_METHODS)


def _queue_model(q):
    return _modelled(q, _queue_fits, _QueueModel)


def _queue_put(self, item, block=True, timeout=None):
    rt, m = _queue_model(self)
    if m is None:
        return _orig["Queue.put"](self, item, block, timeout)
    bound = self.maxsize if self.maxsize > 0 else None
    if bound and block and timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    # It makes the next item; in a full queue, as a get waits for an item (see there), it waits
    # for the get of the item `maxsize` places before its own, which made the room it takes.
    timed_out_from = _queue_wait(rt, m, self, "put", _PUTS, "puts", m.has_room, bound,
                                 block and bound is not None, timeout)
    if self.__dict__.get("is_shutdown", False):
        raise queue.ShutDown
    if not m.has_room():
        if timed_out_from is not None:
            _timed_out(rt, timed_out_from, timeout, "put")
        raise queue.Full
    self.queue.append(item)
    m.puts += 1
    self.unfinished_tasks += 1


def _queue_wait(rt, m, q, what, key, counter, ready, behind, block, timeout):
    """A put's or get's step (or a semaphore's take), which waits (``block``) until ``ready()``:
    with a ``timeout``, until nothing else can run (with ``timeouts="any_time"``, not at all; a
    timeout of 0 is up at once). The engine races it with every put or get of the other threads before it
    (``engine::state``), so the search also runs it before the one that took what it waits
    for. Returns when it began to wait (for ``_timed_out``) if it waited for a time that ran out,
    else None."""
    waits = block and (timeout is None or timeout > 0)
    began = rt.clock() if waits and timeout is not None else None
    me = rt.current_id()
    queue_waits[me] = (q, what)
    rt.queue_step([(q, key, True)], (q, m, counter), behind, ready=ready if waits else None, timeout=timeout,
                  site=_site(rt), any_time=timeouts_any_time)
    del queue_waits[me]
    return began if waits and not ready() else None


def _queue_get(self, block=True, timeout=None):
    rt, m = _queue_model(self)
    if m is None:
        return _orig["Queue.get"](self, block, timeout)
    if block and timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    # It takes the oldest item, waiting for its put.
    timed_out_from = _queue_wait(rt, m, self, "get", _GETS, "gets", m.has_item, None, block, timeout)
    if m.gets < m.puts:
        m.gets += 1
        return self.queue.popleft()
    if self.__dict__.get("is_shutdown", False):
        raise queue.ShutDown
    if timed_out_from is not None:
        _timed_out(rt, timed_out_from, timeout, "get")
    raise queue.Empty


def _queue_shutdown(self, immediate=False):
    rt, m = _queue_model(self)
    if m is None:
        return _orig["Queue.shutdown"](self, immediate)
    rt.queue_step([(self, _PUTS, True), (self, _GETS, True), (self, _TASKS, True)], site=_site(rt))
    self.is_shutdown = True
    if immediate:
        while self.queue:
            self.queue.popleft()
            m.gets += 1
            if self.unfinished_tasks > 0:
                self.unfinished_tasks -= 1


def _queue_put_nowait(self, item):
    return self.put(item, block=False)


def _queue_get_nowait(self):
    return self.get(block=False)


def _queue_look(name, answer):
    def look(self):
        rt, m = _queue_model(self)
        if m is None:
            return _orig[f"Queue.{name}"](self)
        rt.queue_step([(self, _PUTS, False), (self, _GETS, False)], site=_site(rt))
        return answer(self)

    look.__name__ = name
    return look


def _queue_task_done(self):
    rt, m = _queue_model(self)
    if m is None:
        return _orig["Queue.task_done"](self)
    # Whether it raises depends on how many items were put before it.
    rt.queue_step([(self, _TASKS, True), (self, _PUTS, False)], site=_site(rt))
    if self.unfinished_tasks <= 0:
        raise ValueError("task_done() called too many times")
    self.unfinished_tasks -= 1


def _queue_join(self):
    rt, m = _queue_model(self)
    if m is None:
        return _orig["Queue.join"](self)
    site = _site(rt)
    look = [(self, _TASKS, False), (self, _PUTS, False)]
    # A first look that never waits, then one that waits for the last task_done: the search can
    # put the first before a put that would have made it wait.
    rt.queue_step(look, site=site)
    if self.unfinished_tasks:
        me = rt.current_id()
        queue_waits[me] = (self, "join")
        rt.queue_step(look, ready=m.tasks_done, site=site)
        del queue_waits[me]


# ---------------------------------------------------------------------------- semaphores

# A ``threading.Semaphore`` is modelled as a queue of tokens, not by its condition's lock: its
# value is the tokens in it, a release puts one, an acquire takes the oldest (waiting, if there is
# none, for the release that puts it), as a FIFO queue's get takes an item. So an acquire depends
# on the release whose token it takes, not on every release (with the lock, each acquire and
# release was two or four lock steps, ordered against all others: a pool's idle-worker
# semaphore, taken with ``acquire(timeout=0)`` at each submit and released by each worker, was
# most of a thread pool's schedules). A failed try is a step of the take, ordered against the
# release that would have given it a token. ``BoundedSemaphore.release`` also reads how many
# were taken (it raises if that would pass the initial value). Subclasses that override these
# methods keep the lock.
_SEMAPHORE_METHODS = ("acquire", "__enter__", "release", "__exit__")


class _SemaphoreModel:
    """The tokens of one semaphore in this execution (numbered from ``gets`` to ``puts - 1``)."""

    def __init__(self, sem):
        self.sem = sem  # kept alive: the key is its id
        self.gets = 0

    @property
    def puts(self):
        # (Its value may change outside the explored threads, in setup() or the invariant.)
        return self.gets + self.sem.__dict__.get("_value", 0)

    def has_item(self):
        return self.sem.__dict__.get("_value", 0) > 0


def _semaphore_fits(sem):
    cls = type(sem)
    base = threading.BoundedSemaphore if isinstance(sem, threading.BoundedSemaphore) else threading.Semaphore
    return type(sem.__dict__.get("_value")) is int and all(getattr(cls, name) is getattr(base, name)
                                                           for name in _SEMAPHORE_METHODS)


def _semaphore_model(sem):
    return _modelled(sem, _semaphore_fits, _SemaphoreModel)


def _semaphore_acquire(self, blocking=True, timeout=None):
    rt, m = _semaphore_model(self)
    if m is None:
        return _orig["Semaphore.acquire"](self, blocking, timeout)
    if not blocking and timeout is not None:
        raise ValueError("can't specify timeout for non-blocking acquire")
    # It takes the oldest token, waiting for its release, as a queue's get takes an item.
    timed_out_from = _queue_wait(rt, m, self, "acquire", _GETS, "gets", m.has_item, None, blocking, timeout)
    if self._value > 0:
        self._value -= 1
        m.gets += 1
        return True
    if timed_out_from is not None:
        _timed_out(rt, timed_out_from, timeout, "acquire")
    return False


def _semaphore_release(self, n=1):
    rt, m = _semaphore_model(self)
    bounded = isinstance(self, threading.BoundedSemaphore)
    if m is None:
        return _orig["BoundedSemaphore.release" if bounded else "Semaphore.release"](self, n)
    if n < 1:
        raise ValueError("n must be one or more")
    looks = [(self, _GETS, False)] if bounded else []
    if n == 1:
        rt.queue_step([(self, _PUTS, True)] + looks, (self, m, "puts"), site=_site(rt))
    else:  # (tokens numbered from `puts` on: ordered against every take, as a whole)
        rt.queue_step([(self, None, True)] + looks, site=_site(rt))
    if bounded and self._value + n > self._initial_value:
        raise ValueError("Semaphore released too many times")
    self._value += n


# ---------------------------------------------------------------------------- real objects made before

# (object, its class, a copy of its __dict__) of every real threading/queue object made cooperative
# during this exploration; put back as they were when it ends.
_converted = []
_converted_ids = set()


def _real_lock_free(lock):
    return not lock.locked() if hasattr(lock, "locked") else not lock._is_owned()


def _coop_condition(cond, lock):
    """Turns a real ``threading.Condition`` into a cooperative one over ``lock``."""
    _remember(cond)
    cond.__class__ = Condition
    cond.__dict__.clear()
    Condition.__init__(cond, lock)


def _remember(obj):
    _converted.append((obj, obj.__class__, dict(obj.__dict__)))
    _converted_ids.add(id(obj))


def make_cooperative(obj, method=None):
    """Called by the runtime on first sight of a real ``Condition``/``Semaphore``/``Event``/
    ``Barrier``/``queue.Queue`` made before the exploration (at import): they are Python classes
    over ``_thread`` locks whose waits would block for real, holding the turn, and hang the run.
    Their locks and conditions are swapped for cooperative ones (only while no one holds them),
    and put back when the exploration ends."""
    if id(obj) in _converted_ids or _rt is None:
        return
    try:
        if isinstance(obj, _orig["Condition"]):
            # ``cond.acquire``/``release`` are the real lock's own methods, already fetched when a
            # call of one is reported: converting now would split the acquire from its release.
            if method not in ("acquire", "release", "__enter__", "__exit__") and _real_lock_free(obj._lock):
                _coop_condition(obj, RLock(_named=False) if isinstance(obj._lock, _orig_rlock_types) else Lock(False))
        elif isinstance(obj, queue.Queue) and not isinstance(obj, SimpleQueue):
            conds = [c for c in (obj.not_empty, obj.not_full, obj.all_tasks_done) if isinstance(c, _orig["Condition"])]
            if conds and _real_lock_free(obj.mutex):
                lock = Lock(False)
                _remember(obj)
                obj.mutex = lock
                for c in conds:
                    _coop_condition(c, lock)
        else:
            cond = getattr(obj, "_cond", None)  # Semaphore, BoundedSemaphore, Event, Barrier
            if isinstance(cond, _orig["Condition"]) and id(cond) not in _converted_ids and _real_lock_free(cond._lock):
                _coop_condition(cond, RLock(_named=False) if isinstance(cond._lock, _orig_rlock_types) else Lock(False))
    except Exception:  # never break the code under test: it then runs with the real objects
        pass


def _restore_converted():
    while _converted:
        obj, cls, saved = _converted.pop()
        obj.__class__ = cls
        obj.__dict__.clear()
        obj.__dict__.update(saved)
    _converted_ids.clear()


# The classes the runtime hands to make_cooperative (exact threading/queue classes and subclasses).
COOPERATIVE_ON_SIGHT = (threading.Condition, threading.Semaphore, threading.Event, threading.Barrier, queue.Queue)
_orig_rlock_types = (type(_thread.RLock()), getattr(threading, "_PyRLock", type(_thread.RLock())))


def _advance_clock(rt, to):
    """The calling explored thread's modelled time moves on to ``to`` (on its own clock)."""
    global _clock_offset
    before = rt.clock()
    if to > before:
        _clock_offset += rt.clock_at_least(to) - before


def _modelled_clock_read():
    """Seconds since the execution began, if the calling thread reads the modelled clock."""
    global _exec_clock, _threads_began
    rt = _rt
    if rt is None or _rt_pid != os.getpid():
        return None
    if rt.current_id() is None:
        # (Not the exploring thread's own waits: they read the clock as often as real time says.)
        ident = _thread.get_ident()
        if ident == _checking_ident:
            global _check_clock
            _check_clock = max(_check_clock, _exec_clock + rt.clock()) + _CLOCK_READ_TICK
            return _check_clock
        if ident != _setup_ident or _threads_began:
            return None
        _exec_clock += _CLOCK_READ_TICK  # (a loop that waits for the clock to pass a time ends)
        return _exec_clock
    _threads_began = True
    # Threads that have seen nothing of each other are at the same modelled time; each reads it
    # a quarter microsecond apart (the finest step a `time.time()` float keeps), as threads that
    # really run at once never read the same instant: a timestamp made an id collided.
    phase = (rt.current_id() % 4) * _CLOCK_READ_TICK / 4
    return _exec_clock + rt.clock_at_least(rt.clock() + _CLOCK_READ_TICK) + phase


def _monotonic():
    now = _modelled_clock_read()
    return _orig["monotonic"]() + _clock_offset if now is None else _clock_start[0] + now


def _time():
    now = _modelled_clock_read()
    return _orig["time"]() + _clock_offset if now is None else _clock_start[1] + now


def _perf_counter():
    now = _modelled_clock_read()
    return _orig["perf_counter"]() + _clock_offset if now is None else _clock_start[2] + now


# The same clocks in nanoseconds (a deadline poll with `monotonic_ns()` read real time, and ran
# on while the modelled sleeps between its looks took none).
# The modelled part is added in whole nanoseconds: `int((start + now) * 1e9)` kept only 256 ns
# steps at today's `time.time()`, and two threads' reads a quarter microsecond apart collided
# or not with where the real start fell.
def _clock_ns(which, real):
    now = _modelled_clock_read()
    if now is None:
        return int((_orig[real]() + _clock_offset) * 1e9)
    return int(_clock_start[which] * 1e9) + round(now * 1e9)


def _monotonic_ns():
    return _clock_ns(0, "monotonic")


def _time_ns():
    return _clock_ns(1, "time")


def _perf_counter_ns():
    return _clock_ns(2, "perf_counter")


# The calendar functions that read the clock when given no time read the modelled one.
def _seconds_when_omitted(name):
    original = getattr(time, name)

    def read(*args):  # localtime(), gmtime(), ctime() and their None
        return original(*(args if args and args[0] is not None else (_time(),)))

    return functools.wraps(original)(read)


def _struct_when_omitted(name):
    original = getattr(time, name)

    def read(*args):  # asctime() and strftime(format)
        needed = 1 if name == "strftime" else 0
        return original(*(args if len(args) != needed else (*args, _orig["localtime"](_time()))))

    return functools.wraps(original)(read)


_CALENDAR_PATCHES = [(time, name, _seconds_when_omitted(name)) for name in ("localtime", "gmtime", "ctime")] + [
    (time, name, _struct_when_omitted(name)) for name in ("asctime", "strftime")]

# `time.clock_gettime(clock)` of the clocks `time.time` and `time.monotonic` read.
_REALTIME_CLOCKS = {getattr(time, n) for n in ("CLOCK_REALTIME",) if hasattr(time, n)}
_MONOTONIC_CLOCKS = {getattr(time, n) for n in ("CLOCK_MONOTONIC", "CLOCK_MONOTONIC_RAW", "CLOCK_BOOTTIME",
                                                 "CLOCK_UPTIME", "CLOCK_UPTIME_RAW") if hasattr(time, n)}


def _clock_gettime_of(name, realtime, monotonic):
    original = getattr(time, name)

    def read(clk_id):
        if clk_id in _REALTIME_CLOCKS:
            return realtime()
        if clk_id in _MONOTONIC_CLOCKS:
            return monotonic()
        return original(clk_id)

    return functools.wraps(original)(read)


# `datetime.now()`, `utcnow()` and `date.today()` (C methods of types no attribute can be set
# on) read the modelled clock too: their entries in the types' own dicts are swapped while an
# exploration runs (and their method caches told), else a token that expires after a sleep
# never expired. (`date.today()` called `time.time()` until 3.15.)
def _datetime_now(cls, tz=None):
    return cls.fromtimestamp(_time(), tz)


def _datetime_utcnow(cls):
    if _utcnow_deprecation:
        warnings.warn(_utcnow_deprecation[0], _utcnow_deprecation[1], stacklevel=2)
    return cls.fromtimestamp(_time(), _datetime.timezone.utc).replace(tzinfo=None)


def _deprecation_of_utcnow():
    """(message, category) of the warning `datetime.utcnow()` gives on this version, or ()."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _datetime.datetime.utcnow()
    return (str(caught[0].message), caught[0].category) if caught else ()


_utcnow_deprecation = None  # asked once, by the first exploration (not at frontrun's import)


def _date_today(cls):
    return cls.fromtimestamp(_time())


_CLOCK_METHODS = [(_datetime.datetime, "now", _datetime_now), (_datetime.datetime, "utcnow", _datetime_utcnow),
                  (_datetime.date, "today", _date_today)]
_clock_methods_swapped = []  # (type, its own dict, name, original)


def _type_modified(cls):
    try:
        import ctypes

        ctypes.pythonapi.PyType_Modified(ctypes.py_object(cls))
        return True
    except (ImportError, AttributeError):
        return False


def _swap_clock_methods():
    global _utcnow_deprecation
    if _utcnow_deprecation is None:
        _utcnow_deprecation = _deprecation_of_utcnow()
    for cls, name, replacement in _CLOCK_METHODS:
        own = [d for d in gc.get_referents(cls.__dict__) if type(d) is dict]
        if len(own) != 1 or name not in own[0]:
            continue  # not CPython's layout: left reading the real clock
        original = own[0][name]
        own[0][name] = classmethod(replacement)
        if not _type_modified(cls):
            own[0][name] = original
            continue
        _clock_methods_swapped.append((cls, own[0], name, original))


def _restore_clock_methods():
    while _clock_methods_swapped:
        cls, own, name, original = _clock_methods_swapped.pop()
        own[name] = original
        _type_modified(cls)


def _sleep(seconds):
    rt = _managed()
    if rt is None:
        _setup_would_wait()
        return _orig["sleep"](seconds)
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    # Its end is its step, at the time it ends: the ends of sleeps, and timeouts, come in the
    # order of their times (the engine's `Execution::unfair`).
    _advance_clock(rt, rt.clock() + seconds)
    rt.yield_point(_site(rt))


# While ``setup()`` runs in the exploring thread: the tasks of the threads it starts. They are
# explored too, as background threads started right after the test's own.
_setup_started = None
_setup_ident = None
_setup_first_tid = None
# When setup() runs as an explored thread of its own (it waits for a thread it started): that
# thread's number; the threads it starts are background threads "started by setup()".
setup_thread = None


class SetupWaits(BaseException):
    """``setup()``, run in the exploring thread, would wait for a thread it started (its worker's
    "ready" event, a join, a sleep): those threads only run in the exploration, so setup() has
    to run there too. (A BaseException: the program's ``except Exception`` lets it through.)"""


def _setup_would_wait():
    if _setup_started and _thread.get_ident() == _setup_ident:
        raise SetupWaits()


@contextmanager
def checking_invariant():
    """The calling thread checks the invariant in the block: it reads the modelled clock."""
    global _checking_ident
    _checking_ident = _thread.get_ident()
    try:
        yield
    finally:
        _checking_ident = None


@contextmanager
def threads_started_in_setup(first_tid):
    """Collects the tasks of the threads the calling thread starts in the block (``setup()``);
    the first will have engine id ``first_tid``, the next one more, and so on."""
    global _setup_started, _setup_ident, _setup_first_tid
    _setup_started, _setup_ident, _setup_first_tid = [], _thread.get_ident(), first_tid
    try:
        yield _setup_started
    finally:
        _setup_started = _setup_ident = _setup_first_tid = None


def _thread_start(self):
    rt = _managed()
    in_setup = rt is None and _setup_started is not None and _thread.get_ident() == _setup_ident
    if rt is None and not in_setup:
        return _orig["Thread.start"](self)
    if rt is not None:
        # Whether it was started is shared: `if not t.is_alive(): t.start()` in two threads.
        rt.object_access(self, True, _site(rt), "_started")
    if getattr(self, "_frontrun_tid", None) is not None:
        raise RuntimeError("threads can only be started once")
    if _pool is not None:
        _pool.ensure_idle(1)
    _explored_threads.append(weakref.ref(self))

    # 3.14+: the context the thread runs in is chosen by start() (a copy of the caller's when
    # sys.flags.thread_inherit_context is set); before, a new thread's context is empty.
    if getattr(self, "_context", None) is None:
        inherit = getattr(sys.flags, "thread_inherit_context", False)
        context = contextvars.copy_context() if inherit else contextvars.Context()
        if hasattr(self, "_context"):
            self._context = context
    else:
        context = self._context

    def run(thread=self):
        # threading.current_thread() is the Thread that was started, as in a real thread
        # (multiprocessing's ThreadPool reads its handler threads' state through it).
        ident = _thread.get_ident()
        with threading._active_limbo_lock:
            placeholder = threading._active.get(ident)
            threading._active[ident] = thread
        thread._ident = ident
        if hasattr(thread, "_native_id"):
            thread._native_id = _thread.get_native_id()
        try:
            context.run(thread.run)
        finally:
            with threading._active_limbo_lock:
                if placeholder is not None:
                    threading._active[ident] = placeholder
                else:
                    threading._active.pop(ident, None)

    if in_setup:
        self._frontrun_tid = self._frontrun_hash = _setup_first_tid + len(_setup_started)
        _setup_started.append(run)
        started_threads[self._frontrun_tid - 1] = (_runs(self), "setup()")
        return
    parent = rt.current()
    by_setup = parent == setup_thread
    self._frontrun_tid = rt.spawn(run, _site(rt), by_setup or _is_background(self))
    self._frontrun_hash = self._frontrun_tid
    # Once start() returns, the thread has its ident (the worker it will run on).
    ident = rt.worker_ident(self._frontrun_tid)
    if ident is not None:
        self._ident = ident
        # (and its native id: the worker's placeholder Thread has it)
        native = getattr(threading._active.get(ident), "_native_id", None)
        if native is not None and hasattr(self, "_native_id"):
            self._native_id = native
    started_threads[self._frontrun_tid - 1] = (_runs(self), "setup()" if by_setup else f"thread {parent}")


def _thread_hash(self):
    """An explored thread hashes as its engine id (stable across executions), so a set of
    threads (``ThreadPoolExecutor._threads``, joined in set order at shutdown) iterates in
    the same order in every execution, not in the order of memory addresses."""
    h = self.__dict__.get("_frontrun_hash")
    return h if h is not None else object.__hash__(self)


def _is_background(thread):
    """A daemon, or a ``concurrent.futures`` pool worker: idle, it waits for work forever (the
    pool wakes it at interpreter exit), which is not a deadlock of the test."""
    target = getattr(thread, "_target", None)
    return bool(thread.daemon) or (
        getattr(target, "__module__", None) == "concurrent.futures.thread" and getattr(target, "__name__", "") == "_worker"
    )


def _thread_join(self, timeout=None):
    tid = getattr(self, "_frontrun_tid", None)
    rt = _managed()
    if tid is None:
        return _orig["Thread.join"](self, timeout)
    if rt is None:
        _setup_would_wait()
        # An explored thread seen from outside its exploration (an invariant that shuts an
        # executor down): its execution is over, and so is the thread.
        return None
    if timeout is not None:
        began = rt.clock()
        if not rt.timed_join(tid, timeout, _site(rt), timeouts_any_time):
            _timed_out(rt, began, timeout, "join")
        return None
    rt.join(tid, _site(rt))


def _thread_is_alive(self):
    rt = _rt
    if rt is not None and _managed() is not None:
        rt.object_access(self, False, _site(rt), "_started")  # ordered against start()
    tid = getattr(self, "_frontrun_tid", None)
    if tid is None or rt is None:
        return _orig["Thread.is_alive"](self)
    return rt.is_alive(tid, _site(rt) if _managed() is not None else None)


def _thread_ident_of(self):
    rt = _managed()
    if rt is not None:
        rt.object_access(self, False, _site(rt), "_started")  # ordered against start()
    return self._ident


# `t.ident is None` tells a thread not started yet: a look at whether it was started.
_thread_ident = property(_thread_ident_of, doc=threading.Thread.ident.__doc__)


def _reported_event_method(name, write):
    # Event.is_set reads the flag without the lock set() and clear() take, in code frontrun
    # does not rewrite: it is reported as a read of the event, set() and clear() as writes.
    # A write's step is taken under that lock, right before the flag changes (as CPython's
    # set() and clear() change it): taken before the lock, another thread's is_set() could come
    # between the step and the change, and the explanation showed it after a write it missed.
    def method(self):
        rt = _managed()
        if rt is None:
            return _orig[f"Event.{name}"](self)
        if not write:
            rt.object_access(self, False, _site(rt))
            return self._flag
        with self._cond:
            rt.object_access(self, True, _site(rt))
            self._flag = name == "set"
            if self._flag:
                self._cond.notify_all()

    method.__name__ = name
    return method


def _print(*args, sep=" ", end="\n", file=None, flush=False):
    """``print`` to a file of the program's (``file=f``, not the console) in an explored thread:
    each of its writes (every argument, every ``sep``, the ``end``, as CPython's print makes
    them) is a step, as a call of ``f.write`` is. A report carries no keywords, so the call
    alone never said which file it wrote; and two threads printing to one log interleave their
    lines' parts for real."""
    rt = _managed()
    if (rt is None or file is None or file is sys.stdout or file is sys.stderr
            or not isinstance(sep, (str, type(None))) or not isinstance(end, (str, type(None)))):
        return _orig["print"](*args, sep=sep, end=end, file=file, flush=flush)
    site = _site(rt)
    write = file.write
    for i, arg in enumerate(args):
        if i:
            rt.object_access(file, True, site, None, True)
            write(" " if sep is None else sep)
        text = str(arg)
        rt.object_access(file, True, site, None, True)
        write(text)
    rt.object_access(file, True, site, None, True)
    write("\n" if end is None else end)
    if flush:
        file.flush()


_STDLIB = os.path.dirname(os.path.abspath(os.__file__)) + os.sep


def _in_frontrun_or_stdlib(name):
    path = os.path.abspath(name)
    return path.startswith(_HERE) or path.startswith(_STDLIB)


def _program_site(rt):
    """(file, line) of the program's call, past frontrun's frames and the stdlib's (for a call
    the stdlib makes on the program's behalf: `TemporaryDirectory()` calls `mkdtemp`)."""
    return _caller_site(3, _in_frontrun_or_stdlib) if rt.explaining else None


def _making_in_directory(name, dir_index):
    """``tempfile``'s makers of a file or directory under ``dir`` (made inside the stdlib, where
    nothing is reported): the call writes that directory, so a listing of it in another thread
    is ordered against it. (Which entry it makes is known only once it is made: the whole
    directory.)"""
    original = getattr(_tempfile, name)

    @functools.wraps(original)
    def make(*args, **kwargs):
        rt = _managed()
        if rt is not None:
            directory = args[dir_index] if len(args) > dir_index else kwargs.get("dir")
            try:
                directory = _tempfile.gettempdir() if directory is None else directory
                rt.object_access(directory, True, _program_site(rt), None, True)
            except TypeError:
                pass  # (the call says what is wrong)
        return original(*args, **kwargs)

    return make


# uuid4() during an exploration draws from a generator every execution starts afresh (as
# `random` is seeded, `_dpor._fresh_execution`): an order or a lock picked by the values of
# uuids setup() made (sorted ids, `locks[hash(key) % n]`) is the same in every execution, and a
# schedule replays. Outside explorations it is the real one.
_uuid_random = random.Random()


def _uuid4():
    if _rt is None or _rt_pid != os.getpid():
        return _orig["uuid4"]()
    return _uuid.UUID(int=_uuid_random.getrandbits(128), version=4)


_loggers_before = set()  # the logger names there were when the exploration began


def _forget_new_loggers():
    """Loggers the last execution made by name are forgotten: a name built of a uuid (the same in
    every execution) got the last one's logger back, handlers and all, where each execution
    made a fresh one."""
    if _rt is None:
        return  # (only in an exploration: the names before it are known)
    manager = logging.Logger.manager
    with logging._lock:
        for name in [n for n in manager.loggerDict if n not in _loggers_before]:
            del manager.loggerDict[name]


_NOT_CACHED = object()
# 3.10/3.11's cached_property computes under one RLock per property, made at import: in an
# exploration it is taken in the model only, never for real. id(lock) -> this holder's depth.
_property_lock_depth = {}


def _cached_property_get(self, instance, owner=None):
    """``functools.cached_property.__get__`` in an explored thread. The original looks in the
    instance's ``__dict__``, computes on a miss and stores, all in code frontrun does not rewrite:
    two threads that both miss would compute twice unseen, and a store the engine does not know
    of makes a planned schedule diverge. Here the look is a read of the attribute and the store a
    write, so both misses are explored."""
    rt = _managed()
    name = self.attrname
    cache = getattr(instance, "__dict__", None) if instance is not None and name is not None else None
    if rt is None or type(cache) is not dict:
        return _orig["cached_property.__get__"](self, instance, owner)
    site = _site(rt)
    rt.object_access(instance, False, site, name)
    value = cache.get(name, _NOT_CACHED)
    if value is not _NOT_CACHED:
        return value
    lock = getattr(self, "lock", None)
    if lock is not None:
        _model_acquire(rt, lock, site)
    try:
        if lock is not None:
            rt.object_access(instance, False, site, name)
            value = cache.get(name, _NOT_CACHED)
        if value is _NOT_CACHED:
            value = self.func(instance)
            rt.object_access(instance, True, site, name)
            cache[name] = value
    finally:
        if lock is not None:
            _model_release(rt, lock, site)
    return value


def _model_acquire(rt, lock, site):
    """Takes a real RLock in the model only (re-entrant: the depth is counted here)."""
    if rt.lock_state(lock)[1]:  # held by this thread in this execution: re-entered
        _property_lock_depth[id(lock)] += 1
    else:
        rt.lock_acquire(lock, True, None, site)
        _property_lock_depth[id(lock)] = 1


def _model_release(rt, lock, site):
    _property_lock_depth[id(lock)] -= 1
    if _property_lock_depth[id(lock)] == 0:
        rt.lock_release(lock, site)


# Futures made in an exploration are numbered in the order they are made: they hash by that
# number, and `wait` / `as_completed` take their locks in that order, not by address (sets of
# futures and that lock order would differ between executions, and schedules not repeat).
_future_serials = itertools.count()
_completions = itertools.count()  # the order futures finish in (``as_completed`` yields in it)


def new_execution():
    """Per-execution state of the patches starts afresh (before ``setup()``)."""
    global _future_serials, _completions, _exec_clock, _threads_began, _check_clock
    _future_serials = itertools.count()
    _completions = itertools.count()
    _exec_clock = _check_clock = 0.0
    _threads_began = False
    _wakeups.clear()
    _looks.clear()
    _sqlite_writers.clear()
    _sqlite_writing.clear()
    _sqlite_roll_back_left_open()
    _flocks.clear()
    notified.clear()
    step_notes.clear()
    _uuid_random.seed(4)
    _forget_new_loggers()
    started_threads.clear()
    timed_out.clear()
    _queue_models.clear()
    queue_waits.clear()
    _retire_pools()
    _finish_explored_threads()  # (the last execution's: kept few)


# The notifies of this execution's condition waiters, for explanations: (steps taken before it,
# the notifying thread's and the woken thread's engine ids, (file, line) or None).
notified = []

# What the explanation says of a step beside its line (a database call that found it locked):
# steps taken before it -> note. Filled while explaining.
step_notes = {}

# The timed waits that timed out in this execution, for explanations: (thread's number in
# explanations, (file, line) or None, "wait" / "acquire" / "join").
timed_out = []


def _timed_out(rt, began, seconds, what):
    """A timed wait of the calling thread, begun at ``began``, timed out: the modelled clock moves
    on to its deadline (unless a sleep or another wait took it past that), and the explanation
    will say so."""
    _advance_clock(rt, began + seconds)
    if rt.explaining:
        timed_out.append((rt.current_id() - 1, _caller_site(3), what))


# What each thread started in this execution runs, by its number in explanations:
# (what it runs, who started it: a thread's number or "setup()").
started_threads: dict = {}
# The Threads started in this execution, finished when it is over (``_finish_explored_threads``).
_explored_threads = []


def _finish_explored_threads():
    """The Threads an execution started look finished once it is over, as they are: a
    ``join()`` after the exploration returns at once, where threading would say it was never
    started (the exit handler of a ``multiprocessing`` pool closed in an explored thread joins
    its handlers)."""
    for ref in _explored_threads:
        thread = ref()
        if thread is None:
            continue
        thread._started.set()
        handle = "_os_thread_handle" if hasattr(thread, "_os_thread_handle") else "_handle"
        if hasattr(thread, handle):  # 3.13+: join() waits on the handle
            done = _thread._make_thread_handle(thread._ident or 0)
            done._set_done()
            setattr(thread, handle, done)
        else:
            thread._is_stopped = True
    _explored_threads.clear()


def _runs(thread) -> str:
    """What a started thread runs, in words (``worker()``, ``a ThreadPoolExecutor worker``)."""
    target = getattr(thread, "_target", None)
    if target is None:
        return f"{type(thread).__qualname__}.run()"
    module = getattr(target, "__module__", "") or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
    if module == "concurrent.futures.thread" and name == "_worker":
        return "a ThreadPoolExecutor worker"
    if module.startswith(("multiprocessing.", "asyncio.", "concurrent.")):
        return f"{module}.{name}()"
    return f"{name}()"


# --- I/O between explored threads -------------------------------------------------------------
#
# A real blocking ``select()``, ``accept()`` or ``recv()`` in an explored thread would wait for a
# thread that only runs once the waiter reaches a scheduling point: an event loop waiting for a
# worker (``asyncio.to_thread``, ``run_in_executor``, ``run_coroutine_threadsafe``), a server
# waiting for its client. In an exploration such a look happens under a cooperative lock, and
# what makes it ready happens under the same lock and wakes the waiters, so the model orders the
# two like any shared state. An asyncio loop's selector has a lock of its own, taken by its
# ``call_soon_threadsafe`` (the callback queue and the self-pipe), so that loops are not ordered
# against each other. All other I/O shares one lock: other selectors' ``select``,
# ``select.select`` and the ``poll`` of ``select.poll()`` / ``select.epoll()`` objects look under
# it, as do blocking sockets' reads, and their sends, connects, shutdowns and closes take it. (A
# selector on a listening socket with a lock of its own was not woken by its client's connect;
# waking every selector would take each one's lock, a step each.) What is changed wakes only the
# waiters whose look now finds something (``_changing``). A look that finds nothing ready waits;
# when nothing else can run, one with a timeout times out (the modelled clock moves on), and one
# without waits for the outside world (a child process, a server, a write the model does not
# see) for up to ``OUTSIDE_WAIT`` seconds of real time (not when only background threads are
# left), then for good (a deadlock, or a background thread left waiting at the end of an
# execution). Non-blocking sockets are left alone (an event loop's self-pipe, say); a look with a
# timeout of 0 is still a look under the lock, ordered against the writes.

OUTSIDE_WAIT = 1.0
_wakeups = {}  # this execution's wakeups (cooperative Conditions): "io", and per event loop selector
_looks = {}  # engine thread id -> the look it waits on (None: not to be made by another thread)
# Those that define `select` (PollSelector inherits _PollLikeSelector's; the base's is abstract).
_SELECTOR_CLASSES = list(dict.fromkeys(
    c for c in vars(selectors).values() if isinstance(c, type) and c is not selectors.BaseSelector
    and issubclass(c, selectors.BaseSelector) and "select" in c.__dict__))
_SOCKET_READS = ("accept", "recv", "recv_into", "recvfrom", "recvfrom_into", "recvmsg")
_SOCKET_WRITES = ("send", "sendall", "sendto", "sendmsg", "connect", "connect_ex", "shutdown", "close")
_asyncio_patched = None  # asyncio's BaseEventLoop while its call_soon_threadsafe is ours
_loop_select_caller = None  # the code of BaseEventLoop._run_once, which calls a loop's select


def _wakeup(key="io", keep=None):
    """The wakeup for ``key`` (``keep``: an object whose id is the key, kept alive with it)."""
    found = _wakeups.get(key)
    if found is None:
        found = _wakeups[key] = (Condition(Lock(False)), keep)
    return found[0]


def _changing(wakeup, action, *args, **kwargs):
    """``action`` under ``wakeup``'s lock, then the waiters whose look it made find something are
    woken. (Woken by every write, a waiter looked again and waited on: steps, each ordered
    against all other I/O, that multiplied the schedules. A look that cannot be repeated by
    another thread, an edge-triggered epoll's, is always woken.)"""
    with wakeup:
        result = action(*args, **kwargs)
        rt = _rt
        if rt is not None:
            for waiter in [w for w in wakeup._waiters if _finds(_looks.get(w))]:
                wakeup._waiters.remove(waiter)
                rt.notify(waiter)
    return result


def _finds(look):
    if look is None:
        return True
    try:
        return bool(look(0))
    except Exception:
        return True  # (its own look will raise it, in its thread)


def _wait_for(rt, wakeup, look, timeout, repeatable=True):
    """``look(seconds)`` (a real poll) under ``wakeup``'s lock until it finds something, as
    described above; returns what it found last. ``repeatable``: another thread may look too."""
    patient = True
    me = rt.current_id()
    with wakeup:
        deadline = None if timeout is None else rt.clock() + timeout
        _looks[me] = look if repeatable else None
        try:
            while True:
                found = look(0)
                if found or timeout is not None and timeout <= 0:
                    return found
                if timeout is not None:
                    # (Only when stuck, whatever `timeouts` says: a real call follows the look.)
                    # What is left of it: woken, but not by what it waits for, it waits on.
                    left = deadline - rt.clock()
                    if left > 0 and wakeup._wait(left, False):
                        continue  # woken: look again
                    return look(0)  # timed out (the modelled clock moved on)
                # (A nominal timeout: the modelled clock hardly moves.)
                if wakeup._wait(1e-6 if patient else None, False):
                    continue
                # Nothing in the program can wake it: only the outside world can, unless all that
                # is left is background threads (a daemon loop no one stops).
                if rt.foreground_alive():
                    found = look(OUTSIDE_WAIT)
                    if found:
                        return found
                patient = False
        finally:
            _looks.pop(me, None)


def _unexplored_look(look, timeout, call):
    """Outside an explored thread: ``call()``, the original. In ``setup()``, a wait for nothing
    ready yet is one for a thread setup() started (``_setup_would_wait``)."""
    if _setup_started and timeout != 0:
        found = look(0)
        if found:
            return found  # (not looked again: an edge-triggered epoll reports it once)
        _setup_would_wait()
    return call()


def _selector_select(original):
    @functools.wraps(original)
    def select(self, timeout=None):
        rt = _managed()
        if getattr(self, "_frontrun_outside", False):
            return original(self, timeout)
        if rt is None:
            if timeout != 0:
                _setup_would_wait()
            return original(self, timeout)
        # An event loop's (``_run_once`` calls it): woken by the loop's call_soon_threadsafe.
        wakeup = _wakeup(id(self), self) if sys._getframe(1).f_code is _loop_select_caller else _wakeup()
        return _wait_for(rt, wakeup, lambda seconds: original(self, seconds), timeout)

    return select


def _select_select(rlist, wlist, xlist, timeout=None):
    """``select.select`` during an exploration: in an explored thread, a selector's ``select``."""
    original = _orig["select.select"]
    rt = _managed()
    if rt is None and not _setup_started:
        return original(rlist, wlist, xlist, timeout)
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout >= 0):
        return original(rlist, wlist, xlist, timeout)  # (it says what is wrong with the timeout)
    # Looked at more than once: an iterator would be used up by the first look.
    rlist, wlist, xlist = (x if isinstance(x, (list, tuple)) else list(x) for x in (rlist, wlist, xlist))

    def look(seconds):
        ready = original(rlist, wlist, xlist, seconds)
        return ready if any(ready) else None

    if rt is None:
        found = _unexplored_look(look, timeout, lambda: original(rlist, wlist, xlist, timeout))
    else:
        found = _wait_for(rt, _wakeup(), look, timeout)
    return ([], [], []) if found is None else found


class _Poll:
    """``select.poll()`` during an exploration. Its C object's ``poll`` cannot be patched, so it
    is wrapped, and in an explored thread its ``poll`` is a selector's ``select``. (selectors'
    PollSelector and EpollSelector bound the originals at import: their objects are not wrapped,
    and wait once, in their ``select``.)"""

    __slots__ = ("_real", "__weakref__")
    _made_by = "select.poll"
    _per_second = 1000  # poll's timeouts are in milliseconds
    _repeatable = True

    def __init__(self, *args, **kwargs):
        self._real = _orig[self._made_by](*args, **kwargs)

    def __getattr__(self, name):  # register, modify, unregister (and epoll's close, fileno, ...)
        if name == "_real":
            raise AttributeError(name)
        return getattr(self._real, name)

    def __repr__(self):
        return repr(self._real)

    def poll(self, timeout=None, *args, **kwargs):
        original = self._real.poll
        rt = _managed()
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout == timeout):
            return original(timeout, *args, **kwargs)  # (the original says what is wrong with it)
        # None or negative: no timeout.
        seconds = None if timeout is None or timeout < 0 else timeout / self._per_second
        look = lambda seconds: original(seconds * self._per_second, *args, **kwargs)  # noqa: E731
        if rt is None:
            return _unexplored_look(look, seconds, lambda: original(timeout, *args, **kwargs))
        return _wait_for(rt, _wakeup(), look, seconds, self._repeatable)


class _Epoll(_Poll):
    """``select.epoll`` during an exploration (its timeouts in seconds)."""

    __slots__ = ("_takes",)
    _made_by = "select.epoll"
    _per_second = 1
    # Registered edge-triggered or one-shot, a look takes the event it reports: only its own.
    _TAKING = getattr(_select, "EPOLLET", 0) | getattr(_select, "EPOLLONESHOT", 0)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._takes = False

    @classmethod
    def fromfd(cls, fd):
        poller = object.__new__(cls)
        poller._real = _orig[cls._made_by].fromfd(fd)
        poller._takes = True  # (registered who knows how)
        return poller

    @property
    def _repeatable(self):
        return not self._takes

    def register(self, fd, *args, **kwargs):
        self._real.register(fd, *args, **kwargs)
        self._takes |= bool(next(iter(args), kwargs.get("eventmask", 0)) & self._TAKING)

    def modify(self, fd, *args, **kwargs):
        self._real.modify(fd, *args, **kwargs)
        self._takes |= bool(next(iter(args), kwargs.get("eventmask", 0)) & self._TAKING)

    def __enter__(self):
        self._real.__enter__()
        return self

    def __exit__(self, *exc):
        return self._real.__exit__(*exc)


_SELECT_PATCHES = [(_select, "select", _select_select)] + [
    (_select, name, cls) for name, cls in (("poll", _Poll), ("epoll", _Epoll)) if hasattr(_select, name)]


_flocks = {}  # (st_dev, st_ino) -> {engine thread id: exclusive?}: this execution's flock holders


def _flock(fd, operation):
    """``fcntl.flock`` in an explored thread. Taking a lock another thread's open file holds is
    a wait of the model's, not a real one: that blocked the thread holding the turn, so the
    holder never ran to let go (a hang). The model keeps who holds each file's lock: a waiter
    tries the real lock only once the model says it is free: let go with ``LOCK_UN`` (which
    wakes it), or by a holder that has exited (its file closed; seen when nothing else can
    run). Closing a file is no step: tried sooner, what the waiter found would depend on where
    the holder was within its step."""
    flock = _orig["flock"]
    rt = _managed()
    if rt is None:
        return flock(fd, operation)
    wakeup = _wakeup("flock")
    try:
        file = os.fstat(fd if isinstance(fd, int) else fd.fileno())
        key = (file.st_dev, file.st_ino)
    except (OSError, ValueError, AttributeError, TypeError):
        return flock(fd, operation)  # (it says what is wrong)
    me = rt.current_id()
    exclusive = bool(operation & _fcntl.LOCK_EX)
    if not operation & (_fcntl.LOCK_SH | _fcntl.LOCK_EX):

        def let_go():
            flock(fd, operation)
            _flocks.get(key, {}).pop(me, None)

        return _changing(wakeup, let_go)

    def held_by_another():
        return any(t != me and (exclusive or other) for t, other in _flocks.get(key, {}).items())

    def take(seconds):
        deadline = _orig["monotonic"]() + seconds
        while True:
            try:
                flock(fd, operation | _fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    raise
                if _orig["monotonic"]() >= deadline:
                    return False
                _orig["sleep"](0.01)  # another process holds it
                continue
            holders = _flocks.setdefault(key, {})
            if exclusive:
                holders.clear()  # (those that let go by closing their files)
            holders[me] = exclusive
            return True

    def look(seconds):
        return not held_by_another() and take(0)

    with wakeup:
        if operation & _fcntl.LOCK_NB:
            if not look(0):
                raise BlockingIOError(errno.EWOULDBLOCK, os.strerror(errno.EWOULDBLOCK))
            return None
        _looks[me] = look
        try:
            while not look(0):
                if wakeup._wait(1e-6, False):
                    continue  # another thread let go (LOCK_UN)
                # Timed out: nothing else could run. A holder that has exited let go by closing
                # its file (`with open(...)`); one alive still holds it (it ran out of steps at
                # the same time). Held by no thread: another process holds it (waited for for
                # real), or a file left open: a deadlock.
                holders = _flocks.get(key, {})
                if any(rt.is_alive(t) for t in list(holders) if t != me):
                    continue
                holders.clear()
                if take(0) or take(OUTSIDE_WAIT):
                    return None
                wakeup._wait(None, False)
        finally:
            _looks.pop(me, None)
    return None


# sqlite3 connections to a database file, made during an exploration. Each call on one is a
# step on that file, a read or a write (``_sqlite_call``), so two threads with a connection each
# are seen to share the database (an update lost between their transactions). A write first
# takes the database's write lock in the model and holds it to the end of its transaction, as
# sqlite's RESERVED lock is held: a second writer waits as a lock's waiter, not in sqlite, where
# the holder's thread could never run to commit. The connection is opened with a busy timeout
# of 0: a commit that another connection's unfinished read keeps out, told the database is
# locked, waits in the model for a call on another connection that ends that connection's
# transaction, then tries again; when nothing else can run it tries once more (a cursor let go
# of unseen), then fails as sqlite would after the connection's timeout: "database is locked".


def _sqlite_connect(database, *args, **kwargs):
    """``sqlite3.connect`` during an exploration: the connection is one of the subclasses below
    (of the ``factory`` asked for), which knows its database file and waits as above. (One to a
    private in-memory database knows it has none: no other connection sees what it does.)"""
    connect = _orig["sqlite3.connect"]
    path = _sqlite_path(database, kwargs.get("uri", args[6] if len(args) > 6 else False))
    if path is False:
        return connect(database, *args, **kwargs)
    args = list(args)
    timeout = args[0] if args else kwargs.get("timeout", 5.0)  # (positional before 3.15)
    if path is not None:
        if args:
            args[0] = 0
        else:
            kwargs["timeout"] = 0
    # Checked here, not by sqlite: the next execution rolls back what an execution cut short
    # left open (its write lock and journal would be in the way), from the exploring thread.
    same_thread = args[3] if len(args) > 3 else kwargs.get("check_same_thread", True)
    if len(args) > 3:
        args[3] = False
    else:
        kwargs["check_same_thread"] = False
    if len(args) > 4:
        args[4] = _sqlite_class(args[4], _SqliteConnection)
    else:
        kwargs["factory"] = _sqlite_class(kwargs.get("factory", _sqlite3.Connection), _SqliteConnection)
    conn = connect(database, *args, **kwargs)
    if isinstance(conn, _SqliteConnection):
        conn._frontrun_database = path
        conn._frontrun_timeout = timeout
        conn._frontrun_thread = _thread.get_ident() if same_thread else None
        _sqlite_made.append(weakref.ref(conn))
    return conn


_sqlite_made = []  # weak references to the connections made in this execution


def _sqlite_roll_back_left_open():
    """Before an execution: a transaction a connection of the last one left open (its thread
    cut short, the connection kept alive by a traceback) is rolled back."""
    for ref in _sqlite_made:
        conn = ref()
        if conn is not None and _sqlite_in_transaction(conn):
            try:
                _sqlite3.Connection.rollback(conn)
            except _sqlite3.Error:
                pass
    _sqlite_made.clear()


def _sqlite_check_thread(conn):
    """sqlite's own check_same_thread, which the connection was opened without."""
    made_by = conn.__dict__.get("_frontrun_thread")
    if made_by is not None and made_by != _thread.get_ident():
        raise _sqlite3.ProgrammingError(
            "SQLite objects created in a thread can only be used in that same thread. The object was "
            f"created in thread id {made_by} and this is thread id {_thread.get_ident()}.")


def _sqlite_path(database, uri):
    """The real path of the database file ``connect(database, uri=uri)`` opens; None for a
    private one (in memory, temporary); False when it cannot tell (a shared in-memory one)."""
    try:
        name = os.fsdecode(os.fspath(database))
    except TypeError:
        return False
    if uri and name.startswith("file:"):
        name, _, query = name[len("file:"):].partition("?")
        name = name.partition("#")[0]
        options = query.split("&")
        if "mode=memory" in options or name == ":memory:":
            return False if "cache=shared" in options else None
        if name.startswith("//"):  # file://host/path: only an empty host or localhost
            host, _, rest = name[2:].partition("/")
            if host not in ("", "localhost"):
                return False
            name = "/" + rest
        from urllib.parse import unquote  # (connect is a call of the program's, not a report)

        name = unquote(name)
    if name in ("", ":memory:"):
        return None
    return os.path.realpath(name)


_sqlite_classes = {}  # (the program's class, ours) -> its subclass with our methods after its own


def _sqlite_class(base, ours):
    """The class to make instead of ``base``: ours, or a subclass of ``base`` whose methods of its
    own run first (a wrapper of ``execute`` that logs), then ours, then sqlite's."""
    if base is ours.__bases__[0]:
        return ours
    if not isinstance(base, type) or issubclass(base, ours) or not issubclass(base, ours.__bases__[0]):
        return base
    found = _sqlite_classes.get((base, ours))
    if found is None:
        found = _sqlite_classes[(base, ours)] = type(
            base.__name__, (base, ours), {"__module__": base.__module__, "__qualname__": base.__qualname__})
    return found


def _sqlite_busy(error):
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
    return str(error) in ("database is locked", "database table is locked", "database schema is locked")


def _sqlite_call(conn, name, method, args, kind="write"):
    """``method(*args)``, the call ``name`` on ``conn`` or a cursor of it (``kind``: "read",
    "write" or "end" of a transaction, ``_sqlite_kind``): a step on its database file, wherever
    it is called from (rewritten code, whose report of a resource method is the thread's own
    then, a library's, the commit of ``with conn:``, a ``for`` over a cursor). A write first
    takes the database's write lock in the model, held to the end of its transaction (sqlite's
    RESERVED lock: one writer at a time), so a writer waits there, as a lock's waiter, not in
    sqlite. Whom a call wakes is settled right after its step, so it is ordered as the step is."""
    _sqlite_check_thread(conn)
    database = conn.__dict__.get("_frontrun_database")
    if database is None:
        return method(*args)
    rt = _managed()
    if rt is None:
        return _sqlite_call_unexplored(conn, method, args)
    site = _site(rt)
    if kind == "write" and id(conn) not in _sqlite_writing:
        _sqlite_take_write_lock(rt, conn, database, site)
    rt.object_access(database, kind != "read", site, None, True, name)
    wakeup = _wakeup(("sqlite", database))
    try:
        return method(*args)
    except _sqlite3.OperationalError as e:
        if not _sqlite_busy(e):
            raise
    finally:
        _sqlite_let_go(rt, wakeup, conn)
    # Still locked: a commit that readers' open statements keep out (or a connection frontrun
    # did not make). It waits for a call on another connection to end that connection's
    # transaction, then for the connection's timeout once nothing else can run.
    timeout = conn.__dict__.get("_frontrun_timeout", 5.0)
    began = rt.clock()
    _note_step(rt, "database locked: waits")
    with wakeup:
        while True:
            rt.object_access(database, True, site, None, True, name)  # (tried again: a use of the file)
            try:
                result = method(*args)
                _note_step(rt, "tries again")
                break
            except _sqlite3.OperationalError as e:
                if not _sqlite_busy(e):
                    raise
                _note_step(rt, "tries again: still locked, waits")
            finally:
                _sqlite_let_go(rt, wakeup, conn)
            shown = len(timed_out)
            if wakeup._wait(max(began + timeout - rt.clock(), 1e-6), False):
                continue
            del timed_out[shown:]  # (said below, if it is the end)
            rt.object_access(database, True, site, None, True, name)
            try:
                result = method(*args)  # timed out: what was in the way let go unseen (a cursor freed)?
                break
            except _sqlite3.OperationalError as e:
                if _sqlite_busy(e):
                    _timed_out(rt, began, timeout, name)
                raise
            finally:
                _sqlite_let_go(rt, wakeup, conn)
    return result


_sqlite_writers = {}  # database path -> the model's lock standing for its write lock (this execution)
_sqlite_writing = {}  # id(connection) -> (connection, the write lock it holds) (this execution)


def _sqlite_take_write_lock(rt, conn, database, site):
    """Waits for the database's write lock. (Not for the connection's timeout: a timed wait is
    a try the engine repeats, so a write took one step more when another held the lock, and a
    search that moved it planned a step it did not take. A transaction left open is a deadlock.)"""
    writer = _sqlite_writers.get(database)
    if writer is None:
        writer = _sqlite_writers[database] = Lock(False)
        writer._frontrun_site = None
        writer._frontrun_owner = _SqliteWriteLock(database)
    rt.lock_acquire(writer, True, None, site)
    _sqlite_writing[id(conn)] = (conn, writer)


class _SqliteWriteLock:
    """What the explanation calls a database's write lock."""

    def __init__(self, database):
        self.database = database

    def __repr__(self):
        return f"<the write lock of sqlite3 database {self.database}>"


def _note_step(rt, note):
    """What the explanation says beside the step the calling thread took last."""
    if rt.explaining:
        step_notes[rt.steps_taken() - 1] = note


def _sqlite_in_transaction(conn):
    try:
        return conn.in_transaction
    except _sqlite3.ProgrammingError:
        return False  # closed


def _sqlite_let_go(rt, wakeup, conn):
    """After a call on ``conn``: when it holds no transaction now, what it let go of (its
    transaction, a read's lock) may be what the waiters on its database wait for, and its write
    lock is let go. (Woken by every call, they tried again and waited again: steps that
    multiplied the schedules.) The waiters are woken first, and without a lock: one is listed
    in the step it last tried in, so who is woken follows the order of the steps on the file."""
    if _sqlite_in_transaction(conn):
        return
    if wakeup._waiters:
        for waiter in wakeup._waiters:
            rt.notify(waiter)
        wakeup._waiters.clear()
    held = _sqlite_writing.pop(id(conn), None)
    if held is not None:
        rt.lock_release(held[1], _site(rt))


def _sqlite_call_unexplored(conn, method, args):
    """Outside an explored thread (``setup()``, the invariant): sqlite's own busy wait, for the
    connection's timeout in real time."""
    deadline = _orig["monotonic"]() + conn.__dict__.get("_frontrun_timeout", 5.0)
    while True:
        try:
            return method(*args)
        except _sqlite3.OperationalError as e:
            if not _sqlite_busy(e) or _orig["monotonic"]() >= deadline:
                raise
        _orig["sleep"](0.001)


class _SqliteConnection(_sqlite3.Connection if _sqlite3 is not None else object):
    """A connection made during an exploration (``execute`` and its kin are a cursor's, as in
    C). Named as sqlite3's own: ``repr()`` and error messages read as without frontrun."""

    def cursor(self, factory=None):
        _sqlite_check_thread(self)
        return super().cursor(_sqlite_class(_sqlite3.Cursor if factory is None else factory, _SqliteCursor))

    def execute(self, sql, parameters=(), /):
        cursor = self.cursor()
        return _sqlite_call(self, "execute", _sqlite3.Cursor.execute, (cursor, sql, parameters), _sqlite_kind(sql))

    def executemany(self, sql, parameters, /):
        return _sqlite_call(self, "executemany", _sqlite3.Cursor.executemany, (self.cursor(), sql, parameters))

    def executescript(self, script, /):
        return _sqlite_call(self, "executescript", _sqlite3.Cursor.executescript, (self.cursor(), script))

    def commit(self):
        return _sqlite_call(self, "commit", super().commit, (), "end")

    def rollback(self):
        return _sqlite_call(self, "rollback", super().rollback, (), "end")

    def close(self):
        # (With no transaction open, it lets go of no write: a read, as its open statements were.)
        kind = "end" if _sqlite_in_transaction(self) else "read"
        return _sqlite_call(self, "close", super().close, (), kind)

    def __exit__(self, exc_type, exc, traceback):
        # sqlite's, by these methods: its commit, told the database is locked, rolled back at
        # once (and a try again then committed nothing).
        if exc_type is not None or exc is not None or traceback is not None:
            self.rollback()
            return False
        try:
            self.commit()
        except _sqlite3.Error:
            try:
                self.rollback()
            except _sqlite3.Error:
                pass
            raise
        return False


class _SqliteCursor(_sqlite3.Cursor if _sqlite3 is not None else object):
    """A cursor of such a connection: a fetch that reads the last row lets go of the read's
    lock, so it may wake a waiter."""

    def execute(self, sql, parameters=(), /):
        return _sqlite_call(self.connection, "execute", super().execute, (sql, parameters), _sqlite_kind(sql))

    def executemany(self, sql, parameters, /):
        return _sqlite_call(self.connection, "executemany", super().executemany, (sql, parameters))

    def executescript(self, script, /):
        return _sqlite_call(self.connection, "executescript", super().executescript, (script,))

    def fetchone(self):
        return _sqlite_call(self.connection, "fetchone", super().fetchone, (), "read")

    def fetchmany(self, *args, **kwargs):
        return _sqlite_call(self.connection, "fetchmany", functools.partial(super().fetchmany, **kwargs), args, "read")

    def fetchall(self):
        return _sqlite_call(self.connection, "fetchall", super().fetchall, (), "read")

    def close(self):
        return _sqlite_call(self.connection, "close", super().close, (), "read")

    def __next__(self):
        return _sqlite_call(self.connection, "fetchone", super().__next__, (), "read")


for _cls, _name in ((_SqliteConnection, "Connection"), (_SqliteCursor, "Cursor")):
    _cls.__name__ = _cls.__qualname__ = _name
    _cls.__module__ = "sqlite3"


def _sqlite_kind(sql):
    """What a statement does: "read" (a SELECT, a deferred BEGIN: reads commute, a shared lock
    lets others read), "end" (COMMIT, END, ROLLBACK: lets go of the write lock) or "write" (all
    else: it takes the write lock)."""
    if not isinstance(sql, str):
        return "write"
    words = sql.upper().replace(";", " ").split()[:3]
    first, rest = words[:1], words[1:]
    if first == ["SELECT"] or first == ["BEGIN"] and rest[:1] in ([], ["DEFERRED"], ["TRANSACTION"]):
        return "read"
    if first in (["COMMIT"], ["END"]) or first == ["ROLLBACK"] and "TO" not in rest:
        return "end"
    return "write"


# subprocess's pipes to a child: only the child makes them ready, so its selector waits for
# real, with no scheduling point: how often a cooperative look found them not ready yet would
# depend on the child's timing, and the steps of an execution with it.
_OUTSIDE_SELECTOR = (
    type("OutsideSelector", (subprocess._PopenSelector,), {"_frontrun_outside": True})
    if hasattr(subprocess, "_PopenSelector") else None
)


def _popen_wait(self, timeout):
    """``Popen.wait()`` waits for the child for real, its polls and naps no scheduling points:
    how many it takes is the child's timing (and its naps, on the modelled clock, would time
    it out at once)."""
    ident = _thread.get_ident()
    _outside.add(ident)
    try:
        return _orig["Popen._wait"](self, timeout)
    finally:
        _outside.discard(ident)


def _readable(sock, seconds):
    try:
        poller = _orig["select.poll"]()
        poller.register(sock, _select.POLLIN)
        return bool(poller.poll(seconds * 1000))
    except (OSError, ValueError):
        return True  # closed or odd: the call itself says what is wrong


def _socket_read(name):
    original = getattr(socket.socket, name)

    @functools.wraps(original)
    def method(self, *args, **kwargs):
        rt = _managed()
        if rt is not None:
            timeout = self.gettimeout()
            if timeout != 0:
                _wait_for(rt, _wakeup(), lambda seconds: _readable(self, seconds), timeout)
        elif _setup_started and self.gettimeout() != 0 and not _readable(self, 0):
            _setup_would_wait()  # setup() waits for a server thread it started
        return original(self, *args, **kwargs)

    return method


def _socket_write(name):
    original = getattr(socket.socket, name)

    @functools.wraps(original)
    def method(self, *args, **kwargs):
        if _managed() is None or self.gettimeout() == 0:
            return original(self, *args, **kwargs)
        return _changing(_wakeup(), original, self, *args, **kwargs)

    return method


_SOCKET_PATCHES = [(name, _socket_read(name)) for name in _SOCKET_READS if hasattr(socket.socket, name)] + [
    (name, _socket_write(name)) for name in _SOCKET_WRITES if hasattr(socket.socket, name)]
_SOCKET_OWN = {name for name, _ in _SOCKET_PATCHES if name in socket.socket.__dict__}


_IMPORTERS = [(builtins, "__import__"), (importlib, "import_module")]


def _quietly(importer):
    @functools.wraps(importer)
    def quiet(*args, **kwargs):
        # Not explored, or already importing (``_managed`` says None for both).
        if _managed() is None:
            return importer(*args, **kwargs)
        with quiet_import():
            return importer(*args, **kwargs)

    return quiet


def _patch_io():
    """The patches taken from what is in place when the exploration starts: the import
    functions, sockets, asyncio's loop. asyncio is imported now if the program has not yet (it
    may do so inside its threads), so that every execution takes the same steps."""
    global _asyncio_patched, _loop_select_caller
    import asyncio.base_events

    # Whatever import hook is in place now (a tool's own ``__import__``) is wrapped and put back.
    for owner, name in _IMPORTERS:
        current = getattr(owner, name)
        _orig[f"import.{name}"] = current
        setattr(owner, name, _quietly(current))
    for name, method in _SOCKET_PATCHES:
        _orig[f"socket.{name}"] = socket.socket.__dict__.get(name)
        setattr(socket.socket, name, method)
    cls = asyncio.base_events.BaseEventLoop
    _loop_select_caller = cls._run_once.__code__
    original = cls.__dict__["call_soon_threadsafe"]
    _orig["BaseEventLoop.call_soon_threadsafe"] = original

    @functools.wraps(original)
    def call_soon_threadsafe(self, *args, **kwargs):
        selector = getattr(self, "_selector", None)
        if _rt is None or selector is None:
            return original(self, *args, **kwargs)
        return _changing(_wakeup(id(selector), selector), original, self, *args, **kwargs)

    cls.call_soon_threadsafe = call_soon_threadsafe
    _asyncio_patched = cls


def _unpatch_io():
    global _asyncio_patched
    for owner, name in _IMPORTERS:
        setattr(owner, name, _orig.pop(f"import.{name}"))
    for name, _ in _SOCKET_PATCHES:
        saved = _orig.pop(f"socket.{name}", None)
        if name in _SOCKET_OWN:
            setattr(socket.socket, name, saved)
        else:
            delattr(socket.socket, name)
    if _asyncio_patched is not None:
        _asyncio_patched.call_soon_threadsafe = _orig.pop("BaseEventLoop.call_soon_threadsafe")
        _asyncio_patched = None
    _wakeups.clear()


# --- multiprocessing.pool.ThreadPool ---------------------------------------------------------
#
# A pool's three handler threads share state in code frontrun does not rewrite, so that a search
# could not repeat its schedules ("nondeterminism"). The worker handler sleeps in
# ``multiprocessing.connection.wait`` on a change notifier, a pipe that close(), terminate() and
# the emptying of the task cache write to: the model sees no pipe, and only real time ended that
# wait. A ThreadPool made during an exploration gets a modelled queue as its notifier instead,
# and the handler's wait is a get from it. The handlers stop when another thread writes their
# ``_state`` and look at the task cache that results leave: the accesses to both are reported.


class _PoolNotifier(SimpleQueue):
    """A ThreadPool's change notifier during an exploration: what it was told, as a queue."""

    def __init__(self):
        super().__init__()
        self._reader = self  # the pool hands its notifier's reader to the wait as a sentinel

    def close(self):
        pass


class _NotifyingContext:
    """A ThreadPool's multiprocessing context, but for the notifier it makes."""

    def __init__(self, ctx):
        self._ctx = ctx

    def SimpleQueue(self):
        return _PoolNotifier()

    def __getattr__(self, name):
        return getattr(self._ctx, name)


def _thread_pool_setup_queues(self):
    _orig["ThreadPool._setup_queues"](self)
    _explored_pools.append(weakref.ref(self))
    # (Pool.__init__ makes the notifier from its context next.)
    self._ctx = _NotifyingContext(self._ctx)


_explored_pools = []  # ThreadPools made in this execution


def _retire_pools():
    """The pools of an execution that is over are done with: their threads are gone, and the
    exit handler multiprocessing registers for each would terminate it again (and fail, its
    result handler not alive, when the execution ended before the tasks did)."""
    for ref in _explored_pools:
        pool = ref()
        finalizer = getattr(pool, "_terminate", None)
        if finalizer is not None:
            finalizer.cancel()
            pool._state = sys.modules["multiprocessing.pool"].TERMINATE  # no "unclosed pool" warning
    _explored_pools.clear()


def _pool_wait_for_updates(sentinels, change_notifier, timeout=None):
    if not isinstance(change_notifier, _PoolNotifier):
        return _orig["Pool._wait_for_updates"].__func__(sentinels, change_notifier, timeout)
    try:
        change_notifier.get(timeout=timeout)
    except queue.Empty:
        return
    while not change_notifier.empty():
        change_notifier.get()


class _ThreadState:
    """``Thread._state`` during an exploration (not threading's: multiprocessing.pool's handler
    threads are stopped by writing it), a reported read or write of the thread."""

    def __get__(self, thread, owner=None):
        if thread is None:
            return self
        try:
            value = thread.__dict__["_state"]
        except KeyError:
            raise AttributeError("_state") from None
        _report_pool_access(thread, False, "_state")
        return value

    def __set__(self, thread, value):
        _report_pool_access(thread, True, "_state")
        thread.__dict__["_state"] = value

    def __delete__(self, thread):
        _report_pool_access(thread, True, "_state")
        del thread.__dict__["_state"]


def _report_pool_access(obj, write, key=None):
    rt = _managed()
    if rt is not None:
        rt.object_access(obj, write, _site(rt), key)


def _pool_cache_method(name, write):
    # (Whole-cache accesses: a job's key comes from a counter that outlives an execution.)
    def method(self, *args):
        _report_pool_access(self, write)
        return _orig[f"_PoolCache.{name}"](self, *args)

    method.__name__ = name
    return method


_POOL_CACHE_METHODS = (("__getitem__", False), ("__len__", False), ("__setitem__", True), ("__delitem__", True))


def _patch_pools():
    """Patched when the program has imported multiprocessing.pool before the exploration."""
    pool = sys.modules.get("multiprocessing.pool")
    if pool is None or not hasattr(pool.Pool, "_wait_for_updates"):
        return
    _orig["Pool._wait_for_updates"] = pool.Pool.__dict__["_wait_for_updates"]
    _orig["ThreadPool._setup_queues"] = pool.ThreadPool.__dict__["_setup_queues"]
    pool.Pool._wait_for_updates = staticmethod(_pool_wait_for_updates)
    pool.ThreadPool._setup_queues = _thread_pool_setup_queues
    for name, write in _POOL_CACHE_METHODS:
        _orig[f"_PoolCache.{name}"] = getattr(pool._PoolCache, name)
        _orig[f"_PoolCache.{name} own"] = name in vars(pool._PoolCache)
        setattr(pool._PoolCache, name, _pool_cache_method(name, write))
    threading.Thread._state = _ThreadState()
    _orig["multiprocessing.pool"] = pool


def _unpatch_pools():
    pool = _orig.pop("multiprocessing.pool", None)
    if pool is not None:
        pool.Pool._wait_for_updates = _orig.pop("Pool._wait_for_updates")
        pool.ThreadPool._setup_queues = _orig.pop("ThreadPool._setup_queues")
        for name, _ in _POOL_CACHE_METHODS:
            original = _orig.pop(f"_PoolCache.{name}")
            if _orig.pop(f"_PoolCache.{name} own"):
                setattr(pool._PoolCache, name, original)
            else:
                delattr(pool._PoolCache, name)
        del threading.Thread._state


def _future_init(self, *args, **kwargs):
    _orig["Future.__init__"](self, *args, **kwargs)
    self._frontrun_serial = next(_future_serials)
    # (``wait()`` and ``as_completed()`` read several futures in one step: named by their maker,
    # they keep their names whichever thread touches one first.)
    _name_by_maker(self)


def _named_by_maker_init(cls):
    """``cls.__init__``, and the new object named by its maker (``_name_by_maker``): a queue,
    semaphore or event a thread makes is numbered the same in every execution, whichever
    thread reaches it first (a pool's result queue, first put to by either worker)."""
    original = cls.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        _name_by_maker(self)

    return __init__


def _future_hash(self):
    serial = self.__dict__.get("_frontrun_serial")
    return serial if serial is not None else object.__hash__(self)


def _future_order(future):
    serial = getattr(future, "_frontrun_serial", None)
    return (0, serial) if serial is not None else (1, id(future))


def _acquire_futures_init(self, futures):
    self.futures = sorted(futures, key=_future_order)


# ---------------------------------------------------------------------------- futures

# A ``concurrent.futures.Future`` is modelled by its state, not by its condition's lock: the
# owner's ``result()`` waited for the lock in each order with the worker's two uses of it
# (``set_running_or_notify_cancel``, ``set_result``), three schedules per future that read the same
# thing (three tasks on a two-worker pool: 27,969 executions). Looks (``result``, ``exception``,
# ``done``, ``cancelled``, ``running``) are one step that reads the state, without the lock;
# ``result()`` and ``exception()`` wait (that step is taken once the future is done). Changes
# (``set_running_or_notify_cancel``, ``set_result``, ``set_exception``, ``cancel``) still take the
# lock (the original ``wait()`` and ``as_completed()`` hold it while they install their waiters:
# see below), and write the state in one step under it, just before they change it. Two keys:
# whether it is done (set, failed or cancelled) and whether it has started; a look at one is not
# ordered against a change of the other. Subclasses that override these methods keep the lock.
_DONE, _STARTED = "<done>", "<started>"
_FUTURE_METHODS = ("result", "exception", "done", "cancelled", "running", "cancel", "set_result",
                   "set_exception", "set_running_or_notify_cancel", "_invoke_callbacks")
_FINISHED_STATES = (_futures.CANCELLED, _futures.CANCELLED_AND_NOTIFIED, _futures.FINISHED)


def _future_model(future):
    """The runtime if ``future`` is modelled here (an explored thread, the class's own methods,
    a cooperative condition over a cooperative RLock), else None."""
    rt = _managed()
    if rt is None:
        return None
    cls = type(future)
    if cls is not _futures.Future and any(getattr(cls, name) is not getattr(_futures.Future, name)
                                          for name in _FUTURE_METHODS):
        return None
    cond = future.__dict__.get("_condition")
    if type(cond) is not Condition and isinstance(cond, _orig["Condition"]):
        make_cooperative(cond)  # a future made before the exploration
    return rt if type(cond) is Condition and type(cond._lock) is RLock else None


def _future_finished(future):
    # (Asked by the runtime while it decides what runs next: the __dict__ only.)
    return future.__dict__.get("_state") in _FINISHED_STATES


def _future_look(rt, future, keys, waits=False, timeout=None):
    """One step that reads ``keys`` of ``future``; with ``waits``, taken once it is done (or, with
    a timeout, when nothing else can run). Raises TimeoutError if it was not done by then."""
    _futures_step(rt, [future], (lambda: _future_finished(future)) if waits else None, timeout, keys, "result")
    if waits or timeout is not None:
        state = future._state
        if state in (_futures.CANCELLED, _futures.CANCELLED_AND_NOTIFIED):
            raise _futures.CancelledError()
        if state != _futures.FINISHED:
            raise _futures.TimeoutError()


def _future_result(self, timeout=None):
    rt = _future_model(self)
    if rt is None:
        return _orig["Future.result"](self, timeout)
    _future_look(rt, self, (_DONE,), waits=True, timeout=timeout)
    try:
        if self._exception is not None:
            raise self._exception
        return self._result
    finally:
        self = None  # (as the original: no cycle through the exception's traceback)


def _future_exception(self, timeout=None):
    rt = _future_model(self)
    if rt is None:
        return _orig["Future.exception"](self, timeout)
    _future_look(rt, self, (_DONE,), waits=True, timeout=timeout)
    return self._exception


def _future_state_look(name, keys, answer):
    def look(self):
        rt = _future_model(self)
        if rt is None:
            return _orig[f"Future.{name}"](self)
        _future_look(rt, self, keys)
        return answer(self._state)

    look.__name__ = name
    return look


def _future_change(rt, future, keys):
    """The step of a change of ``future``'s state, under its lock (held)."""
    rt.queue_step([(future, key, write) for key, write in keys], site=_site(rt))


def _future_finish(name, attribute):
    def finish(self, value):
        rt = _future_model(self)
        if rt is None:
            return _orig[f"Future.{name}"](self, value)
        with self._condition:
            _future_change(rt, self, ((_DONE, True),))
            if self._state in _FINISHED_STATES:
                raise _futures.InvalidStateError("{}: {!r}".format(self._state, self))
            setattr(self, attribute, value)
            self._state = _futures.FINISHED
            self._frontrun_completed = next(_completions)
            for waiter in self._waiters:
                getattr(waiter, "add_exception" if attribute == "_exception" else "add_result")(self)
            self._condition.notify_all()
        self._invoke_callbacks()

    finish.__name__ = name
    return finish


def _future_cancel(self):
    rt = _future_model(self)
    if rt is None:
        return _orig["Future.cancel"](self)
    with self._condition:
        _future_change(rt, self, ((_STARTED, False), (_DONE, True)))
        if self._state in (_futures.RUNNING, _futures.FINISHED):
            return False
        if self._state in (_futures.CANCELLED, _futures.CANCELLED_AND_NOTIFIED):
            return True
        self._state = _futures.CANCELLED
        self._condition.notify_all()
    self._invoke_callbacks()
    return True


def _future_set_running(self):
    rt = _future_model(self)
    if rt is None:
        return _orig["Future.set_running_or_notify_cancel"](self)
    with self._condition:  # (an RLock: the original's takes it again, no step)
        # Told of its cancellation, it is done for wait() and as_completed() from now on.
        notified = self._state == _futures.CANCELLED
        _future_change(rt, self, ((_STARTED, True), (_DONE, notified)))
        if notified:
            self._frontrun_completed = next(_completions)
        return _orig["Future.set_running_or_notify_cancel"](self)


_FUTURE_PATCHES = [
    ("result", _future_result),
    ("exception", _future_exception),
    ("done", _future_state_look("done", (_DONE,), lambda state: state in _FINISHED_STATES)),
    ("cancelled", _future_state_look("cancelled", (_DONE,), lambda state: state in _FINISHED_STATES[:2])),
    ("running", _future_state_look("running", (_STARTED, _DONE), lambda state: state == _futures.RUNNING)),
    ("cancel", _future_cancel),
    ("set_result", _future_finish("set_result", "_result")),
    ("set_exception", _future_finish("set_exception", "_exception")),
    ("set_running_or_notify_cancel", _future_set_running),
]


# ``concurrent.futures.wait()`` and ``as_completed()`` over modelled futures: a step that reads
# whether each is done (a cancelled one once a worker has been told: that writes it too), taken
# once enough are (or, with a timeout, when nothing else can run), instead of a waiter object
# whose lock and event each finishing future takes, and the locks of all the futures taken to
# install and remove it (two tasks on a two-worker pool: wait() 2,116 executions, 136 with the
# model; as_completed() 6,004 and 631). What they return is what the originals can: the futures
# done when the step runs (for as_completed, each step yields those done since the last, in the
# order they finished; for wait, see there). The functions are often bound by name at import
# (``from concurrent.futures import wait``): their code is swapped for a call of these while an
# exploration runs.
_DONE_FOR_WAIT = (_futures.CANCELLED_AND_NOTIFIED, _futures.FINISHED)


def _done_for_wait(future):
    # (Asked by the runtime while it decides what runs next: the __dict__ only.)
    return future.__dict__.get("_state") in _DONE_FOR_WAIT


def _modelled_futures(fs):
    """The runtime if every one of ``fs`` is a modelled future (else the original runs, and
    fails as it does on what is not a future)."""
    rt = _managed()
    ok = rt is not None and all(isinstance(f, _futures.Future) and _future_model(f) is rt for f in fs)
    return rt if ok else None


def _futures_step(rt, fs, ready, timeout, keys=(_DONE,), how="wait"):
    """A look at ``keys`` (whether it is done) of each of ``fs`` (in a fixed order); with
    ``ready``, taken once ``ready()`` (or, with a ``timeout``, when nothing else can run: the
    clock moves on). A deadlock there names the first not done, waited for in ``how``."""
    waits = ready is not None and not ready() and (timeout is None or timeout > 0)
    began = rt.clock() if waits and timeout is not None else None
    me = rt.current_id()
    queue_waits[me] = (next((f for f in fs if not _done_for_wait(f)), fs[0]), how)
    rt.queue_step([(f, key, False) for f in fs for key in keys], ready=ready if waits else None, timeout=timeout,
                  site=_site(rt), any_time=timeouts_any_time)
    del queue_waits[me]
    if began is not None and not ready():
        _timed_out(rt, began, timeout, "wait")


def _futures_wait(fs, timeout=None, return_when=_futures.ALL_COMPLETED):
    fs = set(fs)
    rt = _modelled_futures(fs)
    if rt is None or not fs:
        return _call_original(_futures.wait, fs, timeout, return_when)

    def ready():
        done = [f for f in fs if _done_for_wait(f)]
        if return_when == _futures.FIRST_COMPLETED and done:
            return True
        if return_when == _futures.FIRST_EXCEPTION and any(
                f.__dict__.get("_state") == _futures.FINISHED and f.__dict__.get("_exception") is not None
                for f in done):
            return True
        return len(done) == len(fs)

    # As the original: a look at them all (under all their locks), which may do; else a wait
    # for enough of them, then the waiter's removal from each in turn (under its lock), which
    # also counts one that finished before it (a later one may be done, an earlier not). Waiting
    # for them all with no time limit, it ends with them all done: one step.
    order = sorted(fs, key=_future_order)
    if return_when == _futures.ALL_COMPLETED and timeout is None:
        _futures_step(rt, order, ready, None)
        return _futures.DoneAndNotDoneFutures(fs, set())
    _futures_step(rt, order, None, None)
    done = {f for f in fs if _done_for_wait(f)}
    if not ready():
        _futures_step(rt, order, ready, timeout)
        done = {f for f in fs if _done_for_wait(f)}
        for f in fs:  # (in the original's order)
            if f not in done:
                _futures_step(rt, [f], None, None)
                if _done_for_wait(f):
                    done.add(f)
    return _futures.DoneAndNotDoneFutures(done, fs - done)


def _futures_as_completed(fs, timeout=None):
    if timeout is not None:
        end_time = timeout + time.monotonic()
    fs = set(fs)
    rt = _modelled_futures(fs)
    if rt is None or not fs:
        yield from _call_original(_futures.as_completed, fs, timeout)
        return
    total = len(fs)
    _futures_step(rt, sorted(fs, key=_future_order), None, None)
    finished = list({f for f in fs if _done_for_wait(f)})
    pending = sorted((f for f in fs if not _done_for_wait(f)), key=_future_order)
    while finished:
        yield finished.pop()  # (as the original: the last first)
    while pending:
        if timeout is None:
            wait_timeout = None
        else:
            wait_timeout = end_time - time.monotonic()
            if wait_timeout < 0:
                raise _futures.TimeoutError("%d (of %d) futures unfinished" % (len(pending), total))
        _futures_step(rt, pending, lambda: any(_done_for_wait(f) for f in pending), wait_timeout)
        finished = sorted((f for f in pending if _done_for_wait(f)),
                          key=lambda f: f.__dict__.get("_frontrun_completed", -1))
        pending = [f for f in pending if not _done_for_wait(f)]
        for future in finished:
            yield future


def _call_original(function, *args):
    """``function`` as it was before its code was swapped (``_PATCHES``)."""
    code = _orig[_key(function, "__code__")]
    return types.FunctionType(code, function.__globals__, function.__name__, function.__defaults__)(*args)


def _futures_wait_trampoline(fs, timeout=None, return_when=None):
    return _frontrun_futures_wait(fs, timeout, return_when)  # noqa: F821 (in _futures: _patch)


def _futures_as_completed_trampoline(fs, timeout=None):
    yield from _frontrun_futures_as_completed(fs, timeout)  # noqa: F821 (in _futures: _patch)


_PATCHES = [
    (threading, "Lock", Lock),
    (threading, "RLock", RLock),
    (threading, "Condition", Condition),
    (queue, "SimpleQueue", SimpleQueue),
    (queue.Queue, "__init__", _named_by_maker_init(queue.Queue)),
    (queue.Queue, "put", _queue_put),
    (queue.Queue, "get", _queue_get),
    (queue.Queue, "put_nowait", _queue_put_nowait),
    (queue.Queue, "get_nowait", _queue_get_nowait),
    (queue.Queue, "qsize", _queue_look("qsize", lambda q: len(q.queue))),
    (queue.Queue, "empty", _queue_look("empty", lambda q: not q.queue)),
    (queue.Queue, "full", _queue_look("full", lambda q: 0 < q.maxsize <= len(q.queue))),
    (queue.Queue, "task_done", _queue_task_done),
    (queue.Queue, "join", _queue_join),
] + ([(queue.Queue, "shutdown", _queue_shutdown)] if hasattr(queue.Queue, "shutdown") else []) + [
    (builtins, "print", _print),
    (_uuid, "uuid4", _uuid4),
    (_tempfile, "mkstemp", _making_in_directory("mkstemp", 2)),
    (_tempfile, "mkdtemp", _making_in_directory("mkdtemp", 2)),
    (_tempfile, "NamedTemporaryFile", _making_in_directory("NamedTemporaryFile", 6)),
    (time, "sleep", _sleep),
    (time, "monotonic", _monotonic),
    (time, "time", _time),
    (time, "perf_counter", _perf_counter),
    (time, "monotonic_ns", _monotonic_ns),
    (time, "time_ns", _time_ns),
    (time, "perf_counter_ns", _perf_counter_ns),
    (time, "clock_gettime", _clock_gettime_of("clock_gettime", _time, _monotonic)),
    (time, "clock_gettime_ns", _clock_gettime_of("clock_gettime_ns", _time_ns, _monotonic_ns)),
] + _CALENDAR_PATCHES + [
    # Bound at import by queue and threading: their timeouts read these.
    (queue, "time", _monotonic),
    (threading, "_time", _monotonic),
    (threading.Thread, "start", _thread_start),
    (threading.Thread, "join", _thread_join),
    (threading.Thread, "is_alive", _thread_is_alive),
    (threading.Thread, "ident", _thread_ident),
    (threading.Thread, "__hash__", _thread_hash),
    (threading.Event, "__init__", _named_by_maker_init(threading.Event)),
    (threading.Event, "is_set", _reported_event_method("is_set", write=False)),
    (threading.Event, "set", _reported_event_method("set", write=True)),
    (threading.Event, "clear", _reported_event_method("clear", write=True)),
    (functools.cached_property, "__get__", _cached_property_get),
    (_futures.Future, "__init__", _future_init),
    (_futures.Future, "__hash__", _future_hash),
    (_futures._AcquireFutures, "__init__", _acquire_futures_init),
    (_futures.wait, "__code__", _futures_wait_trampoline.__code__),
    (_futures.as_completed, "__code__", _futures_as_completed_trampoline.__code__),
    # Made at import, a real lock, held by every pool's submit() across its queue put (a step):
    # another thread's submit to its own pool then blocked for real, holding the turn.
    (_futures_thread, "_global_shutdown_lock", Lock(False)),
] + [(_futures.Future, name, method) for name, method in _FUTURE_PATCHES] + [
    (threading.Semaphore, "__init__", _named_by_maker_init(threading.Semaphore)),
    (threading.Semaphore, "acquire", _semaphore_acquire),
    (threading.Semaphore, "__enter__", _semaphore_acquire),
    (threading.Semaphore, "release", _semaphore_release),
    (threading.BoundedSemaphore, "release", _semaphore_release),
] + [(cls, "select", _selector_select(cls.__dict__["select"])) for cls in _SELECTOR_CLASSES] + (
    [(subprocess, "_PopenSelector", _OUTSIDE_SELECTOR)] if _OUTSIDE_SELECTOR is not None else []) + (
    [(subprocess.Popen, "_wait", _popen_wait)] if hasattr(subprocess.Popen, "_wait") else []) + _SELECT_PATCHES + (
    [(_fcntl, "flock", _flock)] if _fcntl is not None else []) + (
    [(_sqlite3, "connect", _sqlite_connect), (_sqlite3.dbapi2, "connect", _sqlite_connect)]
    if _sqlite3 is not None else [])


def _key(owner, name):
    if owner in (threading.Thread, threading.Event, threading.Semaphore, threading.BoundedSemaphore,
                 functools.cached_property, _futures.Future, _futures.wait, _futures.as_completed,
                 _futures._AcquireFutures, queue.Queue, subprocess.Popen, _select, *_SELECTOR_CLASSES):
        return f"{owner.__name__}.{name}"
    if owner is not time and name == "time" or name == "_time":
        return f"{owner.__name__}.{name}"
    if _sqlite3 is not None and owner in (_sqlite3, _sqlite3.dbapi2):
        return f"sqlite3.{name}"
    return name


for _owner, _name, _ in _PATCHES:
    _orig[_key(_owner, _name)] = getattr(_owner, _name)


def raised_unwinding(exc):
    """Whether ``exc`` is the abort that ends an execution, or was raised while it unwound the
    thread (a ``with`` of a lock it was waiting to take back lets go of one it does not hold):
    not the program's. (``ExecutionAborted`` is ``_dpor``'s: known here by name.)"""
    while exc is not None:
        if type(exc).__name__ == "ExecutionAborted":
            return True
        exc = exc.__context__
    return False


def _quiet_unwinding(record):
    """Drops a pool worker's "Exception in worker" log of the unwinding that ends an execution
    with the worker idle (the abort, or what it raised on the way out)."""
    return not raised_unwinding(record.exc_info[1] if record.exc_info else None)


# An asyncio task a thread ran when its execution was aborted holds the abort: at its garbage
# collection, which may come after the exploration, asyncio logged "Task exception was never
# retrieved ... ExecutionAborted".
logging.getLogger("asyncio").addFilter(_quiet_unwinding)

# asyncio.run's own clean-up coroutines, made while an aborted thread unwinds and never run:
# "coroutine 'BaseEventLoop.shutdown_asyncgens' was never awaited" is frontrun's doing.
_ABORTED_CLEAN_UP = r"coroutine 'BaseEventLoop\.shutdown_(asyncgens|default_executor)' was never awaited"


def _quiet_unraisable(hook):
    """``sys.unraisablehook`` without the abort that ends an execution: a finalizer that runs
    while a thread unwinds (a ``Popen.__del__`` polling its child under a cooperative lock) is
    aborted too, and that is frontrun's doing, not an error of the program."""
    def unraisable(info):
        if not raised_unwinding(info.exc_value):
            hook(info)

    return unraisable


def _cooperative_logging_locks():
    """logging takes a handler's lock around ``emit()``; handlers made before the exploration hold
    real RLocks. A thread parked inside (a handler or formatter in rewritten code, or the
    ``__repr__`` of a logged object) would block the next thread to log for real, so they hold
    cooperative RLocks while it runs. (logging's module lock is left real: no user code runs
    under it, and the loggers' level caches take it in the first execution only, so modelled it
    would make schedules differ.) Returns what to put back."""
    swapped = []
    for ref in list(logging._handlerList):
        handler = ref()
        lock = getattr(handler, "lock", None)
        if lock is not None and not isinstance(lock, (Lock, RLock)):
            swapped.append((handler, lock))
            handler.lock = RLock()
    return swapped


# The functions and classes of the modules above that the program may have bound to names of
# its own at import (``from time import sleep``, ``from queue import SimpleQueue``): the real
# ones then slept for real, unseen, and a C SimpleQueue's get() (or ``from select import
# select``) blocked the explored thread for ever. Rebound in the program's modules while the
# exploration runs: their globals, the default arguments of their functions and methods
# (``def __init__(self, queue_cls=queue.SimpleQueue)``), their classes' attributes
# (``clock = time.monotonic``) and the values of their module-level dicts (a registry of
# factories).
_IMPORTABLE = [(owner, name, replacement) for owner, name, replacement in _PATCHES
               if (owner, name) in {(threading, "Lock"), (threading, "RLock"), (threading, "Condition"),
                                    (queue, "SimpleQueue"), (time, "sleep"), (time, "monotonic"), (time, "time"),
                                    (time, "perf_counter"), (time, "monotonic_ns"), (time, "time_ns"),
                                    (time, "perf_counter_ns"), (time, "clock_gettime"), (time, "clock_gettime_ns"),
                                    *((owner, name) for owner, name, _ in _CALENDAR_PATCHES)}
               or owner is _select or owner is _tempfile or owner is _uuid or _fcntl is not None and owner is _fcntl
               or _sqlite3 is not None and owner is _sqlite3]
# (how, holder, key, original, replacement): "item" of a dict, "attr" of a class, "defaults" of
# a function (key: "__defaults__" or "__kwdefaults__", the whole tuple or dict swapped).
_rebound = []


def _rebind_imported_names():
    originals = {id(_orig[_key(owner, name)]): (_orig[_key(owner, name)], replacement)
                 for owner, name, replacement in _IMPORTABLE}

    def replacement(value):
        found = originals.get(id(value))
        return found[1] if found is not None and found[0] is value else None

    def rebind_items(d):
        for key, value in list(d.items()):
            new = replacement(value)
            if new is not None:
                d[key] = new
                _rebound.append(("item", d, key, value, new))

    def rebind_defaults(fn):
        if type(fn) in (staticmethod, classmethod):
            fn = fn.__func__
        if type(fn) is not types.FunctionType:
            return
        defaults = fn.__defaults__
        if defaults and any(replacement(v) is not None for v in defaults):
            new = tuple(v if replacement(v) is None else replacement(v) for v in defaults)
            fn.__defaults__ = new
            _rebound.append(("defaults", fn, "__defaults__", defaults, new))
        kwdefaults = fn.__kwdefaults__
        if kwdefaults and any(replacement(v) is not None for v in kwdefaults.values()):
            new = {k: v if replacement(v) is None else replacement(v) for k, v in kwdefaults.items()}
            fn.__kwdefaults__ = new
            _rebound.append(("defaults", fn, "__kwdefaults__", kwdefaults, new))

    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None) if isinstance(module, types.ModuleType) else None
        file = namespace.get("__file__") if isinstance(namespace, dict) else None
        if not isinstance(file, str) or not _native.is_rewritten_file(file):
            continue
        rebind_items(namespace)
        if str(namespace.get("__name__", "")).partition(".")[0] in _STDLIB_MODULES:
            # A stdlib module the user had rewritten: its classes keep the real primitives they
            # hold (selectors' `_selector_cls = select.poll`), which frontrun's own models of
            # those classes expect.
            continue
        for value in list(namespace.values()):
            if type(value) is types.FunctionType:
                rebind_defaults(value)
            elif type(value) is dict:
                rebind_items(value)
            elif issubclass(type(value), type) and _class_namespace(value).get("__module__") == namespace.get("__name__"):
                # (Of any metaclass: an ABC's too.)
                for attr, member in list(_class_namespace(value).items()):
                    new = replacement(member)
                    if new is None:
                        rebind_defaults(member)
                        continue
                    if type(new) is types.FunctionType:
                        new = staticmethod(new)  # (a builtin function in a class does not bind)
                    try:
                        setattr(value, attr, new)
                    except (AttributeError, TypeError):
                        continue
                    _rebound.append(("attr", value, attr, member, new))


_STDLIB_MODULES = frozenset(getattr(sys, "stdlib_module_names", ()))


def _class_namespace(cls):
    """``cls.__dict__`` without a metaclass's own attribute lookup (no code of the program's)."""
    return type.__getattribute__(cls, "__dict__")


def _unbind_imported_names():
    for how, holder, key, original, replacement in reversed(_rebound):
        if how == "item":
            if holder.get(key) is replacement:
                holder[key] = original
        elif how == "attr":
            if _class_namespace(holder).get(key) is replacement:
                setattr(holder, key, original)
        elif getattr(holder, key) is replacement:
            setattr(holder, key, original)
    _rebound.clear()


def _patch():
    for owner, name, replacement in _PATCHES:
        setattr(owner, name, replacement)
    _rebind_imported_names()
    # What the trampolines of wait() and as_completed() call (they run in that module).
    _futures._frontrun_futures_wait = _futures_wait
    _futures._frontrun_futures_as_completed = _futures_as_completed
    _patch_io()
    _patch_pools()
    _swap_clock_methods()


def _unpatch():
    for owner, name, _ in _PATCHES:
        setattr(owner, name, _orig[_key(owner, name)])
    _unbind_imported_names()
    del _futures._frontrun_futures_wait, _futures._frontrun_futures_as_completed
    _unpatch_io()
    _unpatch_pools()
    _restore_clock_methods()


_forking = None  # (ident, the Thread it runs as) set aside while an explored thread forks


def _before_fork():
    # The child's threading would make the Thread the forking thread runs as its main thread: a
    # started Thread no real thread backs, or a worker's dummy one, and neither can shut down
    # (3.12: "assert tlock is not None"). Unlisted, the child makes a main thread of its own.
    global _forking
    ident = _thread.get_ident()
    if _managed() is not None and ident in threading._active:
        _forking = (ident, threading._active.pop(ident))


def _after_fork_in_parent():
    global _forking
    if _forking is not None:
        threading._active[_forking[0]] = _forking[1]
        _forking = None


def _after_fork_in_child():
    """A process forked in an exploration (a process pool's worker) is not explored: its
    threading and sockets are the real ones again, and nothing it does is reported."""
    global _rt, _pool, _forking
    _forking = None
    if _rt is None:
        return
    _rt, _pool = None, None
    _native._set_python_sink(None)
    _unpatch()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)


@contextmanager
def patched(rt, pool):
    """Cooperative primitives in place and reports routed to ``rt`` for the block's duration."""
    global _rt, _pool, _rt_pid, _clock_start
    if _rt is not None:
        raise RuntimeError("frontrun explorations cannot be nested or run concurrently")
    _clock_start = (_orig["monotonic"](), _orig["time"](), _orig["perf_counter"]())
    _rt, _pool, _rt_pid = rt, pool, os.getpid()
    _loggers_before.clear()
    _loggers_before.update(logging.Logger.manager.loggerDict)
    _patch()
    if pool is not None:
        pool.show()
    futures_log = logging.getLogger("concurrent.futures")
    futures_log.addFilter(_quiet_unwinding)
    logging_locks = _cooperative_logging_locks()
    unraisable_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_unraisable(unraisable_hook)
    warnings.filterwarnings("ignore", _ABORTED_CLEAN_UP, RuntimeWarning)
    clean_up_filter = warnings.filters[0]
    rt.start()
    try:
        yield
    finally:
        rt.stop()
        sys.unraisablehook = unraisable_hook
        if clean_up_filter in warnings.filters:
            warnings.filters.remove(clean_up_filter)
            getattr(warnings, "_filters_mutated", lambda: None)()
        for handler, lock in logging_locks:
            handler.lock = lock
        futures_log.removeFilter(_quiet_unwinding)
        if pool is not None:
            pool.hide()
        _unpatch()
        _restore_converted()
        _finish_explored_threads()
        # (The last execution's queues die with it, not at the next exploration.)
        _queue_models.clear()
        queue_waits.clear()
        _retire_pools()
        _sqlite_roll_back_left_open()
        _rt, _pool = None, None
