//! The report natives that rewritten code calls, `recording()`'s machinery, and the sink the
//! DPOR runtime registers.
//!
//! # How rewritten code reaches this file
//!
//! At import of `frontrun._native`, two names are put into `builtins`:
//! `__frontrun_on__` (a bool: is anyone listening?) and `__frontrun_report__` (the native
//! below). Every injected site is `if __frontrun_on__: __frontrun_report__(*values, site)`
//! where `site = (kind_code, line, name)` is a constant of the rewritten code object
//! (`crate::rewrite::SiteKind`). The natives never raise into user code (failures are counted:
//! `_native.report_errors()`), never import, and do nothing unless a sink is set or the
//! calling thread is recording.
//!
//! # API for the runtime (Rust)
//!
//! ```ignore
//! use crate::python::report_py::{set_sink, activate, deactivate, Event, Sink};
//! let previous = set_sink(Some(Arc::new(|py: Python<'_>, e: &Event| { /* ... */ })));
//! activate(py);            // refcounted: turns __frontrun_on__ on for every thread
//! ...                      // run the exploration
//! deactivate(py);
//! set_sink(previous);
//! ```
//!
//! * The sink is called on the thread that executed the access, attached to the interpreter
//!   (`py`), *before* the access happens, with no lock of this module held: it may block the
//!   thread (a scheduling point) — detach (`py.detach`) while waiting so other threads run.
//! * Reports made while the sink runs on the same thread (e.g. a finalizer) are dropped.
//! * `Event` fields: `kind`, `obj`, `key` (see `EventKind` for what they hold per kind),
//!   `method` (call kinds), `args` (builtin calls, calls with arguments), `result` (call_return), `line` (from the site),
//!   `code` (the reporting frame's code object: `co_filename`, `co_qualname`).
//! * `activate`/`deactivate` may be called from any thread; `recording()` uses the same count.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyComplex, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PyModule, PyString, PyTuple,
    PyWeakrefReference,
};

use crate::rewrite::{SiteKind, GUARD_NAME, REPORT_NAME};

/// What an event is about; `obj` and `key` per kind:
///
/// | kind | obj | key |
/// |---|---|---|
/// | attr_load / attr_store / attr_delete | the object | attribute name |
/// | item_load / item_store / item_delete | the container | the subscript (a `slice` for slicing) |
/// | global_load / global_store / global_delete | the module globals (builtins dict for a load of a name only there) | name |
/// | cell_load / cell_store / cell_delete | the cell object | variable name |
/// | call | the receiver | method name (also `method`); `args` = first one or two arguments |
/// | call_return | the receiver | method name; `result` = returned object |
/// | builtin_call | the callable | the name it was called by; `args` = first one or two arguments |
/// | inplace | the left operand (the object an augmented assignment updates) | operator (`"+="`) |
/// | with_enter | the context manager | None |
/// | name_load / name_store / name_delete | None | name (policy `all`) |
/// | call_site | the callable (or `self` of a method pair) | None; `args` = first one or two arguments (a call with arguments under `shared`, every call under `all`) |
/// | contains | the container of `x in c` / `x not in c` (a read of its contents) | None |
/// | iter | the iterable of `for`/comprehension (`GET_ITER`: a read of the whole object) | None |
/// | iter_next | a container a loop the runtime follows reads at its next step (made by the runtime, never by a site) | None |
/// | operand | an operand whose contents are read: truth test, comparison, binary operator (one event per operand), unpacking, `*`/`**` expansion, f-string formatting | None |
///
/// `builtin_call` is also reported for the reading builtins called by plain name with
/// positional arguments (`methods::READING_BUILTINS`: `len sorted enumerate str ...`): `obj` is
/// the callable, `args[0]` the container whose size or contents the call reads.
///
/// Events on an exact immutable builtin (`int float complex bool str bytes tuple frozenset
/// None`: the left operand of `+=`, the object of an attribute/subscript/method/`in`/`for`, the
/// first argument of a builtin call) are never made: nothing can write those objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    AttrLoad,
    AttrStore,
    AttrDelete,
    ItemLoad,
    ItemStore,
    ItemDelete,
    GlobalLoad,
    GlobalStore,
    GlobalDelete,
    CellLoad,
    CellStore,
    CellDelete,
    Call,
    CallReturn,
    BuiltinCall,
    Inplace,
    WithEnter,
    NameLoad,
    NameStore,
    NameDelete,
    CallSite,
    Contains,
    Iter,
    IterNext,
    Operand,
    Yield,
}

