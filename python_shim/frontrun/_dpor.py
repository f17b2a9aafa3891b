"""``explore_dpor`` and ``replay``: run a test's threads under the DPOR engine.

Each execution calls ``setup()`` for fresh state, runs every ``fn(state)`` in its own explored
thread, one at a time under the engine's control (``frontrun._native.DporRuntime``; the handoff
is in Rust), then checks ``invariant(state)``. Worker threads are a pool reused across
executions. Nothing is ever raised out of an exploration for a failure of the code under test:
the result says what happened.
"""

from __future__ import annotations

import _thread
import atexit
import bisect
import contextvars
import functools
import gc
import os
import builtins
import heapq
import inspect
import io
import itertools
import linecache
import operator
import pathlib
import random
import re
import shutil
import sys
import threading
import time
import traceback
import types
import warnings
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from frontrun import _coop, _native, _stable_hash
from frontrun.rewrite._core import normalize_resource_methods

# The real clock: during an exploration time.monotonic runs ahead by the modelled waits.
_now = _coop._orig["monotonic"]

DEFAULT_MAX_STEPS = 100_000
PROGRESS_AFTER = 2.0  # seconds before the progress line appears


class ExecutionAborted(BaseException):
    """Raised inside explored threads to end an execution early (deadlock, runaway, timeout).

    A BaseException so that ``except Exception`` in the code under test does not swallow it.
    """


class NotInstrumentedError(RuntimeError):
    """The code under test reported no shared-state access: it was not rewritten."""


class NotInstrumentedWarning(UserWarning):
    """The threads reported no shared-state access, only their locks, waits or sleeps: the code
    under test was probably not rewritten, and what it shares is not explored."""


class LeftoverStateWarning(UserWarning):
    """The first execution changed a module global of rewritten code (or an attribute of a class
    or a module-level instance defined there, or how much a container there holds) that
    ``setup()`` does not set back: every later execution starts from what the one before left (a
    client or cache made lazily), so what the threads did before it was set is not explored in
    every order."""


class SeparateConnectionsWarning(UserWarning):
    """Threads called separate sqlite3 connections that were made before the exploration began
    (or by a ``connect`` bound before it): frontrun does not know which database file they have
    open, so the calls of each connection are ordered, not those of two connections to one
    file, and a race through the database (an update lost between two connections'
    transactions) is not explored."""


@dataclass
class DporResult:
    """What an exploration (or a replay) found.

    ``property_holds``: True (every interleaving checked, none failed), False (a failure, see
    ``failure_kind``/``explanation``/``counterexample``) or None (inconclusive, see
    ``inconclusive_reason``).

    Threads are numbered as in the ``threads`` list everywhere in ``explanation`` and messages:
    thread 0 is ``threads[0]``; the threads ``setup()`` started follow, then those the test's
    threads start themselves (``threading.Thread``), in the order they are started.

    ``counterexample`` is the failing schedule, for ``replay``: the thread that took each step,
    run-length encoded (``"1*3,2"`` = three steps of one thread, then one of another). It is the
    engine's own record and numbers threads one higher: its thread 0 is the virtual root that
    starts the test's threads, so ``threads[i]`` is its thread ``i + 1``. Pass it to ``replay``
    as it is.
    """

    property_holds: Optional[bool]
    num_explored: int
    failure_kind: Optional[str] = None
    explanation: str = ""
    counterexample: Optional[str] = None
    inconclusive_reason: Optional[str] = None
    elapsed: float = 0.0
    stats: dict = field(default_factory=dict)
    reproduced: Optional[bool] = None

    def __bool__(self):
        return self.property_holds is True

    def __str__(self):
        if self.property_holds:
            return f"frontrun: no failure in {self.num_explored} interleavings"
        if self.property_holds is None:
            return f"frontrun: inconclusive after {self.num_explored} interleavings: {self.inconclusive_reason}"
        return self.explanation


# ---------------------------------------------------------------------------- workers


class _Pool:
    """The worker threads of the process's runtime, kept from one exploration to the next.

    Workers are bare ``_thread`` threads. Each makes its ``threading`` placeholder (a dummy
    Thread, so that ``threading.current_thread()`` in a task needs no cooperative primitive) when
    it starts; the placeholders are listed in ``threading._active`` only while an exploration
    runs, so that between explorations ``threading.enumerate()`` and ``active_count()`` show the
    program's own threads only. Idle workers sleep in the native module, off the GIL.
    """

    def __init__(self, rt):
        self.rt = rt
        self.exited = []  # one held lock per worker, released as its very last act
        self.placeholders = {}  # ident -> the worker's dummy Thread
        self.visible = False

    def ensure_idle(self, n):
        while self.rt.idle_workers() < n:
            slot = self.rt.register_worker(0)
            exited = _thread.allocate_lock()
            exited.acquire()
            ready = _thread.allocate_lock()
            ready.acquire()
            self.exited.append(exited)
            _thread.start_new_thread(self._main, (slot, exited, ready))
            ready.acquire()  # its placeholder exists (and is listed or not) before it is used

    def show(self):
        """Lists the workers in ``threading._active`` (an exploration starts)."""
        with threading._active_limbo_lock:
            self.visible = True
            threading._active.update(self.placeholders)

    def hide(self):
        with threading._active_limbo_lock:
            self.visible = False
            for ident, placeholder in self.placeholders.items():
                if threading._active.get(ident) is placeholder:
                    del threading._active[ident]

    def shutdown(self, timeout=5.0):
        """Sends the workers home and waits for them to leave: none may still be inside the
        native module when the interpreter shuts down."""
        self.rt.shutdown()
        deadline = _now() + timeout
        for exited in self.exited:
            if exited.acquire(True, max(0.0, deadline - _now())):
                exited.release()

    def _main(self, slot, exited, ready):
        try:
            ident = threading.get_ident()
            self.rt.set_worker_ident(slot, ident)
            # The dummy Thread object is made now, with real primitives, not inside a task; and
            # not from the program's thread-name counter (its threads are named as in a run
            # without frontrun's workers: the exploring thread waits for this one meanwhile).
            names, threading._counter = threading._counter, itertools.count(1).__next__
            try:
                placeholder = threading.current_thread()
            finally:
                threading._counter = names
            # A test's thread stands for one the program started, not a daemon: a Thread (a
            # Timer) it makes is not a daemon either, as it would not be for real.
            placeholder._daemonic = False
            with threading._active_limbo_lock:
                self.placeholders[ident] = placeholder
                if not self.visible:
                    threading._active.pop(ident, None)
            ready.release()
            self._loop(slot, placeholder)
        finally:
            _forget_dummy_thread()
            exited.release()

    def _loop(self, slot, placeholder):
        next_task = self.rt.next_task
        finished, error = False, None
        used_here = set()  # ids of the threading.locals this worker's tasks may have used
        firsts = {}  # their values as first made in this worker (`_fresh_thread_locals`)
        hooks = (None, None)  # the trace and profile functions this worker has
        while True:
            try:
                task = next_task(slot, finished, error)
                finished, error = False, None
                if task is None:
                    return
                if task is False:
                    _let_abort_go_off()
                    continue
                tid, fn, thread_locals = task
                finished = True
                # Told apart by name as by ident, and named as the explanation calls them (all
                # were "Dummy-1": a dict keyed by thread name had one key).
                placeholder._name = f"thread {tid - 1}"
                hooks = _thread_hooks(hooks)
                if thread_locals:
                    _fresh_thread_locals(thread_locals, used_here, firsts)
                # The first execution notes the code of yours it runs that is not rewritten
                # (unless a profiler of the program's is on: it keeps its place).
                watching = _unrewritten_run is not None and hooks[1] is None
                try:
                    if watching:
                        sys.setprofile(_note_unrewritten)
                    # A new thread starts with an empty context (contextvars): a reused worker too.
                    contextvars.Context().run(fn)
                except ExecutionAborted:
                    pass
                except BaseException as e:
                    if not _coop.raised_unwinding(e):
                        error = _format_exception(sys.exc_info())
                finally:
                    if watching:
                        sys.setprofile(None)
                    # Held until the next task came, the last reference to what this one made
                    # went then, inside the next execution, whose step it became (a weakref
                    # callback, a __del__ of the old state).
                    task = fn = None
                    if sys.version_info < (3, 13):
                        # A profile or trace function (the first execution's, a debugger's)
                        # copied the locals into the frame's dict, which kept the task: read
                        # again, it holds None.
                        _ = sys._getframe().f_locals
                used_here.update(id(loc) for loc in self.rt.seen_locals())
            except ExecutionAborted:
                pass


# The code of yours the first execution's threads ran that is not rewritten (code -> None, in
# the order first run), while it runs; None when not watching.
_unrewritten_run: Optional[dict] = None
# Per code object: whether it is the user's own code, not rewritten (`_unrewritten_own`).
_own_unrewritten: dict = {}


def _note_unrewritten(frame, event, arg):
    """A profile function of the first execution's threads (`_unrewritten_run`)."""
    found = _unrewritten_run
    if event != "call" or found is None:
        return
    code = frame.f_code
    verdict = _own_unrewritten.get(code)
    if verdict is None:
        verdict = _own_unrewritten[code] = _unrewritten_own(code)
    if verdict:
        found.setdefault(code, None)


def _unrewritten_bodies(threads, unrewritten):
    """The thread functions among the code of the user's own that ran unrewritten."""
    ran = set(unrewritten)
    return [fn.__code__ for fn in _thread_functions(threads) if fn.__code__ in ran]


def _unrewritten_own(code):
    """Whether ``code`` is of the user's own files (by the hook's roots) and not rewritten."""
    from frontrun.rewrite._hook import installed

    finder = installed()
    file = code.co_filename
    if finder is None or not file or file.startswith("<") or _rewritten(code):
        return False
    try:
        return finder.selection.is_users_own(file)
    except Exception:
        return False


def _thread_hooks(had):
    """Gives the worker what ``threading.settrace``/``setprofile`` give every new thread
    (coverage.py's tracer, a profiler), as they are when its task starts; returns them."""
    hooks = (threading._trace_hook, threading._profile_hook)
    if hooks != had:
        sys.settrace(hooks[0])
        sys.setprofile(hooks[1])
    return hooks


def _fresh_thread_locals(thread_locals, used_here, firsts):
    """Worker threads are reused: a task finds each ``threading.local`` as a new thread would,
    with no value an earlier task left and its subclass's ``__init__`` run again. For a new
    thread it runs with the arguments the local was made with, which Python cannot see: an
    ``__init__`` that takes none is re-run, and one that takes some gives back what it made in
    this worker at first (``firsts``: a shallow copy, by id; ``Local("db://x")``'s ``dsn``)."""
    # What __init__ does is this thread's own (no other thread sees its values): unreported.
    was_muted = _native._mute_reports(True)
    try:
        for loc in thread_locals:
            values = loc.__dict__  # made now, __init__ and all, if this worker never used it
            if id(loc) not in used_here:
                firsts.setdefault(id(loc), dict(values))
                continue
            init = type(loc).__init__
            if init is object.__init__ or _takes_no_arguments(init, loc):
                values.clear()
                if init is not object.__init__:
                    init(loc)
            elif id(loc) in firsts:
                values.clear()
                values.update(firsts[id(loc)])
            # (else the program's first use in an earlier task made it, with arguments frontrun
            # cannot see: its values stay, rather than none at all)
    finally:
        _native._mute_reports(was_muted)


def _takes_no_arguments(init, obj):
    try:
        inspect.signature(init).bind(obj)
    except (TypeError, ValueError):
        return False
    return True


def _nothing():
    pass


def _let_abort_go_off():
    """A timeout's abort was sent to this worker during its task and may not have gone off yet:
    it does at the first check of the eval breaker (a Python call), here, not in the next task."""
    try:
        for _ in range(3):
            _nothing()
    except ExecutionAborted:
        pass


def _forget_dummy_thread():
    """A worker is no threading.Thread; drop the placeholder threading made for it."""
    try:
        with threading._active_limbo_lock:
            threading._active.pop(threading.get_ident(), None)
    except Exception:
        pass


