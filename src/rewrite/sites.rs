//! Site selection by stack simulation.
//!
//! Every decision here is made from the per-instruction stack heights of
//! `stackdepth::analyse`, never from instruction patterns: a method call's receiver is found by
//! following the stack slot its method-form load filled until the call that consumes that slot,
//! whatever the arguments contain (`await`, conditional expressions, inlined comprehensions,
//! walrus, nested calls).

use crate::instr::Code;
use crate::stackdepth;
use crate::tables::{ArgKind, Flow};

use super::facts::{Facts, NullSlot};
use super::ops::Ops;
use super::{MethodTables, Policy, SiteKind, SiteName};

/// A value a report passes to the native.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fetch {
    /// The value `n` slots from the top at the insertion point (1 = top of stack), before
    /// anything the injected sequence pushes itself.
    Depth(u32),
    /// The cell object of a closure variable, by its deref index.
    Cell(u32),
}

/// The values of one report (at most three), inline: a vector per report would be most of
/// the selection's allocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fetches {
    len: u8,
    items: [Fetch; 3],
}

impl<const N: usize> From<[Fetch; N]> for Fetches {
    fn from(values: [Fetch; N]) -> Fetches {
        let mut items = [Fetch::Depth(0); 3];
        items[..N].copy_from_slice(&values);
        Fetches { len: N as u8, items }
    }
}

impl std::ops::Deref for Fetches {
    type Target = [Fetch];

    fn deref(&self) -> &[Fetch] {
        &self.items[..self.len as usize]
    }
}

#[derive(Clone, Debug)]
pub struct Report {
    /// Original instruction index.
    pub at: usize,
    /// false: before `at` (jumps to `at` are redirected to the report); true: right after `at`.
    pub after: bool,
    pub kind: SiteKind,
    pub name: SiteName,
    pub fetch: Fetches,
}

/// A copy of a method call's receiver kept below the callable pair from the method-form load
/// to the end of the call.
#[derive(Clone, Debug)]
pub struct Stash {
    /// The method-form load; `COPY 1` goes right before it.
    pub load: usize,
    /// The last instruction of each call that consumes the pair (3.11: the CALL after
    /// PRECALL); more than one where the compiler duplicated the call into both arms of a
    /// conditional argument.
    pub call_ends: Vec<StashEnd>,
    /// Stack index (original coordinates) of the pair's bottom slot; the stash takes this
    /// index and everything from it up moves one slot higher while the stash lives.
    pub slot: u32,
    /// Values the load consumes above the receiver (2 for `LOAD_SUPER_ATTR`'s `super` and
    /// class): the copy goes below them.
    pub under: u32,
    /// Instructions executed while the stash is on the stack (including exception handlers
    /// that keep the pair), for handler depth adjustment.
    pub region: Vec<usize>,
}

#[derive(Clone, Copy, Debug)]
pub struct StashEnd {
    pub call_end: usize,
    /// The call result is discarded by an unlabelled POP_TOP right after the call: pop the
    /// stash with a second POP_TOP there instead of `SWAP 2; POP_TOP` (keeps 3.11-3.14's
    /// list.append specialisation, which requires CALL to be followed by POP_TOP).
    pub pop_after_pop_top: bool,
}

/// LOAD_FAST_BORROW conversions (3.14+) so that no borrowed reference outlives its local.
#[derive(Clone, Debug, Default)]
pub struct Unborrow {
    pub all: bool,
    pub at: Vec<usize>,
}

#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub reports: Vec<Report>,
    pub stashes: Vec<Stash>,
    pub unborrow: Unborrow,
    /// Per instruction: whether straight-line code may be placed between it and the one
    /// before (no pairing or fixed-offset rule joins them); `insertable` adds reachability
    /// and the FOR_ITER target rule. Region versioning ends a region only where this holds.
    pub splittable: Vec<bool>,
    /// Per instruction: whether code may be inserted right before it (`splittable`, reachable
    /// and not a FOR_ITER target).
    pub insertable: Vec<bool>,
}

/// One call, as the rewriter sees it.
#[derive(Clone, Copy, Debug)]
struct CallSite {
    /// The instruction that starts consuming (PRECALL on 3.11, else the call op).
    start: usize,
    /// The instruction that pushes the result.
    end: usize,
    /// Where a report before the call goes (before a KW_NAMES that belongs to the call).
    insert_at: usize,
    /// Stack slots the call consumes (callable pair or callable, arguments, kwnames...).
    consumed: u32,
    /// Depth from the top of a slot that holds the callable (or `self`) and is never NULL.
    probe: u32,
    /// The argument values (positional, then keyword): depth of the first one and how many
    /// there are. None for `*args`/`**kwargs` calls.
    values: Option<(u32, u32)>,
}

pub struct Context<'a> {
    pub names: &'a [&'a str],
    /// Names by deref index (cell and free variables); empty when the code uses none.
    pub deref_names: &'a [String],
    pub policy: Policy,
    pub methods: &'a MethodTables,
}

