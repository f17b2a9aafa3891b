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
//!
//! A block keeps per-site guards when versioning buys nothing (a single report and no stash
//! local to it) or is unsafe: the copy would need its closing JUMP_FORWARD between two
//! instructions that must stay adjacent (YIELD_VALUE → RESUME and the like).

use crate::instr::Code;
use crate::tables::Flow;

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
pub fn plan(code: &Code, ops: &Ops, sel: &Selection, needs_delta: &[bool], versioning: bool) -> Plan {
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
    let mut bs = 0;
    while bs < n {
        let mut be = bs + 1;
        while be < n && !starts_block(be) {
            be += 1;
        }
        if let Some(region) =
            block_region(code, ops, sel, needs_delta, &before, &after, &loads, bs, be, &mut plan.local)
        {
            plan.regions.push(region);
        }
        bs = be;
    }
    plan
}

#[allow(clippy::too_many_arguments)]
fn block_region(
    code: &Code,
    ops: &Ops,
    sel: &Selection,
    needs_delta: &[bool],
    before: &[u32],
    after: &[u32],
    loads: &[Vec<usize>],
    bs: usize,
    be: usize,
    local: &mut [bool],
) -> Option<Region> {
    let last = be - 1;
    let last_info = code.info(&code.instrs[last])?;
    let excluded = code.instrs[last].target.is_some() && last_info.flow != Flow::Goto;
    let end = if excluded { last } else { be };
    let start = (bs..end).find(|&k| before[k] > 0 || after[k] > 0 || !loads[k].is_empty())?;
    if excluded && after[last] > 0 {
        return None;
    }
    let tail = excluded && before[last] > 0;
    let reports: u32 = (start..end).map(|k| before[k] + after[k]).sum::<u32>() + if tail { before[last] } else { 0 };
    let inside = |k: usize| (start..end).contains(&k);
    let locals: Vec<usize> = (start..end)
        .flat_map(|k| loads[k].iter().copied())
        .filter(|&s| {
            let stash = &sel.stashes[s];
            !needs_delta[s]
                && stash.region.iter().all(|&k| inside(k))
                && stash
                    .call_ends
                    .iter()
                    .all(|e| inside(e.call_end) && (!e.pop_after_pop_top || inside(e.call_end + 1)))
        })
        .collect();
    // One report and nothing to leave out: a per-site guard costs the same and copies nothing.
    if reports == 0 || (reports == 1 && locals.is_empty()) {
        return None;
    }
    let r_last = &code.instrs[end - 1];
    let jump = !matches!(code.info(r_last).map(|o| o.flow), Some(Flow::End | Flow::Goto));
    if jump && (end >= code.instrs.len() || !sel.splittable[end] || ops.no_insert_after.contains(&r_last.op)) {
        return None;
    }
    for s in locals {
        local[s] = true;
    }
    Some(Region { start, end, tail, jump })
}
