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
//! reused by every exploration (`configure` starts a new one). The thread that reaches a
//! scheduling point drives the engine itself (baton passing): it `arrive`s, and while every live thread has arrived it calls
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
//!
//! Files: `handoff` (state, parking, driving the engine), `translate` (events → ops), `loops`
//! (every step of a loop over a container is a read of it), here the
//! Python-facing `DporRuntime` methods.

mod handoff;
mod loops;
mod translate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyModule, PyTuple};

use super::report_py::{self, Event};
use crate::engine::{
    dependent, Access, AccessKind, Action, Config, Deadlock, Explorer, Op, Schedule, ThreadId, Verdict, WaitReason,
    LIVENESS, SIZE, WHOLE, YIELD,
};

/// Key namespaces: names, subscript values and subscript identities never collide.
use handoff::*;
use translate::*;

/// One step as `Runtime::steps` shows it: thread, kind, access, object, key id, key, file, line,
/// caller's file and line.
type StepRow =
    (i64, String, String, u64, u64, Option<Py<PyAny>>, Option<Py<PyAny>>, Option<i32>, Option<Py<PyAny>>, Option<i32>);

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
    Some(StepInfo { thread: tid, op, kind, key, file, line, caller: None })
}

/// A deadlock in the user's numbering (thread 0 = the first function of `threads`; the engine's
/// thread 0 is the virtual root that starts them).
fn deadlock_text(d: &Deadlock) -> String {
    let user = |t: ThreadId| t.saturating_sub(1);
    let mut out = String::from("deadlock:");
    for w in &d.waiting {
        match (&w.reason, w.op) {
            (WaitReason::Lock { lock, owner: ROOT }, _) => out.push_str(&format!(
                " thread {} waits for lock #{lock}, held since before the execution;",
                user(w.thread)
            )),
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
    #[pyo3(signature = (*, abort_exc, deque, lock_type, rlock_type, local_type, builtins_map, heap_writers, whole_readers=None, unseen_callee=None, preemption_bound=None, max_executions=None, max_steps=100_000, replay=None, explain=false, coop_types=None, coop_hook=None, holding_hook=None, iterating_hook=None, loop_through=None, referents=None, file_resource=None, path_functions=None, path_accesses=None, pure_path=None))]
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
        whole_readers: Option<Vec<Py<PyAny>>>,
        unseen_callee: Option<Py<PyAny>>,
        preemption_bound: Option<u32>,
        max_executions: Option<u64>,
        max_steps: u64,
        replay: Option<String>,
        explain: bool,
        coop_types: Option<Py<PyTuple>>,
        coop_hook: Option<Py<PyAny>>,
        holding_hook: Option<Py<PyAny>>,
        iterating_hook: Option<Py<PyAny>>,
        loop_through: Option<Py<PyTuple>>,
        referents: Option<Py<PyAny>>,
        file_resource: Option<Py<PyAny>>,
        path_functions: Option<Py<PyDict>>,
        path_accesses: Option<Py<PyAny>>,
        pure_path: Option<Py<PyAny>>,
    ) -> PyResult<DporRuntime> {
        let explorer = make_explorer(preemption_bound, max_executions, replay)?;
        if let Some(table) = &path_functions {
            let ids = table.bind(py).keys().iter().filter_map(|k| k.extract::<usize>().ok()).collect();
            *crate::python::report_py::PATH_CALLEES.write().unwrap_or_else(|p| p.into_inner()) = ids;
        }
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
            method_writers: heap_writers
                .iter()
                .filter_map(|f| {
                    let f = f.bind(py);
                    let qualname = f.getattr("__qualname__").ok()?.extract::<String>().ok()?;
                    qualname.contains('.').then(|| f.getattr("__name__").ok()?.extract::<String>().ok()).flatten()
                })
                .collect(),
            heap_writers,
            whole_readers: whole_readers.unwrap_or_default(),
            unseen_callee,
            value_keys: PyDict::new(py).unbind(),
            coop_types,
            coop_hook,
            holding_hook,
            iterating_hook,
            loop_through,
            referents,
            file_resource,
            path_functions,
            path_accesses,
            pure_path,
            generator: py.import("types")?.getattr("GeneratorType")?.unbind(),
            next: py.import("builtins")?.getattr("next")?.unbind(),
            method: py.import("types")?.getattr("MethodType")?.unbind(),
            counter_missing: py.import("collections")?.getattr("Counter")?.getattr("__missing__")?.unbind(),
            object_eq: py.import("builtins")?.getattr("object")?.getattr("__eq__")?.unbind(),
            slot_wrapper: py.import("builtins")?.getattr("object")?.getattr("__eq__")?.get_type().into_any().unbind(),
            ident_mark: py.import("builtins")?.getattr("object")?.call0()?.unbind(),
            attrgetter: py.import("operator")?.getattr("attrgetter")?.unbind(),
            property: py.import("builtins")?.getattr("property")?.unbind(),
            enum_hash: py.import("enum")?.getattr("Enum")?.getattr("__hash__")?.unbind(),
            itemgetter: py.import("operator")?.getattr("itemgetter")?.unbind(),
            abc_containers: {
                let abc = py.import("collections.abc")?;
                let get = |name: &str| abc.getattr(name).map(Bound::unbind);
                [get("MutableMapping")?, get("MutableSequence")?, get("MutableSet")?]
            },
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
        Ok(DporRuntime {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                types,
                resource_methods: std::sync::RwLock::new(Vec::new()),
            }),
        })
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
        report_py::WATCHING_GENERATORS.store(false, std::sync::atomic::Ordering::Relaxed);
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

    /// Sets the resource methods (before each exploration: the configuration may change).
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
                                Inner::assign_worker(st, slot, t);
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
        // Worker threads are reused: no thread-local value may leak into the next task (a
        // task that ended inside a consuming call, `s.l.extend(x)` last, left this set: the
        // next task's reports of nothing shared were kept, steps the plan did not have).
        report_py::set_consuming(false);
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
        report_py::WATCHING_GENERATORS.store(false, std::sync::atomic::Ordering::Relaxed);
        drop(st);
        old.let_go(py); // releases the previous execution's objects (attached: may run finalizers)
        true
    }

    /// Lets go of what the last execution holds (the objects it numbered, its threads' tasks
    /// and step log), keeping the counts read after it. Held until the next execution began,
    /// they died inside the next exploration, as a step of its first thread (a weakref
    /// callback, a `__del__`). Not while a worker is still inside a task of it (a thread left
    /// running at a timeout).
    fn release_execution(&self, py: Python<'_>) {
        let mut st = self.inner.lock_state(py);
        if st.exec.active > 0 {
            return;
        }
        let counts = Exec {
            id: st.exec.id,
            user_steps: st.exec.user_steps,
            reports: st.exec.reports,
            errors: std::mem::take(&mut st.exec.errors),
            done: st.exec.done.take(),
            ..Exec::default()
        };
        let old = std::mem::replace(&mut st.exec, counts);
        drop(st);
        old.let_go(py); // attached: finalizers may run
    }

    /// Runs one execution of `tasks` (one callable per thread) to its end; blocks, detached.
    /// `background`: the indices of tasks that are daemons (threads `setup()` started), which
    /// may be left waiting. Returns `(end, detail)`: end in finished/deadlock/diverged/runaway/
    /// timeout.
    /// `prologue`: the index of a task that runs first (`setup()`, which the others wait for):
    /// the order of the steps taken before it ends is not searched.
    /// `on_stall(ident, thread)`: called (on this thread) once the thread whose turn it is has
    /// taken no step for `stall_after` seconds, with its worker's ident and its number (from 0):
    /// a thread blocked in a call the model does not know (a C `SimpleQueue` made before the
    /// exploration, a read of a socket no one writes) otherwise hung the search without a word.
    #[pyo3(signature = (tasks, timeout=None, background=Vec::new(), prologue=None, on_stall=None, stall_after=10.0))]
    fn run_execution(
        &self,
        py: Python<'_>,
        tasks: Vec<Py<PyAny>>,
        timeout: Option<f64>,
        background: Vec<usize>,
        prologue: Option<usize>,
        on_stall: Option<Py<PyAny>>,
        stall_after: f64,
    ) -> PyResult<(String, String)> {
        let stall_after = Duration::try_from_secs_f64(stall_after.max(0.0)).unwrap_or(Duration::MAX);
        let inner = self.inner.clone();
        let parker = Parker::mine();
        let wakes = {
            let mut st = inner.lock_state(py);
            if let Some(i) = prologue {
                // Root task i is the root's (i + 1)-th child: engine id i + 1 (`root_arrive`).
                st.explorer.set_prologue(i + 1);
            }
            st.controller = Some(parker.clone());
            st.exec.root_tasks = tasks.into_iter().enumerate().map(|(i, t)| (t, background.contains(&i))).collect();
            Inner::thread_mut(&mut st, ROOT).live = true;
            Inner::root_arrive(&mut st);
            inner.drive(py, &mut st);
            st.unlock()
        };
        let deadline = timeout.map(|t| Instant::now() + Duration::from_secs_f64(t.max(0.0)));
        let mut wakes = Some(wakes);
        let mut interrupted = None;
        // The steps taken so far and since when, to tell a thread that takes none (`on_stall`).
        let mut progress = (usize::MAX, Instant::now());
        let mut on_stall = on_stall;
        // In slices, between which the signal handlers run: a thread blocked for ever in a call
        // the model does not know (a read of a pipe no one writes) kept Ctrl-C from the process.
        let mut wait = |deadline: Option<Instant>, interrupted: &mut Option<PyErr>| loop {
            let slice = Instant::now() + SIGNAL_CHECKS;
            let until = deadline.map_or(slice, |d| d.min(slice));
            let wakes = wakes.take().unwrap_or_default();
            let done = py.detach(|| {
                wake_all(wakes);
                inner
                    .wait_for(&parker, Some(until), |st| (st.exec.done.is_some() && st.exec.active == 0).then_some(()))
                    .is_some()
            });
            if done {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            if interrupted.is_none() {
                if let Err(e) = py.check_signals() {
                    *interrupted = Some(e);
                    return false;
                }
            }
            if on_stall.is_some() {
                let stalled = {
                    let st = inner.lock_state(py);
                    let steps = st.explorer.events().len();
                    if steps != progress.0 {
                        progress = (steps, Instant::now());
                    }
                    let turn = st.exec.turn.filter(|_| progress.1.elapsed() >= stall_after);
                    turn.and_then(|t| st.slots.iter().find(|s| s.tid == Some(t)).map(|s| (s.ident, t)))
                };
                if let Some((ident, thread)) = stalled {
                    let notify = on_stall.take().expect("checked");
                    // A notice only: what it raises is not the execution's.
                    if let Err(e) = notify.call1(py, (ident, thread.saturating_sub(1))) {
                        e.write_unraisable(py, None);
                    }
                }
            }
        };
        if !wait(deadline, &mut interrupted) {
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
            if !wait(Some(Instant::now() + UNWIND_GRACE), &mut interrupted) {
                // Threads that will not unwind are abandoned; fresh workers replace them.
                let mut st = inner.lock_state(py);
                for s in st.slots.iter_mut().filter(|s| s.tid.is_some()) {
                    s.abandoned = true;
                }
                st.exec.active = 0;
            }
        }
        if let Some(e) = interrupted {
            return Err(e); // (the execution ended as one out of time: its threads were stopped)
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

    /// Numbers what the threads find when they begin, in the order given (`(object, is_lock,
    /// path)`), before any of them runs: numbered at first use instead, an object that existed
    /// before the threads takes the number a fresh one had in another schedule, where another
    /// thread reached it first, and the plan cannot be followed (a false "nondeterminism").
    /// Each is named by its path (`state_name`): named by its place in the order, every object
    /// after a list that grows from one execution to the next had another name in each.
    fn number_state(&self, py: Python<'_>, objects: Vec<(Py<PyAny>, bool, String)>) {
        let mut st = self.inner.lock_state(py);
        for (obj, is_lock, path) in objects {
            let obj = obj.bind(py);
            let named = match obj.cast::<PyModule>() {
                Ok(m) => m.dict().into_any(),
                Err(_) => obj.clone(),
            };
            let ptr = named.as_ptr() as usize;
            let name = state_name(&path);
            if st.exec.number_at(py, ptr).is_none() && !st.exec.reserved.contains_key(&ptr) && !st.exec.is_named(name) {
                st.exec.reserved.insert(ptr, name);
            }
            if is_lock {
                Inner::lock_number(&mut st, obj);
            } else {
                Inner::number_owner(&mut st, obj);
            }
        }
        st.exec.first_fresh = Some(st.exec.next_plain_name());
    }

    /// The generators in the test's state, before the execution's threads run: resuming one
    /// while another thread is inside it is then explored (it raises "already executing").
    fn watch_generators(&self, py: Python<'_>, generators: Vec<Py<PyAny>>) {
        let mut st = self.inner.lock_state(py);
        for g in generators {
            let g = g.bind(py);
            if !self.inner.is_generator(g) {
                continue;
            }
            if let Ok(frame) = g.getattr(pyo3::intern!(py, "gi_frame")) {
                if !frame.is_none() {
                    let n = Inner::number(&mut st, &frame);
                    st.exec.gen_frames.insert(n);
                    st.exec.generators.insert(g.as_ptr() as usize, n);
                    st.exec.kept.push(g.clone().unbind());
                    report_py::WATCHING_GENERATORS.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        st.exec.first_fresh = Some(st.exec.next_plain_name());
    }

    /// Scheduling points reached by explored threads in this execution.
    fn user_steps(&self, py: Python<'_>) -> u64 {
        self.inner.lock_state(py).exec.user_steps
    }

    /// How many steps this execution has taken (`steps()`'s length, without building it).
    fn steps_taken(&self, py: Python<'_>) -> usize {
        self.inner.lock_state(py).exec.log.len()
    }

    /// Reports heard from rewritten code run by explored threads in this execution.
    fn reports_heard(&self, py: Python<'_>) -> u64 {
        self.inner.lock_state(py).exec.reports
    }

    /// Counts an access a stand-in for the program's own code made (an `lru_cache` of a
    /// rewritten function looked in) as a report heard: no sign of code left unrewritten.
    fn heard_stand_in(&self, py: Python<'_>) {
        if self.inner.current().is_some() {
            self.inner.lock_state(py).exec.reports += 1;
        }
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
        d.set_item("spins_cut", s.spins_cut)?;
        d.set_item("unfair", s.unfair)?;
        d.set_item("lockstep_cut", s.lockstep_cut)?;
        d.set_item("unfollowed", s.unfollowed)?;
        d.set_item("diverged", s.diverged)?;
        d.set_item("complete", s.complete)?;
        Ok(d)
    }

    // ------------------------------------------------------------ explanation data

    /// Steps of the last execution (explain mode): `(thread, kind, access, obj, key_id, key, file, line,
    /// caller_file, caller_line)`;
    /// `access` is read/write/delete/acquire/release/spawn/join/exit, `obj` the object or lock number
    /// (`LIVENESS` for `Thread.is_alive`, keyed by the thread's number as shown).
    fn steps(&self, py: Python<'_>) -> Vec<StepRow> {
        let st = self.inner.lock_state(py);
        let events = st.explorer.events();
        st.exec
            .log
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (access, obj, key) = match s.op {
                    // A modelled queue's steps are its synchronisation, as a lock's are.
                    Op::Access { obj, key, .. } if s.kind == "queue" => ("queue", obj, key),
                    Op::Accesses { group } if s.kind == "queue" => {
                        let first = group.accesses()[0];
                        ("queue", first.obj, first.key)
                    }
                    // A path call that uses several files (a file and its directory, a move's
                    // two ends) shows as its use of the first that another thread's step
                    // conflicts with: on that same file if there is one (two moves onto one
                    // path, whose directory every entry's change also writes), else through a
                    // listing's directory; else as its use of the file its path names.
                    Op::Accesses { group } if s.kind == "call" => {
                        let members = group.accesses();
                        let thread = events.get(i).map(|e| e.thread);
                        let racing = |a: &Access, same_file: bool| {
                            thread.is_some_and(|t| {
                                events.iter().any(|e| {
                                    e.thread != t
                                        && (!same_file || e.action().op.accesses().iter().any(|b| b.obj == a.obj))
                                        && dependent(&Action::new(t, a.op()), &e.action())
                                })
                            })
                        };
                        let shown = members
                            .iter()
                            .find(|a| racing(a, true))
                            .or_else(|| members.iter().find(|a| racing(a, false)))
                            .unwrap_or(&members[0]);
                        (if shown.kind == AccessKind::Read { "read" } else { "write" }, shown.obj, shown.key)
                    }
                    Op::Access { obj, kind, key } | Op::Announce { obj, kind, key } => (
                        match kind {
                            AccessKind::Read => "read",
                            AccessKind::Write => "write",
                            AccessKind::Delete => "delete",
                            AccessKind::Insert => "insert",
                        },
                        obj,
                        // A thread's liveness is keyed by its engine id; shown, by its number.
                        if obj == LIVENESS { key.wrapping_sub(1) } else { key },
                    ),
                    Op::Acquire { lock } => ("acquire", lock, 0),
                    Op::Release { lock } => ("release", lock, 0),
                    Op::TryAcquire { lock } => (s.kind, lock, 0),
                    Op::Peek { lock } => ("locked", lock, 0),
                    Op::Spawn { child } => ("spawn", child as u64 - 1, 0),
                    Op::Join { child } => ("join", child as u64 - 1, 0),
                    Op::Start => ("start", 0, 0),
                    // (The log keeps a report's own access, not its last step's several.)
                    Op::Accesses { .. } => ("read", 0, 0),
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
                    s.caller.as_ref().map(|(f, _)| f.clone_ref(py)),
                    s.caller.as_ref().map(|&(_, l)| l),
                )
            })
            .collect()
    }

    /// Races of the last execution: pairs of step indexes.
    /// A race of a report's last step, which makes its earlier steps' accesses again, is shown
    /// as one of the step that made the racing access (the log shows one access per step).
    fn races(&self, py: Python<'_>) -> Vec<(usize, usize)> {
        let st = self.inner.lock_state(py);
        let events = st.explorer.events();
        let log = &st.exec.log;
        let shown = |i: usize, other: usize| -> usize {
            let (Some(e), Some(o)) = (events.get(i), events.get(other)) else { return i };
            let Op::Accesses { group } = e.op else { return i };
            let members = group.accesses();
            let racing = |j: usize| {
                let Some(op @ Op::Access { obj, key, kind }) = log.get(j).map(|s| s.op) else { return false };
                events[j].thread == e.thread
                    && members.contains(&Access { obj, key, kind })
                    && dependent(&Action::new(e.thread, op), &o.action())
            };
            (0..=i).rev().find(|&j| racing(j)).unwrap_or(i)
        };
        st.explorer.races().iter().map(|r| (shown(r.first, r.second), shown(r.second, r.first))).collect()
    }

    /// Whether step `a` happens before step `b` in the last execution.
    fn happens_before(&self, py: Python<'_>, a: usize, b: usize) -> bool {
        let st = self.inner.lock_state(py);
        a < b && b < st.explorer.events().len() && st.explorer.happens_before(a, b)
    }

    /// The object numbered `n` in the last execution.
    fn object(&self, py: Python<'_>, n: u64) -> Option<Py<PyAny>> {
        let st = self.inner.lock_state(py);
        st.exec.object(py, n).map(Bound::unbind)
    }

    /// A cooperative lock just made: named by its maker (the explored thread, or `setup()`) and
    /// how many locks that maker made before, whichever thread uses it first (`MADE_NAMES`).
    fn reserve_name(&self, py: Python<'_>, lock: Bound<'_, PyAny>) {
        let maker = self.inner.current().map_or(SETUP_MAKER, |t| t as u64);
        let mut st = self.inner.lock_state(py);
        let ptr = lock.as_ptr() as usize;
        if st.exec.number_at(py, ptr).is_some() || st.exec.reserved.contains_key(&ptr) {
            return;
        }
        let made = st.exec.made.entry(maker).or_insert(0);
        *made += 1;
        let n = made_name(maker, *made);
        st.exec.reserved.insert(ptr, n);
        st.exec.kept.push(lock.unbind()); // its address names it until the execution ends
    }

    /// Object `n` as explanations show it (`#` and the order it was first used in).
    fn shown(&self, py: Python<'_>, n: u64) -> String {
        self.inner.lock_state(py).exec.shown(n)
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
                    (WaitReason::Blocked, Op::TryAcquire { lock }) => {
                        ("lock", lock, st.exec.owners.get(&lock).map(|&o| o as i64 - 1))
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

    /// The calling explored thread's modelled time, in seconds since the execution began; for
    /// any other thread (the invariant's), the latest time an explored thread has reached.
    fn clock(&self, py: Python<'_>) -> f64 {
        let st = self.inner.lock_state(py);
        match self.inner.current() {
            Some(tid) => st.explorer.time(tid),
            None => st.explorer.latest_time(),
        }
    }

    /// Moves the calling explored thread's modelled time on to `to` (a sleep's end, a wait's
    /// deadline), if it is behind it; returns its time then.
    fn clock_at_least(&self, py: Python<'_>, to: f64) -> f64 {
        let mut st = self.inner.lock_state(py);
        match self.inner.current() {
            Some(tid) => {
                st.explorer.raise_time(tid, to);
                st.explorer.time(tid)
            }
            None => st.explorer.latest_time(),
        }
    }

    /// Acquire of a cooperative lock. `blocking=False`: fails at once if held; `timeout`
    /// (seconds): may time out when nothing else can run, the earliest deadline first (with any
    /// others of that deadline: `Inner::fire_timeouts`). Returns
    /// whether the lock was taken.
    #[pyo3(signature = (lock, blocking=true, timeout=None, site=None))]
    fn lock_acquire(
        &self,
        py: Python<'_>,
        lock: &Bound<'_, PyAny>,
        blocking: bool,
        timeout: Option<f64>,
        site: Option<(Py<PyAny>, i32)>,
    ) -> PyResult<bool> {
        let timed = timeout.is_some();
        let inner = &self.inner;
        let tid = inner.explored_thread()?;
        let site_copy = |py: Python<'_>| site.as_ref().map(|(f, l)| (f.clone_ref(py), *l));
        let mut st = inner.lock_state(py);
        let n = Inner::lock_number(&mut st, lock);
        inner.name_lock(py, &mut st, tid, n);
        if blocking && !timed {
            inner.step_at(py, st, tid, Op::Acquire { lock: n }, "acquire", site_copy(py))?;
            return Ok(true);
        }
        inner.try_acquire(py, st, tid, n, blocking, timeout, site)
    }

    /// `lock.locked()` in an explored thread: a look at the lock, ordered against its
    /// acquisitions and releases; whether it is held then.
    #[pyo3(signature = (lock, site=None))]
    fn lock_locked(&self, py: Python<'_>, lock: &Bound<'_, PyAny>, site: Option<(Py<PyAny>, i32)>) -> PyResult<bool> {
        let inner = &self.inner;
        let tid = inner.explored_thread()?;
        let mut st = inner.lock_state(py);
        let n = Inner::lock_number(&mut st, lock);
        inner.name_lock(py, &mut st, tid, n);
        inner.step_at(py, st, tid, Op::Peek { lock: n }, "locked", site)?;
        Ok(inner.lock_state(py).exec.owners.contains_key(&n))
    }

    /// Releases `lock`; False if it was free when the release ran (the caller raises).
    #[pyo3(signature = (lock, site=None))]
    fn lock_release(&self, py: Python<'_>, lock: &Bound<'_, PyAny>, site: Option<(Py<PyAny>, i32)>) -> PyResult<bool> {
        let inner = &self.inner;
        let tid = inner.explored_thread()?;
        let mut st = inner.lock_state(py);
        let n = Inner::lock_number(&mut st, lock);
        inner.step_at(py, st, tid, Op::Release { lock: n }, "release", site)?;
        Ok(!std::mem::take(&mut inner.lock_state(py).exec.threads[tid].released_free))
    }

    /// Second half of a condition wait: re-acquire `lock` once notified (or, with a `timeout`
    /// in seconds, timed out: when nothing else can run, the earliest deadline first, with any
    /// others of that deadline; notified before it runs by one of those, it was notified in time).
    /// `any_time`: a timed wait does not block; it re-acquires the lock whenever the engine
    /// runs it, notified or not, so the search orders its time-out against the notify.
    /// Returns False on timeout.
    #[pyo3(signature = (lock, timeout=None, site=None, any_time=false))]
    fn cond_wait(
        &self,
        py: Python<'_>,
        lock: &Bound<'_, PyAny>,
        timeout: Option<f64>,
        site: Option<(Py<PyAny>, i32)>,
        any_time: bool,
    ) -> PyResult<bool> {
        let inner = &self.inner;
        let tid = inner.explored_thread()?;
        let mut st = inner.lock_state(py);
        let n = Inner::number(&mut st, lock);
        let deadline = timeout.map(|t| Inner::deadline_in(&st, tid, t));
        let th = Inner::thread_mut(&mut st, tid);
        th.timed_out = false;
        if std::mem::take(&mut th.prenotified) {
            th.blocked = false;
        } else if any_time && timeout.is_some() {
            th.blocked = false;
            inner.step_at(py, st, tid, Op::Acquire { lock: n }, "wait", site)?;
            let mut st = inner.lock_state(py);
            // A notify that came while it waited for the lock left this flag.
            return Ok(std::mem::take(&mut st.exec.threads[tid].prenotified));
        } else {
            th.blocked = true;
            th.deadline = deadline;
        }
        inner.step_at(py, st, tid, Op::Acquire { lock: n }, "wait", site)?;
        let mut st = inner.lock_state(py);
        let th = &mut st.exec.threads[tid];
        th.deadline = None;
        // Timed out with others at one deadline, and notified by one of them before this step:
        // that notify came first.
        let notified = std::mem::take(&mut th.prenotified);
        Ok(!std::mem::take(&mut th.timed_out) || notified)
    }

    /// A step of a modelled queue (`_coop`'s FIFO queues): `accesses`, `(obj, name, write)`
    /// each (`name` None: all of `obj`), made at once; synchronisation to the explanation, not
    /// data. `item`, `(queue, model, counter)`: the step also writes the queue's item numbered
    /// by `model.counter` when the step runs (a put's or a get's), and the one `behind` places
    /// before it (a bounded queue's put: the get of that item made its room). `ready`: the step
    /// waits while `ready()` is false (a reversal that would run it earlier is infeasible), or,
    /// with a `timeout`, until nothing else can run: then it times out, earliest deadline first
    /// (`any_time`: it never waits). Both are decided again whenever another thread has
    /// stepped. Returns False if it timed out.
    #[pyo3(signature = (accesses, item=None, behind=None, ready=None, timeout=None, site=None, any_time=false))]
    #[allow(clippy::too_many_arguments)]
    fn queue_step(
        &self,
        py: Python<'_>,
        accesses: Vec<(Bound<'_, PyAny>, Option<Bound<'_, PyAny>>, bool)>,
        item: Option<(Bound<'_, PyAny>, Bound<'_, PyAny>, String)>,
        behind: Option<u64>,
        ready: Option<Bound<'_, PyAny>>,
        timeout: Option<f64>,
        site: Option<(Py<PyAny>, i32)>,
        any_time: bool,
    ) -> PyResult<bool> {
        let inner = &self.inner;
        let tid = inner.explored_thread()?;
        let mut st = inner.lock_state(py);
        if item.is_none() && accesses.is_empty() {
            return Err(PyValueError::new_err("queue_step needs an access"));
        }
        let base: Vec<Access> = accesses
            .iter()
            .map(|(obj, name, write)| {
                let (obj, key) = match name {
                    Some(name) => (Inner::number_owner(&mut st, obj), Inner::name_key(&mut st, name)),
                    None => (Inner::number(&mut st, obj), WHOLE),
                };
                let kind = if *write { AccessKind::Write } else { AccessKind::Read };
                Access { obj, key, kind }
            })
            .collect();
        let (counted, op) = match item {
            Some((queue, model, counter)) => {
                let queue = Inner::number_owner(&mut st, &queue);
                let mut step = Counted { model: model.unbind(), counter, queue, base, number: 0, behind };
                Inner::renumber_item(py, &mut step);
                let op = Inner::counted_op(&step);
                (Some(step), op)
            }
            None => (None, Op::accesses_of(&base)),
        };
        let ready = ready.filter(|_| !(any_time && timeout.is_some()));
        let waits = match &ready {
            Some(r) => !r.call0()?.is_truthy()?,
            None => false,
        };
        let deadline = match (&ready, timeout) {
            (Some(_), Some(t)) => Some(Inner::deadline_in(&st, tid, t.max(0.0))),
            _ => None,
        };
        let th = Inner::thread_mut(&mut st, tid);
        th.counted = counted;
        th.ready = ready.map(Bound::unbind);
        th.timed_out = false;
        th.blocked = waits;
        th.deadline = deadline;
        let key = accesses.first().and_then(|(_, name, _)| name.as_ref().map(|n| n.clone().unbind()));
        let info = site_info(py, tid, op, "queue", site, key);
        let stepped = inner.step(py, st, tid, op, info);
        let mut st = inner.lock_state(py);
        let th = &mut st.exec.threads[tid];
        th.counted = None;
        th.ready = None;
        th.deadline = None;
        let timed_out = std::mem::take(&mut th.timed_out);
        stepped.map_err(|_| aborted(py, inner))?;
        Ok(!timed_out)
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

    /// A read or write of `obj` as a whole, or of its attribute `name`, by frontrun's own Python
    /// (`Event.is_set` / `set`, `functools.cached_property`): a scheduling point ordered against
    /// the other threads' uses of it. `resource`: `obj` is used as a resource method's receiver
    /// is (`print`'s writes to a file), or is a path (`tempfile.mkstemp`'s directory): ordered
    /// against every use of that file, by path or handle. `call`: the method a resource step
    /// is a call of, as explanations show it (`.execute()` and `.fetchone()` of one line).
    #[pyo3(signature = (obj, write, site=None, name=None, resource=false, call=None))]
    #[allow(clippy::too_many_arguments)]
    fn object_access(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        write: bool,
        site: Option<(Py<PyAny>, i32)>,
        name: Option<&Bound<'_, PyAny>>,
        resource: bool,
        call: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let inner = &self.inner;
        let Some(tid) = inner.current() else {
            return Ok(());
        };
        let mut st = inner.lock_state(py);
        let (obj, key, what) = match name {
            Some(name) => {
                let what = if write { "attr_store" } else { "attr_load" };
                (Inner::number_owner(&mut st, obj), Inner::name_key(&mut st, name), what)
            }
            None if resource => {
                let is_path = obj.is_instance_of::<pyo3::types::PyString>()
                    || obj.is_instance_of::<pyo3::types::PyBytes>()
                    || obj.hasattr(pyo3::intern!(py, "__fspath__")).unwrap_or(false);
                (inner.number_resource(&mut st, obj, is_path), WHOLE, "resource")
            }
            None => (Inner::number(&mut st, obj), WHOLE, if write { "write" } else { "read" }),
        };
        let kind = if write { AccessKind::Write } else { AccessKind::Read };
        let op = Op::Access { obj, key, kind };
        let info = site_info(py, tid, op, what, site, name.map(|n| n.clone().unbind()).or(call));
        inner.step(py, st, tid, op, info).map_err(|_| aborted(py, inner))
    }

    /// The first Python function a holding call runs (`lst.sort(key=f)` calling `f`, seen by
    /// `holding_hook`'s profile function): the call's write of its container is a step there,
    /// inside the call, even if `f` reports nothing of its own.
    #[pyo3(signature = (site=None))]
    fn held_point(&self, py: Python<'_>, site: Option<(Py<PyAny>, i32)>) -> PyResult<()> {
        let inner = &self.inner;
        let Some(tid) = inner.current() else {
            return Ok(());
        };
        let mut st = inner.lock_state(py);
        let held = st.exec.threads.get_mut(tid).and_then(|t| t.holding.take());
        // (Or a `defaultdict`'s factory beginning, its insertion under way: `pending_insert`.)
        let step = match held {
            Some((o, method)) => Some(Inner::held_step(&st, o, method)),
            None => Inner::factory_step(py, &mut st, tid),
        };
        let Some((op, kind, key)) = step else {
            return Ok(());
        };
        let info = site_info(py, tid, op, kind, site, key);
        inner.step(py, st, tid, op, info).map_err(|_| aborted(py, inner))
    }

    /// A Python function called by a call that works on `containers` (`max(d, key=f)` calling
    /// `f`, `list(map(f, d))`, `lst.remove(x)` calling an item's `__eq__`; seen by
    /// `iterating_hook`'s profile function): the call goes on after it, so another thread's
    /// insertion during `f` makes the next item fail ("dictionary changed size during
    /// iteration"), and a removal shifts what is compared next. One step reading (or, for a
    /// call that writes them, `write`, writing) all the containers, not counted as a step of
    /// its own (a long container is no runaway).
    #[pyo3(signature = (containers, site=None, write=false, keys_only=Vec::new()))]
    fn iter_point(
        &self,
        py: Python<'_>,
        containers: Vec<Py<PyAny>>,
        site: Option<(Py<PyAny>, i32)>,
        write: bool,
        keys_only: Vec<bool>,
    ) -> PyResult<()> {
        let inner = &self.inner;
        let Some(tid) = inner.current() else {
            return Ok(());
        };
        if containers.is_empty() {
            return Ok(());
        }
        let mut st = inner.lock_state(py);
        let kind = if write { AccessKind::Write } else { AccessKind::Read };
        // (A walk of a dict's keys reads which keys it holds: `SIZE`.)
        let accesses: Vec<Access> = containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let key = if !write && keys_only.get(i).copied().unwrap_or(false) { SIZE } else { WHOLE };
                Access { obj: Inner::number(&mut st, c.bind(py)), key, kind }
            })
            .collect();
        let op = match accesses[..] {
            [one] => Op::Access { obj: one.obj, key: one.key, kind: one.kind },
            _ => Op::accesses_of(&accesses),
        };
        let what = crate::python::report_py::EventKind::IterNext.as_str();
        let info = site_info(py, tid, op, what, site, None);
        inner.step(py, st, tid, op, info).map_err(|_| aborted(py, inner))
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
        let op = Op::Access { obj: YIELD, key: tid as u64, kind: AccessKind::Read };
        inner.step_at(py, st, tid, op, "sleep", site)
    }

    /// Starts `task` as a new explored thread; returns its engine id. `background`: a daemon or
    /// pool worker, which may be left waiting when the other threads have exited.
    #[pyo3(signature = (task, site=None, background=false))]
    fn spawn(
        &self,
        py: Python<'_>,
        task: Py<PyAny>,
        site: Option<(Py<PyAny>, i32)>,
        background: bool,
    ) -> PyResult<usize> {
        let inner = &self.inner;
        let tid = inner.explored_thread()?;
        let mut st = inner.lock_state(py);
        let child = st.explorer.child_id(tid);
        if background {
            st.explorer.set_background(child);
        }
        Inner::thread_mut(&mut st, child).task = Some(task);
        inner.step_at(py, st, tid, Op::Spawn { child }, "start", site)?;
        Ok(child)
    }

    /// The OS thread id of the worker set aside for explored thread `child` when it was started,
    /// if one was idle then (`Thread.ident` once `start()` returns).
    fn worker_ident(&self, py: Python<'_>, child: usize) -> Option<u64> {
        let st = self.inner.lock_state(py);
        let slot = st.exec.threads.get(child)?.slot?;
        st.slots.get(slot).map(|s| s.ident)
    }

    #[pyo3(signature = (child, site=None))]
    fn join(&self, py: Python<'_>, child: usize, site: Option<(Py<PyAny>, i32)>) -> PyResult<()> {
        let inner = &self.inner;
        let tid = inner.explored_thread()?;
        let st = inner.lock_state(py);
        inner.step_at(py, st, tid, Op::Join { child }, "join", site)
    }

    /// `join(timeout)`: looks whether `child` is alive (ordered against its exit, like
    /// `is_alive`); while it is, waits for its exit, and times out when nothing else can run.
    /// `any_time`: times out at the first look that finds it alive. Returns whether the child
    /// has ended.
    #[pyo3(signature = (child, timeout, site=None, any_time=false))]
    fn timed_join(
        &self,
        py: Python<'_>,
        child: usize,
        timeout: f64,
        site: Option<(Py<PyAny>, i32)>,
        any_time: bool,
    ) -> PyResult<bool> {
        let inner = &self.inner;
        let tid = inner.explored_thread()?;
        let mut st = inner.lock_state(py);
        let deadline = Inner::deadline_in(&st, tid, timeout.max(0.0));
        let alive = |st: &State| st.exec.threads.get(child).is_some_and(|t| t.live);
        let mut waiting = false;
        loop {
            if waiting {
                let th = &mut st.exec.threads[tid];
                th.blocked = true;
                th.deadline = Some(deadline);
                th.joining = Some(child);
            }
            let site_copy = site.as_ref().map(|(f, l)| (f.clone_ref(py), *l));
            inner.step_at(py, st, tid, Op::read(LIVENESS, child as u64), "join", site_copy)?;
            st = inner.lock_state(py);
            let th = &mut st.exec.threads[tid];
            let timed_out = std::mem::take(&mut th.timed_out);
            th.deadline = None;
            if !alive(&st) {
                return Ok(true);
            }
            if timed_out || timeout <= 0.0 || any_time {
                return Ok(false);
            }
            waiting = true;
        }
    }

    /// Whether explored thread `child` (engine id) has been started and not exited. From an
    /// explored thread the look is a step, ordered against the child's exit (a polling loop
    /// `while t.is_alive()` sees it end where the schedule says).
    #[pyo3(signature = (child, site=None))]
    fn is_alive(&self, py: Python<'_>, child: usize, site: Option<(Py<PyAny>, i32)>) -> PyResult<bool> {
        let inner = &self.inner;
        if let Some(tid) = inner.current() {
            let st = inner.lock_state(py);
            inner.step_at(py, st, tid, Op::read(LIVENESS, child as u64), "is_alive", site)?;
        }
        let st = inner.lock_state(py);
        Ok(st.exec.threads.get(child).is_some_and(|t| t.live))
    }

    /// Whether a thread that is not a background thread (the caller included) is alive: if not,
    /// nothing a background thread waits for can still come from the program.
    fn foreground_alive(&self, py: Python<'_>) -> bool {
        let st = self.inner.lock_state(py);
        (0..st.exec.threads.len()).any(|t| st.exec.threads[t].live && !st.explorer.is_background(t))
    }

    /// Whether `lock` (cooperative) is held in the model, and by the current thread.
    fn lock_state(&self, py: Python<'_>, lock: &Bound<'_, PyAny>) -> (bool, bool) {
        let mut st = self.inner.lock_state(py);
        let n = Some(Inner::lock_number(&mut st, lock));
        match n.and_then(|n| st.exec.owners.get(&n)) {
            Some(&o) => (true, Some(o) == self.inner.current()),
            None => (false, false),
        }
    }
}

/// The objects in `objects` (a list only this call sees) whose exact type is one of `classes`:
/// the stable hash's look for instances from before an exploration, in one pass whatever the
/// number of classes (the collector's `get_referrers` compares every reference with every class).
#[pyfunction]
fn _instances_of<'py>(objects: &Bound<'py, PyList>, classes: &Bound<'py, PyTuple>) -> Vec<Bound<'py, PyAny>> {
    let wanted: std::collections::HashSet<usize, crate::rewrite::FastHash> =
        classes.iter().map(|cls| cls.as_ptr() as usize).collect();
    let py = objects.py();
    let mut found = Vec::new();
    for i in 0..objects.len() {
        // Borrowed, without a reference count per object: nothing else holds the list.
        let obj = unsafe { ffi::PyList_GetItem(objects.as_ptr(), i as ffi::Py_ssize_t) };
        if obj.is_null() {
            break;
        }
        if wanted.contains(&(unsafe { ffi::Py_TYPE(obj) } as usize)) {
            found.push(unsafe { Bound::from_borrowed_ptr(py, obj) });
        }
    }
    found
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<DporRuntime>()?;
    m.add_function(wrap_pyfunction!(_instances_of, m)?)?;
    Ok(())
}
