//! `frontrun._native.DporRuntime`: real Python threads run one at a time under the DPOR engine.
//!
//! # Handoff
//!
//! One `Mutex<State>` holds the explorer and the execution; every worker thread (a "slot") and
//! the controller (the thread running `explore_dpor`) has its own wake-up word (`Parker`: a
//! counter and `thread::park`). At any moment at most one explored thread holds the *turn* and
//! runs user code; the others are parked at a report, detached from the interpreter
//! (`py.detach`), so the GIL (or, free-threaded, nothing) is in nobody's way. A handoff changes
//! the state under the mutex, queues the wake, and delivers it only after the mutex *and the
//! GIL* are released: the woken thread never wakes just to wait for either (that doubled the
//! context switches per handoff). The runtime lives as long as the process; its workers are
//! reused by every exploration (`configure` starts a new one). The thread that reaches a scheduling point drives the engine
//! itself (baton passing): it `arrive`s, and while every live thread has arrived it calls
//! `choose`; if the engine picks the caller, the report returns at once (no context switch);
//! otherwise the turn is handed over and the caller parks. The engine's thread 0 is a virtual
//! root that spawns the test's threads and exits; its steps, and every thread's `Exit`, are
//! performed inline by whoever drives. Nothing relies on the GIL: all shared state is behind the
//! mutex, which is only ever waited for while detached.
//!
//! # Events → ops
//!
//! Objects are numbered by first appearance in the execution (strong references are kept until
//! the next execution, so CPython cannot reuse an address under us); a module stands for its
//! globals dict. Keys: names (attributes, globals, cells) by value, scalar subscripts by value,
//! negative list indexes normalised, slices as the whole object, other subscripts by identity.
//! Calls are classified by the real receiver (list/dict/set/deque/bytearray methods read or
//! write the whole container; resource methods are conservative writes on the resource, and a
//! returned cursor takes its owner's number), state-accessing builtins by the real callable.
//! `with`/`acquire` on a real `_thread` lock made before the exploration becomes an engine lock;
//! its release is noticed at the thread's next report (the lock is no longer held).

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PyModule, PySet, PySlice, PyString,
    PyTuple,
};

use super::report_py::{self, Event, EventKind};
use crate::methods;
use crate::engine::{
    AccessKind, Choice, Config, Deadlock, Explorer, Op, Schedule, ThreadId, Verdict, WaitReason, WHOLE,
};

/// Key namespaces: names, subscript values and subscript identities never collide.
const NS_VALUE: u64 = 1 << 61;
const NS_IDENT: u64 = 2 << 61;
/// The engine's virtual root thread.
const ROOT: ThreadId = 0;
/// How long the controller waits for aborted threads to unwind before giving up on them.
const UNWIND_GRACE: Duration = Duration::from_secs(3);

struct Aborted;

thread_local! {
    /// (runtime, engine thread, execution) of the explored thread running on this OS thread.
    static CURRENT: Cell<Option<(usize, ThreadId, u64)>> = const { Cell::new(None) };
    /// This OS thread's wake-up word (worker or controller).
    static PARKER: Arc<Parker> = Arc::new(Parker {
        seq: AtomicU64::new(0),
        thread: std::thread::current(),
    });
}

/// Wakes one thread without a lock: the waker bumps `seq` after changing the state (under the
/// state mutex, which it has released by then); the waiter read `seq` before looking at the
/// state, so a wake between its look and its sleep is never lost.
struct Parker {
    seq: AtomicU64,
    thread: std::thread::Thread,
}

impl Parker {
    fn mine() -> Arc<Parker> {
        PARKER.with(Arc::clone)
    }

    fn wake(&self) {
        self.seq.fetch_add(1, Ordering::Release);
        self.thread.unpark();
    }

    /// Waits until `seq` differs from `seen` (or until `deadline`; returns false then). No
    /// spinning first: measured on two shared cores, a spinning waiter slowed handoffs tenfold.
    fn wait_change(&self, seen: u64, deadline: Option<Instant>) -> bool {
        while self.seq.load(Ordering::Acquire) == seen {
            match deadline {
                None => std::thread::park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    std::thread::park_timeout(d - now);
                }
            }
        }
        true
    }
}

/// The state, locked. Wakes queued while it was held are delivered once it is released.
struct Guard<'a>(Option<MutexGuard<'a, State>>);

impl Deref for Guard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.0.as_ref().expect("guard held")
    }
}

impl DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.0.as_mut().expect("guard held")
    }
}

impl Guard<'_> {
    /// Unlocks and returns the queued wakes for the caller to deliver (after it has let go of
    /// the interpreter, so that the woken thread finds the GIL free).
    fn unlock(mut self) -> Vec<Arc<Parker>> {
        let mut g = self.0.take().expect("guard held");
        let wakes = std::mem::take(&mut g.wakes);
        drop(g);
        wakes
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Some(mut g) = self.0.take() {
            let wakes = std::mem::take(&mut g.wakes);
            drop(g);
            wake_all(wakes);
        }
    }
}

fn wake_all(wakes: Vec<Arc<Parker>>) {
    for w in wakes {
        w.wake();
    }
}

/// What a performed step was, kept for explanations (explain mode only) and deadlock reports.
struct StepInfo {
    thread: ThreadId,
    op: Op,
    /// Event kind (`attr_load`, `acquire`, …).
    kind: &'static str,
    /// Attribute / key / method shown to the user.
    key: Option<Py<PyAny>>,
    file: Option<Py<PyAny>>,
    line: Option<i32>,
}

#[derive(Default)]
struct ThreadRt {
    live: bool,
    exited: bool,
    arrived: bool,
    pending: Option<Op>,
    /// Blocked on a wait the engine does not model (condition, lock poll).
    blocked: bool,
    /// The wait may time out when nothing else can run.
    timed: bool,
    timed_out: bool,
    /// A notify that arrived before the thread parked in its condition wait.
    prenotified: bool,
    /// Lock this thread polls in a timed acquire (woken by its release).
    polling: Option<u64>,
    steps: u64,
    slot: Option<usize>,
    task: Option<Py<PyAny>>,
    /// Real `_thread` locks this thread holds: (lock number, lock, is RLock).
    held_real: Vec<(u64, Py<PyAny>, bool)>,
    info: Option<StepInfo>,
    /// Last attribute/global loads (object, name), newest last: name the lock a `with` or an
    /// `acquire` then uses (`s.lock.acquire()` loads `lock`, then `acquire`).
    last_loads: Vec<(Py<PyAny>, Py<PyAny>)>,
}

#[derive(Clone, Debug)]
enum End {
    Finished,
    Deadlock(Deadlock),
    Diverged(String),
    Runaway(ThreadId),
    Timeout,
}

#[derive(Default)]
struct Exec {
    id: u64,
    threads: Vec<ThreadRt>,
    objects: HashMap<usize, u64>,
    refs: Vec<Py<PyAny>>,
    owners: HashMap<u64, ThreadId>,
    turn: Option<ThreadId>,
    unstarted: VecDeque<ThreadId>,
    root_tasks: VecDeque<Py<PyAny>>,
    done: Option<End>,
    aborting: bool,
    /// Worker threads currently inside a task of this execution.
    active: usize,
    /// Steps reported by explored threads (reports and cooperative primitives).
    user_steps: u64,
    errors: Vec<(ThreadId, String)>,
    log: Vec<StepInfo>,
    lock_names: HashMap<u64, String>,
}

struct Slot {
    /// The worker's wake-up word (set by the worker when it starts).
    parker: Option<Arc<Parker>>,
    ident: u64,
    tid: Option<ThreadId>,
    abandoned: bool,
    /// Between handing out a task and its end (`finish`): the worker may be running it.
    in_task: bool,
    /// A timeout's abort was sent to this worker while in its task: it may still be pending
    /// after the task, and must go off before the worker takes another (workers are reused).
    abort_sent: bool,
}

struct State {
    explorer: Explorer,
    exec: Exec,
    slots: Vec<Slot>,
    idle: Vec<usize>,
    next_exec: u64,
    shutdown: bool,
    name_ids: HashMap<String, u64>,
    /// Names already seen, by address (strong refs in `name_refs`).
    name_ptrs: HashMap<usize, u64>,
    name_refs: Vec<Py<PyAny>>,
    max_steps: u64,
    explain: bool,
    /// `threading.local` objects explored threads have used (kept across executions).
    seen_locals: Vec<Py<PyAny>>,
    /// Threads to wake once the state is unlocked.
    wakes: Vec<Arc<Parker>>,
    /// The thread running the current execution (`run_execution`).
    controller: Option<Arc<Parker>>,
}