impl EventKind {
    fn of(site: SiteKind) -> EventKind {
        match site {
            SiteKind::AttrLoad => EventKind::AttrLoad,
            SiteKind::AttrStore => EventKind::AttrStore,
            SiteKind::AttrDelete => EventKind::AttrDelete,
            SiteKind::ItemLoad | SiteKind::SliceLoad => EventKind::ItemLoad,
            SiteKind::ItemStore | SiteKind::SliceStore => EventKind::ItemStore,
            SiteKind::ItemDelete => EventKind::ItemDelete,
            SiteKind::GlobalLoad => EventKind::GlobalLoad,
            SiteKind::GlobalStore => EventKind::GlobalStore,
            SiteKind::GlobalDelete => EventKind::GlobalDelete,
            SiteKind::CellLoad => EventKind::CellLoad,
            SiteKind::CellStore => EventKind::CellStore,
            SiteKind::CellDelete => EventKind::CellDelete,
            SiteKind::Call | SiteKind::CallBound => EventKind::Call,
            SiteKind::CallReturn => EventKind::CallReturn,
            SiteKind::BuiltinCall => EventKind::BuiltinCall,
            SiteKind::Inplace => EventKind::Inplace,
            SiteKind::WithEnter => EventKind::WithEnter,
            SiteKind::NameLoad => EventKind::NameLoad,
            SiteKind::NameStore => EventKind::NameStore,
            SiteKind::NameDelete => EventKind::NameDelete,
            SiteKind::CallSite => EventKind::CallSite,
            SiteKind::Contains => EventKind::Contains,
            SiteKind::Iter => EventKind::Iter,
            SiteKind::Operand => EventKind::Operand,
            SiteKind::Yield => EventKind::Yield,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::AttrLoad => "attr_load",
            EventKind::AttrStore => "attr_store",
            EventKind::AttrDelete => "attr_delete",
            EventKind::ItemLoad => "item_load",
            EventKind::ItemStore => "item_store",
            EventKind::ItemDelete => "item_delete",
            EventKind::GlobalLoad => "global_load",
            EventKind::GlobalStore => "global_store",
            EventKind::GlobalDelete => "global_delete",
            EventKind::CellLoad => "cell_load",
            EventKind::CellStore => "cell_store",
            EventKind::CellDelete => "cell_delete",
            EventKind::Call => "call",
            EventKind::CallReturn => "call_return",
            EventKind::BuiltinCall => "builtin_call",
            EventKind::Inplace => "inplace",
            EventKind::WithEnter => "with_enter",
            EventKind::NameLoad => "name_load",
            EventKind::NameStore => "name_store",
            EventKind::NameDelete => "name_delete",
            EventKind::CallSite => "call_site",
            EventKind::Contains => "contains",
            EventKind::Iter => "iter",
            EventKind::IterNext => "iter_next",
            EventKind::Operand => "operand",
            EventKind::Yield => "yield",
        }
    }

    /// Whether the access may change the object (for consumers that only need read/write).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            EventKind::AttrStore
                | EventKind::AttrDelete
                | EventKind::ItemStore
                | EventKind::ItemDelete
                | EventKind::GlobalStore
                | EventKind::GlobalDelete
                | EventKind::CellStore
                | EventKind::CellDelete
                | EventKind::Inplace
        )
    }
}

/// One reported access, made before the access happens.
#[derive(Debug)]
pub struct Event {
    pub kind: EventKind,
    pub obj: Py<PyAny>,
    pub key: Py<PyAny>,
    pub method: Option<Py<PyAny>>,
    pub args: Option<Py<PyTuple>>,
    pub result: Option<Py<PyAny>>,
    pub line: Option<i32>,
    /// The reporting frame's code object.
    pub code: Option<Py<PyAny>>,
}

/// A sink may return a replacement for the iterable of an `iter` event (the object the
/// loop's `GET_ITER` then runs on); for other events its return value is ignored.
impl Event {
    /// An event about `obj` alone: no key, method, arguments or result.
    pub fn about(py: Python<'_>, kind: EventKind, obj: Py<PyAny>, line: Option<i32>, code: Option<Py<PyAny>>) -> Event {
        Event { kind, obj, key: py.None(), method: None, args: None, result: None, line, code }
    }
}

