//! The injected instruction sequences, per calling convention.
//!
//! A report (positions = the served instruction's), behind its guard:
//!
//! ```text
//!   LOAD_GLOBAL __frontrun_on__            ; a bool in builtins
//!   POP_JUMP_IF_FALSE skip                 ; 3.10 absolute, 3.11 POP_JUMP_FORWARD_IF_FALSE
//!   [NOT_TAKEN]                            ; 3.14+, as the compiler emits
//!   <push __frontrun_report__>             ; 3.10 LOAD_GLOBAL f; 3.11+ LOAD_GLOBAL (f<<1)|1
//!   <fetch each value>                     ; COPY k (3.10: DUP_TOP / ROT_N), LOAD_CLOSURE/LOAD_FAST
//!   LOAD_CONST (kind, line, name)
//!   <call n+1>                             ; CALL_FUNCTION / PRECALL+CALL / CALL
//!   POP_TOP                                ; `iter`: SWAP 2; POP_TOP (the result replaces
//! skip:                                    ;   the iterable: the runtime may step each loop)
//! ```
//!
//! In a versioned region (`super::regions`) one guard (`guard`, skipping to the region's
//! untouched copy) serves every report of the instrumented copy, which has only the `call`
//! part of each; a block that is not versioned keeps the guard per report.

use crate::instr::{Instr, Label};
use crate::linetable::Position;
use crate::tables::{ArgKind, OpTable};

use super::facts::{Convention, Facts};
use super::ops::Ops;
use super::sites::Fetch;

pub struct Injector<'a> {
    pub table: &'static OpTable,
    pub ops: &'a Ops,
    pub facts: Facts,
    /// co_names indexes of `__frontrun_on__` and `__frontrun_report__`.
    pub on_name: u32,
    pub report_name: u32,
}

