//! The rewriter: report calls injected around shared-state accesses, behind guards.
//!
//! `rewrite` takes one decoded code object and returns it with, before every selected
//! instruction, a call `__frontrun_report__(*values, site)` with the values the instruction is
//! about to use, read from the stack, and a constant `site = (kind, line, name)`. Method calls
//! keep a copy of their receiver below the callable pair (the "stash") so the call and its
//! result can be reported with the receiver that is really on the stack.
//!
//! While nothing listens the reports must cost almost nothing, so they sit behind a guard
//! (`LOAD_GLOBAL __frontrun_on__; POP_JUMP_IF_FALSE`), one per straight-line region rather than
//! one per site ("region versioning", see `regions`): for a region `R` of original
//! instructions, from the first site of a basic block to the block's end (or its last site),
//!
//! ```text
//!   guard  LOAD_GLOBAL __frontrun_on__; POP_JUMP_IF_FALSE ORIG [; NOT_TAKEN]   (R's label)
//!   COPY   R with its reports, stashes and after-reports, no guards
//!          JUMP_FORWARD END                     (unless R ends in return/raise/jump)
//!   ORIG:  R untouched (only stashes that outlive R, so stacks agree at every join)
//!          [NOP]                                (3.12, after a call: `Facts`)
//!   END:   the instruction after R
//! ```
//!
//! On 3.14+ (`Facts::guards_out_of_line`) a taken conditional jump is a BRANCH event, which
//! coverage.py reads as an arc to the line it expects next (wrong when the line then raises),
//! so the guard jumps only while a listener is on, to the copy placed after the code:
//!
//! ```text
//!   guard  LOAD_GLOBAL __frontrun_on__; POP_JUMP_IF_TRUE COPY     (R's label)
//!   ORIG:  R untouched
//!   END:   the instruction after R
//!   ...    (the rest of the code)
//!   COPY:  LOAD_GLOBAL __frontrun_on__; POP_JUMP_IF_FALSE +0      (never taken; ends coverage's walk)
//!          R with its reports; [JUMP_BACKWARD_NO_INTERRUPT END]
//! ```
//!
//! and a per-site guard jumps to its report, which jumps back. Where coverage reads an arc of
//! the original's branch across the guard's place (`branch_walks`), and before a 3.15 genexpr's
//! RETURN_GENERATOR, the guard keeps the form above.
//!
//! Only forward jumps are added (and, on 3.14+, the jumps back from after the code, which do
//! not check the eval breaker), and every injected instruction carries the position of the
//! instruction it serves (the guard R's first, the JUMP_FORWARD the one before it), so line
//! events (settrace, sys.monitoring, coverage) are those of the original code. Blocks where a
//! copy buys nothing (one report) or cannot close safely keep a guard per site (`Chunk::build`
//! with `guard`), the layout of code rewritten with `Input::versioning` off.
//!
//! * `sites`: which instructions, by stack simulation;
//! * `regions`: which runs of instructions are versioned, which stashes are local to one;
//! * `inject`: the instruction sequences, per calling convention;
//! * `facts`: the only per-version facts outside the opcode tables;
//! * here: policy, site kinds, and splicing it all into the instruction list
//!   (labels, exception handlers, LOAD_FAST_BORROW).

pub mod facts;
pub mod inject;
pub mod ops;
pub mod regions;
pub mod sites;
pub mod verify;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use crate::instr::{Code, Instr, Label};
use crate::tables::Flow;

use facts::Facts;
use inject::Injector;
use sites::{Context, Fetch, Selector};

/// Bumped whenever injected code changes (it keys the rewritten-pyc cache).
pub const REWRITER_VERSION: u32 = 20;

/// The builtins the injected code reads.
pub const GUARD_NAME: &str = "__frontrun_on__";
pub const REPORT_NAME: &str = "__frontrun_report__";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Policy {
    /// Resource method calls only (before and after).
    Resources,
    /// Resources plus attribute, subscript, global and cell accesses, container-method and
    /// state-accessing builtin calls, in-place operators and `with` entry.
    Shared,
    /// Every instrumentable site (tests the rewriter itself).
    All,
}

impl Policy {
    pub fn parse(s: &str) -> Option<Policy> {
        match s {
            "resources" => Some(Policy::Resources),
            "shared" => Some(Policy::Shared),
            "all" => Some(Policy::All),
            _ => None,
        }
    }
}

