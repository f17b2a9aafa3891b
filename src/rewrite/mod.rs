//! The rewriter: guarded report calls injected around shared-state accesses.
//!
//! `rewrite` takes one decoded code object and returns it with, before every selected
//! instruction, a report that costs two instructions while nothing listens
//! (`LOAD_GLOBAL __frontrun_on__; POP_JUMP_IF_FALSE`) and otherwise calls
//! `__frontrun_report__(*values, site)` with the values the instruction is about to use, read
//! from the stack, and a constant `site = (kind, line, name)`. Method calls keep a copy of their
//! receiver below the callable pair (the "stash") so the call and its result can be reported
//! with the receiver that is really on the stack.
//!
//! * `sites`: which instructions, by stack simulation;
//! * `inject`: the instruction sequences, per calling convention;
//! * `facts`: the only per-version facts outside the opcode tables;
//! * here: policy, the method tables, and splicing it all into the instruction list
//!   (labels, exception handlers, LOAD_FAST_BORROW).

pub mod facts;
pub mod inject;
pub mod ops;
pub mod sites;
pub mod verify;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use crate::instr::{Code, Instr, Label};

use facts::Facts;
use inject::Injector;
use sites::{Context, Fetch, Selector};

/// Bumped whenever injected code changes (it keys the rewritten-pyc cache).
pub const REWRITER_VERSION: u32 = 1;

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
    /// Values: the receiver (from the stash).
    Call = 15,
    /// Values: the receiver (from the stash), the returned object.
    CallReturn = 16,
    /// Values: the bound callable (receiver = its `__self__`); keyword and `*args` calls of a
    /// plain attribute load.
    CallBound = 17,
    /// Values: the callable, the first one or two positional arguments.
    BuiltinCall = 18,
    Inplace = 19,
    WithEnter = 20,
    NameLoad = 21,
    NameStore = 22,
    NameDelete = 23,
    /// Policy `all`: any other call. Values: its callable (or `self` for a method pair).
    CallSite = 24,
    /// `x in c` / `not in` (CONTAINS_OP). Values: the container.
    Contains = 25,
    /// GET_ITER (`for ... in c`, comprehensions, unpacking into a loop). Values: the iterable.
    Iter = 26,
}

impl SiteKind {
    pub const ALL: [SiteKind; 26] = [
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
        }
    }
}

/// FNV-1a: the rewriter hashes short names and small integers millions of times over a
/// stdlib; SipHash's flooding resistance buys nothing here.
#[derive(Default, Clone, Copy)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        self.0 = h;
    }
}

pub type FastHash = BuildHasherDefault<Fnv>;
pub type NameSet = HashSet<String, FastHash>;

/// Method names by role. The runtime classifies by the real receiver or callable; these only
/// decide where reports go.
pub struct MethodTables {
    pub resource: NameSet,
    pub container: NameSet,
    /// Synchronisation methods (reported as `call` before the call, like container methods).
    pub sync: NameSet,
    pub builtin: NameSet,
    /// Builtins that read their first argument's size or contents, reported only when called
    /// by a plain name (`len(x)`, not `obj.len(x)`).
    pub reading: NameSet,
    /// Every name above with the sets it is in (`sites::role` bits): one lookup per name.
    pub(crate) roles: HashMap<String, u8, FastHash>,
}

/// Resource methods reported before and after the call (with the returned object).
pub const DEFAULT_RESOURCE_METHODS: &[&str] = &[
    // DB-API
    "execute",
    "executemany",
    "executescript",
    "fetchone",
    "fetchmany",
    "fetchall",
    "commit",
    "rollback",
    "cursor",
    "close", // sockets
    "connect",
    "send",
    "sendall",
    "sendto",
    "recv",
    "recv_into",
    "recvfrom", // files
    "read",
    "readline",
    "readlines",
    "write",
    "writelines",
    "flush",
    "truncate",
    "seek",
];

