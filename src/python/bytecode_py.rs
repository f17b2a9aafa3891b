//! `frontrun.bytecode`: disassemble / reassemble / instructions over the Rust codec.
//!
//! abi3: code objects are read with `getattr` and rebuilt with `code.replace(...)`; nothing
//! here touches CPython's code-object internals.

use std::collections::HashMap;
use std::fmt::Write as _;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::decode::{self, RawCode};
use crate::encode;
use crate::instr::{Code, Instr};
use crate::stackdepth;
use crate::tables::{self, ArgKind, DerefIndex, OpTable};

/// The opcode table of the running interpreter, or a ValueError naming its version.
pub(crate) fn running_table(py: Python<'_>) -> PyResult<&'static OpTable> {
    // One interpreter per process: look the version up once.
    static TABLE: std::sync::OnceLock<Result<&'static OpTable, String>> = std::sync::OnceLock::new();
    let found = TABLE.get_or_init(|| {
        let v = py.version_info();
        tables::for_version(v.major, v.minor).ok_or_else(|| {
            format!(
                "frontrun has no opcode table for Python {}.{} (supported: {})",
                v.major,
                v.minor,
                tables::all().iter().map(|t| format!("{}.{}", t.version.0, t.version.1)).collect::<Vec<_>>().join(", ")
            )
        })
    });
    found.clone().map_err(PyValueError::new_err)
}

/// The bytes of one code object, owned by Python objects kept alive alongside.
struct PyRaw<'py> {
    code: Bound<'py, PyBytes>,
    exception_table: Option<Bound<'py, PyBytes>>,
    line_table: Bound<'py, PyBytes>,
    first_line: i32,
    stacksize: u32,
}

impl<'py> PyRaw<'py> {
    fn read(table: &OpTable, code: &Bound<'py, PyAny>) -> PyResult<PyRaw<'py>> {
        let bytes = |name: &str| -> PyResult<Bound<'py, PyBytes>> {
            code.getattr(name)?
                .cast_into::<PyBytes>()
                .map_err(|_| PyValueError::new_err(format!("{name} is not bytes")))
        };
        Ok(PyRaw {
            code: bytes("co_code")?,
            exception_table: if table.exception_table { Some(bytes("co_exceptiontable")?) } else { None },
            line_table: bytes("co_linetable")?,
            first_line: code.getattr("co_firstlineno")?.extract()?,
            stacksize: code.getattr("co_stacksize")?.extract()?,
        })
    }

    fn raw(&self) -> RawCode<'_> {
        RawCode {
            code: self.code.as_bytes(),
            exception_table: self.exception_table.as_ref().map_or(&[], |b| b.as_bytes()),
            line_table: self.line_table.as_bytes(),
            first_line: self.first_line,
        }
    }
}

fn value_error(e: impl std::fmt::Display, code: &Bound<'_, PyAny>) -> PyErr {
    let name =
        code.getattr("co_qualname").or_else(|_| code.getattr("co_name")).map(|n| n.to_string()).unwrap_or_default();
    PyValueError::new_err(format!("{name}: {e}"))
}

fn decode_code(table: &'static OpTable, code: &Bound<'_, PyAny>) -> PyResult<(Code, u32)> {
    let raw = PyRaw::read(table, code)?;
    let decoded = decode::decode(table, raw.raw()).map_err(|e| value_error(e, code))?;
    Ok((decoded, raw.stacksize))
}

/// A change applied to each decoded code object; may return replacement `co_consts`.
type Edit<'a, 'py> = dyn Fn(&mut Code, &Bound<'py, PyTuple>) -> PyResult<Option<Bound<'py, PyTuple>>> + 'a;

struct Rebuild<'py> {
    table: &'static OpTable,
    code_type: Bound<'py, PyAny>,
}

impl<'py> Rebuild<'py> {
    fn new(code: &Bound<'py, PyAny>) -> PyResult<Self> {
        Ok(Rebuild { table: running_table(code.py())?, code_type: code.get_type().into_any() })
    }

    fn is_code(&self, obj: &Bound<'py, PyAny>) -> PyResult<bool> {
        Ok(obj.get_type().is(&self.code_type))
    }

