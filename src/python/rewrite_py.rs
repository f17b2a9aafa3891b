//! `rewrite_code` / `rewrite_report`: the rewriter over Python code objects.
//!
//! abi3: code objects are read with `getattr` and rebuilt with `code.replace(...)`. Reading and
//! rebuilding need the GIL; the pure-Rust core between them runs on helper threads
//! (`pipeline`) for a large module.

use pyo3::create_exception;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use super::pipeline::{rewrite_threads, Batch, Item, Job};
use crate::decode::{self, RawCode};
use crate::encode;
use crate::marshal::{self, Code as MCode, CodeExtra, Obj as MObj, Value as MValue};
use crate::rewrite::{self, MethodTables, Parts, Policy, RewriteError, SiteName, REWRITER_VERSION};
use crate::tables::{self, ArgKind, DerefIndex, OpTable};

create_exception!(
    _native,
    UnsupportedVersion,
    PyValueError,
    "The running interpreter has no opcode table or rewriting facts; code is left as it is."
);

/// Code objects left unrewritten because the result failed the rewriter's own stack check.
static FAILURES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// An internal error in `outcome` recorded as `described` and turned into "leave it as it was":
/// code failing the rewriter's own check is never handed out. Only input errors remain.
fn leave_internal_errors(
    outcome: Result<Option<rewrite::RewrittenParts>, RewriteError>,
    described: impl FnOnce() -> String,
) -> Result<Option<rewrite::RewrittenParts>, RewriteError> {
    match outcome {
        Err(e @ RewriteError::Internal(_)) => {
            FAILURES.lock().unwrap_or_else(|p| p.into_inner()).push(format!("{}: {e}", described()));
            Ok(None)
        }
        other => other,
    }
}

