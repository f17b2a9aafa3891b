//! Loops over shared containers. A `for` reads its container at every step, not only where
//! it starts: another thread's `d[k] = v` between two steps is what raises "dictionary
//! changed size during iteration", and `lst.remove(x)` there makes the loop skip an element.
//! The `iter` report of a loop over a container (or over a view, container iterator,
//! `enumerate`, `zip`, ... of one) hands back a `LoopIter` for `GET_ITER` to run on; each
//! of its steps reports an `iter_next` read of the containers before it advances the real
//! iterator. Only explored threads get one, so nothing changes outside an exploration.

use std::sync::OnceLock;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString, PyTuple};

use super::report_py::{self, Event, EventKind};
use super::Inner;
use crate::rewrite::sites::YIELD_FROM;

/// How deep `Inner::iterated` looks through iterators for the containers underneath
/// (`enumerate(zip(d.items(), lst))` is four levels).
const LOOK_THROUGH_DEPTH: usize = 4;

/// The iterable of one loop of an explored thread, standing in for it at `GET_ITER`.
#[pyclass(frozen, module = "frontrun._native")]
pub struct LoopIter {
    iterable: Py<PyAny>,
    containers: Vec<Py<PyAny>>,
    line: Option<i32>,
    /// The code object of the loop (its steps inside a generator mark that generator running).
    code: Option<Py<PyAny>>,
    /// `iter(iterable)`, made when `GET_ITER` runs (it may run user code: not inside a report).
    inner: OnceLock<Py<PyAny>>,
    /// The iterable is the program's own, with its own `__iter__`: what that hands back (the
    /// iterator of a container it holds, `return iter(self._d)`) is looked through then.
    discover: bool,
    /// The loop walks a dict's keys (`for k in d`, `d.keys()`): its steps read which keys the
    /// dict holds, not their values (`KEYS_ONLY`).
    keys_only: bool,
}

/// The key of an `iter`/`iter_next` event whose loop walks a dict's keys alone.
pub(super) const KEYS_ONLY: &str = "keys";

#[pymethods]
impl LoopIter {
    fn __iter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        let me = slf.get();
        let py = slf.py();
        if me.inner.get().is_none() {
            let mut it = me.iterable.bind(py).try_iter()?.into_any();
            if me.discover && !it.is(me.iterable.bind(py)) {
                // Marked (key True) as found behind an `__iter__`: not looked behind again.
                let mut ev = Event::about(py, EventKind::Iter, it.clone().unbind(), me.line, None);
                ev.key = PyBool::new(py, true).to_owned().into_any().unbind();
                if let Some(stand_in) = report_py::deliver_event(py, ev) {
                    it = stand_in.bind(py).try_iter()?.into_any();
                }
            }
            let _ = me.inner.set(it.unbind());
        }
        Ok(slf.clone())
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let Some(inner) = self.inner.get() else {
            return Err(PyTypeError::new_err("LoopIter is not an iterator before iter()"));
        };
        if let Some(mut ev) = reads_of(py, EventKind::IterNext, &self.containers, self.line, self.code.as_ref()) {
            if self.keys_only {
                ev.key = pyo3::intern!(py, KEYS_ONLY).clone().into_any().unbind();
            }
            report_py::deliver_event(py, ev);
        }
        // SAFETY: attached; `inner` is an iterator (made by PyObject_GetIter); PyIter_Next
        // returns a new reference, or NULL with or without an exception set (the end).
        unsafe {
            let next = ffi::PyIter_Next(inner.as_ptr());
            if next.is_null() {
                return match PyErr::take(py) {
                    Some(e) => Err(e),
                    None => Ok(None),
                };
            }
            Ok(Some(Bound::from_owned_ptr(py, next).unbind()))
        }
    }
}

/// One report of a loop's reads of its containers, at its start (`Iter`) or a step
/// (`IterNext`): the last container as the event's object, the others as its arguments. The
/// real iterator reads them all after the report (`zip(a, b)`), so they are one step; one
/// report each let another thread write `a` between the steps, before the read that sees it.
fn reads_of(
    py: Python<'_>,
    kind: EventKind,
    containers: &[Py<PyAny>],
    line: Option<i32>,
    code: Option<&Py<PyAny>>,
) -> Option<Event> {
    let (last, others) = containers.split_last()?;
    let mut ev = Event::about(py, kind, last.clone_ref(py), line, code.map(|c| c.clone_ref(py)));
    if !others.is_empty() {
        ev.args = PyTuple::new(py, others).ok().map(Bound::unbind);
    }
    Some(ev)
}