    /// Re-encode `code` (after `edit`), recursing into code constants when `recursive`.
    /// The new `co_stacksize` is the larger of the analysis and the original: never below what
    /// CPython computed, never below what the (possibly edited) code needs.
    fn rebuild(&self, code: &Bound<'py, PyAny>, recursive: bool, edit: &Edit<'_, 'py>) -> PyResult<Bound<'py, PyAny>> {
        let py = code.py();
        let raw = PyRaw::read(self.table, code)?;
        let mut decoded = decode::decode(self.table, raw.raw()).map_err(|e| value_error(e, code))?;
        let old_consts = code.getattr("co_consts")?.cast_into::<PyTuple>()?;
        let mut consts = old_consts.clone();
        if let Some(new_consts) = edit(&mut decoded, &consts)? {
            consts = new_consts;
        }
        let out = encode::encode(&decoded).map_err(|e| value_error(e, code))?;
        let kwargs = PyDict::new(py);
        if recursive {
            let mut items = Vec::with_capacity(consts.len());
            let mut changed = false;
            for c in consts.iter() {
                if self.is_code(&c)? {
                    items.push(self.rebuild(&c, true, edit)?);
                    changed = true;
                } else {
                    items.push(c);
                }
            }
            if changed {
                consts = PyTuple::new(py, items)?;
            }
        }
        // Only what changed is passed on; unchanged bytes keep their original objects.
        if !consts.is(&old_consts) {
            kwargs.set_item("co_consts", consts)?;
        }
        let bytes = |new: &[u8], old: &Bound<'py, PyBytes>| {
            if new == old.as_bytes() {
                old.clone()
            } else {
                PyBytes::new(py, new)
            }
        };
        kwargs.set_item("co_code", bytes(&out.code, &raw.code))?;
        kwargs.set_item("co_linetable", bytes(&out.line_table, &raw.line_table))?;
        if let Some(old) = &raw.exception_table {
            kwargs.set_item("co_exceptiontable", bytes(&out.exception_table, old))?;
        }
        let stacksize = out.stacksize.max(raw.stacksize);
        if stacksize != raw.stacksize {
            kwargs.set_item("co_stacksize", stacksize)?;
        }
        code.call_method("replace", (), Some(&kwargs))
    }
}

/// Decode and re-encode with no change (recursively for code constants by default).
#[pyfunction]
#[pyo3(signature = (code, recursive = true))]
fn bytecode_reassemble<'py>(code: &Bound<'py, PyAny>, recursive: bool) -> PyResult<Bound<'py, PyAny>> {
    Rebuild::new(code)?.rebuild(code, recursive, &|_, _| Ok(None))
}

/// `co_stacksize` as the flow analysis computes it (no floor from the original).
/// `reachable_only`: leave out unreachable handlers, which CPython's own count includes.
#[pyfunction]
#[pyo3(signature = (code, reachable_only = false))]
fn bytecode_stacksize(code: &Bound<'_, PyAny>, reachable_only: bool) -> PyResult<u32> {
    let table = running_table(code.py())?;
    let (decoded, _) = decode_code(table, code)?;
    let depth =
        if reachable_only { stackdepth::max_reachable_depth(&decoded) } else { stackdepth::max_depth(&decoded) };
    depth.map_err(|e| value_error(e, code))
}

/// Names a code object's arguments resolve against.
struct Names<'py> {
    consts: Bound<'py, PyTuple>,
    names: Bound<'py, PyTuple>,
    code: Bound<'py, PyAny>,
    cell_and_free: Vec<Bound<'py, PyAny>>,
    cmp_op: Bound<'py, PyAny>,
    deref: DerefIndex,
}

impl<'py> Names<'py> {
    fn new(table: &OpTable, code: &Bound<'py, PyAny>) -> PyResult<Self> {
        let py = code.py();
        let mut cell_and_free = Vec::new();
        for attr in ["co_cellvars", "co_freevars"] {
            cell_and_free.extend(code.getattr(attr)?.cast_into::<PyTuple>()?.iter());
        }
        Ok(Names {
            consts: code.getattr("co_consts")?.cast_into()?,
            names: code.getattr("co_names")?.cast_into()?,
            code: code.clone(),
            cell_and_free,
            cmp_op: py.import("dis")?.getattr("cmp_op")?,
            deref: table.deref,
        })
    }