struct Types {
    abort: Py<PyAny>,
    deque: Py<PyAny>,
    lock: Py<PyAny>,
    rlock: Py<PyAny>,
    local: Py<PyAny>,
    getattr: Py<PyAny>,
    setattr: Py<PyAny>,
    delattr: Py<PyAny>,
    hasattr: Py<PyAny>,
    getitem: Py<PyAny>,
    setitem: Py<PyAny>,
    delitem: Py<PyAny>,
    /// heapq and bisect functions: write their first argument.
    heap_writers: Vec<Py<PyAny>>,
    /// len, sorted, sum, ...: read their first argument as a whole.
    whole_readers: Vec<Py<PyAny>>,
    value_keys: Py<PyDict>,
    /// Real threading/queue classes made cooperative on first sight (`with`, method call) by
    /// `coop_hook(obj)`: made before the exploration, their waits would block for real.
    coop_types: Option<Py<PyTuple>>,
    coop_hook: Option<Py<PyAny>>,
}

struct Inner {
    state: Mutex<State>,
    types: Types,
    /// Default and configured resource methods (`name` or `module.Class.name`).
    resource_methods: std::sync::RwLock<Vec<String>>,
}

/// A resource method call: `name` is a default or configured method, or a configured
/// `module.Class.method` whose class is the receiver's type or one of its bases.
fn is_resource(inner: &Inner, receiver: &Bound<'_, PyAny>, name: &str) -> bool {
    let methods = inner.resource_methods.read().unwrap_or_else(|p| p.into_inner());
    methods.iter().any(|entry| match entry.rsplit_once('.') {
        None => entry == name,
        Some((class_path, method)) => method == name && has_class(receiver, class_path),
    })
}

/// Whether `class_path` (`module.Qualname`) names the type of `obj` or one of its bases.
fn has_class(obj: &Bound<'_, PyAny>, class_path: &str) -> bool {
    let Ok(mro) = obj.get_type().getattr(pyo3::intern!(obj.py(), "__mro__")) else { return false };
    let Ok(mro) = mro.cast_into::<PyTuple>() else { return false };
    mro.iter().any(|t| {
        let part = |attr| t.getattr(attr).ok().and_then(|v| v.extract::<String>().ok());
        match (part(pyo3::intern!(obj.py(), "__module__")), part(pyo3::intern!(obj.py(), "__qualname__"))) {
            (Some(module), Some(qualname)) => {
                class_path.strip_prefix(module.as_str()).and_then(|r| r.strip_prefix('.')) == Some(qualname.as_str())
            }
            _ => false,
        }
    })
}

const LOCK_ACQUIRES: &[&str] = &["acquire", "acquire_lock", "__enter__"];

impl Inner {
    fn id(&self) -> usize {
        self as *const Inner as usize
    }

    /// Locks the state without ever blocking while attached (free-threaded stop-the-world and
    /// the GIL both need that): on contention, wait detached, then try again.
    fn lock_state(&self, py: Python<'_>) -> Guard<'_> {
        loop {
            match self.state.try_lock() {
                Ok(g) => return Guard(Some(g)),
                Err(TryLockError::Poisoned(p)) => return Guard(Some(p.into_inner())),
                Err(TryLockError::WouldBlock) => py.detach(|| drop(self.state.lock())),
            }
        }
    }

    /// Locks the state from a detached thread.
    fn lock_detached(&self) -> Guard<'_> {
        Guard(Some(self.state.lock().unwrap_or_else(|e| e.into_inner())))
    }

    /// Detached: waits until `check` (run under the lock) says what to return. The waiter's
    /// `seq` is read before each look at the state, so no wake is lost in between.
    fn wait_for<R>(
        &self,
        parker: &Parker,
        deadline: Option<Instant>,
        mut check: impl FnMut(&mut State) -> Option<R>,
    ) -> Option<R> {
        loop {
            let seen = parker.seq.load(Ordering::Acquire);
            {
                let mut st = self.lock_detached();
                if let Some(r) = check(&mut st) {
                    return Some(r);
                }
            }
            if !parker.wait_change(seen, deadline) {
                return None;
            }
        }
    }

    fn set_turn(&self, st: &mut State, turn: Option<ThreadId>) {
        st.exec.turn = turn;
    }

    fn current(&self) -> Option<ThreadId> {
        CURRENT.with(|c| c.get()).filter(|(rt, _, _)| *rt == self.id()).map(|(_, t, _)| t)
    }

    /// The execution the task running on this OS thread belongs to.
    fn current_exec(&self) -> Option<u64> {
        CURRENT.with(|c| c.get()).filter(|(rt, _, _)| *rt == self.id()).map(|(_, _, e)| e)
    }

    /// Book-keeping of a task that returned; gives back the wakes to deliver once detached.
    fn finish(&self, py: Python<'_>, slot: usize, error: Option<String>) -> Vec<Arc<Parker>> {
        let Some(tid) = self.current() else {
            return Vec::new();
        };
        let mut st = self.lock_state(py);
        st.slots[slot].in_task = false;
        if st.slots[slot].abandoned || self.current_exec() != Some(st.exec.id) {
            // Given up on at a timeout: a later execution is none of its business.
            CURRENT.with(|c| c.set(None));
            return st.unlock();
        }
        if let Some(e) = error {
            st.exec.errors.push((tid, e));
        }
        // Real locks released before the end are released in the model too.
        loop {
            if st.exec.aborting || st.exec.threads[tid].held_real.is_empty() {
                break;
            }
            let Some(lock) = self.released_real_lock(py, &mut st, tid) else {
                break;
            };
            if self.step(py, st, tid, Op::Release { lock }, None).is_err() {
                st = self.lock_state(py);
                break;
            }
            st = self.lock_state(py);
        }
        CURRENT.with(|c| c.set(None));
        if !st.exec.aborting && st.exec.done.is_none() {
            if st.exec.turn == Some(tid) {
                self.set_turn(&mut st, None);
            }
            Self::arrive(&mut st, tid, Op::Exit, None);
            self.drive(&mut st);
        }
        // No clearing of a pending asynchronous abort here: PyThreadState_SetAsyncExc(id, NULL)
        // leaves the interpreter's async-exception signal set on 3.11, and every thread then
        // spins in its eval breaker. A stray abort is caught by the worker loop instead.
        st.exec.active = st.exec.active.saturating_sub(1);
        st.slots[slot].tid = None;
        if let Some(th) = st.exec.threads.get_mut(tid) {
            th.slot = None;
        }
        st.idle.push(slot);
        if st.exec.active == 0 && st.exec.done.is_some() {
            Self::wake_controller(&mut st);
        }
        st.unlock()
    }

    // ---------------------------------------------------------------- numbering

    fn number(st: &mut State, obj: &Bound<'_, PyAny>) -> u64 {
        let ptr = obj.as_ptr() as usize;
        if let Some(&n) = st.exec.objects.get(&ptr) {
            return n;
        }
        let n = st.exec.refs.len() as u64 + 1;
        st.exec.objects.insert(ptr, n);
        st.exec.refs.push(obj.clone().unbind());
        n
    }

    /// A module's attributes are its globals.
    fn number_owner(st: &mut State, obj: &Bound<'_, PyAny>) -> u64 {
        if let Ok(m) = obj.cast::<PyModule>() {
            return Self::number(st, m.dict().as_any());
        }
        Self::number(st, obj)
    }

    fn name_key(st: &mut State, name: &Bound<'_, PyAny>) -> u64 {
        let ptr = name.as_ptr() as usize;
        if let Some(&k) = st.name_ptrs.get(&ptr) {
            return k;
        }
        let text = name
            .cast::<PyString>()
            .ok()
            .and_then(|s| s.to_str().ok().map(str::to_owned))
            .unwrap_or_else(|| name.to_string());
        let next = st.name_ids.len() as u64 + 1;
        let k = *st.name_ids.entry(text).or_insert(next);
        st.name_ptrs.insert(ptr, k);
        st.name_refs.push(name.clone().unbind());
        k
    }

    fn is_scalar_key(k: &Bound<'_, PyAny>) -> bool {
        if k.is_none()
            || k.is_exact_instance_of::<PyString>()
            || k.is_exact_instance_of::<PyInt>()
            || k.is_exact_instance_of::<PyBool>()
            || k.is_exact_instance_of::<PyBytes>()
            || k.is_exact_instance_of::<PyFloat>()
        {
            return true;
        }
        match k.cast_exact::<PyTuple>() {
            Ok(t) => t.iter().all(|i| Self::is_scalar_key(&i)),
            Err(_) => false,
        }
    }

