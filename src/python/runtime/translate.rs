//! Events → engine operations: numbering objects and keys, classifying calls by the real
//! receiver or callable, real locks taken over as engine locks.

use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PyModule, PySet, PySlice, PyString,
    PySuper, PyTuple, PyType,
};

use super::report_py::{self, Event, EventKind};
use crate::engine::{AccessKind, Op, ThreadId, SIZE, WHOLE};
use crate::methods;
use crate::rewrite::sites::{CLASS_PATTERN, FORMATTED};

use super::handoff::*;

/// Key namespaces: names, subscript values and subscript identities never collide.
pub(super) const NS_VALUE: u64 = 1 << 61;
pub(super) const NS_IDENT: u64 = crate::engine::IDENT_KEYS;

/// A key made of a scalar value (`NS_VALUE`), not a name, an object or `WHOLE`.
pub(super) fn is_value_key(key: u64) -> bool {
    key & (NS_VALUE | NS_IDENT) == NS_VALUE
}

/// The key of "running" on a generator's frame: written by every resume and by every step
/// taken inside the generator, so that resuming it while another thread is inside (which
/// raises "generator already executing") is ordered against that thread's steps.
pub(super) const GEN_RUNNING: u64 = 3 << 61;
/// Methods that resume a generator.
const GEN_RESUMES: &[&str] = &["send", "throw", "close", "__next__"];

pub(super) struct Types {
    pub(super) abort: Py<PyAny>,
    pub(super) deque: Py<PyAny>,
    pub(super) lock: Py<PyAny>,
    pub(super) rlock: Py<PyAny>,
    pub(super) local: Py<PyAny>,
    pub(super) getattr: Py<PyAny>,
    pub(super) setattr: Py<PyAny>,
    pub(super) delattr: Py<PyAny>,
    pub(super) hasattr: Py<PyAny>,
    pub(super) getitem: Py<PyAny>,
    pub(super) setitem: Py<PyAny>,
    pub(super) delitem: Py<PyAny>,
    /// heapq and bisect functions, `random.shuffle` and `Random.shuffle`, `operator.iadd` and
    /// the other in-place operators: write their first argument (a container).
    pub(super) heap_writers: Vec<Py<PyAny>>,
    /// The names of those that are methods (`Random.shuffle`): `rng.shuffle(x)` reports the
    /// receiver and the name.
    pub(super) method_writers: Vec<String>,
    /// len, sorted, sum, ...: read their first argument as a whole.
    pub(super) whole_readers: Vec<Py<PyAny>>,
    /// `(callee, method name or None) -> bool`: whether a call hands its arguments to code
    /// that reports nothing (C, or Python the rewriter did not select); `callee` is the
    /// receiver when a method name is given.
    pub(super) unseen_callee: Option<Py<PyAny>>,
    pub(super) value_keys: Py<PyDict>,
    /// Real threading/queue classes made cooperative on first sight (`with`, method call) by
    /// `coop_hook(obj)`: made before the exploration, their waits would block for real.
    pub(super) coop_types: Option<Py<PyTuple>>,
    pub(super) coop_hook: Option<Py<PyAny>>,
    /// `(frame)`: watches the holding call `frame` is about to make for the first Python
    /// function it runs (`Inner::held_point`).
    pub(super) holding_hook: Option<Py<PyAny>>,
    /// Watches the Python functions a builtin that iterates containers calls (`Inner::iter_point`).
    pub(super) iterating_hook: Option<Py<PyAny>>,
    /// Views and builtin iterators a loop reads the containers of (`loops`).
    pub(super) loop_through: Option<Py<PyTuple>>,
    /// `gc.get_referents`.
    pub(super) referents: Option<Py<PyAny>>,
    /// `(target, is_path) -> FileResource | None`: the file a file object (`is_path` false) or
    /// a path names, one object per real path, so every handle of a file is one resource.
    pub(super) file_resource: Option<Py<PyAny>>,
    /// `pathlib.PurePath`: the receiver of a pathlib file method (`methods::PATH_METHODS`).
    pub(super) pure_path: Option<Py<PyAny>>,
    /// `id(function) -> (index of the path argument, how)` for `open`, `os.remove`, ...
    /// (keyed by id: looking a callee up must not run its `__hash__`).
    pub(super) path_functions: Option<Py<PyDict>>,
    /// The files and directories a path call or pathlib method uses (`_dpor._path_accesses`).
    pub(super) path_accesses: Option<Py<PyAny>>,
    /// `types.GeneratorType`, `builtins.next`, `types.MethodType`.
    pub(super) generator: Py<PyAny>,
    pub(super) next: Py<PyAny>,
    pub(super) method: Py<PyAny>,
    /// `collections.abc.MutableMapping`, `MutableSequence`, `MutableSet`: containers written in
    /// Python outside the rewriter's sight (`UserDict`, `WeakValueDictionary`, `ChainMap`, ...).
    pub(super) abc_containers: [Py<PyAny>; 3],
    /// `Counter.__missing__`: answers 0 and adds nothing, unlike a `defaultdict`'s.
    pub(super) counter_missing: Py<PyAny>,
    /// `object.__eq__` (equality by identity) and its type (a slot wrapper: C code).
    pub(super) object_eq: Py<PyAny>,
    pub(super) slot_wrapper: Py<PyAny>,
    /// A private object: `(mark, n)` stands for object number `n` inside a key's stand-in.
    pub(super) ident_mark: Py<PyAny>,
    /// `operator.attrgetter`, `operator.itemgetter`: their calls read in C.
    pub(super) attrgetter: Py<PyAny>,
    /// `property`: its accessors may be rewritten code (`through_rewritten_descriptor`).
    pub(super) property: Py<PyAny>,
    /// `enum.Enum.__hash__` (a dict lookup of a member runs it; its `__eq__` is object's).
    pub(super) enum_hash: Py<PyAny>,
    pub(super) itemgetter: Py<PyAny>,
}

/// A resource method call: `name` is a default or configured method, or a configured
/// `module.Class.method` whose class is the receiver's type or one of its bases.
///
/// A default name (`close`, `write`) does not make a resource of a class whose method of that
/// name is the program's own (`Inner::own_method`): what the method does reports itself, and
/// one write of the whole object for the call would order it against every use of the object
/// (and be shown as the race). A name the user added applies to any receiver, as documented.
pub(super) fn is_resource(inner: &Inner, receiver: &Bound<'_, PyAny>, name: &str) -> bool {
    let methods = inner.resource_methods.read().unwrap_or_else(|p| p.into_inner());
    let mut own_code = None;
    methods.iter().any(|entry| match entry.rsplit_once('.') {
        None => {
            entry == name
                && !(crate::methods::DEFAULT_RESOURCE_METHODS.contains(&name)
                    && *own_code.get_or_insert_with(|| {
                        let name = PyString::new(receiver.py(), name);
                        Inner::own_method(receiver, &name)
                    }))
        }
        Some((class_path, method)) => method == name && has_class(receiver, class_path),
    })
}

