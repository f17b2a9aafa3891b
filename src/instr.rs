//! The editable instruction model shared by `decode`, `encode`, `stackdepth` and `rewrite`.
//!
//! In the style of the `bytecode` library's abstract layer: a flat `Vec<Instr>` where
//! EXTENDED_ARG prefixes are folded into `arg`, inline caches are implied by the opcode table
//! (never stored), jump targets are symbolic `Label`s attached to the instruction they name,
//! and every instruction carries its own source position and exception handler.
//!
//! Exception handling is stored the way CPython's own assembler stores it (`i_except`):
//! each instruction names the handler that covers it (an index into `Code::handlers`, one per
//! exception-table entry of the input). The table is rebuilt from runs of equal handler ids, so
//! code inserted before an instruction simply inherits that instruction's handler and lands
//! inside its range; `Code::exception_ranges` gives the (start, end, handler) view by label.

use crate::linetable::Position;
use crate::tables::{Flow, OpInfo, OpTable};

/// A jump or handler target. Labels are attached to instructions (`Instr::label`), so they
/// survive insertions without any index fix-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(pub u32);

/// One exception-table entry's handler: where it jumps, the stack depth it unwinds to and
/// whether it pushes the offset of the raising instruction (`lasti`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handler {
    pub target: Label,
    pub depth: u32,
    pub lasti: bool,
}

/// Index into `Code::handlers`.
pub type HandlerId = u32;

#[derive(Clone, Debug, PartialEq)]
pub struct Instr {
    pub op: u8,
    /// The full argument, EXTENDED_ARG prefixes folded in. For jumps it is recomputed from
    /// `target` by the encoder; for ops without an argument it is the (ignored) byte as read.
    pub arg: u32,
    /// Where a jump goes (`Some` exactly for ops whose table entry has a jump direction).
    pub target: Option<Label>,
    /// The label naming this instruction, if something jumps here.
    pub label: Option<Label>,
    /// Source position of the opcode unit (EXTENDED_ARG prefixes and caches share it).
    pub position: Position,
    /// The exception handler covering this instruction (3.11+ tables only).
    pub handler: Option<HandlerId>,
    /// EXTENDED_ARG prefixes to emit at least: the input's count, so a redundant
    /// `EXTENDED_ARG 0` survives a round trip. New instructions use 0.
    pub min_prefixes: u8,
    /// Per-unit positions (prefixes, opcode, caches) when the input gave the units of this
    /// instruction different positions; used only while the layout is unchanged. (A thin
    /// pointer: rare, and every pass over the instructions pays for their size.)
    #[allow(clippy::box_collection)]
    pub unit_positions: Option<Box<Vec<Position>>>,
}

impl Instr {
    pub fn new(op: u8, arg: u32) -> Instr {
        Instr {
            op,
            arg,
            target: None,
            label: None,
            position: Position::default(),
            handler: None,
            min_prefixes: 0,
            unit_positions: None,
        }
    }

    pub fn jump(op: u8, target: Label) -> Instr {
        Instr { target: Some(target), ..Instr::new(op, 0) }
    }

    pub fn at(mut self, position: Position) -> Instr {
        self.position = position;
        self
    }
}

/// One code object's instructions plus what re-encoding needs besides them.
#[derive(Clone, Debug)]
pub struct Code {
    pub table: &'static OpTable,
    pub first_line: i32,
    pub instrs: Vec<Instr>,
    pub handlers: Vec<Handler>,
    pub(crate) next_label: u32,
}

/// An exception-table region in instruction indices: `instrs[start..end]` are covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExceptionRange {
    pub start: usize,
    pub end: usize,
    pub handler: HandlerId,
}

impl Code {
    pub fn new(table: &'static OpTable, first_line: i32) -> Code {
        Code { table, first_line, instrs: Vec::new(), handlers: Vec::new(), next_label: 0 }
    }