/// What `select` looks for in an opcode, decided once per opcode instead of by a chain of
/// comparisons per instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Other,
    LoadMethod,
    LoadAttr,
    /// 3.12+ `super().name` (`[super, class, self]` → the pair).
    LoadSuperAttr,
    LoadGlobal,
    LoadName,
    LoadDeref,
    StoreAttr,
    DeleteAttr,
    BinarySubscr,
    StoreSubscr,
    DeleteSubscr,
    BinarySlice,
    StoreSlice,
    BinaryOp,
    /// 3.10 INPLACE_* (`Ops::inplace`).
    Inplace310,
    ContainsOp,
    GetIter,
    GetYieldFromIter,
    /// `from m import name`: a load of the module's attribute (`[m]` → `[m, value]`).
    ImportFrom,
    StoreGlobal,
    DeleteGlobal,
    StoreDeref,
    DeleteDeref,
    StoreName,
    DeleteName,
    WithEnter,
    LoadSpecial,
    /// Reads the contents of its top value (`Ops::truth`, `Ops::reads_top`).
    ReadsTop,
    /// Reads the contents of its top two values (`Ops::reads_pair`).
    ReadsPair,
    FormatValue,
    FormatWithSpec,
    MatchPattern,
    YieldValue,
}

/// `classes` of `ops`, made once per table (a selector is made per code object).
fn classes_of(ops: &Ops) -> &'static [Class; 256] {
    static ALL: std::sync::OnceLock<Vec<[Class; 256]>> = std::sync::OnceLock::new();
    let all = ALL.get_or_init(|| super::ops::all().iter().map(classes).collect());
    let index = super::ops::all().iter().position(|o| std::ptr::eq(o, ops)).expect("ops of an embedded table");
    &all[index]
}

fn classes(o: &Ops) -> [Class; 256] {
    let mut table = [Class::Other; 256];
    let pairs = [
        (o.load_method, Class::LoadMethod),
        (o.load_attr, Class::LoadAttr),
        (o.load_super_attr, Class::LoadSuperAttr),
        (o.load_global, Class::LoadGlobal),
        (o.load_name, Class::LoadName),
        (o.load_deref, Class::LoadDeref),
        (o.store_attr, Class::StoreAttr),
        (o.delete_attr, Class::DeleteAttr),
        (o.binary_subscr, Class::BinarySubscr),
        (o.store_subscr, Class::StoreSubscr),
        (o.delete_subscr, Class::DeleteSubscr),
        (o.binary_slice, Class::BinarySlice),
        (o.store_slice, Class::StoreSlice),
        (o.binary_op, Class::BinaryOp),
        (o.contains_op, Class::ContainsOp),
        (o.get_iter, Class::GetIter),
        (o.get_yield_from_iter, Class::GetYieldFromIter),
        (o.import_from, Class::ImportFrom),
        (o.store_global, Class::StoreGlobal),
        (o.delete_global, Class::DeleteGlobal),
        (o.store_deref, Class::StoreDeref),
        (o.delete_deref, Class::DeleteDeref),
        (o.store_name, Class::StoreName),
        (o.delete_name, Class::DeleteName),
        (o.setup_with, Class::WithEnter),
        (o.before_with, Class::WithEnter),
        (o.before_async_with, Class::WithEnter),
        (o.load_special, Class::LoadSpecial),
        (o.match_class, Class::MatchPattern),
        (o.yield_value, Class::YieldValue),
    ];
    let inplace = o.inplace.iter().map(|&(op, _)| (Some(op), Class::Inplace310));
    let reads = (o.truth.iter().chain(&o.reads_top).map(|&op| (Some(op), Class::ReadsTop)))
        .chain(o.reads_pair.iter().map(|&op| (Some(op), Class::ReadsPair)))
        .chain([(o.format_value, Class::FormatValue), (o.format_with_spec, Class::FormatWithSpec)]);
    // The first class named for an opcode wins (the order `select` tests them in).
    for (op, class) in pairs.into_iter().chain(inplace).chain(reads) {
        if let Some(op) = op {
            if table[op as usize] == Class::Other {
                table[op as usize] = class;
            }
        }
    }
    table
}

/// Which `MethodTables` sets a name is in.
pub(crate) mod role {
    pub const BUILTIN: u8 = 1;
    pub const RESOURCE: u8 = 2;
    /// Container or synchronisation method.
    pub const CONTAINER: u8 = 4;
    pub const READING: u8 = 8;
    /// Container method that may run the caller's code while it holds its receiver
    /// (`methods::HOLDING_METHODS`): reported after the call too.
    pub const HOLDING: u8 = 16;
    /// Set on every cached entry (0 = not looked up yet).
    pub const KNOWN: u8 = 128;
}

/// The name of a class pattern's report (`case Point(x=0)`): the runtime reads the subject's
/// attributes, whatever the subject is.
pub const CLASS_PATTERN: &str = "case Class()";
/// The name of an f-string's or `format()`'s operand: its text shows what it holds, nested
/// containers too (as `str(x)` does).
pub const FORMATTED: &str = "format";

/// The name of `yield from`'s `iter` report: only a container's iterator may be stood in for,
/// since a generator's (or an iterator's own) `send` and `throw` must reach it.
pub const YIELD_FROM: &str = "yield from";

/// Compiler-made closure cells that are not program state.
const HIDDEN_CELLS: &[&str] = &["__class__", "__classdict__", "__conditional_annotations__"];

/// What `Selector::walk_forward` does after visiting an instruction.
enum Step {
    /// Go on to its successors.
    Follow,
    /// End this path here.
    Stop,
}

/// The slots above the pair bottom that an op reads or moves, for the ops that reach below
/// what they pop.
fn reach(ops: &Ops, op: u8, arg: u32) -> Option<u32> {
    if Some(op) == ops.swap || Some(op) == ops.copy || Some(op) == ops.rot_n {
        Some(arg)
    } else if Some(op) == ops.rot_two {
        Some(2)
    } else if Some(op) == ops.rot_three {
        Some(3)
    } else if Some(op) == ops.rot_four {
        Some(4)
    } else {
        None
    }
}