    fn local(&self, index: u32) -> Option<Bound<'py, PyAny>> {
        match self.deref {
            // 3.11+: one "locals plus" index space, which only the code object can map.
            DerefIndex::LocalsPlus => self.code.call_method1("_varname_from_oparg", (index,)).ok(),
            DerefIndex::CellsThenFrees => self.code.getattr("co_varnames").ok()?.get_item(index).ok(),
        }
    }

    fn free(&self, index: u32) -> Option<Bound<'py, PyAny>> {
        match self.deref {
            DerefIndex::LocalsPlus => self.code.call_method1("_varname_from_oparg", (index,)).ok(),
            DerefIndex::CellsThenFrees => self.cell_and_free.get(index as usize).cloned(),
        }
    }

    /// The Python value the argument stands for (`dis`'s argval), if it names something.
    fn argval(&self, kind: ArgKind, arg: u32) -> Option<Bound<'py, PyAny>> {
        let py = self.code.py();
        match kind {
            ArgKind::Const => self.consts.get_item(arg as usize).ok(),
            ArgKind::Name { shift } => self.names.get_item((arg >> shift) as usize).ok(),
            ArgKind::Local => self.local(arg),
            ArgKind::LocalPair => {
                let (a, b) = (self.local(arg >> 4)?, self.local(arg & 15)?);
                PyTuple::new(py, [a, b]).ok().map(|t| t.into_any())
            }
            ArgKind::Free => self.free(arg),
            ArgKind::Compare { shift } => self.cmp_op.get_item(arg >> shift).ok(),
            ArgKind::None | ArgKind::Other | ArgKind::Jump => None,
        }
    }
}

/// Byte offset of each instruction's opcode unit, and of its first unit (jump targets).
struct Offsets {
    first: Vec<u32>,
    op: Vec<u32>,
    args: Vec<u32>,
}

fn offsets(code: &Code, origin: &Bound<'_, PyAny>) -> PyResult<Offsets> {
    let lay = encode::layout(code).map_err(|e| value_error(e, origin))?;
    let n = code.instrs.len();
    let first: Vec<u32> = lay.starts.iter().map(|u| 2 * u).collect();
    let op = (0..n).map(|i| 2 * (lay.starts[i] + lay.prefixes[i] as u32)).collect();
    Ok(Offsets { first, op, args: lay.args })
}

/// (offset, opname, arg, argval, jump_target_offset, line) per instruction, offsets in bytes
/// of the opcode unit (as `dis` reports them); EXTENDED_ARG is folded into `arg`.
#[pyfunction]
fn bytecode_instructions<'py>(code: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    let py = code.py();
    let table = running_table(py)?;
    let (decoded, _) = decode_code(table, code)?;
    let names = Names::new(table, code)?;
    let off = offsets(&decoded, code)?;
    let labels = decoded.label_targets();
    let out = PyList::empty(py);
    for (i, instr) in decoded.instrs.iter().enumerate() {
        let info = table.op(instr.op).expect("decoded");
        let arg = off.args[i];
        let target = instr.target.and_then(|l| labels[l.0 as usize]).map(|t| off.first[t]);
        let argval: Bound<'py, PyAny> = match (target, names.argval(info.arg, arg)) {
            (Some(t), _) => t.into_pyobject(py)?.into_any(),
            (None, Some(v)) => v,
            (None, None) if info.has_arg() => arg.into_pyobject(py)?.into_any(),
            (None, None) => py.None().into_bound(py),
        };
        let arg_obj: Bound<'py, PyAny> =
            if info.has_arg() { arg.into_pyobject(py)?.into_any() } else { py.None().into_bound(py) };
        let item = PyTuple::new(
            py,
            [
                off.op[i].into_pyobject(py)?.into_any(),
                info.name.into_pyobject(py)?.into_any(),
                arg_obj,
                argval,
                target.into_pyobject(py)?.into_any(),
                instr.position.line.into_pyobject(py)?.into_any(),
            ],
        )?;
        out.append(item)?;
    }
    Ok(out)
}

