//! Region versioning: where one guard serves a whole straight-line run of report sites.
//!
//! A block is a run of original instructions entered only at its top: it starts at the code's
//! start, at a labelled instruction, after any instruction with a jump target or that does not
//! fall through, and (where code may be placed) where the exception handler changes, so a
//! `with`/`try` body that turns reporting on (`with recording():`) reads the guard afresh.
//!
//! In a block with report sites the region `R` runs from the first site's injection point to
//! the block's end, leaving out a final instruction with a jump target (conditional jump,
//! FOR_ITER, SEND, 3.10 SETUP_*) but keeping a final unconditional jump, return or raise. Its
//! before-reports (3.10 SETUP_WITH's `with_enter`) run at the tail of the instrumented copy.
//! `mod.rs` emits `guard; COPY (instrumented); [JUMP_FORWARD END]; ORIG (untouched); END`.
//! When the copy needs that JUMP_FORWARD anyway, `R` stops right after its last site (and
//! local stash end): the jump lands in the original's rest instead of after a copy of it.
//! On 3.12 the new jump target END must not follow an instruction that may have run a Python
//! callee inline (`Facts::line_event_after_inlined_call`), nor on 3.12+ a yield's RESUME
//! (`Facts::line_event_after_resume`): `R` stops later, or ORIG ends in a NOP at its last
//! instruction's position.
//!
//! A block keeps per-site guards when versioning buys nothing (a single report and no stash
//! local to it) or is unsafe: the copy would need its closing JUMP_FORWARD between two
//! instructions that must stay adjacent (YIELD_VALUE → RESUME and the like).

use crate::instr::Code;
use crate::tables::Flow;

use super::facts::Facts;
use super::ops::Ops;
use super::sites::Selection;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Original instructions `start..end` are emitted twice.
    pub start: usize,
    pub end: usize,
    /// The before-reports of instruction `end` (a block-ending jump) run at COPY's tail.
    pub tail: bool,
    /// COPY ends with `JUMP_FORWARD` to instruction `end` (R does not end with a return,
    /// raise or unconditional jump).
    pub jump: bool,
    /// ORIG ends with a NOP so that its last instruction is not right before the new jump
    /// target (`Facts::line_event_after_inlined_call`).
    pub pad: bool,
}

#[derive(Debug, Default)]
pub struct Plan {
    /// In instruction order, disjoint.
    pub regions: Vec<Region>,
    /// Per stash: it lives entirely inside one region, so it appears only in that region's
    /// instrumented copy.
    pub local: Vec<bool>,
}

/// `needs_delta[s]`: stash `s` raises some handler's depth (so a handler block sees it and it
/// cannot be local). `versioning`: false keeps per-site guards everywhere.
pub fn plan(code: &Code, ops: &Ops, facts: Facts, sel: &Selection, needs_delta: &[bool], versioning: bool) -> Plan {
    let n = code.instrs.len();
    let mut plan = Plan { regions: Vec::new(), local: vec![false; sel.stashes.len()] };
    if !versioning || n == 0 {
        return plan;
    }
    let mut before = vec![0u32; n];
    let mut after = vec![0u32; n];
    for r in &sel.reports {
        if r.after {
            after[r.at] += 1;
        } else {
            before[r.at] += 1;
        }
    }
    let mut loads: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (k, s) in sel.stashes.iter().enumerate() {
        loads[s.load].push(k);
    }
    let flow = |i: usize| code.info(&code.instrs[i]).map(|o| o.flow);
    let ends_block = |i: usize| {
        code.instrs[i].target.is_some()
            || matches!(flow(i), Some(Flow::End | Flow::Goto | Flow::Branch | Flow::Setup) | None)
    };
    let starts_block = |i: usize| {
        i == 0
            || ends_block(i - 1)
            || code.instrs[i].label.is_some()
            || (code.instrs[i].handler != code.instrs[i - 1].handler && sel.splittable[i])
    };
    let block = Block { code, ops, facts, sel, needs_delta, before: &before, after: &after, loads: &loads };
    let mut bs = 0;
    while bs < n {
        let mut be = bs + 1;
        while be < n && !starts_block(be) {
            be += 1;
        }
        if let Some(region) = block.region(bs, be, &mut plan.local) {
            plan.regions.push(region);
        }
        bs = be;
    }
    plan
}

/// What deciding one block's region needs.
struct Block<'a> {
    code: &'a Code,
    ops: &'a Ops,
    facts: Facts,
    sel: &'a Selection,
    needs_delta: &'a [bool],
    /// Reports before / after each instruction, stashes loaded at each.
    before: &'a [u32],
    after: &'a [u32],
    loads: &'a [Vec<usize>],
}