    pub fn new_label(&mut self) -> Label {
        let label = Label(self.next_label);
        self.next_label += 1;
        label
    }

    /// Labels are numbered below this bound.
    pub fn label_bound(&self) -> u32 {
        self.next_label
    }

    pub fn info(&self, instr: &Instr) -> Option<&'static OpInfo> {
        self.table.op(instr.op)
    }

    /// The index of the instruction each label names (`None` for labels attached nowhere).
    pub fn label_targets(&self) -> Vec<Option<usize>> {
        let mut out = vec![None; self.next_label as usize];
        for (i, instr) in self.instrs.iter().enumerate() {
            if let Some(Label(l)) = instr.label {
                if let Some(slot) = out.get_mut(l as usize) {
                    *slot = Some(i);
                }
            }
        }
        out
    }

    /// The instruction at `idx`'s label, attaching a new one if it has none.
    pub fn label_at(&mut self, idx: usize) -> Label {
        if let Some(l) = self.instrs[idx].label {
            return l;
        }
        let l = self.new_label();
        self.instrs[idx].label = Some(l);
        l
    }

    /// Exception-table regions as runs of instructions sharing a handler.
    pub fn exception_ranges(&self) -> Vec<ExceptionRange> {
        let mut out: Vec<ExceptionRange> = Vec::new();
        for (i, instr) in self.instrs.iter().enumerate() {
            let Some(h) = instr.handler else { continue };
            match out.last_mut() {
                Some(r) if r.end == i && r.handler == h => r.end = i + 1,
                _ => out.push(ExceptionRange { start: i, end: i + 1, handler: h }),
            }
        }
        out
    }

    /// Insert `new` before instruction `idx` (or append when `idx == len`); returns the
    /// index range the new instructions occupy.
    ///
    /// * The inserted instructions keep the positions they were given (normally the position
    ///   of the instruction they serve, so tracebacks and line events see no phantom lines).
    /// * They are placed inside the exception range of `instrs[idx]` (they get its handler),
    ///   so a raise in the prologue is handled as one in the instruction it precedes.
    /// * `retarget_jumps`: if true, jumps and exception handlers that went to `instrs[idx]`
    ///   now go to the first inserted instruction (the prologue runs on every path into the
    ///   instruction); if false they keep going to `instrs[idx]`, skipping the prologue.
    pub fn insert_before(&mut self, idx: usize, mut new: Vec<Instr>, retarget_jumps: bool) -> std::ops::Range<usize> {
        assert!(idx <= self.instrs.len(), "insert_before: index {idx} past the end");
        let count = new.len();
        if count == 0 {
            return idx..idx;
        }
        let handler = self.instrs.get(idx).and_then(|i| i.handler);
        for instr in &mut new {
            instr.handler = handler;
        }
        if retarget_jumps && idx < self.instrs.len() {
            if let Some(old) = self.instrs[idx].label.take() {
                match new[0].label {
                    None => new[0].label = Some(old),
                    // The prologue already has a label: send everything aimed at `old` there.
                    Some(first) => self.rename_label(old, first),
                }
            }
        }
        self.instrs.splice(idx..idx, new);
        idx..idx + count
    }

    fn rename_label(&mut self, from: Label, to: Label) {
        for instr in &mut self.instrs {
            if instr.target == Some(from) {
                instr.target = Some(to);
            }
        }
        for h in &mut self.handlers {
            if h.target == from {
                h.target = to;
            }
        }
    }

    /// Whether control can fall from `instrs[idx]` into the next instruction.
    pub fn falls_through(&self, idx: usize) -> bool {
        !matches!(self.info(&self.instrs[idx]).map(|i| i.flow), Some(Flow::End) | Some(Flow::Goto))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn instr_stays_small() {
        // Every pass of the rewriter walks these; growing them slows all of it.
        assert!(std::mem::size_of::<super::Instr>() <= 72, "{}", std::mem::size_of::<super::Instr>());
    }
}