pub type Sink = Arc<dyn Fn(Python<'_>, &Event) -> Option<Py<PyAny>> + Send + Sync>;

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
/// Listeners (activations) alive; the guard is on while this is above zero.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Set while an execution watches generators of the test's state: every report from inside
/// a generator is then a place its thread can be preempted while the generator runs, even a
/// report on an immutable object (`i += 1` on a local int), so those are not dropped there
/// (`nothing_shared`).
pub(crate) static WATCHING_GENERATORS: AtomicBool = AtomicBool::new(false);
/// Serialises flips of the builtins flag so it always ends equal to `ACTIVE > 0`.
static FLIP: Mutex<()> = Mutex::new(());
static BUILTINS: OnceLock<Py<PyDict>> = OnceLock::new();
/// Rewritten modules whose globals hold the two names themselves (`_keep_names_in`); weak, so
/// that finalization still frees a module's globals and the objects in them.
static PINNED: Mutex<Vec<Py<PyWeakrefReference>>> = Mutex::new(Vec::new());
static METHOD_TYPE: OnceLock<Py<PyAny>> = OnceLock::new();
/// `type(object.__setattr__)`: an unbound slot wrapper.
static SLOT_WRAPPER_TYPE: OnceLock<Py<PyAny>> = OnceLock::new();
static ERRORS: AtomicU64 = AtomicU64::new(0);
/// Tests: build every event even with no one to deliver it to (exercises the natives fully
/// without keeping objects alive).
static BUILD_UNHEARD: AtomicBool = AtomicBool::new(false);
static LAST_ERROR: Mutex<Option<String>> = Mutex::new(None);

thread_local! {
    /// This thread's active `recording()` lists, innermost last.
    static RECORDERS: RefCell<Vec<Py<PyList>>> = const { RefCell::new(Vec::new()) };
    /// Set while this thread is inside a report (sink or recording), to drop re-entrant ones.
    static IN_REPORT: Cell<bool> = const { Cell::new(false) };
    /// Set while this thread may be inside a consuming call (`lst.extend(gen)`, the runtime's
    /// `consuming`): a report from inside it, even one on nothing shared (the generator's
    /// `yield`), is a place another thread can see the container part way through, so none is
    /// dropped until the runtime has seen the call end.
    static CONSUMING: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread may be inside a consuming call (see `CONSUMING`).
pub(crate) fn consuming() -> bool {
    CONSUMING.try_with(Cell::get).unwrap_or(false)
}

pub(crate) fn set_consuming(on: bool) {
    let _ = CONSUMING.try_with(|c| c.set(on));
}

/// Install (or replace, or with `None` remove) the sink; returns the previous one.
pub fn set_sink(sink: Option<Sink>) -> Option<Sink> {
    let mut slot = SINK.write().unwrap_or_else(|e| e.into_inner());
    std::mem::replace(&mut *slot, sink)
}

fn set_flag(py: Python<'_>) {
    let _order = FLIP.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(b) = BUILTINS.get() {
        let on = ACTIVE.load(Ordering::SeqCst) > 0;
        if let Err(e) = b.bind(py).set_item(GUARD_NAME, on) {
            note_error(py, e);
        }
        for module in PINNED.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if let Some(module) = module.bind(py).upgrade_as::<PyModule>().ok().flatten() {
                if let Err(e) = module.dict().set_item(GUARD_NAME, on) {
                    note_error(py, e);
                }
            }
        }
    }
}

/// Puts the guard and the report native into `module`'s globals (which `LOAD_GLOBAL` searches
/// before builtins) and keeps that flag in step from now on. Called at exit for rewritten
/// modules: CPython's finalization then puts back the builtins it started with, before the
/// last collections run `__del__` methods and suspended generators' `finally` blocks.
#[pyfunction]
fn _keep_names_in(py: Python<'_>, module: Bound<'_, PyModule>) -> PyResult<()> {
    let _order = FLIP.lock().unwrap_or_else(|e| e.into_inner());
    let namespace = module.dict();
    let report = BUILTINS.get().and_then(|b| b.bind(py).get_item(REPORT_NAME).ok().flatten());
    namespace.set_item(REPORT_NAME, report)?;
    namespace.set_item(GUARD_NAME, ACTIVE.load(Ordering::SeqCst) > 0)?;
    let weak = PyWeakrefReference::new(&module)?;
    PINNED.lock().unwrap_or_else(|e| e.into_inner()).push(weak.unbind());
    Ok(())
}

/// One more listener: reports are made from now on (by every thread).
pub fn activate(py: Python<'_>) {
    if ACTIVE.fetch_add(1, Ordering::SeqCst) == 0 {
        set_flag(py);
    }
}

/// One listener fewer; the guard turns off with the last one.
pub fn deactivate(py: Python<'_>) {
    let previous = ACTIVE.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    if previous == Ok(1) {
        set_flag(py);
    }
}

fn note_error(py: Python<'_>, e: PyErr) {
    ERRORS.fetch_add(1, Ordering::Relaxed);
    let text = e.value(py).repr().map(|r| r.to_string()).unwrap_or_else(|_| "?".into());
    *LAST_ERROR.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
}

fn note_panic(what: &str) {
    ERRORS.fetch_add(1, Ordering::Relaxed);
    *LAST_ERROR.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("panic: {what}"));
}

/// `co_flags` bit of a generator function's code.
const CO_GENERATOR: u32 = 0x20;

/// Whether `code` is a generator function's.
pub(crate) fn is_generator_code(code: &Bound<'_, PyAny>) -> bool {
    code.getattr(pyo3::intern!(code.py(), "co_flags"))
        .and_then(|flags| flags.extract::<u32>())
        .is_ok_and(|flags| flags & CO_GENERATOR != 0)
}

/// Whether `code` was rewritten (its names hold the guard's): it reports, so a thread running
/// it can be preempted there.
pub(crate) fn is_rewritten_code(code: &Bound<'_, PyAny>) -> bool {
    code.getattr(pyo3::intern!(code.py(), "co_names")).and_then(|names| names.contains(GUARD_NAME)).unwrap_or(false)
}

/// The frame, from the reporting one up through its callers, that `caller` called (its
/// `f_back` is `caller`); None when `caller` is not among the reporting frame's callers.
pub(crate) fn frame_called_by<'py>(py: Python<'py>, caller: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    let mut frame = calling_frame(py)?;
    for _ in 0..64 {
        match frame.getattr(pyo3::intern!(py, "f_back")) {
            Ok(back) if back.is(caller) => return Some(frame),
            Ok(back) if !back.is_none() => frame = back,
            _ => return None,
        }
    }
    None
}

/// Whether generators are watched and `code` (looked up only then) is a generator's: a
/// report from there is a place to preempt a running generator, even one on nothing shared.
pub(crate) fn in_watched_generator(py: Python<'_>, code: impl FnOnce() -> Option<Py<PyAny>>) -> bool {
    WATCHING_GENERATORS.load(Ordering::Relaxed) && code().is_some_and(|code| is_generator_code(code.bind(py)))
}