_RUNTIME = None  # (runtime, pool, pid): one per process, its workers reused by every exploration


def _tasks():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def _send_workers_home_before_fork():
    """Between explorations the idle workers are sent home before ``os.fork()``: CPython
    3.12+ warns about forking a process with threads (an error under ``-W error``, and a
    multiprocessing pool forks often), and the child would not have them anyway. The next
    exploration starts new ones. A fork inside an exploration keeps them."""
    global _RUNTIME
    runtime = _RUNTIME
    if runtime is None or runtime[2] != os.getpid() or _coop._rt is not None:
        return
    _RUNTIME = None
    before = _tasks()
    pool = runtime[1]
    pool.shutdown(timeout=1.0)
    # A worker's last act releases its lock; the thread itself ends a moment later, and the
    # warning counts threads the system still lists.
    deadline = _now() + 0.2
    while before is not None and _tasks() > before - len(pool.exited) and _now() < deadline:
        time.sleep(0.001)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_send_workers_home_before_fork)


# When a timed wait (`lock.acquire(timeout=...)`, `Event.wait(timeout)`, `Condition.wait`,
# `Queue.get(timeout=...)`, `Thread.join(timeout)`, ...) may time out.
WHEN_STUCK = "when_stuck"
ANY_TIME = "any_time"
_TIMEOUTS = (WHEN_STUCK, ANY_TIME)
# A counterexample found with timeouts="any_time" starts with this, so replay runs it the same way.
_ANY_TIME_PREFIX = "timeouts=any_time;"
# A counterexample names the exploration's own resource methods, so that `replay` reports the
# same calls: without them their steps are not there to follow.
_RESOURCE_METHODS_PREFIX = "resource_methods="


def _counterexample(schedule, timeouts, resource_methods):
    """The schedule with what a replay must run it under: the timeout mode and the resource
    methods given to this exploration."""
    if resource_methods:
        schedule = f"{_RESOURCE_METHODS_PREFIX}{','.join(resource_methods)};{schedule}"
    return _ANY_TIME_PREFIX + schedule if timeouts == ANY_TIME else schedule


def _replay_settings(counterexample):
    """(steps, timeouts, resource_methods) of a counterexample `_counterexample` wrote."""
    timeouts, methods = WHEN_STUCK, ()
    if counterexample.startswith(_ANY_TIME_PREFIX):
        timeouts, counterexample = ANY_TIME, counterexample[len(_ANY_TIME_PREFIX):]
    if counterexample.startswith(_RESOURCE_METHODS_PREFIX):
        names, _, counterexample = counterexample[len(_RESOURCE_METHODS_PREFIX):].partition(";")
        methods = tuple(names.split(","))
    return counterexample, timeouts, methods


def _checked_count(name, value, least, optional=True):
    """An integer option (not a bool) of at least ``least``, or None where that means no limit."""
    if value is None and optional:
        return value
    if type(value) is bool or not isinstance(value, int):
        kind = "an int or None" if optional else "an int"
        raise TypeError(f"{name} must be {kind}, not {type(value).__name__} {value!r}")
    if value < least:
        raise ValueError(f"{name} must be at least {least}, not {value!r}")
    return value