/// A set of instruction indexes (no hashing: one flag per instruction).
struct Marks {
    flags: Vec<bool>,
    count: usize,
}

impl Marks {
    fn new(n: usize) -> Marks {
        Marks { flags: vec![false; n], count: 0 }
    }

    /// Whether `i` was not in the set.
    fn insert(&mut self, i: usize) -> bool {
        let fresh = !std::mem::replace(&mut self.flags[i], true);
        self.count += fresh as usize;
        fresh
    }

    fn contains(&self, i: usize) -> bool {
        self.flags[i]
    }

    fn len(&self) -> usize {
        self.count
    }
}

pub struct Selector<'a> {
    code: &'a Code,
    ops: &'a Ops,
    facts: Facts,
    ctx: &'a Context<'a>,
    height: Vec<Option<u32>>,
    /// Index of each instruction's label target, resolved once.
    labels: Vec<Option<usize>>,
    /// Per instruction, the index into `call_sites` of the call it starts (u32::MAX: none);
    /// a third of the size of an `Option<CallSite>` per instruction.
    call_at: Vec<u32>,
    call_sites: Vec<CallSite>,
    insertable: Vec<bool>,
    splittable: Vec<bool>,
    /// Calls already given a report (by their start instruction).
    claimed: Marks,
    out: Selection,
    classes: &'static [Class; 256],
    /// `role` bits per co_names entry, looked up on first use.
    name_roles: Vec<u8>,
    /// Visit marks for the pairing walks: `seen[i] == walk` (no per-walk allocation).
    seen: std::cell::RefCell<Vec<u32>>,
    walk: std::cell::Cell<u32>,
}

impl<'a> Selector<'a> {
    pub fn new(code: &'a Code, ops: &'a Ops, facts: Facts, ctx: &'a Context<'a>) -> Result<Self, String> {
        let labels = code.label_targets();
        let analysis = stackdepth::analyse_with(code, &labels).map_err(|e| e.to_string())?;
        let mut s = Selector {
            code,
            ops,
            facts,
            ctx,
            height: analysis.entry,
            labels,
            call_at: Vec::new(),
            call_sites: Vec::new(),
            insertable: Vec::new(),
            splittable: Vec::new(),
            claimed: Marks::new(code.instrs.len()),
            out: Selection::default(),
            classes: classes_of(ops),
            name_roles: vec![0; ctx.names.len()],
            seen: std::cell::RefCell::new(vec![0; code.instrs.len()]),
            walk: std::cell::Cell::new(0),
        };
        (s.call_at, s.call_sites) = s.find_calls();
        (s.splittable, s.insertable) = s.find_insertable();
        Ok(s)
    }

    fn next_walk(&self) -> u32 {
        let w = self.walk.get() + 1;
        self.walk.set(w);
        w
    }

    fn op(&self, i: usize) -> u8 {
        self.code.instrs[i].op
    }

    fn arg(&self, i: usize) -> u32 {
        self.code.instrs[i].arg
    }

    fn effect(&self, i: usize) -> Option<i32> {
        let instr = &self.code.instrs[i];
        self.code.table.op(instr.op)?.stack_effect(instr.arg, false)
    }

    fn call(&self, i: usize) -> Option<CallSite> {
        self.call_sites.get(self.call_at[i] as usize).copied()
    }

    fn target(&self, i: usize) -> Option<usize> {
        self.code.instrs[i].target.and_then(|l| self.labels.get(l.0 as usize).copied().flatten())
    }

    #[allow(clippy::needless_range_loop)] // neighbours are looked at by index
    fn find_calls(&self) -> (Vec<u32>, Vec<CallSite>) {
        let o = self.ops;
        let n = self.code.instrs.len();
        let mut call_at = vec![u32::MAX; n];
        let mut calls = Vec::new();
        let mut is_call = [false; 256];
        for op in [o.precall, o.call, o.call_function, o.call_method, o.call_kw, o.call_function_kw, o.call_function_ex]
            .into_iter()
            .flatten()
        {
            is_call[op as usize] = true;
        }
        for i in 0..n {
            let op = self.op(i);
            if !is_call[op as usize] {
                continue;
            }
            let arg = self.arg(i);
            let is = |x: Option<u8>| x == Some(op);
            let after_kw_names = i > 0 && Some(self.op(i - 1)) == o.kw_names;
            let insert_at = if after_kw_names { i - 1 } else { i };
            // Keyword names on the stack above the values (3.10 CALL_FUNCTION_KW, 3.13+ CALL_KW).
            let kwnames_above = u32::from(is(o.call_kw) || is(o.call_function_kw));
            let values = (!is(o.call_function_ex)).then_some((arg + kwnames_above, arg));
            let (end, effect) = if is(o.precall) {
                // 3.11: PRECALL n; CALL n. The pair is consumed across both.
                if i + 1 >= n || Some(self.op(i + 1)) != o.call {
                    continue;
                }
                let (Some(a), Some(b)) = (self.effect(i), self.effect(i + 1)) else {
                    continue;
                };
                (i + 1, a + b)
            } else if is(o.call) {
                if i > 0 && o.precall.is_some() && Some(self.op(i - 1)) == o.precall {
                    continue;
                }
                let Some(e) = self.effect(i) else { continue };
                (i, e)
            } else {
                // CALL_FUNCTION, CALL_METHOD, CALL_KW, CALL_FUNCTION_KW, CALL_FUNCTION_EX.
                let Some(e) = self.effect(i) else { continue };
                (i, e)
            };
            let consumed = 1 - effect;
            if consumed < 1 {
                continue;
            }
            let consumed = consumed as u32;
            let null_below = is(o.call_method) || self.facts.null_slot == NullSlot::Below;
            let probe = if null_below { consumed - 1 } else { consumed };
            if probe == 0 {
                continue;
            }
            let values = values.filter(|&(first, _)| first < probe);
            call_at[i] = calls.len() as u32;
            calls.push(CallSite { start: i, end, insert_at, consumed, probe, values });
        }
        (call_at, calls)
    }