/// Whether `class_path` (`module.Qualname`) names the type of `obj` or one of its bases.
pub(super) fn has_class(obj: &Bound<'_, PyAny>, class_path: &str) -> bool {
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

pub(super) const LOCK_ACQUIRES: &[&str] = &["acquire", "acquire_lock", "__enter__"];

/// The reading builtins that read what is nested in a container too.
const DEEP_READERS: &[&str] = &["str", "repr", "format", "print"];

/// One step of a report: an op already made, or an object numbered at its step (a call's
/// argument, read whole; the class whose attribute a load finds).
enum Pending<'py> {
    Op((Op, &'static str, Option<Py<PyAny>>)),
    /// The report's own access, whose kind is decided again until it is taken (`Keyed`).
    Keyed((Op, &'static str, Option<Py<PyAny>>), Keyed),
    Argument(Bound<'py, PyAny>),
    ClassAttribute(Bound<'py, PyAny>),
    /// The containers nested in these, found when the steps before are taken (what the call
    /// will read is what they hold then, not when it was reported); each is an `Argument`.
    NestedIn(Vec<Bound<'py, PyAny>>),
}

impl Pending<'_> {
    fn op(&self) -> Option<&(Op, &'static str, Option<Py<PyAny>>)> {
        match self {
            Pending::Op(op) | Pending::Keyed(op, _) => Some(op),
            Pending::Argument(_) | Pending::ClassAttribute(_) | Pending::NestedIn(_) => None,
        }
    }
}

/// What a call's arguments make it read: `read` at once, and what is nested in `nested_in` (a
/// reader of everything: `str`, `json.dumps`, `copy.deepcopy`).
struct Passed<'py> {
    read: Vec<Bound<'py, PyAny>>,
    nested_in: Vec<Bound<'py, PyAny>>,
    /// Generators the call runs (`list(g)`, `sum(g)`): it resumes them.
    resumed: Vec<Bound<'py, PyAny>>,
    /// Open files it is given (`json.dump(obj, f)`): it reads or writes them, unseen.
    files: Vec<Bound<'py, PyAny>>,
}

/// Whether `obj`'s type is `t` (a class or a tuple of them) or a subclass of it: `isinstance`
/// without its fall back to `obj.__class__`, which runs an object's own code (a lazy proxy's
/// `__class__` property, a `Mock`'s) in the middle of a report.
pub(super) fn type_is(obj: &Bound<'_, PyAny>, t: &Bound<'_, PyAny>) -> bool {
    obj.get_type().is_subclass(t).unwrap_or(false)
}

/// How a real lock's `acquire` was called, from the argument values reported (their names
/// are not): `None` for a blocking acquire, else `(blocking, timeout)`. `acquire(False)`,
/// `acquire(0)`, `acquire(blocking=False)` and `acquire(timeout=0)` are tries, a float timeout
/// (`acquire(timeout=0.5)`, `acquire(True, 2)`) a timed wait. A single int above zero is read
/// as `blocking` (`acquire(1)`): read as a timeout, a wait that is blocking for real would hang.
fn acquire_mode(args: Option<&Bound<'_, PyTuple>>) -> Option<(bool, Option<f64>)> {
    let args = args?;
    let seconds = |v: &Bound<'_, PyAny>| -> Option<f64> {
        if v.is_instance_of::<pyo3::types::PyBool>() {
            return None;
        }
        v.extract::<f64>().ok()
    };
    let timed = |t: f64| -> Option<(bool, Option<f64>)> {
        if t < 0.0 {
            None
        } else if t == 0.0 {
            Some((false, None))
        } else {
            Some((true, Some(t)))
        }
    };
    match args.len() {
        0 => None,
        1 => {
            let v = args.get_item(0).ok()?;
            if v.is_instance_of::<pyo3::types::PyBool>() || v.is_instance_of::<pyo3::types::PyInt>() {
                (!v.is_truthy().ok()?).then_some((false, None))
            } else {
                timed(seconds(&v)?)
            }
        }
        _ => {
            let blocking = args.get_item(0).ok()?.is_truthy().ok()?;
            if !blocking {
                return Some((false, None));
            }
            timed(seconds(&args.get_item(1).ok()?)?)
        }
    }
}

impl Inner {
    pub(super) fn number(st: &mut State, obj: &Bound<'_, PyAny>) -> u64 {
        let ptr = obj.as_ptr() as usize;
        if let Some(n) = st.exec.number_at(obj.py(), ptr) {
            return n;
        }
        let place = st.exec.refs.len();
        // A cooperative lock made during the execution has its maker's name (`MADE_NAMES`),
        // what the threads find when they begin their path's (`STATE_NAMES`); anything else is
        // named by its place among these: the order of first use.
        let n = match st.exec.reserved.remove(&ptr) {
            Some(n) => {
                st.exec.state_named += super::handoff::is_state_name(n) as usize;
                n
            }
            None => st.exec.next_plain_name(),
        };
        st.exec.objects.insert(ptr, n);
        st.exec.slots.insert(n, place);
        st.exec.refs.push(Some(Held::of(obj)));
        n
    }

    /// A file's or directory's number: the one it has in every execution (`file_name`), unless
    /// another file took that name from the plan in this one (then the name that one left, or
    /// its first use, names it).
    pub(super) fn number_file(st: &mut State, file: &Bound<'_, PyAny>) -> u64 {
        let ptr = file.as_ptr() as usize;
        if st.exec.number_at(file.py(), ptr).is_none() {
            if let Ok(k) = file.getattr(pyo3::intern!(file.py(), "number")).and_then(|k| k.extract::<u64>()) {
                // Taken by a file renamed to it from the plan (`job.<thread id>`, named by the
                // other worker in the plan's execution): this one takes the name that left.
                let own = super::handoff::file_name(k);
                let name = if st.exec.is_named(own) {
                    st.exec.renamed.iter().find(|&(_, &to)| to == own).map(|(&from, _)| from)
                } else {
                    Some(own)
                };
                if let Some(name) = name.filter(|&n| !st.exec.is_named(n)) {
                    st.exec.reserved.insert(ptr, name);
                }
            }
        }
        Self::number(st, file)
    }

    /// A lock's number. A lock first seen held (taken before the execution: in `setup()`, or by
    /// the caller of the exploration) is the root's until a thread releases it, as for real: a
    /// thread that acquires it waits. A real lock's release is seen at the releasing thread's
    /// next report or exit (`released_real_lock`).
    pub(super) fn lock_number(st: &mut State, lock: &Bound<'_, PyAny>) -> u64 {
        let fresh = st.exec.number_at(lock.py(), lock.as_ptr() as usize).is_none();
        let n = Self::number(st, lock);
        if fresh && Self::held_before(lock) {
            st.exec.owners.insert(n, ROOT);
            st.explorer.held_before(n);
            if lock.getattr(pyo3::intern!(lock.py(), "_real")).is_err() {
                st.exec.held_before_real.push((n, lock.clone().unbind()));
            }
        }
        n
    }

    /// Whether `lock` is taken: a cooperative lock's real lock (used outside explorations), or
    /// a real lock itself. (A real RLock cannot say whether another thread holds it.)
    fn held_before(lock: &Bound<'_, PyAny>) -> bool {
        let py = lock.py();
        let real = lock.getattr(pyo3::intern!(py, "_real")).unwrap_or_else(|_| lock.clone());
        real.get_type().name().is_ok_and(|n| n == "lock")
            && real.call_method0(pyo3::intern!(py, "locked")).and_then(|held| held.is_truthy()).unwrap_or(false)
    }

    /// A module's attributes are its globals.
    pub(super) fn number_owner(st: &mut State, obj: &Bound<'_, PyAny>) -> u64 {
        if let Ok(m) = obj.cast::<PyModule>() {
            return Self::number(st, m.dict().as_any());
        }
        Self::number(st, obj)
    }

    /// The `__dict__` of `owner`, a plain instance numbered `o`, stands for it: a store through
    /// it (`p.__dict__["a"] = 7`, `vars(p).update(...)`) is one of the owner's attributes.
    /// Kept alive (its address names the owner).
    fn attribute_dict(&self, st: &mut State, owner: &Bound<'_, PyAny>, o: u64) {
        let Some(dict) = self.attributes_of(owner) else { return };
        let ptr = dict.as_ptr() as usize;
        if dict.cast_exact::<PyDict>().is_err() || st.exec.number_at(owner.py(), ptr).is_some() {
            return;
        }
        st.exec.objects.insert(ptr, o);
        st.exec.kept.push(dict.clone().unbind());
        st.exec.attribute_dicts.insert(ptr);
    }

    /// The attribute dict of a plain instance (not a module's, a class's or a container's).
    fn attributes_of<'py>(&self, obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
        if !self.is_plain_object(obj) {
            return None;
        }
        Self::generic_attribute(obj, pyo3::intern!(obj.py(), "__dict__"))
    }

    /// Whether `obj.name` is the program's state: not found in its class (the instance holds it,
    /// or a `__getattr__` makes it), or found there as a function of a rewritten module. Decided
    /// by the class alone, so a store to the instance does not change which steps a call takes;
    /// nothing of the program's runs to find out.
    fn programs_method(obj: &Bound<'_, PyAny>, name: &Bound<'_, PyString>) -> bool {
        if obj.cast::<PyModule>().is_ok() || obj.is_instance_of::<pyo3::types::PyType>() {
            return false;
        }
        Self::class_method_rewritten(obj, name).unwrap_or(true)
    }

    /// Whether the method `name` is the program's own: a function of rewritten code, and no
    /// class written in C (a `sqlite3.Connection` or socket the class extends) has one.
    fn own_method(obj: &Bound<'_, PyAny>, name: &Bound<'_, PyString>) -> bool {
        let py = obj.py();
        if Self::class_method_rewritten(obj, name) != Some(true) {
            return false;
        }
        let Ok(mro) = obj.get_type().getattr(pyo3::intern!(py, "__mro__")) else { return false };
        let Ok(mro) = mro.cast_into::<PyTuple>() else { return false };
        // Every class that defines it defines a Python function (a C method has no code).
        mro.iter().all(|class| {
            let Some(namespace) = Self::generic_attribute(&class, pyo3::intern!(py, "__dict__")) else { return true };
            namespace
                .get_item(name)
                .map_or(true, |f| Self::generic_attribute(&f, pyo3::intern!(py, "__code__")).is_some())
        })
    }

    /// Whether the method `name` that `obj`'s class defines (the first in its MRO) is a
    /// function of rewritten code; None when no class of its defines it.
    pub(super) fn class_method_rewritten(obj: &Bound<'_, PyAny>, name: &Bound<'_, PyString>) -> Option<bool> {
        let py = obj.py();
        let mro = obj.get_type().getattr(pyo3::intern!(py, "__mro__")).ok()?.cast_into::<PyTuple>().ok()?;
        for class in mro.iter() {
            let Some(namespace) = Self::generic_attribute(&class, pyo3::intern!(py, "__dict__")) else { continue };
            // A mappingproxy: its lookup runs no code of the program's.
            if let Ok(found) = namespace.get_item(name) {
                let code = Self::generic_attribute(&found, pyo3::intern!(py, "__code__"));
                let file = code.and_then(|c| c.getattr(pyo3::intern!(py, "co_filename")).ok());
                return Some(file.is_some_and(|f| {
                    f.extract::<String>().is_ok_and(|f| crate::python::rewrite_py::is_rewritten_file(&f))
                }));
            }
        }
        None
    }

    /// `object.__getattribute__(obj, name)`: no `__getattribute__` or `__getattr__` of the
    /// program's runs (this is called with the state locked; its code may report).
    fn generic_attribute<'py>(obj: &Bound<'py, PyAny>, name: &Bound<'py, PyString>) -> Option<Bound<'py, PyAny>> {
        // SAFETY: both are live objects; a new reference or NULL with an error set.
        let found = unsafe { pyo3::ffi::PyObject_GenericGetAttr(obj.as_ptr(), name.as_ptr()) };
        // SAFETY: as above; NULL becomes the error, which is dropped.
        unsafe { Bound::from_owned_ptr_or_err(obj.py(), found) }.ok()
    }

    /// For a load of `name` from `obj` whose lookup finds a plain value in a class's namespace
    /// (`s.limit` reading `S.limit = 3`; not a method, property or other descriptor): the
    /// classes of the lookup (from `obj`'s class, or a class's bases), whose writes of `name`
    /// change what it reads. All of them, and for an instance whether or not its own attributes
    /// hold `name` now: which one holds it changes with other threads' stores (`Sub.n = 2`
    /// shadowing `Base.n`), and which steps a load takes must not (a search that moves the load
    /// before a store would plan a step this execution does not take). A class's own attribute
    /// is the load itself; its bases are read too whether or not it holds `name` now (`Sub.n`
    /// reads `Base.n` until a thread's `Sub.n += 1` stores one of its own).
    fn class_holding<'py>(&self, obj: &Bound<'py, PyAny>, name: &Bound<'py, PyAny>) -> Option<Vec<Bound<'py, PyAny>>> {
        let py = obj.py();
        let mro_key = pyo3::intern!(py, "__mro__");
        let (mro, skip) = if obj.is_instance_of::<PyType>() {
            (Self::generic_attribute(obj, mro_key)?, 1)
        } else {
            self.attributes_of(obj)?;
            (Self::generic_attribute(obj.get_type().as_any(), mro_key)?, 0)
        };
        let mro = mro.cast_into::<PyTuple>().ok()?;
        let classes: Vec<Bound<'py, PyAny>> = mro.iter().skip(skip).filter(Self::is_heap_type).collect();
        let (cls, value) = Self::first_holding(&mro, skip, name)?;
        let descriptor = value.get_type().getattr(pyo3::intern!(py, "__get__")).is_ok();
        (!descriptor && Self::is_heap_type(&cls)).then_some(classes)
    }

    /// The first class of `mro` (after `skip`) whose own namespace holds `name`, and the value
    /// there, read without any class's own attribute lookup.
    fn first_holding<'py>(
        mro: &Bound<'py, PyTuple>,
        skip: usize,
        name: &Bound<'py, PyAny>,
    ) -> Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let dict_key = pyo3::intern!(mro.py(), "__dict__");
        for cls in mro.iter().skip(skip) {
            let namespace = Self::generic_attribute(&cls, dict_key)?;
            if namespace.contains(name).unwrap_or(false) {
                let value = namespace.get_item(name).ok()?;
                return Some((cls, value));
            }
        }
        None
    }

    /// Whether `obj.name` (a load, store or delete) runs a data descriptor's accessor that is
    /// rewritten code: a `property`'s `fget`/`fset`/`fdel`, or the `__get__`/`__set__`/
    /// `__delete__` of a class of the program's with `__set__` or `__delete__`. That code reports
    /// what it reads and writes itself, where it does; the site's own access would show a read or
    /// a write that may never happen there (a `__set__` that validates and raises).
    fn through_rewritten_descriptor(&self, obj: &Bound<'_, PyAny>, name: &Bound<'_, PyAny>, kind: EventKind) -> bool {
        let py = obj.py();
        if obj.is_instance_of::<PyType>() || obj.cast::<PyModule>().is_ok() {
            return false;
        }
        let Some(mro) = Self::generic_attribute(obj.get_type().as_any(), pyo3::intern!(py, "__mro__")) else {
            return false;
        };
        let Ok(mro) = mro.cast_into::<PyTuple>() else { return false };
        let Some((_, value)) = Self::first_holding(&mro, 0, name) else { return false };
        // Looked up as `type.__getattribute__` does (no metaclass `__getattr__` of the program's).
        fn lookup<'py>(owner: &Bound<'py, PyAny>, attr: &str) -> Option<Bound<'py, PyAny>> {
            let py = owner.py();
            let get = py.get_type::<PyType>().getattr(pyo3::intern!(py, "__getattribute__")).ok()?;
            get.call1((owner, attr)).ok()
        }
        let accessor = if value.get_type().is(self.types.property.bind(py)) {
            let field = match kind {
                EventKind::AttrLoad => "fget",
                EventKind::AttrStore => "fset",
                _ => "fdel",
            };
            value.getattr(field).ok()
        } else {
            let descriptor_type = value.get_type().into_any();
            if lookup(&descriptor_type, "__set__").is_none() && lookup(&descriptor_type, "__delete__").is_none() {
                return false;
            }
            let method = match kind {
                EventKind::AttrLoad => "__get__",
                EventKind::AttrStore => "__set__",
                _ => "__delete__",
            };
            lookup(&descriptor_type, method)
        };
        accessor
            .and_then(|f| f.getattr(pyo3::intern!(py, "__code__")).ok())
            .is_some_and(|code| report_py::is_rewritten_code(&code))
    }

    /// `op`, made when `exec` had traded `made_at` pairs of numbers, by the numbers it has now.
    /// (Another execution's `swaps` are not this op's: step_part drops the step then.)
    fn traded_since(exec: &Exec, made_at: usize, op: Op) -> Op {
        exec.swaps.get(made_at..).unwrap_or_default().iter().fold(op, |op, &(a, b)| op.swapped(a, b))
    }

    pub(super) fn is_heap_type(cls: &Bound<'_, PyAny>) -> bool {
        // SAFETY: a type object's flags.
        cls.cast::<PyType>()
            .is_ok_and(|t| unsafe { pyo3::ffi::PyType_GetFlags(t.as_type_ptr()) } & pyo3::ffi::Py_TPFLAGS_HEAPTYPE != 0)
    }

    /// The classes of an attribute load's lookup when it finds a class's plain value
    /// (`class_holding`): read too, besides the object's own attribute (numbered at their steps).
    fn class_attribute_read<'py>(&self, py: Python<'py>, ev: &Event) -> Vec<Bound<'py, PyAny>> {
        if ev.kind != EventKind::AttrLoad {
            return Vec::new();
        }
        let (obj, name) = (ev.obj.bind(py), ev.key.bind(py));
        if obj.cast::<PyModule>().is_ok() || type_is(obj, self.types.local.bind(py)) {
            return Vec::new();
        }
        self.class_holding(obj, name).unwrap_or_default()
    }

    /// A name's key by its text alone (`name_key` also remembers the string's address, which
    /// only a lasting name, such as one from `co_names`, may be looked up by).
    fn name_key_of_text(st: &mut State, name: &Bound<'_, PyAny>) -> u64 {
        let text = name
            .cast::<PyString>()
            .ok()
            .and_then(|s| s.to_str().ok().map(str::to_owned))
            .unwrap_or_else(|| name.to_string());
        let next = st.name_ids.len() as u64 + 1;
        *st.name_ids.entry(text).or_insert(next)
    }

    /// A Python module's globals (they hold `__builtins__`).
    fn is_namespace(obj: &Bound<'_, PyAny>) -> bool {
        obj.cast::<PyDict>().is_ok_and(|d| d.contains(pyo3::intern!(obj.py(), "__builtins__")).unwrap_or(false))
    }

    /// Whether `obj`'s type has `base`'s own `name` method (not one of a subclass's).
    fn keeps_base(obj: &Bound<'_, PyAny>, base: &Bound<'_, PyType>, name: &str) -> bool {
        obj.get_type().getattr(name).is_ok_and(|own| base.getattr(name).is_ok_and(|b| own.is(&b)))
    }

    /// The plain int or str an instance of a subclass of int or str stands for as a key, when
    /// the subclass keeps the base's `__eq__` and `__hash__` (an `IntEnum` or `str` Enum member).
    fn plain_value<'py>(key: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
        let py = key.py();
        let base =
            if key.is_instance_of::<PyInt>() && !key.is_exact_instance_of::<PyInt>() && !key.is_instance_of::<PyBool>()
            {
                py.get_type::<PyInt>()
            } else if key.is_instance_of::<PyString>() && !key.is_exact_instance_of::<PyString>() {
                py.get_type::<PyString>()
            } else {
                return None;
            };
        if !Self::keeps_base(key, &base, "__eq__") || !Self::keeps_base(key, &base, "__hash__") {
            return None;
        }
        // int.__index__ / str.__str__ of a subclass's instance give the plain value.
        let convert = if key.is_instance_of::<PyInt>() { "__index__" } else { "__str__" };
        base.getattr(convert).ok()?.call1((key,)).ok()
    }

    pub(super) fn name_key(st: &mut State, name: &Bound<'_, PyAny>) -> u64 {
        let ptr = name.as_ptr() as usize;
        if let Some(&k) = st.name_ptrs.get(&ptr) {
            return k;
        }
        let k = Self::name_key_of_text(st, name);
        st.name_ptrs.insert(ptr, k);
        st.name_refs.push(name.clone().unbind());
        k
    }

    pub(super) fn is_scalar_key(k: &Bound<'_, PyAny>) -> bool {
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

    /// `obj`'s text when it is a str (a site's name, a method name).
    fn text<'a>(obj: &'a Bound<'_, PyAny>) -> Option<&'a str> {
        obj.cast::<PyString>().ok()?.to_str().ok()
    }

    /// `c[key] = v`: an insertion when `c` is a dict without `key` (its keys' order changes),
    /// else a write.
    fn store_kind(&self, st: &mut State, container: &Bound<'_, PyAny>, key: &Bound<'_, PyAny>) -> AccessKind {
        match container.cast::<PyDict>() {
            Ok(dict) => self.by_presence(st, dict, key, AccessKind::Write, AccessKind::Insert),
            Err(_) => AccessKind::Write,
        }
    }

    /// `c[key]`: a read, or an insertion when `c` is a dict without `key` whose `__missing__`
    /// may add it (a `defaultdict`: `d[k] += 1`, `d[k].append(x)`; not a `Counter`'s).
    fn load_kind(&self, st: &mut State, container: &Bound<'_, PyAny>, key: &Bound<'_, PyAny>) -> AccessKind {
        let Ok(dict) = container.cast::<PyDict>() else { return AccessKind::Read };
        if dict.is_exact_instance_of::<PyDict>() {
            return AccessKind::Read;
        }
        match container.get_type().getattr(pyo3::intern!(container.py(), "__missing__")) {
            Ok(missing) if !missing.is(self.types.counter_missing.bind(container.py())) => {
                self.by_presence(st, dict, key, AccessKind::Read, AccessKind::Insert)
            }
            _ => AccessKind::Read,
        }
    }

    /// `present` if `dict` holds `key` now, else `absent`. Another thread may add or remove the
    /// key before this access is taken: for a key whose lookup runs no Python, the rule is kept
    /// (`Exec::keyed`) and the kind decided again when the thread may be chosen (`rekind`).
    /// A key hashed or compared by the program's own code is not looked up (that would run its
    /// `__hash__` and `__eq__` once more): `absent`, which conflicts with whatever `present` does.
    fn by_presence(
        &self,
        st: &mut State,
        dict: &Bound<'_, PyDict>,
        key: &Bound<'_, PyAny>,
        present: AccessKind,
        absent: AccessKind,
    ) -> AccessKind {
        if !self.looked_up_in_c(key, 0) {
            return absent;
        }
        // (A class of metaclass `type` is hashed and compared by identity, in C, as a scalar is.)
        if Self::is_scalar_key(key) || key.is_exact_instance_of::<PyType>() {
            st.exec.keyed = Some(Keyed { dict: dict.clone().unbind(), key: key.clone().unbind(), present, absent });
        }
        if dict.contains(key).unwrap_or(true) {
            present
        } else {
            absent
        }
    }

    /// Whether looking `key` up in a dict runs C code alone: its type's `__hash__` and `__eq__`
    /// are C slots (its own or inherited), and so are those of a tuple's or frozenset's items.
    fn looked_up_in_c(&self, key: &Bound<'_, PyAny>, depth: usize) -> bool {
        if Self::is_scalar_key(key) || key.is_exact_instance_of::<PyType>() {
            return true;
        }
        let py = key.py();
        let hash = pyo3::intern!(py, "__hash__");
        // (An Enum member's `__hash__` is Enum's own Python, which runs nothing of the program's.)
        let enum_hash = || key.get_type().getattr(hash).is_ok_and(|f| f.is(self.types.enum_hash.bind(py)));
        if depth > 4 || !self.slot_in_c(key, pyo3::intern!(py, "__eq__")) || !(self.slot_in_c(key, hash) || enum_hash())
        {
            return false;
        }
        let items: Vec<Bound<'_, PyAny>> = if let Ok(tuple) = key.cast::<PyTuple>() {
            tuple.iter().collect()
        } else if let Ok(set) = key.cast::<PyFrozenSet>() {
            set.iter().collect()
        } else {
            return true;
        };
        items.len() <= 64 && items.iter().all(|i| self.looked_up_in_c(i, depth + 1))
    }

    /// A list, bytearray, deque, or other mutable sequence (`array`, `UserList`): indexed by
    /// position, so `del s[i]` moves every later element.
    fn is_sequence(&self, obj: &Bound<'_, PyAny>) -> bool {
        obj.is_instance_of::<PyList>()
            || obj.is_instance_of::<PyByteArray>()
            || type_is(obj, self.types.deque.bind(obj.py()))
            || self.abc_kind(obj) == Some(1)
    }

    /// The key of `container[key]`; for a deletion from a sequence the whole of it (later
    /// elements move down).
    fn item_key_for(
        &self,
        st: &mut State,
        kind: AccessKind,
        container: &Bound<'_, PyAny>,
        key: &Bound<'_, PyAny>,
    ) -> u64 {
        if kind == AccessKind::Delete && self.is_sequence(container) {
            return WHOLE;
        }
        self.item_key(st, container, key)
    }

    pub(super) fn item_key(&self, st: &mut State, container: &Bound<'_, PyAny>, key: &Bound<'_, PyAny>) -> u64 {
        if key.is_instance_of::<PySlice>() {
            return WHOLE;
        }
        // A module's namespace (`globals()`, `vars(mod)`) is keyed by names, as its globals'
        // loads and stores are: `"X" in globals()` and `global X; X = 1` meet.
        let names = Self::is_namespace(container) || st.exec.attribute_dicts.contains(&(container.as_ptr() as usize));
        if names && key.is_exact_instance_of::<PyString>() {
            return Self::name_key_of_text(st, key);
        }
        // An int or str of a subclass that keeps the base's equality and hash (an IntEnum, a
        // str Enum) is the same key as its plain value: `d[Color.RED]` and `1 in d` meet.
        let plain = Self::plain_value(key);
        let key = plain.as_ref().unwrap_or(key);
        if Self::is_scalar_key(key) {
            // lst[-1] is lst[len-1], whichever element that is when the access is taken: the
            // whole sequence, since a key taken from the length would differ from one order of
            // the threads to the next (another's remove in between), and the search could not
            // repeat its schedules.
            if key.is_exact_instance_of::<PyInt>()
                && self.is_sequence(container)
                && key.extract::<i64>().map_or(true, |i| i < 0)
            {
                return WHOLE;
            }
            return self.value_key(key);
        }
        if self.compares_by_identity(key) {
            return NS_IDENT | Self::number(st, key);
        }
        // Equal keys that are separate objects (two threads' `date(2024, 1, 1)`, a namedtuple
        // made in each) are one key; one that compares in Python (a dataclass, a class with
        // its own `__eq__`) could only be looked up by running that code inside the report:
        // the container as a whole, which meets every key.
        match self.value_stand_in(st, key, 0) {
            Some(stand_in) => self.value_key(&stand_in),
            None => WHOLE,
        }
    }

    /// The number of a key that compares by value, the same for every equal key.
    fn value_key(&self, key: &Bound<'_, PyAny>) -> u64 {
        let table = self.types.value_keys.bind(key.py());
        if let Ok(Some(v)) = table.get_item(key) {
            if let Ok(id) = v.extract::<u64>() {
                return NS_VALUE | id;
            }
        }
        let id = table.len() as u64 + 1;
        if table.set_item(key, id).is_ok() {
            return NS_VALUE | id;
        }
        WHOLE
    }

    fn compares_by_identity(&self, key: &Bound<'_, PyAny>) -> bool {
        let py = key.py();
        key.get_type().getattr(pyo3::intern!(py, "__eq__")).is_ok_and(|eq| eq.is(self.types.object_eq.bind(py)))
    }

    /// What stands for `key` in the table of value keys: equal to the stand-in of every key
    /// equal to it, and compared and hashed by C code alone. Keys whose `__eq__` and
    /// `__hash__` are C code (`datetime`, `Decimal`) stand for themselves, tuples (namedtuples
    /// too) and frozensets element by element, objects that compare by identity (an `Enum`
    /// member) as `(mark, their number)`. None when some part compares in Python.
    fn value_stand_in<'py>(&self, st: &mut State, key: &Bound<'py, PyAny>, depth: usize) -> Option<Bound<'py, PyAny>> {
        let py = key.py();
        if Self::is_scalar_key(key) {
            return Some(key.clone());
        }
        if self.compares_by_identity(key) {
            let n = Self::number(st, key);
            return PyTuple::new(py, [self.types.ident_mark.bind(py).clone(), n.into_pyobject(py).ok()?.into_any()])
                .ok()
                .map(Bound::into_any);
        }
        if depth > 4
            || !self.slot_in_c(key, pyo3::intern!(py, "__eq__"))
            || !self.slot_in_c(key, pyo3::intern!(py, "__hash__"))
        {
            return None;
        }
        let parts = |items: Vec<Bound<'py, PyAny>>, st: &mut State| -> Option<Vec<Bound<'py, PyAny>>> {
            (items.len() <= 64).then_some(())?;
            items.iter().map(|i| self.value_stand_in(st, i, depth + 1)).collect()
        };
        if let Ok(tuple) = key.cast::<PyTuple>() {
            let items = parts(tuple.iter().collect(), st)?;
            return PyTuple::new(py, items).ok().map(Bound::into_any);
        }
        if let Ok(set) = key.cast::<PyFrozenSet>() {
            let items = parts(set.iter().collect(), st)?;
            return PyFrozenSet::new(py, items.iter()).ok().map(Bound::into_any);
        }
        Some(key.clone())
    }

    // ---------------------------------------------------------------- translation

    pub(super) fn access(kind: AccessKind, obj: u64, key: u64) -> Op {
        Op::Access { obj, key, kind }
    }

    pub(super) fn is_lock_type(&self, obj: &Bound<'_, PyAny>) -> Option<bool> {
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
    /// `reports_itself`: a method call whose method is rewritten code on a container that is
    /// no builtin one (`method_reports_itself`).
    pub(super) fn translate(
        &self,
        py: Python<'_>,
        st: &mut State,
        tid: ThreadId,
        ev: &Event,
        reports_itself: bool,
    ) -> Option<(Op, &'static str, Option<Py<PyAny>>)> {
        let obj = ev.obj.bind(py);
        let key = ev.key.bind(py);
        use AccessKind::{Delete, Read, Write};
        if matches!(ev.kind, EventKind::AttrLoad | EventKind::AttrStore | EventKind::AttrDelete)
            && type_is(obj, self.types.local.bind(py))
        {
            // Each thread has its own values: not shared. Remembered so that a reused worker
            // starts every task with none.
            if !st.seen_locals.iter().any(|l| l.bind(py).is(obj)) {
                st.seen_locals.push(ev.obj.clone_ref(py));
            }
            return None;
        }
        if matches!(ev.kind, EventKind::AttrLoad | EventKind::AttrStore | EventKind::AttrDelete)
            && self.through_rewritten_descriptor(obj, key, ev.kind)
        {
            return None;
        }
        let named = |st: &mut State, kind: AccessKind| {
            let o = Self::number_owner(st, obj);
            let k = Self::name_key(st, key);
            Some((Self::access(kind, o, k), ev.kind.as_str(), Some(ev.key.clone_ref(py))))
        };
        match ev.kind {
            // `p.__dict__` gives every attribute of `p` to whatever takes it (`json.dumps`).
            EventKind::AttrLoad if Self::text(key) == Some("__dict__") && obj.cast::<PyModule>().is_err() => {
                let o = Self::number_owner(st, obj);
                self.attribute_dict(st, obj, o);
                Some((Self::access(Read, o, WHOLE), ev.kind.as_str(), Some(ev.key.clone_ref(py))))
            }
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
                    EventKind::ItemLoad => self.load_kind(st, obj, key),
                    EventKind::ItemStore => self.store_kind(st, obj, key),
                    _ => Delete,
                };
                let o = Self::number_owner(st, obj);
                let k = self.item_key_for(st, kind, obj, key);
                // A factory of rewritten code may be preempted: the key is missing until it
                // returns (another thread's load misses too): its steps are the insertion's.
                // One in Python that reports nothing is a step where it begins (seen as a sort's
                // key is), where 3.10-3.13 store its value over one another thread stored since.
                if kind == AccessKind::Insert && ev.kind == EventKind::ItemLoad {
                    let rewritten = Self::factory_code(obj).map(|code| report_py::is_rewritten_code(&code));
                    let watched = rewritten == Some(false) && py.version_info() < (3, 14);
                    if rewritten == Some(true) || watched {
                        if let Some(frame) = report_py::calling_frame(py) {
                            if watched {
                                if let Some(hook) = &self.types.holding_hook {
                                    let _ = hook.bind(py).call1((&frame,));
                                }
                            }
                            st.exec.threads[tid].pending_insert = Some((o, k, frame.unbind(), ev.key.clone_ref(py)));
                        }
                    }
                }
                Some((Self::access(kind, o, k), ev.kind.as_str(), Some(ev.key.clone_ref(py))))
            }
            EventKind::Inplace => {
                // Immutable left operands are rebound by the store that follows.
                if self.is_container(obj) {
                    let o = Self::number(st, obj);
                    if Self::text(key).is_some_and(|op| methods::CONSUMING_METHODS.contains(&op)) {
                        Self::start_consuming(st, tid, o, key);
                    }
                    Some((Self::access(Write, o, WHOLE), "inplace", Some(ev.key.clone_ref(py))))
                } else {
                    None
                }
            }
            EventKind::Call => {
                let method = ev.method.as_ref().map(|m| m.bind(py).clone()).unwrap_or_else(|| key.clone());
                let name = Self::text(&method)?.to_owned();
                if let Some(_rlock) = self.is_lock_type(obj) {
                    if LOCK_ACQUIRES.contains(&name.as_str()) {
                        return self.real_acquire(py, st, tid, obj);
                    }
                    if name == "locked" {
                        return Some((Op::Peek { lock: Self::lock_number(st, obj) }, "locked", None));
                    }
                    return None;
                }
                if GEN_RESUMES.contains(&name.as_str()) {
                    if let Some(resume) = self.resume(st, obj) {
                        return Some(resume);
                    }
                }
                // Called through the class (`list.append(lst, x)`, `dict.__setitem__(d, k, v)`)
                // or `super()` (`super().__setitem__(k, v)`, which 3.10/3.11 report): it acts on
                // that object, and its arguments start after it.
                let args = ev.args.as_ref().map(|a| a.bind(py).clone());
                let (target, skip) = Self::called_on(obj, args.as_ref()).unwrap_or_else(|| (obj.clone(), 0));
                let obj = &target;
                let first = args.and_then(|a| a.get_item(skip).ok());
                // `obj.__setattr__("x", v)`, `d.__setitem__(k, v)`, `d.get(k)`
                if let Some(access) = first.and_then(|k| self.slot_access(st, obj, &name, &k)) {
                    return Some(access);
                }
                if let Some(kind) = self.container_call(obj, &name).filter(|_| !reports_itself) {
                    let o = Self::number(st, obj);
                    if kind == Write && methods::HOLDING_METHODS.contains(&name.as_str()) {
                        st.exec.threads[tid].holding = Some((o, method.clone().unbind()));
                        if let (Some(hook), Some(frame)) = (&self.types.holding_hook, report_py::calling_frame(py)) {
                            let _ = hook.bind(py).call1((frame,));
                        }
                    }
                    if kind == Write && methods::CONSUMING_METHODS.contains(&name.as_str()) {
                        Self::start_consuming(st, tid, o, &method);
                    }
                    // A dict's view reads nothing when made: what uses it does (a loop's steps,
                    // the call that consumes it), so making it is no step.
                    if matches!(name.as_str(), "keys" | "values" | "items") && obj.is_exact_instance_of::<PyDict>() {
                        return None;
                    }
                    return Some((Self::access(kind, o, WHOLE), "call", Some(method.unbind())));
                }
                if crate::methods::PATH_METHODS.contains(&name.as_str()) {
                    if let Some(op) = self.path_method(st, obj, &method, ev) {
                        return Some((op, "call", Some(method.unbind())));
                    }
                }
                if is_resource(self, obj, &name) {
                    let o = self.number_resource(st, obj, false);
                    // Ordered like a write (a connection's or handle's state is shared), shown
                    // as the call it is: a SELECT is not a "write".
                    return Some((Self::access(Write, o, WHOLE), "resource", Some(method.unbind())));
                }
                // A method of the program's (`cfg.handler()` held by the instance, a `get` of a
                // class of your own): the load of it from the receiver, which its call report
                // stands for, as a plain load reports it. Another thread's `cfg.handler = other`
                // is ordered against it. (A library's method, `ev.set()`, is no program state.)
                if let Ok(name) = method.cast::<PyString>() {
                    if Self::programs_method(obj, name) {
                        let o = Self::number_owner(st, obj);
                        let k = Self::name_key(st, &method);
                        return Some((Self::access(Read, o, k), EventKind::AttrLoad.as_str(), Some(method.unbind())));
                    }
                }
                None
            }
            EventKind::CallReturn => {
                let name = ev.method.as_ref().and_then(|m| Self::text(m.bind(py)).map(str::to_owned))?;
                if methods::HOLDING_METHODS.contains(&name.as_str()) {
                    return None; // the hold is over: `report` dropped it
                }
                // A resource's product (a cursor) shares its owner's identity.
                if !is_resource(self, obj, &name) {
                    return None;
                }
                let result = ev.result.as_ref()?.bind(py);
                if result.is_none() || Self::is_scalar_key(result) || self.is_container(result) {
                    return None;
                }
                let owner = Self::number(st, obj);
                let ptr = result.as_ptr() as usize;
                if st.exec.number_at(py, ptr).is_none() {
                    st.exec.objects.insert(ptr, owner);
                    // Kept alive (its address names the owner) in a slot no number uses.
                    st.exec.refs.push(Some(Held::Strong(result.clone().unbind())));
                }
                None
            }
            EventKind::BuiltinCall => {
                let args = ev.args.as_ref()?.bind(py);
                let first = args.get_item(0).ok()?;
                let t = &self.types;
                // `len(d)` reads how many keys `d` holds, which only insertions and deletions
                // change: writes of keys already there commute with it.
                if self.counts_its_size(obj, args) {
                    let o = Self::number(st, &first);
                    return Some((Self::access(Read, o, SIZE), "builtin_call", Some(ev.key.clone_ref(py))));
                }
                let name_access = |st: &mut State, kind: AccessKind| {
                    let attr = args.get_item(1).ok()?;
                    if !attr.is_instance_of::<PyString>() {
                        return None;
                    }
                    let o = Self::number_owner(st, &first);
                    let k = Self::name_key(st, &attr);
                    Some((Self::access(kind, o, k), "builtin_call", Some(attr.unbind())))
                };
                // `operator.getitem(d, k)` is `d.__getitem__(k)`, shown as the subscript.
                let item_access =
                    |st: &mut State, slot: &str| self.slot_access(st, &first, slot, &args.get_item(1).ok()?);
                if obj.is(t.getattr.bind(py)) || obj.is(t.hasattr.bind(py)) {
                    name_access(st, Read)
                } else if obj.is(t.setattr.bind(py)) {
                    name_access(st, Write)
                } else if obj.is(t.delattr.bind(py)) {
                    name_access(st, Delete)
                } else if obj.is(t.getitem.bind(py)) {
                    item_access(st, "__getitem__")
                } else if obj.is(t.setitem.bind(py)) {
                    item_access(st, "__setitem__")
                } else if obj.is(t.delitem.bind(py)) {
                    item_access(st, "__delitem__")
                } else if self.writes_first_argument(obj, Some(key)) {
                    self.container_written(st, &first, Some(ev.key.clone_ref(py)))
                } else if let Some(reader) = self.whole_reader_name(obj) {
                    // `vars(p)` reads every attribute; so does a dataclass's generated `__repr__`.
                    let o = if reader == "vars" && !Self::is_scalar_key(&first) || self.is_dataclass_instance(&first) {
                        let o = Self::number_owner(st, &first);
                        if reader == "vars" {
                            self.attribute_dict(st, &first, o);
                        }
                        o
                    } else if self.is_container(&first) {
                        Self::number(st, &first)
                    } else {
                        return None;
                    };
                    Some((Self::access(Read, o, WHOLE), "builtin_call", Some(ev.key.clone_ref(py))))
                } else {
                    None
                }
            }
            // A step of a loop over a generator resumes it.
            EventKind::IterNext if self.is_generator(obj) => self.resume(st, obj),
            // `case Point(x=0)`: the pattern reads the subject's attributes, in C.
            EventKind::Operand if Self::text(key) == Some(CLASS_PATTERN) => {
                if Self::is_scalar_key(obj) {
                    return None;
                }
                let o = Self::number_owner(st, obj);
                Some((Self::access(Read, o, WHOLE), "operand", Some(ev.key.clone_ref(py))))
            }
            // A dataclass's generated `__eq__`, `__repr__`, ... read every field, out of sight
            // (they are made by `exec`, never rewritten): `a == b`, f"{a}".
            EventKind::Operand if self.is_dataclass_instance(obj) => {
                let o = Self::number_owner(st, obj);
                Some((Self::access(Read, o, WHOLE), "operand", None))
            }
            // `k in d` asks whether a dict holds `k`, as `d.__contains__(k)` does: a read of
            // that key alone, so other keys' writes commute with it.
            EventKind::Contains
                if (Self::is_scalar_key(key) || Self::plain_value(key).is_some())
                    && self.dict_key_kind(st, obj, "__contains__", key).is_some() =>
            {
                let o = Self::number(st, obj);
                let k = self.item_key(st, obj, key);
                Some((Self::access(Read, o, k), "item_load", Some(ev.key.clone_ref(py))))
            }
            // A step of `for k in d` reads which keys `d` holds, which only insertions and
            // deletions change ("dictionary changed size during iteration"): stores to keys
            // already there commute with it, as with `len(d)`.
            EventKind::Iter | EventKind::IterNext
                if Self::text(key) == Some(super::loops::KEYS_ONLY) && obj.is_instance_of::<PyDict>() =>
            {
                let o = Self::number(st, obj);
                Some((Self::access(Read, o, SIZE), ev.kind.as_str(), None))
            }
            // `x in c`, `for x in c`, `if c`, `c == d`, `a, b = c`, f"{c}" read the whole container.
            EventKind::Contains | EventKind::Iter | EventKind::IterNext | EventKind::Operand
                if self.is_container(obj) =>
            {
                let o = Self::number(st, obj);
                Some((Self::access(Read, o, WHOLE), ev.kind.as_str(), None))
            }
            EventKind::CallSite if obj.is(self.types.next.bind(py)) => {
                let first = ev.args.as_ref()?.bind(py).get_item(0).ok()?;
                self.resume(st, &first).or_else(|| self.next_of_iterator(st, &first))
            }
            // `shuffle(x)` through a local name, or a writer passed around.
            EventKind::CallSite if self.writes_first_argument(obj, None) => {
                let first = ev.args.as_ref()?.bind(py).get_item(0).ok()?;
                self.container_written(st, &first, None)
            }
            EventKind::CallSite => self
                .path_call(st, ev, obj)
                .or_else(|| self.slot_call(st, ev, obj))
                .or_else(|| self.getter_call(st, ev, obj)),
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

    /// `attrgetter("x")(p)`, `itemgetter(k)(d)` where the rewriter sees the call: the reads
    /// they make in C. One name (of a dotted one, its first part) or key is that attribute or
    /// item; several read the whole object. (Called from C, `sorted(ps, key=attrgetter("x"))`,
    /// they are not seen.)
    fn getter_call(
        &self,
        st: &mut State,
        ev: &Event,
        callee: &Bound<'_, PyAny>,
    ) -> Option<(Op, &'static str, Option<Py<PyAny>>)> {
        let py = callee.py();
        let t = callee.get_type();
        let attributes = t.is(self.types.attrgetter.bind(py));
        if !attributes && !t.is(self.types.itemgetter.bind(py)) {
            return None;
        }
        let target = ev.args.as_ref()?.bind(py).get_item(0).ok()?;
        if Self::is_scalar_key(&target) {
            return None;
        }
        // (C's own `__reduce__`: the getter's class and its names or keys.)
        let parts = callee.call_method0(pyo3::intern!(py, "__reduce__")).ok()?.get_item(1).ok()?;
        let parts = parts.cast_into::<PyTuple>().ok()?;
        if attributes {
            let o = Self::number_owner(st, &target);
            if parts.len() != 1 {
                return Some((Self::access(AccessKind::Read, o, WHOLE), "builtin_call", None));
            }
            let dotted = parts.get_item(0).ok()?.extract::<String>().ok()?;
            let name = PyString::new(py, dotted.split('.').next()?).into_any();
            let k = Self::name_key_of_text(st, &name);
            return Some((Self::access(AccessKind::Read, o, k), "builtin_call", Some(name.unbind())));
        }
        if parts.len() == 1 {
            return self.slot_access(st, &target, "__getitem__", &parts.get_item(0).ok()?);
        }
        if !self.is_container(&target) {
            return None;
        }
        let o = Self::number(st, &target);
        Some((Self::access(AccessKind::Read, o, WHOLE), "builtin_call", None))
    }

    /// The number of a resource method's receiver, or of a path (`is_path`): the file it names,
    /// numbered as in every execution (`number_file`), else the object itself.
    pub(super) fn number_resource(&self, st: &mut State, obj: &Bound<'_, PyAny>, is_path: bool) -> u64 {
        match self.file_resource(obj, is_path) {
            Some(file) => Self::number_file(st, &file),
            None => Self::number(st, obj),
        }
    }

    /// The file `target` names (a file object's path, or a path), as the object that stands for
    /// it in every execution; None for anything else.
    fn file_resource<'py>(&self, target: &Bound<'py, PyAny>, is_path: bool) -> Option<Bound<'py, PyAny>> {
        let classify = self.types.file_resource.as_ref()?.bind(target.py());
        classify.call1((target, is_path)).ok().filter(|r| !r.is_none())
    }

    /// `open(path)`, `os.remove(path)`, `os.listdir(path)`, `os.replace(a, b)`, ...: reads and
    /// writes of the files and directories it uses, each ordered against every other use of
    /// that file (by path or through a handle). The table gives the path's argument index and
    /// how it is used (`_dpor.PATH_*`).
    fn path_call(
        &self,
        st: &mut State,
        ev: &Event,
        callee: &Bound<'_, PyAny>,
    ) -> Option<(Op, &'static str, Option<Py<PyAny>>)> {
        let py = callee.py();
        let table = self.types.path_functions.as_ref()?.bind(py);
        let (index, how): (usize, u8) = table.get_item(callee.as_ptr() as usize).ok()??.extract().ok()?;
        let args = ev.args.as_ref()?.bind(py);
        Some((self.path_op(st, how.into_pyobject(py).ok()?.as_any(), index, args)?, "call", None))
    }

    /// `path.exists()`, `path.write_text(s)`, `path.rename(to)`, ...: what a `pathlib` method
    /// uses, as `path_call`.
    fn path_method(
        &self,
        st: &mut State,
        receiver: &Bound<'_, PyAny>,
        name: &Bound<'_, PyAny>,
        ev: &Event,
    ) -> Option<Op> {
        let py = receiver.py();
        if !type_is(receiver, self.types.pure_path.as_ref()?.bind(py)) {
            return None;
        }
        let mut args = vec![receiver.clone()];
        if let Some(more) = ev.args.as_ref() {
            args.extend(more.bind(py).iter());
        }
        self.path_op(st, name, 0, &PyTuple::new(py, args).ok()?)
    }

    fn path_op(&self, st: &mut State, how: &Bound<'_, PyAny>, index: usize, args: &Bound<'_, PyTuple>) -> Option<Op> {
        let found = self.types.path_accesses.as_ref()?.bind(how.py()).call1((how, index, args)).ok()?;
        let mut accesses = Vec::new();
        for use_ in found.try_iter().ok()? {
            // (file, writes, entry): `entry` is the file a directory's write makes or removes,
            // its key by the file's number (a name made of an id or a uuid differs from one
            // execution to the next; the file's number does not).
            let (file, writes, entry): (Bound<'_, PyAny>, bool, Option<Bound<'_, PyAny>>) =
                use_.ok()?.extract().ok()?;
            let kind = if writes { AccessKind::Write } else { AccessKind::Read };
            let key = entry.map_or(WHOLE, |child| NS_IDENT | Self::number_file(st, &child));
            accesses.push(crate::engine::Access { obj: Self::number_file(st, &file), key, kind });
        }
        (!accesses.is_empty()).then(|| Op::accesses_of(&accesses))
    }

    /// `object.__setattr__(self, "x", v)`, `dict.__setitem__(d, k, v)`: a slot wrapper called
    /// directly on the object it is given. (`super().__setattr__(...)` is not seen: from 3.12
    /// the call's self is in the method pair, which a report cannot fetch.)
    fn slot_call(
        &self,
        st: &mut State,
        ev: &Event,
        callee: &Bound<'_, PyAny>,
    ) -> Option<(Op, &'static str, Option<Py<PyAny>>)> {
        let py = callee.py();
        if !report_py::is_slot_wrapper(callee) {
            return None;
        }
        let args = ev.args.as_ref()?.bind(py);
        let target = args.get_item(0).ok()?;
        // 3.13+ specialised `super().__setattr__("x", v)` arrives here without its self.
        let owner = callee.getattr("__objclass__").ok()?;
        if Self::is_scalar_key(&target) || !type_is(&target, &owner) {
            return None;
        }
        let name = callee.getattr("__name__").ok()?;
        self.slot_access(st, &target, Self::text(&name)?, &args.get_item(1).ok()?)
    }

    /// `d.get(k)`, `d.__contains__(k)`, `d.setdefault(k, v)`, `d.pop(k)` by dict's own methods:
    /// accesses of the key `k` alone, as `d[k]` is, so other keys' writes commute with them.
    /// (A pop of a key that is not there changes nothing, yet stays a removal: decided by
    /// presence, a plan's removal met as a read, or the other way, would be a divergence.)
    /// (A subclass's own `get` may look at other keys: then the whole dict, as any method.)
    fn dict_key_kind(
        &self,
        st: &mut State,
        target: &Bound<'_, PyAny>,
        name: &str,
        key: &Bound<'_, PyAny>,
    ) -> Option<(AccessKind, &'static str)> {
        use AccessKind::{Delete, Insert, Read};
        let dict = target.cast::<PyDict>().ok()?;
        if !Self::keeps_base(target, &target.py().get_type::<PyDict>(), name) {
            return None;
        }
        Some(match name {
            "get" | "__contains__" => (Read, "item_load"),
            "setdefault" => match self.by_presence(st, dict, key, Read, Insert) {
                Read => (Read, "item_load"),
                kind => (kind, "item_store"),
            },
            "pop" => (Delete, "item_delete"),
            _ => return None,
        })
    }

    /// The object a method acts on when the receiver is not it: the first argument of one
    /// called through a class it is an instance of (then the other arguments start at 1), or a
    /// `super()`'s object (at 0).
    fn called_on<'py>(
        receiver: &Bound<'py, PyAny>,
        args: Option<&Bound<'py, PyTuple>>,
    ) -> Option<(Bound<'py, PyAny>, usize)> {
        let py = receiver.py();
        if receiver.is_instance_of::<PyType>() {
            let first = args?.get_item(0).ok()?;
            return type_is(&first, receiver).then_some((first, 1));
        }
        if receiver.is_instance_of::<PySuper>() {
            let owner = receiver.getattr(pyo3::intern!(py, "__self__")).ok()?;
            return (!owner.is_none() && !owner.is_instance_of::<PyType>()).then_some((owner, 0));
        }
        None
    }

    /// The access of the method `name` called with `key` on `target` (`__setattr__`,
    /// `__getitem__`, ..., a dict's `get`), if it is one.
    fn slot_access(
        &self,
        st: &mut State,
        target: &Bound<'_, PyAny>,
        name: &str,
        key: &Bound<'_, PyAny>,
    ) -> Option<(Op, &'static str, Option<Py<PyAny>>)> {
        use AccessKind::{Delete, Read, Write};
        let (kind, shown) = match name {
            "__setattr__" => (Write, "attr_store"),
            "__delattr__" => (Delete, "attr_delete"),
            "__getattribute__" | "__getattr__" => (Read, "attr_load"),
            "__setitem__" => (self.store_kind(st, target, key), "item_store"),
            "__delitem__" => (Delete, "item_delete"),
            "__getitem__" => (self.load_kind(st, target, key), "item_load"),
            _ => self.dict_key_kind(st, target, name, key)?,
        };
        let o = Self::number_owner(st, target);
        let k = if shown.starts_with("attr") {
            if !key.is_instance_of::<PyString>() {
                return None;
            }
            Self::name_key(st, key)
        } else {
            self.item_key_for(st, kind, target, key)
        };
        Some((Self::access(kind, o, k), shown, Some(key.clone().unbind())))
    }

    pub(super) fn is_generator(&self, obj: &Bound<'_, PyAny>) -> bool {
        obj.get_type().is(self.types.generator.bind(obj.py()))
    }

    /// `next(g)`, `g.send(v)`, a loop's step over `g`: a write of its frame's "running", for a
    /// generator of the test's state (`watch_generators`) that has not finished.
    fn resume(&self, st: &mut State, gen: &Bound<'_, PyAny>) -> Option<(Op, &'static str, Option<Py<PyAny>>)> {
        if !self.is_generator(gen) {
            return None;
        }
        let o = *st.exec.generators.get(&(gen.as_ptr() as usize))?;
        Some((Self::access(AccessKind::Write, o, GEN_RUNNING), "resume", None))
    }

    /// `next(it)` of an iterator in C: it moves the iterator on, so two threads' `next` of one
    /// iterator are ordered (which item each gets). Over one container, it is a write of that
    /// container as a whole (what the iterator reads of it too: an append, a deletion); of its
    /// own (`itertools.count()`, `cycle`, a `zip`), a write of the iterator.
    fn next_of_iterator(&self, st: &mut State, it: &Bound<'_, PyAny>) -> Option<(Op, &'static str, Option<Py<PyAny>>)> {
        if self.is_container(it) || !self.slot_in_c(it, pyo3::intern!(it.py(), "__next__")) {
            return None;
        }
        let o = match <[_; 1]>::try_from(self.iterated(it)) {
            Ok([container]) => Self::number(st, &container),
            Err(_) => Self::number(st, it),
        };
        Some((Self::access(AccessKind::Write, o, WHOLE), "iter_next", None))
    }

    /// A step taken inside a generator's frame also writes its "running" (see `GEN_RUNNING`).
    fn inside_generator(
        &self,
        py: Python<'_>,
        st: &mut State,
        ev: &Event,
    ) -> Option<(Op, &'static str, Option<Py<PyAny>>)> {
        if st.exec.gen_frames.is_empty() {
            return None;
        }
        if !ev.code.as_ref().is_some_and(|code| report_py::is_generator_code(code.bind(py))) {
            return None;
        }
        let frame = report_py::calling_frame(py)?;
        let o = Self::watched_frame(st, &frame)?;
        Some((Self::access(AccessKind::Write, o, GEN_RUNNING), "inside", None))
    }

    fn watched_frame(st: &State, frame: &Bound<'_, PyAny>) -> Option<u64> {
        let n = st.exec.number_at(frame.py(), frame.as_ptr() as usize)?;
        st.exec.gen_frames.contains(&n).then_some(n)
    }

    /// The whole of `first` written by a writer (`writes_first_argument`), if it is a container
    /// (`operator.iadd(n, 1)` of a number makes a new one).
    fn container_written(
        &self,
        st: &mut State,
        first: &Bound<'_, PyAny>,
        key: Option<Py<PyAny>>,
    ) -> Option<(Op, &'static str, Option<Py<PyAny>>)> {
        if !self.is_container(first) {
            return None;
        }
        let o = Self::number(st, first);
        Some((Self::access(AccessKind::Write, o, WHOLE), "builtin_call", key))
    }

    /// Whether calling `obj` writes its first argument: a writer itself, a bound method of one
    /// (`rng.shuffle`), or, for a method call whose receiver the report carries, the
    /// receiver's class's `name` (`rng.shuffle(x)` reports `rng` and "shuffle").
    fn writes_first_argument(&self, obj: &Bound<'_, PyAny>, name: Option<&Bound<'_, PyAny>>) -> bool {
        let py = obj.py();
        let writer = |f: &Bound<'_, PyAny>| self.types.heap_writers.iter().any(|w| f.is(w.bind(py)));
        if writer(obj) {
            return true;
        }
        // Only a real bound method's `__func__` is read: another object's attribute lookup
        // may run its code (a mock makes a child).
        if obj.get_type().is(self.types.method.bind(py)) {
            return obj.getattr(pyo3::intern!(py, "__func__")).is_ok_and(|f| writer(&f));
        }
        // (Looked up only by a writer's own name: `len(x)` reports `len` and "len".)
        let Some(name) = name.and_then(|n| n.cast::<PyString>().ok()) else { return false };
        let named = name.to_str().is_ok_and(|n| self.types.method_writers.iter().any(|w| w == n));
        named && obj.get_type().getattr(name).is_ok_and(|f| writer(&f))
    }

    /// The name of the reading builtin `obj` is (`len`, `sorted`, `map`, ...: one that reads the
    /// containers it is given; `whole_readers` holds them in `methods::READING_BUILTINS` order).
    fn whole_reader_name(&self, obj: &Bound<'_, PyAny>) -> Option<&'static str> {
        let i = self.types.whole_readers.iter().position(|f| obj.is(f.bind(obj.py())))?;
        methods::READING_BUILTINS.get(i).copied()
    }

    pub(super) fn is_container(&self, obj: &Bound<'_, PyAny>) -> bool {
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
            || type_is(obj, self.types.deque.bind(obj.py()))
            || self.abc_kind(obj).is_some()
    }

    /// Which of the mutable container ABCs `obj` is an instance of (0 mapping, 1 sequence, 2 set).
    fn abc_kind(&self, obj: &Bound<'_, PyAny>) -> Option<usize> {
        if obj.is_instance_of::<pyo3::types::PyType>() || obj.is_instance_of::<PyModule>() {
            return None;
        }
        let py = obj.py();
        self.types.abc_containers.iter().position(|abc| type_is(obj, abc.bind(py)))
    }

    /// Read or write of the whole container for a method of a known container type.
    pub(super) fn container_call(&self, obj: &Bound<'_, PyAny>, name: &str) -> Option<AccessKind> {
        let writes = match self.builtin_writes(obj) {
            Some(writes) => writes,
            None => match self.abc_kind(obj)? {
                0 => methods::DICT_WRITES,
                1 => methods::LIST_WRITES,
                _ => methods::SET_WRITES,
            },
        };
        Some(if writes.contains(&name) { AccessKind::Write } else { AccessKind::Read })
    }

    /// The writing methods of `obj`'s type, if it is (a subclass of) a builtin container.
    fn builtin_writes(&self, obj: &Bound<'_, PyAny>) -> Option<&'static [&'static str]> {
        if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyByteArray>() {
            Some(methods::LIST_WRITES)
        } else if obj.is_instance_of::<PyDict>() {
            Some(methods::DICT_WRITES)
        } else if obj.is_instance_of::<PySet>() || obj.is_instance_of::<PyFrozenSet>() {
            Some(methods::SET_WRITES)
        } else if type_is(obj, self.types.deque.bind(obj.py())) {
            Some(methods::DEQUE_WRITES)
        } else {
            None
        }
    }

    /// `with lock:` / `lock.acquire()` on a real lock: an engine lock, so the thread is only run
    /// once no other explored thread holds it (it never blocks inside C on a parked thread).
    pub(super) fn real_acquire(
        &self,
        py: Python<'_>,
        st: &mut State,
        tid: ThreadId,
        lock: &Bound<'_, PyAny>,
    ) -> Option<(Op, &'static str, Option<Py<PyAny>>)> {
        let n = Self::lock_number(st, lock);
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
    pub(super) fn name_lock(&self, py: Python<'_>, st: &mut State, tid: ThreadId, lock_n: u64) {
        if !st.explain || st.exec.lock_names.contains_key(&lock_n) {
            return;
        }
        let loads: Vec<(Py<PyAny>, Py<PyAny>)> =
            st.exec.threads[tid].last_loads.iter().rev().map(|(o, k)| (o.clone_ref(py), k.clone_ref(py))).collect();
        let Some(lock) = st.exec.object(py, lock_n) else { return };
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
                    let tname = match owner.cast::<pyo3::types::PyType>() {
                        Ok(class) => class.qualname().map(|n| n.to_string()).unwrap_or_default(),
                        Err(_) => owner.get_type().name().map(|n| n.to_string()).unwrap_or_default(),
                    };
                    format!("{tname}.{name}")
                };
                st.exec.lock_names.insert(lock_n, label);
                return;
            }
        }
    }

    /// A real lock this thread held (or one taken before the execution) and has since
    /// released: (number) to report as a Release.
    pub(super) fn released_real_lock(&self, py: Python<'_>, st: &mut State, tid: ThreadId) -> Option<u64> {
        let free = |lock: &Py<PyAny>| !lock.bind(py).call_method0("locked").and_then(|h| h.is_truthy()).unwrap_or(true);
        if let Some(pos) = st.exec.held_before_real.iter().position(|(_, lock)| free(lock)) {
            return Some(st.exec.held_before_real.remove(pos).0);
        }
        // Held here for its releaser (`real_try_acquire`): released.
        if let Some(pos) = st.exec.held_before_real.iter().position(|(n, _)| Self::phantom_held(st, *n)) {
            return Some(st.exec.held_before_real.remove(pos).0);
        }
        let phantoms = &st.exec.phantoms;
        let th = &mut st.exec.threads[tid];
        if let Some(pos) = th.held_real.iter().position(|(n, _, _)| phantoms.iter().any(|(l, _)| l == n)) {
            return Some(th.held_real.remove(pos).0);
        }
        let pos = th.held_real.iter().position(|(_, lock, rlock)| {
            let lock = lock.bind(py);
            let held = if *rlock { lock.call_method0("_is_owned") } else { lock.call_method0("locked") };
            !held.and_then(|h| h.is_truthy()).unwrap_or(false)
        })?;
        Some(th.held_real.remove(pos).0)
    }

    /// Whether the thread may have released a real lock since its last step.
    pub(super) fn may_release_real(st: &State, tid: ThreadId) -> bool {
        !st.exec.threads[tid].held_real.is_empty() || !st.exec.held_before_real.is_empty()
    }

    // ---------------------------------------------------------------- scheduling

    /// A real Condition/Semaphore/Event/Barrier/Queue made before the exploration gets its
    /// cooperative internals before it is used (the hook runs no runtime method: the state is
    /// not locked here, but the hook must not wait either).
    pub(super) fn make_cooperative(&self, py: Python<'_>, obj: &Bound<'_, PyAny>, method: Option<&Py<PyAny>>) {
        let (Some(types), Some(hook)) = (&self.types.coop_types, &self.types.coop_hook) else {
            return;
        };
        if type_is(obj, types.bind(py).as_any()) {
            // An error of the hook is dropped: the code under test then runs on the real object.
            let _ = hook.bind(py).call1((obj, method));
        }
    }

    /// The sink: every report of every thread arrives here. Returns the stand-in iterable of
    /// a loop (`loops`).
    pub(super) fn on_event(&self, py: Python<'_>, ev: &Event) -> Option<Py<PyAny>> {
        let tid = self.current()?;
        // The commonest report that means nothing: `total += i` on a local number (unless it
        // is inside a generator another thread may resume).
        if ev.kind == EventKind::Inplace
            && !self.is_container(ev.obj.bind(py))
            && !report_py::in_watched_generator(py, || ev.code.as_ref().map(|code| code.clone_ref(py)))
            && !report_py::consuming()
        {
            return None;
        }
        if ev.kind == EventKind::Iter {
            return self.on_loop(py, tid, ev);
        }
        if matches!(ev.kind, EventKind::WithEnter | EventKind::Call) {
            self.make_cooperative(py, ev.obj.bind(py), ev.method.as_ref());
        }
        if ev.kind == EventKind::Call {
            match self.real_try_acquire(py, tid, ev) {
                Ok(false) => {}
                Ok(true) => return None,
                Err(Aborted) => {
                    self.raise_async(py);
                    return None;
                }
            }
        }
        if self.report(py, tid, ev).is_err() {
            self.raise_async(py);
            return None;
        }
        let watch = self.lock_state(py).exec.threads.get_mut(tid).and_then(|t| t.iterating.take());
        if let (Some(watch), Some(hook), Some(frame)) =
            (watch, &self.types.iterating_hook, report_py::calling_frame(py))
        {
            let containers = PyTuple::new(py, watch.containers).ok();
            let keys_only = PyTuple::new(py, watch.keys_only).ok();
            // An error of the hook is dropped: the call then runs unwatched.
            let _ = hook.bind(py).call1((frame, watch.callee, containers, watch.write, keys_only));
        }
        None
    }

    /// Whether the call (or `in`) just reported works on containers while it may run the
    /// program's Python code, and which: a reading builtin (`iterates_calling_python`), a C
    /// function given a Python function and containers (`reduce(f, d)`), a heap or `insort`
    /// writer, and a list's or deque's `remove`/`index`/`count`/`in` over items with a Python
    /// `__eq__`. Another thread's change between two of those calls is what the call meets.
    fn callback_watch(&self, py: Python<'_>, ev: &Event, passed: &Passed<'_>) -> Option<CallbackWatch> {
        let obj = ev.obj.bind(py);
        let unbound = |v: &[Bound<'_, PyAny>]| v.iter().map(|c| c.clone().unbind()).collect::<Vec<_>>();
        let first_arg = || ev.args.as_ref().and_then(|a| a.bind(py).get_item(0).ok());
        match ev.kind {
            EventKind::BuiltinCall | EventKind::CallSite => {
                if self.writes_first_argument(obj, None) {
                    let heap = first_arg().filter(|h| h.is_exact_instance_of::<PyList>())?;
                    let callee = Some(obj.clone().unbind());
                    return Some(CallbackWatch {
                        containers: vec![heap.unbind()],
                        keys_only: vec![false],
                        write: true,
                        callee,
                    });
                }
                let runs_python = self.iterates_calling_python(py, ev)
                    || (ev.kind == EventKind::CallSite
                        && ev.args.as_ref().is_some_and(|a| a.bind(py).iter().any(|a| Self::is_python_function(&a))));
                if passed.read.is_empty() || !runs_python {
                    return None;
                }
                let args: Vec<Bound<'_, PyAny>> =
                    ev.args.as_ref().map(|a| a.bind(py).iter().collect()).unwrap_or_default();
                let keys_only = passed.read.iter().map(|c| args.iter().any(|a| Self::walks_keys(a, c))).collect();
                Some(CallbackWatch {
                    containers: unbound(&passed.read),
                    keys_only,
                    write: false,
                    callee: Some(obj.clone().unbind()),
                })
            }
            EventKind::Call => {
                let name = ev.method.as_ref().and_then(|m| Self::text(m.bind(py)).map(str::to_owned))?;
                if !matches!(name.as_str(), "remove" | "index" | "count") || !self.compares_in_python(obj) {
                    return None;
                }
                let callee = PyTuple::new(py, [obj.clone().into_any(), PyString::new(py, &name).into_any()]).ok()?;
                Some(CallbackWatch {
                    containers: vec![obj.clone().unbind()],
                    keys_only: vec![false],
                    write: name == "remove",
                    callee: Some(callee.into_any().unbind()),
                })
            }
            EventKind::Contains if self.compares_in_python(obj) => Some(CallbackWatch {
                containers: vec![obj.clone().unbind()],
                keys_only: vec![false],
                write: false,
                callee: None,
            }),
            _ => None,
        }
    }

    /// Whether `seq` is a list or deque whose first item's class compares in Python (its own
    /// `__eq__`): `remove`, `index`, `count` and `in` call it for item after item.
    fn compares_in_python(&self, seq: &Bound<'_, PyAny>) -> bool {
        let py = seq.py();
        if !seq.is_exact_instance_of::<PyList>() && !seq.get_type().is(self.types.deque.bind(py)) {
            return false;
        }
        let Ok(first) = seq.get_item(0) else { return false };
        first
            .get_type()
            .getattr(pyo3::intern!(py, "__eq__"))
            .is_ok_and(|f| !f.get_type().is(self.types.slot_wrapper.bind(py)))
    }

    /// A function or bound method of Python code (a `lambda`, a `key=`): a C callee given one
    /// calls it.
    fn is_python_function(obj: &Bound<'_, PyAny>) -> bool {
        let t = obj.get_type();
        t.module().is_ok_and(|m| m.to_str().is_ok_and(|m| m == "builtins"))
            && t.name().is_ok_and(|n| n.to_str().is_ok_and(|n| n == "function" || n == "method"))
    }

    /// Whether the builtin call `ev` iterates what it is given while it may run Python code (a
    /// `key=`, an element's `__lt__`, the function of a `map` or `filter` it consumes): the
    /// containers it reads are read again at each Python function it calls (`iter_point`).
    /// (`sorted` copies its argument first.)
    fn iterates_calling_python(&self, py: Python<'_>, ev: &Event) -> bool {
        if ev.kind != EventKind::BuiltinCall {
            return false;
        }
        let obj = ev.obj.bind(py);
        match self.whole_reader_name(obj) {
            Some("max" | "min") => true,
            Some("sorted" | "len") | None => false,
            Some(_) => ev.args.as_ref().is_some_and(|args| {
                args.bind(py).iter().any(|a| {
                    let t = a.get_type();
                    let module = t.module().map(|m| m.to_string()).unwrap_or_default();
                    let name = t.name().map(|n| n.to_string()).unwrap_or_default();
                    matches!(module.as_str(), "builtins" | "itertools")
                        && matches!(
                            name.as_str(),
                            "map"
                                | "filter"
                                | "filterfalse"
                                | "takewhile"
                                | "dropwhile"
                                | "starmap"
                                | "groupby"
                                | "accumulate"
                        )
                })
            }),
        }
    }

    /// The thread's call (from the reporting frame) is about to fill container `o`.
    fn start_consuming(st: &mut State, tid: ThreadId, o: u64, method: &Bound<'_, PyAny>) {
        let Some(caller) = report_py::calling_frame(method.py()) else { return };
        report_py::set_consuming(true);
        st.exec.threads[tid].consuming =
            Some(Consuming { container: o, caller: caller.unbind(), method: method.clone().unbind() });
    }

    /// A report from inside the thread's consuming call (`lst.extend(gen)` running `gen`): a
    /// write of the container, which is part way through. Any other report (from the caller,
    /// or from a function it called after the call ended) ends it.
    fn inside_consuming(
        py: Python<'_>,
        st: &mut State,
        tid: ThreadId,
    ) -> Option<(Op, &'static str, Option<Py<PyAny>>)> {
        let Some(c) = st.exec.threads[tid].consuming.as_ref() else {
            report_py::set_consuming(false);
            return None;
        };
        let (o, method) = (c.container, c.method.clone_ref(py));
        let caller = c.caller.clone_ref(py).into_bound(py);
        // Inside: the caller's frame is below, and what it runs is what the call consumes (a
        // generator, or an iterator's `__next__`, resumed from C), not a function it called
        // itself after the call returned.
        let inside = report_py::frame_called_by(py, &caller).is_some_and(|frame| Self::consumed_frame(&frame));
        if !inside {
            st.exec.threads[tid].consuming = None;
            report_py::set_consuming(false);
            return None;
        }
        Some(Self::held_step(st, o, method))
    }

    /// A step inside a call that holds container `o` part way through (`lst.sort(key=f)`,
    /// `lst.extend(gen)`): a write of all of it, shown as inside `method`.
    pub(super) fn held_step(st: &State, o: u64, method: Py<PyAny>) -> (Op, &'static str, Option<Py<PyAny>>) {
        (Self::access(AccessKind::Write, o, WHOLE), "held", st.explain.then_some(method))
    }

    /// Whether `frame` is one a consuming call runs: a generator's, or an iterator's `__next__`.
    fn consumed_frame(frame: &Bound<'_, PyAny>) -> bool {
        let Ok(code) = frame.getattr(pyo3::intern!(frame.py(), "f_code")) else { return false };
        report_py::is_generator_code(&code)
            || code
                .getattr(pyo3::intern!(frame.py(), "co_name"))
                .is_ok_and(|n| n.extract::<String>().is_ok_and(|n| n == "__next__" || n == "__iter__"))
    }

    /// What every report does first: counts itself, and steps the releases of real locks the
    /// thread has made since its last step.
    fn open_report<'a>(
        &'a self,
        py: Python<'_>,
        mut st: Guard<'a>,
        tid: ThreadId,
        ev: &Event,
    ) -> Result<Guard<'a>, Aborted> {
        if st.exec.aborting {
            return Err(Aborted);
        }
        st.exec.reports += 1;
        // The accesses this report's last step makes again (`ThreadRt::chain`). (An operation on
        // two operands reported apart, `s.d == {}`, is the thread's next step after the first.)
        st.exec.threads[tid].chain.clear();
        while let Some(lock) =
            if Self::may_release_real(&st, tid) { self.released_real_lock(py, &mut st, tid) } else { None }
        {
            let info = st.explain.then(|| StepInfo {
                thread: tid,
                op: Op::Release { lock },
                kind: "release",
                key: None,
                file: Self::file_of(py, ev),
                line: ev.line,
                caller: None,
            });
            self.step(py, st, tid, Op::Release { lock }, info)?;
            st = self.lock_state(py);
            Self::release_phantom(py, &mut st, lock);
        }
        Ok(st)
    }

    /// `acquire(False)`, `acquire(timeout=0.5)` on a real lock (one made outside the
    /// exploration's cooperative primitives: at import, or by a reference to `threading.Lock`
    /// taken before): a try or a timed wait, stepped as a cooperative lock's is. A blocking
    /// one is `real_acquire`'s. Returns whether the event was this.
    fn real_try_acquire(&self, py: Python<'_>, tid: ThreadId, ev: &Event) -> Result<bool, Aborted> {
        let obj = ev.obj.bind(py);
        let Some(rlock) = self.is_lock_type(obj) else { return Ok(false) };
        let called = ev.method.as_ref().map(|m| m.bind(py).clone()).unwrap_or_else(|| ev.key.bind(py).clone());
        if Self::text(&called) != Some("acquire") {
            return Ok(false);
        }
        let Some((blocking, timeout)) = acquire_mode(ev.args.as_ref().map(|a| a.bind(py))) else { return Ok(false) };
        let mut st = self.open_report(py, self.lock_state(py), tid, ev)?;
        let n = Self::lock_number(&mut st, obj);
        if st.exec.threads[tid].held_real.iter().any(|(l, _, _)| *l == n) {
            // Its own lock: an RLock's re-entry succeeds, a plain lock's try fails, for real.
            return Ok(true);
        }
        self.name_lock(py, &mut st, tid, n);
        let site = Self::file_of(py, ev).zip(ev.line);
        let took = self.try_acquire(py, st, tid, n, blocking, timeout, site).map_err(|_| Aborted)?;
        let mut st = self.lock_state(py);
        if took {
            st.exec.threads[tid].held_real.push((n, obj.clone().unbind(), rlock));
            return Ok(true);
        }
        // Held in the model by a thread that has released it for real, its release not stepped
        // yet (a `with` block's end is seen at the next report): held here until it is, so
        // this try fails for real too. (A real RLock cannot be released for another thread.)
        let held_elsewhere = st.exec.owners.get(&n).is_some_and(|&o| o != tid);
        if !rlock
            && held_elsewhere
            && !Self::phantom_held(&st, n)
            && obj.call_method1(pyo3::intern!(py, "acquire"), (false,)).and_then(|t| t.is_truthy()).unwrap_or(false)
        {
            st.exec.phantoms.push((n, obj.clone().unbind()));
        }
        Ok(true)
    }

    fn phantom_held(st: &State, n: u64) -> bool {
        st.exec.phantoms.iter().any(|(l, _)| *l == n)
    }

    /// Lock `n`'s release is stepped: a hold of it for its releaser (`real_try_acquire`) ends.
    pub(super) fn release_phantom(py: Python<'_>, st: &mut State, n: u64) {
        if let Some(p) = st.exec.phantoms.iter().position(|(l, _)| *l == n) {
            let (_, lock) = st.exec.phantoms.remove(p);
            let _ = lock.bind(py).call_method0(pyo3::intern!(py, "release"));
        }
    }

    pub(super) fn report(&self, py: Python<'_>, tid: ThreadId, ev: &Event) -> Result<(), Aborted> {
        let passed = self.passed_to_unseen(py, ev);
        let reports_itself = self.method_reports_itself(py, ev);
        let iterating = self.callback_watch(py, ev, &passed);
        let mut st = self.lock_state(py);
        st.exec.threads[tid].iterating = iterating;
        st = self.open_report(py, st, tid, ev)?;
        // The first report from inside a holding call (`lst.sort(key=f)` running `f`): the
        // list is still being written (emptied until the sort ends), so another thread's access
        // can fall inside the call, before this step, as it can for real.
        let returning = ev.kind == EventKind::CallReturn
            && ev
                .method
                .as_ref()
                .and_then(|m| Self::text(m.bind(py)))
                .is_some_and(|n| methods::HOLDING_METHODS.contains(&n));
        let holding = st.exec.threads[tid].holding.take().filter(|_| !returning);
        let inside_hold = holding.map(|(o, method)| Self::held_step(&st, o, method));
        let inside_hold = inside_hold.or_else(|| Self::inside_consuming(py, &mut st, tid));
        // Before this report's own load may leave another insertion in progress.
        let factory_step = Self::factory_step(py, &mut st, tid);
        let own = self.translate(py, &mut st, tid, ev, reports_itself);
        let keyed = st.exec.keyed.take();
        // The arguments' reads go first: the thread makes the call right after its last
        // step, so the call's own access (`d.setdefault`'s write) must be that step. Were
        // it first, another thread could run between it and the call, and the engine
        // would order that thread's accesses after a write that had not happened yet.
        // An argument is numbered at its own step, not before: a fresh object's number may
        // be renamed to the plan's at that step (`renumber`), and the number the plan wants
        // must not be taken by an argument whose step is still to come.
        let mut steps: Vec<Pending<'_>> = inside_hold.into_iter().map(Pending::Op).collect();
        steps.extend(factory_step.map(Pending::Op));
        // These make their accesses when taken (the call is under way); the rest announce theirs.
        let mut under_way = steps.len();
        let mut arguments = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // The step just taken, if it was this thread's read of a whole object. (Not for an
        // operand: the operation comes after the other operand's report, which may take a step.)
        let just_read = st.explorer.events().last().and_then(|e| match e.op {
            Op::Access { obj, key: WHOLE, kind: AccessKind::Read }
                if e.thread == tid && ev.kind != EventKind::Operand =>
            {
                Some(obj)
            }
            _ => None,
        });
        for arg in passed.read {
            // `lst.extend(lst)`: the receiver's own access covers it; `list(d.keys())`: so does
            // the read of `d` the thread took last, with no other thread in between.
            let covered = st.exec.number_at(py, arg.as_ptr() as usize).is_some_and(|o| {
                just_read == Some(o)
                    || own
                        .iter()
                        .chain(steps.iter().filter_map(Pending::op))
                        .any(|(op, _, _)| matches!(op, Op::Access { obj, .. } if *obj == o))
            });
            if !covered && seen.insert(arg.as_ptr() as usize) {
                arguments.push(Pending::Argument(arg));
            }
        }
        // A read of a whole container (`str(d)`) is taken before the arguments too when the call
        // reads what is nested in what it reads, reached through it: those are found after it
        // (`Pending::NestedIn`), and with it last the search could move it before another
        // thread's store into the container and keep the read of what that store replaced.
        let nested_in = passed.nested_in;
        // What the containers hold decides the steps that follow (`Pending::NestedIn`): their
        // reads are made when taken, and so ordered against the writes that change it.
        let discovers = !nested_in.is_empty();
        if let Some((op @ Op::Access { key: WHOLE, kind: AccessKind::Read, .. }, kind, key)) = &own {
            if !nested_in.is_empty() {
                steps.push(Pending::Op((*op, *kind, key.as_ref().map(|k| k.clone_ref(py)))));
            }
        }
        steps.extend(arguments);
        // A file handed to code out of sight (`json.dump(obj, f)`) is used by it, like a handle's
        // own methods (`f.write`): ordered like a write.
        for file in passed.files.iter().filter_map(|f| self.file_resource(f, false)) {
            let o = Self::number_file(&mut st, &file);
            steps.push(Pending::Op((Self::access(AccessKind::Write, o, WHOLE), "resource", None)));
        }
        if !nested_in.is_empty() {
            steps.push(Pending::NestedIn(nested_in));
        }
        // `list(g)`: the call resumes a watched generator, even one that has finished.
        for g in &passed.resumed {
            if let Some(resume) = self.resume(&mut st, g) {
                steps.push(Pending::Op(resume));
            }
        }
        // Before the load's own read, which the thread makes right after its last step.
        steps.extend(self.class_attribute_read(py, ev).into_iter().map(Pending::ClassAttribute));
        steps.extend(own.map(|op| match keyed {
            Some(keyed) => Pending::Keyed(op, keyed),
            None => Pending::Op(op),
        }));
        // Last: the thread may leave the generator (yield, return, raise) right after its
        // last step, so another thread's resume finds it running before that step and
        // suspended after it; a write there orders the two. (Its entry is the resume.) Also for
        // a report that accesses nothing shared (`i += 1` on a local int): it may be the only
        // place inside the generator where the thread can be preempted.
        if let Some(inside) = self.inside_generator(py, &mut st, ev) {
            steps.push(Pending::Op(inside));
        }
        let mut steps: std::collections::VecDeque<Pending<'_>> = steps.into();
        // The ops made now name objects by the numbers they have now; two may trade numbers
        // before a later step is taken (`Exec::swaps`).
        let made_at = st.exec.swaps.len();
        // How many nested containers a reader of everything is followed into.
        let mut nested_left: usize = 16;
        let Some(mut next) = steps.pop_front() else { return Ok(()) };
        loop {
            let (op, kind, key) = match next {
                // One level at a time: what the containers just read hold now.
                Pending::NestedIn(parents) => {
                    seen.extend(parents.iter().map(|p| p.as_ptr() as usize));
                    let children = self.nested_in(&parents, &mut seen, &mut nested_left);
                    if !children.is_empty() {
                        steps.push_front(Pending::NestedIn(children.clone()));
                        for c in children.into_iter().rev() {
                            steps.push_front(Pending::Argument(c));
                        }
                    }
                    let Some(more) = steps.pop_front() else {
                        // The last containers held nothing more: the step before was the last
                        // one, and did not know it. The call makes every access after it.
                        let chain = st.exec.threads[tid].chain.clone();
                        if let Some(last) = chain.last().filter(|_| chain.len() > 1) {
                            let own = last.op();
                            let info = StepInfo {
                                thread: tid,
                                op: own,
                                kind: "argument",
                                key: None,
                                file: Self::file_of(py, ev),
                                line: ev.line,
                                caller: None,
                            };
                            st.exec.threads[tid].more_steps = false;
                            self.step_part(py, st, tid, own, Some(info), Part::Last(&chain))?;
                        }
                        return Ok(());
                    };
                    next = more;
                    continue;
                }
                Pending::Op((op, kind, key)) => (Self::traded_since(&st.exec, made_at, op), kind, key),
                Pending::Keyed((op, kind, key), keyed) => {
                    st.exec.threads[tid].keyed = Some(keyed);
                    (Self::traded_since(&st.exec, made_at, op), kind, key)
                }
                Pending::Argument(arg) => {
                    let o = Self::number(&mut st, &arg);
                    let read = Self::access(AccessKind::Read, o, WHOLE);
                    match ev.kind {
                        EventKind::Iter | EventKind::IterNext => (read, ev.kind.as_str(), None),
                        _ => (read, "argument", ev.method.as_ref().map(|m| m.clone_ref(py))),
                    }
                }
                Pending::ClassAttribute(cls) => {
                    let o = Self::number(&mut st, &cls);
                    let k = Self::name_key(&mut st, ev.key.bind(py));
                    (Self::access(AccessKind::Read, o, k), "attr_load", Some(ev.key.clone_ref(py)))
                }
            };
            let key = if st.explain { key } else { None };
            let info =
                Some(StepInfo { thread: tid, op, kind, key, file: Self::file_of(py, ev), line: ev.line, caller: None });
            // The last step makes the earlier ones' accesses again: the operation makes them all
            // right after it, and another thread's write between two steps comes before it.
            let chain;
            let part = if steps.is_empty() {
                chain = st.exec.threads[tid].chain.clone();
                Part::Last(&chain)
            } else if under_way > 0 || discovers {
                Part::Whole
            } else {
                Part::Announced
            };
            under_way = under_way.saturating_sub(1);
            st.exec.threads[tid].more_steps = !steps.is_empty();
            self.step_part(py, st, tid, op, info, part)?;
            let Some(more) = steps.pop_front() else {
                // An operand's read (`s.d == {}` reads `s.d`, then `{}`): the operation reads
                // them after the last, so the next step is taken as part of one report.
                if ev.kind == EventKind::Operand {
                    self.lock_state(py).exec.threads[tid].mid_report = true;
                }
                return Ok(());
            };
            next = more;
            st = self.lock_state(py);
            st.exec.threads[tid].mid_report = true;
        }
    }

    /// A method call on a container of a Python class (a `MutableMapping` or `MutableSequence`
    /// one, say) whose method is rewritten code: it reports what it reads and writes itself, so
    /// the call is not also taken as an access of the whole container (it would add a read of
    /// all of it to every race on it). Decided before the state is locked (the classifier is
    /// Python).
    fn method_reports_itself(&self, py: Python<'_>, ev: &Event) -> bool {
        if ev.kind != EventKind::Call {
            return false;
        }
        let obj = ev.obj.bind(py);
        if self.builtin_writes(obj).is_some() || self.abc_kind(obj).is_none() {
            return false;
        }
        let (Some(classify), Some(method)) = (self.types.unseen_callee.as_ref(), ev.method.as_ref()) else {
            return false;
        };
        matches!(classify.bind(py).call1((obj, method.bind(py))).and_then(|r| r.extract::<i64>()), Ok(0))
    }

    /// An open file of `io`'s (text or binary, buffered or raw).
    fn is_file_object(obj: &Bound<'_, PyAny>) -> bool {
        let t = obj.get_type();
        t.module().is_ok_and(|m| m.to_str().is_ok_and(|m| m == "_io"))
            && t.name().is_ok_and(|n| {
                n.to_str().is_ok_and(|n| {
                    matches!(n, "TextIOWrapper" | "BufferedWriter" | "BufferedReader" | "BufferedRandom" | "FileIO")
                })
            })
    }

    /// The containers among a call's arguments that code out of the rewriter's sight receives
    /// (a C function or method, or Python that was not selected): its reads of them are
    /// reported at the call. So are the open files it is given (`json.dump(obj, f)`,
    /// `pickle.dump(obj, f)`, `shutil.copyfileobj(src, dst)`), which it reads or writes. Decided before the state is locked (the classifier is Python).
    fn passed_to_unseen<'py>(&self, py: Python<'py>, ev: &Event) -> Passed<'py> {
        let none = || Passed { read: Vec::new(), nested_in: Vec::new(), resumed: Vec::new(), files: Vec::new() };
        // A view or iterator as an operand (`d.keys() == {"k"}`, `"k" in d.items()`, f"{view}"):
        // the operation reads what it looks at.
        if matches!(ev.kind, EventKind::Operand | EventKind::Contains) {
            let obj = ev.obj.bind(py);
            // An f-string's value (`f"{s.n}"`): its text shows what is nested in it, as
            // `str(x)`'s does.
            // (A tuple operand never gets here: its report is dropped as immutable.)
            if ev.kind == EventKind::Operand && Self::text(ev.key.bind(py)) == Some(FORMATTED) && self.is_container(obj)
            {
                return Passed {
                    read: vec![obj.clone()],
                    nested_in: vec![obj.clone()],
                    resumed: Vec::new(),
                    files: Vec::new(),
                };
            }
            if self.is_container(obj) || self.is_generator(obj) {
                return none();
            }
            let read = self.iterated(obj).into_iter().filter(|c| self.is_container(c)).collect();
            return Passed { read, nested_in: Vec::new(), resumed: Vec::new(), files: Vec::new() };
        }
        // A loop over several containers (`zip(a, b)`) reads the others with its own (`loops`).
        if matches!(ev.kind, EventKind::Iter | EventKind::IterNext) {
            let read = ev.args.as_ref().map(|a| a.bind(py).iter().collect()).unwrap_or_default();
            return Passed { read, nested_in: Vec::new(), resumed: Vec::new(), files: Vec::new() };
        }
        if !matches!(ev.kind, EventKind::Call | EventKind::CallSite | EventKind::BuiltinCall) {
            return none();
        }
        let Some(args) = ev.args.as_ref().map(|a| a.bind(py)) else { return none() };
        // A view or builtin iterator (`sorted(d.items(), key=f)`, `list(zip(a, b))`) is read
        // through at the call: what it looks at is read then, not where it was made.
        let mut containers: Vec<Bound<'py, PyAny>> = Vec::new();
        let mut tuples: Vec<Bound<'py, PyAny>> = Vec::new();
        let mut resumed: Vec<Bound<'py, PyAny>> = Vec::new();
        let mut files: Vec<Bound<'py, PyAny>> = Vec::new();
        for a in args.iter() {
            if self.is_container(&a) {
                containers.push(a);
            } else if a.is_exact_instance_of::<PyTuple>() {
                tuples.push(a);
            } else if self.is_generator(&a) {
                resumed.push(a);
            } else if ev.kind != EventKind::BuiltinCall && Self::is_file_object(&a) {
                files.push(a);
            } else {
                containers.extend(self.iterated(&a).into_iter().filter(|c| self.is_container(c)));
            }
        }
        // Objects matter to an unseen callee that reads their attributes, and to a builtin given
        // a dataclass (its generated `__repr__`, out of sight, reads its fields).
        let objects: Vec<Bound<'py, PyAny>> = if ev.kind == EventKind::BuiltinCall {
            args.iter().filter(|a| self.is_dataclass_instance(a)).collect()
        } else {
            args.iter().filter(|a| self.is_plain_object(a)).collect()
        };
        if containers.is_empty() && objects.is_empty() && tuples.is_empty() && resumed.is_empty() && files.is_empty() {
            return none();
        }
        // A reader of everything nested reads what a tuple it is given holds too
        // (`repr((a, b))`, `json.dumps((a, b))`).
        let everything = |read: Vec<Bound<'py, PyAny>>, roots: Vec<Bound<'py, PyAny>>| {
            let mut nested_in = roots;
            nested_in.extend(tuples.iter().cloned());
            Passed { read, nested_in, resumed: resumed.clone(), files: files.clone() }
        };
        let obj = ev.obj.bind(py);
        if ev.kind == EventKind::BuiltinCall {
            // The reading builtins read every container they are given (`zip(a, b)`,
            // `map(f, c)`); the state builtins' arguments are names, keys and values.
            // The text of a container shows everything in it.
            return match self.whole_reader_name(obj) {
                Some(name) if DEEP_READERS.contains(&name) => {
                    for o in &objects {
                        let fields = self.attributes_of(o).and_then(|d| d.cast_into::<PyDict>().ok());
                        containers.extend(fields.iter().flat_map(|d| d.values()).filter(|v| self.is_container(v)));
                    }
                    everything(containers.clone(), containers)
                }
                Some(_) => Passed { read: containers, nested_in: Vec::new(), resumed, files: Vec::new() },
                None => none(),
            };
        }
        let Some(classify) = self.types.unseen_callee.as_ref() else { return none() };
        let method = if ev.kind == EventKind::Call { ev.method.as_ref().map(|m| m.bind(py).clone()) } else { None };
        match classify.bind(py).call1((obj, method)).and_then(|r| r.extract::<i64>()) {
            // What such code does with a container is unknown: it may read all of it
            // (`json.dumps`, `pickle.dumps`).
            Ok(1) => everything(containers.clone(), containers),
            // It reads objects' attributes too (`copy.deepcopy`, `dataclasses.asdict`): the
            // objects among the arguments and in the containers given, and what they hold.
            Ok(2) => {
                let mut roots = containers;
                for o in &objects {
                    if let Ok(attrs) = o.getattr(pyo3::intern!(py, "__dict__")) {
                        roots.extend(
                            attrs
                                .cast::<PyDict>()
                                .into_iter()
                                .flat_map(|d| d.values())
                                .filter(|v| self.is_container(v)),
                        );
                    }
                }
                let mut read = objects;
                read.extend(roots.iter().cloned());
                everything(read, roots)
            }
            _ => none(),
        }
    }

    /// The code of `d`'s `default_factory` when it is a Python function or method (it runs
    /// Python, so may be preempted).
    fn factory_code<'py>(d: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
        let py = d.py();
        let factory = Self::generic_attribute(d, pyo3::intern!(py, "default_factory"))?;
        let function = if factory.get_type().name().is_ok_and(|n| n == "method") {
            Self::generic_attribute(&factory, pyo3::intern!(py, "__func__"))?
        } else {
            factory
        };
        Self::generic_attribute(&function, pyo3::intern!(py, "__code__"))
    }

    /// A `defaultdict` load's insertion in progress (`ThreadRt::pending_insert`): while its
    /// factory runs, each report from inside it is also a write of the key, which is being made
    /// (another thread's load before the last of them misses too, and one of the two stores is
    /// lost); the thread's first report back in the loading frame or outside it ends it.
    pub(super) fn factory_step(
        py: Python<'_>,
        st: &mut State,
        tid: ThreadId,
    ) -> Option<(Op, &'static str, Option<Py<PyAny>>)> {
        let (o, k, frame, key) = st.exec.threads[tid].pending_insert.as_ref()?;
        if report_py::frame_called_by(py, frame.bind(py)).is_some() {
            let shown = st.explain.then(|| key.clone_ref(py));
            return Some((Self::access(AccessKind::Write, *o, *k), "factory", shown));
        }
        st.exec.threads[tid].pending_insert = None;
        None
    }

    /// A call `len(c)` whose answer is `c`'s size: a builtin list, dict, set or bytearray (or a
    /// subclass that keeps their `__len__`), whose size changes only by insertions, deletions and
    /// writes of all of it.
    fn counts_its_size(&self, callee: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> bool {
        if args.len() != 1 || self.whole_reader_name(callee) != Some("len") {
            return false;
        }
        let Ok(c) = args.get_item(0) else { return false };
        let py = c.py();
        let base = if c.is_instance_of::<PyDict>() {
            py.get_type::<PyDict>()
        } else if c.is_instance_of::<PyList>() {
            py.get_type::<PyList>()
        } else if c.is_instance_of::<PySet>() {
            py.get_type::<PySet>()
        } else if c.is_instance_of::<PyByteArray>() {
            py.get_type::<PyByteArray>()
        } else {
            return false;
        };
        Self::keeps_base(&c, &base, "__len__")
    }

    fn is_dataclass_instance(&self, obj: &Bound<'_, PyAny>) -> bool {
        self.is_plain_object(obj)
            && obj.get_type().as_any().hasattr(pyo3::intern!(obj.py(), "__dataclass_fields__")).unwrap_or(false)
    }

    /// An instance of a class defined in Python whose attributes are its state (not a module,
    /// class, function or container).
    fn is_plain_object(&self, obj: &Bound<'_, PyAny>) -> bool {
        // SAFETY: the type object of a live object.
        let flags = unsafe { pyo3::ffi::PyType_GetFlags(obj.get_type().as_type_ptr()) };
        flags & pyo3::ffi::Py_TPFLAGS_HEAPTYPE != 0
            && !obj.is_instance_of::<pyo3::types::PyType>()
            && !Self::is_scalar_key(obj)
            && !self.is_container(obj)
            && obj.cast::<PyModule>().is_err()
            && !obj.is_callable()
    }

    /// The containers directly inside `parents` (list and tuple items, dict keys and values, set
    /// members; looked through tuples and frozensets, which cannot change) not in `seen`, at most
    /// `left` more in all. Only builtin lists, tuples, dicts and sets are looked into, so no
    /// Python runs; a big structure is read through its first items.
    fn nested_in<'py>(
        &self,
        parents: &[Bound<'py, PyAny>],
        seen: &mut std::collections::HashSet<usize>,
        left: &mut usize,
    ) -> Vec<Bound<'py, PyAny>> {
        const ITEMS_MAX: usize = 256;
        let mut found = Vec::new();
        let mut frontier: Vec<Bound<'py, PyAny>> = parents.to_vec();
        let mut budget = ITEMS_MAX * 4;
        while let Some(c) = frontier.pop() {
            let items: Vec<Bound<'py, PyAny>> = if let Ok(l) = c.cast::<PyList>() {
                l.iter().take(ITEMS_MAX).collect()
            } else if let Ok(t) = c.cast_exact::<PyTuple>() {
                t.iter().take(ITEMS_MAX).collect()
            } else if let Ok(d) = c.cast::<PyDict>() {
                d.iter().take(ITEMS_MAX / 2).flat_map(|(k, v)| [k, v]).collect()
            } else if let Ok(s) = c.cast_exact::<PySet>() {
                s.iter().take(ITEMS_MAX).collect()
            } else if let Ok(s) = c.cast_exact::<PyFrozenSet>() {
                s.iter().take(ITEMS_MAX).collect()
            } else {
                continue;
            };
            for item in items {
                if budget == 0 || *left == 0 {
                    return found;
                }
                budget -= 1;
                if Self::is_scalar_key(&item) || !seen.insert(item.as_ptr() as usize) {
                    continue;
                }
                if self.is_container(&item) {
                    found.push(item);
                    *left -= 1;
                } else if item.is_exact_instance_of::<PyTuple>() || item.is_exact_instance_of::<PyFrozenSet>() {
                    frontier.push(item);
                }
            }
        }
        found
    }

    /// The reporting code object; its file name is read only when shown.
    pub(super) fn file_of(py: Python<'_>, ev: &Event) -> Option<Py<PyAny>> {
        ev.code.as_ref().map(|c| c.clone_ref(py))
    }

    pub(super) fn file_name(py: Python<'_>, f: &Option<Py<PyAny>>) -> Option<Py<PyAny>> {
        let f = f.as_ref()?.bind(py);
        if f.is_instance_of::<PyString>() {
            return Some(f.clone().unbind());
        }
        f.getattr("co_filename").ok().map(Bound::unbind)
    }
}