/// The reporting frame's code object (the caller of the native).
fn calling_code(py: Python<'_>) -> Option<Py<PyAny>> {
    // SAFETY: attached to the interpreter; PyEval_GetFrame returns a borrowed frame (or NULL),
    // PyFrame_GetCode a new reference.
    unsafe {
        let frame = ffi::PyEval_GetFrame();
        if frame.is_null() {
            return None;
        }
        let code = ffi::PyFrame_GetCode(frame);
        if code.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        Some(Bound::from_owned_ptr(py, code as *mut ffi::PyObject).unbind())
    }
}

/// The reporting frame itself (the caller of the native).
pub(crate) fn calling_frame(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    // SAFETY: attached; PyEval_GetFrame returns a borrowed frame (or NULL).
    unsafe {
        let frame = ffi::PyEval_GetFrame();
        (!frame.is_null()).then(|| Bound::from_borrowed_ptr(py, frame as *mut ffi::PyObject))
    }
}

/// A fingerprint of the local variables (the identity of each value) of the frame a step
/// comes from, so the engine can tell a loop that spins from one that gets on: the reporting
/// frame, or for a step taken inside frontrun's own primitives or `threading`/`queue`, the
/// first frame outside them; and its callers', with where each frame is, up to the thread's
/// function: a helper called again and again with the same arguments (`describe(x)`,
/// `helper()`) spins only if the loop calling it does. None at module level, where the
/// locals are the module's globals.
/// The frame a step comes from: the reporting frame, or for a step taken inside frontrun's
/// own primitives or `threading`/`queue`, the first frame outside them.
fn program_frame(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    let mut frame = calling_frame(py)?;
    for _ in 0..8 {
        if !ours(&name_of(&frame)) {
            break;
        }
        match frame_back(&frame) {
            Some(b) => frame = b,
            None => break,
        }
    }
    Some(frame)
}

fn name_of(frame: &Bound<'_, PyAny>) -> String {
    let py = frame.py();
    frame
        .getattr(pyo3::intern!(py, "f_globals"))
        .and_then(|g| g.get_item(pyo3::intern!(py, "__name__")))
        .ok()
        .and_then(|n| n.extract::<String>().ok())
        .unwrap_or_default()
}

fn ours(module: &str) -> bool {
    module == "frontrun" || module.starts_with("frontrun.") || module == "threading" || module == "queue"
}

fn frame_back<'py>(frame: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    frame.getattr(pyo3::intern!(frame.py(), "f_back")).ok().filter(|b| !b.is_none())
}

/// Where the frame a step comes from was called: its caller's file and line (explanations
/// show a property's getter or setter at the line that used the property).
pub(crate) fn caller_site(py: Python<'_>) -> Option<(Py<PyAny>, i32)> {
    let caller = frame_back(&program_frame(py)?)?;
    let file = caller.getattr(pyo3::intern!(py, "f_code")).ok()?.getattr(pyo3::intern!(py, "co_filename")).ok()?;
    let line = caller.getattr(pyo3::intern!(py, "f_lineno")).ok()?.extract::<i32>().ok()?;
    Some((file.unbind(), line))
}

pub(crate) fn frame_fingerprint(py: Python<'_>) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut frame = program_frame(py)?;
    let mut h = crate::rewrite::QuickHasher::default();
    for depth in 0..16 {
        let code = frame.getattr(pyo3::intern!(py, "f_code")).ok()?;
        let locals = frame.getattr(pyo3::intern!(py, "f_locals")).ok()?;
        if frame.getattr(pyo3::intern!(py, "f_globals")).ok().is_some_and(|g| g.is(&locals)) {
            if depth == 0 {
                return None;
            }
            break; // a module's code called it: its globals are not a loop's state
        }
        code.as_ptr().hash(&mut h);
        // Where each frame is: a poll reads at one place; straight-line code that reads one
        // name at several (`isinstance` thrice) has not gone round.
        frame.getattr(pyo3::intern!(py, "f_lasti")).ok()?.extract::<i64>().ok()?.hash(&mut h);
        let values = locals.call_method0(pyo3::intern!(py, "values")).ok()?;
        for v in values.try_iter().ok()? {
            let v = v.ok()?;
            // A number or string by its value: a new one may take a freed one's address (a
            // running total past 256 alternates between two), and a loop that gets on would
            // look as if it came back to a state it was in.
            let scalar = v.is_exact_instance_of::<PyInt>()
                || v.is_exact_instance_of::<PyFloat>()
                || v.is_exact_instance_of::<PyString>()
                || v.is_exact_instance_of::<PyBytes>();
            // (Only theirs is hashed: another's `__hash__` is the program's code.)
            match scalar.then(|| v.hash()) {
                Some(Ok(value)) => (v.get_type().as_ptr(), value).hash(&mut h),
                _ => v.as_ptr().hash(&mut h),
            }
        }
        // Up to the thread's function (frontrun's runner called it), through rewritten code
        // only: a library's frames above (an event loop's `_run_once`, new handles every round)
        // are not the program's loop.
        match frame_back(&frame) {
            Some(b)
                if !ours(&name_of(&b))
                    && b.getattr(pyo3::intern!(py, "f_code")).is_ok_and(|c| is_rewritten_code(&c)) =>
            {
                frame = b
            }
            _ => break,
        }
    }
    Some(h.finish())
}

fn frame_globals(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    // SAFETY: borrowed reference to the current frame's globals, or NULL.
    unsafe {
        let g = ffi::PyEval_GetGlobals();
        (!g.is_null()).then(|| Bound::from_borrowed_ptr(py, g))
    }
}