/// What a site reports; the number is the first item of the site constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SiteKind {
    AttrLoad = 1,
    AttrStore = 2,
    AttrDelete = 3,
    ItemLoad = 4,
    ItemStore = 5,
    ItemDelete = 6,
    SliceLoad = 7,
    SliceStore = 8,
    GlobalLoad = 9,
    GlobalStore = 10,
    GlobalDelete = 11,
    CellLoad = 12,
    CellStore = 13,
    CellDelete = 14,
    /// Values: the receiver (from the stash), then the first one or two argument values.
    Call = 15,
    /// Values: the receiver (from the stash), the returned object.
    CallReturn = 16,
    /// Values: the bound callable (receiver = its `__self__`); keyword and `*args` calls of a
    /// plain attribute load; then the first one or two argument values.
    CallBound = 17,
    /// Values: the callable, the first one or two argument values (positional, then keyword).
    BuiltinCall = 18,
    Inplace = 19,
    WithEnter = 20,
    NameLoad = 21,
    NameStore = 22,
    NameDelete = 23,
    /// Any other call: with arguments under `shared` (the callee may read them where nothing
    /// reports it), every call under `all`. Values: its callable (or `self` for a method pair),
    /// then the first one or two argument values.
    CallSite = 24,
    /// `x in c` / `not in` (CONTAINS_OP). Values: the container.
    Contains = 25,
    /// GET_ITER (`for ... in c`, comprehensions, unpacking into a loop). Values: the iterable.
    Iter = 26,
    /// An operand whose contents an operation reads: a truth test, a comparison or binary
    /// operator (one report per operand), unpacking, `*`/`**` expansion, f-string formatting.
    /// Values: the operand.
    Operand = 27,
    /// A generator about to yield (YIELD_VALUE outside `yield from` / `await`). No values: a
    /// point inside the running generator where its thread can be preempted, so another
    /// thread's `next()` can find it running, even when the body has nothing else to report.
    Yield = 28,
}

impl SiteKind {
    pub const ALL: [SiteKind; 28] = [
        SiteKind::AttrLoad,
        SiteKind::AttrStore,
        SiteKind::AttrDelete,
        SiteKind::ItemLoad,
        SiteKind::ItemStore,
        SiteKind::ItemDelete,
        SiteKind::SliceLoad,
        SiteKind::SliceStore,
        SiteKind::GlobalLoad,
        SiteKind::GlobalStore,
        SiteKind::GlobalDelete,
        SiteKind::CellLoad,
        SiteKind::CellStore,
        SiteKind::CellDelete,
        SiteKind::Call,
        SiteKind::CallReturn,
        SiteKind::CallBound,
        SiteKind::BuiltinCall,
        SiteKind::Inplace,
        SiteKind::WithEnter,
        SiteKind::NameLoad,
        SiteKind::NameStore,
        SiteKind::NameDelete,
        SiteKind::CallSite,
        SiteKind::Contains,
        SiteKind::Iter,
        SiteKind::Operand,
        SiteKind::Yield,
    ];

    pub fn from_code(code: u8) -> Option<SiteKind> {
        SiteKind::ALL.iter().copied().find(|k| *k as u8 == code)
    }

    /// The event kind this site produces.
    pub fn event(self) -> &'static str {
        match self {
            SiteKind::AttrLoad => "attr_load",
            SiteKind::AttrStore => "attr_store",
            SiteKind::AttrDelete => "attr_delete",
            SiteKind::ItemLoad | SiteKind::SliceLoad => "item_load",
            SiteKind::ItemStore | SiteKind::SliceStore => "item_store",
            SiteKind::ItemDelete => "item_delete",
            SiteKind::GlobalLoad => "global_load",
            SiteKind::GlobalStore => "global_store",
            SiteKind::GlobalDelete => "global_delete",
            SiteKind::CellLoad => "cell_load",
            SiteKind::CellStore => "cell_store",
            SiteKind::CellDelete => "cell_delete",
            SiteKind::Call | SiteKind::CallBound => "call",
            SiteKind::CallReturn => "call_return",
            SiteKind::BuiltinCall => "builtin_call",
            SiteKind::Inplace => "inplace",
            SiteKind::WithEnter => "with_enter",
            SiteKind::NameLoad => "name_load",
            SiteKind::NameStore => "name_store",
            SiteKind::NameDelete => "name_delete",
            SiteKind::CallSite => "call_site",
            SiteKind::Contains => "contains",
            SiteKind::Iter => "iter",
            SiteKind::Operand => "operand",
            SiteKind::Yield => "yield",
        }
    }
}