fn show_instr(names: &Names<'_>, code: &Code, instr: &Instr, arg: u32, target: Option<String>) -> String {
    let info = code.table.op(instr.op).expect("decoded");
    if let Some(t) = target {
        return format!("{arg:>5} (to {t})");
    }
    if !info.has_arg() {
        return String::new();
    }
    let shown = names.argval(info.arg, arg).map(|v| match info.arg {
        // Code constants by name and line: their repr holds an address.
        ArgKind::Const if v.hasattr("co_code").unwrap_or(false) => format!(
            "<code {} line {}>",
            v.getattr("co_name").map(|n| n.to_string()).unwrap_or_default(),
            v.getattr("co_firstlineno").map(|n| n.to_string()).unwrap_or_default()
        ),
        ArgKind::Const => v.repr().map(|r| r.to_string()).unwrap_or_default(),
        _ => v.str().map(|s| s.to_string()).unwrap_or_default(),
    });
    let flags = match info.arg {
        ArgKind::Name { shift } | ArgKind::Compare { shift } if arg & ((1 << shift) - 1) != 0 => {
            format!(" [low bits {:#b}]", arg & ((1 << shift) - 1))
        }
        _ => String::new(),
    };
    match shown {
        Some(s) => format!("{arg:>5} ({s}){flags}"),
        None => format!("{arg:>5}"),
    }
}

/// A readable, dis-like listing: offset, line (when it changes), label, opname, argument
/// (resolved), then the exception-table regions by label.
#[pyfunction]
fn bytecode_disassemble(code: &Bound<'_, PyAny>) -> PyResult<String> {
    let table = running_table(code.py())?;
    let (decoded, _) = decode_code(table, code)?;
    let names = Names::new(table, code)?;
    let off = offsets(&decoded, code)?;
    let n = decoded.instrs.len();
    let labels = decoded.label_targets();
    let ranges = decoded.exception_ranges();
    // Display labels L1, L2, ... in offset order for every jump target, handler and range edge.
    let mut marked = vec![false; n + 1];
    for instr in &decoded.instrs {
        if let Some(t) = instr.target.and_then(|l| labels[l.0 as usize]) {
            marked[t] = true;
        }
    }
    for r in &ranges {
        marked[r.start] = true;
        marked[r.end] = true;
        if let Some(t) = labels[decoded.handlers[r.handler as usize].target.0 as usize] {
            marked[t] = true;
        }
    }
    let mut shown_label: HashMap<usize, String> = HashMap::new();
    for (i, m) in marked.iter().enumerate() {
        if *m {
            let name = if i == n { "END".to_string() } else { format!("L{}", shown_label.len() + 1) };
            shown_label.insert(i, name);
        }
    }
    let label_name = |i: usize| shown_label.get(&i).cloned().unwrap_or_else(|| format!("#{i}"));
    let mut s = String::new();
    let mut last_line: Option<Option<i32>> = None;
    for (i, instr) in decoded.instrs.iter().enumerate() {
        let info = table.op(instr.op).expect("decoded");
        let line = if last_line != Some(instr.position.line) {
            last_line = Some(instr.position.line);
            instr.position.line.map_or("--".to_string(), |l| l.to_string())
        } else {
            String::new()
        };
        let label = shown_label.get(&i).map(|l| format!("{l}:")).unwrap_or_default();
        let target = instr
            .target
            .and_then(|l| labels[l.0 as usize])
            .map(|t| format!("{}, offset {}", label_name(t), off.first[t]));
        let arg = show_instr(&names, &decoded, instr, off.args[i], target);
        let line_out = format!("{line:>5} {label:>5} {:>6} {:<28}{arg}", off.op[i], info.name);
        writeln!(s, "{}", line_out.trim_end()).unwrap();
    }
    if !ranges.is_empty() {
        s.push_str("ExceptionTable:\n");
        for r in &ranges {
            let h = decoded.handlers[r.handler as usize];
            let target = labels[h.target.0 as usize].map(label_name).unwrap_or_else(|| "?".into());
            writeln!(
                s,
                "  {} to {} -> {} [depth {}]{}",
                label_name(r.start),
                label_name(r.end),
                target,
                h.depth,
                if h.lasti { " lasti" } else { "" }
            )
            .unwrap();
        }
    }
    Ok(s)
}

/// Opcodes the rewriter may instrument: attribute, subscript, global and cell accesses, calls.
const INSTRUMENTED: &[&str] = &[
    "LOAD_ATTR",
    "STORE_ATTR",
    "DELETE_ATTR",
    "LOAD_METHOD",
    "LOAD_SUPER_ATTR",
    "LOAD_GLOBAL",
    "STORE_GLOBAL",
    "DELETE_GLOBAL",
    "LOAD_NAME",
    "STORE_NAME",
    "DELETE_NAME",
    "LOAD_DEREF",
    "STORE_DEREF",
    "DELETE_DEREF",
    "LOAD_CLASSDEREF",
    "LOAD_FROM_DICT_OR_DEREF",
    "BINARY_SUBSCR",
    "STORE_SUBSCR",
    "DELETE_SUBSCR",
    "BINARY_SLICE",
    "STORE_SLICE",
    "BINARY_OP",
    "CALL",
    "PRECALL",
    "CALL_KW",
    "CALL_FUNCTION",
    "CALL_FUNCTION_KW",
    "CALL_FUNCTION_EX",
    "CALL_METHOD",
];

