//! Editable `Code` → `co_code`, exception table, line table and stack size.
//!
//! Layout sizes EXTENDED_ARG prefixes by iterating to a fixed point: a jump's argument depends
//! on the offsets, which depend on every earlier prefix count. Counts only grow (from each
//! instruction's `min_prefixes`), so the loop ends; unmodified input is already at its fixed
//! point on the first pass, which is what makes the round trip byte-identical.

use std::fmt;

use crate::exctable::{self, ExcEntry};
use crate::instr::{Code, Instr};
use crate::linetable;
use crate::stackdepth;
use crate::tables::{JumpDir, LocationFormat};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeError {
    /// Index of the offending instruction (or `usize::MAX` for the code as a whole).
    pub index: usize,
    pub what: String,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.index == usize::MAX {
            f.write_str(&self.what)
        } else {
            write!(f, "instruction {}: {}", self.index, self.what)
        }
    }
}

impl std::error::Error for EncodeError {}

pub(crate) fn err<T>(index: usize, what: impl Into<String>) -> Result<T, EncodeError> {
    Err(EncodeError { index, what: what.into() })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub code: Vec<u8>,
    pub exception_table: Vec<u8>,
    pub line_table: Vec<u8>,
    /// Maximum stack depth by flow analysis (`stackdepth::max_depth`).
    pub stacksize: u32,
}

/// Where each instruction landed, in code units.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Start (first EXTENDED_ARG) of each instruction, plus the total length at the end.
    pub starts: Vec<u32>,
    pub prefixes: Vec<u8>,
    /// Final argument of each instruction (jump arguments recomputed).
    pub args: Vec<u32>,
}

fn prefixes_needed(arg: u32) -> u8 {
    match arg {
        0..=0xff => 0,
        0x100..=0xffff => 1,
        0x1_0000..=0xff_ffff => 2,
        _ => 3,
    }
}

/// Check every instruction against the table and resolve jump targets to indices.
fn resolve(code: &Code) -> Result<Resolved, EncodeError> {
    // Label → instruction, the first one a label is attached to (a second is an error below).
    let mut labels = vec![None; code.next_label as usize];
    for (i, instr) in code.instrs.iter().enumerate() {
        if let Some(slot) = instr.label.and_then(|l| labels.get_mut(l.0 as usize)) {
            if slot.is_none() {
                *slot = Some(i);
            }
        }
    }
    let mut jumps = Vec::new();
    let n = code.instrs.len();
    // The first placement, made on the way: prefixes for the arguments as they are (jumps
    // start at their minimum) and the starts they give.
    let mut prefixes: Vec<u8> = Vec::with_capacity(n);
    let mut starts: Vec<u32> = Vec::with_capacity(n + 1);
    let mut at: u64 = 0;
    let (major, minor) = code.table.version;
    for (i, instr) in code.instrs.iter().enumerate() {
        let Some(info) = code.table.op(instr.op) else {
            return err(i, format!("unknown opcode {} for Python {major}.{minor}", instr.op));
        };
        let p = if instr.target.is_some() {
            instr.min_prefixes
        } else {
            instr.min_prefixes.max(prefixes_needed(instr.arg))
        };
        prefixes.push(p);
        starts.push(at as u32);
        at += p as u64 + info.units() as u64;
        if instr.op == code.table.extended_arg {
            return err(i, "explicit EXTENDED_ARG (arguments are folded; the encoder emits prefixes)");
        }
        if let Some(l) = instr.label {
            match labels.get(l.0 as usize) {
                Some(&Some(first)) if first == i => {}
                Some(_) => return err(i, format!("label L{} attached to two instructions", l.0)),
                None => return err(i, format!("label L{} was not made by this code", l.0)),
            }
        }
        match (info.jump, instr.target) {
            (None, None) => {}
            (None, Some(_)) => return err(i, format!("{} cannot jump", info.name)),
            (Some(_), None) => return err(i, format!("{} has no jump target", info.name)),
            (Some(_), Some(l)) => match labels.get(l.0 as usize).copied().flatten() {
                Some(t) => jumps.push((i, t)),
                None => return err(i, format!("{} jumps to L{}, which is attached to no instruction", info.name, l.0)),
            },
        }
    }
    starts.push(0);
    Ok(Resolved { labels, jumps, first: Placed { starts, prefixes }, length: at })
}

struct Resolved {
    /// Label → instruction index.
    labels: Vec<Option<usize>>,
    /// (jump, target) instruction indexes, in instruction order.
    jumps: Vec<(usize, usize)>,
    /// The first placement (`starts` lacks the total) and its length in code units.
    first: Placed,
    length: u64,
}

/// Where each instruction starts and how many prefixes it takes.
#[derive(Default)]
struct Placed {
    /// Start (first EXTENDED_ARG) of each instruction, plus the total length at the end.
    starts: Vec<u32>,
    prefixes: Vec<u8>,
}