    /// Where code may be inserted before an instruction (the pitfalls in bytecode-facts.md):
    /// `(splittable, insertable)`; see `Selection::splittable`.
    #[allow(clippy::needless_range_loop)] // neighbours are looked at by index
    fn find_insertable(&self) -> (Vec<bool>, Vec<bool>) {
        let o = self.ops;
        let n = self.code.instrs.len();
        let mut split = vec![true; n];
        // The RETURN_GENERATOR / POP_TOP / RESUME preamble (3.11+).
        if let Some(resume) = o.resume {
            if let Some(p) = self.code.instrs.iter().position(|x| x.op == resume) {
                for slot in split.iter_mut().take(p + 1) {
                    *slot = false;
                }
            }
        }
        let mut for_iter_target = vec![false; n];
        let mut no_insert_after = [false; 256];
        for &op in &o.no_insert_after {
            no_insert_after[op as usize] = true;
        }
        for i in 0..n {
            let op = self.op(i);
            if i > 0 && no_insert_after[self.op(i - 1) as usize] {
                split[i] = false;
            }
            if Some(op) == o.not_taken || Some(op) == o.resume {
                split[i] = false;
            }
            // 3.10 words the error of a non-awaitable `__aexit__` result by the two ops before
            // GET_AWAITABLE (`DUP_TOP; CALL_FUNCTION`): keep them adjacent.
            if o.dup_top.is_some()
                && i > 0
                && Some(self.op(i - 1)) == o.dup_top
                && i + 1 < n
                && Some(self.op(i + 1)) == o.get_awaitable
            {
                split[i] = false;
            }
            // 3.12+: an exhausted FOR_ITER jumps past its target's END_FOR by a fixed amount.
            if Some(op) == o.for_iter && o.end_for.is_some() {
                if let Some(t) = self.target(i) {
                    for_iter_target[t] = true;
                    if t + 1 < n {
                        for_iter_target[t + 1] = true;
                    }
                }
            }
        }
        let ok = (0..n).map(|i| self.height[i].is_some() && split[i] && !for_iter_target[i]).collect();
        (split, ok)
    }

    /// The co_names index an instruction's argument names.
    fn name_index(&self, i: usize) -> Option<u32> {
        let instr = &self.code.instrs[i];
        match self.code.table.op(instr.op)?.arg {
            ArgKind::Name { shift } => {
                let index = instr.arg >> shift;
                ((index as usize) < self.ctx.names.len()).then_some(index)
            }
            _ => None,
        }
    }

    fn site_name(&self, i: usize) -> SiteName {
        self.name_index(i).map_or(SiteName::None, SiteName::Name)
    }

    /// The `role` bits of the name instruction `i` names (0 without one).
    fn roles(&mut self, i: usize) -> u8 {
        let Some(index) = self.name_index(i) else { return 0 };
        let cached = &mut self.name_roles[index as usize];
        if *cached == 0 {
            *cached = role::KNOWN | self.ctx.methods.roles_of(self.ctx.names[index as usize]);
        }
        *cached
    }

