//! The handoff: one turn, parked threads, and the engine driven by whoever reaches a
//! scheduling point (see the module docs of `runtime`).

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule, PyString, PyWeakrefMethods, PyWeakrefReference};

use crate::engine::{
    counted, swapped, Access, AccessKind, Choice, Deadlock, Explorer, KeyNames, Op, Rename, ThreadId, NO_ITEM, SIZE,
    WHOLE,
};

/// Key namespaces: names, subscript values and subscript identities never collide.
use super::translate::*;
use super::*;

/// The engine's virtual root thread.
pub(super) const ROOT: ThreadId = 0;
/// How long the controller waits for aborted threads to unwind before giving up on them.
pub(super) const UNWIND_GRACE: Duration = Duration::from_secs(3);
/// How often the exploring thread, waiting for an execution to end, runs the signal handlers.
pub(super) const SIGNAL_CHECKS: Duration = Duration::from_millis(100);

pub(super) struct Aborted;

thread_local! {
    /// (runtime, engine thread, execution) of the explored thread running on this OS thread.
    pub(super) static CURRENT: Cell<Option<(usize, ThreadId, u64)>> = const { Cell::new(None) };
    /// This OS thread's wake-up word (worker or controller).
    static PARKER: Arc<Parker> = Arc::new(Parker {
        seq: AtomicU64::new(0),
        thread: std::thread::current(),
    });
}

/// Wakes one thread without a lock: the waker bumps `seq` after changing the state (under the
/// state mutex, which it has released by then); the waiter read `seq` before looking at the
/// state, so a wake between its look and its sleep is never lost.
pub(super) struct Parker {
    pub(super) seq: AtomicU64,
    pub(super) thread: std::thread::Thread,
}

impl Parker {
    pub(super) fn mine() -> Arc<Parker> {
        PARKER.with(Arc::clone)
    }

    pub(super) fn wake(&self) {
        self.seq.fetch_add(1, Ordering::Release);
        self.thread.unpark();
    }