def _checked_seconds(name, value):
    if value is None:
        return value
    if type(value) is bool or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(value).__name__} {value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be more than 0 seconds, not {value!r}")
    return value


def _checked_timeouts(timeouts):
    if timeouts not in _TIMEOUTS:
        raise ValueError(f"timeouts must be {WHEN_STUCK!r} or {ANY_TIME!r}, not {timeouts!r}")
    return timeouts


_BUSY = _thread.allocate_lock()  # held by the exploration (or replay) in progress
_step_limit = DEFAULT_MAX_STEPS  # the session's max_steps, named when a thread runs past it


@contextmanager
def _session(timeouts=WHEN_STUCK, roots=(), **config):
    """The process's runtime, configured for a new exploration (or replay), cooperative
    primitives patched in and reports routed to it for the block's duration. ``roots``:
    setup() and the thread functions (where the program's classes are looked for)."""
    if not _BUSY.acquire(False):
        raise RuntimeError("frontrun explorations cannot be nested or run concurrently")
    callers_random = random.getstate()
    try:
        rt, pool = _runtime(**config)
        global _step_limit
        _step_limit = config.get("max_steps", DEFAULT_MAX_STEPS)
        _coop.timeouts_any_time = timeouts == ANY_TIME
        global _names_from
        if hasattr(threading, "_counter"):
            _names_from = threading._counter()
        try:
            with _coop.patched(rt, pool), _cached_functions_stood_in():
                # (After the patches: a Thread subclass hashes as the explored thread it is.)
                _stable_hash.begin(_program_classes(roots))
                try:
                    yield rt, pool
                finally:
                    _forget_explored_threads()
        finally:
            # What the last execution made dies now, outside any exploration.
            rt.release_execution()
            _stable_hash.end()
    finally:
        if _names_from is not None:
            # (Reading the number took it: the program's next thread is named with it.)
            threading._counter, _names_from = itertools.count(_names_from).__next__, None
        _coop.timeouts_any_time = False
        random.setstate(callers_random)
        _BUSY.release()


# Where lru_cache wrappers of rewritten functions are bound, and the size of every module's
# namespace when that was looked for.
_cache_bindings = ([], None)


def _lru_cache_bindings():
    """``(owner, name, value, wrapper)`` for each module global or class attribute that is a
    ``functools.lru_cache`` / ``cache`` wrapper of a rewritten function (``value`` is the wrapper,
    or the staticmethod/classmethod holding it). Looked for again when a module was imported or
    a module's namespace grew or shrank (a script defines more between explorations)."""
    global _cache_bindings
    modules = list(sys.modules.values())
    sizes = tuple(len(getattr(m, "__dict__", ())) for m in modules)
    if _cache_bindings[1] == sizes:
        return _cache_bindings[0]
    found = []

    def look(owner, namespace):
        for name, value in list(namespace.items()):
            # Only a staticmethod's or classmethod's own (an object's __getattr__ may raise).
            wrapper = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if _is_rewritten_lru_wrapper(wrapper):
                found.append((owner, name, value, wrapper))

    for module in modules:
        namespace = getattr(module, "__dict__", None)
        if isinstance(namespace, dict):
            look(module, namespace)
            for value in list(namespace.values()):
                if isinstance(value, type) and value.__module__ == getattr(module, "__name__", None):
                    look(value, vars(value))
    _cache_bindings = (found, sizes)
    return found


_LRU_WRAPPER = type(functools.lru_cache(maxsize=None)(lambda: None))


def _is_rewritten_lru_wrapper(obj):
    """Whether ``obj`` is an ``lru_cache`` / ``cache`` wrapper of a rewritten function."""
    return type(obj) is _LRU_WRAPPER and bool(_function_reports(getattr(obj, "__wrapped__", None)))


class CachedFunction:
    """Stands in for an ``lru_cache`` wrapper of a rewritten function while an exploration runs.
    The C wrapper looks in its cache and stores a computed value in code frontrun does not see,
    and what it keeps outlives an execution (a later execution that finds the value cached does
    not repeat the steps of the first). This one's cache is a dict, empty at every execution's
    start; looking in it is a read of the cache and storing a write, so two threads that both
    miss and compute twice are found."""

    def __init__(self, wrapper):
        functools.update_wrapper(self, wrapper)
        self._function = wrapper.__wrapped__
        code = getattr(self._function, "__code__", None)
        self._frontrun_site = (code.co_filename, code.co_firstlineno) if code is not None else None
        params = wrapper.cache_parameters()
        self._maxsize, self._typed = params["maxsize"], params["typed"]
        self.cache_clear()

    def __call__(self, *args, **kwargs):
        rt = _coop._managed()
        site = _coop._site(rt) if rt is not None else None
        key = functools._make_key(args, kwargs, self._typed)
        if rt is not None:
            rt.heard_stand_in()
            rt.object_access(self, False, site)
        value = self._cache.get(key, _MISSING)
        if value is not _MISSING:
            self._hits += 1
            self._cache.move_to_end(key)
            return value
        self._misses += 1
        value = self._function(*args, **kwargs)
        if rt is not None:
            rt.object_access(self, True, site)
        if self._maxsize != 0:
            self._cache[key] = value
            if self._maxsize is not None and len(self._cache) > self._maxsize:
                self._cache.popitem(last=False)
        return value

    def __get__(self, instance, owner=None):
        return self if instance is None else types.MethodType(self, instance)

    def cache_info(self):
        return functools._CacheInfo(self._hits, self._misses, self._maxsize, len(self._cache))

    def cache_clear(self):
        self._cache, self._hits, self._misses = OrderedDict(), 0, 0

    def cache_parameters(self):
        return {"maxsize": self._maxsize, "typed": self._typed}

    def __repr__(self):
        return f"lru_cache of {getattr(self._function, '__qualname__', '?')}()"


_MISSING = object()
_stand_ins = []  # the CachedFunctions of the exploration in progress


@contextmanager
def _cached_functions_stood_in():
    """Module globals and class attributes bound to lru_cache wrappers of rewritten functions
    hold a ``CachedFunction`` for the block's duration."""
    # Only bindings that still hold the wrapper (the list is kept between explorations, and a
    # test may have rebound a name since).
    bindings = [b for b in _lru_cache_bindings() if vars(b[0]).get(b[1]) is b[2]]
    stand_ins = {}
    placed = []
    for owner, name, value, wrapper in bindings:
        if id(wrapper) not in stand_ins:
            stand_ins[id(wrapper)] = CachedFunction(wrapper)
        stand_in = stand_ins[id(wrapper)]
        if value is not wrapper:
            stand_in = type(value)(stand_in)  # staticmethod / classmethod
        try:
            setattr(owner, name, stand_in)
        except (AttributeError, TypeError):  # a class that forbids it (an Enum's metaclass)
            continue
        placed.append((owner, name, value, stand_in))
    _stand_ins[:] = stand_ins.values()
    try:
        yield
    finally:
        _stand_ins.clear()
        for owner, name, value, stand_in in placed:
            if vars(owner).get(name) is stand_in:  # else the exploration rebound it: leave that
                setattr(owner, name, value)


def _forget_explored_threads():
    """Pool workers (and a process pool's manager) an explored thread started were never real
    threads: ``concurrent.futures`` must not wake and join them at interpreter exit (it would
    raise "cannot join thread before it is started")."""
    registries = [getattr(sys.modules.get("concurrent.futures.thread"), "_threads_queues", None),
                  getattr(sys.modules.get("concurrent.futures.process"), "_threads_wakeups", None)]
    for registry in registries:
        for t in list(registry or ()):
            if not t._started.is_set():
                registry.pop(t, None)


def _runtime(*, preemption_bound=None, max_executions=None, max_steps=DEFAULT_MAX_STEPS, replay=None, explain=False,
             resource_methods=()):
    global _RUNTIME
    if _RUNTIME is None or _RUNTIME[2] != os.getpid():  # a forked child has none of the workers
        rt = _make_runtime()
        pool = _Pool(rt)
        _RUNTIME = (rt, pool, os.getpid())
        atexit.register(pool.shutdown)
    rt, pool, _pid = _RUNTIME
    rt.set_resource_methods(_resource_methods(resource_methods))
    rt.configure(preemption_bound=preemption_bound, max_executions=max_executions, max_steps=max_steps,
                 replay=replay, explain=explain)
    return rt, pool


def _format_exception(exc_info):
    etype, value, tb = exc_info
    own = (__file__, _coop.__file__)
    # Drop the runtime's own frames at the top of the traceback.
    while tb is not None and tb.tb_frame.f_code.co_filename in own:
        tb = tb.tb_next
    shown = traceback.TracebackException(etype, value, tb)
    # And the stand-ins' own frames below: an error a stand-in raises (`release unlocked lock`)
    # comes from C in a real lock, and one it passes on (`Queue.get_nowait` on an empty queue)
    # from the stdlib method it stands in for, with no frame of frontrun's between.
    stack = [frame for frame in shown.stack if frame.filename not in own] or list(shown.stack)[:1]
    shown.stack = traceback.StackSummary.from_list(stack)
    return "".join(shown.format())


# ---------------------------------------------------------------------------- unseen callees

# Builtins that take an object without looking inside it.
_ARGUMENT_BLIND = frozenset(map(id, (
    id, isinstance, issubclass, type, callable, hash, super, object, next, vars, dir, setattr, getattr,
    delattr, hasattr, property, staticmethod, classmethod,
)))
_C_CALLABLES = (types.BuiltinFunctionType, types.MethodDescriptorType, types.WrapperDescriptorType,
                types.MethodWrapperType, types.ClassMethodDescriptorType)
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE
_rewritten_codes = {}  # id(code) -> (code, rewritten): the code is kept so its id stays its own
_instrumented_classes = {}  # id(class) -> (class, instrumented)


def _rewritten(code):
    hit = _rewritten_codes.get(id(code))
    if hit is None:
        rewritten = _native.REPORT_NAME in code.co_names or _native.is_rewritten_file(code.co_filename)
        hit = _rewritten_codes[id(code)] = (code, rewritten)
    return hit[1]


def _function_reports(f):
    """True/False for a Python function (or method) whose code was / was not rewritten, else None."""
    f = getattr(f, "__func__", f) if isinstance(f, (types.MethodType, staticmethod, classmethod)) else f
    if isinstance(f, types.FunctionType):
        return _rewritten(f.__code__)
    return None


def _lookup(cls, name):
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


def _instrumented_class(cls):
    hit = _instrumented_classes.get(id(cls))
    if hit is None:
        seen = any(_function_reports(v) for k in cls.__mro__ if k.__flags__ & _HEAPTYPE for v in vars(k).values())
        hit = _instrumented_classes[id(cls)] = (cls, seen)
    return hit[1]


def _object_readers():
    """Functions out of the rewriter's sight that read the attributes of the objects they are
    given (and what those hold), not only the containers."""
    import copy
    import dataclasses
    import pickle

    readers = [copy.copy, copy.deepcopy, dataclasses.asdict, dataclasses.astuple, dataclasses.replace,
               pickle.dumps, pickle.dump]
    return {id(f) for f in readers}


_OBJECT_READERS = _object_readers()


def _unseen_callee(callee, method):
    """Whether a call hands its arguments to code that reports nothing of its own: C, or Python
    the rewriter did not select (``json.dumps``, ``",".join``, ``copy.copy``, ``Counter``). The
    runtime then reports its reads of any container argument at the call: 1; 2 when the callee
    reads the attributes of objects too (``copy.deepcopy``, ``dataclasses.asdict``); else 0.
    ``callee`` is the receiver when ``method`` is given; without one it is the callable, or on
    3.10-3.12 the receiver of a method call (whose method the rewriter could not name)."""
    if method is None and id(callee) in _OBJECT_READERS:
        return 2
    if method is not None:
        cls = type(callee)
        if not cls.__flags__ & _HEAPTYPE:
            return True
        reports = _function_reports(_lookup(cls, method))
        return not reports
    if id(callee) in _ARGUMENT_BLIND:
        return False
    reports = _function_reports(callee)
    if reports is not None:
        return not reports
    if isinstance(callee, type):
        init = _function_reports(_lookup(callee, "__init__"))
        return not init
    if isinstance(callee, _C_CALLABLES):
        return True
    cls = type(callee)
    return not (cls.__flags__ & _HEAPTYPE and _instrumented_class(cls))


class FileResource:
    """A file as one shared resource: every handle on it and every call that names its path
    (``open(p)``, ``os.replace(tmp, p)``, ``os.path.exists(p)``) are ordered against each other,
    so two threads that each open the same file are seen to share it. ``number`` names it in
    every execution (an order of first use differs between them: two renames of listed files)."""

    __slots__ = ("path", "number")

    def __init__(self, path, number):
        self.path = path
        self.number = number

    def __repr__(self):
        if os.path.isdir(self.path):
            return f"directory {self.path}"
        try:
            with open(self.path, "rb") as f:
                database = f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
        except OSError:
            database = False
        return f"{'sqlite3 database' if database else 'file'} {self.path}"


SQLITE_HEADER = b"SQLite format 3\x00"


# One object per real path for the whole process: its address names the file in every run.
_files: dict = {}


def _file_resource(target, is_path):
    """The file a file object (``is_path`` false) or a path names, or None. Runs inside a
    report: it imports nothing and raises nothing."""
    try:
        if not is_path:
            if not isinstance(target, io.IOBase):
                target = _sqlite_database(target)
                if target is None:
                    return None
            else:
                target = getattr(target, "name", None)
        if target is None or isinstance(target, int):
            return None  # a descriptor, an in-memory stream
        path = os.fsdecode(os.fspath(target))
        key = os.path.realpath(path)
    except Exception:
        return None
    found = _files.get(key)
    if found is None:
        found = _files[key] = FileResource(key, len(_files) + 1)
    return found


# The first execution's sqlite3 connections whose file is not known (id -> the explored threads
# that called them, or their cursors), to warn that separate connections' races through their
# database are not explored; None when not watching.
_sqlite_users: Optional[dict] = None
_watcher_thread = None  # the thread running the search: its setup() calls are not the threads'


class _ThreadToken:
    """What a thread's rewritten calls on a sqlite3 connection use: nothing another thread uses."""

    __slots__ = ("__weakref__",)


_thread_tokens = {}  # thread ident -> its _ThreadToken


def _sqlite_database(target):
    """What the rewriter's report of a call on a sqlite3 connection (or a cursor of it) uses:
    for one made during an exploration (``_coop._sqlite_connect``), which reports its use of its
    database file itself, the calling thread's own token; else None, remembering which thread
    called that connection. Runs inside a report: no imports."""
    sqlite = sys.modules.get("_sqlite3")
    if sqlite is None:
        return None
    if isinstance(target, sqlite.Cursor):
        target = sqlite.Cursor.connection.__get__(target)
    if not isinstance(target, sqlite.Connection):
        return None
    own = getattr(target, "__dict__", {})
    if "_frontrun_database" in own:
        if own["_frontrun_database"] is None:
            return None  # (a private in-memory database)
        token = _thread_tokens.get(_thread.get_ident())
        if token is None:
            token = _thread_tokens[_thread.get_ident()] = _ThreadToken()
        return token
    if _sqlite_users is not None and _thread.get_ident() != _watcher_thread:
        _sqlite_users.setdefault(id(target), set()).add(_thread.get_ident())
    return None


def _separate_connections(users):
    """Whether two threads called two different connections."""
    return any(a != b and ta != tb for a, ts in users.items() for b, us in users.items() for ta in ts for tb in us)


SEPARATE_CONNECTIONS = (
    "the threads used separate sqlite3 connections made before the exploration began: frontrun "
    "knows the database file of a connection made by sqlite3.connect() in setup() or in the "
    "threads, not of these, so it orders the calls of each connection, not those of two "
    "connections to one file, and a race through the database (an update lost between two "
    "connections) is not explored. To explore it, make the connections in setup() or in the threads."
)


# Calls that name a file by a path argument: (function, index of that argument, how it uses
# it). A file or directory is one resource by its real path; a directory's resource stands for
# the names it holds, so what creates, removes or renames an entry writes its directory too, and
# a listing reads it. (`io.open` is `builtins.open`.)
# A tree call (os.walk, rglob) lists every directory under its path; rmtree removes them all.
(PATH_READ, PATH_WRITE, PATH_OPEN, PATH_LIST, PATH_ENTRY, PATH_MOVE, PATH_COPY, PATH_GLOB, PATH_OS_OPEN,
 PATH_TREE, PATH_TREE_REMOVE, PATH_TREE_COPY) = range(12)
# How many directories under a tree call's path are its resources (the rest go unseen).
_TREE_LIMIT = 256
_PATH_FUNCTIONS = (
    [(builtins.open, 0, PATH_OPEN), (os.open, 0, PATH_OS_OPEN)]
    + [(f, 0, PATH_READ) for f in (os.stat, os.lstat, os.access, os.path.exists, os.path.lexists,
                                   os.path.isfile, os.path.isdir, os.path.islink, os.path.getsize,
                                   os.path.getmtime)]
    + [(f, 0, PATH_LIST) for f in (os.listdir, os.scandir)]
    + [(os.walk, 0, PATH_TREE), (shutil.rmtree, 0, PATH_TREE_REMOVE), (shutil.copytree, 0, PATH_TREE_COPY)]
    + [(f, 0, PATH_WRITE) for f in (os.chmod, os.utime, os.truncate)]
    + [(f, 0, PATH_ENTRY) for f in (os.remove, os.unlink, os.mkdir, os.makedirs, os.rmdir, os.removedirs)]
    + [(f, 0, PATH_MOVE) for f in (os.rename, os.replace, shutil.move)]
    + [(f, 0, PATH_COPY) for f in (os.link, os.symlink, shutil.copy, shutil.copy2, shutil.copyfile)]
)
# pathlib methods, by name (the receiver is the path).
_PATH_METHODS = {
    **dict.fromkeys(("exists", "is_file", "is_dir", "is_symlink", "stat", "lstat", "read_text", "read_bytes",
                     "samefile"), PATH_READ),
    **dict.fromkeys(("iterdir", "glob"), PATH_LIST),
    **dict.fromkeys(("rglob", "walk"), PATH_TREE),
    **dict.fromkeys(("write_text", "write_bytes", "touch"), PATH_OPEN),
    **dict.fromkeys(("mkdir", "rmdir", "unlink", "symlink_to", "hardlink_to"), PATH_ENTRY),
    **dict.fromkeys(("rename", "replace"), PATH_MOVE),
    "chmod": PATH_WRITE,
    "open": PATH_OPEN,
}
_CREATING = {"write_text": "w", "write_bytes": "w", "touch": "a"}


def _path_functions():
    """`_PATH_FUNCTIONS`, and glob's if the program imported it (frontrun does not)."""
    found = sys.modules.get("glob")
    globbing = [(getattr(found, name), 0, PATH_GLOB) for name in ("glob", "iglob") if hasattr(found, name)]
    return {id(f): (index, how) for f, index, how in _PATH_FUNCTIONS + globbing}


def _path_accesses(how, index, args):
    """The files and directories a path call uses: ``((resource, writes, entry), ...)``, where
    ``entry`` is the file a directory's write makes or removes (None: the whole of it, as a
    listing reads it; so entries of different names commute). ``how`` is a
    ``PATH_*`` of `_PATH_FUNCTIONS`, or a pathlib method's name (``args`` then begin with the
    path). Runs inside a report: it imports nothing and raises nothing."""
    try:
        mode = None
        if isinstance(how, str):
            mode = _CREATING.get(how)
            how = _PATH_METHODS.get(how)
            if how is None or not isinstance(args[0], pathlib.PurePath):
                return ()
            if how == PATH_OPEN and mode is None:
                mode = args[1] if len(args) > 1 else "r"
        elif how == PATH_OPEN:
            mode = args[index + 1] if len(args) > index + 1 else "r"
        path = args[index] if len(args) > index else "."  # os.listdir() lists the current directory
        if how == PATH_GLOB:
            path = os.fsdecode(path)
            while any(c in path for c in "*?["):
                path = os.path.dirname(path)
            path = path or "."
        if how == PATH_TREE_COPY:
            # Lists the source tree (and reads its files), and makes the destination's entry.
            made = _path_accesses(PATH_ENTRY, 0, (args[index + 1],)) if len(args) > index + 1 else ()
            return _path_accesses(PATH_TREE, index, args) + made
        if how in (PATH_MOVE, PATH_COPY):
            source, target = _file_resource(path, True), args[index + 1]
            if os.path.isdir(target) and not os.path.isdir(path):
                target = os.path.join(target, os.path.basename(os.fsdecode(path)))
            made = _path_accesses(PATH_ENTRY, 0, (target,))
            if source is None:
                return made
            gone = _path_accesses(PATH_ENTRY, 0, (path,)) if how == PATH_MOVE else ((source, False, None),)
            return gone + made
        found = _file_resource(path, True)
        if found is None:
            return ()
        if how == PATH_OS_OPEN:
            flags = args[index + 1] if len(args) > index + 1 else 0
            if not isinstance(flags, int):
                return ((found, True, None),)
            # (May create: decided by the call alone, not by whether the file is there when the
            # thread reaches it, which another thread may change before its step.)
            if flags & os.O_CREAT:
                how = PATH_ENTRY
            else:
                how = PATH_WRITE if flags & (os.O_WRONLY | os.O_RDWR) else PATH_READ
        elif how == PATH_OPEN:
            if not isinstance(mode, str) or not mode or any(c not in "rwxabt+U" for c in mode):
                # Not a mode: the report has the first two arguments, positional then keyword,
                # so `open(p, encoding=e, mode="w")` shows the encoding. It may write.
                mode = "w"
            how = PATH_ENTRY if any(c in mode for c in "wax") else PATH_WRITE if "+" in mode else PATH_READ
        if how in (PATH_READ, PATH_LIST, PATH_GLOB):
            return ((found, False, None),)
        if how == PATH_TREE:
            return ((found, False, None),) + tuple((d, False, None) for d in _directories_under(found.path))
        if how == PATH_TREE_REMOVE:
            removed = tuple((d, True, None) for d in _directories_under(found.path))
            return _path_accesses(PATH_ENTRY, 0, (found.path,)) + removed
        if how == PATH_ENTRY:
            parent = _file_resource(os.path.dirname(found.path), True)
            if parent is None or parent is found:
                return ((found, True, None),)
            return ((found, True, None), (parent, True, found))
        return ((found, True, None),)
    except Exception:
        return ()


def _directories_under(top):
    """The directories below ``top`` (not through links), top-down, at most `_TREE_LIMIT`: what
    a walk that starts now lists as it goes. Runs inside a report: no imports, no raising."""
    found, pending = [], [top]
    while pending and len(found) < _TREE_LIMIT:
        try:
            with os.scandir(pending.pop()) as entries:
                subdirs = sorted(e.path for e in entries if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
        for d in subdirs[: _TREE_LIMIT - len(found)]:
            resource = _file_resource(d, True)
            if resource is not None:
                found.append(resource)
        pending.extend(reversed(subdirs))
    return found


def _make_runtime():
    from frontrun.rewrite._core import DEFAULT_POLICY  # noqa: F401  (the rewriter is part of the package)

    import _thread as t

    builtins_map = {
        "getattr": builtins.getattr,
        "setattr": builtins.setattr,
        "delattr": builtins.delattr,
        "hasattr": builtins.hasattr,
        "getitem": operator.getitem,
        "setitem": operator.setitem,
        "delitem": operator.delitem,
    }
    heap_writers = [heapq.heappush, heapq.heappop, heapq.heapify, heapq.heapreplace, heapq.heappushpop,
                    bisect.insort, bisect.insort_left, bisect.insort_right, random.shuffle, random.Random.shuffle,
                    operator.iadd, operator.iconcat, operator.ior, operator.iand, operator.isub, operator.ixor,
                    operator.imul]
    return _native.DporRuntime(
        abort_exc=ExecutionAborted,
        deque=deque,
        lock_type=t.LockType,
        rlock_type=t.RLock,
        local_type=t._local,
        builtins_map=builtins_map,
        heap_writers=heap_writers,
        whole_readers=[getattr(builtins, name) for name in _native.READING_BUILTINS],
        unseen_callee=_unseen_callee,
        coop_types=_coop.COOPERATIVE_ON_SIGHT,
        coop_hook=_coop.make_cooperative,
        holding_hook=_coop.watch_holding_call,
        iterating_hook=_coop.watch_iterating_call,
        loop_through=_LOOP_THROUGH,
        referents=gc.get_referents,
        file_resource=_file_resource,
        path_functions=_path_functions(),
        path_accesses=_path_accesses,
        pure_path=pathlib.PurePath,
    )


def _loop_through():
    """What a ``for`` may run over that reads containers underneath: views and iterators of
    the builtin containers, and the builtins that wrap iterators (``enumerate``, ``zip``, ...)."""
    kinds = {enumerate, zip, map, filter, reversed}
    for d in ({}, OrderedDict()):
        for view in (d, d.keys(), d.values(), d.items()):
            kinds.update((type(view), type(iter(view)), type(reversed(view))))
    for c in ([], deque()):
        kinds.update((type(iter(c)), type(reversed(c))))
    for c in (set(), bytearray()):
        kinds.add(type(iter(c)))
    kinds -= {dict, OrderedDict}
    return tuple(kinds)


_LOOP_THROUGH = _loop_through()


def _resource_methods(extra=()):
    """The rewriter's defaults, the active hook's configured additions (``name`` or
    ``module.Class.name``) and ``extra``."""
    from frontrun.rewrite._hook import installed

    finder = installed()
    configured = finder.selection.resource_methods if finder is not None else ()
    return sorted(set(_native.DEFAULT_RESOURCE_METHODS) | set(configured) | set(extra))


# ---------------------------------------------------------------------------- one execution


@dataclass
class _Run:
    """The outcome of one execution, as the controller saw it."""

    end: str
    detail: str
    kind: Optional[str] = None  # failure kind
    message: str = ""
    state: Any = None
    errors: list = field(default_factory=list)
    invariant_error: Optional[str] = None
    explanation: str = ""
    # The thread a setup() that waits for its threads ran as (it ran before the test's).
    setup_thread: Optional[int] = None
    # Where a thread that took no step for a while was (`_stall_notice`).
    stalled: Optional[str] = None


def _invariant_name(invariant):
    return getattr(invariant, "__qualname__", None) or getattr(invariant, "__name__", None) or repr(invariant)


def _held_in(state, depth=3, budget=500):
    """``(holder, slot, obj)`` for ``state`` and what it holds (its attributes and slots, items,
    a closure's cells, and their own, a few levels down), breadth first, in a fixed order.
    ``slot`` is ``("attr", name)``, ``("item", key, place)`` or ``("cell", i)`` (None for ``state``
    itself). Generators are not looked into."""
    reached = [(None, None, state)]
    frontier = [state]
    seen = {id(state)}
    for _ in range(depth):
        nxt = []
        for obj in frontier:
            if kind_is(obj, types.GeneratorType):
                continue
            # (An item's slot also has its place: `_with_paths`.)
            if kind_is(obj, dict):
                children = [(("item", k, i), v) for i, (k, v) in enumerate(obj.items())]
            elif kind_is(obj, (list, tuple)):
                children = [(("item", i, i), v) for i, v in enumerate(obj)]
            elif kind_is(obj, type):
                children = []
            elif kind_is(obj, types.FunctionType):  # a closure: what its cells hold
                children = [(("cell", i), c.cell_contents) for i, c in enumerate(obj.__closure__ or ())
                            if _cell_is_set(c)]
            else:
                d = own_attr(obj, "__dict__")
                children = [(("attr", k), v) for k, v in d.items()] if kind_is(d, dict) else []
                children += [(("attr", k), v) for k, v in _slot_values(obj)]
            for slot, child in children[:50]:
                budget -= 1
                if budget < 0:
                    return reached
                if id(child) not in seen and not kind_is(child, (int, float, str, bytes, bool, type(None))):
                    seen.add(id(child))
                    nxt.append(child)
                    reached.append((obj, slot, child))
        frontier = nxt
    return reached


def _cell_is_set(cell):
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _slot_values(obj):
    """``(name, value)`` of the ``__slots__`` attributes ``obj`` has set (the class's own
    descriptors only: nothing of the program runs)."""
    found = []
    for klass in type(obj).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if type(slots) is str else slots:
            descriptor = klass.__dict__.get(name)
            if name in ("__dict__", "__weakref__") or type(descriptor) is not types.MemberDescriptorType:
                continue
            try:
                found.append((name, descriptor.__get__(obj, klass)))
            except AttributeError:
                continue  # not set
    return found


def _generators_in(held):
    """The generators among ``_held_in``'s finds (or behind a bound ``__next__`` or a partial
    among them): two threads resuming one at once is a bug the search looks for."""
    found, seen = [], set()
    for *_, obj in held:
        for g in _generators_of(obj):
            if id(g) not in seen:
                seen.add(id(g))
                found.append(g)
    return found


# A generator's bound `__next__`/`send` (a method-wrapper, a builtin method): their
# `__self__` is read, never an arbitrary object's (its `__getattr__` may raise or run code).
_BOUND_TYPES = (type((lambda: (yield))().__next__), type((lambda: (yield))().send), types.MethodType)


def _generators_of(value):
    """``value`` if it is a generator; the one a bound ``__next__``/``send`` or a
    ``functools.partial`` (``partial(next, gen)``) holds."""
    if kind_is(value, types.GeneratorType):
        return [value]
    if kind_is(value, _BOUND_TYPES) and kind_is(value.__self__, types.GeneratorType):
        return [value.__self__]
    if kind_is(value, functools.partial):
        return [a for a in value.args if kind_is(a, types.GeneratorType)]
    return []


def _prepare_state(rt, state, threads):
    """Before the threads run on ``state``: its lru_cache wrappers stood in for, its
    generators watched, and those the threads reach otherwise: through their closures, their
    modules' globals (one ``setup()`` resets) or the state's class."""
    held = _held_in(state)
    _stand_in_cached_functions(held)
    roots = _thread_roots(state, threads)
    rt.number_state(_numbered_first(_with_paths(held, "state"), roots))
    rt.watch_generators(_generators_in(held + roots))


_LOCK_TYPES = (_coop.Lock, _coop.RLock, _thread.LockType, _thread.RLock)
_NOT_STATE = (int, float, complex, str, bytes, bool, type(None), types.ModuleType, types.FunctionType,
              types.BuiltinFunctionType)


_module_dict = types.ModuleType.__dict__["__dict__"].__get__  # no __getattr__ (lazy modules)


def _is_rewritten_module(module):
    file = _module_dict(module).get("__file__")
    return kind_is(file, str) and _native.is_rewritten_file(file)


def _rewritten_namespaces():
    """``(name, namespace)`` of each module that runs rewritten."""
    for module in list(sys.modules.values()):
        if isinstance(module, types.ModuleType) and _is_rewritten_module(module):
            namespace = _module_dict(module)
            yield namespace.get("__name__"), namespace


def _program_classes(roots):
    """The classes of the rewritten modules an exploration may make objects of: those at their
    module level or nested in those, and those ``roots`` (setup() and the thread functions)
    reach through closures, defaults and bound or partial arguments, and through the functions
    and classes they reach so (a test's own classes, made in its function before it explores);
    and the library classes these name (and the modelled primitives of a module they name).
    Not a walk over every class in the process: a test session has tens of thousands."""
    modules, found = set(), []
    for name, namespace in _rewritten_namespaces():
        modules.add(name)
        # (Looked for again only when the module's namespace has changed size.)
        key = (id(namespace), len(namespace))
        if _module_classes.get(name, (None,))[0] != key:
            _module_classes[name] = (key, _classes_reached(list(namespace.values()), {name}))
        found += _module_classes[name][1]
    return found + _classes_reached(list(roots), modules)


def _classes_reached(pending, modules):
    """The classes of ``modules`` that ``pending`` holds or leads to, and the library classes
    (and modules' modelled primitives) it holds or they lead to."""
    found, seen = [], set()
    while pending and len(seen) < 20000:
        obj = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if kind_is(obj, type):
            module = own_attr(obj, "__module__")
            if kind_is(module, str) and module in modules:
                found.append(obj)
                pending += [v for v in list(vars(obj).values()) if kind_is(v, _LEADS_TO_CLASSES)]
            elif _library_class_to_number(obj, module):
                found.append(obj)  # (named by the program: a Queue, a Connection; not looked into)
        elif kind_is(obj, types.ModuleType):
            # (`queue.Queue()` names the module, not the class: its modelled classes.)
            name = own_attr(obj, "__name__")
            found += [cls for cls in _coop.COOPERATIVE_ON_SIGHT if cls.__module__ == name]
        elif kind_is(obj, types.FunctionType):
            if _native.is_rewritten_file(obj.__code__.co_filename):
                pending += [cell.cell_contents for cell in obj.__closure__ or () if _cell_is_set(cell)]
                pending += list(obj.__defaults__ or ()) + list((obj.__kwdefaults__ or {}).values())
        elif kind_is(obj, types.MethodType):
            pending += [obj.__func__, obj.__self__ if kind_is(obj.__self__, type) else type(obj.__self__)]
        elif kind_is(obj, functools.partial):
            pending += [obj.func, *obj.args, *obj.keywords.values()]
        elif kind_is(obj, (staticmethod, classmethod)):
            pending.append(obj.__func__)
        elif kind_is(obj, property):
            pending += [obj.fget, obj.fset, obj.fdel]
        elif type(obj) in (list, tuple):  # (not a subclass: its methods would run the program's code)
            pending += [v for v in obj[:100] if kind_is(v, _LEADS_TO_CLASSES)]
        elif type(obj) is dict:
            pending += [v for v in list(obj.values())[:100] if kind_is(v, _LEADS_TO_CLASSES)]
    return found


_module_classes = {}  # module name -> ((id, size) of its namespace, the classes it leads to)


def _library_class_to_number(cls, module):
    """Whether a class of code that is not rewritten, which the program names, has its objects
    numbered too: a Python class (a C type's hash cannot be set) that is not abstract (setting
    an abstract base's hash would number every subclass) and not frontrun's own."""
    return (kind_is(module, str) and module.partition(".")[0] != "frontrun" and bool(cls.__flags__ & _HEAP_TYPE)
            and not own_attr(cls, "__abstractmethods__"))


_HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE
_LEADS_TO_CLASSES = (type, types.FunctionType, types.MethodType, functools.partial, staticmethod, classmethod,
                     property, list, tuple, dict)


def _with_paths(reached, base):
    """``(path, obj)`` for ``_held_in``'s finds: the way to each from its root, by attribute
    name, item place or cell index (an item's key may be an object, whose repr is no name)."""
    paths, out = {}, []
    for holder, slot, obj in reached:
        if holder is None:
            path = base
        else:
            path = f"{paths.get(id(holder), base)}/{slot[0]}:{slot[2] if slot[0] == 'item' else slot[1]}"
        paths.setdefault(id(obj), path)
        out.append((path, obj))
    return out


def _numbered_first(held, roots):
    """``(object, is_lock, path)`` for what the threads may find when they begin, in a fixed
    order: the state and what it holds, then ``_thread_roots``' finds but functions and modules
    other than the program's own (numbered before any thread runs: see ``number_state``). Each
    is named by its path, not by its place in this order: a list the threads reach that grows
    from one execution to the next (a test's record of what each saw) moved every later place."""
    found = list(held)
    for path, obj in roots:
        if not kind_is(obj, _NOT_STATE) or kind_is(obj, types.ModuleType):
            found.append((path, obj))  # (only the program's own modules are among the roots)
    seen, out = set(), []
    for path, obj in found:
        if id(obj) not in seen:
            seen.add(id(obj))
            out.append((obj, kind_is(obj, _LOCK_TYPES), path))
    return out


def _thread_roots(state, threads):
    """``_held_in``-like finds the threads reach besides the state: what their closures'
    cells hold (a few levels down), their modules' globals, the program's own modules those
    import and their globals (``import store`` ... ``store.COUNTS[k] = v``), and the state's
    class attributes (those themselves)."""
    found = []
    functions = [own_attr(fn, "func", fn) for fn in threads]  # (a functools.partial's function)
    for k, fn in enumerate(list(functions)):
        if kind_is(fn, types.FunctionType):
            held = _held_in(fn, depth=3, budget=200)
            found += _with_paths(held, f"function {k}")
            # A wrapper's (`lambda s: work(s, 1)`, a decorator's): what it calls of the
            # program's own code is the thread's.
            functions += [f for _, _, f in held if kind_is(f, types.FunctionType)
                          and _native.is_rewritten_file(f.__code__.co_filename)]
    namespaces = {id(g): g for g in (getattr(fn, "__globals__", None) for fn in functions) if kind_is(g, dict)}
    for module_globals in namespaces.values():
        at = f"globals {module_globals.get('__name__')}"
        found.append((at, module_globals))  # `global X`: the namespace is the object
        for key, v in list(module_globals.items()):
            if not kind_is(v, types.ModuleType):
                found.append((f"{at}/{key}", v))
            elif _is_rewritten_module(v):
                found.append((f"module {v.__name__}", v))
                found += [(f"module {v.__name__}/{k}", w) for k, w in list(_module_dict(v).items())[:200]]
    found += [(f"class/{k}", v) for k, v in list(vars(type(state)).items())]
    return found


def _stand_in_cached_functions(held):
    """lru_cache wrappers of rewritten functions that the state's objects hold (the
    per-instance idiom ``self.load = functools.lru_cache()(self._load)``), each replaced by a
    ``CachedFunction`` for this execution: their cache is made with the state, so a miss in
    one thread and a hit in another depend on the schedule. A wrapper that already caches
    something is left (its cache cannot be copied)."""
    for holder, slot, obj in held:
        if slot is None or slot[0] != "attr" or not _is_rewritten_lru_wrapper(obj) or obj.cache_info().currsize:
            continue
        try:
            setattr(holder, slot[1], CachedFunction(obj))
        except (AttributeError, TypeError):
            continue


# Every execution starts `random` from the same seed: a program whose accesses depend on random
# numbers then repeats a schedule (and its replay) exactly.
RANDOM_SEED = 0


# The number the threads an exploration's executions make are named from ("Thread-%d"), and
# the program's own counter, put back after it.
_names_from = None


def _fresh_execution():
    random.seed(RANDOM_SEED)
    # Each execution names the threads it makes as the first did (names differed from one
    # execution to the next: a dict keyed by thread name looked nondeterministic).
    if _names_from is not None:
        threading._counter = itertools.count(_names_from).__next__
    _coop.new_execution()
    _stable_hash.new_execution()
    for stand_in in _stand_ins:
        stand_in.cache_clear()


# setup()s that wait for a thread they start, run as an explored thread of their own.
_setups_explored = []


def _run_one(rt, setup, threads, invariant, timeout, after_setup=None):
    _fresh_execution()
    if any(s is setup for s in _setups_explored):
        return _run_with_explored_setup(rt, setup, threads, invariant, timeout)
    # Threads setup() starts belong to the state (a service's worker): explored, after the test's
    # threads (engine ids follow theirs: the root's children are 1, 2, ...), as background
    # threads that may be left waiting.
    waits = False
    with _coop.threads_started_in_setup(first_tid=len(threads) + 1) as started:
        try:
            state = setup()
        except _coop.SetupWaits:
            waits = True
        except Exception as exc:
            raise _SetupFailed(exc) from exc
    if waits:
        # It waits for them: from now on setup() runs in the exploration, before the test's
        # threads. What this attempt made is let go first (a port it bound, say).
        state = started = None
        gc.collect()
        _setups_explored.append(setup)
        del _setups_explored[:-64]  # a long test session's setups are not kept for ever
        _fresh_execution()
        return _run_with_explored_setup(rt, setup, threads, invariant, timeout)
    if after_setup is not None:
        after_setup(state)
    tasks = [functools.partial(fn, state) for fn in threads] + started
    background = list(range(len(threads), len(tasks)))
    if started and _coop._pool is not None:
        _coop._pool.ensure_idle(len(tasks))
    _prepare_state(rt, state, threads)
    return _run_tasks(rt, tasks, background, state, invariant, timeout)


def _run_with_explored_setup(rt, setup, threads, invariant, timeout):
    """setup() as explored thread ``len(threads)``, started after the test's threads, which
    join it before they begin; the threads it starts are background threads, as they are when
    setup() runs before the exploration. Its steps and theirs until it returns are taken in
    one order (the search is of the test's threads, not of setup())."""
    made = {}
    setup_tid = len(threads) + 1  # engine id

    def run_setup():
        try:
            made["state"] = setup()
        except BaseException as exc:
            if _coop.raised_unwinding(exc):
                raise
            made["error"] = exc
            return
        _prepare_state(rt, made["state"], threads)

    def after_setup(fn):
        def run():
            rt.join(setup_tid, None)
            if "state" in made:
                fn(made["state"])

        return run

    _coop.setup_thread = len(threads)
    _coop.started_threads[len(threads)] = (
        "setup()", "frontrun before the test's threads (setup() waits for a thread it starts)")
    tasks = [after_setup(fn) for fn in threads] + [run_setup]
    if _coop._pool is not None:
        _coop._pool.ensure_idle(len(tasks))

    @functools.wraps(invariant)
    def check(state):
        return "state" not in made or invariant(state)

    try:
        run = _run_tasks(rt, tasks, [], None, check, timeout, prologue=len(threads), state_of=lambda: made.get("state"))
    finally:
        _coop.setup_thread = None
    if "error" in made:
        error = made["error"]
        raise _SetupFailed(error) from error
    run.setup_thread = len(threads)
    return run


# A thread whose turn it is that takes no step for this long is said to be stalled.
STALL_NOTICE_SECONDS = 10.0


def _stall_notice(ident, thread):
    """Says, on stderr at once (a search that hangs returns nothing), where an explored thread
    that has taken no step for a while is; returns what it said, for a timeout's reason."""
    from frontrun.rewrite._core import FRONTRUN_DIR

    frame = sys._current_frames().get(ident)
    where = []
    while frame is not None and len(where) < 3:
        if not frame.f_code.co_filename.startswith(FRONTRUN_DIR + os.sep):
            line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
            where.append(f"{os.path.relpath(frame.f_code.co_filename)}:{frame.f_lineno} in {frame.f_code.co_name}"
                         + (f" ({line})" if line else ""))
        frame = frame.f_back
    said = (f"thread {thread} has taken no step for {STALL_NOTICE_SECONDS:g} s, at {'; called from '.join(where) or 'an unknown place'}: "
            "if it waits in a call frontrun does not model (a C queue.SimpleQueue made before the exploration, a "
            "socket, a pipe, a subprocess), nothing the other threads do ends that wait; make the object in "
            "setup(), or give explore_dpor a timeout")
    try:
        sys.stderr.write(f"frontrun: {said}\n")
        sys.stderr.flush()
    except Exception:
        pass
    return said


def _run_tasks(rt, tasks, background, state, invariant, timeout, prologue=None, state_of=None):
    # No cyclic collection while the threads run: its finalizers and weakref callbacks (an
    # executor collected puts a wake-up in its queue) would run in whichever explored thread
    # allocated last, which is not part of the schedule; they run between executions instead.
    collecting = gc.isenabled()
    gc.disable()
    stalled = []
    try:
        end, detail = rt.run_execution(tasks, timeout, background, prologue, lambda *a: stalled.append(_stall_notice(*a)),
                                       STALL_NOTICE_SECONDS)
    finally:
        if collecting:
            gc.enable()
    if state_of is not None:
        state = state_of()
    run = _Run(end=end, detail=detail, state=state, errors=rt.errors())
    run.stalled = stalled[0] if stalled else None
    if end == "deadlock":
        run.kind, run.message = "deadlock", detail
    elif end == "runaway":
        run.kind, run.message = "runaway", f"thread {detail} did not finish within the step limit (max_steps={_step_limit})"
    elif end == "timeout":
        return run
    elif run.errors:
        # Also when the run left the schedule: an exception already raised is real, and the
        # steps taken up to it replay it (a generator resumed while another thread is inside
        # it raises where the model expected another access).
        thread, text = run.errors[0]
        run.kind, run.message = "exception", f"thread {thread} raised an uncaught exception:\n{text}"
    elif end == "diverged":
        return run
    else:
        try:
            with _coop.checking_invariant():
                ok = invariant(state)
        except Exception:
            ok = False
            run.invariant_error = _format_exception(sys.exc_info())
        if ok is None:
            # An invariant of asserts alone: every schedule failed it, blamed on the threads.
            raise TypeError(
                f"invariant {_invariant_name(invariant)} returned None: it must return a true value when the "
                "state is good and a false one when it is not (a function of asserts alone returns None: "
                "end it with `return True`)"
            )
        if not ok:
            run.kind = "invariant"
            run.message = f"invariant {_invariant_name(invariant)} failed"
    return run


class _Progress:
    def __init__(self):
        self.started = _now()
        self.enabled = None  # asked only once the search has run for a while
        self.last = 0.0
        self.shown = False

    def tick(self, n):
        now = _now()
        elapsed = now - self.started
        if elapsed < PROGRESS_AFTER or now - self.last < 0.5:
            return
        if self.enabled is None:
            self.enabled = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
        if not self.enabled:
            return
        self.last = now
        self.shown = True
        sys.stderr.write(f"\rfrontrun: {n} executions, {n / elapsed:,.0f}/s, {elapsed:.1f}s elapsed ")
        sys.stderr.flush()

    def done(self):
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _checked(setup, threads, invariant):
    """The arguments of ``explore_dpor`` / ``replay``, checked: ``threads`` as a list, and
    ``no_invariant`` for an invariant of None."""
    if callable(threads) or isinstance(threads, (str, bytes)) or not isinstance(threads, Iterable):
        raise TypeError(f"threads must be a list of thread functions ([fn, fn] for two threads), got {threads!r}")
    threads = list(threads)
    if not threads:
        raise ValueError("explore_dpor needs at least one thread function")
    for fn in threads:
        if not callable(fn):
            raise TypeError(f"thread functions must be callable, got {fn!r}")
        # Calling one would only make a coroutine, which nothing runs.
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"thread function {getattr(fn, '__qualname__', fn)!r} is a coroutine function: explore_dpor "
                "interleaves threads, each a plain function of the state, and calling it would only make a "
                "coroutine. Run it on its own thread with its own event loop: lambda s: asyncio.run(fn(s)) "
                "(frontrun does not reorder the tasks of one event loop)"
            )
    if not callable(setup):
        raise TypeError(f"setup must be callable (it makes each execution's state), got {setup!r}")
    if invariant is None:
        invariant = no_invariant
    elif not callable(invariant):
        raise TypeError(f"invariant must be callable (or None), got {invariant!r}")
    return setup, threads, invariant


def no_invariant(state):
    """What an exploration without an invariant checks: nothing (exceptions, deadlocks and
    runaways still fail it)."""
    return True


_REWRITE_HOW = (
    "Rewrite it at import time, before it is imported, by one of:\n"
    "  * running the program as  python -m frontrun.rewrite your_script.py\n"
    "  * running the tests with the pytest plugin enabled (pytest --frontrun, or [tool.frontrun] in pyproject.toml)\n"
    "  * calling frontrun.rewrite.install(include=['your_package']) before importing the code\n"
    "  * or instrumenting an imported module in place: frontrun.rewrite.instrument_module(module)"
)
NOT_INSTRUMENTED = (
    "frontrun saw no shared-state access in the threads' first execution: the code under test was "
    "not rewritten, so there is nothing to interleave.\n"
)
NOT_INSTRUMENTED_STEPS = (
    "frontrun saw no shared-state access in the threads' first execution, only their locks, waits "
    "or sleeps: the code under test was probably not rewritten, and the state it shares is not "
    "explored (a race on it cannot be found).\n"
)
_INCLUDE_HOW = ("add it to the include patterns (pytest --frontrun-include PAT, include in [tool.frontrun], "
                "python -m frontrun.rewrite --include PAT, or install(include=[...]))")


def _function_of(fn):
    """The Python function a thread function (a function, lambda, partial, bound method or
    callable object) runs first, or None."""
    for _ in range(8):
        if isinstance(fn, functools.partial):
            fn = fn.func
        elif isinstance(fn, types.MethodType):
            fn = fn.__func__
        elif isinstance(fn, types.FunctionType):
            return fn
        elif callable(fn) and not isinstance(fn, type):
            fn = getattr(type(fn), "__call__", None)
        else:
            return None
    return None


def _thread_functions(threads):
    """The distinct Python functions the thread functions run first (`_function_of`)."""
    return list(dict.fromkeys(filter(None, map(_function_of, threads))))


def _why_no_hook() -> str:
    """Under pytest: why the plugin installed none (off, not loaded, or no configuration)."""
    plugin = sys.modules.get("frontrun.pytest_plugin")
    if plugin is not None and getattr(plugin, "off_reason", None):
        return f": {plugin.off_reason}"
    if plugin is None and os.environ.get("PYTEST_CURRENT_TEST"):
        return (": pytest runs without frontrun's plugin (disabled by -p no:frontrun, or plugin autoloading is "
                "off and no conftest.py has pytest_plugins = ['frontrun.pytest_plugin'])")
    return ""


def _why_not_instrumented(threads, ran=()) -> str:
    """Why the code of ``threads`` reported nothing, as far as can be told from
    the installed hook and where each function came from, with what to do about it. ``ran``:
    code of the user's own, not rewritten, that the threads ran (`_note_unrewritten`)."""
    from frontrun.rewrite import _hook

    finder = _hook.installed()
    lines = []
    functions = _thread_functions(threads)
    for fn in functions:
        code = fn.__code__
        name = fn.__module__ or "?"
        where = f"{fn.__qualname__} ({name}, {code.co_filename})"
        if _rewritten(code):
            lines.append(f"{where} is rewritten, and touched no shared state itself: what the threads share is "
                         "reached through code that is not (a module outside the selection: "
                         f"{_INCLUDE_HOW}; or C code, which frontrun cannot see into)")
        else:
            lines.append(_why_code_not_rewritten(where, name, code, finder))
    # The code the threads went on to run, a module at a time (the one that holds the state).
    by_file = {}
    own = {fn.__code__ for fn in functions}
    for code in ran:
        if code not in own:
            by_file.setdefault(code.co_filename, []).append(getattr(code, "co_qualname", code.co_name))
    for file, names in by_file.items():
        name = _module_named_by_file(file) or "?"
        where = f"{', '.join(names[:4])}{' and more' if len(names) > 4 else ''} ({name}, {file}), which the threads ran,"
        lines.append(_why_code_not_rewritten(where, name, None, finder))
    if not lines:
        return _REWRITE_HOW
    shown = "\n".join(f"  * {line}" for line in dict.fromkeys(lines))
    return shown + ("\n" + _REWRITE_HOW if finder is None else "")


def _module_named_by_file(file):
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == file:
            return name
    return None


def _why_code_not_rewritten(where, name, code, finder) -> str:
    """Why ``where`` (code of module ``name``; ``code`` None: several of its functions) is not
    rewritten, and what to do about it."""
    from frontrun.rewrite import _hook

    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    file = code.co_filename if code is not None else getattr(module, "__file__", None) or ""
    if name == "__main__" and _hook.launched:
        # `python -m frontrun.rewrite -m cProfile script.py` (pdb, trace, ...): that module
        # compiles the script itself.
        return (f"{where} is in a script that another module (cProfile, pdb, trace, ...) compiled and "
                "ran as __main__ itself: the launcher rewrites only the script it runs. Run the script "
                "directly (python -m frontrun.rewrite your_script.py), or move the code under test into "
                "a module it imports")
    if name == "__main__":
        return (f"{where} is in the script run as __main__, which only the launcher rewrites: "
                "python -m frontrun.rewrite your_script.py")
    if finder is None:
        return f"{where} is not rewritten, and frontrun's import hook is not installed in this process" + _why_no_hook()
    if finder.selection.policy_for(name, file) is None:
        if finder.selection.is_excluded(name, file or None):
            return (f"{where} is left out by an exclude pattern ({finder.selection.describe()}), which wins over "
                    "the include patterns: take it out of the exclude patterns")
        unmatched = finder.unmatched_includes()
        mistyped = (f" (the include pattern{'s' if len(unmatched) > 1 else ''} "
                    f"{', '.join(map(repr, unmatched))} match{'' if len(unmatched) > 1 else 'es'} no module "
                    "imported so far: a mistyped name?)") if unmatched else ""
        return f"{where} is not selected by the import hook ({finder.selection.describe()}){mistyped}: " + _INCLUDE_HOW
    if spec is None or not isinstance(spec.loader, _hook._FRONTRUN_LOADERS):
        return (f"{where} is selected, but its module was imported before the hook was installed "
                f"(or by a loader it does not handle): import it after, or call "
                f"frontrun.rewrite.instrument_module(sys.modules[{name!r}])")
    return (f"{where} is selected and its module was rewritten, but this code was not "
            "(made by exec() or compile() at run time, or swapped in afterwards)")


def _shown_codes(codes) -> str:
    shown = [f"{getattr(c, 'co_qualname', c.co_name)} ({os.path.relpath(c.co_filename)}:{c.co_firstlineno})"
             for c in codes[:8]]
    return ", ".join(shown) + (f" and {len(codes) - 8} more" if len(codes) > 8 else "")


def _unrewritten_warning(codes) -> str:
    return ("frontrun explored one execution: the threads shared nothing it saw, but they ran code of yours "
            f"that is not rewritten, whose accesses it cannot see: {_shown_codes(codes)}. A race through that "
            f"code cannot be found: {_INCLUDE_HOW}.")


def _unrewritten_bodies_warning(codes, num) -> str:
    return (f"frontrun explored {num} interleavings, but thread functions of yours are not rewritten: "
            f"{_shown_codes(codes)}. What they read and write themselves is not seen, so a race in it cannot be "
            f"found: {_INCLUDE_HOW}.")


def _not_instrumented(head: str, threads, ran=()) -> str:
    try:
        return head + _why_not_instrumented(threads, ran)
    except Exception:  # a diagnosis that fails must not hide the error it explains
        return head + _REWRITE_HOW


def explore_dpor(
    setup: Callable[[], Any],
    threads: Sequence[Callable[[Any], Any]],
    invariant: Optional[Callable[[Any], bool]] = None,
    *,
    preemption_bound: Optional[int] = None,
    max_executions: Optional[int] = None,
    timeout: Optional[float] = None,
    stop_on_first: bool = True,
    max_steps: int = DEFAULT_MAX_STEPS,
    resource_methods: Sequence[str] = (),
    timeouts: str = WHEN_STUCK,
) -> DporResult:
    """Explore every meaningfully different interleaving of ``threads`` on fresh ``setup()`` state.

    ``invariant(state)`` is checked when the threads are done and returns a true value when the
    state is good (None, from a function of asserts alone, is a TypeError); without one, only
    exceptions, deadlocks and runaways fail.
    ``preemption_bound``: explore only schedules with at most this many preemptions (the verdict
    is then inconclusive if anything was pruned; nor is every such schedule reached: a pruned
    branch's race reversals are pruned with it). Unset (and with ``stop_on_first``), the search
    tries the schedules with at most 1, then 2 preemptions first, then all of them.
    ``max_executions``: stop after that many.
    ``timeout``: wall-clock budget in seconds for the whole search (inconclusive when hit).
    ``stop_on_first``: stop at the first failure (else keep exploring and count them in
    ``stats["failing_executions"]``).
    ``max_steps``: scheduling points one thread may take in one execution before it is reported
    as a runaway. ``resource_methods``: more methods (``name`` or ``module.Class.name``) whose calls
    act on their receiver as a shared resource, beside the defaults and ``[tool.frontrun]``'s (they
    must also be given to the rewriter that instrumented the code).
    ``timeouts``: ``"when_stuck"`` (a timed wait times out only when nothing else can run, so a
    timeout kept as a safety net never fires while the awaited thread can still act) or
    ``"any_time"`` (it may also time out at any point while it waits, as a slow machine can make
    it: finds code that ignores a wait's result or assumes its thread got there in time).
    """
    __tracebackhide__ = True  # pytest shows the test's call, not frontrun's frames
    setup, threads, invariant = _checked(setup, threads, invariant)
    timeouts = _checked_timeouts(timeouts)
    preemption_bound = _checked_count("preemption_bound", preemption_bound, 0)
    max_executions = _checked_count("max_executions", max_executions, 1)
    max_steps = _checked_count("max_steps", max_steps, 1, optional=False)
    timeout = _checked_seconds("timeout", timeout)
    # (A name alone is one name, as in [tool.frontrun], not its letters.)
    resource_methods = normalize_resource_methods(resource_methods)
    started = _now()
    deadline = None if timeout is None else started + timeout
    progress = _Progress()
    passes = [(preemption_bound, max_executions)]
    if preemption_bound is None and stop_on_first:
        passes[:0] = FIRST_BOUNDS
    spent = bounded_runs = 0
    unrewritten = []
    restarts = restarted_executions = 0
    first_divergence = None
    with _session(max_steps=max_steps, resource_methods=resource_methods, timeouts=timeouts,
                  roots=(setup, *threads)) as (rt, pool):
        i = 0
        while True:
            bound, limit = passes[i]
            if max_executions is not None:
                limit = max_executions - spent if limit is None else min(limit, max_executions - spent)
            rt.configure(preemption_bound=bound, max_executions=limit, max_steps=max_steps)
            search = _search(rt, pool, setup, threads, invariant, timeout, deadline, progress, spent, stop_on_first)
            unrewritten = unrewritten or search.unrewritten
            spent += search.executions
            if search.diverged and restarts < WARM_RESTARTS and not (max_executions is not None and spent >= max_executions):
                first_divergence = first_divergence or search.stopped_reason
                restarts += 1
                restarted_executions += search.executions
                continue
            if search.first_failure is not None or search.stopped_reason is not None or i == len(passes) - 1:
                break
            if max_executions is not None and spent >= max_executions:
                break
            if search.verdict == "pass":
                break  # the bound pruned nothing: that search was the full one
            bounded_runs += search.executions
            i += 1
    progress.done()
    elapsed = _now() - started
    stats = search.stats
    if restarts:
        stats["restarts"] = restarts
        stats["restarted_executions"] = restarted_executions
    if len(passes) > 1:
        # The search that decided is reported; the bounded ones before it ran these.
        stats["bounded_first"] = bounded_runs
    if search.first_failure is not None:
        run, schedule = search.first_failure
        schedule = _counterexample(schedule, timeouts, resource_methods)
        result = _explained(schedule, setup, threads, invariant, run, max_steps)
        result.num_explored = spent
        result.elapsed = elapsed
        result.stats = stats
        stats["failing_executions"] = search.failures
        return result
    num = int(stats.get("executions", search.executions))
    stopped_reason = search.stopped_reason
    if search.diverged and restarts:
        stopped_reason += (
            f"; the search started over {restarts} time(s) and the program diverged each time: not only a "
            "library's one-time set-up"
        )
    if stopped_reason is not None and stopped_reason.startswith("timeout") and len(passes) > 1:
        # Which searches the budget covered: the bounded ones found nothing, or it ran out in one.
        bound = passes[i][0]
        if bound is not None:
            stopped_reason += f", during the search with at most {bound} preemption{'s' if bound > 1 else ''}"
        if i > 0:
            earlier = " and ".join(str(b) for b, _ in passes[:i])
            stopped_reason += (f"; the search{'es' if i > 1 else ''} with at most {earlier} preemptions "
                               f"before it ran {bounded_runs} executions and found no failure")
    if stopped_reason is None and search.verdict == "inconclusive":
        stopped_reason = _reason(search.reason, preemption_bound, max_executions)
    if stopped_reason is None and restarts:
        # Proved for the state the first executions left behind, not for the one they began
        # in: a lazy initialisation of the program's own (a module-level cache setup() does
        # not reset) raced in those first executions only.
        stopped_reason = (
            f"{first_divergence}; after the search started over every interleaving held, but the "
            "interleavings of the first executions, in the state the process was in before them, were not "
            "explored (a library's set-up done once per process, or state of your program that setup() "
            "does not reset: reset it in setup() to explore it)"
        )
    holds = None if stopped_reason else True
    if stopped_reason:
        num = spent  # a search cut short counts every execution it ran (max_executions=50: 50)
    elif num == 1 and len(threads) > 1 and unrewritten:
        warnings.warn(_unrewritten_warning(unrewritten), NotInstrumentedWarning, stacklevel=_callers_level())
    elif bodies := _unrewritten_bodies(threads, unrewritten):
        # Other code reported (a search of several executions), but not the threads' own.
        warnings.warn(_unrewritten_bodies_warning(bodies, num), NotInstrumentedWarning, stacklevel=_callers_level())
    return DporResult(property_holds=holds, num_explored=num, inconclusive_reason=stopped_reason, elapsed=elapsed, stats=stats)


# Searches with a preemption bound come first when the caller sets none and stops at the first
# failure: most bugs need one or two preemptions, and the full search of a program built on a
# library's internals (an HTTP server, an executor, an event loop) is far larger. (bound, most
# executions); the full search follows if they find nothing. The first failure found is also
# one with the fewest preemptions the bounds allow: an easier counterexample to read.
FIRST_BOUNDS = [(1, 2000), (2, 2000)]

# A search the program left by not repeating a schedule starts over, at most this many times:
# a library's one-time set-up (a `functools.cached_property` computed on first use, a table
# built lazily) runs in the first executions of a process only, so their steps differ from
# every later one's. A failure the new search finds is real (its schedule replays); a pass is
# not a proof (the first executions' state was not explored): inconclusive. A program that keeps
# state of its own between executions diverges again and is reported as nondeterministic.
WARM_RESTARTS = 2


class _SetupFailed(Exception):
    """``setup()`` raised (the exception is the cause)."""


class _Search:
    """One search's outcome (`_search`)."""

    def __init__(self):
        self.first_failure = None  # (run, schedule)
        self.failures = 0
        self.executions = 0
        self.stopped_reason = None
        self.diverged = False  # the program did not repeat a schedule
        self.stats = {}
        self.verdict = None
        self.reason = None
        # The code of yours the first execution ran unrewritten (`_unrewritten_run`).
        self.unrewritten = []


class _Leftovers:
    """State of rewritten modules (`_rewritten_state`) that the first execution changed and the
    second execution's ``setup()`` did not set back, from three looks: after the first
    ``setup()``, after the first execution, after the second ``setup()``."""

    def __init__(self, threads=()):
        self.looks = []
        self.states = []  # what setup() returned, for the first two executions
        self.closures = _closures_of(threads)
        self.same_state = False  # setup() returned the object it returned before, changed

    def after_setup(self, state=None):
        if len(self.looks) in (0, 2):
            # (The first look, kept while the first execution runs, holds what it can weakly.)
            self.looks.append({**_rewritten_state(weakly=not self.looks), **self._closure_state(weakly=not self.looks)})
            self.states.append(state)
            self._look_at_state(state)

    def after_run(self):
        if len(self.looks) == 1:
            self.looks.append({**_rewritten_state(), **self._closure_state()})
            self._look_at_state(self.states[0])

    def _closure_state(self, weakly=False):
        """The variables of the thread functions' closures (a `nonlocal` counter), keyed by
        ``(_CLOSURE, the function's qualified name)``."""
        held = _weakly if weakly else _strongly
        found = {}
        for fn in self.closures:
            values = {}
            for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
                if not _cell_is_set(cell):
                    continue
                value = cell.cell_contents
                # By identity alone: a variable the threads rebind (`nonlocal n; n += 1`, a client
                # made on first use). A container they fill is most often a test's record of what
                # each execution saw, kept across them on purpose.
                if not kind_is(value, (types.ModuleType, type, types.FunctionType)):
                    values[name] = (held(value), None)
            found[(_CLOSURE, fn.__qualname__)] = values
        return found

    def _look_at_state(self, state):
        # setup() that hands back one object every time (`lambda: counter`, a fixture's) is
        # state that outlives an execution too, if the threads change it and it is not reset.
        if len(self.states) == 2 and self.states[1] is not self.states[0]:
            return
        try:
            attributes = object.__getattribute__(state, "__dict__")
        except Exception:
            return
        if isinstance(attributes, dict):
            held = _weakly if len(self.looks) == 1 else _strongly
            self.looks[-1] = {**self.looks[-1], _SAME_STATE: {
                key: (held(value), _size(value)) for key, value in list(attributes.items()) if not key.startswith("__")}}

    def found(self):
        """The name of each piece of state left over (once, when all three looks are in)."""
        if len(self.looks) != 3:
            return []
        before, after, next_setup = self.looks
        self.looks.append(None)  # reported once
        missing = (None, None)
        same = lambda a, b: _identity(a[0]) == _identity(b[0]) and a[1] == b[1]  # noqa: E731
        # A module the threads imported is new, not left over: its own definitions are not theirs.
        left = [
            (owner, name)
            for owner, values in after.items()
            if owner in before
            for name, value in values.items()
            if not same(before[owner].get(name, missing), value) and same(next_setup.get(owner, {}).get(name, missing), value)
        ]
        self.same_state = any(owner == _SAME_STATE for owner, _ in left)
        # setup() returning a module-level instance: its attributes once, by the module's name.
        state = after.get(_SAME_STATE, {})
        also_global = self.same_state and any(
            owner != _SAME_STATE and values.keys() == state.keys() and all(same(values[k], state[k]) for k in state)
            for owner, values in after.items()
        )
        # setup() returning the module itself: each global once, by the module's name.
        named_elsewhere = {
            name for owner, name in left if owner != _SAME_STATE and name in state and same(after[owner][name], state[name])
        }
        return [
            f"closure variable {name} of {owner[1]}" if isinstance(owner, tuple) else f"{owner}.{name}"
            for owner, name in left
            if not (owner == _SAME_STATE and (also_global or name in named_elsewhere))
        ]


_CONTAINERS = (dict, list, set, deque, bytearray)


def kind_is(obj, classes) -> bool:
    """``isinstance`` by the object's real type, without reading ``obj.__class__``: a lazy
    proxy's ``__class__`` property or a Mock's would run the program's code (and change its
    state) at frontrun's look."""
    return issubclass(type(obj), classes)


def own_attr(obj, name, default=None):
    """``getattr`` without the object's own ``__getattribute__``/``__getattr__`` (a Mock makes a
    child, an AttrDict raises KeyError, a proxy builds its target)."""
    try:
        return object.__getattribute__(obj, name)
    except Exception:
        return default


# How found() names the attributes of the one object setup() returned both times.
_SAME_STATE = "state"
SAME_STATE = (" setup() returned the same object as in the first execution (a fixture's, a global): "
              "make a new one in it each time.")
_CLOSURE = "closure"  # (the key of a thread function's closure variables)


def _closures_of(threads):
    """The functions whose closure variables the threads use: each thread's own function, and
    the functions held in its closure (a lambda calling a nested counter), one level down."""
    found = []
    for fn in map(_function_of, threads):
        if fn is None:
            continue
        held = [cell.cell_contents for cell in fn.__closure__ or () if _cell_is_set(cell)]
        for candidate in (fn, *(_function_of(value) for value in held if callable(value))):
            if candidate is not None and candidate.__closure__ and candidate not in found:
                found.append(candidate)
    return found


def _size(value):
    try:
        return len(value) if kind_is(value, _CONTAINERS) else None
    except Exception:  # a subclass's own __len__
        return None


class _Weakly:
    """A value a look holds without keeping it alive: an object the threads let go of dies when
    it would without frontrun (its ``__del__`` runs, its weak references go)."""

    __slots__ = ("ref", "ident")

    def __init__(self, value):
        self.ident = id(value)
        try:
            self.ref = weakref.ref(value)
        except TypeError:
            self.ref = None  # (a list, a dict: by its id, which a new one may take once it died)


def _weakly(value):
    return value if kind_is(value, _NOT_STATE) else _Weakly(value)


def _strongly(value):
    return value


def _identity(held):
    if kind_is(held, _Weakly):
        if held.ref is None:
            return held.ident
        value = held.ref()
        return -1 if value is None else id(value)  # (died: no value alive is it)
    return id(held)


def _rewritten_state(weakly=False):
    """``{"module", "module.Class" or "module.global": {name: (value, size if a container)}}``
    for every module whose code runs rewritten, every class defined there and every module-level
    instance of one (modules, classes and functions left out: what a thread sets is a value).
    ``weakly``: each value as ``_weakly`` holds it."""
    held = _weakly if weakly else _strongly

    def values(namespace):
        return {
            key: (held(value), _size(value))
            for key, value in list(namespace.items())
            if not key.startswith("__") and not kind_is(value, (types.ModuleType, type, types.FunctionType))
        }

    found = {}
    for name, namespace in _rewritten_namespaces():
        found[name] = values(namespace)
        for key, value in list(namespace.items()):
            if isinstance(value, type):
                if value.__module__ == name:
                    found[f"{name}.{value.__qualname__}"] = values(vars(value))
            elif type(value).__module__ == name:
                # A module-level instance of a class of the module (a registry, a settings
                # object), read without its own __getattr__.
                try:
                    attributes = object.__getattribute__(value, "__dict__")
                except Exception:
                    continue
                if isinstance(attributes, dict):
                    found[f"{name}.{key}"] = values(attributes)
    return found


LEFTOVER_STATE = (
    "frontrun: the first execution changed {names}, which setup() does not set back: every later "
    "execution starts from what the one before left, so what the threads do before it is set is not "
    "explored in every order. Set it back in setup() (for a lazily made object: to what it was before)."
)


def _callers_level():
    """The ``stacklevel`` of the first frame outside frontrun, for a ``warnings.warn`` made by
    the caller of this (``explore_dpor`` called by the ``frontrun_explore`` fixture: the test)."""
    from frontrun.rewrite._core import FRONTRUN_DIR

    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(FRONTRUN_DIR + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def _search(rt, pool, setup, threads, invariant, timeout, deadline, progress, spent, stop_on_first):
    """Runs executions on ``rt`` (configured for this search) until its engine is done, the
    deadline passes or, with ``stop_on_first``, a run fails."""
    __tracebackhide__ = True  # pytest shows the test's call, not frontrun's frames
    global _sqlite_users, _watcher_thread, _unrewritten_run
    out = _Search()
    leftovers = _Leftovers(threads) if spent == 0 else None
    while True:
        if deadline is not None and _now() >= deadline:
            out.stopped_reason = f"timeout: the {timeout}s budget ran out before the search finished"
            break
        if not rt.begin_execution():
            break
        pool.ensure_idle(len(threads))
        remaining = None if deadline is None else max(0.0, deadline - _now())
        first = spent + out.executions == 0
        if first:
            _sqlite_users, _watcher_thread = {}, _thread.get_ident()
            _unrewritten_run = {} if len(threads) > 1 else None  # (the warning is about threads sharing)
        setup_error = None
        try:
            run = _run_one(rt, setup, threads, invariant, remaining, leftovers and leftovers.after_setup)
        except _SetupFailed as failed:
            error = failed.__cause__
            if spent + out.executions == 0:
                setup_error = error  # raised below, outside this handler: not chained to ours
            else:
                # It worked before: state an earlier execution left behind (a port, a file, a
                # module-level counter). What was explored until then stands; the search stops.
                out.stopped_reason = (
                    f"setup() raised after {spent + out.executions} executions had run "
                    f"({type(error).__name__}: {error}); it had worked before, so an earlier execution "
                    "left state behind that setup() does not reset"
                )
                break
        finally:
            users, _sqlite_users = _sqlite_users, None
            if first:
                out.unrewritten, _unrewritten_run = list(_unrewritten_run or ()), None
        if setup_error is not None:
            raise setup_error  # the test's own setup does not work: its error, as it is
        out.executions += 1
        if first and not run.kind and _separate_connections(users):
            warnings.warn(SEPARATE_CONNECTIONS, SeparateConnectionsWarning, stacklevel=_callers_level())
        if leftovers is not None:
            leftovers.after_run()
            names = leftovers.found()
            if names:
                warnings.warn(LEFTOVER_STATE.format(names=", ".join(names)) + (SAME_STATE if leftovers.same_state else ""),
                              LeftoverStateWarning, stacklevel=_callers_level())
        # (A run that failed is reported as it is: a thread that raised at once, say one called
        # with an argument it does not take, is no sign of code not rewritten.)
        if spent + out.executions == 1 and run.end == "finished" and not run.kind:
            if rt.user_steps() == 0:
                rt.end_execution(None)
                raise NotInstrumentedError(_not_instrumented(NOT_INSTRUMENTED, threads, out.unrewritten))
            if rt.reports_heard() == 0:
                # Locks, waits and sleeps are explored without rewriting; the rest is not seen.
                warnings.warn(_not_instrumented(NOT_INSTRUMENTED_STEPS, threads, out.unrewritten), NotInstrumentedWarning,
                              stacklevel=_callers_level())
        if run.end == "timeout":
            rt.end_execution(None)
            out.stopped_reason = f"timeout: the {timeout}s budget ran out before the search finished"
            if run.stalled:
                out.stopped_reason += f" ({run.stalled})"
            break
        if run.end == "diverged" and not run.kind:
            rt.end_execution(None)
            out.diverged = True
            out.stopped_reason = (
                "nondeterminism: the program did not repeat a recorded schedule "
                f"({run.detail}); make setup() and the threads deterministic (state that outlives an "
                "execution, such as a module-level cache or counter, must be reset by setup(); an order "
                "taken from object addresses, such as locks sorted by id() or a set of objects whose class "
                "the program neither defines nor names, differs from one execution to the next)"
            )
            break
        schedule = rt.schedule() if run.kind else None
        rt.end_execution(run.message if run.kind else None)
        if run.kind:
            out.failures += 1
            if out.first_failure is None:
                out.first_failure = (run, schedule)
            if stop_on_first:
                break
        progress.tick(spent + out.executions)
    out.stats = dict(rt.stats())
    out.verdict, out.reason = rt.verdict()
    return out


def _reason(engine_reason, preemption_bound, max_executions):
    text = engine_reason or "the search did not finish"
    if "preemption" in text:
        return f"preemption_bound={preemption_bound}: {text}"
    if "max_executions" in text:
        return f"max_executions={max_executions}: {text}"
    if "nondeterminism" in text:
        return f"nondeterminism: {text}"
    return text


def _replay_once(schedule, setup, threads, invariant, max_steps, explain=True, creations=True):
    """Runs exactly ``schedule`` once; returns (run, runtime) with the step log kept.
    ``creations``: trace allocations, so the explanation can say where objects were made."""
    import tracemalloc

    tracing = tracemalloc.is_tracing() or not (explain and creations)
    if not tracing:
        tracemalloc.start(8)
    try:
        steps, timeouts, methods = _replay_settings(schedule)
        with _session(replay=steps, max_steps=max_steps, explain=explain, timeouts=timeouts,
                      resource_methods=methods, roots=(setup, *threads)) as (rt, pool):
            pool.ensure_idle(len(threads))
            if not rt.begin_execution():
                raise RuntimeError("replay: the engine refused to start")
            run = _run_one(rt, setup, threads, invariant, None)
            if explain:
                from frontrun import _explain

                try:
                    run.explanation = _explain.explain(rt, run, invariant, schedule)
                except Exception as exc:  # a flaw of ours must not hide what was found
                    import traceback

                    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                    run.explanation = f"{run.message or run.kind}\n(frontrun could not explain this schedule: {detail})"
            rt.end_execution(run.message if run.kind else None)
    finally:
        if not tracing:
            tracemalloc.stop()
    return run, rt


def _warm_up(setup, threads, invariant, max_steps):
    """Runs one execution, on whatever schedule, to its end (its outcome is not used)."""
    with _session(max_steps=max_steps, roots=(setup, *threads)) as (rt, pool):
        rt.configure(preemption_bound=None, max_executions=1, max_steps=max_steps)
        pool.ensure_idle(len(threads))
        if not rt.begin_execution():
            return
        try:
            run = _run_one(rt, setup, threads, invariant, None)
        except _SetupFailed:
            return
        rt.end_execution(run.message if run.kind else None)


def _explained(schedule, setup, threads, invariant, found, max_steps):
    """Replays a failing schedule with full recording and builds the result from it."""
    # A runaway's replay runs to the step limit: tracing its allocations made it seven times
    # slower (a line-table walk per frame per allocation), for a report that names few objects.
    run, _rt = _replay_once(schedule, setup, threads, invariant, max_steps, creations=found.kind != "runaway")
    reproduced = run.kind == found.kind
    explanation = run.explanation if reproduced else found.message
    if not reproduced:
        explanation += (
            f"\n(replaying the schedule gave {run.kind or 'no failure'}: the program is not deterministic "
            "outside the reported accesses)"
        )
    return DporResult(
        property_holds=False,
        num_explored=0,
        failure_kind=found.kind,
        explanation=explanation,
        counterexample=schedule,
        reproduced=reproduced,
    )


def replay(
    counterexample: str,
    setup: Callable[[], Any],
    threads: Sequence[Callable[[Any], Any]],
    invariant: Optional[Callable[[Any], bool]] = None,
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> DporResult:
    """Re-runs exactly the schedule ``counterexample`` (from a failing result) once, under the
    ``timeouts`` mode and the ``resource_methods`` of the exploration that found it (the string
    names them)."""
    __tracebackhide__ = True
    setup, threads, invariant = _checked(setup, threads, invariant)
    max_steps = _checked_count("max_steps", max_steps, 1, optional=False)
    steps = _replay_settings(counterexample)[0] if isinstance(counterexample, str) else ""
    if not steps.strip():
        raise ValueError(f"not a frontrun counterexample: {counterexample!r} (a failing result's counterexample)")
    started = _now()
    run, rt = _replay_once(counterexample, setup, threads, invariant, max_steps)
    if run.end == "diverged":
        # Once more, after an execution run to its end: a library's one-time set-up (see
        # WARM_RESTARTS) may have begun in this run, and the schedule was recorded in a process
        # that had done it.
        _warm_up(setup, threads, invariant, max_steps)
        run, rt = _replay_once(counterexample, setup, threads, invariant, max_steps)
    elapsed = _now() - started
    # Code not rewritten here (a script the launcher did not run, a module the search's include
    # patterns named and this process's do not): a schedule of its steps cannot be followed.
    if rt.reports_heard() == 0 and rt.user_steps() == 0:
        named = [int(t) for t in re.findall(r"(?:^|,)(\d+)", steps)]
        if run.end == "diverged" and (named[:1] != [0] or max(named) > len(threads)):
            raise ValueError(
                f"the counterexample {counterexample!r} does not fit these threads: it begins with the root (0) "
                f"and names threads 1 to {len(threads)} for the {len(threads)} thread functions given (and more "
                "only for threads they start)"
            )
        raise NotInstrumentedError(_not_instrumented(NOT_INSTRUMENTED, threads))
    if run.end == "diverged":
        reason = f"nondeterminism: the program did not follow the schedule ({run.detail})"
        if rt.reports_heard() == 0:
            reason += ("; the threads reported no shared-state access, only their locks, waits or sleeps: "
                       "their code was not rewritten here as it was where the counterexample was found")
        return DporResult(
            property_holds=None,
            num_explored=1,
            inconclusive_reason=reason,
            counterexample=counterexample,
            elapsed=elapsed,
        )
    if run.kind:
        return DporResult(
            property_holds=False,
            num_explored=1,
            failure_kind=run.kind,
            explanation=run.explanation,
            counterexample=counterexample,
            elapsed=elapsed,
            reproduced=True,
        )
    return DporResult(property_holds=True, num_explored=1, counterexample=counterexample, elapsed=elapsed)