/// A word at a time, one rotate-xor-multiply per word (the scheme of rustc's FxHash): the
/// rewriter hashes short names and small integers millions of times over a stdlib;
/// SipHash's flooding resistance buys nothing here, and byte-wise FNV cost a tenth of a rewrite.
#[derive(Default, Clone, Copy)]
pub struct QuickHasher(u64);

impl QuickHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for QuickHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }

    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

pub type FastHash = BuildHasherDefault<QuickHasher>;
pub type NameSet = HashSet<String, FastHash>;

pub use crate::methods::MethodTables;

/// The name part of a site constant, by reference into the code object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SiteName {
    None,
    /// `co_names[i]`.
    Name(u32),
    /// The cell or free variable of deref index `i`.
    Deref(u32),
    /// An operator (`"+="`).
    Symbol(&'static str),
}

/// A site constant: `(kind, line, name)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SiteConst {
    pub kind: SiteKind,
    pub line: Option<i32>,
    pub name: SiteName,
}

#[derive(Debug)]
pub struct Rewritten {
    pub code: Code,
    /// Appended to `co_names`, in order.
    pub new_names: Vec<&'static str>,
    /// Appended to `co_consts`, in order.
    pub new_consts: Vec<SiteConst>,
    /// One per report site, in instruction order.
    pub sites: Vec<SiteConst>,
    /// Per instruction of `code`: whether the rewriter inserted it.
    pub injected: Vec<bool>,
    /// The stack depth `code` needs (its flow analysis ran as part of the stack check).
    pub stacksize: u32,
}

#[derive(Debug)]
pub enum RewriteError {
    /// The input cannot be rewritten (malformed, or an unknown interpreter).
    Input(String),
    /// The rewriter produced code that fails its own stack check: a bug; the code object
    /// should be left as it was.
    Internal(String),
}

impl std::fmt::Display for RewriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RewriteError::Input(s) => f.write_str(s),
            RewriteError::Internal(s) => write!(f, "internal rewriter error: {s}"),
        }
    }
}

pub struct Input<'a> {
    pub names: &'a [&'a str],
    /// Number of `co_consts` entries (site constants are appended after them).
    pub const_count: usize,
    /// Names by deref index (cell and free variables); empty when the code uses none.
    pub deref_names: &'a [String],
    pub policy: Policy,
    pub methods: &'a MethodTables,
    /// Region versioning (one guard per straight-line run of sites); false keeps a guard per
    /// site everywhere, the layout versioning falls back to.
    pub versioning: bool,
}