fn frame_builtins(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    // SAFETY: borrowed reference, never NULL while a frame runs.
    unsafe {
        let b = ffi::PyEval_GetBuiltins();
        (!b.is_null()).then(|| Bound::from_borrowed_ptr(py, b))
    }
}

/// The receiver of a bound method (Python or builtin) whose name is `name`, without running
/// any user code.
fn bound_receiver<'py>(func: &Bound<'py, PyAny>, name: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    let py = func.py();
    let is_method = METHOD_TYPE.get().is_some_and(|t| func.get_type().is(t.bind(py)));
    // SAFETY: type check only.
    let is_builtin = unsafe { ffi::PyCFunction_Check(func.as_ptr()) != 0 };
    if !is_method && !is_builtin {
        return None;
    }
    let own_name = func.getattr("__name__").ok()?;
    if !own_name.eq(name).unwrap_or(false) {
        return None;
    }
    let receiver = func.getattr("__self__").ok()?;
    // A module function's __self__ is its module: not a method call.
    if receiver.is_none() || receiver.cast::<pyo3::types::PyModule>().is_ok() {
        return None;
    }
    Some(receiver)
}

/// Build the event of one report: `values` are what the site fetched from the stack.
fn make_event(py: Python<'_>, site: &Bound<'_, PyTuple>, values: &[Bound<'_, PyAny>]) -> PyResult<Option<Event>> {
    let code: u8 = site.get_item(0)?.extract()?;
    let Some(kind) = SiteKind::from_code(code) else {
        return Err(PyRuntimeError::new_err(format!("unknown site kind {code}")));
    };
    let line: Option<i32> = site.get_item(1)?.extract()?;
    let name = site.get_item(2)?;
    let none = || py.None();
    let value = |i: usize| -> PyResult<Py<PyAny>> {
        values.get(i).map(|v| v.clone().unbind()).ok_or_else(|| PyRuntimeError::new_err("missing report value"))
    };
    let mut event = Event {
        kind: EventKind::of(kind),
        obj: none(),
        key: name.clone().unbind(),
        method: None,
        args: None,
        result: None,
        line,
        code: None,
    };
    match kind {
        SiteKind::AttrLoad
        | SiteKind::AttrStore
        | SiteKind::AttrDelete
        | SiteKind::CellLoad
        | SiteKind::CellStore
        | SiteKind::CellDelete
        | SiteKind::Inplace => event.obj = value(0)?,
        SiteKind::WithEnter => {
            event.obj = value(0)?;
            event.key = none();
        }
        // The key is the site's name: None, or `yield from`'s.
        SiteKind::Iter => event.obj = value(0)?,
        SiteKind::Contains => {
            event.obj = value(0)?;
            event.key = if values.len() > 1 { value(1)? } else { none() };
        }
        // The key is the site's name: None, or what reads the operand (a class pattern).
        SiteKind::Operand => event.obj = value(0)?,
        SiteKind::CallSite => {
            event.obj = value(0)?;
            event.key = none();
            event.args = passed(py, values)?;
        }
        SiteKind::ItemLoad | SiteKind::ItemStore | SiteKind::ItemDelete => {
            event.obj = value(0)?;
            event.key = value(1)?;
        }
        SiteKind::SliceLoad | SiteKind::SliceStore => {
            event.obj = value(0)?;
            // SAFETY: PySlice_New takes borrowed start/stop and returns a new reference.
            event.key = unsafe {
                let s = ffi::PySlice_New(values[1].as_ptr(), values[2].as_ptr(), std::ptr::null_mut());
                Bound::from_owned_ptr_or_err(py, s)?.unbind()
            };
        }
        SiteKind::GlobalLoad | SiteKind::GlobalStore | SiteKind::GlobalDelete => {
            let Some(globals) = frame_globals(py) else { return Ok(None) };
            let mut owner = globals;
            if kind == SiteKind::GlobalLoad {
                if let Ok(dict) = owner.cast::<PyDict>() {
                    if !dict.contains(&name)? {
                        if let Some(b) = frame_builtins(py) {
                            owner = b;
                        }
                    }
                }
            }
            event.obj = owner.unbind();
        }
        SiteKind::NameLoad | SiteKind::NameStore | SiteKind::NameDelete | SiteKind::Yield => {}
        SiteKind::Call | SiteKind::CallReturn if values[0].cast::<pyo3::types::PyModule>().is_ok() => {
            // `module.function()`: a function call, not a method call on a receiver.
            if kind == SiteKind::CallReturn || values.len() < 2 {
                return Ok(None);
            }
            let Some(function) = name.cast::<PyString>().ok().and_then(|n| values[0].getattr(n).ok()) else {
                return Ok(None);
            };
            plain_call(py, &mut event, function.unbind(), values)?;
        }
        SiteKind::Call => {
            event.obj = value(0)?;
            event.method = Some(name.clone().unbind());
            event.args = passed(py, values)?;
        }
        SiteKind::CallReturn => {
            event.obj = value(0)?;
            event.result = Some(value(1)?);
            event.method = Some(name.clone().unbind());
        }
        SiteKind::CallBound => match bound_receiver(&values[0], &name) {
            Some(receiver) => {
                event.obj = receiver.unbind();
                event.method = Some(name.clone().unbind());
                event.args = passed(py, values)?;
            }
            // A function reached through an attribute (`module.function(x)`).
            None if values.len() > 1 => plain_call(py, &mut event, value(0)?, values)?,
            None => return Ok(None),
        },
        SiteKind::BuiltinCall => {
            event.obj = value(0)?;
            event.args = Some(PyTuple::new(py, &values[1..])?.unbind());
            event.method = Some(name.clone().unbind());
        }
    }
    event.code = calling_code(py);
    Ok(Some(event))
}

/// `event` becomes the `call_site` of a function called with `values[1..]`.
fn plain_call(py: Python<'_>, event: &mut Event, function: Py<PyAny>, values: &[Bound<'_, PyAny>]) -> PyResult<()> {
    event.kind = EventKind::CallSite;
    event.obj = function;
    event.key = py.None();
    event.method = None;
    event.args = passed(py, values)?;
    Ok(())
}