    /// Waits until `seq` differs from `seen` (or until `deadline`; returns false then). No
    /// spinning first: measured on two shared cores, a spinning waiter slowed handoffs tenfold.
    pub(super) fn wait_change(&self, seen: u64, deadline: Option<Instant>) -> bool {
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
pub(super) struct Guard<'a>(Option<MutexGuard<'a, State>>);

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
    pub(super) fn unlock(mut self) -> Vec<Arc<Parker>> {
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

pub(super) fn wake_all(wakes: Vec<Arc<Parker>>) {
    for w in wakes {
        w.wake();
    }
}

/// What a performed step was, kept for explanations (explain mode only) and deadlock reports.
pub(super) struct StepInfo {
    pub(super) thread: ThreadId,
    pub(super) op: Op,
    /// Event kind (`attr_load`, `acquire`, …).
    pub(super) kind: &'static str,
    /// Attribute / key / method shown to the user.
    pub(super) key: Option<Py<PyAny>>,
    pub(super) file: Option<Py<PyAny>>,
    pub(super) line: Option<i32>,
    /// Where the step's frame was called from (explain mode: `report_py::caller_site`).
    pub(super) caller: Option<(Py<PyAny>, i32)>,
}

#[derive(Default)]
pub(super) struct ThreadRt {
    pub(super) live: bool,
    pub(super) exited: bool,
    pub(super) arrived: bool,
    pub(super) pending: Option<Op>,
    /// Blocked on a wait the engine does not model (condition, lock poll).
    pub(super) blocked: bool,
    /// A timed wait's deadline, on the execution's clock (`Exec::clock`): it may time out when
    /// nothing else can run, with every wait of that deadline (`Inner::fire_timeouts`).
    pub(super) deadline: Option<f64>,
    pub(super) timed_out: bool,
    /// A notify that arrived before the thread parked in its condition wait, or after the wait
    /// timed out with others and before it ran (`Inner::fire_timeouts`).
    pub(super) prenotified: bool,
    /// Its last release found the lock free (`release unlocked lock`): whether the lock is
    /// held is decided when the release runs, not when the thread asked for it.
    pub(super) released_free: bool,
    /// Lock this thread polls in a timed acquire (woken by its release).
    pub(super) polling: Option<u64>,
    /// Thread this thread waits for in a timed join (woken by its exit).
    pub(super) joining: Option<ThreadId>,
    pub(super) steps: u64,
    pub(super) slot: Option<usize>,
    pub(super) task: Option<Py<PyAny>>,
    /// Real `_thread` locks this thread holds: (lock number, lock, is RLock).
    pub(super) held_real: Vec<(u64, Py<PyAny>, bool)>,
    pub(super) info: Option<StepInfo>,
    /// Last attribute/global loads (object, name), newest last: name the lock a `with` or an
    /// `acquire` then uses (`s.lock.acquire()` loads `lock`, then `acquire`).
    pub(super) last_loads: Vec<(Py<PyAny>, Py<PyAny>)>,
    /// The container a holding call (`lst.sort(key=f)`) has taken (`methods::HOLDING_METHODS`)
    /// and the method, until the thread's first report inside the call or the call's return.
    pub(super) holding: Option<(u64, Py<PyAny>)>,
    /// A consuming call the thread has reported and may be inside (`methods::CONSUMING_METHODS`).
    pub(super) consuming: Option<Consuming>,
    /// A `defaultdict`'s load of a missing key whose factory is rewritten code (dict, key, the
    /// loading frame, the key's value): its insertion is in progress until the thread reports
    /// back in that frame or outside it (`Inner::factory_step`).
    pub(super) pending_insert: Option<(u64, u64, Py<PyAny>, Py<PyAny>)>,
    /// The pending access's kind depends on whether a dict holds its key (`Inner::rekind`).
    pub(super) keyed: Option<Keyed>,
    /// The next step is a later one of the report being stepped (`Explorer::mid_report`).
    pub(super) mid_report: bool,
    /// Steps of the report being stepped wait behind the pending one, their objects already
    /// numbered (a trade of numbers meanwhile reaches them through `Exec::swaps`).
    pub(super) more_steps: bool,
    /// The accesses of the report's steps taken so far: its last step makes them all again
    /// (`Op::Accesses`), since the operation makes them then.
    pub(super) chain: Vec<Access>,
    /// The containers the call just reported works on while it runs Python code
    /// (`Inner::callback_watch`), until the call is watched.
    pub(super) iterating: Option<CallbackWatch>,
    /// The pending step is a modelled queue's put or get of the item a counter numbers
    /// (`Inner::recheck_queue_steps`).
    pub(super) counted: Option<Counted>,
    /// The pending queue step waits while this returns False (a get finds no item, a join
    /// unfinished tasks), asked again whenever another thread has stepped.
    pub(super) ready: Option<Py<PyAny>>,
}

/// A queue step's item: the next one to put or to take, numbered by `counter` of `model` when
/// the step runs (another thread's put or get since the thread arrived moves it on).
pub(super) struct Counted {
    pub(super) model: Py<PyAny>,
    pub(super) counter: String,
    pub(super) queue: u64,
    /// The step's other accesses (the item's write comes after them).
    pub(super) base: Vec<Access>,
    pub(super) number: u64,
    /// Also writes the item this many places before (a bounded queue's put: the get of that
    /// item made the room it takes).
    pub(super) behind: Option<u64>,
}

/// A call that may run the program's Python code while it works on containers (`max(d,
/// key=f)`, `lst.remove(x)` with a Python `__eq__`, `heappush(h, x)` with a Python `__lt__`):
/// each such function it calls is a step of its access to them (`iter_point`).
pub(super) struct CallbackWatch {
    pub(super) containers: Vec<Py<PyAny>>,
    /// Per container: the call walks that dict's keys alone (`max(d, key=f)`): a step reads
    /// which keys it holds, so stores to keys already there commute with it.
    pub(super) keys_only: Vec<bool>,
    /// The call writes them (`remove`, `heappush`) rather than reads them.
    pub(super) write: bool,
    /// How the watch knows the call has returned: the callable, `(receiver, method name)`, or
    /// None for an operator (`x in lst`).
    pub(super) callee: Option<Py<PyAny>>,
}

/// Which step of a report a step is: the report's accesses are made by the operation right
/// after its last step, which makes them all (`Op::Accesses`); the steps before announce theirs
/// (`Op::Announce`).
#[derive(Clone, Copy)]
pub(super) enum Part<'a> {
    /// The report's only step, or one whose access is made when it is taken.
    Whole,
    Announced,
    /// The last step, with the accesses of the steps before (named as performed).
    Last(&'a [Access]),
}

/// An access that inserts or writes (`d[k] = v`), inserts or reads (`d.setdefault(k, v)`, a
/// `defaultdict`'s load) as its dict holds the key or not (`Inner::by_presence`).
pub(super) struct Keyed {
    pub(super) dict: Py<PyDict>,
    pub(super) key: Py<PyAny>,
    pub(super) present: AccessKind,
    pub(super) absent: AccessKind,
}

/// A call that fills a container from an iterable (`lst.extend(gen)`, `d.update(pairs)`,
/// `lst += it`): while Python code runs inside it (the generator's body), the container is part
/// way through, so each report from there is also a write of it.
pub(super) struct Consuming {
    pub(super) container: u64,
    /// The frame that made the call.
    pub(super) caller: Py<PyAny>,
    /// The method or operator, for the explanation.
    pub(super) method: Py<PyAny>,
}

#[derive(Clone, Debug)]
pub(super) enum End {
    Finished,
    Deadlock(Deadlock),
    Diverged(String),
    Runaway(ThreadId),
    Timeout,
}

#[derive(Default)]
pub(super) struct Exec {
    pub(super) id: u64,
    pub(super) threads: Vec<ThreadRt>,
    /// The rule by which the access `translate` just made has its kind (`Inner::by_presence`).
    pub(super) keyed: Option<Keyed>,
    pub(super) objects: HashMap<usize, u64>,
    /// The objects named so far, in the order they were named (and the products that share a
    /// name, in places no name has): an object's place here, plus one, is its number as shown.
    pub(super) refs: Vec<Option<Held>>,
    /// Each name's place in `refs` (`Inner::number`).
    pub(super) slots: HashMap<u64, usize>,
    /// Names given to cooperative locks when they were made (`reserve_name`), by address,
    /// taken when a step first uses the lock; and how many each maker has made.
    pub(super) reserved: HashMap<usize, u64>,
    pub(super) made: HashMap<u64, u64>,
    /// Numbers renamed to the plan's (`Explorer::choose_with`): ops a thread computed before
    /// the rename are mapped through it.
    pub(super) renamed: HashMap<u64, u64>,
    /// Every trade of numbers in this execution (`swap_numbers`), in order: a report's steps
    /// made before one (waiting behind its pending step) are mapped through those after them.
    pub(super) swaps: Vec<(u64, u64)>,
    /// Value keys renamed to the plan's (`Explorer::choose_with`).
    pub(super) rekeyed: KeyNames,
    pub(super) owners: HashMap<u64, ThreadId>,
    /// Real locks taken before the execution (`lock_number`): whichever thread's next report
    /// (or exit) finds one released has released it.
    pub(super) held_before_real: Vec<(u64, Py<PyAny>)>,
    /// Real locks the runtime holds for a thread that has released them but not reported
    /// since, so that another thread's try fails as the model says (`Inner::real_try_acquire`);
    /// let go when the holder's release is stepped.
    pub(super) phantoms: Vec<(u64, Py<PyAny>)>,
    pub(super) turn: Option<ThreadId>,
    /// The test's threads, not yet started, and whether each is a background thread.
    pub(super) root_tasks: VecDeque<(Py<PyAny>, bool)>,
    pub(super) done: Option<End>,
    pub(super) aborting: bool,
    /// Worker threads currently inside a task of this execution.
    pub(super) active: usize,
    /// Steps reported by explored threads (reports and cooperative primitives).
    pub(super) user_steps: u64,
    /// Reports heard from rewritten code run by explored threads.
    pub(super) reports: u64,
    pub(super) errors: Vec<(ThreadId, String)>,
    pub(super) log: Vec<StepInfo>,
    pub(super) lock_names: HashMap<u64, String>,
    /// Frames (by number) of the generators in the test's state, whose resumes are modelled
    /// (`translate::GEN_RUNNING`). Numbered before any thread runs, so their numbers are the
    /// same in every execution; a generator made by a thread is not modelled.
    pub(super) gen_frames: std::collections::HashSet<u64>,
    /// The watched generators (by address, kept in `kept`) and their frames' numbers: a finished
    /// generator has no frame, and resuming it (`StopIteration`) is still ordered against the
    /// resumes that finished it.
    pub(super) generators: HashMap<usize, u64>,
    /// Instances' attribute dicts (`p.__dict__`, `vars(p)`) taken for their owner: their keys
    /// are its attributes' names (`attribute_dict`).
    pub(super) attribute_dicts: std::collections::HashSet<usize>,
    /// Objects kept alive while their address names something (`attribute_dicts`), outside
    /// `refs`: they take no number, so later objects' numbers do not depend on them.
    pub(super) kept: Vec<Py<PyAny>>,
    /// The first number given during the run, once the threads' state is numbered
    /// (`number_state`): only objects numbered from here on may trade numbers.
    pub(super) first_fresh: Option<u64>,
    /// Objects in `refs` named by their path (`state_name`).
    pub(super) state_named: usize,
}

impl Exec {
    /// Drops the execution's objects, first giving back the real locks held for its threads
    /// (`phantoms`: an execution stopped before their holders reported again).
    pub(super) fn let_go(mut self, py: Python<'_>) {
        for (_, lock) in std::mem::take(&mut self.phantoms) {
            let _ = lock.bind(py).call_method0(pyo3::intern!(py, "release"));
        }
    }
}

/// Names of what the threads find when they begin (`number_state`): `STATE_NAMES` and a hash
/// of the object's path from the state or a thread function, the same in every execution.
const STATE_NAMES: u64 = 1 << 44;

pub(super) fn state_name(path: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    // (SipHash with fixed keys: the same path has the same name in every execution.)
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    STATE_NAMES | (h.finish() & (STATE_NAMES - 1))
}

pub(super) fn is_state_name(n: u64) -> bool {
    n & !(STATE_NAMES - 1) == STATE_NAMES
}

/// Names of cooperative locks made during an execution: `MADE_NAMES | maker << 24 | k` for the
/// maker's `k`th (`SETUP_MAKER` for `setup()`, run outside the explored threads). A lock that
/// several threads use is named by the thread that made it, not by whichever used it first.
const MADE_NAMES: u64 = 1 << 45;
pub(super) const SETUP_MAKER: u64 = 0xF_FFFF;

/// Names of files and directories (`_dpor.FileResource`): `FILE_NAMES | k` for the process's
/// `k`th, the same in every execution, whatever order the threads first use them in.
const FILE_NAMES: u64 = 1 << 46;

pub(super) fn file_name(k: u64) -> u64 {
    FILE_NAMES | (k & (FILE_NAMES - 1))
}

fn is_file_name(n: u64) -> bool {
    n & FILE_NAMES != 0
}

/// Whether `from` may take the plan's name `to` (both first used at this step): a file (a
/// temporary file named by a uuid is another file in each execution) takes only a file's.
fn may_take_name(from: u64, to: u64) -> bool {
    is_file_name(from) == is_file_name(to) && !is_state_name(from) && !is_state_name(to)
}

/// The name of the `k`th lock `maker` made in this execution.
pub(super) fn made_name(maker: u64, k: u64) -> u64 {
    MADE_NAMES | maker << 24 | k
}

/// `(maker, k)` of a name `made_name` gave, or None for a name by first use.
pub(super) fn made_by(n: u64) -> Option<(u64, u64)> {
    (MADE_NAMES..MADE_NAMES << 1).contains(&n).then(|| ((n - MADE_NAMES) >> 24, n & 0xFF_FFFF))
}

/// How `Exec::refs` holds a numbered object: weakly if it can be (an instance of a class of
/// Python code), so that it dies when the program lets go of it, as it would without frontrun
/// (its `__del__` runs, its weak references and `WeakValueDictionary` entries go); else
/// strongly, so that its address names no other object while the execution runs.
pub(super) enum Held {
    Strong(Py<PyAny>),
    Weak(Py<PyWeakrefReference>),
}

impl Held {
    pub(super) fn of(obj: &Bound<'_, PyAny>) -> Held {
        if Inner::is_heap_type(obj.get_type().as_any()) {
            if let Ok(weak) = PyWeakrefReference::new(obj) {
                return Held::Weak(weak.unbind());
            }
        }
        Held::Strong(obj.clone().unbind())
    }

    /// The object, unless it has died.
    pub(super) fn get<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        match self {
            Held::Strong(o) => Some(o.bind(py).clone()),
            Held::Weak(w) => w.bind(py).upgrade(),
        }
    }

    fn is_dead(&self, py: Python<'_>) -> bool {
        matches!(self, Held::Weak(w) if w.bind(py).upgrade().is_none())
    }
}

impl Exec {
    /// The object named `n` in this execution, unless it has died.
    pub(super) fn object<'py>(&self, py: Python<'py>, n: u64) -> Option<Bound<'py, PyAny>> {
        self.slots.get(&n).and_then(|&i| self.refs[i].as_ref()).and_then(|h| h.get(py))
    }

    /// The number of the object at address `ptr`, unless the object numbered there has died
    /// (the address may be another object's now).
    pub(super) fn number_at(&self, py: Python<'_>, ptr: usize) -> Option<u64> {
        let n = *self.objects.get(&ptr)?;
        let dead = self.slots.get(&n).and_then(|&i| self.refs[i].as_ref()).is_some_and(|h| h.is_dead(py));
        (!dead).then_some(n)
    }

    /// The name the next object named by its first use takes: its place among those, so that
    /// the objects named by path (`state_name`) before it, however many, do not move it.
    pub(super) fn next_plain_name(&self) -> u64 {
        (self.refs.len() - self.state_named) as u64 + 1
    }

    /// Whether this execution has named an object `n` (or a lock it made: `reserved`).
    pub(super) fn is_named(&self, n: u64) -> bool {
        self.slots.contains_key(&n) || self.reserved.values().any(|&r| r == n)
    }

    /// Object `n` as messages show it: `#` and its place (the order of first use), or for a
    /// lock this execution has not used, which lock of which maker it is.
    pub(super) fn shown(&self, n: u64) -> String {
        match (self.slots.get(&n), made_by(n)) {
            (Some(&i), _) => format!("#{}", i + 1),
            (None, Some((maker, k))) => {
                let by = if maker == SETUP_MAKER {
                    "setup()".to_string()
                } else {
                    format!("thread {}", maker.saturating_sub(1))
                };
                format!("#{n} (lock {k} made by {by})")
            }
            (None, None) => format!("#{n}"),
        }
    }
}

