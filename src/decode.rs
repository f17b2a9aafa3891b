//! `co_code` (+ exception table + line table) → editable `Code`.
//!
//! Every malformed input is a `DecodeError` naming the byte offset and the problem; nothing
//! here panics on bad bytes (see the proptest below).

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

pub fn decode(table: &'static OpTable, raw: RawCode<'_>) -> Result<Code, DecodeError> {
    let bytes = raw.code;
    if bytes.len() % 2 != 0 {
        return err(bytes.len() - 1, "truncated co_code: odd length, last code unit is cut");
    }
    let units = bytes.len() / 2;
    let mut code = Code::new(table, raw.first_line);
    // Instructions are built in place; until labels exist, `target` holds the jump's code unit
    // and `label` marks (with any value) an instruction something jumps to.
    let instrs = &mut code.instrs;
    // Counted first so the vector is allocated once at its size (caches make the ratio of
    // instructions to code units differ by version and by code).
    let mut count = 0;
    let mut u = 0;
    while u < units {
        let op = bytes[2 * u];
        u += if op == table.extended_arg { 1 } else { table.op(op).map_or(1, |info| info.units()) };
        count += (op != table.extended_arg) as usize;
    }
    instrs.reserve_exact(count);
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
        let target = match info.jump {
            None => None,
            Some(dir) => {
                let target = match dir {
                    JumpDir::Forward => end.checked_add(arg as usize),
                    JumpDir::Backward => end.checked_sub(arg as usize),
                    JumpDir::Absolute => Some(arg as usize),
                };
                match target {
                    Some(t) if t < units => Some(Label(t as u32)),
                    _ => return err(2 * u, format!("{} {arg} jumps out of the code ({units} units)", info.name)),
                }
            }
        };
        start_of[start] = instrs.len() as u32;
        instrs.push(Instr {
            op,
            arg,
            target,
            label: None,
            position: Position::default(),
            handler: None,
            min_prefixes: (u - start) as u8,
            unit_positions: None,
        });
        u = end;
    }
    start_of[units] = instrs.len() as u32;

    let entries = if table.exception_table {
        exctable::decode(raw.exception_table)
            .map_err(|e| DecodeError { offset: 0, what: format!("exception table: {e}") })?
    } else {
        Vec::new()
    };
    // `what` builds the error message only when there is an error.
    let index_at = |unit: usize, what: &dyn Fn() -> String| -> Result<usize, DecodeError> {
        match start_of.get(unit) {
            Some(&i) if i != u32::MAX => Ok(i as usize),
            _ => err(2 * unit, format!("{} is not on an instruction boundary", what())),
        }
    };
    const MARK: Option<Label> = Some(Label(u32::MAX));
    for i in 0..instrs.len() {
        if let Some(Label(t)) = instrs[i].target {
            let what = || {
                let r = &instrs[i];
                let op_unit = start_unit(&start_of, i) + r.min_prefixes as usize;
                format!("target of {} at {}", table.op(r.op).map_or("?", |info| info.name), 2 * op_unit)
            };
            let t = index_at(t as usize, &what)?;
            instrs[t].label = MARK;
        }
    }
    let mut ranges = Vec::with_capacity(entries.len());
    let mut prev_end = 0usize;
    for (n, e) in entries.iter().enumerate() {
        let what = |part: &'static str, unit: u32| move || format!("exception entry {n} {part} (code unit {unit})");
        let (start, end, target) = (e.start as usize, e.end as usize, e.target as usize);
        if start >= end || end > units {
            return err(
                2 * start,
                format!("exception entry {n} covers an empty or out-of-range region [{start}, {end}) of {units} units"),
            );
        }
        let si = index_at(start, &what("start", e.start))?;
        let ei = index_at(end, &what("end", e.end))?;
        if target >= units {
            return err(2 * target, format!("exception entry {n} handler is outside the code"));
        }
        let ti = index_at(target, &what("target", e.target))?;
        if si < prev_end {
            return err(2 * start, format!("exception entry {n} overlaps or precedes the previous entry"));
        }
        prev_end = ei;
        instrs[ti].label = MARK;
        ranges.push((si, ei, ti));
    }

    // Labels numbered by offset, for readable listings; then jumps from units to labels.
    let mut next_label = 0;
    for instr in instrs.iter_mut() {
        if instr.label.is_some() {
            instr.label = Some(Label(next_label));
            next_label += 1;
        }
    }
    for i in 0..instrs.len() {
        if let Some(Label(t)) = instrs[i].target {
            instrs[i].target = instrs[start_of[t as usize] as usize].label;
        }
    }

    // Positions, one stretch per instruction (prefixes and caches share the opcode's unless
    // the input gave them their own).
    let mut reader = linetable::PositionReader::new(table.locations, raw.line_table, raw.first_line, units);
    let line_error = |e: linetable::TableError| DecodeError { offset: 0, what: format!("line table: {e}") };
    let mut at = 0usize;
    for instr in instrs.iter_mut() {
        let len = instr.min_prefixes as usize + table.op(instr.op).map_or(1, |info| info.units());
        let (position, run) = reader.peek().map_err(line_error)?;
        if run >= len {
            reader.skip(len);
            instr.position = position;
        } else {
            let mut per_unit = Vec::with_capacity(len);
            while per_unit.len() < len {
                let (position, run) = reader.peek().map_err(line_error)?;
                let take = run.min(len - per_unit.len());
                per_unit.resize(per_unit.len() + take, position);
                reader.skip(take);
            }
            instr.position = per_unit[instr.min_prefixes as usize];
            if per_unit.iter().any(|p| *p != instr.position) {
                instr.unit_positions = Some(Box::new(per_unit));
            }
        }
        at += len;
    }
    debug_assert_eq!(at, units);
    reader.finish().map_err(line_error)?;

    code.next_label = next_label;
    for (n, (si, ei, ti)) in ranges.into_iter().enumerate() {
        let e = &entries[n];
        let target = code.instrs[ti].label.unwrap_or(Label(u32::MAX));
        code.handlers.push(Handler { target, depth: e.depth, lasti: e.lasti });
        for instr in &mut code.instrs[si..ei] {
            instr.handler = Some(n as u32);
        }
    }
    Ok(code)
}