/// The argument values a call report fetched after its callable or receiver, if any.
fn passed(py: Python<'_>, values: &[Bound<'_, PyAny>]) -> PyResult<Option<Py<PyTuple>>> {
    Ok(if values.len() > 1 { Some(PyTuple::new(py, &values[1..])?.unbind()) } else { None })
}

/// Whether `obj` is an unbound slot wrapper (`object.__setattr__`, `dict.__setitem__`).
pub fn is_slot_wrapper(obj: &Bound<'_, PyAny>) -> bool {
    SLOT_WRAPPER_TYPE.get().is_some_and(|t| obj.get_type().is(t.bind(obj.py())))
}

/// Deliver one report; returns the sink's replacement for an `iter` event's iterable.
fn deliver(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Option<Py<PyAny>>> {
    let n = args.len();
    if n == 0 {
        return Ok(None);
    }
    let recorders: Vec<Py<PyList>> =
        RECORDERS.try_with(|r| r.borrow().iter().map(|l| l.clone_ref(py)).collect()).unwrap_or_default();
    let sink = SINK.read().unwrap_or_else(|e| e.into_inner()).clone();
    if recorders.is_empty() && sink.is_none() && !BUILD_UNHEARD.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let site = args.get_item(n - 1)?.cast_into::<PyTuple>()?;
    let values: Vec<Bound<'_, PyAny>> = args.iter().take(n - 1).collect();
    let Some(event) = make_event(py, &site, &values)? else { return Ok(None) };
    let replacement = match sink {
        Some(sink) => sink(py, &event).filter(|_| event.kind == EventKind::Iter),
        None => None,
    };
    if !recorders.is_empty() {
        let record = Py::new(py, Record { event })?;
        for list in recorders {
            list.bind(py).append(record.clone_ref(py))?;
        }
    }
    Ok(replacement)
}

/// Hands an event the runtime made itself (a loop's next step) to the sink, with the same
/// guarantees as a report: nothing raised, re-entrant reports dropped. Returns the sink's
/// answer (an `iter` event's stand-in iterable).
pub fn deliver_event(py: Python<'_>, mut event: Event) -> Option<Py<PyAny>> {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let sink = SINK.read().unwrap_or_else(|e| e.into_inner()).clone()?;
    in_report(py, "loop report", || {
        event.code = calling_code(py);
        Ok(sink(py, &event))
    })
    .flatten()
}

/// Runs `f` as this thread's report: `None` if the thread is already inside one (a report
/// from a finalizer the sink triggered), or if `f` failed or panicked (counted, never raised).
fn in_report<R>(py: Python<'_>, what: &str, f: impl FnOnce() -> PyResult<R>) -> Option<R> {
    if !IN_REPORT.try_with(|f| !f.replace(true)).unwrap_or(false) {
        return None;
    }
    let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(r)) => Some(r),
        Ok(Err(e)) => {
            note_error(py, e);
            None
        }
        Err(p) => {
            note_panic(p.downcast_ref::<&str>().copied().unwrap_or(what));
            None
        }
    };
    let _ = IN_REPORT.try_with(|f| f.set(false));
    outcome
}

/// Exactly one of the builtin immutable types (subclasses may carry a `__dict__` or a
/// mutable `__iadd__`, so they are not excluded).
fn immutable(o: &Bound<'_, PyAny>) -> bool {
    o.is_none()
        || o.is_exact_instance_of::<PyInt>()
        || o.is_exact_instance_of::<PyString>()
        || o.is_exact_instance_of::<PyTuple>()
        || o.is_exact_instance_of::<PyFloat>()
        || o.is_exact_instance_of::<PyBool>()
        || o.is_exact_instance_of::<PyBytes>()
        || o.is_exact_instance_of::<PyFrozenSet>()
        || o.is_exact_instance_of::<PyComplex>()
}

/// `immutable`, and for a tuple what it holds too: a tuple given to a call may hold lists the
/// call reads (`json.dumps((a, b))`).
fn immutable_through(o: &Bound<'_, PyAny>) -> bool {
    match o.cast_exact::<PyTuple>() {
        Ok(t) => t.len() <= 16 && t.iter().all(|i| !i.is_exact_instance_of::<PyTuple>() && immutable(&i)),
        Err(_) => immutable(o),
    }
}

/// Callables whose path argument (a string) names a file they read or write (`open`,
/// `os.remove`, ...): the runtime sets them (`DporRuntime(path_functions=...)`), by address.
pub(crate) static PATH_CALLEES: std::sync::RwLock<Vec<usize>> = std::sync::RwLock::new(Vec::new());

