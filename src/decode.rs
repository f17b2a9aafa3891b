//! `co_code` (+ exception table + line table) → editable `Code`.
//!
//! Every malformed input is a `DecodeError` naming the byte offset and the problem; nothing
//! here panics on bad bytes (see the proptest in `tests/decode_fuzz.rs`).

use std::fmt;

use crate::exctable;
use crate::instr::{Code, Handler, Instr, Label};
use crate::linetable::{self, Position};
use crate::tables::{JumpDir, OpTable};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset into `co_code` (or into the table named in `what`).
    pub offset: usize,
    pub what: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "offset {}: {}", self.offset, self.what)
    }
}

impl std::error::Error for DecodeError {}

fn err<T>(offset: usize, what: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError { offset, what: what.into() })
}

/// The raw bytes of one code object.
#[derive(Clone, Copy, Debug)]
pub struct RawCode<'a> {
    pub code: &'a [u8],
    /// `co_exceptiontable` (empty on 3.10).
    pub exception_table: &'a [u8],
    /// `co_linetable`.
    pub line_table: &'a [u8],
    pub first_line: i32,
}

/// One instruction as laid out in the input, before labels exist.
struct Raw {
    /// Code unit of the first EXTENDED_ARG (or of the opcode).
    start: usize,
    op_unit: usize,
    /// One past the last cache unit.
    end: usize,
    op: u8,
    arg: u32,
    jump_unit: Option<usize>,
}

pub fn decode(table: &'static OpTable, raw: RawCode<'_>) -> Result<Code, DecodeError> {
    let bytes = raw.code;
    if bytes.len() % 2 != 0 {
        return err(bytes.len() - 1, "truncated co_code: odd length, last code unit is cut");
    }
    let units = bytes.len() / 2;
    let mut raws: Vec<Raw> = Vec::with_capacity(units);
    // Which instruction starts at each code unit (u32::MAX: none).
    let mut start_of = vec![u32::MAX; units + 1];
    let mut u = 0;
    while u < units {
        let start = u;
        let mut arg: u32 = 0;
        while bytes[2 * u] == table.extended_arg {
            if u - start == 3 {
                return err(2 * u, "more than three EXTENDED_ARG prefixes (argument exceeds 32 bits)");
            }
            arg = arg << 8 | bytes[2 * u + 1] as u32;
            u += 1;
            if u == units {
                return err(2 * start, "truncated co_code: EXTENDED_ARG at the end");
            }
        }
        let op = bytes[2 * u];
        let Some(info) = table.op(op) else {
            return err(2 * u, format!("unknown opcode {op} for Python {}.{}", table.version.0, table.version.1));
        };
        arg = arg << 8 | bytes[2 * u + 1] as u32;
        let end = u + 1 + info.caches as usize;
        if end > units {
            return err(2 * u, format!("truncated co_code: {} needs {} cache units", info.name, info.caches));
        }
        let jump_unit = match info.jump {
            None => None,
            Some(dir) => {
                let target = match dir {
                    JumpDir::Forward => end.checked_add(arg as usize),
                    JumpDir::Backward => end.checked_sub(arg as usize),
                    JumpDir::Absolute => Some(arg as usize),
                };
                match target {
                    Some(t) if t < units => Some(t),
                    _ => return err(2 * u, format!("{} {arg} jumps out of the code ({units} units)", info.name)),
                }
            }
        };
        start_of[start] = raws.len() as u32;
        raws.push(Raw { start, op_unit: u, end, op, arg, jump_unit });
        u = end;
    }
    start_of[units] = raws.len() as u32;

    // Label every instruction something jumps to, numbered by offset for readable listings.
    let entries = if table.exception_table {
        exctable::decode(raw.exception_table)
            .map_err(|e| DecodeError { offset: 0, what: format!("exception table: {e:?}") })?
    } else {
        Vec::new()
    };
    let index_at = |unit: usize, what: &str| -> Result<usize, DecodeError> {
        match start_of.get(unit) {
            Some(&i) if i != u32::MAX => Ok(i as usize),
            _ => err(2 * unit, format!("{what} is not on an instruction boundary")),
        }
    };
    let mut is_target = vec![false; raws.len()];
    for r in &raws {
        if let Some(t) = r.jump_unit {
            let name = table.op(r.op).map_or("?", |i| i.name);
            is_target[index_at(t, &format!("target of {name} at {}", 2 * r.op_unit))?] = true;
        }
    }
    let mut ranges = Vec::with_capacity(entries.len());
    let mut prev_end = 0usize;
    for (n, e) in entries.iter().enumerate() {
        let what = |part: &str| {
            format!(
                "exception entry {n} {part} (code unit {})",
                match part {
                    "start" => e.start,
                    "end" => e.end,
                    _ => e.target,
                }
            )
        };
        let (start, end, target) = (e.start as usize, e.end as usize, e.target as usize);
        if start >= end || end > units {
            return err(
                2 * start,
                format!("exception entry {n} covers an empty or out-of-range region [{start}, {end}) of {units} units"),
            );
        }
        let si = index_at(start, &what("start"))?;
        let ei = index_at(end, &what("end"))?;
        if target >= units {
            return err(2 * target, format!("exception entry {n} handler is outside the code"));
        }
        let ti = index_at(target, &what("target"))?;
        if si < prev_end {
            return err(2 * start, format!("exception entry {n} overlaps or precedes the previous entry"));
        }
        prev_end = ei;
        is_target[ti] = true;
        ranges.push((si, ei, ti));
    }

    let mut code = Code::new(table, raw.first_line);
    let mut label_of = vec![None; raws.len()];
    for (i, t) in is_target.iter().enumerate() {
        if *t {
            label_of[i] = Some(code.new_label());
        }
    }

    let positions = linetable::decode_positions(table.locations, raw.line_table, raw.first_line, units)
        .map_err(|e| DecodeError { offset: 0, what: format!("line table: {e:?}") })?;
    let pos = |unit: usize| positions.get(unit).copied().unwrap_or_default();

    code.instrs.reserve(raws.len());
    for (i, r) in raws.iter().enumerate() {
        let position = pos(r.op_unit);
        let uniform = (r.start..r.end).all(|u| pos(u) == position);
        code.instrs.push(Instr {
            op: r.op,
            arg: r.arg,
            target: r.jump_unit.map(|t| label_of[start_of[t] as usize].expect("jump targets are labelled")),
            label: label_of[i],
            position,
            handler: None,
            min_prefixes: (r.op_unit - r.start) as u8,
            unit_positions: if uniform {
                None
            } else {
                Some((r.start..r.end).map(pos).collect::<Vec<Position>>().into())
            },
        });
    }
    for (n, (si, ei, ti)) in ranges.into_iter().enumerate() {
        let e = &entries[n];
        code.handlers.push(Handler { target: label_of[ti].unwrap_or(Label(u32::MAX)), depth: e.depth, lasti: e.lasti });
        for instr in &mut code.instrs[si..ei] {
            instr.handler = Some(n as u32);
        }
    }
    Ok(code)
}
