//! Editable `Code` → `co_code`, exception table, line table and stack size.
//!
//! Layout sizes EXTENDED_ARG prefixes by iterating to a fixed point: a jump's argument depends
//! on the offsets, which depend on every earlier prefix count. Counts only grow (from each
//! instruction's `min_prefixes`), so the loop ends; unmodified input is already at its fixed
//! point on the first pass, which is what makes the round trip byte-identical.

use std::fmt;

use crate::exctable::{self, ExcEntry};
use crate::instr::{Code, Instr};
use crate::linetable::{self, Position};
use crate::stackdepth;
use crate::tables::{JumpDir, OpInfo};

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

/// Versions whose location table starts a new entry at every instruction (3.11's assembler
/// emits one entry per instruction). Later versions merge consecutive instructions with equal
/// positions, and 3.10's line table merges equal lines. The line-table encoder breaks entries
/// wherever `starts` is set and merges equal positions elsewhere, so `starts` marks every
/// instruction only here (and always the first unit).
const LOCATION_ENTRY_PER_INSTRUCTION: &[(u8, u8)] = &[(3, 11)];

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
fn resolve(code: &Code) -> Result<(Vec<&'static OpInfo>, Vec<Option<usize>>), EncodeError> {
    let labels = code.label_targets();
    let mut seen = vec![false; labels.len()];
    let mut infos = Vec::with_capacity(code.instrs.len());
    let mut targets = Vec::with_capacity(code.instrs.len());
    let (major, minor) = code.table.version;
    for (i, instr) in code.instrs.iter().enumerate() {
        let Some(info) = code.table.op(instr.op) else {
            return err(i, format!("unknown opcode {} for Python {major}.{minor}", instr.op));
        };
        if instr.op == code.table.extended_arg {
            return err(i, "explicit EXTENDED_ARG (arguments are folded; the encoder emits prefixes)");
        }
        if let Some(l) = instr.label {
            match seen.get_mut(l.0 as usize) {
                Some(s) if !*s => *s = true,
                Some(_) => return err(i, format!("label L{} attached to two instructions", l.0)),
                None => return err(i, format!("label L{} was not made by this code", l.0)),
            }
        }
        let target = match (info.jump, instr.target) {
            (None, None) => None,
            (None, Some(_)) => return err(i, format!("{} cannot jump", info.name)),
            (Some(_), None) => return err(i, format!("{} has no jump target", info.name)),
            (Some(_), Some(l)) => match labels.get(l.0 as usize).copied().flatten() {
                Some(t) => Some(t),
                None => return err(i, format!("{} jumps to L{}, which is attached to no instruction", info.name, l.0)),
            },
        };
        infos.push(info);
        targets.push(target);
    }
    Ok((infos, targets))
}

pub fn layout(code: &Code) -> Result<Layout, EncodeError> {
    let (infos, targets) = resolve(code)?;
    let n = code.instrs.len();
    let mut prefixes: Vec<u8> =
        code.instrs
            .iter()
            .zip(&infos)
            .map(|(instr, info)| {
                if info.jump.is_some() {
                    instr.min_prefixes
                } else {
                    instr.min_prefixes.max(prefixes_needed(instr.arg))
                }
            })
            .collect();
    let mut args: Vec<u32> = code.instrs.iter().map(|i| i.arg).collect();
    let mut starts = vec![0u32; n + 1];
    loop {
        let mut at: u64 = 0;
        for i in 0..n {
            starts[i] = at as u32;
            at += prefixes[i] as u64 + infos[i].units() as u64;
        }
        if at > u32::MAX as u64 / 2 {
            return err(usize::MAX, "code too long");
        }
        starts[n] = at as u32;
        let mut grew = false;
        for i in 0..n {
            let (Some(dir), Some(t)) = (infos[i].jump, targets[i]) else {
                continue;
            };
            let end = (starts[i] + prefixes[i] as u32 + infos[i].units() as u32) as i64;
            let target = starts[t] as i64;
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
                        infos[i].name
                    ),
                );
            }
            args[i] = arg as u32;
            let need = prefixes_needed(args[i]);
            if need > prefixes[i] {
                prefixes[i] = need;
                grew = true;
            }
        }
        if !grew {
            return Ok(Layout { starts, prefixes, args });
        }
    }
}

/// Encode `code`. The stack size is the flow analysis' result (callers that re-encode an
/// existing code object may keep the larger of it and the original `co_stacksize`).
pub fn encode(code: &Code) -> Result<Encoded, EncodeError> {
    let lay = layout(code)?;
    let n = code.instrs.len();
    let total = lay.starts[n] as usize;
    let ext = code.table.extended_arg;
    let mut bytes = Vec::with_capacity(total * 2);
    let mut positions: Vec<Position> = Vec::with_capacity(total);
    let mut starts: Vec<bool> = Vec::with_capacity(total);
    for (i, instr) in code.instrs.iter().enumerate() {
        let info = code.table.op(instr.op).expect("checked by layout");
        let p = lay.prefixes[i];
        let arg = lay.args[i];
        for k in (1..=p as u32).rev() {
            bytes.push(ext);
            bytes.push((arg.checked_shr(8 * k).unwrap_or(0) & 0xff) as u8);
        }
        bytes.push(instr.op);
        bytes.push((arg & 0xff) as u8);
        bytes.resize(bytes.len() + 2 * info.caches as usize, 0);
        let units = p as usize + info.units();
        match &instr.unit_positions {
            Some(per_unit) if per_unit.len() == units => positions.extend_from_slice(per_unit),
            _ => positions.extend(std::iter::repeat(instr.position).take(units)),
        }
        starts.push(i == 0 || LOCATION_ENTRY_PER_INSTRUCTION.contains(&code.table.version));
        starts.extend(std::iter::repeat(false).take(units - 1));
    }
    let line_table = linetable::encode_positions(code.table.locations, code.first_line, &positions, &starts);
    let exception_table =
        if code.table.exception_table { exctable::encode(&exception_entries(code, &lay)?) } else { Vec::new() };
    let stacksize = stackdepth::max_depth(code)?;
    Ok(Encoded { code: bytes, exception_table, line_table, stacksize })
}

fn exception_entries(code: &Code, lay: &Layout) -> Result<Vec<ExcEntry>, EncodeError> {
    let labels = code.label_targets();
    let mut out = Vec::new();
    for r in code.exception_ranges() {
        let Some(h) = code.handlers.get(r.handler as usize) else {
            return err(r.start, format!("exception handler {} does not exist", r.handler));
        };
        let Some(t) = labels.get(h.target.0 as usize).copied().flatten() else {
            return err(r.start, format!("exception handler target L{} is attached to no instruction", h.target.0));
        };
        out.push(ExcEntry {
            start: lay.starts[r.start],
            end: lay.starts[r.end],
            target: lay.starts[t],
            depth: h.depth,
            lasti: h.lasti,
        });
    }
    Ok(out)
}

/// Convenience for callers holding one instruction: its encoded size in code units.
pub fn instr_units(code: &Code, instr: &Instr) -> Option<usize> {
    let info = code.table.op(instr.op)?;
    Some(instr.min_prefixes.max(prefixes_needed(instr.arg)) as usize + info.units())
}