pub(super) struct Slot {
    /// The worker's wake-up word (set by the worker when it starts).
    pub(super) parker: Option<Arc<Parker>>,
    pub(super) ident: u64,
    pub(super) tid: Option<ThreadId>,
    pub(super) abandoned: bool,
    /// Between handing out a task and its end (`finish`): the worker may be running it.
    pub(super) in_task: bool,
    /// A timeout's abort was sent to this worker while in its task: it may still be pending
    /// after the task, and must go off before the worker takes another (workers are reused).
    pub(super) abort_sent: bool,
}

pub(super) struct State {
    pub(super) explorer: Explorer,
    pub(super) exec: Exec,
    pub(super) slots: Vec<Slot>,
    pub(super) idle: Vec<usize>,
    pub(super) next_exec: u64,
    pub(super) shutdown: bool,
    pub(super) name_ids: HashMap<String, u64>,
    /// Names already seen, by address (strong refs in `name_refs`).
    pub(super) name_ptrs: HashMap<usize, u64>,
    pub(super) name_refs: Vec<Py<PyAny>>,
    pub(super) max_steps: u64,
    pub(super) explain: bool,
    /// `threading.local` objects explored threads have used (kept across executions).
    pub(super) seen_locals: Vec<Py<PyAny>>,
    /// Threads to wake once the state is unlocked.
    pub(super) wakes: Vec<Arc<Parker>>,
    /// The thread running the current execution (`run_execution`).
    pub(super) controller: Option<Arc<Parker>>,
}

pub(super) struct Inner {
    pub(super) state: Mutex<State>,
    pub(super) types: Types,
    /// Default and configured resource methods (`name` or `module.Class.name`).
    pub(super) resource_methods: std::sync::RwLock<Vec<String>>,
}