/// Rewrite one code object. `Ok(None)`: nothing selected (or already rewritten).
pub fn rewrite(mut code: Code, input: &Input<'_>) -> Result<Option<Rewritten>, RewriteError> {
    let table = code.table;
    let Some(facts) = Facts::for_table(table) else {
        return Err(RewriteError::Input(format!(
            "no rewriting facts for Python {}.{}",
            table.version.0, table.version.1
        )));
    };
    if input.names.iter().any(|&n| n == REPORT_NAME || n == GUARD_NAME) {
        return Ok(None);
    }
    let ops = ops::for_table(table);
    let ctx =
        Context { names: input.names, deref_names: input.deref_names, policy: input.policy, methods: input.methods };
    let mut selection = Selector::new(&code, ops, facts, &ctx).map_err(RewriteError::Input)?.select();
    selection.reports.sort_by_key(|r| (r.at, r.after));
    if selection.reports.is_empty() {
        return Ok(None);
    }

    let on_name = input.names.len() as u32;
    let injector = Injector { table, ops, facts, on_name, report_name: on_name + 1 };

    // Site constants, deduplicated.
    let mut consts: Vec<SiteConst> = Vec::new();
    let mut const_index: HashMap<SiteConst, u32, FastHash> =
        HashMap::with_capacity_and_hasher(selection.reports.len(), FastHash::default());
    let mut site_of = Vec::with_capacity(selection.reports.len());
    for r in &selection.reports {
        let line = code.instrs[r.at].position.line;
        let site = SiteConst { kind: r.kind, line, name: r.name };
        let index = *const_index.entry(site).or_insert_with(|| {
            consts.push(site);
            (input.const_count + consts.len() - 1) as u32
        });
        site_of.push((site, index));
    }

    // Handler depths: a handler that keeps a stashed pair's slot must keep the stash too.
    let n = code.instrs.len();
    let mut raised: Vec<Vec<usize>> = Vec::with_capacity(selection.stashes.len());
    let mut seen: HashSet<usize, FastHash> = HashSet::default();
    for stash in &selection.stashes {
        seen.clear();
        let mut at = Vec::new();
        for &i in &stash.region {
            if !seen.insert(i) {
                continue;
            }
            if let Some(h) = code.instrs[i].handler {
                if code.handlers.get(h as usize).is_some_and(|h| h.depth > stash.slot) {
                    at.push(i);
                }
            }
        }
        raised.push(at);
    }
    let needs_delta: Vec<bool> = raised.iter().map(|r| !r.is_empty()).collect();
    let plan = regions::plan(&code, ops, facts, &selection, &needs_delta, input.versioning);
    // Only stashes present on every path move a handler's depth (a local one never does).
    let mut delta = vec![0u32; n];
    for (s, at) in raised.iter().enumerate() {
        if !plan.local[s] {
            for &i in at {
                delta[i] += 1;
            }
        }
    }
    let mut adjusted: HashMap<(u32, u32), u32, FastHash> = HashMap::default();
    for (instr, &d) in code.instrs.iter_mut().zip(&delta) {
        let (Some(h), true) = (instr.handler, d > 0) else { continue };
        let handlers = &mut code.handlers;
        let id = *adjusted.entry((h, d)).or_insert_with(|| {
            let mut handler = handlers[h as usize];
            handler.depth += d;
            handlers.push(handler);
            (handlers.len() - 1) as u32
        });
        instr.handler = Some(id);
    }

    // Borrowed references the stash may keep alive (3.14+).
    if let (Some(lfb), Some(lfb2)) = (ops.load_fast_borrow, ops.load_fast_borrow_pair) {
        let unborrow = |instr: &mut Instr| {
            if instr.op == lfb {
                instr.op = ops.load_fast;
            } else if instr.op == lfb2 {
                instr.op = ops.load_fast_load_fast.expect("LOAD_FAST_LOAD_FAST with borrows");
            }
        };
        if selection.unborrow.all {
            code.instrs.iter_mut().for_each(unborrow);
        } else {
            for &i in &selection.unborrow.at {
                unborrow(&mut code.instrs[i]);
            }
        }
    }

    // Group what goes around each instruction.
    let mut grouped: Vec<(usize, Chunk)> = Vec::with_capacity(selection.reports.len() + 3 * selection.stashes.len());
    for (r, (_, index)) in selection.reports.iter().zip(&site_of) {
        let replace_top = r.kind == SiteKind::Iter;
        grouped.push((Around::slot(r.at, r.after), Chunk::Report { fetch: &r.fetch, site_const: *index, replace_top }));
    }
    for (k, s) in selection.stashes.iter().enumerate() {
        let local = plan.local[k];
        grouped.push((Around::slot(s.load, false), Chunk::Stash { local, under: s.under }));
        for end in &s.call_ends {
            if end.pop_after_pop_top {
                grouped.push((Around::slot(end.call_end + 1, true), Chunk::PopTop { local }));
            } else {
                grouped.push((Around::slot(end.call_end, true), Chunk::Unstash { local }));
            }
        }
    }
    // Stable: reports (pushed first) stay ahead of stash chunks, as after-reports read the
    // stash and must run before it is dropped.
    grouped.sort_by_key(|&(slot, _)| slot);
    let mut around = Around::new(n, grouped);

    // 3.15 genexprs report their iterable before RETURN_GENERATOR: no jumps out of line there,
    // before the generator exists (its first RESUME).
    let return_generator = table.code("RETURN_GENERATOR");
    let inline_until = code.instrs.iter().position(|x| Some(x.op) == return_generator).map_or(0, |p| p + 1);
    let walked = if facts.guards_out_of_line { branch_walks(&code) } else { Vec::new() };
    let mut old = std::mem::take(&mut code.instrs);
    let copied: usize = plan.regions.iter().map(|r| r.end - r.start).sum();
    let room = old.len() + copied + selection.reports.len() * 8;
    let mut e = Emitter {
        inj: &injector,
        out_of_line: false,
        out: Vec::with_capacity(room),
        injected: Vec::with_capacity(room),
        tail: Vec::new(),
        tail_injected: Vec::new(),
    };
    let mut regions = plan.regions.iter().peekable();
    let mut i = 0;
    while i < n {
        e.out_of_line = facts.guards_out_of_line && i >= inline_until && !walked[i];
        if let Some(r) = regions.next_if(|r| r.start == i) {
            e.region(r, &mut old, &mut around, &mut code);
            i = r.end;
            continue;
        }
        let instr = std::mem::replace(&mut old[i], Instr::new(0, 0));
        if !e.guarded(instr, around.before(i), around.after(i), &mut code) {
            return Err(RewriteError::Internal(format!("a report after instruction {i} has nowhere to skip to")));
        }
        i += 1;
    }
    let Emitter { mut out, mut injected, tail, tail_injected, .. } = e;
    out.extend(tail);
    injected.extend(tail_injected);
    code.instrs = out;
    // Every CPython 3.10-3.15 stdlib code object passes this check before rewriting; after
    // it, a failure is a rewriter bug and the code object is left as it was.
    let stacksize = verify::check(&code).map_err(RewriteError::Internal)?;

    let sites = site_of.into_iter().map(|(s, _)| s).collect();
    Ok(Some(Rewritten {
        code,
        new_names: vec![GUARD_NAME, REPORT_NAME],
        new_consts: consts,
        sites,
        injected,
        stacksize,
    }))
}