    fn item_key(&self, st: &mut State, container: &Bound<'_, PyAny>, key: &Bound<'_, PyAny>) -> u64 {
        let py = key.py();
        if key.is_instance_of::<PySlice>() {
            return WHOLE;
        }
        if Self::is_scalar_key(key) {
            let mut key = key.clone();
            // lst[-1] and lst[len-1] are one element.
            if key.is_exact_instance_of::<PyInt>()
                && (container.is_instance_of::<PyList>()
                    || container.is_instance_of::<PyByteArray>()
                    || container.is_instance(self.types.deque.bind(py)).unwrap_or(false))
            {
                if let (Ok(i), Ok(n)) = (key.extract::<i64>(), container.len()) {
                    if i < 0 {
                        key = (i + n as i64).into_pyobject(py).map(|b| b.into_any()).unwrap_or(key);
                    }
                }
            }
            let table = self.types.value_keys.bind(py);
            if let Ok(Some(v)) = table.get_item(&key) {
                if let Ok(id) = v.extract::<u64>() {
                    return NS_VALUE | id;
                }
            }
            let id = table.len() as u64 + 1;
            if table.set_item(&key, id).is_ok() {
                return NS_VALUE | id;
            }
            return WHOLE;
        }
        NS_IDENT | Self::number(st, key)
    }

    // ---------------------------------------------------------------- translation

    fn access(kind: AccessKind, obj: u64, key: u64) -> Op {
        Op::Access { obj, key, kind }
    }

    fn is_lock_type(&self, obj: &Bound<'_, PyAny>) -> Option<bool> {
        let py = obj.py();
        let t = obj.get_type();
        if t.is(self.types.lock.bind(py)) {
            Some(false)
        } else if t.is(self.types.rlock.bind(py)) {
            Some(true)
        } else {
            None
        }
    }