impl Inner {
    pub(super) fn id(&self) -> usize {
        self as *const Inner as usize
    }

    /// Locks the state without ever blocking while attached (free-threaded stop-the-world and
    /// the GIL both need that): on contention, wait detached, then try again.
    pub(super) fn lock_state(&self, py: Python<'_>) -> Guard<'_> {
        loop {
            match self.state.try_lock() {
                Ok(g) => return Guard(Some(g)),
                Err(TryLockError::Poisoned(p)) => return Guard(Some(p.into_inner())),
                Err(TryLockError::WouldBlock) => py.detach(|| drop(self.state.lock())),
            }
        }
    }

    /// Locks the state from a detached thread.
    pub(super) fn lock_detached(&self) -> Guard<'_> {
        Guard(Some(self.state.lock().unwrap_or_else(|e| e.into_inner())))
    }

    /// Detached: waits until `check` (run under the lock) says what to return. The waiter's
    /// `seq` is read before each look at the state, so no wake is lost in between.
    pub(super) fn wait_for<R>(
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

    pub(super) fn set_turn(&self, st: &mut State, turn: Option<ThreadId>) {
        st.exec.turn = turn;
    }

    pub(super) fn current(&self) -> Option<ThreadId> {
        CURRENT.with(|c| c.get()).filter(|(rt, _, _)| *rt == self.id()).map(|(_, t, _)| t)
    }

    /// The calling thread's engine id; an error for a thread the exploration does not run.
    pub(super) fn explored_thread(&self) -> PyResult<ThreadId> {
        self.current().ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("not an explored thread"))
    }

    /// The execution the task running on this OS thread belongs to.
    pub(super) fn current_exec(&self) -> Option<u64> {
        CURRENT.with(|c| c.get()).filter(|(rt, _, _)| *rt == self.id()).map(|(_, _, e)| e)
    }