/// The instructions a branch's arc is read from (`Facts::guards_out_of_line`): coverage.py
/// turns a BRANCH event into an arc by walking on from the destination (through unconditional
/// jumps) to the first instruction of another line, and gives up at a conditional jump. A
/// guard placed there keeps its inline form, taken when reporting is off: the walk stops at
/// it, and its own event names the line the walk would have reached, as the original's does.
fn branch_walks(code: &Code) -> Vec<bool> {
    let instrs = &code.instrs;
    let n = instrs.len();
    let mut walked = vec![false; n];
    let at = code.label_targets();
    let target = |i: usize| instrs[i].target.and_then(|l| at.get(l.0 as usize).copied().flatten());
    for (i, instr) in instrs.iter().enumerate() {
        if code.info(instr).map(|o| o.flow) != Some(Flow::Branch) {
            continue;
        }
        let from = instr.position.line;
        for start in [Some(i + 1), target(i)].into_iter().flatten() {
            let mut k = start;
            for _ in 0..n {
                if k >= n || walked[k] && k != start {
                    break;
                }
                if instrs[k].position.line.is_some_and(|line| Some(line) != from) {
                    break;
                }
                walked[k] = true;
                match code.info(&instrs[k]).map(|o| o.flow) {
                    Some(Flow::Goto) => match target(k) {
                        Some(t) => k = t,
                        None => break,
                    },
                    Some(Flow::Next) => k += 1,
                    _ => break,
                }
            }
        }
    }
    walked
}

/// One code object as plain parts: what both adapters (a live `CodeType`, a marshal `Code` of
/// another interpreter version) can supply without the other's object model.
pub struct Parts<'a> {
    pub code: &'a [u8],
    /// `co_exceptiontable` (empty on 3.10).
    pub exception_table: &'a [u8],
    pub line_table: &'a [u8],
    pub first_line: i32,
    pub names: &'a [&'a str],
    pub const_count: usize,
    /// Names by deref index (cell and free variables); empty when the code uses none.
    pub deref_names: &'a [String],
}

/// The rewritten parts; the adapter appends `new_names` to `co_names` and one constant per
/// `new_consts` entry to `co_consts`, and sets the stack size to the larger of `stacksize`
/// and the original.
pub struct RewrittenParts {
    pub code: Vec<u8>,
    pub exception_table: Vec<u8>,
    pub line_table: Vec<u8>,
    pub stacksize: u32,
    pub new_names: Vec<&'static str>,
    pub new_consts: Vec<SiteConst>,
    pub sites: Vec<SiteConst>,
    /// The rewritten instructions (for listings) and which of them were injected.
    pub instrs: Code,
    pub injected: Vec<bool>,
}

/// Decode, rewrite and encode one code object. `Ok(None)`: nothing selected.
pub fn rewrite_parts(
    table: &'static crate::tables::OpTable,
    parts: &Parts<'_>,
    policy: Policy,
    methods: &MethodTables,
) -> Result<Option<RewrittenParts>, RewriteError> {
    let decoded = crate::decode::decode(
        table,
        crate::decode::RawCode {
            code: parts.code,
            exception_table: parts.exception_table,
            line_table: parts.line_table,
            first_line: parts.first_line,
        },
    )
    .map_err(|e| RewriteError::Input(e.to_string()))?;
    let input = Input {
        names: parts.names,
        const_count: parts.const_count,
        deref_names: parts.deref_names,
        policy,
        methods,
        versioning: true,
    };
    let Some(rw) = rewrite(decoded, &input)? else { return Ok(None) };
    let encoded =
        crate::encode::encode_sized(&rw.code, Some(rw.stacksize)).map_err(|e| RewriteError::Internal(e.to_string()))?;
    Ok(Some(RewrittenParts {
        code: encoded.code,
        exception_table: encoded.exception_table,
        line_table: encoded.line_table,
        stacksize: encoded.stacksize,
        new_names: rw.new_names,
        new_consts: rw.new_consts,
        sites: rw.sites,
        instrs: rw.code,
        injected: rw.injected,
    }))
}