impl Block<'_> {
    /// Whether a new jump target right after instruction `k` could fire a second LINE event.
    fn line_quirk_after(&self, k: usize) -> bool {
        let op = Some(self.code.instrs[k].op);
        (self.facts.line_event_after_inlined_call
            && (op == self.ops.call || op == self.ops.load_attr || op == self.ops.binary_subscr))
            || (self.facts.line_event_after_resume && op == self.ops.resume)
    }

    /// Whether instruction `k` begins a line, as CPython's line-start scan sees it: the last
    /// instruction before it that has a line has another one.
    fn starts_line(&self, k: usize) -> bool {
        let instrs = &self.code.instrs;
        instrs[..k].iter().rev().find_map(|x| x.position.line) != instrs[k].position.line
    }

    /// The earliest place in `bs..=start` where the region may begin and still be on the line
    /// of `start`: a region then copies its whole first line, so ORIG restarts the line where
    /// the original starts it.
    fn line_start(&self, bs: usize, start: usize) -> usize {
        let instrs = &self.code.instrs;
        let Some(line) = instrs[start].position.line else { return start };
        let mut best = start;
        for k in (bs..start).rev() {
            match instrs[k].position.line {
                None => {}
                Some(l) if l == line && self.sel.insertable[k] => best = k,
                Some(l) if l == line => {}
                Some(_) => break,
            }
        }
        best
    }

    /// The region of block `bs..be`, if it is versioned; marks the stashes local to it.
    fn region(&self, bs: usize, be: usize, local: &mut [bool]) -> Option<Region> {
        let Block { code, ops, sel, before, after, loads, .. } = *self;
        let last = be - 1;
        let last_info = code.info(&code.instrs[last])?;
        let excluded = code.instrs[last].target.is_some() && last_info.flow != Flow::Goto;
        let mut end = if excluded { last } else { be };
        let start = (bs..end).find(|&k| before[k] > 0 || after[k] > 0 || !loads[k].is_empty())?;
        let start = self.line_start(bs, start);
        if excluded && after[last] > 0 {
            return None;
        }
        let tail = excluded && before[last] > 0;
        let reports = (start..end).map(|k| before[k] + after[k]).sum::<u32>() + if tail { before[last] } else { 0 };
        let inside = |k: usize| (start..end).contains(&k);
        let locals: Vec<usize> = (start..end)
            .flat_map(|k| loads[k].iter().copied())
            .filter(|&s| {
                let stash = &sel.stashes[s];
                !self.needs_delta[s]
                    && stash.region.iter().all(|&k| inside(k))
                    && stash.call_ends.iter().all(|e| inside(e.call_end + e.pop_after_pop_top as usize))
            })
            .collect();
        // One report and nothing to leave out: a per-site guard costs the same and copies nothing.
        if reports == 0 || (reports == 1 && locals.is_empty()) {
            return None;
        }
        let jump = !matches!(code.info(&code.instrs[end - 1]).map(|o| o.flow), Some(Flow::End | Flow::Goto));
        if jump && !tail {
            // The copy jumps back into the original anyway: it may as well do so right after
            // its last site, leaving the site-free rest of the block uncopied.
            let mut last_site = (start..end).rev().find(|&k| before[k] > 0 || after[k] > 0).unwrap_or(start);
            for &s in &locals {
                for e in &sel.stashes[s].call_ends {
                    last_site = last_site.max(e.call_end + e.pop_after_pop_top as usize);
                }
            }
            let mut cut = last_site + 1;
            while cut < end && (!sel.splittable[cut] || self.line_quirk_after(cut - 1)) {
                cut += 1;
            }
            end = cut;
        }
        let r_last = &code.instrs[end - 1];
        if jump && (end >= code.instrs.len() || !sel.splittable[end] || ops.no_insert_after.contains(&r_last.op)) {
            return None;
        }
        // ORIG's first instruction begins its line again when the copy ends on another line.
        // Debugger jumps (`frame.f_lineno = n`) take the deepest-stacked start of line `n`, so
        // that must be where the line really begins, with the original's stack.
        let first_line = code.instrs[start].position.line;
        let copy_last_line = (start..end + tail as usize).rev().find_map(|k| code.instrs[k].position.line);
        if first_line.is_some() && copy_last_line != first_line && !self.starts_line(start) {
            return None;
        }
        for s in locals {
            local[s] = true;
        }
        // A target that was already there behaves as in the original.
        let pad = jump && self.line_quirk_after(end - 1) && code.instrs[end].label.is_none();
        Some(Region { start, end, tail, jump, pad })
    }
}