    /// The op an event stands for, with what the explanation shows of it.
    fn translate(
        &self,
        py: Python<'_>,
        st: &mut State,
        tid: ThreadId,
        ev: &Event,
    ) -> Option<(Op, &'static str, Option<Py<PyAny>>)> {
        let obj = ev.obj.bind(py);
        let key = ev.key.bind(py);
        use AccessKind::{Delete, Read, Write};
        if matches!(ev.kind, EventKind::AttrLoad | EventKind::AttrStore | EventKind::AttrDelete)
            && obj.is_instance(self.types.local.bind(py)).unwrap_or(false)
        {
            // Each thread has its own values: not shared. Remembered so that a reused worker
            // starts every task with none.
            if !st.seen_locals.iter().any(|l| l.bind(py).is(obj)) {
                st.seen_locals.push(ev.obj.clone_ref(py));
            }
            return None;
        }
        let named = |st: &mut State, kind: AccessKind| {
            let o = Self::number_owner(st, obj);
            let k = Self::name_key(st, key);
            Some((Self::access(kind, o, k), ev.kind.as_str(), Some(ev.key.clone_ref(py))))
        };
        match ev.kind {
            EventKind::AttrLoad | EventKind::GlobalLoad => {
                if st.explain {
                    let loads = &mut st.exec.threads[tid].last_loads;
                    if loads.len() == 3 {
                        loads.remove(0);
                    }
                    loads.push((ev.obj.clone_ref(py), ev.key.clone_ref(py)));
                }
                named(st, Read)
            }
            EventKind::CellLoad => named(st, Read),
            EventKind::AttrStore | EventKind::GlobalStore | EventKind::CellStore => named(st, Write),
            EventKind::AttrDelete | EventKind::GlobalDelete | EventKind::CellDelete => named(st, Delete),
            EventKind::ItemLoad | EventKind::ItemStore | EventKind::ItemDelete => {
                let kind = match ev.kind {
                    EventKind::ItemLoad => Read,
                    EventKind::ItemStore => Write,
                    _ => Delete,
                };
                let o = Self::number_owner(st, obj);
                let k = self.item_key(st, obj, key);
                Some((Self::access(kind, o, k), ev.kind.as_str(), Some(ev.key.clone_ref(py))))
            }
            EventKind::Inplace => {
                // Immutable left operands are rebound by the store that follows.
                if self.is_container(obj) {
                    let o = Self::number(st, obj);
                    Some((Self::access(Write, o, WHOLE), "inplace", Some(ev.key.clone_ref(py))))
                } else {
                    None
                }
            }
            EventKind::Call => {
                let method = ev.method.as_ref().map(|m| m.bind(py).clone()).unwrap_or_else(|| key.clone());
                let name = method.cast::<PyString>().ok()?.to_str().ok()?.to_owned();
                if let Some(_rlock) = self.is_lock_type(obj) {
                    if LOCK_ACQUIRES.contains(&name.as_str()) {
                        return self.real_acquire(py, st, tid, obj);
                    }
                    return None;
                }
                if let Some(kind) = self.container_call(obj, &name) {
                    let o = Self::number(st, obj);
                    return Some((Self::access(kind, o, WHOLE), "call", Some(method.unbind())));
                }
                if is_resource(self, obj, &name) {
                    let o = Self::number(st, obj);
                    return Some((Self::access(Write, o, WHOLE), "call", Some(method.unbind())));
                }
                None
            }
            EventKind::CallReturn => {
                // A resource's product (a cursor) shares its owner's identity.
                let name = ev.method.as_ref().and_then(|m| {
                    m.bind(py).cast::<PyString>().ok().and_then(|s| s.to_str().ok().map(str::to_owned))
                })?;
                if !is_resource(self, obj, &name) {
                    return None;
                }
                let result = ev.result.as_ref()?.bind(py);
                if result.is_none() || Self::is_scalar_key(result) || self.is_container(result) {
                    return None;
                }
                let owner = Self::number(st, obj);
                let ptr = result.as_ptr() as usize;
                if let std::collections::hash_map::Entry::Vacant(slot) = st.exec.objects.entry(ptr) {
                    slot.insert(owner);
                    st.exec.refs.push(result.clone().unbind());
                }
                None
            }
            EventKind::BuiltinCall => {
                let args = ev.args.as_ref()?.bind(py);
                let first = args.get_item(0).ok()?;
                let t = &self.types;
                let name_access = |st: &mut State, kind: AccessKind| {
                    let attr = args.get_item(1).ok()?;
                    if !attr.is_instance_of::<PyString>() {
                        return None;
                    }
                    let o = Self::number_owner(st, &first);
                    let k = Self::name_key(st, &attr);
                    Some((Self::access(kind, o, k), "builtin_call", Some(attr.unbind())))
                };
                let item_access = |st: &mut State, kind: AccessKind| {
                    let k = args.get_item(1).ok()?;
                    let o = Self::number_owner(st, &first);
                    let key = self.item_key(st, &first, &k);
                    Some((Self::access(kind, o, key), "builtin_call", Some(k.unbind())))
                };
                if obj.is(t.getattr.bind(py)) || obj.is(t.hasattr.bind(py)) {
                    name_access(st, Read)
                } else if obj.is(t.setattr.bind(py)) {
                    name_access(st, Write)
                } else if obj.is(t.delattr.bind(py)) {
                    name_access(st, Delete)
                } else if obj.is(t.getitem.bind(py)) {
                    item_access(st, Read)
                } else if obj.is(t.setitem.bind(py)) {
                    item_access(st, Write)
                } else if obj.is(t.delitem.bind(py)) {
                    item_access(st, Delete)
                } else if t.heap_writers.iter().any(|f| obj.is(f.bind(py))) {
                    let o = Self::number(st, &first);
                    Some((Self::access(Write, o, WHOLE), "builtin_call", Some(ev.key.clone_ref(py))))
                } else if self.is_container(&first) && t.whole_readers.iter().any(|f| obj.is(f.bind(py))) {
                    let o = Self::number(st, &first);
                    Some((Self::access(Read, o, WHOLE), "builtin_call", Some(ev.key.clone_ref(py))))
                } else {
                    None
                }
            }
            // `x in c` and `for x in c` read the whole container.
            EventKind::Contains | EventKind::Iter if self.is_container(obj) => {
                let o = Self::number(st, obj);
                Some((Self::access(Read, o, WHOLE), ev.kind.as_str(), None))
            }
            EventKind::WithEnter => {
                if self.is_lock_type(obj).is_some() {
                    self.real_acquire(py, st, tid, obj)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    fn is_container(&self, obj: &Bound<'_, PyAny>) -> bool {
        if obj.is_exact_instance_of::<PyInt>()
            || obj.is_exact_instance_of::<PyFloat>()
            || obj.is_exact_instance_of::<PyString>()
        {
            return false;
        }
        obj.is_instance_of::<PyList>()
            || obj.is_instance_of::<PyDict>()
            || obj.is_instance_of::<PySet>()
            || obj.is_instance_of::<PyByteArray>()
            || obj.is_instance(self.types.deque.bind(obj.py())).unwrap_or(false)
    }

    /// Read or write of the whole container for a method of a known container type.
    fn container_call(&self, obj: &Bound<'_, PyAny>, name: &str) -> Option<AccessKind> {
        let writes: &[&str] = if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyByteArray>() {
            methods::LIST_WRITES
        } else if obj.is_instance_of::<PyDict>() {
            methods::DICT_WRITES
        } else if obj.is_instance_of::<PySet>() || obj.is_instance_of::<PyFrozenSet>() {
            methods::SET_WRITES
        } else if obj.is_instance(self.types.deque.bind(obj.py())).unwrap_or(false) {
            methods::DEQUE_WRITES
        } else {
            return None;
        };
        Some(if writes.contains(&name) { AccessKind::Write } else { AccessKind::Read })
    }

    /// `with lock:` / `lock.acquire()` on a real lock: an engine lock, so the thread is only run
    /// once no other explored thread holds it (it never blocks inside C on a parked thread).
    fn real_acquire(
        &self,
        py: Python<'_>,
        st: &mut State,
        tid: ThreadId,
        lock: &Bound<'_, PyAny>,
    ) -> Option<(Op, &'static str, Option<Py<PyAny>>)> {
        let n = Self::number(st, lock);
        let rlock = self.is_lock_type(lock) == Some(true);
        let th = &mut st.exec.threads[tid];
        if th.held_real.iter().any(|(l, _, _)| *l == n) {
            // Re-entry of an RLock this thread holds (a plain lock would self-deadlock for real).
            return None;
        }
        th.held_real.push((n, lock.clone().unbind(), rlock));
        self.name_lock(py, st, tid, n);
        Some((Op::Acquire { lock: n }, "acquire", None))
    }

    /// In explain mode, names a lock after the attribute or global it was just loaded from.
    fn name_lock(&self, py: Python<'_>, st: &mut State, tid: ThreadId, lock_n: u64) {
        if !st.explain || st.exec.lock_names.contains_key(&lock_n) {
            return;
        }
        let loads: Vec<(Py<PyAny>, Py<PyAny>)> =
            st.exec.threads[tid].last_loads.iter().rev().map(|(o, k)| (o.clone_ref(py), k.clone_ref(py))).collect();
        let lock = st.exec.refs[(lock_n - 1) as usize].bind(py).clone();
        for (owner, name) in loads {
            let (owner, name) = (owner.bind(py), name.bind(py));
            let value = if let Ok(d) = owner.cast::<PyDict>() {
                d.get_item(name).ok().flatten()
            } else {
                owner
                    .getattr("__dict__")
                    .ok()
                    .and_then(|d| d.cast::<PyDict>().ok().and_then(|d| d.get_item(name).ok().flatten()))
            };
            if value.is_some_and(|v| v.is(&lock)) {
                let label = if owner.is_instance_of::<PyDict>() {
                    name.to_string()
                } else {
                    let tname = owner.get_type().name().map(|n| n.to_string()).unwrap_or_default();
                    format!("{tname}.{name}")
                };
                st.exec.lock_names.insert(lock_n, label);
                return;
            }
        }
    }

    /// A real lock this thread held and has since released: (number) to report as a Release.
    fn released_real_lock(&self, py: Python<'_>, st: &mut State, tid: ThreadId) -> Option<u64> {
        let th = &mut st.exec.threads[tid];
        let pos = th.held_real.iter().position(|(_, lock, rlock)| {
            let lock = lock.bind(py);
            let held = if *rlock { lock.call_method0("_is_owned") } else { lock.call_method0("locked") };
            !held.and_then(|h| h.is_truthy()).unwrap_or(false)
        })?;
        Some(th.held_real.remove(pos).0)
    }

    // ---------------------------------------------------------------- scheduling

    fn thread_mut(st: &mut State, t: ThreadId) -> &mut ThreadRt {
        if st.exec.threads.len() <= t {
            st.exec.threads.resize_with(t + 1, ThreadRt::default);
        }
        &mut st.exec.threads[t]
    }

    fn arrive(st: &mut State, t: ThreadId, op: Op, info: Option<StepInfo>) {
        st.explorer.arrive(t, op);
        let th = Self::thread_mut(st, t);
        th.arrived = true;
        th.pending = Some(op);
        th.info = info;
        if th.blocked {
            st.explorer.set_blocked(t, true);
        }
    }

    fn root_arrive(st: &mut State) {
        let op = match st.exec.root_tasks.pop_front() {
            Some(task) => {
                let child = st.explorer.child_id(ROOT);
                Self::thread_mut(st, child).task = Some(task);
                Op::Spawn { child }
            }
            None => Op::Exit,
        };
        Self::arrive(st, ROOT, op, None);
    }

    fn notify_slot(st: &mut State, t: ThreadId) {
        if let Some(s) = st.exec.threads.get(t).and_then(|th| th.slot) {
            Self::wake_slot(st, s);
        }
    }

    fn wake_slot(st: &mut State, s: usize) {
        if let Some(p) = st.slots[s].parker.clone() {
            st.wakes.push(p);
        }
    }

    fn wake_controller(st: &mut State) {
        if let Some(p) = st.controller.clone() {
            st.wakes.push(p);
        }
    }

    /// Between executions: a worker handed a thread the last execution ended before it started
    /// is idle again (else it could take the same-numbered thread of the next execution while
    /// another worker is assigned to it, and the wakes would go to the wrong one).
    fn release_unstarted(st: &mut State) {
        for s in 0..st.slots.len() {
            let slot = &mut st.slots[s];
            if slot.tid.is_some() && !slot.in_task && !slot.abandoned {
                slot.tid = None;
                if !st.idle.contains(&s) {
                    st.idle.push(s);
                }
            }
        }
    }

    fn wake_all_slots(st: &mut State) {
        for s in 0..st.slots.len() {
            Self::wake_slot(st, s);
        }
    }

    fn end(&self, st: &mut State, end: End) {
        if st.exec.done.is_some() {
            return;
        }
        let abort = !matches!(end, End::Finished);
        st.exec.done = Some(end);
        self.set_turn(st, None);
        if abort {
            st.exec.aborting = true;
            Self::wake_all_slots(st);
        }
        Self::wake_controller(st);
    }

    /// Whether `t` (live, arrived) could run, by the runtime's mirror of the engine's model.
    fn enabled(st: &State, t: ThreadId) -> bool {
        let th = &st.exec.threads[t];
        if th.blocked {
            return false;
        }
        match th.pending {
            Some(Op::Acquire { lock }) => !st.exec.owners.contains_key(&lock),
            Some(Op::Join { child }) => st.exec.threads.get(child).is_some_and(|c| c.exited),
            _ => true,
        }
    }

    /// When nothing can run, a timed wait times out (the lowest such thread).
    fn fire_timeouts(st: &mut State) {
        let live: Vec<ThreadId> = (0..st.exec.threads.len()).filter(|&t| st.exec.threads[t].live).collect();
        if live.iter().any(|&t| Self::enabled(st, t)) {
            return;
        }
        if let Some(&t) = live.iter().find(|&&t| st.exec.threads[t].blocked && st.exec.threads[t].timed) {
            let th = &mut st.exec.threads[t];
            th.blocked = false;
            th.timed_out = true;
            th.polling = None;
            st.explorer.set_blocked(t, false);
        }
    }

    fn unblock(st: &mut State, t: ThreadId) {
        let th = &mut st.exec.threads[t];
        th.blocked = false;
        th.polling = None;
        if th.arrived {
            st.explorer.set_blocked(t, false);
        }
    }

    /// Book-keeping of a performed op.
    fn perform(st: &mut State, x: ThreadId) -> Op {
        let th = &mut st.exec.threads[x];
        let op = th.pending.take().expect("chosen thread has arrived");
        th.arrived = false;
        let info = th.info.take();
        if st.explain {
            if let Some(info) = info {
                st.exec.log.push(info);
            } else {
                st.exec.log.push(StepInfo { thread: x, op, kind: "", key: None, file: None, line: None });
            }
        }
        match op {
            Op::Acquire { lock } => {
                st.exec.owners.insert(lock, x);
            }
            Op::Release { lock } => {
                st.exec.owners.remove(&lock);
                let pollers: Vec<ThreadId> =
                    (0..st.exec.threads.len()).filter(|&t| st.exec.threads[t].polling == Some(lock)).collect();
                for t in pollers {
                    Self::unblock(st, t);
                }
            }
            Op::Spawn { child } => {
                Self::thread_mut(st, child).live = true;
                st.exec.unstarted.push_back(child);
            }
            Op::Exit => {
                let th = &mut st.exec.threads[x];
                th.live = false;
                th.exited = true;
            }
            _ => {}
        }
        op
    }

    /// Hands a thread that was spawned but has not reached its first report the turn.
    fn start_unstarted(&self, st: &mut State) -> bool {
        let Some(c) = st.exec.unstarted.pop_front() else {
            return false;
        };
        self.set_turn(st, Some(c));
        if let Some(s) = st.idle.pop() {
            st.slots[s].tid = Some(c);
            st.exec.threads[c].slot = Some(s);
            Self::wake_slot(st, s);
        }
        // Else the next worker to register or go idle claims it.
        true
    }

    /// Baton passing: run the engine until some explored thread holds the turn or the
    /// execution is over. Root steps and exits are performed here, inline.
    fn drive(&self, st: &mut State) {
        loop {
            if st.exec.done.is_some() {
                return;
            }
            if !st.explorer.is_ready() {
                if !self.start_unstarted(st) && st.exec.turn.is_none() {
                    // Cannot happen: a live thread neither arrived nor running.
                    self.end(st, End::Diverged("a live thread never reached a scheduling point".into()));
                }
                return;
            }
            Self::fire_timeouts(st);
            match st.explorer.choose() {
                Choice::Run(x) => {
                    let op = Self::perform(st, x);
                    if x == ROOT {
                        if op != Op::Exit {
                            Self::root_arrive(st);
                        }
                        continue;
                    }
                    if op == Op::Exit {
                        continue;
                    }
                    self.set_turn(st, Some(x));
                    Self::notify_slot(st, x);
                    return;
                }
                Choice::Finished => {
                    self.end(st, End::Finished);
                    return;
                }
                Choice::Deadlock(d) => {
                    self.end(st, End::Deadlock(d));
                    return;
                }
                Choice::Diverged(d) => {
                    let found = d.found.map_or("nothing".to_string(), |op| format!("{op:?}"));
                    let msg = format!(
                        "at step {} thread {} was expected to perform {:?} but was at {}",
                        d.step,
                        d.expected.thread.saturating_sub(1),
                        d.expected.op,
                        found
                    );
                    self.end(st, End::Diverged(msg));
                    return;
                }
            }
        }
    }

    /// `tid` reached a scheduling point before `op`: arrive, drive, park until chosen.
    fn step(
        &self,
        py: Python<'_>,
        mut st: Guard<'_>,
        tid: ThreadId,
        op: Op,
        info: Option<StepInfo>,
    ) -> Result<(), Aborted> {
        if st.exec.aborting || st.exec.done.is_some() || self.current_exec() != Some(st.exec.id) {
            return Err(Aborted);
        }
        st.exec.user_steps += 1;
        let th = Self::thread_mut(&mut st, tid);
        th.steps += 1;
        if th.steps > st.max_steps {
            self.end(&mut st, End::Runaway(tid));
            return Err(Aborted);
        }
        if st.exec.turn == Some(tid) {
            self.set_turn(&mut st, None);
        }
        Self::arrive(&mut st, tid, op, info);
        self.drive(&mut st);
        if st.exec.turn == Some(tid) {
            return Ok(());
        }
        if st.exec.aborting {
            return Err(Aborted);
        }
        let exec_id = st.exec.id;
        let wakes = st.unlock();
        let parker = Parker::mine();
        // The GIL is let go before the next thread is woken: it must not wake only to wait for it.
        let ok = py.detach(|| {
            wake_all(wakes);
            self.wait_for(&parker, None, |st| {
                if st.exec.id != exec_id || st.exec.aborting {
                    Some(false)
                } else if st.exec.turn == Some(tid) {
                    Some(true)
                } else {
                    None
                }
            })
            .unwrap_or(false)
        });
        if ok {
            Ok(())
        } else {
            Err(Aborted)
        }
    }

    /// A real Condition/Semaphore/Event/Barrier/Queue made before the exploration gets its
    /// cooperative internals before it is used (the hook runs no runtime method: the state is
    /// not locked here, but the hook must not wait either).
    fn make_cooperative(&self, py: Python<'_>, obj: &Bound<'_, PyAny>, method: Option<&Py<PyAny>>) {
        let (Some(types), Some(hook)) = (&self.types.coop_types, &self.types.coop_hook) else {
            return;
        };
        if obj.is_instance(types.bind(py).as_any()).unwrap_or(false) {
            // An error of the hook is dropped: the code under test then runs on the real object.
            let _ = hook.bind(py).call1((obj, method));
        }
    }

    /// The sink: every report of every thread arrives here.
    fn on_event(&self, py: Python<'_>, ev: &Event) {
        let Some(tid) = self.current() else { return };
        // The commonest report that means nothing: `total += i` on a local number.
        if ev.kind == EventKind::Inplace && !self.is_container(ev.obj.bind(py)) {
            return;
        }
        if matches!(ev.kind, EventKind::WithEnter | EventKind::Call) {
            self.make_cooperative(py, ev.obj.bind(py), ev.method.as_ref());
        }
        if self.report(py, tid, ev).is_err() {
            self.raise_async(py);
        }
    }

    fn report(&self, py: Python<'_>, tid: ThreadId, ev: &Event) -> Result<(), Aborted> {
        let mut st = self.lock_state(py);
        if st.exec.aborting {
            return Err(Aborted);
        }
        while let Some(lock) =
            if st.exec.threads[tid].held_real.is_empty() { None } else { self.released_real_lock(py, &mut st, tid) }
        {
            let info = st.explain.then(|| StepInfo {
                thread: tid,
                op: Op::Release { lock },
                kind: "release",
                key: None,
                file: Self::file_of(py, ev),
                line: ev.line,
            });
            self.step(py, st, tid, Op::Release { lock }, info)?;
            st = self.lock_state(py);
        }
        let Some((op, kind, key)) = self.translate(py, &mut st, tid, ev) else {
            return Ok(());
        };
        let info =
            st.explain.then(|| StepInfo { thread: tid, op, kind, key, file: Self::file_of(py, ev), line: ev.line });
        let info = info.or_else(|| {
            Some(StepInfo { thread: tid, op, kind, key: None, file: Self::file_of(py, ev), line: ev.line })
        });
        self.step(py, st, tid, op, info)
    }

    /// The reporting code object; its file name is read only when shown.
    fn file_of(py: Python<'_>, ev: &Event) -> Option<Py<PyAny>> {
        ev.code.as_ref().map(|c| c.clone_ref(py))
    }

    fn file_name(py: Python<'_>, f: &Option<Py<PyAny>>) -> Option<Py<PyAny>> {
        let f = f.as_ref()?.bind(py);
        if f.is_instance_of::<PyString>() {
            return Some(f.clone().unbind());
        }
        f.getattr("co_filename").ok().map(Bound::unbind)
    }

    /// Makes the current thread raise the abort exception at its next instruction boundary
    /// (the report natives never raise themselves).
    fn raise_async(&self, py: Python<'_>) {
        let ident = {
            let st = self.lock_state(py);
            self.current().and_then(|t| st.exec.threads.get(t).and_then(|th| th.slot)).map(|s| st.slots[s].ident)
        };
        if let Some(ident) = ident {
            // SAFETY: attached; the exception type is a live object we hold.
            unsafe {
                ffi::PyThreadState_SetAsyncExc(ident as std::os::raw::c_long, self.types.abort.as_ptr());
            }
        }
    }
}

fn site_info(
    py: Python<'_>,
    tid: ThreadId,
    op: Op,
    kind: &'static str,
    site: Option<(Py<PyAny>, i32)>,
    key: Option<Py<PyAny>>,
) -> Option<StepInfo> {
    let _ = py;
    let (file, line) = match site {
        Some((f, l)) => (Some(f), Some(l)),
        None => (None, None),
    };
    Some(StepInfo { thread: tid, op, kind, key, file, line })
}

/// A deadlock in the user's numbering (thread 0 = the first function of `threads`; the engine's
/// thread 0 is the virtual root that starts them).
fn deadlock_text(d: &Deadlock) -> String {
    let user = |t: ThreadId| t.saturating_sub(1);
    let mut out = String::from("deadlock:");
    for w in &d.waiting {
        match (&w.reason, w.op) {
            (WaitReason::Lock { lock, owner }, _) => out.push_str(&format!(
                " thread {} waits for lock #{lock} held by thread {};",
                user(w.thread),
                user(*owner)
            )),
            (WaitReason::Join { child }, _) => {
                out.push_str(&format!(" thread {} joins thread {};", user(w.thread), user(*child)))
            }
            (WaitReason::Blocked, _) => out.push_str(&format!(" thread {} is blocked;", user(w.thread))),
        }
    }
    out
}

fn make_explorer(
    preemption_bound: Option<u32>,
    max_executions: Option<u64>,
    replay: Option<String>,
) -> PyResult<Explorer> {
    Ok(match replay {
        Some(s) => {
            let schedule: Schedule = s.parse().map_err(|e: crate::engine::ParseScheduleError| {
                PyValueError::new_err(format!("not a frontrun counterexample: {e}"))
            })?;
            Explorer::replay(schedule)
        }
        None => Explorer::new(Config { preemption_bound, max_executions }),
    })
}

/// The DPOR runtime: one per process, reconfigured for each exploration (or replay), with its
/// worker threads kept from one to the next.
#[pyclass(frozen, module = "frontrun._native")]
pub struct DporRuntime {
    inner: Arc<Inner>,
}

fn aborted(py: Python<'_>, inner: &Inner) -> PyErr {
    PyErr::from_type(inner.types.abort.bind(py).cast::<pyo3::types::PyType>().expect("abort is a type").clone(), ())
}

#[pymethods]
impl DporRuntime {
    #[new]
    #[pyo3(signature = (*, abort_exc, deque, lock_type, rlock_type, local_type, builtins_map, heap_writers, resource_methods, whole_readers=None, preemption_bound=None, max_executions=None, max_steps=100_000, replay=None, explain=false, coop_types=None, coop_hook=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        abort_exc: Py<PyAny>,
        deque: Py<PyAny>,
        lock_type: Py<PyAny>,
        rlock_type: Py<PyAny>,
        local_type: Py<PyAny>,
        builtins_map: &Bound<'_, PyDict>,
        heap_writers: Vec<Py<PyAny>>,
        resource_methods: Vec<String>,
        whole_readers: Option<Vec<Py<PyAny>>>,
        preemption_bound: Option<u32>,
        max_executions: Option<u64>,
        max_steps: u64,
        replay: Option<String>,
        explain: bool,
        coop_types: Option<Py<PyTuple>>,
        coop_hook: Option<Py<PyAny>>,
    ) -> PyResult<DporRuntime> {
        let explorer = make_explorer(preemption_bound, max_executions, replay)?;
        let get = |name: &str| -> PyResult<Py<PyAny>> {
            builtins_map
                .get_item(name)?
                .map(Bound::unbind)
                .ok_or_else(|| PyValueError::new_err(format!("builtins_map lacks {name}")))
        };
        let types = Types {
            abort: abort_exc,
            deque,
            lock: lock_type,
            rlock: rlock_type,
            local: local_type,
            getattr: get("getattr")?,
            setattr: get("setattr")?,
            delattr: get("delattr")?,
            hasattr: get("hasattr")?,
            getitem: get("getitem")?,
            setitem: get("setitem")?,
            delitem: get("delitem")?,
            heap_writers,
            whole_readers: whole_readers.unwrap_or_default(),
            value_keys: PyDict::new(py).unbind(),
            coop_types,
            coop_hook,
        };
        let state = State {
            explorer,
            exec: Exec::default(),
            slots: Vec::new(),
            idle: Vec::new(),
            next_exec: 1,
            shutdown: false,
            name_ids: HashMap::new(),
            name_ptrs: HashMap::new(),
            name_refs: Vec::new(),
            max_steps,
            explain,
            seen_locals: Vec::new(),
            wakes: Vec::new(),
            controller: None,
        };
        Ok(DporRuntime { inner: Arc::new(Inner { state: Mutex::new(state), types, resource_methods: std::sync::RwLock::new(resource_methods) }) })
    }

    /// Routes reports to this runtime and turns reporting on.
    fn start(&self, py: Python<'_>) {
        let inner = self.inner.clone();
        report_py::set_sink(Some(Arc::new(move |py: Python<'_>, ev: &Event| inner.on_event(py, ev))));
        report_py::activate(py);
    }

    /// Turns reporting off and removes the sink; any execution still running is aborted. The
    /// workers stay, idle, for the next exploration.
    fn stop(&self, py: Python<'_>) {
        report_py::deactivate(py);
        report_py::set_sink(None);
        let mut st = self.inner.lock_state(py);
        if st.exec.done.is_none() && st.exec.active > 0 {
            st.exec.aborting = true;
            Inner::wake_all_slots(&mut st);
        }
    }

    /// Sends the workers home (at interpreter exit).
    fn shutdown(&self, py: Python<'_>) {
        let mut st = self.inner.lock_state(py);
        st.shutdown = true;
        st.exec.aborting = true;
        Inner::wake_all_slots(&mut st);
    }

    /// Replaces the resource methods (the configuration may change between explorations).
    fn set_resource_methods(&self, methods: Vec<String>) {
        *self.inner.resource_methods.write().unwrap_or_else(|p| p.into_inner()) = methods;
    }

    /// Starts a new exploration (or replay) on this runtime: fresh engine, same workers.
    #[pyo3(signature = (*, preemption_bound=None, max_executions=None, max_steps=100_000, replay=None, explain=false))]
    fn configure(
        &self,
        py: Python<'_>,
        preemption_bound: Option<u32>,
        max_executions: Option<u64>,
        max_steps: u64,
        replay: Option<String>,
        explain: bool,
    ) -> PyResult<()> {
        let explorer = make_explorer(preemption_bound, max_executions, replay)?;
        let mut st = self.inner.lock_state(py);
        if st.exec.active > 0 {
            return Err(PyRuntimeError::new_err("an execution of the previous exploration is still running"));
        }
        st.explorer = explorer;
        st.max_steps = max_steps;
        st.explain = explain;
        Inner::release_unstarted(&mut st);
        let old = std::mem::take(&mut st.exec);
        st.exec.id = old.id;
        drop(st);
        drop(old); // the previous execution's objects (attached: may run finalizers)
        self.inner.types.value_keys.bind(py).clear();
        Ok(())
    }

    #[getter]
    fn explaining(&self, py: Python<'_>) -> bool {
        self.inner.lock_state(py).explain
    }

    // ------------------------------------------------------------ workers

    fn register_worker(&self, py: Python<'_>, ident: u64) -> usize {
        let mut st = self.inner.lock_state(py);
        let s = st.slots.len();
        st.slots.push(Slot { parker: None, ident, tid: None, abandoned: false, in_task: false, abort_sent: false });
        st.idle.push(s);
        s
    }

    /// Called by the worker in `slot` itself when it starts: its OS thread id and wake-up word.
    fn set_worker_ident(&self, py: Python<'_>, slot: usize, ident: u64) {
        let mut st = self.inner.lock_state(py);
        st.slots[slot].ident = ident;
        st.slots[slot].parker = Some(Parker::mine());
    }

    /// The `threading.local` objects explored threads have used so far.
    fn seen_locals(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        self.inner.lock_state(py).seen_locals.iter().map(|l| l.clone_ref(py)).collect()
    }

    fn idle_workers(&self, py: Python<'_>) -> usize {
        let st = self.inner.lock_state(py);
        st.idle.iter().filter(|&&s| !st.slots[s].abandoned).count()
    }

    /// The worker loop's one call: reports the end of the task it ran (`finished`; `error`: its
    /// formatted uncaught exception), then blocks (detached) until a task's turn comes for this
    /// worker: `(thread, callable, locals)` with the `threading.local` objects to clear first,
    /// `None` at shutdown, or `False`: a timeout's abort may still be pending in this thread,
    /// let it go off (run some Python code, catch it) and call again.
    #[pyo3(signature = (slot, finished=false, error=None))]
    fn next_task(&self, py: Python<'_>, slot: usize, finished: bool, error: Option<String>) -> PyResult<Py<PyAny>> {
        let inner = self.inner.clone();
        let wakes = if finished { inner.finish(py, slot, error) } else { Vec::new() };
        {
            let mut st = inner.lock_state(py);
            if std::mem::take(&mut st.slots[slot].abort_sent) {
                drop(st);
                wake_all(wakes);
                return Ok(PyBool::new(py, false).to_owned().into_any().unbind());
            }
        }
        let parker = Parker::mine();
        let got = py.detach(move || {
            // The next thread (or the controller) is woken once this one has let go of the GIL.
            wake_all(wakes);
            inner
                .wait_for(&parker, None, |st| loop {
                    if st.shutdown || st.slots[slot].abandoned {
                        return Some(None);
                    }
                    match st.slots[slot].tid {
                        Some(t) if st.exec.aborting => {
                            // Assigned but never started: drop it.
                            st.slots[slot].tid = None;
                            if let Some(th) = st.exec.threads.get_mut(t) {
                                th.slot = None;
                            }
                            if !st.idle.contains(&slot) {
                                st.idle.push(slot);
                            }
                        }
                        Some(t) if st.exec.turn == Some(t) => {
                            if let Some(task) = st.exec.threads[t].task.take() {
                                st.exec.active += 1;
                                st.slots[slot].in_task = true;
                                return Some(Some((t, task, st.exec.id, st.seen_locals.len())));
                            }
                        }
                        None => {
                            // A spawned thread given the turn before any worker was idle.
                            if let Some(t) = st.exec.turn.filter(|&t| {
                                st.exec
                                    .threads
                                    .get(t)
                                    .is_some_and(|th| th.slot.is_none() && th.task.is_some() && th.live)
                            }) {
                                if let Some(pos) = st.idle.iter().position(|&s| s == slot) {
                                    st.idle.remove(pos);
                                }
                                st.slots[slot].tid = Some(t);
                                st.exec.threads[t].slot = Some(slot);
                                continue;
                            }
                        }
                        _ => {}
                    }
                    return None;
                })
                .flatten()
        });
        let Some((t, task, exec, nlocals)) = got else {
            return Ok(py.None());
        };
        CURRENT.with(|c| c.set(Some((self.inner.id(), t, exec))));
        // Worker threads are reused: no thread-local value may leak into the next task.
        let locals = (nlocals > 0).then(|| self.seen_locals(py));
        Ok((t, task, locals).into_pyobject(py)?.into_any().unbind())
    }

    // ------------------------------------------------------------ controller

    fn begin_execution(&self, py: Python<'_>) -> bool {
        let mut st = self.inner.lock_state(py);
        if !st.explorer.begin_execution() {
            return false;
        }
        let id = st.next_exec;
        st.next_exec += 1;
        Inner::release_unstarted(&mut st);
        let old = std::mem::replace(&mut st.exec, Exec { id, ..Exec::default() });
        drop(st);
        drop(old); // releases the previous execution's objects (attached: may run finalizers)
        true
    }

    /// Runs one execution of `tasks` (one callable per thread) to its end; blocks, detached.
    /// Returns `(end, detail)`: end in finished/deadlock/diverged/runaway/timeout.
    #[pyo3(signature = (tasks, timeout=None))]
    fn run_execution(&self, py: Python<'_>, tasks: Vec<Py<PyAny>>, timeout: Option<f64>) -> PyResult<(String, String)> {
        let inner = self.inner.clone();
        let parker = Parker::mine();
        let wakes = {
            let mut st = inner.lock_state(py);
            st.controller = Some(parker.clone());
            st.exec.root_tasks = tasks.into();
            Inner::thread_mut(&mut st, ROOT).live = true;
            Inner::root_arrive(&mut st);
            inner.drive(&mut st);
            st.unlock()
        };
        let deadline = timeout.map(|t| Instant::now() + Duration::from_secs_f64(t.max(0.0)));
        let mut wakes = Some(wakes);
        let mut wait = |deadline: Option<Instant>| {
            let wakes = wakes.take().unwrap_or_default();
            py.detach(|| {
                wake_all(wakes);
                inner
                    .wait_for(&parker, deadline, |st| (st.exec.done.is_some() && st.exec.active == 0).then_some(()))
                    .is_some()
            })
        };
        if !wait(deadline) {
            // Out of time: stop whoever runs (it may be in a loop with no report at all).
            {
                let mut st = inner.lock_state(py);
                inner.end(&mut st, End::Timeout);
                // Under the lock: no worker can end its task meanwhile, so each one sent an abort
                // learns of it at its task's end (`abort_sent`).
                for s in st.slots.iter_mut().filter(|s| s.in_task && !s.abandoned) {
                    s.abort_sent = true;
                    // SAFETY: attached; a live exception type.
                    unsafe {
                        ffi::PyThreadState_SetAsyncExc(s.ident as std::os::raw::c_long, inner.types.abort.as_ptr());
                    }
                }
            }
            if !wait(Some(Instant::now() + UNWIND_GRACE)) {
                // Threads that will not unwind are abandoned; fresh workers replace them.
                let mut st = inner.lock_state(py);
                for s in st.slots.iter_mut().filter(|s| s.tid.is_some()) {
                    s.abandoned = true;
                }
                st.exec.active = 0;
            }
        }
        let st = inner.lock_state(py);
        Ok(match st.exec.done.clone().unwrap_or(End::Timeout) {
            End::Finished => ("finished".into(), String::new()),
            End::Deadlock(d) => ("deadlock".into(), deadlock_text(&d)),
            End::Diverged(m) => ("diverged".into(), m),
            End::Runaway(t) => ("runaway".into(), format!("{}", t.saturating_sub(1))),
            End::Timeout => ("timeout".into(), String::new()),
        })
    }

    /// Uncaught exceptions of this execution: `[(thread, traceback)]` (threads numbered from 0).
    fn errors(&self, py: Python<'_>) -> Vec<(usize, String)> {
        self.inner.lock_state(py).exec.errors.iter().map(|(t, e)| (t.saturating_sub(1), e.clone())).collect()
    }

    /// Scheduling points reached by explored threads in this execution.
    fn user_steps(&self, py: Python<'_>) -> u64 {
        self.inner.lock_state(py).exec.user_steps
    }

    #[pyo3(signature = (failure=None))]
    fn end_execution(&self, py: Python<'_>, failure: Option<String>) {
        let mut st = self.inner.lock_state(py);
        let outcome = match failure {
            Some(m) => crate::engine::Outcome::Failure(m),
            None => crate::engine::Outcome::Ok,
        };
        st.explorer.end_execution(outcome);
    }

    fn schedule(&self, py: Python<'_>) -> String {
        self.inner.lock_state(py).explorer.schedule().to_string()
    }

    /// `(verdict, reason)`: pass / fail / inconclusive.
    fn verdict(&self, py: Python<'_>) -> (String, Option<String>) {
        match self.inner.lock_state(py).explorer.verdict() {
            Verdict::Pass => ("pass".into(), None),
            Verdict::Fail => ("fail".into(), None),
            Verdict::Inconclusive(r) => ("inconclusive".into(), Some(r.to_string())),
        }
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.lock_state(py).explorer.stats().clone();
        let d = PyDict::new(py);
        d.set_item("executions", s.executions)?;
        d.set_item("redundant", s.redundant)?;
        d.set_item("infeasible", s.infeasible)?;
        d.set_item("failures", s.failures)?;
        d.set_item("deadlocks", s.deadlocks)?;
        d.set_item("races", s.races)?;
        d.set_item("max_depth", s.max_depth)?;
        d.set_item("bounded", s.bounded)?;
        d.set_item("hit_max_executions", s.hit_max_executions)?;
        d.set_item("diverged", s.diverged)?;
        d.set_item("complete", s.complete)?;
        Ok(d)
    }

    // ------------------------------------------------------------ explanation data

    /// Steps of the last execution (explain mode): `(thread, kind, access, obj, key_id, key, file, line)`;
    /// `access` is read/write/delete/acquire/release/spawn/join/exit, `obj` the object or lock number.
    #[allow(clippy::type_complexity)]
    fn steps(
        &self,
        py: Python<'_>,
    ) -> Vec<(i64, String, String, u64, u64, Option<Py<PyAny>>, Option<Py<PyAny>>, Option<i32>)> {
        let st = self.inner.lock_state(py);
        st.exec
            .log
            .iter()
            .map(|s| {
                let (access, obj, key) = match s.op {
                    Op::Access { obj, kind, key } => (
                        match kind {
                            AccessKind::Read => "read",
                            AccessKind::Write => "write",
                            AccessKind::Delete => "delete",
                        },
                        obj,
                        key,
                    ),
                    Op::Acquire { lock } => ("acquire", lock, 0),
                    Op::Release { lock } => ("release", lock, 0),
                    Op::Spawn { child } => ("spawn", child as u64 - 1, 0),
                    Op::Join { child } => ("join", child as u64 - 1, 0),
                    Op::Exit => ("exit", 0, 0),
                };
                (
                    s.thread as i64 - 1,
                    s.kind.to_string(),
                    access.to_string(),
                    obj,
                    key,
                    s.key.as_ref().map(|k| k.clone_ref(py)),
                    Inner::file_name(py, &s.file),
                    s.line,
                )
            })
            .collect()
    }

    /// Races of the last execution: pairs of step indexes.
    fn races(&self, py: Python<'_>) -> Vec<(usize, usize)> {
        self.inner.lock_state(py).explorer.races().iter().map(|r| (r.first, r.second)).collect()
    }

    /// Whether step `a` happens before step `b` in the last execution.
    fn happens_before(&self, py: Python<'_>, a: usize, b: usize) -> bool {
        let st = self.inner.lock_state(py);
        a < b && b < st.explorer.events().len() && st.explorer.happens_before(a, b)
    }

    /// The object numbered `n` in the last execution.
    fn object(&self, py: Python<'_>, n: u64) -> Option<Py<PyAny>> {
        let st = self.inner.lock_state(py);
        n.checked_sub(1).and_then(|i| st.exec.refs.get(i as usize)).map(|o| o.clone_ref(py))
    }

    fn lock_name(&self, py: Python<'_>, n: u64) -> Option<String> {
        self.inner.lock_state(py).exec.lock_names.get(&n).cloned()
    }

    /// Threads left waiting when the last execution deadlocked:
    /// `(thread, waits_for, lock_or_child, holder, file, line)`.
    #[allow(clippy::type_complexity)]
    fn deadlock_waiters(&self, py: Python<'_>) -> Vec<(i64, String, u64, Option<i64>, Option<Py<PyAny>>, Option<i32>)> {
        let st = self.inner.lock_state(py);
        let Some(End::Deadlock(d)) = st.exec.done.clone() else {
            return Vec::new();
        };
        d.waiting
            .iter()
            .map(|w| {
                let (what, n, holder) = match (&w.reason, w.op) {
                    (WaitReason::Lock { lock, owner }, _) => ("lock", *lock, Some(*owner as i64 - 1)),
                    (WaitReason::Join { child }, _) => ("join", *child as u64, None),
                    (WaitReason::Blocked, Op::Acquire { lock }) => ("condition", lock, None),
                    (WaitReason::Blocked, Op::Access { obj, .. }) => {
                        ("lock", obj, st.exec.owners.get(&obj).map(|&o| o as i64 - 1))
                    }
                    (WaitReason::Blocked, _) => ("blocked", 0, None),
                };
                let info = st.exec.threads.get(w.thread).and_then(|t| t.info.as_ref());
                (
                    w.thread as i64 - 1,
                    what.to_string(),
                    n,
                    holder,
                    info.and_then(|i| Inner::file_name(py, &i.file)),
                    info.and_then(|i| i.line),
                )
            })
            .collect()
    }

    // ------------------------------------------------------------ cooperative primitives

    /// The explored thread running here (numbered from 0), or None outside explored threads.
    fn current(&self, py: Python<'_>) -> Option<usize> {
        let t = self.inner.current()?;
        let st = self.inner.lock_state(py);
        (!st.exec.aborting).then(|| t - 1)
    }

    /// Engine-thread id of the current thread (internal numbering, for notify/join).
    fn current_id(&self) -> Option<usize> {
        self.inner.current()
    }

    /// Acquire of a cooperative lock. `blocking=False`: fails at once if held; `timed`: may
    /// time out when nothing else can run. Returns whether the lock was taken.
    #[pyo3(signature = (lock, blocking=true, timed=false, site=None))]
    fn lock_acquire(
        &self,
        py: Python<'_>,
        lock: &Bound<'_, PyAny>,
        blocking: bool,
        timed: bool,
        site: Option<(Py<PyAny>, i32)>,
    ) -> PyResult<bool> {
        let inner = &self.inner;
        let Some(tid) = inner.current() else {
            return Err(PyRuntimeError::new_err("not an explored thread"));
        };
        let site_copy = |py: Python<'_>| site.as_ref().map(|(f, l)| (f.clone_ref(py), *l));
        let mut st = inner.lock_state(py);
        let n = Inner::number(&mut st, lock);
        inner.name_lock(py, &mut st, tid, n);
        if blocking && !timed {
            let info = site_info(py, tid, Op::Acquire { lock: n }, "acquire", site_copy(py), None);
            inner.step(py, st, tid, Op::Acquire { lock: n }, info).map_err(|_| aborted(py, inner))?;
            return Ok(true);
        }
        // A try looks at the lock: the same op whatever the lock's state (a thread's next op
        // must depend on its own past only), the outcome decided when it is performed.
        let try_op = Op::Access { obj: n, key: WHOLE, kind: AccessKind::Write };
        let mut polling = false;
        loop {
            if polling {
                let th = &mut st.exec.threads[tid];
                th.blocked = true;
                th.timed = true;
                th.polling = Some(n);
            }
            let info = site_info(py, tid, try_op, "try_acquire", site_copy(py), None);
            inner.step(py, st, tid, try_op, info).map_err(|_| aborted(py, inner))?;
            st = inner.lock_state(py);
            let th = &mut st.exec.threads[tid];
            let timed_out = std::mem::take(&mut th.timed_out);
            th.timed = false;
            if !st.exec.owners.contains_key(&n) {
                let info = site_info(py, tid, Op::Acquire { lock: n }, "acquire", site_copy(py), None);
                inner.step(py, st, tid, Op::Acquire { lock: n }, info).map_err(|_| aborted(py, inner))?;
                return Ok(true);
            }
            if !blocking || timed_out {
                return Ok(false);
            }
            polling = true;
        }
    }

    #[pyo3(signature = (lock, site=None))]
    fn lock_release(&self, py: Python<'_>, lock: &Bound<'_, PyAny>, site: Option<(Py<PyAny>, i32)>) -> PyResult<()> {
        let inner = &self.inner;
        let Some(tid) = inner.current() else {
            return Err(PyRuntimeError::new_err("not an explored thread"));
        };
        let mut st = inner.lock_state(py);
        let n = Inner::number(&mut st, lock);
        let info = site_info(py, tid, Op::Release { lock: n }, "release", site, None);
        inner.step(py, st, tid, Op::Release { lock: n }, info).map_err(|_| aborted(py, inner))
    }

    /// Second half of a condition wait: re-acquire `lock` once notified (or timed out).
    /// Returns False on timeout.
    #[pyo3(signature = (lock, timed=false, site=None))]
    fn cond_wait(
        &self,
        py: Python<'_>,
        lock: &Bound<'_, PyAny>,
        timed: bool,
        site: Option<(Py<PyAny>, i32)>,
    ) -> PyResult<bool> {
        let inner = &self.inner;
        let Some(tid) = inner.current() else {
            return Err(PyRuntimeError::new_err("not an explored thread"));
        };
        let mut st = inner.lock_state(py);
        let n = Inner::number(&mut st, lock);
        let th = Inner::thread_mut(&mut st, tid);
        th.timed_out = false;
        if std::mem::take(&mut th.prenotified) {
            th.blocked = false;
        } else {
            th.blocked = true;
            th.timed = timed;
        }
        let info = site_info(py, tid, Op::Acquire { lock: n }, "wait", site, None);
        inner.step(py, st, tid, Op::Acquire { lock: n }, info).map_err(|_| aborted(py, inner))?;
        let mut st = inner.lock_state(py);
        let th = &mut st.exec.threads[tid];
        th.timed = false;
        Ok(!std::mem::take(&mut th.timed_out))
    }

    /// Wakes explored thread `thread` (engine id) from its condition wait.
    fn notify(&self, py: Python<'_>, thread: usize) {
        let mut st = self.inner.lock_state(py);
        if thread >= st.exec.threads.len() {
            return;
        }
        if st.exec.threads[thread].arrived && st.exec.threads[thread].blocked {
            Inner::unblock(&mut st, thread);
        } else {
            st.exec.threads[thread].prenotified = true;
        }
    }

    /// A scheduling point that touches nothing (`time.sleep`).
    #[pyo3(signature = (site=None))]
    fn yield_point(&self, py: Python<'_>, site: Option<(Py<PyAny>, i32)>) -> PyResult<()> {
        let inner = &self.inner;
        let Some(tid) = inner.current() else {
            return Ok(());
        };
        let st = inner.lock_state(py);
        // A read of a location no one writes: a place to switch, never a race.
        let op = Op::Access { obj: 0, key: tid as u64, kind: AccessKind::Read };
        let info = site_info(py, tid, op, "sleep", site, None);
        inner.step(py, st, tid, op, info).map_err(|_| aborted(py, inner))
    }

    /// Starts `task` as a new explored thread; returns its engine id.
    #[pyo3(signature = (task, site=None))]
    fn spawn(&self, py: Python<'_>, task: Py<PyAny>, site: Option<(Py<PyAny>, i32)>) -> PyResult<usize> {
        let inner = &self.inner;
        let Some(tid) = inner.current() else {
            return Err(PyRuntimeError::new_err("not an explored thread"));
        };
        let mut st = inner.lock_state(py);
        let child = st.explorer.child_id(tid);
        Inner::thread_mut(&mut st, child).task = Some(task);
        let info = site_info(py, tid, Op::Spawn { child }, "start", site, None);
        inner.step(py, st, tid, Op::Spawn { child }, info).map_err(|_| aborted(py, inner))?;
        Ok(child)
    }

    #[pyo3(signature = (child, site=None))]
    fn join(&self, py: Python<'_>, child: usize, site: Option<(Py<PyAny>, i32)>) -> PyResult<()> {
        let inner = &self.inner;
        let Some(tid) = inner.current() else {
            return Err(PyRuntimeError::new_err("not an explored thread"));
        };
        let st = inner.lock_state(py);
        let info = site_info(py, tid, Op::Join { child }, "join", site, None);
        inner.step(py, st, tid, Op::Join { child }, info).map_err(|_| aborted(py, inner))
    }

    /// Whether explored thread `child` (engine id) has started and not exited.
    fn is_alive(&self, py: Python<'_>, child: usize) -> bool {
        let st = self.inner.lock_state(py);
        st.exec.threads.get(child).is_some_and(|t| t.live)
    }

    /// Whether `lock` (cooperative) is held in the model, and by the current thread.
    fn lock_state(&self, py: Python<'_>, lock: &Bound<'_, PyAny>) -> (bool, bool) {
        let st = self.inner.lock_state(py);
        let n = st.exec.objects.get(&(lock.as_ptr() as usize)).copied();
        match n.and_then(|n| st.exec.owners.get(&n)) {
            Some(&o) => (true, Some(o) == self.inner.current()),
            None => (false, false),
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<DporRuntime>()?;
    Ok(())
}