impl Injector<'_> {
    fn op(&self, name: &str) -> u8 {
        self.table.code(name).unwrap_or_else(|| panic!("{name} missing from the {:?} table", self.table.version))
    }

    /// The op that pushes a cell by deref index (opcodes from `ops`: no name lookups per site).
    fn cell_push(&self) -> u8 {
        match self.facts.cell_push {
            "LOAD_CLOSURE" => self.ops.load_closure.expect("LOAD_CLOSURE"),
            "LOAD_FAST" => self.ops.load_fast,
            other => self.op(other),
        }
    }

    fn load_global(&self, name_index: u32, push_null: bool) -> Instr {
        let op = self.ops.load_global.expect("LOAD_GLOBAL");
        let shift = match self.table.op(op).map(|i| i.arg) {
            Some(ArgKind::Name { shift }) => shift,
            _ => 0,
        };
        Instr::new(op, name_index << shift | (push_null && shift >= 1) as u32)
    }

    /// `LOAD_GLOBAL __frontrun_on__; POP_JUMP_IF_FALSE skip [; NOT_TAKEN]`, appended to `out`.
    pub fn guard(&self, skip: Label, at: Position, out: &mut Vec<Instr>) {
        out.push(self.load_global(self.on_name, false).at(at));
        out.push(Instr::jump(self.ops.jump_if_false, skip).at(at));
        if let Some(nt) = self.ops.not_taken {
            out.push(Instr::new(nt, 0).at(at));
        }
    }

    /// An out-of-line guard (`Facts::guards_out_of_line`): `LOAD_GLOBAL __frontrun_on__;
    /// POP_JUMP_IF_TRUE reports`, appended to `out`; reporting off, it falls through.
    pub fn guard_out_of_line(&self, reports: Label, at: Position, out: &mut Vec<Instr>) {
        out.push(self.load_global(self.on_name, false).at(at));
        out.push(Instr::jump(self.ops.jump_if_true.expect("POP_JUMP_IF_TRUE"), reports).at(at));
    }

    /// What out-of-line reports begin with: `LOAD_GLOBAL __frontrun_on__; POP_JUMP_IF_FALSE
    /// next`, never taken (the guard was just true). coverage.py's branch walk stops at a
    /// conditional jump, so the guard's own BRANCH event names no line.
    pub fn out_of_line_start(&self, next: Label, at: Position, out: &mut Vec<Instr>) {
        out.push(self.load_global(self.on_name, false).at(at));
        out.push(Instr::jump(self.ops.jump_if_false, next).at(at));
    }

    /// Back from out-of-line reports to `to`.
    pub fn jump_back(&self, to: Label, at: Position) -> Instr {
        Instr::jump(self.ops.jump_back.expect("JUMP_BACKWARD_NO_INTERRUPT"), to).at(at)
    }

    /// Push a copy of the value `depth` slots from the top (1 = top).
    fn fetch_depth(&self, depth: u32, out: &mut Vec<Instr>) {
        if let Some(copy) = self.ops.copy {
            out.push(Instr::new(copy, depth));
            return;
        }
        // 3.10: no COPY n. Rotate the value up, duplicate it, rotate the copy back under.
        let dup = self.ops.dup_top.expect("DUP_TOP");
        if depth == 1 {
            out.push(Instr::new(dup, 0));
            return;
        }
        let rot_n = self.ops.rot_n.expect("ROT_N");
        for _ in 0..depth - 1 {
            out.push(Instr::new(rot_n, depth));
        }
        out.push(Instr::new(dup, 0));
        out.push(Instr::new(rot_n, depth + 1));
    }

    /// The report call itself, without the guard, appended to `out` (no intermediate vectors:
    /// this runs once per site of every rewritten module). `replace_top`: the call's result
    /// takes the place of the top value (which the report fetched) instead of being dropped.
    pub fn call(&self, fetch: &[Fetch], site_const: u32, replace_top: bool, at: Position, out: &mut Vec<Instr>) {
        let first = out.len();
        let pushed = match self.facts.convention {
            Convention::CallFunction => 1,
            Convention::PrecallCall | Convention::Call => 2,
        };
        out.push(self.load_global(self.report_name, pushed == 2));
        for (k, f) in fetch.iter().enumerate() {
            match *f {
                Fetch::Depth(d) => self.fetch_depth(d + pushed + k as u32, out),
                Fetch::Cell(index) => out.push(Instr::new(self.cell_push(), index)),
            }
        }
        out.push(Instr::new(self.ops.load_const, site_const));
        let argc = fetch.len() as u32 + 1;
        match self.facts.convention {
            Convention::CallFunction => out.push(Instr::new(self.ops.call_function.expect("CALL_FUNCTION"), argc)),
            Convention::PrecallCall => {
                out.push(Instr::new(self.ops.precall.expect("PRECALL"), argc));
                out.push(Instr::new(self.ops.call.expect("CALL"), argc));
            }
            Convention::Call => out.push(Instr::new(self.ops.call.expect("CALL"), argc)),
        }
        if replace_top {
            out.push(self.swap_two());
        }
        out.push(Instr::new(self.ops.pop_top, 0));
        for instr in &mut out[first..] {
            instr.position = at;
        }
    }

    /// Keep a copy of the receiver: `COPY 1` (3.10 `DUP_TOP`), moved below the `under`
    /// values above it (`LOAD_SUPER_ATTR`'s `[super, class, self]`: `SWAP 4; SWAP 3; SWAP 2`
    /// makes `[copy, super, class, self]`).
    pub fn stash(&self, under: u32, at: Position, out: &mut Vec<Instr>) {
        match self.ops.copy {
            Some(copy) => out.push(Instr::new(copy, 1).at(at)),
            None => out.push(Instr::new(self.ops.dup_top.expect("DUP_TOP"), 0).at(at)),
        }
        if under > 0 {
            let swap = self.ops.swap.expect("SWAP (only 3.12+ loads take values above the receiver)");
            out.extend((2..=under + 2).rev().map(|n| Instr::new(swap, n).at(at)));
        }
    }

    /// `[stash, result]` → `[result]`: `SWAP 2; POP_TOP` (3.10 `ROT_TWO; POP_TOP`).
    pub fn unstash(&self, at: Position) -> Vec<Instr> {
        vec![self.swap_two().at(at), Instr::new(self.ops.pop_top, 0).at(at)]
    }

    fn swap_two(&self) -> Instr {
        match self.ops.swap {
            Some(swap) => Instr::new(swap, 2),
            None => Instr::new(self.ops.rot_two.expect("ROT_TWO"), 0),
        }
    }

    pub fn pop_top(&self, at: Position) -> Instr {
        Instr::new(self.ops.pop_top, 0).at(at)
    }
}