/// The first code unit of instruction `i` (error messages only: a scan of `start_of`).
fn start_unit(start_of: &[u32], i: usize) -> usize {
    start_of.iter().position(|&s| s == i as u32).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::for_version;
    use proptest::prelude::*;

    fn t312() -> &'static OpTable {
        for_version(3, 12).unwrap()
    }

    fn op(name: &str) -> u8 {
        t312().code(name).unwrap()
    }

    fn raw(code: &[u8]) -> RawCode<'_> {
        RawCode { code, exception_table: &[], line_table: &[], first_line: 1 }
    }

    fn decode_err(table: &'static OpTable, r: RawCode<'_>) -> DecodeError {
        decode(table, r).expect_err("should not decode")
    }

    #[test]
    fn folds_extended_arg_and_labels_targets() {
        let ext = t312().extended_arg;
        let mut code = vec![ext, 1, op("JUMP_FORWARD"), 2];
        code.extend([op("NOP"), 0].repeat(258));
        code.extend([op("RETURN_CONST"), 0]);
        let c = decode(t312(), raw(&code)).unwrap();
        assert_eq!(c.instrs[0].arg, 0x102);
        assert_eq!(c.instrs[0].min_prefixes, 1);
        // The target is unit 2 + 0x102 = 260: NOP number 258 counted from 0 → instruction 259.
        let target = c.instrs[0].target.unwrap();
        assert_eq!(c.instrs[259].label, Some(target));
    }

    #[test]
    fn errors_name_offset_and_problem() {
        let t = t312();
        let e = decode_err(t, raw(&[op("NOP"), 0, op("NOP")]));
        assert!(e.what.contains("odd length"), "{e}");
        let e = decode_err(t, raw(&[op("NOP"), 0, t.extended_arg, 1]));
        assert_eq!(e.offset, 2);
        assert!(e.what.contains("EXTENDED_ARG at the end"), "{e}");
        let unknown = (1..=255u8).find(|c| t.op(*c).is_none()).unwrap();
        let e = decode_err(t, raw(&[op("NOP"), 0, unknown, 0]));
        assert_eq!((e.offset, e.what.contains("unknown opcode")), (2, true), "{e}");
        // BINARY_SUBSCR has one cache unit.
        let e = decode_err(t, raw(&[op("BINARY_SUBSCR"), 0]));
        assert!(e.what.contains("cache"), "{e}");
        let e = decode_err(t, raw(&[op("JUMP_FORWARD"), 9, op("NOP"), 0]));
        assert!(e.what.contains("jumps out of the code"), "{e}");
        let e = decode_err(t, raw(&[op("JUMP_BACKWARD"), 5, op("NOP"), 0]));
        assert!(e.what.contains("jumps out of the code"), "{e}");
        // Jump into the middle of an instruction (its cache unit).
        let e = decode_err(t, raw(&[op("JUMP_FORWARD"), 1, op("BINARY_SUBSCR"), 0, 0, 0, op("NOP"), 0]));
        assert!(e.what.contains("not on an instruction boundary"), "{e}");
        let ext = t.extended_arg;
        let e = decode_err(t, raw(&[ext, 0, ext, 0, ext, 0, ext, 0, op("NOP"), 0]));
        assert!(e.what.contains("more than three"), "{e}");
    }

    #[test]
    fn exception_entries_must_sit_on_boundaries() {
        let t = t312();
        let code = [op("NOP"), 0, op("BINARY_SUBSCR"), 0, 0, 0, op("RETURN_VALUE"), 0];
        let entry = |start, end, target| {
            crate::exctable::encode(&[crate::exctable::ExcEntry { start, end, target, depth: 0, lasti: false }])
        };
        let ok = entry(0, 3, 3);
        let c = decode(t, RawCode { exception_table: &ok, ..raw(&code) }).unwrap();
        assert_eq!(c.exception_ranges().len(), 1);
        assert_eq!(c.handlers[0].target, c.instrs[2].label.unwrap());
        for (bad, what) in [(entry(0, 2, 3), "end"), (entry(2, 3, 3), "start"), (entry(0, 3, 2), "target")] {
            let e = decode_err(t, RawCode { exception_table: &bad, ..raw(&code) });
            assert!(e.what.contains(what) && e.what.contains("boundary"), "{e}");
        }
        let e = decode_err(t, RawCode { exception_table: &entry(0, 9, 0), ..raw(&code) });
        assert!(e.what.contains("out-of-range"), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(
            code in proptest::collection::vec(any::<u8>(), 0..200),
            exc in proptest::collection::vec(any::<u8>(), 0..40),
            lines in proptest::collection::vec(any::<u8>(), 0..60),
            first_line in -5i32..100000,
            which in 0usize..16,
        ) {
            let tables = crate::tables::all();
            let table = &tables[which % tables.len()];
            let r = RawCode { code: &code, exception_table: &exc, line_table: &lines, first_line };
            if let Ok(decoded) = decode(table, r) {
                // Whatever decodes also encodes (or fails cleanly), and its stack analysis ends.
                let _ = crate::encode::encode(&decoded);
            }
        }

        #[test]
        fn any_instruction_and_argument_encodes_or_errs(
            ops in proptest::collection::vec((0usize..256, any::<u32>()), 1..40),
            which in 0usize..16,
        ) {
            let tables = crate::tables::all();
            let table = &tables[which % tables.len()];
            let mut code = Code::new(table, 1);
            let l = code.new_label();
            for (k, (opcode, arg)) in ops.into_iter().enumerate() {
                let mut instr = Instr::new(opcode as u8, arg);
                if table.op(opcode as u8).is_some_and(|o| o.jump.is_some()) {
                    instr.target = Some(l);
                }
                if k == 0 {
                    instr.label = Some(l);
                }
                code.instrs.push(instr);
            }
            let _ = crate::encode::encode(&code);
        }

        #[test]
        fn mostly_valid_opcodes_never_panic(
            ops in proptest::collection::vec((0usize..64, any::<u8>()), 0..120),
            exc in proptest::collection::vec(any::<u8>(), 0..24),
            which in 0usize..16,
        ) {
            // Pick real opcodes so that decoding goes deeper than the first unknown byte.
            let tables = crate::tables::all();
            let table = &tables[which % tables.len()];
            let known: Vec<u8> = table.ops.iter().flatten().map(|o| o.code).collect();
            let mut code = Vec::new();
            for (k, arg) in ops {
                code.push(known[k % known.len()]);
                code.push(arg);
            }
            if let Ok(decoded) = decode(table, RawCode { code: &code, exception_table: &exc, line_table: &[], first_line: 1 }) {
                let _ = crate::encode::encode(&decoded);
            }
        }
    }
}