impl Inner {
    /// The containers a loop over `obj` reads at each step: `obj` itself, or those under a
    /// view or builtin iterator of the configured kinds (`gc.get_referents`, as deep as
    /// `LOOK_THROUGH_DEPTH`; tuples only below the top, where `zip` keeps its iterators).
    pub(super) fn iterated<'py>(&self, obj: &Bound<'py, PyAny>) -> Vec<Bound<'py, PyAny>> {
        if self.is_container(obj) || self.is_generator(obj) {
            return vec![obj.clone()];
        }
        let py = obj.py();
        let (Some(through), Some(referents)) = (&self.types.loop_through, &self.types.referents) else {
            return Vec::new();
        };
        let through = through.bind(py);
        let mut found: Vec<Bound<'py, PyAny>> = Vec::new();
        let mut frontier = vec![obj.clone()];
        for depth in 0..LOOK_THROUGH_DEPTH {
            let mut next = Vec::new();
            for o in frontier {
                let t = o.get_type();
                let tuple = depth > 0 && o.is_exact_instance_of::<PyTuple>();
                if !tuple && !through.iter().any(|k| k.is(&t)) {
                    continue;
                }
                let Ok(refs) = referents.bind(py).call1((&o,)) else { continue };
                let Ok(refs) = refs.cast_into::<PyList>() else { continue };
                for r in refs.iter() {
                    if self.is_container(&r) {
                        if !found.iter().any(|f| f.is(&r)) {
                            found.push(r);
                        }
                    } else {
                        next.push(r);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        found
    }

    /// A loop's `iter` report: its containers' reads are stepped, and the loop gets a
    /// `LoopIter` when it reads any (`None`: leave the iterable as it is).
    pub(super) fn on_loop(&self, py: Python<'_>, tid: crate::engine::ThreadId, ev: &Event) -> Option<Py<PyAny>> {
        let obj = ev.obj.bind(py);
        let key = ev.key.bind(py);
        let behind_iter = key.is(&PyBool::new(py, true));
        // `yield from` sends into its iterator and throws into it: only the iterator of a
        // builtin container, view or iterator (which has neither) may be stood in for.
        let yield_from = key.extract::<&str>().is_ok_and(|k| k == YIELD_FROM);
        let keeps_delegate = || !self.iterates_in_c(obj) || self.is_generator(obj);
        // (A generator behind an `__iter__` runs rewritten code, which reports its own reads.)
        let containers = if (behind_iter && self.is_generator(obj)) || (yield_from && keeps_delegate()) {
            Vec::new()
        } else {
            self.iterated(obj)
        };
        if containers.is_empty() {
            if behind_iter || yield_from || !self.has_own_iter(obj) {
                return None;
            }
            let wrapper = LoopIter {
                iterable: ev.obj.clone_ref(py),
                containers: Vec::new(),
                line: ev.line,
                code: ev.code.as_ref().map(|c| c.clone_ref(py)),
                inner: OnceLock::new(),
                discover: true,
                keys_only: false,
            };
            return Py::new(py, wrapper).ok().map(|w| w.into_any());
        }
        let keys_only = containers.len() == 1 && Self::walks_keys(obj, &containers[0]);
        let containers: Vec<Py<PyAny>> = containers.into_iter().map(Bound::unbind).collect();
        if let Some(mut read) = reads_of(py, EventKind::Iter, &containers, ev.line, ev.code.as_ref()) {
            if keys_only {
                read.key = pyo3::intern!(py, KEYS_ONLY).clone().into_any().unbind();
            }
            if self.report(py, tid, &read).is_err() {
                self.raise_async(py);
                return None;
            }
        }
        let wrapper = LoopIter {
            iterable: ev.obj.clone_ref(py),
            containers,
            line: ev.line,
            code: ev.code.as_ref().map(|c| c.clone_ref(py)),
            inner: OnceLock::new(),
            discover: false,
            keys_only,
        };
        Py::new(py, wrapper).ok().map(|w| w.into_any())
    }

    /// Whether a loop over `obj` walks the keys of `dict` (a dict iterated as a dict is: not
    /// an `OrderedDict`, whose `move_to_end` changes its order but not its size), not values.
    pub(super) fn walks_keys(obj: &Bound<'_, PyAny>, dict: &Bound<'_, PyAny>) -> bool {
        let py = obj.py();
        let dict_iter = py.get_type::<PyDict>().getattr(pyo3::intern!(py, "__iter__"));
        let plain = dict.is_instance_of::<PyDict>()
            && dict_iter.is_ok_and(|d| dict.get_type().getattr(pyo3::intern!(py, "__iter__")).is_ok_and(|f| f.is(&d)));
        plain
            && (obj.is(dict)
                || obj.get_type().name().is_ok_and(|n| {
                    n.to_str().is_ok_and(|n| matches!(n, "dict_keys" | "dict_keyiterator" | "dict_reversekeyiterator"))
                }))
    }

    /// Whether `obj`'s class iterates in C (its `__iter__` is a slot wrapper: a list, a deque,
    /// which is a heap type from 3.12, a subclass that keeps its base's `__iter__`), so that
    /// its iterator has no `send` or `throw` of its own.
    fn iterates_in_c(&self, obj: &Bound<'_, PyAny>) -> bool {
        self.slot_in_c(obj, pyo3::intern!(obj.py(), "__iter__"))
    }

    /// Whether `obj`'s class has its slot `name` (`__iter__`, `__next__`) in C: a slot wrapper,
    /// not the program's Python.
    pub(super) fn slot_in_c(&self, obj: &Bound<'_, PyAny>, name: &Bound<'_, PyString>) -> bool {
        obj.get_type().getattr(name).is_ok_and(|f| f.get_type().is(self.types.slot_wrapper.bind(obj.py())))
    }

    /// Whether `obj`'s class is the program's own and defines `__iter__` in Python.
    fn has_own_iter(&self, obj: &Bound<'_, PyAny>) -> bool {
        let t = obj.get_type();
        Self::is_heap_type(t.as_any())
            && t.getattr(pyo3::intern!(obj.py(), "__iter__"))
                .is_ok_and(|f| !f.get_type().is(self.types.slot_wrapper.bind(obj.py())))
    }
}