/// Methods of list, dict, set, deque and bytearray that read or mutate the receiver.
pub const CONTAINER_METHODS: &[&str] = &[
    "append",
    "extend",
    "insert",
    "pop",
    "remove",
    "clear",
    "sort",
    "reverse",
    "copy",
    "count",
    "index",
    "update",
    "setdefault",
    "get",
    "keys",
    "values",
    "items",
    "popitem",
    "add",
    "discard",
    "difference_update",
    "intersection_update",
    "symmetric_difference_update",
    "union",
    "intersection",
    "difference",
    "symmetric_difference",
    "issubset",
    "issuperset",
    "isdisjoint",
    "appendleft",
    "popleft",
    "extendleft",
    "rotate",
];

/// Methods of locks, conditions, events, semaphores, queues and threads that may block or
/// observe another thread: the runtime must see them before the call enters C (it filters by
/// the receiver's type; a `str.join` report is dropped there).
pub const SYNC_METHODS: &[&str] = &[
    "acquire",
    "release",
    "locked",
    "wait",
    "notify",
    "notify_all",
    "set",
    "is_set",
    "get",
    "put",
    "get_nowait",
    "put_nowait",
    "join",
];

/// Callables (by the name they are called through) that read or write the state of their
/// first argument: the report carries the callable, whose identity the runtime checks.
pub const STATE_BUILTINS: &[&str] = &[
    "getattr",
    "setattr",
    "delattr",
    "hasattr",
    "getitem",
    "setitem",
    "delitem",
    "heappush",
    "heappop",
    "heapify",
    "heapreplace",
    "heappushpop",
    "insort",
    "insort_left",
    "insort_right",
];

/// Builtins whose result depends on a container's size or contents (a thread branching on
/// them must be seen reading the container). Positional calls only.
pub const READING_BUILTINS: &[&str] =
    &["len", "bool", "iter", "sorted", "list", "tuple", "set", "sum", "min", "max", "any", "all"];

impl MethodTables {
    pub fn new(extra_resources: &[String]) -> MethodTables {
        let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<NameSet>();
        let mut resource = set(DEFAULT_RESOURCE_METHODS);
        resource.extend(extra_resources.iter().cloned());
        let mut tables = MethodTables {
            resource,
            container: set(CONTAINER_METHODS),
            sync: set(SYNC_METHODS),
            builtin: set(STATE_BUILTINS),
            reading: set(READING_BUILTINS),
            roles: HashMap::default(),
        };
        use sites::role;
        for (names, bit) in [
            (&tables.builtin, role::BUILTIN),
            (&tables.resource, role::RESOURCE),
            (&tables.container, role::CONTAINER),
            (&tables.sync, role::CONTAINER),
            (&tables.reading, role::READING),
        ] {
            for name in names {
                *tables.roles.entry(name.clone()).or_insert(0) |= bit;
            }
        }
        tables
    }