/// Descriptions of code objects left unrewritten by an internal error (should stay empty).
#[pyfunction]
fn rewrite_failures() -> Vec<String> {
    FAILURES.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn table_for(py: Python<'_>) -> PyResult<&'static OpTable> {
    let v = py.version_info();
    let table = tables::for_version(v.major, v.minor);
    match table {
        Some(t) if rewrite::facts::Facts::for_table(t).is_some() => Ok(t),
        _ => Err(UnsupportedVersion::new_err(format!(
            "frontrun cannot rewrite bytecode for Python {}.{} (supported: {})",
            v.major,
            v.minor,
            tables::all().iter().map(|t| format!("{}.{}", t.version.0, t.version.1)).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn qualname(code: &Bound<'_, PyAny>) -> String {
    code.getattr("co_qualname").or_else(|_| code.getattr("co_name")).map(|n| n.to_string()).unwrap_or_default()
}

fn malformed(code: &Bound<'_, PyAny>, e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("cannot rewrite {} (line {}): {e}", qualname(code), first_line(code)))
}

fn first_line(code: &Bound<'_, PyAny>) -> i64 {
    code.getattr("co_firstlineno").and_then(|l| l.extract()).unwrap_or(0)
}

/// Attribute names are interned once (`intern!`): a `&str` would make a new string per read.
fn bytes_attr<'py>(code: &Bound<'py, PyAny>, name: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyBytes>> {
    code.getattr(name)?.cast_into::<PyBytes>().map_err(|_| malformed(code, format!("{name} is not bytes")))
}

fn strings(tuple: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    tuple.cast::<PyTuple>()?.iter().map(|s| s.extract::<String>()).collect()
}

/// A name the rewriter appends to `co_names`, interned once per process.
fn injected_name<'py>(py: Python<'py>, name: &'static str) -> Bound<'py, PyString> {
    match name {
        rewrite::GUARD_NAME => intern!(py, rewrite::GUARD_NAME).clone(),
        rewrite::REPORT_NAME => intern!(py, rewrite::REPORT_NAME).clone(),
        other => PyString::intern(py, other),
    }
}

/// `(line, kind, "qualname: name")`.
type SiteRow = (Option<i32>, &'static str, String);

/// One code object's report for `rewrite_report`.
struct Listed {
    qualname: String,
    first_line: i64,
    before: String,
    after: Option<(String, Vec<bool>)>,
}

/// The method tables for `extra` resource methods; the default ones are built once (they
/// are sets of ~100 strings, and the import hook rewrites module by module).
fn method_tables(extra: &[String]) -> std::sync::Arc<MethodTables> {
    static DEFAULT: std::sync::OnceLock<std::sync::Arc<MethodTables>> = std::sync::OnceLock::new();
    if extra.is_empty() {
        return DEFAULT.get_or_init(|| std::sync::Arc::new(MethodTables::new(&[]))).clone();
    }
    std::sync::Arc::new(MethodTables::new(extra))
}

/// Finishes the batch when the rewrite ends, however it ends.
struct Finished<'a>(&'a Batch);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// The cyclic collector held off while one module's code objects are read and rebuilt: the
/// tuples and code objects a large module makes set off collections midway (up to 3.11 at an
/// allocation, hundreds per large module; 3.12+ at the next bytecode boundary, fewer once it
/// waits): 2-3% of the rewrite on the stdlib. Collections owed resume afterwards. Only with the
/// GIL held throughout: without it, another thread's `gc.disable()` in between would be undone.
struct CollectorPaused(bool);

impl CollectorPaused {
    fn new(py: Python<'_>) -> CollectorPaused {
        let gil = match py.import(intern!(py, "sys")).and_then(|sys| sys.getattr(intern!(py, "_is_gil_enabled"))) {
            Ok(is_enabled) => is_enabled.call0().and_then(|b| b.extract::<bool>()).unwrap_or(false),
            Err(_) => true,
        };
        // Safety: the GIL is held (`py`).
        CollectorPaused(gil && unsafe { pyo3::ffi::PyGC_Disable() } == 1)
    }
}

impl Drop for CollectorPaused {
    fn drop(&mut self) {
        if self.0 {
            // Safety: still on the thread that holds the GIL.
            unsafe { pyo3::ffi::PyGC_Enable() };
        }
    }
}

struct Rewriter<'py> {
    py: Python<'py>,
    table: &'static OpTable,
    code_type: Bound<'py, PyAny>,
    policy: Policy,
    methods: std::sync::Arc<MethodTables>,
    /// `rewrite_report` only: sites, listings, and the disassembler.
    report: Option<(Vec<SiteRow>, Vec<Listed>, Bound<'py, PyAny>)>,
}

/// One code object of the tree being rewritten, as read with the GIL held.
struct Node<'py> {
    code: Bound<'py, PyAny>,
    consts: Bound<'py, PyTuple>,
    /// `(index in co_consts, node)` of each nested code object.
    children: Vec<(usize, usize)>,
    /// `co_code`, `co_exceptiontable`, `co_linetable`: the batch's item points into them.
    _read_by_helpers: (Bound<'py, PyBytes>, Option<Bound<'py, PyBytes>>, Bound<'py, PyBytes>),
    co_names: Bound<'py, PyTuple>,
    name_objs: Vec<Bound<'py, PyString>>,
    /// Empty unless the code has an instruction on a cell or free variable.
    deref_names: Vec<String>,
    /// `rewrite_report`: this code object's entry in the listings.
    listed_at: Option<usize>,
}

impl<'py> Rewriter<'py> {
    fn new(py: Python<'py>, policy: &str, resource_methods: Vec<String>, report: bool) -> PyResult<Self> {
        let table = table_for(py)?;
        let policy = Policy::parse(policy).ok_or_else(|| {
            PyValueError::new_err(format!("unknown frontrun policy {policy:?}; expected resources, shared or all"))
        })?;
        let report = if report {
            let disassemble = py.import("frontrun._native")?.getattr("bytecode_disassemble")?;
            Some((Vec::new(), Vec::new(), disassemble))
        } else {
            None
        };
        Ok(Rewriter { py, table, code_type: code_type(py)?, policy, methods: method_tables(&resource_methods), report })
    }

    /// `code` and every code object nested in it, rewritten: each is handed to the helper
    /// threads as soon as it is read, then all are rebuilt bottom-up.
    fn rewrite(&mut self, code: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        // Declared before the batch: the nodes own what the helpers read, and must outlive it.
        let mut nodes = Vec::new();
        let job = Job { table: self.table, policy: self.policy, methods: std::sync::Arc::clone(&self.methods) };
        let batch = Batch::new(job, rewrite_threads() - 1);
        let _finished = Finished(&batch);
        let _paused = CollectorPaused::new(self.py);
        self.gather(code, &mut nodes, &batch)?;
        batch.gathered();
        let mut built: Vec<Bound<'py, PyAny>> = Vec::with_capacity(nodes.len());
        for (k, node) in nodes.iter().enumerate() {
            let new = self.build(node, batch.take(k), &built)?;
            built.push(new);
        }
        Ok(built.pop().expect("the outermost code object is gathered last"))
    }

    /// Appends the code objects nested in `code`, then `code` itself, to `nodes`; returns
    /// `code`'s index.
    fn gather(
        &mut self,
        code: &Bound<'py, PyAny>,
        nodes: &mut Vec<Node<'py>>,
        batch: &std::sync::Arc<Batch>,
    ) -> PyResult<usize> {
        let py = self.py;
        let mut listed_at = None;
        if let Some((_, listed, disassemble)) = &mut self.report {
            listed_at = Some(listed.len());
            listed.push(Listed {
                qualname: qualname(code),
                first_line: first_line(code),
                before: disassemble.call1((code,))?.extract()?,
                after: None,
            });
        }
        let consts = code.getattr(intern!(py, "co_consts"))?.cast_into::<PyTuple>()?;
        let mut children = Vec::new();
        for (i, c) in consts.iter().enumerate() {
            // CodeType cannot be subclassed: an exact type check suffices.
            if c.get_type().is(&self.code_type) {
                children.push((i, self.gather(&c, nodes, batch)?));
            }
        }
        let raw_code = bytes_attr(code, intern!(py, "co_code"))?;
        let exception_table =
            if self.table.exception_table { Some(bytes_attr(code, intern!(py, "co_exceptiontable"))?) } else { None };
        let line_table = bytes_attr(code, intern!(py, "co_linetable"))?;
        let co_names = code.getattr(intern!(py, "co_names"))?.cast_into::<PyTuple>()?;
        let name_objs =
            co_names.iter().map(|n| n.cast_into::<PyString>().map_err(PyErr::from)).collect::<PyResult<Vec<_>>>()?;
        let deref_names = if uses_deref(self.table, raw_code.as_bytes()) { self.deref_names(code) } else { Vec::new() };
        let first_line = code.getattr(intern!(py, "co_firstlineno"))?.extract::<i32>()?;
        // Borrowed UTF-8 views of the names (no copy for the usual ASCII names).
        let names = name_objs.iter().map(|s| s.to_str()).collect::<PyResult<Vec<&str>>>()?;
        let parts = Parts {
            code: raw_code.as_bytes(),
            exception_table: exception_table.as_ref().map_or(&[], |b| b.as_bytes()),
            line_table: line_table.as_bytes(),
            first_line,
            names: &names,
            const_count: consts.len(),
            deref_names: &deref_names,
        };
        // Safety: `nodes` keeps these objects alive until the batch is finished (`rewrite`).
        unsafe { batch.push(Item::new(&parts)) };
        nodes.push(Node {
            code: code.clone(),
            consts,
            children,
            _read_by_helpers: (raw_code, exception_table, line_table),
            co_names,
            name_objs,
            deref_names,
            listed_at,
        });
        Ok(nodes.len() - 1)
    }

    /// Names by deref index.
    fn deref_names(&self, code: &Bound<'py, PyAny>) -> Vec<String> {
        let py = self.py;
        let get = |attr: &Bound<'py, PyString>| code.getattr(attr).and_then(|t| strings(&t)).unwrap_or_default();
        match self.table.deref {
            DerefIndex::CellsThenFrees => {
                let mut v = get(intern!(py, "co_cellvars"));
                v.extend(get(intern!(py, "co_freevars")));
                v
            }
            // 3.11+: one "locals plus" index space: locals, then cells that are not also
            // arguments/locals, then free variables.
            DerefIndex::LocalsPlus => {
                let mut v = get(intern!(py, "co_varnames"));
                for c in get(intern!(py, "co_cellvars")) {
                    if !v.contains(&c) {
                        v.push(c);
                    }
                }
                v.extend(get(intern!(py, "co_freevars")));
                v
            }
        }
    }

    /// `node`'s new code object from its rewrite and its children's new objects (`built`).
    fn build(
        &mut self,
        node: &Node<'py>,
        outcome: Result<Option<rewrite::RewrittenParts>, RewriteError>,
        built: &[Bound<'py, PyAny>],
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        let code = &node.code;
        let mut items: Vec<Bound<'py, PyAny>> = Vec::with_capacity(node.consts.len() + 8);
        items.extend(node.consts.iter());
        let mut children_changed = false;
        for &(i, k) in &node.children {
            children_changed |= !built[k].is(&items[i]);
            items[i] = built[k].clone();
        }
        let described = || format!("{} (line {})", qualname(code), first_line(code));
        let outcome = leave_internal_errors(outcome, described).map_err(|e| malformed(code, e))?;
        let replace = intern!(py, "replace");
        let Some(rw) = outcome else {
            if !children_changed {
                return Ok(code.clone());
            }
            let kwargs = PyDict::new(py);
            kwargs.set_item(intern!(py, "co_consts"), PyTuple::new(py, items)?)?;
            return code.call_method(replace, (), Some(&kwargs));
        };

        let site_name = |name: SiteName| -> PyResult<Bound<'py, PyAny>> {
            Ok(match name {
                SiteName::None => py.None().into_bound(py),
                SiteName::Name(i) => node.co_names.get_item(i as usize)?,
                SiteName::Deref(i) => match node.deref_names.get(i as usize) {
                    Some(n) => PyString::new(py, n).into_any(),
                    None => py.None().into_bound(py),
                },
                SiteName::Symbol(s) => PyString::new(py, s).into_any(),
            })
        };
        for site in &rw.new_consts {
            let kind = (site.kind as u8).into_pyobject(py)?.into_any();
            let line = site.line.into_pyobject(py)?.into_any();
            items.push(PyTuple::new(py, [kind, line, site_name(site.name)?])?.into_any());
        }
        let mut new_names: Vec<Bound<'py, PyAny>> = Vec::with_capacity(node.name_objs.len() + rw.new_names.len());
        new_names.extend(node.name_objs.iter().map(|n| n.clone().into_any()));
        for &n in &rw.new_names {
            new_names.push(injected_name(py, n).into_any());
        }
        let old_stacksize: u32 = code.getattr(intern!(py, "co_stacksize"))?.extract()?;
        let kwargs = PyDict::new(py);
        kwargs.set_item(intern!(py, "co_consts"), PyTuple::new(py, items)?)?;
        kwargs.set_item(intern!(py, "co_names"), PyTuple::new(py, new_names)?)?;
        kwargs.set_item(intern!(py, "co_code"), PyBytes::new(py, &rw.code))?;
        kwargs.set_item(intern!(py, "co_linetable"), PyBytes::new(py, &rw.line_table))?;
        if self.table.exception_table {
            kwargs.set_item(intern!(py, "co_exceptiontable"), PyBytes::new(py, &rw.exception_table))?;
        }
        kwargs.set_item(intern!(py, "co_stacksize"), rw.stacksize.max(old_stacksize))?;
        let new_code = code.call_method(replace, (), Some(&kwargs))?;

        if let Some((sites, listed, disassemble)) = &mut self.report {
            let qn = qualname(code);
            for s in &rw.sites {
                let what = site_name(s.name)?;
                let shown = if what.is_none() { qn.to_string() } else { format!("{qn}: {what}") };
                sites.push((s.line, s.kind.event(), shown));
            }
            let after: String = disassemble.call1((&new_code,))?.extract()?;
            if let Some(at) = node.listed_at {
                listed[at].after = Some((after, rw.injected.clone()));
            }
        }
        Ok(new_code)
    }
}

/// Whether `co_code` has an instruction whose argument is a cell or free variable (inline
/// caches read as opcode 0, which has none).
fn uses_deref(table: &OpTable, code: &[u8]) -> bool {
    code.chunks_exact(2).any(|unit| table.op(unit[0]).is_some_and(|op| matches!(op.arg, ArgKind::Free)))
}

/// `types.CodeType`, taken from a code object: `types` may be the module being rewritten (a
/// fresh import of it is partly initialised while its code is rewritten).
fn code_type(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static CODE_TYPE: std::sync::OnceLock<Py<PyAny>> = std::sync::OnceLock::new();
    if let Some(t) = CODE_TYPE.get() {
        return Ok(t.bind(py).clone());
    }
    let code = py.import("builtins")?.getattr("compile")?.call1(("", "<frontrun>", "exec"))?;
    let t = CODE_TYPE.get_or_init(|| code.get_type().into_any().unbind());
    Ok(t.bind(py).clone())
}

fn check_code<'py>(py: Python<'py>, code: &Bound<'py, PyAny>) -> PyResult<()> {
    let code_type = code_type(py)?;
    if !code.is_instance(&code_type)? {
        return Err(PyTypeError::new_err(format!(
            "rewrite_code() expects a code object, got {}",
            code.get_type().name()?
        )));
    }
    Ok(())
}

/// Return `code` with report calls injected (recursively into nested code objects); the same
/// object when nothing was selected. ValueError for malformed code, UnsupportedVersion for an
/// interpreter without a table.
#[pyfunction]
#[pyo3(signature = (code, policy = "shared", resource_methods = Vec::new()))]
fn rewrite_code<'py>(
    code: &Bound<'py, PyAny>,
    policy: &str,
    resource_methods: Vec<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = code.py();
    check_code(py, code)?;
    let new = Rewriter::new(py, policy, resource_methods, false)?.rewrite(code)?;
    if let Ok(file) = code.getattr(intern!(py, "co_filename")).and_then(|f| f.extract::<String>()) {
        note_rewritten_file(file);
    }
    Ok(new)
}

/// Source files whose code went through `rewrite_code` (or came rewritten from the cache):
/// a function from one of them reports its own reads even when it had no site to rewrite.
static REWRITTEN_FILES: std::sync::Mutex<Option<std::collections::HashSet<String>>> = std::sync::Mutex::new(None);

/// Notes that `file`'s code runs rewritten. Names like `<string>` (generated code, such as a
/// dataclass's `__init__`) are not files and are left out.
#[pyfunction]
fn note_rewritten_file(file: String) {
    if !file.starts_with('<') {
        REWRITTEN_FILES.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(Default::default).insert(file);
    }
}

/// Whether code from `file` runs rewritten (`note_rewritten_file`).
#[pyfunction]
pub(crate) fn is_rewritten_file(file: &str) -> bool {
    REWRITTEN_FILES.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_some_and(|s| s.contains(file))
}

/// `(new_code, sites, listing_before, listing_after)`: sites are `(line, kind, "qualname: name")`
/// for every report site; in the after listing injected instructions start with '+'.
#[pyfunction]
#[pyo3(signature = (code, policy = "shared", resource_methods = Vec::new()))]
fn rewrite_report<'py>(
    code: &Bound<'py, PyAny>,
    policy: &str,
    resource_methods: Vec<String>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyList>, String, String)> {
    let py = code.py();
    check_code(py, code)?;
    let mut rewriter = Rewriter::new(py, policy, resource_methods, true)?;
    let new_code = rewriter.rewrite(code)?;
    let (sites, listed, _) = rewriter.report.take().expect("report mode");
    let site_list = PyList::empty(py);
    for (line, kind, name) in sites {
        site_list.append((line, kind, name))?;
    }
    let (before, after) = listings(&listed);
    Ok((new_code, site_list, before, after))
}

/// The before and after listings of every code object, with headers.
fn listings(listed: &[Listed]) -> (String, String) {
    let mut before = String::new();
    let mut after = String::new();
    for l in listed {
        let header = format!("Disassembly of {} (line {}):\n", l.qualname, l.first_line);
        before.push_str(&header);
        before.push_str(&indent(&l.before, None));
        before.push('\n');
        after.push_str(&header);
        match &l.after {
            Some((text, injected)) => after.push_str(&indent(text, Some(injected))),
            None => after.push_str(&indent(&l.before, None)),
        }
        after.push('\n');
    }
    (before, after)
}

/// Two leading columns: '+' on the line of each injected instruction (the listing has one line
/// per instruction before its exception table).
fn indent(listing: &str, injected: Option<&Vec<bool>>) -> String {
    let mut out = String::new();
    let mut index = 0;
    let mut in_instrs = true;
    for line in listing.lines() {
        if line.starts_with("ExceptionTable") {
            in_instrs = false;
        }
        let mark = match injected {
            Some(flags) if in_instrs => {
                let m = flags.get(index).copied().unwrap_or(false);
                index += 1;
                m
            }
            _ => false,
        };
        out.push_str(if mark { "+ " } else { "  " });
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The rewriter's strict stack check of one code object (not recursive): None, or the problem.
#[pyfunction]
fn _rewrite_check(code: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    let table = table_for(code.py())?;
    let py = code.py();
    let raw_code = bytes_attr(code, intern!(py, "co_code"))?;
    let exception_table =
        if table.exception_table { Some(bytes_attr(code, intern!(py, "co_exceptiontable"))?) } else { None };
    let line_table = bytes_attr(code, intern!(py, "co_linetable"))?;
    let decoded = decode::decode(
        table,
        RawCode {
            code: raw_code.as_bytes(),
            exception_table: exception_table.as_ref().map_or(&[], |b| b.as_bytes()),
            line_table: line_table.as_bytes(),
            first_line: code.getattr("co_firstlineno")?.extract()?,
        },
    )
    .map_err(|e| malformed(code, e))?;
    Ok(rewrite::verify::check(&decoded).err())
}

// ------------------------------------------------------------------ other interpreter versions

/// What a listing shows beside an instruction's argument, by argument kind.
struct Symbols<'a> {
    names: &'a [String],
    /// `repr` of each constant.
    consts: Vec<String>,
    locals: &'a [String],
    derefs: &'a [String],
}

/// `dis.cmp_op`, the same in every supported version.
const CMP_OP: [&str; 6] = ["<", "<=", "==", "!=", ">", ">="];

/// A dis-like listing of decoded instructions without an interpreter of that version:
/// line (when it changes), offset, opname, argument, and what the argument stands for (name,
/// constant, local, cell, comparison, jump target).
fn plain_listing(code: &crate::instr::Code, symbols: &Symbols<'_>) -> String {
    use std::fmt::Write as _;
    let Ok(lay) = encode::layout(code) else { return "(no layout)\n".to_string() };
    let labels = code.label_targets();
    let lookup = |table: &[String], i: u32| table.get(i as usize).map_or("?".to_string(), String::clone);
    let mut out = String::new();
    let mut last_line: Option<Option<i32>> = None;
    for (i, instr) in code.instrs.iter().enumerate() {
        let Some(info) = code.table.op(instr.op) else { continue };
        let line = if last_line != Some(instr.position.line) {
            last_line = Some(instr.position.line);
            instr.position.line.map_or("--".to_string(), |l| l.to_string())
        } else {
            String::new()
        };
        let offset = 2 * (lay.starts[i] + lay.prefixes[i] as u32);
        let meaning = if let Some(t) = instr.target.and_then(|l| labels.get(l.0 as usize).copied().flatten()) {
            Some(format!("to {}", 2 * lay.starts[t]))
        } else {
            match info.arg {
                ArgKind::Name { shift } => Some(lookup(symbols.names, instr.arg >> shift)),
                ArgKind::Const => Some(lookup(&symbols.consts, instr.arg)),
                ArgKind::Local => Some(lookup(symbols.locals, instr.arg)),
                ArgKind::LocalPair => Some(format!(
                    "{}, {}",
                    lookup(symbols.locals, instr.arg >> 4),
                    lookup(symbols.locals, instr.arg & 15)
                )),
                ArgKind::Free => Some(lookup(symbols.derefs, instr.arg)),
                ArgKind::Compare { shift } => {
                    Some(CMP_OP.get((instr.arg >> shift) as usize).map_or("?", |op| op).to_string())
                }
                _ => None,
            }
        };
        let shown = match meaning {
            Some(m) => format!("{} ({m})", if instr.target.is_some() { lay.args[i] } else { instr.arg }),
            None if info.code >= code.table.have_argument => instr.arg.to_string(),
            None => String::new(),
        };
        // A name as long as the column still gets a space before its argument.
        let width = 28.max(info.name.len() + 1);
        let _ = writeln!(out, "{}", format!("{line:>5} {offset:>6} {:<width$}{shown}", info.name).trim_end());
    }
    out
}

fn const_reprs(consts: &MObj) -> Vec<String> {
    consts.as_tuple().map_or_else(Vec::new, |items| items.iter().map(MObj::repr).collect())
}

fn marshal_strings(obj: &MObj) -> Option<Vec<String>> {
    obj.as_tuple()?.iter().map(|o| o.as_str().map(|s| s.into_owned())).collect()
}

struct PycRewriter {
    table: &'static OpTable,
    policy: Policy,
    methods: MethodTables,
    sites: Vec<SiteRow>,
    listed: Vec<Listed>,
}

impl PycRewriter {
    /// Rewrite `code` and its nested code objects in place; true when anything changed.
    fn rewrite(&mut self, code: &mut MCode) -> Result<bool, String> {
        let qn = code.qualname().unwrap_or(&code.name).as_str().map(|s| s.into_owned()).unwrap_or_default();
        let what = |e: &dyn std::fmt::Display| format!("cannot rewrite {qn} (line {}): {e}", code.firstlineno);
        let raw = code.code.as_bytes().ok_or_else(|| what(&"co_code is not bytes"))?.to_vec();
        let exception_table = match code.exceptiontable() {
            Some(t) => t.as_bytes().ok_or_else(|| what(&"co_exceptiontable is not bytes"))?.to_vec(),
            None => Vec::new(),
        };
        let line_table = code.linetable.as_bytes().ok_or_else(|| what(&"co_linetable is not bytes"))?.to_vec();
        let names = marshal_strings(&code.names).ok_or_else(|| what(&"co_names is not a tuple of str"))?;
        let deref_names: Vec<String> = match &code.extra {
            CodeExtra::Py310 { cellvars, freevars, .. } => {
                let mut v = marshal_strings(cellvars).unwrap_or_default();
                v.extend(marshal_strings(freevars).unwrap_or_default());
                v
            }
            // The deref index is the localsplus index.
            CodeExtra::Py311 { localsplusnames, .. } => marshal_strings(localsplusnames).unwrap_or_default(),
        };
        let locals: Vec<String> = match &code.extra {
            CodeExtra::Py310 { varnames, .. } => marshal_strings(varnames).unwrap_or_default(),
            CodeExtra::Py311 { .. } => deref_names.clone(),
        };
        let before = crate::decode::decode(
            self.table,
            RawCode {
                code: &raw,
                exception_table: &exception_table,
                line_table: &line_table,
                first_line: code.firstlineno,
            },
        )
        .map_err(|e| what(&e))?;
        let at = self.listed.len();
        self.listed.push(Listed {
            qualname: qn.clone(),
            first_line: code.firstlineno as i64,
            before: plain_listing(
                &before,
                &Symbols { names: &names, consts: const_reprs(&code.consts), locals: &locals, derefs: &deref_names },
            ),
            after: None,
        });

        let mut items: Vec<MObj> = code.consts.as_tuple().ok_or_else(|| what(&"co_consts is not a tuple"))?.to_vec();
        let mut changed = false;
        for item in items.iter_mut() {
            if let MValue::Code(child) = &mut item.value {
                changed |= self.rewrite(child)?;
            }
        }
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let parts = Parts {
            code: &raw,
            exception_table: &exception_table,
            line_table: &line_table,
            first_line: code.firstlineno,
            names: &name_refs,
            const_count: items.len(),
            deref_names: &deref_names,
        };
        let described = || format!("{qn} (line {})", code.firstlineno);
        let outcome = rewrite::rewrite_parts(self.table, &parts, self.policy, &self.methods);
        let outcome = leave_internal_errors(outcome, described).map_err(|e| what(&e))?;
        let Some(rw) = outcome else {
            if changed {
                code.consts = MObj::tuple(items);
            }
            return Ok(changed);
        };
        let site_name = |name: SiteName| -> MObj {
            match name {
                SiteName::None => MObj::none(),
                SiteName::Name(i) => names.get(i as usize).map_or_else(MObj::none, |n| MObj::interned(n)),
                SiteName::Deref(i) => deref_names.get(i as usize).map_or_else(MObj::none, |n| MObj::interned(n)),
                SiteName::Symbol(s) => MObj::str(s),
            }
        };
        for site in &rw.new_consts {
            let line = site.line.map_or_else(MObj::none, |l| MObj::int(l as i64));
            items.push(MObj::tuple(vec![MObj::int(site.kind as i64), line, site_name(site.name)]));
        }
        let mut new_names: Vec<MObj> = code.names.as_tuple().map(|t| t.to_vec()).unwrap_or_default();
        new_names.extend(rw.new_names.iter().map(|n| MObj::interned(n)));
        code.consts = MObj::tuple(items);
        code.names = MObj::tuple(new_names);
        code.code = MObj::bytes(rw.code);
        code.linetable = MObj::bytes(rw.line_table);
        if let Some(t) = code.exceptiontable_mut() {
            *t = MObj::bytes(rw.exception_table);
        }
        code.stacksize = code.stacksize.max(rw.stacksize as i32);
        for s in &rw.sites {
            let shown = match site_name(s.name).as_str() {
                Some(n) => format!("{qn}: {n}"),
                None => qn.to_string(),
            };
            self.sites.push((s.line, s.kind.event(), shown));
        }
        let mut names_after = names.clone();
        names_after.extend(rw.new_names.iter().map(|n| n.to_string()));
        let symbols =
            Symbols { names: &names_after, consts: const_reprs(&code.consts), locals: &locals, derefs: &deref_names };
        self.listed[at].after = Some((plain_listing(&rw.instrs, &symbols), rw.injected));
        Ok(true)
    }
}

/// `rewrite_report` for a pyc written by another interpreter version (its magic number says
/// which): `(new_pyc, sites, listing_before, listing_after)`, rewritten over the marshal layer
/// and that version's opcode table, without running anything.
#[pyfunction]
#[pyo3(signature = (pyc, policy = "shared", resource_methods = Vec::new()))]
fn rewrite_pyc_report<'py>(
    py: Python<'py>,
    pyc: &[u8],
    policy: &str,
    resource_methods: Vec<String>,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyList>, String, String)> {
    let policy = Policy::parse(policy).ok_or_else(|| {
        PyValueError::new_err(format!("unknown frontrun policy {policy:?}; expected resources, shared or all"))
    })?;
    let mut pyc = marshal::read_pyc(pyc).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let v = pyc.version;
    let table = tables::for_version(v.major, v.minor)
        .filter(|t| rewrite::facts::Facts::for_table(t).is_some())
        .ok_or_else(|| UnsupportedVersion::new_err(format!("frontrun cannot rewrite bytecode for Python {v}")))?;
    let mut rewriter = PycRewriter {
        table,
        policy,
        methods: MethodTables::new(&resource_methods),
        sites: Vec::new(),
        listed: Vec::new(),
    };
    let MValue::Code(code) = &mut pyc.code.value else {
        return Err(PyValueError::new_err("the pyc does not hold a code object"));
    };
    rewriter.rewrite(code).map_err(PyValueError::new_err)?;
    let out = marshal::write_pyc(&pyc).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let site_list = PyList::empty(py);
    for (line, kind, name) in rewriter.sites {
        site_list.append((line, kind, name))?;
    }
    let (before, after) = listings(&rewriter.listed);
    Ok((PyBytes::new(py, &out), site_list, before, after))
}

/// The `(major, minor)` versions there are opcode tables for, oldest first.
#[pyfunction]
fn supported_versions() -> Vec<(u8, u8)> {
    let mut versions: Vec<(u8, u8)> = crate::tables::all().iter().map(|t| t.version).collect();
    versions.sort_unstable();
    versions.dedup();
    versions
}

/// Stops the rewriter's helper threads (they start again when needed); registered to run
/// before `os.fork()`. The GIL stays held: on GIL builds no other thread can start a rewrite
/// in between.
#[pyfunction]
fn _stop_rewrite_helpers() {
    super::pipeline::stop_helpers();
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_stop_rewrite_helpers, m)?)?;
    let os = m.py().import("os")?;
    if os.hasattr("register_at_fork")? {
        let kwargs = PyDict::new(m.py());
        kwargs.set_item("before", m.getattr("_stop_rewrite_helpers")?)?;
        os.call_method("register_at_fork", (), Some(&kwargs))?;
    }
    m.add_function(wrap_pyfunction!(_rewrite_check, m)?)?;
    m.add_function(wrap_pyfunction!(supported_versions, m)?)?;
    m.add("REWRITER_VERSION", REWRITER_VERSION)?;
    m.add("UnsupportedVersion", m.py().get_type::<UnsupportedVersion>())?;
    m.add_function(wrap_pyfunction!(rewrite_code, m)?)?;
    m.add_function(wrap_pyfunction!(note_rewritten_file, m)?)?;
    m.add_function(wrap_pyfunction!(is_rewritten_file, m)?)?;
    m.add_function(wrap_pyfunction!(rewrite_report, m)?)?;
    m.add_function(wrap_pyfunction!(rewrite_pyc_report, m)?)?;
    m.add_function(wrap_pyfunction!(rewrite_failures, m)?)?;
    Ok(())
}
