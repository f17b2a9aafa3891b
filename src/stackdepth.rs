//! `co_stacksize` by flow analysis over the instruction graph.
//!
//! Edges: fall through with the no-jump stack effect; a jump (or a 3.10 SETUP_* handler) with
//! the jump effect; on 3.11+ every covered instruction may enter its exception handler with
//! `depth + lasti + 1` values (the table's depth, the saved offset, the exception). The
//! result is the maximum over every depth reached, counting each jump edge's depth as CPython
//! does even when the target lowers it again. Where paths disagree on a depth (only possible
//! in code CPython would not emit) the larger one is propagated: never an under-estimate.
//!
//! CPython computes its depth on the control-flow graph before a few late steps, so the final
//! bytecode alone can show less than `co_stacksize`; `Quirks` reproduces the two that matter
//! (both can only raise the result): handlers kept alive only by a SETUP pseudo-op, and 3.13's
//! (and later) minimum of one slot.

use crate::encode::{err, EncodeError};
use crate::instr::Code;
use crate::tables::{Flow, OpInfo};

/// Stack depths beyond this are taken as a sign of an unbalanced loop.
const DEPTH_LIMIT: i64 = 1 << 24;
const MAX_STACK_ARG: u32 = 1 << 22;

/// Version facts about CPython's own stack-depth pass that no opcode table states.
struct Quirks {
    /// 3.13+ never report less than one slot (`def f(): raise` has co_stacksize 1 there, 0 on
    /// 3.12), which also covers every function whose only value is a RETURN_CONST.
    min_depth: i64,
    /// 3.11+: a `try` whose body was optimised away leaves its handler in the code, reachable
    /// only from a SETUP pseudo-op that no longer exists. CPython counted it; so do we, entering
    /// such unreachable code at the depth that agrees with where it flows back into reachable
    /// code, or else at the depth of the exception entry covering it.
    seed_orphan_handlers: bool,
}

fn quirks(version: (u8, u8)) -> Quirks {
    Quirks { min_depth: if version >= (3, 13) { 1 } else { 0 }, seed_orphan_handlers: version >= (3, 11) }
}

/// Maximum stack depth of `code` by flow analysis from its first instruction.
pub fn max_depth(code: &Code) -> Result<u32, EncodeError> {
    Ok(run(code, &code.label_targets())?.0)
}

/// As `max_depth`, counting only code that can run (no orphan handlers, whatever the version):
/// what the interpreter needs rather than what CPython's compiler reports.
pub fn max_reachable_depth(code: &Code) -> Result<u32, EncodeError> {
    Ok(run_from(code, &code.label_targets(), false)?.0)
}

/// As `max_depth`, with the label → index map the caller already has.
pub(crate) fn max_depth_with(code: &Code, labels: &[Option<usize>]) -> Result<u32, EncodeError> {
    Ok(run(code, labels)?.0)
}

#[inline]
fn reach(entry: &mut [i64], work: &mut Vec<usize>, at: usize, depth: i64) -> Result<(), EncodeError> {
    if depth > DEPTH_LIMIT {
        return Err(unbounded(at));
    }
    if depth > entry[at] {
        entry[at] = depth;
        work.push(at);
    }
    Ok(())
}

/// Start the next orphan region: the first unreachable instruction (after `scan`) that no
/// unreachable instruction falls into and that an exception entry covers. Its depth is the one
/// that makes it agree with the first reachable instruction it flows into (stack depths agree
/// at every join in code CPython emits); failing that, the covering entry's depth.
fn seed_orphan(
    code: &Code,
    labels: &[Option<usize>],
    scan: &mut usize,
    entry: &mut [i64],
    work: &mut Vec<usize>,
) -> Result<(), EncodeError> {
    while *scan < code.instrs.len() {
        let i = *scan;
        *scan += 1;
        if entry[i] >= 0 || (i > 0 && entry[i - 1] < 0 && code.falls_through(i - 1)) {
            continue;
        }
        if let Some(h) = code.instrs[i].handler.and_then(|h| code.handlers.get(h as usize)) {
            let joined = depth_to_join(code, labels, entry, i).unwrap_or(0);
            return reach(entry, work, i, (h.depth as i64).max(joined));
        }
    }
    Ok(())
}

/// Walk straight on from `start` (relative depth 0) to the first instruction whose depth is
/// known; the start depth that arrives there with that depth.
fn depth_to_join(code: &Code, labels: &[Option<usize>], entry: &[i64], start: usize) -> Option<i64> {
    let mut rel = 0i64;
    for j in start..code.instrs.len() {
        let instr = &code.instrs[j];
        let info = code.table.op(instr.op)?;
        if let Some(t) = instr.target.and_then(|l| labels.get(l.0 as usize).copied().flatten()) {
            if entry[t] >= 0 {
                return Some(entry[t] - (rel + info.stack_effect(instr.arg, true)? as i64));
            }
        }
        rel += info.stack_effect(instr.arg, false)? as i64;
        if matches!(info.flow, Flow::End | Flow::Goto) {
            return None;
        }
        if entry.get(j + 1).is_some_and(|&d| d >= 0) {
            return Some(entry[j + 1] - rel);
        }
    }
    None
}