    /// The `sites::role` bits of `name`.
    pub(crate) fn roles_of(&self, name: &str) -> u8 {
        self.roles.get(name).copied().unwrap_or(0)
    }
}

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
    pub deref_name: &'a dyn Fn(u32) -> Option<String>,
    pub policy: Policy,
    pub methods: &'a MethodTables,
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
        Context { names: input.names, deref_name: input.deref_name, policy: input.policy, methods: input.methods };
    let mut selection = Selector::new(&code, ops, facts, &ctx).map_err(RewriteError::Input)?.select();
    selection.reports.sort_by_key(|r| (r.at, r.after));
    if selection.reports.is_empty() {
        return Ok(None);
    }

    let on_name = input.names.len() as u32;
    let injector = Injector { table, ops, facts, on_name, report_name: on_name + 1 };

    // Site constants, deduplicated.
    let mut consts: Vec<SiteConst> = Vec::new();
    let mut const_index: HashMap<SiteConst, u32, FastHash> = HashMap::default();
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
    let mut delta = vec![0u32; n];
    for stash in &selection.stashes {
        let mut seen: HashSet<usize, FastHash> = HashSet::default();
        for &i in &stash.region {
            if !seen.insert(i) {
                continue;
            }
            if let Some(h) = code.instrs[i].handler {
                if code.handlers.get(h as usize).is_some_and(|h| h.depth > stash.slot) {
                    delta[i] += 1;
                }
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
    let mut before: Vec<Vec<Chunk>> = vec![Vec::new(); n];
    let mut after: Vec<Vec<Chunk>> = vec![Vec::new(); n];
    for (r, (_, index)) in selection.reports.iter().zip(&site_of) {
        let chunk = Chunk::Report { fetch: &r.fetch, site_const: *index };
        if r.after {
            after[r.at].push(chunk);
        } else {
            before[r.at].push(chunk);
        }
    }
    for s in &selection.stashes {
        before[s.load].push(Chunk::Stash);
        for end in &s.call_ends {
            if end.pop_after_pop_top {
                after[end.call_end + 1].push(Chunk::PopTop);
            } else {
                after[end.call_end].push(Chunk::Unstash);
            }
        }
    }
    for a in &mut after {
        // After-reports read the stash, so they run before it is dropped.
        a.sort_by_key(|c| !matches!(c, Chunk::Report { .. }));
    }

    let old = std::mem::take(&mut code.instrs);
    let mut out: Vec<Instr> = Vec::with_capacity(old.len() + selection.reports.len() * 10);
    let mut injected: Vec<bool> = Vec::with_capacity(out.capacity());
    for (i, mut instr) in old.into_iter().enumerate() {
        let at = instr.position;
        let handler = instr.handler;
        // Whatever jumped to the instruction now enters its first report.
        let mut pending: Option<Label> = if before[i].is_empty() { None } else { instr.label.take() };
        for chunk in &before[i] {
            let first = out.len();
            let skip = chunk.build(&injector, &mut code, at, &mut out);
            out[first].label = pending.take();
            pending = skip;
            for s in &mut out[first..] {
                s.handler = handler;
            }
            injected.resize(out.len(), true);
        }
        if pending.is_some() {
            instr.label = pending.take();
        }
        out.push(instr);
        injected.push(false);
        for chunk in &after[i] {
            let first = out.len();
            let skip = chunk.build(&injector, &mut code, at, &mut out);
            if pending.is_some() {
                out[first].label = pending.take();
            }
            pending = skip;
            for s in &mut out[first..] {
                s.handler = handler;
            }
            injected.resize(out.len(), true);
        }
        if pending.is_some() {
            return Err(RewriteError::Internal(format!("a report after instruction {i} has nowhere to skip to")));
        }
    }
    code.instrs = out;
    // Every CPython 3.10-3.15 stdlib code object passes this check before rewriting; after
    // it, a failure is a rewriter bug and the code object is left as it was.
    verify::check(&code).map_err(RewriteError::Internal)?;

    let sites = site_of.into_iter().map(|(s, _)| s).collect();
    Ok(Some(Rewritten { code, new_names: vec![GUARD_NAME, REPORT_NAME], new_consts: consts, sites, injected }))
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
    /// Name of a deref index (cell or free variable), if the code has any.
    pub deref_name: &'a dyn Fn(u32) -> Option<String>,
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
    let input =
        Input { names: parts.names, const_count: parts.const_count, deref_name: parts.deref_name, policy, methods };
    let Some(rw) = rewrite(decoded, &input)? else { return Ok(None) };
    let encoded = crate::encode::encode(&rw.code).map_err(|e| RewriteError::Internal(e.to_string()))?;
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

#[derive(Clone, Debug)]
enum Chunk<'a> {
    Report { fetch: &'a [Fetch], site_const: u32 },
    Stash,
    Unstash,
    PopTop,
}

impl Chunk<'_> {
    /// Appends the instructions to `out`; returns the label the next instruction must carry
    /// (a guard's skip).
    fn build(
        &self,
        inj: &Injector<'_>,
        code: &mut Code,
        at: crate::linetable::Position,
        out: &mut Vec<Instr>,
    ) -> Option<Label> {
        match self {
            Chunk::Report { fetch, site_const } => {
                let skip = code.new_label();
                inj.guard(skip, at, out);
                inj.call(fetch, *site_const, at, out);
                Some(skip)
            }
            Chunk::Stash => {
                out.push(inj.stash(at));
                None
            }
            Chunk::Unstash => {
                out.extend(inj.unstash(at));
                None
            }
            Chunk::PopTop => {
                out.push(inj.pop_top(at));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