impl Placed {
    /// The argument of jump `i` to instruction `t` at this placement.
    fn jump_arg(&self, code: &Code, i: usize, t: usize) -> Result<u32, EncodeError> {
        let info = code.table.op(code.instrs[i].op).expect("resolved");
        let end = self.starts[i + 1] as i64;
        let target = self.starts[t] as i64;
        let dir = info.jump.expect("resolved jump");
        let arg = match dir {
            JumpDir::Forward => target - end,
            JumpDir::Backward => end - target,
            JumpDir::Absolute => target,
        };
        if arg < 0 {
            let way = if dir == JumpDir::Forward { "forward" } else { "backward" };
            return err(
                i,
                format!(
                    "{} is a {way} jump but its target (instruction {t}, unit {target}) lies the other way",
                    info.name
                ),
            );
        }
        Ok(arg as u32)
    }
}

pub fn layout(code: &Code) -> Result<Layout, EncodeError> {
    let mut resolved = resolve(code)?;
    let placed = place(code, &mut resolved)?;
    let mut args: Vec<u32> = code.instrs.iter().map(|i| i.arg).collect();
    for &(i, t) in &resolved.jumps {
        args[i] = placed.jump_arg(code, i, t)?;
    }
    Ok(Layout { starts: placed.starts, prefixes: placed.prefixes, args })
}

/// Grow jump prefixes from the first placement until every jump argument fits.
fn place(code: &Code, resolved: &mut Resolved) -> Result<Placed, EncodeError> {
    let table = code.table;
    let n = code.instrs.len();
    let mut placed = std::mem::take(&mut resolved.first);
    let mut at = resolved.length;
    loop {
        if at > u32::MAX as u64 / 2 {
            return err(usize::MAX, "code too long");
        }
        placed.starts[n] = at as u32;
        let mut grew = false;
        for &(i, t) in &resolved.jumps {
            let need = prefixes_needed(placed.jump_arg(code, i, t)?);
            if need > placed.prefixes[i] {
                placed.prefixes[i] = need;
                grew = true;
            }
        }
        if !grew {
            return Ok(placed);
        }
        at = 0;
        for (i, instr) in code.instrs.iter().enumerate() {
            placed.starts[i] = at as u32;
            at += placed.prefixes[i] as u64 + table.op(instr.op).expect("resolved").units() as u64;
        }
    }
}

/// Encode `code`. The stack size is the flow analysis' result (callers that re-encode an
/// existing code object may keep the larger of it and the original `co_stacksize`).
pub fn encode(code: &Code) -> Result<Encoded, EncodeError> {
    encode_sized(code, None)
}

/// `encode`, with the stack size already known (`Some`) from a flow analysis of the same
/// instructions (the rewriter's stack check), which is then not run again.
pub fn encode_sized(code: &Code, stacksize: Option<u32>) -> Result<Encoded, EncodeError> {
    let mut resolved = resolve(code)?;
    let placed = place(code, &mut resolved)?;
    let table = code.table;
    let ext = table.extended_arg;
    let total = *placed.starts.last().expect("starts has n + 1 entries") as usize;
    // Zeroed up front: inline caches are zeros and need no writing.
    let mut bytes = vec![0u8; total * 2];
    let mut line_table = Vec::with_capacity(total / 2 + 8);
    // How runs are cut differs per version (3.11 never merges across instructions); the
    // codec's writer for this version knows.
    let writer = linetable::TableWriter::for_table(table).unwrap_or(match table.locations {
        LocationFormat::LineTable310 => linetable::TableWriter::Python310,
        LocationFormat::Pep657 => linetable::TableWriter::Python314,
    });
    let mut positions = linetable::PositionWriter::new(writer, code.first_line, &mut line_table);
    let mut jumps = resolved.jumps.iter().peekable();
    for (i, instr) in code.instrs.iter().enumerate() {
        let info = table.op(instr.op).expect("resolved");
        let p = placed.prefixes[i];
        let arg = match jumps.peek() {
            Some(&&(j, t)) if j == i => {
                jumps.next();
                placed.jump_arg(code, i, t)?
            }
            _ => instr.arg,
        };
        let mut at = 2 * placed.starts[i] as usize;
        for k in (1..=p as u32).rev() {
            bytes[at] = ext;
            bytes[at + 1] = (arg.checked_shr(8 * k).unwrap_or(0) & 0xff) as u8;
            at += 2;
        }
        bytes[at] = instr.op;
        bytes[at + 1] = (arg & 0xff) as u8;
        let units = p as usize + info.units();
        match &instr.unit_positions {
            Some(per_unit) if per_unit.len() == units => {
                for (k, position) in per_unit.iter().enumerate() {
                    positions.push(position, 1, k == 0);
                }
            }
            _ => positions.push(&instr.position, units, true),
        }
    }
    positions.finish();
    let exception_table =
        if table.exception_table { exception_table(code, &resolved.labels, &placed)? } else { Vec::new() };
    let stacksize = match stacksize {
        Some(known) => known,
        None => stackdepth::max_depth_with(code, &resolved.labels)?,
    };
    Ok(Encoded { code: bytes, exception_table, line_table, stacksize })
}

