//! A strict stack check of rewritten code: every path into an instruction must agree on the
//! stack height, and every exception handler must be entered at `depth + lasti + 1`
//! consistently. `stackdepth` takes the larger height where paths disagree (right for
//! `co_stacksize`); this check instead refuses, so a wrong stash or handler adjustment is
//! caught before the code runs. (A handler may cover code where the stack is below its depth:
//! 3.15 genexprs cover their epilogue after the iterator is popped.)
//!
//! It returns the highest height it saw, which is `stackdepth::max_depth` for code that
//! passes (heights agree, so taking the larger changes nothing): the encoder need not run a
//! second flow analysis.

use crate::instr::Code;
use crate::tables::Flow;

pub fn check(code: &Code) -> Result<u32, String> {
    let n = code.instrs.len();
    let labels = code.label_targets();
    let resolve = |l: crate::instr::Label| labels.get(l.0 as usize).copied().flatten();
    // -1: not reached yet (heights are never negative).
    let mut entry: Vec<i64> = vec![-1; n];
    let mut work: Vec<usize> = Vec::new();
    #[inline]
    fn reach(entry: &mut [i64], work: &mut Vec<usize>, at: usize, h: i64, from: usize) -> Result<(), String> {
        match entry[at] {
            -1 => {
                entry[at] = h;
                work.push(at);
                Ok(())
            }
            old if old == h => Ok(()),
            old => Err(disagree(at, old, h, from)),
        }
    }
    if n > 0 {
        reach(&mut entry, &mut work, 0, 0, 0)?;
    }
    let mut max: i64 = 0;
    while let Some(start) = work.pop() {
        // Straight on while each next instruction is reached for the first time.
        let mut i = start;
        loop {
            let h = entry[i];
            max = max.max(h);
            let instr = &code.instrs[i];
            let info = code.table.op(instr.op).ok_or_else(|| format!("unknown opcode {} at {i}", instr.op))?;
            if let Some(hid) = instr.handler {
                let handler = code.handlers.get(hid as usize).ok_or_else(|| format!("no handler {hid}"))?;
                let target = resolve(handler.target).ok_or("handler target unattached")?;
                reach(&mut entry, &mut work, target, handler.depth as i64 + handler.lasti as i64 + 1, i)?;
            }
            let effect = |jump: bool| match info.stack_effect(instr.arg, jump) {
                Some(e) => Ok(e as i64),
                None => Err(no_effect(info, instr.arg)),
            };
            // 3.14+ END_ASYNC_FOR's "jump" only names the loop for sys.monitoring; it never jumps.
            if let Some(t) = instr.target.filter(|_| info.name != "END_ASYNC_FOR") {
                let target = resolve(t).ok_or("jump target unattached")?;
                let after = h + effect(true)?;
                if after < 0 {
                    return Err(format!("{} at {i} jumps with a negative stack", info.name));
                }
                reach(&mut entry, &mut work, target, after, i)?;
            }
            // The 3.11/3.12 generator preamble pops a value CPython's count never pushed.
            let after = (h + effect(false)?).max(0);
            max = max.max(after);
            if matches!(info.flow, Flow::End | Flow::Goto) {
                break;
            }
            if i + 1 >= n {
                return Err(format!("{} at {i} falls off the end", info.name));
            }
            match entry[i + 1] {
                -1 => {
                    entry[i + 1] = after;
                    i += 1;
                }
                old if old == after => break,
                old => return Err(disagree(i + 1, old, after, i)),
            }
        }
    }
    Ok(max as u32)
}

// Messages built out of line: the check runs on every instruction of every rewritten code.
#[cold]
#[inline(never)]
fn disagree(at: usize, old: i64, h: i64, from: usize) -> String {
    format!("stack height at instruction {at} is {old} on one path, {h} from instruction {from}")
}

#[cold]
#[inline(never)]
fn no_effect(info: &crate::tables::OpInfo, arg: u32) -> String {
    format!("{} {arg} has no stack effect", info.name)
}