pub struct Analysis {
    pub max: u32,
    /// Depth on entry to each instruction (`None`: unreachable).
    pub entry: Vec<Option<u32>>,
}

pub fn analyse(code: &Code) -> Result<Analysis, EncodeError> {
    analyse_with(code, &code.label_targets())
}

/// As `analyse`, with the label → index map the caller already has.
pub fn analyse_with(code: &Code, labels: &[Option<usize>]) -> Result<Analysis, EncodeError> {
    let (max, entry) = run(code, labels)?;
    Ok(Analysis { max, entry: entry.into_iter().map(|d| (d >= 0).then_some(d as u32)).collect() })
}

/// The target of label `l` used by instruction `i`.
#[inline]
fn resolve(labels: &[Option<usize>], i: usize, l: crate::instr::Label) -> Result<usize, EncodeError> {
    match labels.get(l.0 as usize) {
        Some(&Some(t)) => Ok(t),
        _ => Err(unattached(i, l)),
    }
}

// Error paths kept out of line: the analysis runs once per instruction of every code object.
#[cold]
#[inline(never)]
fn unattached(i: usize, l: crate::instr::Label) -> EncodeError {
    EncodeError { index: i, what: format!("L{} is attached to no instruction", l.0) }
}

#[cold]
#[inline(never)]
fn unbounded(at: usize) -> EncodeError {
    EncodeError { index: at, what: "stack depth grows without bound (unbalanced loop?)".into() }
}

#[cold]
#[inline(never)]
fn no_effect(i: usize, info: &OpInfo, arg: u32) -> EncodeError {
    EncodeError { index: i, what: format!("{} {arg} has no stack effect", info.name) }
}

/// The stack effect of instruction `i` when jumping or not.
#[inline]
fn effect(i: usize, info: &OpInfo, arg: u32, jump: bool) -> Result<i64, EncodeError> {
    match info.stack_effect(arg, jump) {
        Some(e) => Ok(e as i64),
        None => Err(no_effect(i, info, arg)),
    }
}

fn run(code: &Code, labels: &[Option<usize>]) -> Result<(u32, Vec<i64>), EncodeError> {
    run_from(code, labels, quirks(code.table.version).seed_orphan_handlers)
}

fn run_from(code: &Code, labels: &[Option<usize>], seed_orphans: bool) -> Result<(u32, Vec<i64>), EncodeError> {
    let n = code.instrs.len();
    let mut entry: Vec<i64> = vec![-1; n];
    let mut work: Vec<usize> = Vec::new();
    let mut max: i64 = 0;
    let quirks = quirks(code.table.version);
    if n > 0 {
        reach(&mut entry, &mut work, 0, 0)?;
    }
    let mut orphan_scan = 0;
    loop {
        if work.is_empty() && seed_orphans {
            seed_orphan(code, labels, &mut orphan_scan, &mut entry, &mut work)?;
        }
        let Some(start) = work.pop() else { break };
        let mut i = start;
        loop {
            let depth = entry[i];
            let instr = &code.instrs[i];
            let Some(info) = code.table.op(instr.op) else {
                return err(i, format!("unknown opcode {}", instr.op));
            };
            if let Some(h) = instr.handler {
                let Some(handler) = code.handlers.get(h as usize) else {
                    return err(i, format!("exception handler {h} does not exist"));
                };
                let d = handler.depth as i64 + handler.lasti as i64 + 1;
                max = max.max(d);
                reach(&mut entry, &mut work, resolve(labels, i, handler.target)?, d)?;
            }
            // The table's formula multiplies the argument; beyond 2^22 it could overflow, and no
            // real instruction takes a stack-sized argument that large.
            if instr.arg > MAX_STACK_ARG && !matches!(info.stack[0], crate::tables::StackEffect::Const(_)) {
                return err(i, format!("{} {} has an argument too large to size the stack", info.name, instr.arg));
            }
            if let Some(target) = instr.target {
                let d = (depth + effect(i, info, instr.arg, true)?).max(0);
                max = max.max(d);
                reach(&mut entry, &mut work, resolve(labels, i, target)?, d)?;
            }
            // Below zero only in the 3.11/3.12 generator preamble (RETURN_GENERATOR counts 0,
            // then POP_TOP), which CPython's pass never sees; clamping can only over-estimate.
            let next = (depth + effect(i, info, instr.arg, false)?).max(0);
            max = max.max(next);
            if matches!(info.flow, Flow::End | Flow::Goto) {
                break;
            }
            if i + 1 == n {
                return err(i, format!("{} falls off the end of the code", info.name));
            }
            if next <= entry[i + 1] {
                break;
            }
            entry[i + 1] = next;
            i += 1;
        }
    }
    let max = max.max(quirks.min_depth);
    Ok((max as u32, entry))
}