fn is_path_callee(f: &Bound<'_, PyAny>) -> bool {
    PATH_CALLEES.read().unwrap_or_else(|p| p.into_inner()).contains(&(f.as_ptr() as usize))
}

/// A report whose object is provably not shared mutable state: an exact immutable builtin
/// (`x += 1` on an int rebinds; `s.upper`, `t[0]`, `len(s)`, `c in t`, `for c in s` read
/// something no thread can write). Such an object is never written, so an event on it can
/// never conflict with another thread's: dropping it changes no exploration. Checked before
/// anything is built. (Not dropped: global loads of names found only in builtins: another
/// thread's `builtins.len = ...` is a write of the same dict entry.)
fn nothing_shared(args: &Bound<'_, PyTuple>) -> bool {
    let n = args.len();
    let Some(Ok(site)) = n.checked_sub(1).map(|last| args.get_borrowed_item(last)) else { return false };
    let Ok(site) = site.cast::<PyTuple>() else { return false };
    let Ok(code) = site.get_borrowed_item(0).and_then(|c| c.extract::<u8>()) else { return false };
    // A yield accesses nothing: it matters only inside a watched generator (see `report`).
    if code == SiteKind::Yield as u8 {
        return true;
    }
    if n < 2 {
        return false;
    }
    let value = |i: usize| args.get_borrowed_item(i).is_ok_and(|v| immutable(&v));
    let argument = |i: usize| args.get_borrowed_item(i).is_ok_and(|v| immutable_through(&v));
    match SiteKind::from_code(code) {
        Some(
            SiteKind::Inplace
            | SiteKind::AttrLoad
            | SiteKind::AttrStore
            | SiteKind::AttrDelete
            | SiteKind::ItemLoad
            | SiteKind::ItemStore
            | SiteKind::ItemDelete
            | SiteKind::SliceLoad
            | SiteKind::SliceStore
            | SiteKind::CallReturn
            | SiteKind::Contains
            | SiteKind::Iter
            | SiteKind::Operand,
        ) => value(0),
        // values: the callable, then the object the builtin reads or writes.
        Some(SiteKind::BuiltinCall) => n >= 3 && argument(1),
        // values: the receiver, then arguments a C method may read.
        Some(SiteKind::Call) => value(0) && (1..n - 1).all(argument),
        // values: the callable, then arguments (a call without any is kept: policy `all`).
        // A slot wrapper (`object.__setattr__(self, "x", v)`) writes the object it is given.
        Some(SiteKind::CallSite) => {
            n >= 3
                && (1..n - 1).all(argument)
                && args.get_borrowed_item(0).is_ok_and(|f| !is_slot_wrapper(&f) && !is_path_callee(&f))
        }
        _ => false,
    }
}

/// `__frontrun_report__(*values, site)`: never raises, never imports. Returns the first value
/// (or what the runtime substitutes for an `iter` site's iterable): an `iter` site's
/// injected code runs `GET_ITER` on the result, every other site pops it.
#[pyfunction(signature = (*args))]
fn report(py: Python<'_>, args: &Bound<'_, PyTuple>) -> Py<PyAny> {
    let first = || args.get_item(0).map(Bound::unbind).unwrap_or_else(|_| py.None());
    if ACTIVE.load(Ordering::Relaxed) == 0
        || (nothing_shared(args) && !in_watched_generator(py, || calling_code(py)) && !consuming())
    {
        return first();
    }
    in_report(py, "report", || deliver(py, args)).flatten().unwrap_or_else(first)
}

/// One event as `recording()` returns it.
#[pyclass(frozen, name = "Event", module = "frontrun._native")]
pub struct Record {
    event: Event,
}

#[pymethods]
impl Record {
    #[getter]
    fn kind(&self) -> &'static str {
        self.event.kind.as_str()
    }
    #[getter]
    fn obj(&self, py: Python<'_>) -> Py<PyAny> {
        self.event.obj.clone_ref(py)
    }
    #[getter]
    fn key(&self, py: Python<'_>) -> Py<PyAny> {
        self.event.key.clone_ref(py)
    }
    #[getter]
    fn method(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.event.method.as_ref().map(|m| m.clone_ref(py))
    }
    #[getter]
    fn args(&self, py: Python<'_>) -> Option<Py<PyTuple>> {
        self.event.args.as_ref().map(|a| a.clone_ref(py))
    }
    #[getter]
    fn result(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.event.result.as_ref().map(|r| r.clone_ref(py))
    }
    #[getter]
    fn line(&self) -> Option<i32> {
        self.event.line
    }
    #[getter]
    fn code(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.event.code.as_ref().map(|c| c.clone_ref(py))
    }
    #[getter]
    fn file(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        let code = self.event.code.as_ref()?;
        code.bind(py).getattr("co_filename").ok().map(|f| f.unbind())
    }
    #[getter]
    fn is_write(&self) -> bool {
        self.event.kind.is_write()
    }
    fn __repr__(&self, py: Python<'_>) -> String {
        let short = |o: &Py<PyAny>| {
            let b = o.bind(py);
            if b.is_none() || b.cast::<PyString>().is_ok() {
                b.repr().map(|r| r.to_string()).unwrap_or_default()
            } else {
                format!(
                    "<{} at {:#x}>",
                    b.get_type().name().map(|n| n.to_string()).unwrap_or_default(),
                    b.as_ptr() as usize
                )
            }
        };
        format!(
            "Event({}, obj={}, key={}, line={})",
            self.event.kind.as_str(),
            short(&self.event.obj),
            short(&self.event.key),
            self.event.line.map_or("None".to_string(), |l| l.to_string())
        )
    }
}