/// Ops after which nothing may be inserted: a fixed-offset skip or a pairing follows them.
/// PRECALL (3.11) specialisations skip the next CALL by a fixed amount; KW_NAMES pairs with
/// the next call; YIELD_VALUE must be followed by its RESUME; SEND/END_SEND loops.
const NO_INSERT_AFTER: &[&str] = &["PRECALL", "KW_NAMES", "YIELD_VALUE", "SEND", "CLEANUP_THROW"];

/// Where a prologue may go before `instrs[i]` (the pitfalls in bytecode-facts.md).
fn insertable(code: &Code, i: usize, after_preamble: usize, for_iter_targets: &[bool]) -> bool {
    let t = code.table;
    let name = |j: usize| t.op(code.instrs[j].op).map_or("", |o| o.name);
    if i < after_preamble || for_iter_targets[i] || (i > 0 && for_iter_targets[i - 1]) {
        return false;
    }
    // Between a conditional jump and its NOT_TAKEN (3.14+).
    if name(i) == "NOT_TAKEN" {
        return false;
    }
    i == 0 || !NO_INSERT_AFTER.contains(&name(i - 1))
}

/// Test support: insert `LOAD_CONST None; POP_TOP` (a push, so stack sizes matter) before
/// every instruction the rewriter may instrument, recursively, with the served instruction's
/// position and `retarget_jumps = true`.
#[pyfunction]
fn _insert_nops_everywhere<'py>(code: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = code.py();
    let rebuild = Rebuild::new(code)?;
    let table = rebuild.table;
    let load_const = table.code("LOAD_CONST").expect("every table has LOAD_CONST");
    let pop_top = table.code("POP_TOP").expect("every table has POP_TOP");
    let targets: Vec<u8> = INSTRUMENTED.iter().filter_map(|n| table.code(n)).collect();
    let resume = table.code("RESUME");
    let for_iter = table.code("FOR_ITER");
    rebuild.rebuild(code, true, &|c: &mut Code, consts: &Bound<'py, PyTuple>| {
        let none_index = consts.iter().position(|c| c.is_none());
        let (none_index, new_consts) = match none_index {
            Some(k) => (k, None),
            None => {
                let mut items: Vec<Bound<'py, PyAny>> = consts.iter().collect();
                items.push(py.None().into_bound(py));
                (items.len() - 1, Some(PyTuple::new(py, items)?))
            }
        };
        let preamble = match resume {
            Some(r) => c.instrs.iter().position(|i| i.op == r).map_or(0, |p| p + 1),
            None => 0,
        };
        let labels = c.label_targets();
        let mut for_iter_targets = vec![false; c.instrs.len()];
        for instr in &c.instrs {
            if Some(instr.op) == for_iter {
                if let Some(t) = instr.target.and_then(|l| labels[l.0 as usize]) {
                    for_iter_targets[t] = true;
                }
            }
        }
        let sites: Vec<usize> = (0..c.instrs.len())
            .filter(|&i| targets.contains(&c.instrs[i].op) && insertable(c, i, preamble, &for_iter_targets))
            .collect();
        for &i in sites.iter().rev() {
            let at = c.instrs[i].position;
            c.insert_before(
                i,
                vec![Instr::new(load_const, none_index as u32).at(at), Instr::new(pop_top, 0).at(at)],
                true,
            );
        }
        Ok(new_consts)
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(bytecode_reassemble, m)?)?;
    m.add_function(wrap_pyfunction!(bytecode_disassemble, m)?)?;
    m.add_function(wrap_pyfunction!(bytecode_instructions, m)?)?;
    m.add_function(wrap_pyfunction!(bytecode_stacksize, m)?)?;
    m.add_function(wrap_pyfunction!(_insert_nops_everywhere, m)?)?;
    Ok(())
}