/// The exception table from runs of instructions sharing a handler.
fn exception_table(code: &Code, labels: &[Option<usize>], placed: &Placed) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    let mut write = |start: usize, end: usize, h: u32| -> Result<(), EncodeError> {
        let Some(handler) = code.handlers.get(h as usize) else {
            return err(start, format!("exception handler {h} does not exist"));
        };
        let Some(t) = labels.get(handler.target.0 as usize).copied().flatten() else {
            return err(start, format!("exception handler target L{} is attached to no instruction", handler.target.0));
        };
        let entry = ExcEntry {
            start: placed.starts[start],
            end: placed.starts[end],
            target: placed.starts[t],
            depth: handler.depth,
            lasti: handler.lasti,
        };
        exctable::encode_into(&[entry], &mut out);
        Ok(())
    };
    let mut run: Option<(usize, u32)> = None;
    for (i, instr) in code.instrs.iter().enumerate() {
        match (run, instr.handler) {
            (Some((_, h)), Some(now)) if h == now => {}
            _ => {
                if let Some((start, h)) = run {
                    write(start, i, h)?;
                }
                run = instr.handler.map(|h| (i, h));
            }
        }
    }
    if let Some((start, h)) = run {
        write(start, code.instrs.len(), h)?;
    }
    Ok(out)
}