/// Start recording this thread's events into a new list (which is returned and filled live).
#[pyfunction]
fn _recording_begin(py: Python<'_>) -> PyResult<Py<PyList>> {
    let list = PyList::empty(py).unbind();
    RECORDERS.with(|r| r.borrow_mut().push(list.clone_ref(py)));
    activate(py);
    Ok(list)
}

/// Stop the recording that `_recording_begin` returned `events` for.
#[pyfunction]
fn _recording_end(py: Python<'_>, events: &Bound<'_, PyList>) {
    let removed = RECORDERS
        .try_with(|r| {
            let mut r = r.borrow_mut();
            match r.iter().rposition(|l| l.bind(py).is(events)) {
                Some(p) => {
                    r.remove(p);
                    true
                }
                None => false,
            }
        })
        .unwrap_or(false);
    if removed {
        deactivate(py);
    }
}

/// Tests and examples: install a sink that hands each event (as an `Event` record) to the
/// Python callable `callback` on the reporting thread, or remove the sink with None. A real
/// runtime installs its own Rust closure with `set_sink`.
#[pyfunction]
#[pyo3(signature = (callback))]
fn _set_python_sink(callback: Option<Py<PyAny>>) {
    let sink: Option<Sink> = callback.map(|cb| {
        Arc::new(move |py: Python<'_>, event: &Event| {
            let copy = Event {
                kind: event.kind,
                obj: event.obj.clone_ref(py),
                key: event.key.clone_ref(py),
                method: event.method.as_ref().map(|m| m.clone_ref(py)),
                args: event.args.as_ref().map(|a| a.clone_ref(py)),
                result: event.result.as_ref().map(|r| r.clone_ref(py)),
                line: event.line,
                code: event.code.as_ref().map(|c| c.clone_ref(py)),
            };
            let outcome = Py::new(py, Record { event: copy }).and_then(|r| cb.call1(py, (r,)));
            if let Err(e) = outcome {
                note_error(py, e);
            }
            None
        }) as Sink
    });
    set_sink(sink);
}

/// Mute (`True`) or unmute this thread's reports, as if it were inside one; returns whether
/// they were muted. An explored thread's import runs muted: a module body runs in the first
/// execution only, so its events would make the next executions differ.
#[pyfunction]
fn _mute_reports(muted: bool) -> bool {
    IN_REPORT.try_with(|f| f.replace(muted)).unwrap_or(false)
}

/// `(count, last_error)` of failures swallowed by the report natives.
#[pyfunction]
fn report_errors() -> (u64, Option<String>) {
    (ERRORS.load(Ordering::Relaxed), LAST_ERROR.lock().unwrap_or_else(|e| e.into_inner()).clone())
}

/// Turn reporting on (refcounted) without recording — for benchmarks and tests. With
/// `build_events`, every report builds its event and drops it.
#[pyfunction]
#[pyo3(signature = (build_events = false))]
fn _reporting_activate(py: Python<'_>, build_events: bool) {
    if build_events {
        BUILD_UNHEARD.store(true, Ordering::Relaxed);
    }
    activate(py);
}

#[pyfunction]
fn _reporting_deactivate(py: Python<'_>) {
    deactivate(py);
}

/// Whether the guard is on.
#[pyfunction]
fn reporting_active() -> bool {
    ACTIVE.load(Ordering::SeqCst) > 0
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Record>()?;
    m.add_function(wrap_pyfunction!(report, m)?)?;
    m.add_function(wrap_pyfunction!(_recording_begin, m)?)?;
    m.add_function(wrap_pyfunction!(_recording_end, m)?)?;
    m.add_function(wrap_pyfunction!(report_errors, m)?)?;
    m.add_function(wrap_pyfunction!(_mute_reports, m)?)?;
    m.add_function(wrap_pyfunction!(_set_python_sink, m)?)?;
    m.add_function(wrap_pyfunction!(_reporting_activate, m)?)?;
    m.add_function(wrap_pyfunction!(_reporting_deactivate, m)?)?;
    m.add_function(wrap_pyfunction!(reporting_active, m)?)?;
    m.add_function(wrap_pyfunction!(_keep_names_in, m)?)?;
    m.add("GUARD_NAME", GUARD_NAME)?;
    m.add("REPORT_NAME", REPORT_NAME)?;
    let types = py.import("types")?;
    let _ = METHOD_TYPE.set(types.getattr("MethodType")?.unbind());
    let _ = SLOT_WRAPPER_TYPE.set(types.getattr("WrapperDescriptorType")?.unbind());
    // The names rewritten code loads; the flag reflects listeners already active (a second
    // import of the module in another interpreter state keeps the first one's value).
    let builtins = py.import("builtins")?.dict();
    builtins.set_item(REPORT_NAME, m.getattr("report")?)?;
    builtins.set_item(GUARD_NAME, ACTIVE.load(Ordering::SeqCst) > 0)?;
    let _ = BUILTINS.set(builtins.unbind());
    Ok(())
}