    /// The cell or free variable of deref index `i`.
    fn deref_name(&self, i: u32) -> Option<&'a str> {
        self.ctx.deref_names.get(i as usize).map(String::as_str)
    }

    fn name(&self, i: usize) -> Option<&'a str> {
        let instr = &self.code.instrs[i];
        match self.code.table.op(instr.op)?.arg {
            ArgKind::Name { shift } => self.ctx.names.get((instr.arg >> shift) as usize).copied(),
            _ => None,
        }
    }

    /// The low flag bit of a shifted name argument (method form / push NULL).
    fn name_flag(&self, i: usize) -> bool {
        let instr = &self.code.instrs[i];
        matches!(self.code.table.op(instr.op).map(|o| o.arg), Some(ArgKind::Name { shift }) if shift >= 1)
            && instr.arg & 1 == 1
    }

    /// Visit every instruction reachable from `from + 1` once, with its entry stack height,
    /// until `visit` gives up (None) or `budget` instructions have been seen (None). `Follow`
    /// goes on to the next instruction (unless it ends or jumps away), the jump target (unless
    /// it is a 3.10 block setup) and, with `handlers_above`, an exception handler that keeps
    /// more than that many stack slots.
    fn walk_forward(
        &self,
        from: usize,
        mut budget: usize,
        handlers_above: Option<u32>,
        mut visit: impl FnMut(usize, u32) -> Option<Step>,
    ) -> Option<()> {
        let n = self.code.instrs.len();
        let walk = self.next_walk();
        let mut seen = self.seen.borrow_mut();
        let mut work = vec![from + 1];
        while let Some(i) = work.pop() {
            if i >= n || seen[i] == walk {
                continue;
            }
            seen[i] = walk;
            budget = budget.checked_sub(1)?;
            let h = self.height[i]?;
            if let Step::Stop = visit(i, h)? {
                continue;
            }
            let instr = &self.code.instrs[i];
            let info = self.code.table.op(instr.op)?;
            if !matches!(info.flow, Flow::End | Flow::Goto) {
                work.push(i + 1);
            }
            if info.flow != Flow::Setup {
                if let Some(t) = self.target(i) {
                    work.push(t);
                }
            }
            if let (Some(slot), Some(hid)) = (handlers_above, instr.handler) {
                let handler = self.code.handlers.get(hid as usize)?;
                if handler.depth > slot {
                    work.push(self.labels.get(handler.target.0 as usize).copied().flatten()?);
                }
            }
        }
        Some(())
    }

    /// Follow the callable pair whose bottom slot is `slot`, pushed by instruction `from`,
    /// to the call that consumes it. Every path must reach the same call without touching the
    /// pair. Returns the call and the instructions executed while the pair is on the stack.
    fn pair_strict(&self, from: usize, slot: u32) -> Option<(Vec<CallSite>, Vec<usize>)> {
        let mut region = vec![from];
        let mut found: Vec<CallSite> = Vec::new();
        self.walk_forward(from, 50_000, Some(slot), |i, h| {
            if let Some(cs) = self.call(i) {
                if h.checked_sub(cs.consumed) == Some(slot) {
                    found.push(cs);
                    region.extend(cs.start..=cs.end);
                    return Some(Step::Stop);
                }
            }
            if h < slot + 2 {
                return None;
            }
            let instr = &self.code.instrs[i];
            if let Some(k) = reach(self.ops, instr.op, instr.arg) {
                if h < slot + 2 + k {
                    return None;
                }
            }
            region.push(i);
            // A 3.10 block set up inside the arguments would record the stack level without
            // the stash (never emitted for expressions).
            (self.code.table.op(instr.op)?.flow != Flow::Setup).then_some(Step::Follow)
        })?;
        (!found.is_empty()).then_some((found, region))
    }

    /// The call whose callable (non-NULL slot) is the value at stack index `slot` pushed by
    /// instruction `from`, if every path reaches the same one with that value untouched. Only
    /// names the call for a report made at the call itself (whose stack use never depends on
    /// this), so where it cannot tell whether an op consumes the value it gives up.
    fn pair_weak(&self, from: usize, slot: u32) -> Option<CallSite> {
        let o = self.ops;
        let mut found: Option<CallSite> = None;
        self.walk_forward(from, 5_000, None, |i, h| {
            if let Some(cs) = self.call(i) {
                if h.checked_sub(cs.probe) == Some(slot) {
                    if found.is_some_and(|f| f.start != cs.start) {
                        return None;
                    }
                    found = Some(cs);
                    return Some(Step::Stop);
                }
            }
            let instr = &self.code.instrs[i];
            let info = self.code.table.op(instr.op)?;
            let pure = o.is_pure_push(instr.op, instr.arg);
            // The value is on top: anything but a pure push consumes it.
            if h <= slot || (h == slot + 1 && !pure) {
                return None;
            }
            if let Some(k) = reach(o, instr.op, instr.arg) {
                if h < slot + 2 + k {
                    return None;
                }
            }
            // Back down to the value: only an op that pops exactly the item above it.
            for jump in [false, true] {
                let exit = h as i64 + info.stack_effect(instr.arg, jump)? as i64;
                if exit <= slot as i64 || (exit == slot as i64 + 1 && !(o.pop_one[instr.op as usize] && h == slot + 2))
                {
                    return None;
                }
            }
            Some(Step::Follow)
        })?;
        found
    }

    /// Whether call `cs` looks like one of a path function (`methods::PATH_FUNCTIONS`): a name
    /// of one is loaded among the instructions that push its callable and arguments.
    fn calls_path_function(&self, cs: CallSite) -> bool {
        let Some(top) = self.height[cs.insert_at] else { return false };
        let base = top.saturating_sub(cs.consumed);
        let mut j = cs.insert_at;
        while j > 0 && cs.insert_at - j < 16 {
            j -= 1;
            let Some(h) = self.height[j] else { return false };
            if self.name(j).is_some_and(|name| crate::methods::PATH_FUNCTIONS.contains(&name)) {
                return true;
            }
            if h <= base {
                break;
            }
        }
        false
    }

    /// Reports of the operands at depths `depths` (deepest first) that `at` reads the contents
    /// of. The top one is left out when the instruction before pushed a value that is never a
    /// container (a constant, a comparison's bool, a string) and nothing jumps in between.
    fn operands(&mut self, at: usize, depths: &[u32]) {
        self.named_operands(at, depths, SiteName::None);
    }

    fn named_operands(&mut self, at: usize, depths: &[u32], name: SiteName) {
        let scalar_top = self.top_pushed_by(at).is_some_and(|op| self.ops.pushes_scalar[op as usize]);
        for &d in depths {
            if !(d == 1 && scalar_top) {
                self.report(at, SiteKind::Operand, name, [Fetch::Depth(d)]);
            }
        }
    }

    /// The op of the instruction right before `at`, when nothing jumps to `at`: it pushed the
    /// value on top there.
    fn top_pushed_by(&self, at: usize) -> Option<u8> {
        (at > 0 && self.code.instrs[at].label.is_none()).then(|| self.op(at - 1))
    }

    fn report(&mut self, at: usize, kind: SiteKind, name: SiteName, fetch: impl Into<Fetches>) {
        if self.insertable[at] {
            self.out.reports.push(Report { at, after: false, kind, name, fetch: fetch.into() });
        }
    }

    /// A report of the call `cs` by the state-accessing builtin `name`: the callable and the
    /// first two argument values.
    fn builtin_call(&mut self, cs: CallSite, name: SiteName) {
        if cs.values.is_none_or(|(_, count)| count == 0) || !self.claimed.insert(cs.start) {
            return;
        }
        self.report(cs.insert_at, SiteKind::BuiltinCall, name, with_values(cs, Fetch::Depth(cs.probe)));
    }

    /// The report of a call no other report covers (`shared`: one with arguments, which the
    /// callee may read out of sight; `all`: every call).
    fn plain_call(&mut self, cs: CallSite, all: bool) {
        if !all {
            let Some((first, count)) = cs.values else { return };
            // A lone argument just pushed by a constant or a string op is never a container,
            // nor is the iterator a 3.10/3.11 comprehension function is called with.
            let scalar_only = count == 1
                && first == 1
                && self
                    .top_pushed_by(cs.insert_at)
                    .is_some_and(|op| self.ops.pushes_scalar[op as usize] || Some(op) == self.ops.get_iter)
                && !self.calls_path_function(cs);
            // 3.10 fetches deep values by rotation: a long argument list is not worth it.
            let deep = self.ops.copy.is_none() && cs.probe > 6;
            if count == 0 || scalar_only || deep {
                return;
            }
        }
        self.report(cs.insert_at, SiteKind::CallSite, SiteName::None, with_values(cs, Fetch::Depth(cs.probe)));
    }

    #[allow(clippy::too_many_arguments)]
    fn stash_call(
        &mut self,
        load: usize,
        slot: u32,
        under: u32,
        calls: Vec<CallSite>,
        region: Vec<usize>,
        name: SiteName,
        returns: bool,
    ) {
        if !self.insertable[load]
            || calls.iter().any(|cs| !self.insertable[cs.insert_at] || self.claimed.contains(cs.start))
        {
            return;
        }
        let mut call_ends = Vec::new();
        for cs in calls {
            self.claimed.insert(cs.start);
            let next = cs.end + 1;
            let pop_after_pop_top = !returns
                && next < self.code.instrs.len()
                && self.op(next) == self.ops.pop_top
                && self.code.instrs[next].label.is_none();
            self.out.reports.push(Report {
                at: cs.insert_at,
                after: false,
                kind: SiteKind::Call,
                name,
                fetch: with_values(cs, Fetch::Depth(cs.consumed + 1)),
            });
            if returns {
                self.out.reports.push(Report {
                    at: cs.end,
                    after: true,
                    kind: SiteKind::CallReturn,
                    name,
                    fetch: [Fetch::Depth(2), Fetch::Depth(1)].into(),
                });
            }
            call_ends.push(StashEnd { call_end: cs.end, pop_after_pop_top });
        }
        self.note_borrowed_receiver(load);
        self.out.stashes.push(Stash { load, call_ends, slot, under, region });
    }

    /// 3.14+: the stash copies the receiver; if that is a borrowed reference it must become
    /// an owned one, since the stash may outlive a store to the local in the arguments.
    fn note_borrowed_receiver(&mut self, load: usize) {
        let o = self.ops;
        if o.load_fast_borrow.is_none() {
            return;
        }
        let code = self.code;
        let prev = load.checked_sub(1).map(|p| code.instrs[p].op);
        let labelled = code.instrs[load].label.is_some();
        match prev {
            Some(p) if !labelled && (Some(p) == o.load_fast_borrow || Some(p) == o.load_fast_borrow_pair) => {
                self.out.unborrow.at.push(load - 1);
            }
            // A value that may have been borrowed and then moved, or merged from two paths.
            Some(p) if labelled || Some(p) == o.copy || Some(p) == o.swap => self.out.unborrow.all = true,
            _ => {}
        }
    }

    pub fn select(mut self) -> Selection {
        let policy = self.ctx.policy;
        let shared = policy >= Policy::Shared;
        let all = policy == Policy::All;
        let m = self.ctx.methods;
        let o = self.ops;
        let n = self.code.instrs.len();
        // Pass 1: calls found through callable pairs (NULL-carrying, so only a call consumes
        // them): method-form loads and LOAD_GLOBAL with the NULL bit.
        let mut method_loads_done = Marks::new(n);
        for i in 0..n {
            let Some(h) = self.height[i] else { continue };
            let class = self.classes[self.op(i) as usize];
            let is = |c: Class| class == c;
            let super_call = is(Class::LoadSuperAttr) && self.name_flag(i);
            if is(Class::LoadMethod) || (is(Class::LoadAttr) && self.name_flag(i)) || super_call {
                // `super().m(...)` acts on `self`, below which the load also takes `super` and
                // the class: the receiver's copy goes under those.
                let under = if super_call { 2 } else { 0 };
                if self.name(i).is_none() || h <= under {
                    continue;
                }
                let slot = h - 1 - under;
                let roles = self.roles(i);
                let builtin = shared && roles & role::BUILTIN != 0;
                let resource = roles & role::RESOURCE != 0;
                let container = shared && roles & role::CONTAINER != 0;
                let name = self.site_name(i);
                if !(builtin || resource || container || all) {
                    continue;
                }
                let Some((calls, region)) = self.pair_strict(i, slot) else {
                    continue;
                };
                let before = self.claimed.len();
                if builtin {
                    for cs in calls {
                        self.builtin_call(cs, name);
                    }
                } else {
                    let holding = container && roles & role::HOLDING != 0;
                    self.stash_call(i, slot, under, calls, region, name, resource || holding || all);
                }
                if self.claimed.len() > before {
                    method_loads_done.insert(i);
                }
            } else if is(Class::LoadGlobal)
                && self.name_flag(i)
                && shared
                && self.roles(i) & (role::BUILTIN | role::READING) != 0
            {
                for cs in self.pair_strict(i, h).map(|p| p.0).unwrap_or_default() {
                    self.builtin_call(cs, self.site_name(i));
                }
            }
        }
        // Pass 1b: loads, and the calls of plain loads (by following the value's slot).
        for i in 0..n {
            let Some(h) = self.height[i] else { continue };
            let class = self.classes[self.op(i) as usize];
            let is = |c: Class| class == c;
            if is(Class::LoadMethod) || (is(Class::LoadAttr) && self.name_flag(i)) {
                if shared && !method_loads_done.contains(i) {
                    self.report(i, SiteKind::AttrLoad, self.site_name(i), [Fetch::Depth(1)]);
                }
            } else if is(Class::ImportFrom) {
                // In a function; a module's or class body's (stored by STORE_NAME) runs at
                // import, outside the threads.
                let stored_by_name = i + 1 < n && self.classes[self.op(i + 1) as usize] == Class::StoreName;
                if shared && h >= 1 && !stored_by_name {
                    self.report(i, SiteKind::AttrLoad, self.site_name(i), [Fetch::Depth(1)]);
                }
            } else if is(Class::LoadAttr) {
                if self.name(i).is_none() {
                    continue;
                }
                let roles = self.roles(i);
                let builtin = shared && roles & role::BUILTIN != 0;
                let bound = roles & role::RESOURCE != 0 || (shared && roles & role::CONTAINER != 0) || all;
                let name = self.site_name(i);
                // A plain load the call is reported for (3.10 keyword calls, `*args` calls,
                // 3.12's `module.function()`) is not reported as an attribute load too, as
                // with method-form loads.
                let mut call_reported = false;
                if (builtin || bound) && h >= 1 {
                    if let Some(cs) = self.pair_weak(i, h - 1) {
                        let before = self.claimed.len();
                        if builtin {
                            self.builtin_call(cs, name);
                        } else if self.claimed.insert(cs.start) {
                            let fetch = with_values(cs, Fetch::Depth(cs.probe));
                            self.report(cs.insert_at, SiteKind::CallBound, name, fetch);
                        }
                        call_reported = self.claimed.len() > before;
                    }
                }
                if shared && !call_reported {
                    self.report(i, SiteKind::AttrLoad, name, [Fetch::Depth(1)]);
                }
            } else if is(Class::LoadGlobal) || is(Class::LoadName) || is(Class::LoadDeref) {
                // Borrowed for co_names (no allocation per global load).
                let (text, name): (Option<std::borrow::Cow<'_, str>>, _) = if is(Class::LoadDeref) {
                    (self.deref_name(self.arg(i)).map(Into::into), SiteName::Deref(self.arg(i)))
                } else {
                    (self.name(i).map(Into::into), self.site_name(i))
                };
                let Some(text) = text else { continue };
                if is(Class::LoadGlobal) && shared {
                    self.report(i, SiteKind::GlobalLoad, name, []);
                } else if is(Class::LoadName) && all {
                    self.report(i, SiteKind::NameLoad, name, []);
                } else if is(Class::LoadDeref) && shared && !HIDDEN_CELLS.contains(&text.as_ref()) {
                    self.report(i, SiteKind::CellLoad, name, [Fetch::Cell(self.arg(i))]);
                }
                let null_pair = is(Class::LoadGlobal) && self.name_flag(i);
                let roles = if is(Class::LoadDeref) { m.roles_of(&text) } else { self.roles(i) };
                if shared && !null_pair && roles & (role::BUILTIN | role::READING) != 0 {
                    if let Some(cs) = self.pair_weak(i, h) {
                        self.builtin_call(cs, name);
                    }
                }
            }
        }
        // Pass 2: the other sites.
        for i in 0..n {
            if self.height[i].is_none() {
                continue;
            }
            let class = self.classes[self.op(i) as usize];
            let arg = self.arg(i);
            let is = |c: Class| class == c;
            if let Some(cs) = self.call(i) {
                if shared && !self.claimed.contains(cs.start) {
                    self.plain_call(cs, all);
                }
                if shared && Some(self.op(i)) == self.ops.call_function_ex {
                    // `f(*s.items)` hands the list itself to the call, which reads its items
                    // (`f(*s.items, 0)` copies them first, with LIST_EXTEND). The `**` mapping
                    // is always merged into a new dict first. With a flag, bit 0 says a mapping
                    // is on top; without one (3.14+) its slot is always there, NULL if none.
                    let has_flag = self.code.table.op(self.op(i)).is_some_and(|info| info.has_arg());
                    let depth = if has_flag { 1 + (arg & 1) } else { 2 };
                    self.operands(i, &[depth]);
                }
                continue;
            }
            if !shared {
                continue;
            }
            let d = |k: u32| Fetch::Depth(k);
            if is(Class::StoreAttr) {
                self.report(i, SiteKind::AttrStore, self.site_name(i), [d(1)]);
            } else if is(Class::DeleteAttr) {
                self.report(i, SiteKind::AttrDelete, self.site_name(i), [d(1)]);
            } else if is(Class::BinarySubscr) || (is(Class::BinaryOp) && Some(arg) == self.facts.binary_op_subscr) {
                self.report(i, SiteKind::ItemLoad, SiteName::None, [d(2), d(1)]);
            } else if is(Class::StoreSubscr) {
                self.report(i, SiteKind::ItemStore, SiteName::None, [d(2), d(1)]);
            } else if is(Class::DeleteSubscr) {
                self.report(i, SiteKind::ItemDelete, SiteName::None, [d(2), d(1)]);
            } else if is(Class::BinarySlice) {
                self.report(i, SiteKind::SliceLoad, SiteName::None, [d(3), d(2), d(1)]);
            } else if is(Class::StoreSlice) {
                self.report(i, SiteKind::SliceStore, SiteName::None, [d(3), d(2), d(1)]);
            } else if is(Class::BinaryOp) {
                match self.facts.binary_op_inplace {
                    Some((lo, hi)) if (lo..=hi).contains(&arg) => {
                        let symbol =
                            INPLACE_SYMBOLS.get((arg - lo) as usize).map_or(SiteName::None, |s| SiteName::Symbol(s));
                        self.report(i, SiteKind::Inplace, symbol, [d(2)]);
                    }
                    _ => self.operands(i, &[2, 1]),
                }
            } else if is(Class::Inplace310) {
                let op = self.op(i);
                let Some(&(_, symbol)) = o.inplace.iter().find(|(c, _)| *c == op) else { continue };
                self.report(i, SiteKind::Inplace, SiteName::Symbol(symbol), [d(2)]);
            } else if is(Class::ContainsOp) {
                // The container, then the value looked for: `k in d` asks for one key.
                self.report(i, SiteKind::Contains, SiteName::None, [d(1), d(2)]);
            } else if is(Class::GetYieldFromIter)
                || (is(Class::GetIter) && self.facts.get_iter_arg_yield_from && arg != 0)
            {
                self.report(i, SiteKind::Iter, SiteName::Symbol(YIELD_FROM), [d(1)]);
            } else if is(Class::GetIter) {
                // The loop header, never a FOR_ITER target (`insertable` refuses those).
                self.report(i, SiteKind::Iter, SiteName::None, [d(1)]);
            } else if is(Class::StoreGlobal) {
                self.report(i, SiteKind::GlobalStore, self.site_name(i), []);
            } else if is(Class::DeleteGlobal) {
                self.report(i, SiteKind::GlobalDelete, self.site_name(i), []);
            } else if is(Class::StoreDeref) || is(Class::DeleteDeref) {
                let Some(name) = self.deref_name(arg) else { continue };
                if HIDDEN_CELLS.contains(&name) {
                    continue;
                }
                let kind = if is(Class::StoreDeref) { SiteKind::CellStore } else { SiteKind::CellDelete };
                self.report(i, kind, SiteName::Deref(arg), [Fetch::Cell(arg)]);
            } else if is(Class::StoreName) && all {
                self.report(i, SiteKind::NameStore, self.site_name(i), []);
            } else if is(Class::DeleteName) && all {
                self.report(i, SiteKind::NameDelete, self.site_name(i), []);
            } else if is(Class::WithEnter) {
                self.report(i, SiteKind::WithEnter, SiteName::None, [d(1)]);
            } else if is(Class::ReadsTop) && o.formats_top.contains(&Some(self.op(i))) {
                self.named_operands(i, &[1], SiteName::Symbol(FORMATTED));
            } else if is(Class::ReadsTop) {
                self.operands(i, &[1]);
            } else if is(Class::MatchPattern) {
                // Subject, class, attribute names: the subject's attributes are read.
                self.report(i, SiteKind::Operand, SiteName::Symbol(CLASS_PATTERN), [d(3)]);
            } else if is(Class::ReadsPair) {
                self.operands(i, &[2, 1]);
            } else if is(Class::FormatValue) {
                // FVS_HAVE_SPEC: the format spec is on top of the value.
                self.named_operands(i, if arg & 4 != 0 { &[2] } else { &[1] }, SiteName::Symbol(FORMATTED));
            } else if is(Class::FormatWithSpec) {
                self.named_operands(i, &[2], SiteName::Symbol(FORMATTED));
            } else if is(Class::YieldValue) {
                // Not in a `yield from` / `await` loop: nothing may be inserted after SEND.
                self.report(i, SiteKind::Yield, SiteName::None, []);
            } else if is(Class::LoadSpecial) {
                if let Some((enter, aenter)) = self.facts.load_special_enter {
                    if arg == enter || arg == aenter {
                        self.report(i, SiteKind::WithEnter, SiteName::None, [d(1)]);
                    }
                }
            }
        }
        self.out.splittable = std::mem::take(&mut self.splittable);
        self.out.insertable = std::mem::take(&mut self.insertable);
        self.out
    }
}

/// `lead`, then the first two argument values of the call (as many as it has).
fn with_values(cs: CallSite, lead: Fetch) -> Fetches {
    match cs.values {
        Some((first, 1)) => [lead, Fetch::Depth(first)].into(),
        Some((first, n)) if n >= 2 => [lead, Fetch::Depth(first), Fetch::Depth(first - 1)].into(),
        _ => [lead].into(),
    }
}

/// Operators of `BINARY_OP` NB_INPLACE_ADD ..= NB_INPLACE_XOR (`dis._nb_ops[13:26]`).
const INPLACE_SYMBOLS: &[&str] = &["+=", "&=", "//=", "<<=", "@=", "*=", "%=", "|=", "**=", ">>=", "-=", "/=", "^="];