/// Convenience for callers holding one instruction: its encoded size in code units.
pub fn instr_units(code: &Code, instr: &Instr) -> Option<usize> {
    let info = code.table.op(instr.op)?;
    Some(instr.min_prefixes.max(prefixes_needed(instr.arg)) as usize + info.units())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode, RawCode};
    use crate::instr::Handler;
    use crate::tables::{for_version, OpTable};

    fn table(minor: u8) -> &'static OpTable {
        for_version(3, minor).unwrap()
    }

    fn op(t: &OpTable, name: &str) -> u8 {
        t.code(name).unwrap_or_else(|| panic!("{name}"))
    }

    /// `if x: <n NOPs>; return` on 3.12, built through the model.
    fn jump_over_nops(n: usize) -> Code {
        let t = table(12);
        let mut c = Code::new(t, 1);
        let end = c.new_label();
        c.instrs.push(Instr::new(op(t, "RESUME"), 0));
        c.instrs.push(Instr::new(op(t, "LOAD_FAST"), 0));
        c.instrs.push(Instr::jump(op(t, "POP_JUMP_IF_FALSE"), end));
        for _ in 0..n {
            c.instrs.push(Instr::new(op(t, "NOP"), 0));
        }
        let mut ret = Instr::new(op(t, "RETURN_CONST"), 0);
        ret.label = Some(end);
        c.instrs.push(ret);
        c
    }

    fn redecode(c: &Code, out: &Encoded) -> Code {
        decode(
            c.table,
            RawCode {
                code: &out.code,
                exception_table: &out.exception_table,
                line_table: &out.line_table,
                first_line: 1,
            },
        )
        .unwrap()
    }

    #[test]
    fn extended_arg_grows_to_a_fixed_point() {
        let mut c = jump_over_nops(250);
        let out = encode(&c).unwrap();
        assert_eq!(out.code.len(), 2 * 254);
        assert_eq!(out.code[4..6], [op(c.table, "POP_JUMP_IF_FALSE"), 250]);
        // Ten more NOPs push the jump past 255 units: one prefix appears.
        c.insert_before(3, vec![Instr::new(op(c.table, "NOP"), 0); 10], false);
        let out = encode(&c).unwrap();
        assert_eq!(out.code[4..8], [c.table.extended_arg, 1, op(c.table, "POP_JUMP_IF_FALSE"), 4]);
        let back = redecode(&c, &out);
        let ret = back.instrs.len() - 1;
        assert_eq!(back.instrs[2].target, back.instrs[ret].label);
        assert_eq!(back.instrs[2].arg, 260);
        assert_eq!(out.stacksize, 1);
    }

    #[test]
    fn redundant_prefixes_survive() {
        let t = table(12);
        let code = [t.extended_arg, 0, op(t, "LOAD_CONST"), 1, op(t, "RETURN_VALUE"), 0];
        let c = decode(t, RawCode { code: &code, exception_table: &[], line_table: &[], first_line: 1 }).unwrap();
        assert_eq!(c.instrs[0].min_prefixes, 1);
        assert_eq!(encode(&c).unwrap().code, code);
    }

    #[test]
    fn absolute_jumps_on_3_10() {
        let t = table(10);
        let mut c = Code::new(t, 1);
        let top = c.new_label();
        let mut first = Instr::new(op(t, "LOAD_FAST"), 0);
        first.label = Some(top);
        c.instrs.push(first);
        c.instrs.push(Instr::jump(op(t, "POP_JUMP_IF_FALSE"), top));
        c.instrs.push(Instr::new(op(t, "LOAD_CONST"), 0));
        c.instrs.push(Instr::new(op(t, "RETURN_VALUE"), 0));
        c.insert_before(0, vec![Instr::new(op(t, "NOP"), 0)], true);
        let out = encode(&c).unwrap();
        // Retargeted to the inserted NOP at unit 0.
        assert_eq!(out.code[4..6], [op(t, "POP_JUMP_IF_FALSE"), 0]);
        c.instrs[0].label = None;
        c.instrs[1].label = Some(top);
        assert_eq!(encode(&c).unwrap().code[4..6], [op(t, "POP_JUMP_IF_FALSE"), 1]);
    }

    #[test]
    fn insert_before_keeps_or_moves_targets_and_handler_ranges() {
        let t = table(12);
        let nop = op(t, "NOP");
        let mut c = jump_over_nops(3);
        let ret = c.instrs.len() - 1;
        // Cover the NOPs with a handler at RETURN_CONST.
        let handler_label = c.instrs[ret].label.unwrap();
        c.handlers.push(Handler { target: handler_label, depth: 0, lasti: false });
        for i in 3..6 {
            c.instrs[i].handler = Some(0);
        }
        let range = c.insert_before(4, vec![Instr::new(nop, 0), Instr::new(nop, 0)], false);
        assert_eq!(range, 4..6);
        assert_eq!(c.instrs[4].handler, Some(0));
        assert_eq!(c.exception_ranges().len(), 1);
        assert_eq!((c.exception_ranges()[0].start, c.exception_ranges()[0].end), (3, 8));
        // Before the jump target: kept (false) vs moved to the prologue (true).
        let ret = c.instrs.len() - 1;
        c.insert_before(ret, vec![Instr::new(nop, 0)], false);
        assert_eq!(c.instrs[ret + 1].label, Some(handler_label));
        let ret = c.instrs.len() - 1;
        c.insert_before(ret, vec![Instr::new(nop, 0)], true);
        assert_eq!(c.instrs[ret].label, Some(handler_label));
        assert_eq!(c.instrs[ret + 1].label, None);
        // Code inserted at the end of a range is outside it (it takes the next one's handler).
        assert_eq!(c.instrs[ret].handler, None);
        let out = encode(&c).unwrap();
        let back = redecode(&c, &out);
        assert_eq!(back.exception_ranges(), c.exception_ranges());
        assert_eq!(encode(&back).unwrap(), out);
    }

    #[test]
    fn stack_size_counts_inserted_pushes_and_handlers() {
        let t = table(12);
        let mut c = jump_over_nops(2);
        assert_eq!(encode(&c).unwrap().stacksize, 1);
        c.insert_before(
            3,
            vec![
                Instr::new(op(t, "LOAD_CONST"), 0),
                Instr::new(op(t, "LOAD_CONST"), 0),
                Instr::new(op(t, "POP_TOP"), 0),
                Instr::new(op(t, "POP_TOP"), 0),
            ],
            true,
        );
        assert_eq!(encode(&c).unwrap().stacksize, 2);
        // A handler entered with depth 3 + lasti + exception.
        let l = c.label_at(c.instrs.len() - 1);
        c.handlers.push(Handler { target: l, depth: 3, lasti: true });
        c.instrs[3].handler = Some(0);
        assert_eq!(encode(&c).unwrap().stacksize, 5);
    }

    #[test]
    fn encode_errors_are_values() {
        let t = table(12);
        let mut c = jump_over_nops(1);
        let ghost = c.new_label();
        c.instrs[2].target = Some(ghost);
        assert!(encode(&c).unwrap_err().what.contains("attached to no instruction"));
        let mut c = jump_over_nops(1);
        c.instrs[1].op = 255;
        assert!(encode(&c).unwrap_err().what.contains("unknown opcode"));
        // A forward-only jump whose target moved before it.
        let mut c = jump_over_nops(1);
        let ret = c.instrs.len() - 1;
        let l = c.instrs[ret].label.take().unwrap();
        c.instrs[0].label = Some(l);
        assert!(encode(&c).unwrap_err().what.contains("lies the other way"));
        let mut c = jump_over_nops(1);
        c.instrs.pop();
        c.instrs.push(Instr::new(op(t, "NOP"), 0));
        let e = encode(&c).unwrap_err();
        assert!(e.what.contains("attached to no instruction") || e.what.contains("falls off"), "{e}");
    }
}