/// What goes before or after one instruction. `local`: the stash lives inside one region and
/// appears only in its instrumented copy.
#[derive(Clone, Debug)]
enum Chunk<'a> {
    /// `replace_top`: an `iter` report, whose result becomes the iterable.
    Report {
        fetch: &'a [Fetch],
        site_const: u32,
        replace_top: bool,
    },
    Stash {
        local: bool,
        under: u32,
    },
    Unstash {
        local: bool,
    },
    PopTop {
        local: bool,
    },
}

impl Chunk<'_> {
    /// Whether the chunk belongs only to instrumented code (a region's original copy has none).
    fn instrumented_only(&self) -> bool {
        match *self {
            Chunk::Report { .. } => true,
            Chunk::Stash { local, .. } | Chunk::Unstash { local } | Chunk::PopTop { local } => local,
        }
    }

    /// Appends the instructions to `out`; returns the label the next instruction must carry
    /// (a guard's skip). `guard`: a report gets its own guard (outside regions).
    fn build(
        &self,
        inj: &Injector<'_>,
        code: &mut Code,
        at: crate::linetable::Position,
        guard: bool,
        out: &mut Vec<Instr>,
    ) -> Option<Label> {
        match self {
            Chunk::Report { fetch, site_const, replace_top } => {
                let skip = guard.then(|| code.new_label());
                if let Some(skip) = skip {
                    inj.guard(skip, at, out);
                }
                inj.call(fetch, *site_const, *replace_top, at, out);
                skip
            }
            Chunk::Stash { under, .. } => {
                inj.stash(*under, at, out);
                None
            }
            Chunk::Unstash { .. } => {
                out.extend(inj.unstash(at));
                None
            }
            Chunk::PopTop { .. } => {
                out.push(inj.pop_top(at));
                None
            }
        }
    }
}

/// The chunks before and after each instruction, in one list grouped by slot (`2i`: before
/// instruction `i`, `2i + 1`: after it): most instructions have none, and a `Vec` per
/// instruction cost an allocation per site.
struct Around<'a> {
    chunks: Vec<Chunk<'a>>,
    /// Slot `s` is `chunks[starts[s]..ends[s]]`.
    starts: Vec<u32>,
    ends: Vec<u32>,
}

impl<'a> Around<'a> {
    fn slot(i: usize, after: bool) -> usize {
        2 * i + after as usize
    }

    /// From `(slot, chunk)` pairs sorted by slot, for `n` instructions.
    fn new(n: usize, grouped: Vec<(usize, Chunk<'a>)>) -> Self {
        let mut starts = vec![0u32; 2 * n + 1];
        for &(slot, _) in &grouped {
            starts[slot + 1] += 1;
        }
        for s in 1..starts.len() {
            starts[s] += starts[s - 1];
        }
        let ends = starts[1..].to_vec();
        starts.pop();
        Around { chunks: grouped.into_iter().map(|(_, c)| c).collect(), starts, ends }
    }

    fn get(&self, slot: usize) -> &[Chunk<'a>] {
        &self.chunks[self.starts[slot] as usize..self.ends[slot] as usize]
    }

    fn before(&self, i: usize) -> &[Chunk<'a>] {
        self.get(Self::slot(i, false))
    }

    fn after(&self, i: usize) -> &[Chunk<'a>] {
        self.get(Self::slot(i, true))
    }

    /// Removes the reports before instruction `i` (a region's tail took them), keeping the
    /// order of the rest.
    fn drop_reports_before(&mut self, i: usize) {
        let slot = Self::slot(i, false);
        let (start, end) = (self.starts[slot] as usize, self.ends[slot] as usize);
        let mut kept = start;
        for k in start..end {
            if !matches!(self.chunks[k], Chunk::Report { .. }) {
                self.chunks.swap(kept, k);
                kept += 1;
            }
        }
        self.ends[slot] = kept as u32;
    }
}

/// Position and handler of the instruction an injected sequence serves.
type Served = (crate::linetable::Position, Option<crate::instr::HandlerId>);

/// The rewritten instruction list under construction.
struct Emitter<'a> {
    inj: &'a Injector<'a>,
    /// Whether the instruction being emitted takes out-of-line guards.
    out_of_line: bool,
    out: Vec<Instr>,
    injected: Vec<bool>,
    /// Out-of-line reports and region copies (`Facts::guards_out_of_line`), placed after the
    /// code.
    tail: Vec<Instr>,
    tail_injected: Vec<bool>,
}

