//! The few per-version facts no opcode table expresses, all in this one place.
//!
//! Everything else (opcode numbers, argument kinds, cache counts, jump directions, stack
//! effects) comes from `crate::tables`. Each fact here was read from the interpreter itself
//! (`dis._nb_ops`, `dis._special_method_names`, `dis.dis` of calls) and is re-checked against
//! every interpreter by `tests/python/test_rewrite_facts.py`.

use crate::tables::OpTable;

/// How injected code calls a report native.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Convention {
    /// 3.10: `LOAD_GLOBAL f; args...; CALL_FUNCTION n` (no NULL, no COPY: DUP_TOP/ROT_N).
    CallFunction,
    /// 3.11: `LOAD_GLOBAL (f<<1)|1` pushes `[NULL, f]`; `args...; PRECALL n; CALL n`.
    PrecallCall,
    /// 3.12+: `LOAD_GLOBAL (f<<1)|1` pushes the callable pair (`[NULL, f]` on 3.12,
    /// `[f, NULL]` on 3.13+; the injected code never touches either slot); `args...; CALL n`.
    Call,
}

/// Where a call's NULL slot sits relative to the callable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NullSlot {
    /// 3.10 LOAD_METHOD/CALL_METHOD and every 3.11/3.12 call: `[NULL|meth, callable|self, args]`:
    /// the slot above the bottom one is never NULL.
    Below,
    /// 3.10 CALL_FUNCTION* (no NULL) and every 3.13+ call: `[callable, self|NULL, args]`:
    /// the bottom slot is never NULL.
    AboveOrNone,
}

#[derive(Clone, Copy, Debug)]
pub struct Facts {
    pub version: (u8, u8),
    pub convention: Convention,
    /// Null layout of calls other than 3.10's CALL_METHOD (which is always `Below`).
    pub null_slot: NullSlot,
    /// `BINARY_OP` arguments of the in-place operators (`NB_INPLACE_ADD ..= NB_INPLACE_XOR`).
    pub binary_op_inplace: Option<(u32, u32)>,
    /// `BINARY_OP` argument that subscripts (`NB_SUBSCR`, 3.14+; BINARY_SUBSCR before).
    pub binary_op_subscr: Option<u32>,
    /// `LOAD_SPECIAL` arguments of `__enter__` and `__aenter__` (3.14+ `with`).
    pub load_special_enter: Option<(u32, u32)>,
    /// 3.15: GET_ITER with a nonzero argument starts a `yield from` (GET_YIELD_FROM_ITER before).
    pub get_iter_arg_yield_from: bool,
    /// The op that pushes a cell object by its deref index: LOAD_CLOSURE until 3.12; from
    /// 3.13 LOAD_CLOSURE is a pseudo-op the compiler turns into LOAD_FAST on the same index.
    pub cell_push: &'static str,
    /// 3.12: once a CALL, LOAD_ATTR or BINARY_SUBSCR has run a Python callee inline, the next
    /// instruction's "same line as the previous one" check reads the caller's cache unit, so a
    /// jump target right after one fires a second LINE event for the line (CPython 3.12 does
    /// so for its own `x = 2 if c else f()`). New jump targets must not go there.
    pub line_event_after_inlined_call: bool,
    /// 3.12+: a line start right after RESUME fires its LINE event even on the line of the
    /// instruction before (the check that skips a same-line start makes an exception for
    /// RESUME), so a jump target right after a yield's RESUME fires a second event for the line
    /// when the generator resumes. New jump targets must not go there.
    pub line_event_after_resume: bool,
    /// 3.14+: sys.monitoring reports a taken conditional jump as a BRANCH_RIGHT event, and
    /// coverage.py turns one into an arc to the line it expects next, which a line that then
    /// raises never reaches. So a guard's jump is taken only when reporting is on: the reports
    /// go out of line, after the code, and come back with JUMP_BACKWARD_NO_INTERRUPT (no JUMP
    /// event, no eval-breaker check); with no NOT_TAKEN after it, the guard that falls through
    /// reports nothing.
    pub guards_out_of_line: bool,
}

impl Facts {
    pub fn for_version(version: (u8, u8)) -> Option<Facts> {
        let f = match version {
            (3, 10) => Facts {
                version,
                convention: Convention::CallFunction,
                null_slot: NullSlot::AboveOrNone,
                binary_op_inplace: None,
                binary_op_subscr: None,
                load_special_enter: None,
                get_iter_arg_yield_from: false,
                cell_push: "LOAD_CLOSURE",
                line_event_after_inlined_call: false,
                line_event_after_resume: false,
                guards_out_of_line: false,
            },
            (3, 11) => Facts {
                version,
                convention: Convention::PrecallCall,
                null_slot: NullSlot::Below,
                binary_op_inplace: Some((13, 25)),
                binary_op_subscr: None,
                load_special_enter: None,
                get_iter_arg_yield_from: false,
                cell_push: "LOAD_CLOSURE",
                line_event_after_inlined_call: false,
                line_event_after_resume: false,
                guards_out_of_line: false,
            },
            (3, 12) => Facts {
                version,
                convention: Convention::Call,
                null_slot: NullSlot::Below,
                binary_op_inplace: Some((13, 25)),
                binary_op_subscr: None,
                load_special_enter: None,
                get_iter_arg_yield_from: false,
                cell_push: "LOAD_CLOSURE",
                line_event_after_inlined_call: true,
                line_event_after_resume: true,
                guards_out_of_line: false,
            },
            (3, 13) => Facts {
                version,
                convention: Convention::Call,
                null_slot: NullSlot::AboveOrNone,
                binary_op_inplace: Some((13, 25)),
                binary_op_subscr: None,
                load_special_enter: None,
                get_iter_arg_yield_from: false,
                cell_push: "LOAD_FAST",
                line_event_after_inlined_call: false,
                line_event_after_resume: true,
                guards_out_of_line: false,
            },
            (3, 14) | (3, 15) => Facts {
                version,
                convention: Convention::Call,
                null_slot: NullSlot::AboveOrNone,
                binary_op_inplace: Some((13, 25)),
                binary_op_subscr: Some(26),
                load_special_enter: Some((0, 2)),
                get_iter_arg_yield_from: version == (3, 15),
                cell_push: "LOAD_FAST",
                line_event_after_inlined_call: false,
                line_event_after_resume: true,
                guards_out_of_line: true,
            },
            _ => return None,
        };
        Some(f)
    }

    pub fn for_table(table: &OpTable) -> Option<Facts> {
        Facts::for_version(table.version)
    }
}