    /// Book-keeping of a task that returned; gives back the wakes to deliver once detached.
    pub(super) fn finish(&self, py: Python<'_>, slot: usize, error: Option<String>) -> Vec<Arc<Parker>> {
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
            if st.exec.aborting || !Self::may_release_real(&st, tid) {
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
            Self::release_phantom(py, &mut st, lock);
        }
        CURRENT.with(|c| c.set(None));
        if !st.exec.aborting && st.exec.done.is_none() {
            if st.exec.turn == Some(tid) {
                self.set_turn(&mut st, None);
            }
            Self::arrive(&mut st, tid, Op::Exit, None);
            self.drive(py, &mut st);
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

    pub(super) fn thread_mut(st: &mut State, t: ThreadId) -> &mut ThreadRt {
        if st.exec.threads.len() <= t {
            st.exec.threads.resize_with(t + 1, ThreadRt::default);
        }
        &mut st.exec.threads[t]
    }

    pub(super) fn arrive(st: &mut State, t: ThreadId, op: Op, info: Option<StepInfo>) {
        st.explorer.arrive(t, op);
        let th = Self::thread_mut(st, t);
        th.arrived = true;
        th.pending = Some(op);
        th.info = info;
        if th.blocked {
            st.explorer.set_blocked(t, true);
        }
    }

    pub(super) fn root_arrive(st: &mut State) {
        let op = match st.exec.root_tasks.pop_front() {
            Some((task, background)) => {
                let child = st.explorer.child_id(ROOT);
                if background {
                    st.explorer.set_background(child);
                }
                Self::thread_mut(st, child).task = Some(task);
                Op::Spawn { child }
            }
            None => Op::Exit,
        };
        Self::arrive(st, ROOT, op, None);
    }

    /// Worker `slot` (no longer idle) will run thread `t`'s task.
    pub(super) fn assign_worker(st: &mut State, slot: usize, t: ThreadId) {
        st.slots[slot].tid = Some(t);
        st.exec.threads[t].slot = Some(slot);
    }

    pub(super) fn notify_slot(st: &mut State, t: ThreadId) {
        if let Some(s) = st.exec.threads.get(t).and_then(|th| th.slot) {
            Self::wake_slot(st, s);
        }
    }

    pub(super) fn wake_slot(st: &mut State, s: usize) {
        if let Some(p) = st.slots[s].parker.clone() {
            st.wakes.push(p);
        }
    }

    pub(super) fn wake_controller(st: &mut State) {
        if let Some(p) = st.controller.clone() {
            st.wakes.push(p);
        }
    }

    /// Between executions: a worker handed a thread the last execution ended before it started
    /// is idle again (else it could take the same-numbered thread of the next execution while
    /// another worker is assigned to it, and the wakes would go to the wrong one).
    pub(super) fn release_unstarted(st: &mut State) {
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

    pub(super) fn wake_all_slots(st: &mut State) {
        for s in 0..st.slots.len() {
            Self::wake_slot(st, s);
        }
    }

    pub(super) fn end(&self, st: &mut State, end: End) {
        if st.exec.done.is_some() {
            return;
        }
        // A finished execution may leave background threads waiting: they are unwound too.
        let abort = !matches!(end, End::Finished) || st.exec.threads.iter().any(|t| t.live);
        st.exec.done = Some(end);
        self.set_turn(st, None);
        if abort {
            st.exec.aborting = true;
            Self::wake_all_slots(st);
        }
        Self::wake_controller(st);
    }

    /// Whether `t` (live, arrived) could run, by the runtime's mirror of the engine's model.
    pub(super) fn enabled(st: &State, t: ThreadId) -> bool {
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

    /// When nothing can run, the timed waits with the earliest deadline time out, all of them:
    /// waits begun at one reading of the modelled clock for one time end in an order the search
    /// must choose (in a real run the one begun a microsecond sooner ends sooner), and each one's
    /// step looks again when it runs (a get takes an item put since, a lock or join try succeeds
    /// if it can now, a condition wait notified since returns True), so the search orders them
    /// as it orders any steps. Not when only background threads are left: they are waiting, and
    /// the execution is over (a server polling for requests no one will send).
    pub(super) fn fire_timeouts(st: &mut State) {
        let live: Vec<ThreadId> = (0..st.exec.threads.len()).filter(|&t| st.exec.threads[t].live).collect();
        if live.iter().all(|&t| st.explorer.is_background(t)) {
            return;
        }
        let waits: Vec<(f64, ThreadId)> = live
            .iter()
            .filter(|&&t| st.exec.threads[t].blocked)
            .filter_map(|&t| Some((st.exec.threads[t].deadline?, t)))
            .collect();
        let Some(deadline) = waits.iter().map(|&(at, _)| at).min_by(f64::total_cmp) else {
            return;
        };
        // A thread whose clock is past the deadline (asleep until after it, say) cannot run
        // before it: the waits time out first.
        if live.iter().any(|&t| Self::enabled(st, t) && st.explorer.time(t) <= deadline) {
            return;
        }
        for &(at, t) in &waits {
            if at == deadline {
                st.explorer.time_out(t, deadline);
                let th = &mut st.exec.threads[t];
                th.blocked = false;
                th.timed_out = true;
                th.polling = None;
                th.joining = None;
                st.explorer.set_blocked(t, false);
            }
        }
    }

    /// The deadline of a timed wait of `timeout` seconds that `thread` begins now, on its
    /// modelled clock (`engine`'s `ThreadState::time`): the same in every execution.
    pub(super) fn deadline_in(st: &State, thread: ThreadId, timeout: f64) -> f64 {
        st.explorer.time(thread) + timeout
    }

    pub(super) fn unblock(st: &mut State, t: ThreadId) {
        let th = &mut st.exec.threads[t];
        th.blocked = false;
        th.polling = None;
        th.joining = None;
        if th.arrived {
            st.explorer.set_blocked(t, false);
        }
    }

    /// Keys `from` and `to` of object `obj` trade names for the rest of this execution (the
    /// plan's names).
    fn rekey(st: &mut State, obj: u64, from: u64, to: u64) {
        let exec = &mut st.exec;
        exec.rekeyed.swap(obj, from, to);
        for th in &mut exec.threads {
            th.pending = th.pending.map(|op| op.rekeyed(obj, from, to));
            if let Some(info) = th.info.as_mut() {
                info.op = info.op.rekeyed(obj, from, to);
            }
        }
    }

    /// Object `from`, first used in this execution, is `to` from now on (the plan's name).
    fn renumber(st: &mut State, from: u64, to: u64) {
        let exec = &mut st.exec;
        let Some(place) = exec.slots.remove(&from) else { return };
        exec.slots.insert(to, place);
        // The names this execution gives next must not be `to` again.
        if let Some((maker, k)) = made_by(to) {
            let made = exec.made.entry(maker).or_insert(0);
            *made = (*made).max(k);
        } else if !is_file_name(to) && !is_state_name(to) && exec.next_plain_name() <= to {
            let places = to as usize + exec.state_named;
            exec.refs.resize_with(places, || None);
        }
        for n in exec.objects.values_mut().filter(|n| **n == from) {
            *n = to;
        }
        for th in &mut exec.threads {
            th.pending = th.pending.map(|op| op.renamed(from, to));
            if let Some(info) = th.info.as_mut() {
                info.op = info.op.renamed(from, to);
            }
            for held in th.held_real.iter_mut().filter(|h| h.0 == from) {
                held.0 = to;
            }
        }
        if let Some(name) = exec.lock_names.remove(&from) {
            exec.lock_names.insert(to, name);
        }
        if exec.gen_frames.remove(&from) {
            exec.gen_frames.insert(to);
            exec.generators.values_mut().filter(|n| **n == from).for_each(|n| *n = to);
        }
        // `to` names this object now, not one renamed away from it earlier.
        exec.renamed.remove(&to);
        exec.renamed.insert(from, to);
    }

    /// Whether objects `a` and `b` may trade numbers: both first numbered during the run, and
    /// named nowhere but in pending ops (which `swap_numbers` renames) and a report's waiting
    /// steps (`Exec::swaps`): no lock state, no renamed key, no thread's hold, poll, insertion
    /// or queue step.
    fn can_swap(exec: &Exec, a: u64, b: u64) -> bool {
        let ours = |n: u64| n == a || n == b;
        exec.first_fresh.is_some_and(|first| a >= first && b >= first)
            && !is_state_name(a)
            && !is_state_name(b)
            && !is_file_name(a)
            && !is_file_name(b)
            && !exec.owners.contains_key(&a)
            && !exec.owners.contains_key(&b)
            && !exec.held_before_real.iter().any(|h| ours(h.0))
            && !exec.rekeyed.names_keys_of(a)
            && !exec.rekeyed.names_keys_of(b)
            && !exec.threads.iter().any(|th| {
                th.polling.is_some_and(ours)
                    || th.holding.as_ref().is_some_and(|h| ours(h.0))
                    || th.consuming.as_ref().is_some_and(|c| ours(c.container))
                    || th.pending_insert.as_ref().is_some_and(|p| ours(p.0))
                    || th.held_real.iter().any(|h| ours(h.0))
                    || th.chain.iter().any(|x| ours(x.obj))
                    || th.counted.as_ref().is_some_and(|c| ours(c.queue) || c.base.iter().any(|x| ours(x.obj)))
            })
    }

    /// Objects `a` and `b` trade numbers for the rest of this execution (the plan's names).
    fn swap_numbers(st: &mut State, a: u64, b: u64) {
        let exec = &mut st.exec;
        let (place_a, place_b) = (exec.slots[&a], exec.slots[&b]);
        exec.slots.insert(a, place_b);
        exec.slots.insert(b, place_a);
        let swap = |n: &mut u64| *n = swapped(*n, a, b);
        exec.objects.values_mut().for_each(swap);
        for th in &mut exec.threads {
            th.pending = th.pending.map(|op| op.swapped(a, b));
            if let Some(info) = th.info.as_mut() {
                info.op = info.op.swapped(a, b);
            }
        }
        let (name_a, name_b) = (exec.lock_names.remove(&a), exec.lock_names.remove(&b));
        exec.lock_names.extend(name_a.map(|n| (b, n)).into_iter().chain(name_b.map(|n| (a, n))));
        let (frame_a, frame_b) = (exec.gen_frames.remove(&a), exec.gen_frames.remove(&b));
        exec.gen_frames.extend(frame_a.then_some(b).into_iter().chain(frame_b.then_some(a)));
        exec.generators.values_mut().for_each(swap);
        // Ops named before an earlier rename now name these objects by their new numbers; an
        // op made from now on names them right already.
        exec.renamed.values_mut().for_each(swap);
        exec.renamed.remove(&a);
        exec.renamed.remove(&b);
        exec.swaps.push((a, b));
    }

    /// Book-keeping of a performed op.
    pub(super) fn perform(st: &mut State, x: ThreadId) -> Op {
        let th = &mut st.exec.threads[x];
        let op = th.pending.take().expect("chosen thread has arrived");
        th.arrived = false;
        th.keyed = None;
        for a in op.accesses().iter().copied() {
            if !th.chain.contains(&a) {
                th.chain.push(a);
            }
        }
        let mut info = th.info.take();
        if let (Op::TryAcquire { lock }, Some(info)) = (op, info.as_mut()) {
            // The log tells a try that took the lock from one that found it held.
            info.kind = if st.exec.owners.contains_key(&lock) { "try_acquire" } else { "acquire" };
        }
        if st.explain {
            if let Some(info) = info {
                st.exec.log.push(info);
            } else {
                st.exec.log.push(StepInfo { thread: x, op, kind: "", key: None, file: None, line: None, caller: None });
            }
        }
        match op {
            Op::Acquire { lock } => {
                st.exec.owners.insert(lock, x);
            }
            Op::TryAcquire { lock } => {
                st.exec.owners.entry(lock).or_insert(x);
            }
            Op::Release { lock } => {
                st.exec.threads[x].released_free = st.exec.owners.remove(&lock).is_none();
                let pollers: Vec<ThreadId> =
                    (0..st.exec.threads.len()).filter(|&t| st.exec.threads[t].polling == Some(lock)).collect();
                for t in pollers {
                    Self::unblock(st, t);
                }
            }
            Op::Spawn { child } => {
                Self::thread_mut(st, child).live = true;
                // A worker is set aside now: the caller made sure one was idle before spawning.
                // The lowest-numbered: a thread runs on the same worker in every execution, so
                // its `threading.get_ident()` (a temp file's name) is the same in each.
                if let Some(at) = (0..st.idle.len()).min_by_key(|&i| st.idle[i]) {
                    let s = st.idle.swap_remove(at);
                    Self::assign_worker(st, s, child);
                }
                Self::arrive(st, child, Op::Start, None);
            }
            Op::Exit => {
                let th = &mut st.exec.threads[x];
                th.live = false;
                th.exited = true;
                let joiners: Vec<ThreadId> =
                    (0..st.exec.threads.len()).filter(|&t| st.exec.threads[t].joining == Some(x)).collect();
                for t in joiners {
                    Self::unblock(st, t);
                }
            }
            _ => {}
        }
        op
    }

    /// Decides again the kind of each pending access that depends on whether a dict holds its
    /// key (`Inner::by_presence`): another thread's step since the thread arrived may have
    /// added or removed it, and the access is taken as it will be made.
    fn rekind(py: Python<'_>, st: &mut State) {
        for t in 0..st.exec.threads.len() {
            let th = &mut st.exec.threads[t];
            // A report's last step makes the earlier steps' accesses too; its own is `info`'s.
            let own = match th.pending {
                Some(Op::Accesses { .. }) => th.info.as_ref().map(|i| i.op),
                Some(Op::Announce { obj, key, kind }) => Some(Op::Access { obj, key, kind }),
                pending => pending,
            };
            let (Some(keyed), Some(Op::Access { obj, key, kind })) = (&th.keyed, own) else { continue };
            let holds = keyed.dict.bind(py).contains(keyed.key.bind(py)).unwrap_or(true);
            let now = if holds { keyed.present } else { keyed.absent };
            if now == kind {
                continue;
            }
            let changed = Op::Access { obj, key, kind: now };
            let op = match th.pending {
                Some(Op::Accesses { group }) => {
                    let mut list = group.accesses().to_vec();
                    if let Some(a) = list.iter_mut().rev().find(|a| a.obj == obj && a.key == key && a.kind == kind) {
                        a.kind = now;
                    }
                    Op::accesses_of(&list)
                }
                Some(Op::Announce { .. }) => Op::Announce { obj, key, kind: now },
                _ => changed,
            };
            th.pending = Some(op);
            if let Some(info) = th.info.as_mut() {
                info.op = changed;
            }
            if now != AccessKind::Insert {
                th.pending_insert = None; // a defaultdict's load that finds the key after all
            }
            st.explorer.change_pending(t, op);
        }
    }

    /// The op of a counted queue step: its accesses and the write of item `number` (and of
    /// the one `behind` before it).
    pub(super) fn counted_op(step: &Counted) -> Op {
        let mut list = step.base.clone();
        list.push(Access { obj: step.queue, key: counted(step.number), kind: AccessKind::Write });
        if let Some(b) = step.behind {
            let key = step.number.checked_sub(b).map_or(NO_ITEM, counted);
            list.push(Access { obj: step.queue, key, kind: AccessKind::Write });
        }
        Op::accesses_of(&list)
    }

    /// Numbers `step`'s item as its counter does now; whether that changed it.
    pub(super) fn renumber_item(py: Python<'_>, step: &mut Counted) -> bool {
        let model = step.model.bind(py);
        let number = model.getattr(step.counter.as_str()).and_then(|n| n.extract::<u64>()).unwrap_or(step.number);
        std::mem::replace(&mut step.number, number) != number
    }

    /// Decides again what each pending queue step does: the item a put or get makes (a put or
    /// get that ran since the thread arrived took the one it arrived for, `Counted`), and
    /// whether a step that waits can run (`ThreadRt::ready`; not once it timed out).
    fn recheck_queue_steps(py: Python<'_>, st: &mut State) {
        for t in 0..st.exec.threads.len() {
            let th = &st.exec.threads[t];
            if th.pending.is_none() || (th.counted.is_none() && th.ready.is_none()) {
                continue;
            }
            let th = &mut st.exec.threads[t];
            if let Some(counted) = th.counted.as_mut() {
                if Self::renumber_item(py, counted) {
                    let op = Self::counted_op(counted);
                    th.pending = Some(op);
                    if let Some(info) = th.info.as_mut() {
                        info.op = op;
                    }
                    st.explorer.change_pending(t, op);
                }
            }
            let th = &st.exec.threads[t];
            let Some(ready) = th.ready.as_ref().filter(|_| !th.timed_out) else { continue };
            // An error of the check lets the step run: the operation then raises it.
            let blocked = !ready.bind(py).call0().and_then(|r| r.is_truthy()).unwrap_or(true);
            if blocked != th.blocked {
                st.exec.threads[t].blocked = blocked;
                st.explorer.set_blocked(t, blocked);
            }
        }
    }

    /// Baton passing: run the engine until some explored thread holds the turn or the
    /// execution is over. Root steps and exits are performed here, inline.
    pub(super) fn drive(&self, py: Python<'_>, st: &mut State) {
        loop {
            if st.exec.done.is_some() {
                return;
            }
            if !st.explorer.is_ready() {
                if st.exec.turn.is_none() {
                    // Cannot happen: a live thread neither arrived nor running.
                    self.end(st, End::Diverged("a live thread never reached a scheduling point".into()));
                }
                return;
            }
            // (Which queue steps wait first: a timeout fires only when nothing else can run.)
            Self::recheck_queue_steps(py, st);
            Self::fire_timeouts(st);
            Self::rekind(py, st);
            let choice = {
                let exec = &st.exec;
                let free = |n: u64| !exec.is_named(n);
                st.explorer.choose_with(&|rename| match rename {
                    Rename::Object { from, to } => !free(from) && free(to) && may_take_name(from, to),
                    Rename::Objects { a, b } => !free(a) && !free(b) && Self::can_swap(&st.exec, a, b),
                    Rename::Keys { from, to, .. } => is_value_key(from) && is_value_key(to),
                })
            };
            for rename in st.explorer.take_renames() {
                match rename {
                    Rename::Object { from, to } => Self::renumber(st, from, to),
                    Rename::Objects { a, b } => Self::swap_numbers(st, a, b),
                    Rename::Keys { obj, from, to } => Self::rekey(st, obj, from, to),
                }
            }
            match choice {
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
                    // A thread chosen for its `Start` runs on the worker set aside at its spawn,
                    // or, if none was idle then, the next worker to register or go idle.
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
                    let thread = d.expected.thread;
                    let found = match d.found {
                        Some(op) => {
                            let info = st.exec.threads.get(thread).and_then(|th| th.info.as_ref());
                            format!("{}{}", self.describe(st, op), Self::site_text(info))
                        }
                        None => "no scheduling point".to_string(),
                    };
                    let msg = format!(
                        "at step {} thread {} was expected to {} but was at {}",
                        d.step,
                        thread.saturating_sub(1),
                        self.describe(st, d.expected.op),
                        found
                    );
                    self.end(st, End::Diverged(msg));
                    return;
                }
            }
        }
    }

    /// ` (file.py:12)` for a step's site, empty when it has none.
    fn site_text(info: Option<&StepInfo>) -> String {
        let Some((file, line)) = info.and_then(|i| Some((i.file.as_ref(), i.line?))) else { return String::new() };
        // `file` is the reporting code object (`file_of`).
        let file = file.map(|f| {
            Python::attach(|py| {
                let f = f.bind(py);
                f.getattr("co_filename").unwrap_or_else(|_| f.clone()).to_string()
            })
        });
        let name = file.as_deref().map(|f| f.rsplit('/').next().unwrap_or(f).to_string());
        format!(" ({}:{line})", name.unwrap_or_else(|| "line".into()))
    }

    /// An op in words, for messages (objects by number: the explanation names them).
    fn describe(&self, st: &State, op: Op) -> String {
        match op {
            Op::Access { obj, key, kind } | Op::Announce { obj, key, kind } => {
                let verb = match kind {
                    AccessKind::Read => "read",
                    AccessKind::Write => "write",
                    AccessKind::Delete => "delete",
                    AccessKind::Insert => "insert",
                };
                if let Some(file) = self.file_text(st, obj) {
                    // A file by its path: its number differs between executions.
                    return match key {
                        WHOLE => format!("{verb} {file}"),
                        _ if key & NS_IDENT != 0 && is_file_name(key & !NS_IDENT) => {
                            let entry = self.file_text(st, key & !NS_IDENT).unwrap_or_else(|| "an entry".into());
                            format!("{verb} the entry of {entry} in {file}")
                        }
                        _ => format!("{verb} {file} (an entry)"),
                    };
                }
                let what = if key == WHOLE {
                    String::new()
                } else if key == SIZE {
                    "'s size".to_string()
                } else if key & (NS_VALUE | NS_IDENT) == 0 {
                    match st.name_ids.iter().find(|(_, &id)| id == key) {
                        Some((name, _)) => format!(".{name}"),
                        None => " (a name)".to_string(),
                    }
                } else {
                    format!("[{}]", self.key_text(st, obj, key))
                };
                let (tname, module) = Python::attach(|py| match st.exec.object(py, obj) {
                    Some(o) => (o.get_type().name().map(|n| n.to_string()).ok(), module_named_by(&o)),
                    None => (None, None),
                });
                // A global is a name in a module's namespace: named as the explanation names it.
                if let Some(module) = module {
                    if let Some(name) = what.strip_prefix('.') {
                        return format!("{verb} global {module}.{name}");
                    }
                }
                let shown = st.exec.shown(obj);
                match tname {
                    Some(t) if what.is_empty() => format!("{verb} a {t} (object {shown}) as a whole"),
                    Some(t) => format!("{verb} {t}{what} (object {shown})"),
                    None => format!("{verb} object {shown}{what}"),
                }
            }
            Op::Acquire { lock } => format!("acquire lock {}", st.exec.shown(lock)),
            Op::TryAcquire { lock } => format!("try to acquire lock {}", st.exec.shown(lock)),
            Op::Peek { lock } => format!("look whether lock {} is held", st.exec.shown(lock)),
            Op::Release { lock } => format!("release lock {}", st.exec.shown(lock)),
            Op::Spawn { child } => format!("start thread {}", child.saturating_sub(1)),
            Op::Join { child } => format!("join thread {}", child.saturating_sub(1)),
            Op::Start => "begin".to_string(),
            Op::Exit => "finish".to_string(),
            Op::Accesses { group } => {
                group.accesses().iter().map(|a| self.describe(st, a.op())).collect::<Vec<_>>().join(" and ")
            }
        }
    }

    /// `file /path` or `directory /path` for a file's number (this execution's, or the plan's:
    /// `file_name`), else None.
    fn file_text(&self, st: &State, obj: u64) -> Option<String> {
        Python::attach(|py| {
            let file = match st.exec.object(py, obj) {
                Some(o) => o,
                None if is_file_name(obj) => {
                    let files = py.import("frontrun._dpor").ok()?.getattr("_files").ok()?;
                    let k = obj & !FILE_NAMES;
                    let values = files.call_method0("values").ok()?;
                    let found = values
                        .try_iter()
                        .ok()?
                        .flatten()
                        .find(|f| f.getattr("number").and_then(|n| n.extract::<u64>()).is_ok_and(|n| n == k));
                    found?
                }
                None => return None,
            };
            if file.get_type().name().ok()?.to_string() != "FileResource" {
                return None;
            }
            file.repr().ok().map(|r| r.to_string())
        })
    }

    /// A subscript key for messages: its value's repr when it has one, shortened.
    fn key_text(&self, st: &State, obj: u64, key: u64) -> String {
        if !is_value_key(key) {
            return "an item".to_string();
        }
        // The value whose key is named `key` on `obj` in this execution.
        let id = st.exec.rekeyed.key_named(obj, key) & !NS_VALUE;
        Python::attach(|py| {
            let table = self.types.value_keys.bind(py);
            let value = table.iter().find(|(_, v)| v.extract::<u64>().is_ok_and(|v| v == id)).map(|(k, _)| k);
            match value.and_then(|v| v.repr().ok()).map(|r| r.to_string()) {
                Some(r) if r.chars().count() > 40 => format!("{}...", r.chars().take(37).collect::<String>()),
                Some(r) => r,
                None => "an item".to_string(),
            }
        })
    }

    /// `tid` reached a scheduling point before `op`: arrive, drive, park until chosen.
    pub(super) fn step<'a>(
        &'a self,
        py: Python<'_>,
        st: Guard<'a>,
        tid: ThreadId,
        op: Op,
        info: Option<StepInfo>,
    ) -> Result<(), Aborted> {
        self.step_part(py, st, tid, op, info, Part::Whole)
    }

    /// `step` for a step of a report made of several (`Part`).
    pub(super) fn step_part<'a>(
        &'a self,
        py: Python<'_>,
        mut st: Guard<'a>,
        tid: ThreadId,
        op: Op,
        info: Option<StepInfo>,
        part: Part<'_>,
    ) -> Result<(), Aborted> {
        if st.exec.aborting || st.exec.done.is_some() || self.current_exec() != Some(st.exec.id) {
            return Err(Aborted);
        }
        let op = match op.object().and_then(|n| st.exec.renamed.get(&n).map(|&to| (n, to))) {
            Some((from, to)) => op.renamed(from, to),
            None => op,
        };
        let op = match op {
            Op::Access { obj, key, kind } if is_value_key(key) => {
                Op::Access { obj, key: st.exec.rekeyed.name(obj, key), kind }
            }
            _ => op,
        };
        let info = info.map(|i| StepInfo { op, ..i });
        let op = match (part, op) {
            (Part::Announced, Op::Access { obj, key, kind }) => Op::Announce { obj, key, kind },
            (Part::Last(also), Op::Access { .. }) if !also.is_empty() => {
                Op::accesses_of(&[also, &op.accesses()[..]].concat())
            }
            _ => op,
        };
        // A loop's steps over a container (`loops`) end with the container: a long loop is
        // not a runaway thread. Nor is one over a generator; a step inside a generator
        // comes with an access that is counted.
        let counted = info.as_ref().is_none_or(|i| {
            i.kind != report_py::EventKind::IterNext.as_str() && i.kind != "resume" && i.kind != "inside"
        });
        // A look at what the thread looked at before: the engine compares its frame's locals.
        // Reading them runs Python, never under the state lock: a finalizer that reports (a
        // pool's weakref callback) would wait for the lock for ever. Only reads come here, and
        // their callers set no state before stepping (a wait's step must not let go of it).
        // So is a try of a lock (not a timed wait's later tries, which are set to wait before
        // they step): the engine compares it with the thread's previous one.
        let first_try = matches!(op, Op::TryAcquire { .. }) && !st.exec.threads[tid].blocked;
        let look_again = first_try || st.explorer.rereads(tid, op);
        // Explaining, an attribute's step says where its frame was called from (a property's
        // getter or setter is shown at the line that used the property); it waits for nothing.
        let mut info = info;
        if st.explain && info.as_ref().is_some_and(|i| i.file.is_some() && i.kind.starts_with("attr")) {
            let caller;
            (st, caller) = self.unlocked(py, st, report_py::caller_site)?;
            if let Some(i) = info.as_mut() {
                i.caller = caller;
            }
        }
        let frame_state = if counted && info.is_some() && look_again {
            let state;
            (st, state) = self.unlocked(py, st, report_py::frame_fingerprint)?;
            state
        } else {
            None
        };
        st.exec.user_steps += 1;
        let th = Self::thread_mut(&mut st, tid);
        th.steps += counted as u64;
        if th.steps > st.max_steps {
            self.end(&mut st, End::Runaway(tid));
            return Err(Aborted);
        }
        if st.exec.turn == Some(tid) {
            self.set_turn(&mut st, None);
        }
        Self::arrive(&mut st, tid, op, info);
        if std::mem::take(&mut Self::thread_mut(&mut st, tid).mid_report) {
            st.explorer.mid_report(tid);
        }
        if !counted {
            st.explorer.moves_on(tid);
        } else if let Some(state) = frame_state {
            st.explorer.frame_state(tid, state);
        }
        self.drive(py, &mut st);
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

    /// A try (`blocking=False`) or a timed acquire of lock `n`, as steps: whether the thread
    /// took the lock. A try is the same op whatever the lock's state (a thread's next op must
    /// depend on its own past only); the engine decides when it performs it whether it takes
    /// the lock. A timed one polls, blocked, until it does or the deadline passes.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn try_acquire<'a>(
        &'a self,
        py: Python<'_>,
        mut st: Guard<'a>,
        tid: ThreadId,
        n: u64,
        blocking: bool,
        timeout: Option<f64>,
        site: Option<(Py<PyAny>, i32)>,
    ) -> PyResult<bool> {
        let try_op = Op::TryAcquire { lock: n };
        let deadline = timeout.map(|t| Inner::deadline_in(&st, tid, t));
        let mut polling = false;
        loop {
            if polling {
                let th = &mut st.exec.threads[tid];
                th.blocked = true;
                th.deadline = deadline;
                th.polling = Some(n);
            }
            // A non-reentrant lock this thread holds stays held: the try fails.
            let held_by_me = st.exec.owners.get(&n) == Some(&tid);
            let site = site.as_ref().map(|(f, l)| (f.clone_ref(py), *l));
            self.step_at(py, st, tid, try_op, "try_acquire", site)?;
            st = self.lock_state(py);
            let th = &mut st.exec.threads[tid];
            let timed_out = std::mem::take(&mut th.timed_out);
            th.deadline = None;
            if !held_by_me && st.exec.owners.get(&n) == Some(&tid) {
                return Ok(true);
            }
            if !blocking || timed_out {
                return Ok(false);
            }
            polling = true;
        }
    }

    /// Runs `f` (Python: a finalizer it sets off may report) with the state lock let go, and
    /// takes it again; `Aborted` if the execution ended or moved on meanwhile.
    fn unlocked<'a, T>(
        &'a self,
        py: Python<'_>,
        st: Guard<'a>,
        f: impl FnOnce(Python<'_>) -> T,
    ) -> Result<(Guard<'a>, T), Aborted> {
        let exec_id = st.exec.id;
        drop(st);
        let out = f(py);
        let st = self.lock_state(py);
        if st.exec.aborting || st.exec.done.is_some() || st.exec.id != exec_id {
            return Err(Aborted);
        }
        Ok((st, out))
    }

    /// `step` for the runtime's own scheduling points (locks, waits, spawn, join, sleep), described
    /// as `what` at `site` in explanations.
    pub(super) fn step_at(
        &self,
        py: Python<'_>,
        st: Guard<'_>,
        tid: ThreadId,
        op: Op,
        what: &'static str,
        site: Option<(Py<PyAny>, i32)>,
    ) -> PyResult<()> {
        let info = site_info(py, tid, op, what, site, None);
        self.step(py, st, tid, op, info).map_err(|_| aborted(py, self))
    }

    /// Makes the current thread raise the abort exception at its next instruction boundary
    /// (the report natives never raise themselves).
    pub(super) fn raise_async(&self, py: Python<'_>) {
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

/// The name of the module whose namespace `obj` is, if it is one. Runs no Python code (the
/// runtime's lock is held): dict lookups by str and the module's own namespace pointer.
fn module_named_by(obj: &Bound<'_, PyAny>) -> Option<String> {
    let namespace = obj.cast_exact::<PyDict>().ok()?;
    let name = namespace.get_item("__name__").ok()??.cast_into_exact::<PyString>().ok()?;
    // Safety: the GIL is held; a borrowed reference, taken at once.
    let modules = unsafe { Bound::from_borrowed_ptr_or_opt(obj.py(), ffi::PySys_GetObject(c"modules".as_ptr()))? };
    let modules = modules.cast_into_exact::<PyDict>().ok()?;
    let module = modules.get_item(&name).ok()??.cast_into::<PyModule>().ok()?;
    module.dict().is(obj).then(|| name.to_string())
}