impl Emitter<'_> {
    /// Append `chunk` for the instruction `served` (at its position, under its handler); the
    /// first appended instruction takes `label`.
    fn chunk(
        &mut self,
        chunk: &Chunk<'_>,
        code: &mut Code,
        served: Served,
        guard: bool,
        label: Option<Label>,
    ) -> Option<Label> {
        if guard && self.out_of_line {
            if let Chunk::Report { fetch, site_const, replace_top } = *chunk {
                return Some(self.report_out_of_line(fetch, site_const, replace_top, code, served, label));
            }
        }
        let first = self.out.len();
        let skip = chunk.build(self.inj, code, served.0, guard, &mut self.out);
        if label.is_some() {
            self.out[first].label = label;
        }
        self.serve(first, served.1);
        skip
    }

    /// A guarded report out of line: the guard here, the report after the code, jumping
    /// back to the label returned (the next instruction's).
    fn report_out_of_line(
        &mut self,
        fetch: &[Fetch],
        site_const: u32,
        replace_top: bool,
        code: &mut Code,
        served: Served,
        label: Option<Label>,
    ) -> Label {
        let (reports, back) = (code.new_label(), code.new_label());
        let first = self.out.len();
        self.inj.guard_out_of_line(reports, served.0, &mut self.out);
        self.out[first].label = label;
        self.serve(first, served.1);
        self.out_of_line(code, served, reports, |e, _| {
            let first = e.out.len();
            e.inj.call(fetch, site_const, replace_top, served.0, &mut e.out);
            e.out.push(e.inj.jump_back(back, served.0));
            e.serve(first, served.1);
        });
        back
    }

    /// Appends to the tail, labelled `start`: the out-of-line start, then what `emit` appends
    /// (to `out`, which stands for the tail meanwhile).
    fn out_of_line(&mut self, code: &mut Code, served: Served, start: Label, emit: impl FnOnce(&mut Self, &mut Code)) {
        std::mem::swap(&mut self.out, &mut self.tail);
        std::mem::swap(&mut self.injected, &mut self.tail_injected);
        // An unreachable NOP on the line starts the line's range here, so the start that a
        // debugger's jump to the line may land on (`frame.f_lineno = n` picks the start with the
        // deepest stack it is compatible with) is never this code, whose stack holds the
        // operands the line pushed before its report.
        self.out.push(Instr::new(self.inj.ops.nop, 0).at(served.0));
        self.injected.push(true);
        let first = self.out.len();
        let next = code.new_label();
        self.inj.out_of_line_start(next, served.0, &mut self.out);
        self.out[first].label = Some(start);
        self.serve(first, served.1);
        let body = self.out.len();
        emit(self, code);
        self.out[body].label = Some(next);
        std::mem::swap(&mut self.out, &mut self.tail);
        std::mem::swap(&mut self.injected, &mut self.tail_injected);
    }

    /// Injected instructions from `first` on serve an instruction under `handler`.
    fn serve(&mut self, first: usize, handler: Option<crate::instr::HandlerId>) {
        for s in &mut self.out[first..] {
            s.handler = handler;
        }
        self.injected.resize(self.out.len(), true);
    }

    /// COPY: region `r`'s instructions with their reports and stashes, no guards, and the
    /// reports of a block-ending jump at its tail. `after_code`: placed after the code, where
    /// a closing JUMP_FORWARD must jump back instead.
    #[allow(clippy::needless_range_loop)] // `k` names both an instruction and its chunk slots
    fn instrumented_copy(
        &mut self,
        r: &regions::Region,
        old: &[Instr],
        around: &mut Around<'_>,
        code: &mut Code,
        after_code: bool,
    ) {
        for k in r.start..r.end {
            let served = (old[k].position, old[k].handler);
            for chunk in around.before(k) {
                self.chunk(chunk, code, served, false, None);
            }
            let mut copy = old[k].clone();
            copy.label = None;
            if after_code && copy.op == self.inj.ops.jump_forward {
                copy.op = self.inj.ops.jump_back.expect("JUMP_BACKWARD_NO_INTERRUPT");
            }
            self.out.push(copy);
            self.injected.push(true);
            for chunk in around.after(k) {
                self.chunk(chunk, code, served, false, None);
            }
        }
        if r.tail {
            let served = (old[r.end].position, old[r.end].handler);
            for chunk in around.before(r.end).iter().filter(|c| matches!(c, Chunk::Report { .. })) {
                self.chunk(chunk, code, served, false, None);
            }
            around.drop_reports_before(r.end);
        }
    }

    /// `guard; ORIG; END` here and COPY after the code, jumping back to END
    /// (`Facts::guards_out_of_line`).
    fn region_out_of_line(&mut self, r: &regions::Region, old: &mut [Instr], around: &mut Around<'_>, code: &mut Code) {
        let copy = code.new_label();
        let served = (old[r.start].position, old[r.start].handler);
        let first = self.out.len();
        self.inj.guard_out_of_line(copy, served.0, &mut self.out);
        self.out[first].label = old[r.start].label.take();
        self.serve(first, served.1);
        let end = r.jump.then(|| *old[r.end].label.get_or_insert_with(|| code.new_label()));
        self.out_of_line(code, served, copy, |e, code| {
            e.instrumented_copy(r, old, around, code, true);
            if let Some(end) = end {
                let prev = e.out.last().expect("the region copy is not empty");
                let jump = Instr { handler: prev.handler, ..e.inj.jump_back(end, prev.position) };
                e.out.push(jump);
                e.injected.push(true);
            }
        });
        self.original(r, old, around, code, None);
    }

    /// ORIG: region `r`'s original instructions, moved here, plus the stashes that outlive the
    /// region; the first instruction emitted takes `label` (the inline guard's skip).
    #[allow(clippy::needless_range_loop)] // `k` names both an instruction and its chunk slots
    fn original(
        &mut self,
        r: &regions::Region,
        old: &mut [Instr],
        around: &Around<'_>,
        code: &mut Code,
        mut label: Option<Label>,
    ) {
        for k in r.start..r.end {
            let served = (old[k].position, old[k].handler);
            for chunk in around.before(k).iter().filter(|c| !c.instrumented_only()) {
                self.chunk(chunk, code, served, false, label.take());
            }
            let mut instr = std::mem::replace(&mut old[k], Instr::new(0, 0));
            if let Some(l) = label.take() {
                instr.label = Some(l);
            }
            self.out.push(instr);
            self.injected.push(false);
            for chunk in around.after(k).iter().filter(|c| !c.instrumented_only()) {
                self.chunk(chunk, code, served, false, None);
            }
        }
    }

    /// One instruction outside regions, each report behind its own guard. False: an
    /// after-report has nowhere to skip to.
    fn guarded(&mut self, mut instr: Instr, before: &[Chunk<'_>], after: &[Chunk<'_>], code: &mut Code) -> bool {
        // Whatever jumped to the instruction now enters its first report.
        let mut pending: Option<Label> = if before.is_empty() { None } else { instr.label.take() };
        let served = (instr.position, instr.handler);
        for chunk in before {
            pending = self.chunk(chunk, code, served, true, pending.take());
        }
        if pending.is_some() {
            instr.label = pending.take();
        }
        self.out.push(instr);
        self.injected.push(false);
        for chunk in after {
            pending = self.chunk(chunk, code, served, true, pending.take());
        }
        pending.is_none()
    }

    /// `guard; COPY; [JUMP_FORWARD END]; ORIG` for region `r` (the module docs).
    fn region(&mut self, r: &regions::Region, old: &mut [Instr], around: &mut Around<'_>, code: &mut Code) {
        if self.out_of_line {
            return self.region_out_of_line(r, old, around, code);
        }
        let orig = code.new_label();
        let first = self.out.len();
        self.inj.guard(orig, old[r.start].position, &mut self.out);
        self.out[first].label = old[r.start].label.take();
        self.serve(first, old[r.start].handler);
        self.instrumented_copy(r, old, around, code, false);
        if r.jump {
            let end = *old[r.end].label.get_or_insert_with(|| code.new_label());
            // Where the copy's last executed instruction is, so line events match ORIG's.
            let prev = self.out.last().expect("the region copy is not empty");
            let jump = Instr { handler: prev.handler, ..Instr::jump(self.inj.ops.jump_forward, end).at(prev.position) };
            self.out.push(jump);
            self.injected.push(true);
        }
        self.original(r, old, around, code, Some(orig));
        if r.pad {
            let last = self.out.last().expect("the region is not empty");
            let nop = Instr { handler: last.handler, ..Instr::new(self.inj.ops.nop, 0).at(last.position) };
            self.out.push(nop);
            self.injected.push(true);
        }
    }
}

#[cfg(test)]
mod tests;
