//! The search driver: decides every step of every execution, analyses races when
//! an execution ends, and backtracks to the deepest node with unexplored branches.

use super::event::{dependent, is_counted, AccessKind, Action, Key, ObjId, Op, Rename, ThreadId, SIZE, WHOLE, YIELD};
use super::report::{Deadlock, Failure, FailureKind, Outcome, Stats, Verdict};
use super::schedule::Schedule;
use super::state::{Event, Execution, Race};
use super::wakeup::{self, weak_initial, Branch};
use std::collections::HashMap;

#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Skip schedules with more than this many switches away from an enabled
    /// thread. Pruning makes the verdict inconclusive, never a pass.
    pub preemption_bound: Option<u32>,
    /// Stop after this many executions (inconclusive unless a failure was found).
    pub max_executions: Option<u64>,
}

/// What the runtime must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Let this thread perform its pending op (the engine has already recorded it).
    Run(ThreadId),
    /// Every thread has exited: call `end_execution`.
    Finished,
    /// Live threads remain but none can run: call `end_execution`.
    Deadlock(Deadlock),
    /// The program did not repeat a recorded step (it is nondeterministic):
    /// call `end_execution`; the search stops.
    Diverged(Divergence),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    pub step: usize,
    pub expected: Action,
    /// What `expected.thread` was parked at instead, if anything.
    pub found: Option<Op>,
}

/// Whether an access of kind `found` performs the plan's `expected`. Some kinds depend on
/// whether the key was there, which the order being explored decides (the other thread's
/// insertion of that key went first or not): a store is an insertion or a write, and a load
/// from a dict whose `__missing__` adds the key (a `defaultdict`) an insertion or a read. So an
/// insertion stands for either, and either for an insertion.
fn same_access(expected: AccessKind, found: AccessKind) -> bool {
    use AccessKind::{Insert, Read, Write};
    expected == found || matches!((expected, found), (Read | Write, Insert) | (Insert, Read | Write))
}

/// Whether `found` is the plan's `expected` op (up to `same_access`, and to the number of a
/// counted key: the same operation takes another item when the ones before came in another
/// order).
fn performs(expected: Op, found: Op) -> bool {
    match (expected, found) {
        (Op::Access { obj, key, kind }, Op::Access { obj: o, key: k, kind: f })
        | (Op::Announce { obj, key, kind }, Op::Announce { obj: o, key: k, kind: f }) => {
            obj == o && (key == k || is_counted(key) && is_counted(k)) && same_access(kind, f)
        }
        (Op::Accesses { group: e }, Op::Accesses { group: f }) => {
            let (e, f) = (e.accesses(), f.accesses());
            e.len() == f.len() && e.iter().zip(f.iter()).all(|(x, y)| performs(x.op(), y.op()))
        }
        _ => expected == found,
    }
}

/// The `(from, to)` pairs (`object_differences`) by which `found` becomes `expected`, if there
/// are any and renaming by them makes it so.
fn renaming(expected: Op, found: Op) -> Option<Vec<(ObjId, ObjId)>> {
    let pairs = object_differences(expected, found);
    let renamed = pairs.iter().fold(found, |op, &(from, to)| op.renamed(from, to));
    (!pairs.is_empty() && performs(expected, renamed)).then_some(pairs)
}

/// `(obj, from, to)` when `found` differs from `expected` only in its key (`from`; the plan's
/// is `to`), neither of them `WHOLE` or `SIZE`.
fn key_difference(expected: Op, found: Op) -> Option<(ObjId, Key, Key)> {
    if let (Op::Accesses { group: e }, Op::Accesses { group: f }) = (expected, found) {
        // The one key in which the two lists of accesses differ.
        let (e, f) = (e.accesses(), f.accesses());
        let mut difference = None;
        for (x, y) in e.iter().zip(f.iter()).filter(|(x, y)| x != y) {
            match (key_difference(x.op(), y.op()), difference) {
                (Some(d), None) => difference = Some(d),
                (Some(d), Some(known)) if d == known => {}
                _ if performs(x.op(), y.op()) => {}
                _ => return None,
            }
        }
        return difference.filter(|_| e.len() == f.len());
    }
    match (expected, found) {
        (Op::Access { obj, key: to, kind }, Op::Access { obj: o, key: from, kind: k })
        | (Op::Announce { obj, key: to, kind }, Op::Announce { obj: o, key: from, kind: k })
            if obj == o
                && same_access(kind, k)
                && from != to
                && ![from, to].iter().any(|&x| x == WHOLE || x == SIZE) =>
        {
            Some((obj, from, to))
        }
        _ => None,
    }
}

/// The `(from, to)` pairs by which `found` names objects `from` where `expected` names `to`
/// (the object of a plain op, or those of a list of accesses: a call that makes a file writes
/// the file and its directory, both fresh). Empty unless the pairs rename one-to-one, no
/// object both renamed and a name taken.
fn object_differences(expected: Op, found: Op) -> Vec<(ObjId, ObjId)> {
    let mut pairs: Vec<(ObjId, ObjId)> = Vec::new();
    if let (Op::Accesses { group: e }, Op::Accesses { group: f }) = (expected, found) {
        let (e, f) = (e.accesses(), f.accesses());
        if e.len() != f.len() {
            return Vec::new();
        }
        for pair in e.iter().zip(f.iter()).filter(|(x, y)| x.obj != y.obj).map(|(x, y)| (y.obj, x.obj)) {
            if !pairs.contains(&pair) {
                pairs.push(pair);
            }
        }
    } else if let (Some(from), Some(to)) = (found.object(), expected.object()) {
        pairs.push((from, to));
    }
    let one_to_one = pairs.iter().enumerate().all(|(i, &(from, to))| {
        from != to && pairs[i + 1..].iter().all(|&(f, t)| f != from && t != to) && pairs.iter().all(|&(f, _)| f != to)
    });
    if one_to_one {
        pairs
    } else {
        Vec::new()
    }
}

/// Where each thread's steps and each key's first use are in one execution.
struct Naming<'a> {
    events: &'a [Event],
    /// Per thread, the indices of its steps.
    steps: Vec<Vec<usize>>,
    /// The first step that accesses each (object, key).
    first_use: HashMap<(ObjId, Key), usize>,
}

impl<'a> Naming<'a> {
    fn of(events: &'a [Event]) -> Naming<'a> {
        let mut steps: Vec<Vec<usize>> = Vec::new();
        let mut first_use = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            if steps.len() <= e.thread {
                steps.resize(e.thread + 1, Vec::new());
            }
            steps[e.thread].push(i);
            for a in e.op.accesses().iter() {
                first_use.entry((a.obj, a.key)).or_insert(i);
            }
        }
        Naming { events, steps, first_use }
    }

    /// The branches below node `depth` as this execution names keys.
    fn below(&self, depth: usize) -> Projection<'_> {
        let at = self.steps.iter().map(|s| s.partition_point(|&i| i < depth)).collect();
        Projection { naming: self, depth, at, astray: Vec::new() }
    }
}

/// A wakeup tree read with the keys of the execution that just ended. A branch was made by an
/// earlier execution, which named a key first used past its node its own way (a fresh value:
/// an id from a global counter); compared with a sequence of this execution, one location
/// under two names would look independent, and the sequence covered. A branch's action reads
/// as the one its thread took at that place (its n-th step) in this execution when the two
/// differ only in the key, the branch's key is one this execution never uses (stale), this
/// execution's is not used before the node (where names are the plan's), and the thread's
/// steps on the way down were this execution's too (else it went another way: a failed
/// `acquire(blocking=False)` skips its release). The tree itself keeps its names: the runtime
/// renames as it replays.
struct Projection<'a> {
    naming: &'a Naming<'a>,
    depth: usize,
    /// Per thread, its next step's place in its steps.
    at: Vec<usize>,
    /// Threads whose steps on the way down differ from this execution's.
    astray: Vec<ThreadId>,
}

impl Projection<'_> {
    /// This execution's op at `branch`'s place, if the thread has not gone astray.
    fn here(&self, branch: &Action) -> Option<Op> {
        let t = branch.thread;
        if self.astray.contains(&t) {
            return None;
        }
        let at = self.at.get(t).copied().unwrap_or(0);
        self.naming.steps.get(t).and_then(|s| s.get(at)).map(|&i| self.naming.events[i].op)
    }
}

impl wakeup::View for Projection<'_> {
    fn name(&self, branch: &Action) -> Action {
        let Some((obj, from, to)) = self.here(branch).and_then(|op| key_difference(op, branch.op)) else {
            return *branch;
        };
        let first_use = &self.naming.first_use;
        let stale = !first_use.contains_key(&(obj, from));
        if stale && first_use.get(&(obj, to)).is_some_and(|&i| i >= self.depth) {
            Action { op: branch.op.rekeyed(obj, from, to), ..*branch }
        } else {
            *branch
        }
    }

    fn descend(&mut self, branch: &Action) {
        let t = branch.thread;
        let same =
            self.here(branch).is_some_and(|op| performs(op, branch.op) || key_difference(op, branch.op).is_some());
        if !same && !self.astray.contains(&t) {
            self.astray.push(t);
        }
        if self.at.len() <= t {
            self.at.resize(t + 1, 0);
        }
        self.at[t] += 1;
    }
}

/// Failures kept in full; later ones are only counted.
const KEPT_FAILURES: usize = 64;

/// One state of the current execution (after `depth` steps).
#[derive(Debug, Default)]
struct Node {
    /// Actions whose exploration from here is covered elsewhere.
    sleep: Vec<Action>,
    /// Wakeup tree: branches still to explore from here.
    pending: Vec<Branch>,
    preemptions: u32,
    /// Whether the previous step's thread could still run here.
    last_enabled: bool,
    /// Whether the previous step's thread was spinning or sleeping (switching is no preemption).
    last_yielded: bool,
}

#[derive(Debug)]
enum Mode {
    Explore,
    Replay { schedule: Schedule, started: bool },
}

/// The DPOR search. `Send + Sync`; its only global state is the process-wide table of
/// access lists (`Group`, behind a lock). Drive it from one thread at a time (e.g. under
/// the runtime's mutex). Calls out of protocol (choosing before
/// every live thread arrived, arriving twice, ...) panic. `end_execution` may come
/// early (say, after an exception); the rest of that execution is then not searched.
#[derive(Debug)]
pub struct Explorer {
    config: Config,
    mode: Mode,
    nodes: Vec<Node>,
    /// Steps the next execution replays before branching at `diverged_at`.
    prefix: Vec<Action>,
    diverged_at: usize,
    exec: Execution,
    /// (parent, n-th spawn) → id, kept across executions so ids are stable.
    child_ids: HashMap<(ThreadId, u32), ThreadId>,
    next_thread: ThreadId,
    running: bool,
    /// Step at which this execution went outside the optimal search.
    redundant_at: Option<usize>,
    deadlock: Option<Deadlock>,
    done: bool,
    enabled: Vec<ThreadId>,
    stats: Stats,
    failures: Vec<Failure>,
    /// Names taken over from the plan this step (`choose_with`), for the runtime.
    renames: Vec<Rename>,
    /// Threads of this execution that may be left waiting when the rest have exited.
    background: Vec<ThreadId>,
    /// A thread whose run is a fixed prologue (`setup()` run as a thread): the order of steps
    /// before it exits is taken as the first execution found it, not searched.
    prologue: Option<ThreadId>,
    /// Whether a key has been renamed to the plan's: keys are then fresh values, which each
    /// execution names its own way past its plan (`Projection`).
    keys_renamed: bool,
}

impl Explorer {
    pub fn new(config: Config) -> Explorer {
        Explorer {
            config,
            mode: Mode::Explore,
            nodes: vec![Node::default()],
            prefix: Vec::new(),
            diverged_at: 0,
            exec: Execution::new(),
            child_ids: HashMap::new(),
            next_thread: 1,
            running: false,
            redundant_at: None,
            deadlock: None,
            done: false,
            enabled: Vec::new(),
            stats: Stats::default(),
            failures: Vec::new(),
            renames: Vec::new(),
            background: Vec::new(),
            prologue: None,
            keys_renamed: false,
        }
    }

    /// Races whose later step comes before `thread` exits are not reversed: what happens
    /// before then is searched in one order only.
    pub fn set_prologue(&mut self, thread: ThreadId) {
        self.prologue = Some(thread);
    }

    /// An explorer that runs exactly one execution following `schedule`
    /// (then the lowest enabled thread, should the schedule end early).
    pub fn replay(schedule: Schedule) -> Explorer {
        let mut explorer = Explorer::new(Config::default());
        explorer.mode = Mode::Replay { schedule, started: false };
        explorer
    }

    /// Starts the next execution; `false` when the search is over. Afterwards
    /// thread 0 is live and must `arrive` at its first op.
    pub fn begin_execution(&mut self) -> bool {
        assert!(!self.running, "end_execution was not called");
        if self.done {
            return false;
        }
        match &mut self.mode {
            Mode::Replay { started: true, .. } => return false,
            Mode::Replay { started, .. } => *started = true,
            Mode::Explore => {
                // Every execution run counts, a redundant one too: the limit bounds the work.
                if self.config.max_executions.is_some_and(|max| self.stats.executions + self.stats.redundant >= max) {
                    self.stats.hit_max_executions = true;
                    self.done = true;
                    return false;
                }
            }
        }
        self.exec = Execution::new();
        self.background.clear();
        self.redundant_at = None;
        self.deadlock = None;
        self.running = true;
        true
    }

    /// The id the next `Spawn` of `parent` must name (stable across executions).
    pub fn child_id(&mut self, parent: ThreadId) -> ThreadId {
        let nth = self.exec.thread(parent).map_or(0, |t| t.spawned);
        let next = &mut self.next_thread;
        *self.child_ids.entry((parent, nth)).or_insert_with(|| {
            *next += 1;
            *next - 1
        })
    }

    /// `thread` is parked before `op`, its next visible operation.
    pub fn arrive(&mut self, thread: ThreadId, op: Op) {
        assert!(self.exec.is_live(thread), "thread {thread} is not live");
        if let Op::Spawn { child } = op {
            assert_eq!(child, self.child_id(thread), "Spawn must name child_id(parent)");
        }
        let state = self.exec.thread_mut(thread);
        assert!(state.pending.is_none(), "thread {thread} arrived twice");
        state.pending = Some(op);
        state.blocked = false;
        state.moves_on = false;
        state.mid_report = false;
        state.frame_state = None;
    }

    /// Says that `thread`'s pending op is a later step of the report whose earlier step it took
    /// last (a call's reads of several objects): the call reads them all after the last step.
    /// Unless a plan says otherwise, the thread goes on before any other (`arrive` clears it).
    pub fn mid_report(&mut self, thread: ThreadId) {
        self.exec.thread_mut(thread).mid_report = true;
    }

    /// Replaces the op `thread` arrived at, before it is chosen: what other threads did since
    /// changed which access it makes (a store into a dict that no longer holds the key inserts).
    pub fn change_pending(&mut self, thread: ThreadId, op: Op) {
        let state = self.exec.thread_mut(thread);
        assert!(state.pending.is_some(), "thread {thread} has not arrived");
        state.pending = Some(op);
    }

    /// Says that `thread`'s pending op also moves the thread on (the next element of a loop
    /// over a container, a generator's resumption): reading the same location again this way
    /// is progress, not a spin (`arrive` clears it).
    pub fn moves_on(&mut self, thread: ThreadId) {
        self.exec.thread_mut(thread).moves_on = true;
    }

    /// Whether `op`, a read, would read a location `thread` has read since anything it read
    /// last changed (the runtime then gives `frame_state`).
    pub fn rereads(&self, thread: ThreadId, op: Op) -> bool {
        self.exec.thread(thread).is_some_and(|t| t.rereads(op))
    }

    /// Gives a fingerprint of the frame that makes `thread`'s pending read (its local
    /// variables): a read of a location the thread read before, from a frame whose state
    /// changed since, is progress, not a spin (`arrive` clears it).
    pub fn frame_state(&mut self, thread: ThreadId, state: u64) {
        self.exec.thread_mut(thread).frame_state = Some(state);
    }

    /// Marks a parked thread as blocked (or not) on a wait the engine does not
    /// model itself (`arrive` clears it); locks and joins need no such calls.
    /// Report the wait as an access to the sync object that its waker writes, so
    /// the two are dependent. Reversals that would run a blocked op early are
    /// dropped (`Stats::infeasible`), so the steps that made it wait must race with it
    /// too, not only the last step before it: a thread still blocked when the execution
    /// ends races with every step its access conflicts with, and an op with counted keys
    /// (a queue's put or get) with every earlier write of its counts (`Execution::perform`).
    /// Express mutex-like waits as `Acquire`/`Release`.
    pub fn set_blocked(&mut self, thread: ThreadId, blocked: bool) {
        self.exec.thread_mut(thread).blocked = blocked;
    }

    /// `lock` was taken before the execution began (by `setup()`, or by the caller of the
    /// exploration) and not released: the root holds it until a thread releases it.
    pub fn held_before(&mut self, lock: u64) {
        self.exec.held_before(lock);
    }

    /// Whether every live thread has arrived, i.e. `choose` may be called.
    pub fn is_ready(&self) -> bool {
        self.exec.threads.iter().all(|t| t.life != super::state::Life::Live || t.pending.is_some())
    }

    /// Picks the thread to run next and records its op as performed.
    pub fn choose(&mut self) -> Choice {
        self.choose_with(&|_| false)
    }

    /// `choose`, where a thread's op may differ from the planned one only in the name of an
    /// object first named in this execution: its numbering follows first use, which another
    /// schedule changes (a list a thread makes, a lock a parent hands a child). The object is
    /// then renamed to the plan's name, if no performed op uses either name and `can_rename`
    /// agrees (when a pending op uses the plan's name, for another fresh object, the two trade
    /// names). Likewise an access that differs only in its key, if no performed
    /// op uses either key: the two keys trade names for the rest of the execution (a key
    /// made of a fresh value). `take_renames` lists what was renamed.
    pub fn choose_with(&mut self, can_rename: &dyn Fn(Rename) -> bool) -> Choice {
        assert!(self.running, "begin_execution was not called");
        let depth = self.exec.events.len();
        self.enabled.clear();
        let mut any_live = false;
        for t in 0..self.exec.threads.len() {
            if self.exec.is_live(t) {
                any_live = true;
                assert!(self.exec.threads[t].pending.is_some(), "thread {t} has not arrived");
                if self.exec.wait_reason(t).is_none() {
                    self.enabled.push(t);
                }
            }
        }
        if !any_live {
            return Choice::Finished;
        }
        let foreground = (0..self.exec.threads.len()).any(|t| self.exec.is_live(t) && !self.background.contains(&t));
        let sleeping = |t: ThreadId| matches!(self.exec.threads[t].pending, Some(Op::Access { obj: YIELD, .. }));
        let spinning = |t: ThreadId| self.exec.threads[t].spins_on();
        if !foreground && self.enabled.iter().all(|&t| sleeping(t) || spinning(t)) {
            // Only background threads are left, each waiting (idle pool workers), sleeping (a
            // daemon's heartbeat) or spinning on what none of them changes (a busy poll of a
            // flag no one will set): done, as at the program's exit.
            return Choice::Finished;
        }
        if self.enabled.is_empty() {
            let deadlock = self.exec.deadlock();
            self.deadlock = Some(deadlock.clone());
            return Choice::Deadlock(deadlock);
        }
        let forced = match &self.mode {
            Mode::Replay { schedule, .. } => match schedule.steps().get(depth) {
                Some(&nth) => match self.exec.spawn_order.get(nth) {
                    Some(&thread) => Some((thread, None)),
                    None => {
                        self.done = true;
                        let expected = Action::new(nth, Op::Exit);
                        return Choice::Diverged(Divergence { step: depth, expected, found: None });
                    }
                },
                None => None,
            },
            Mode::Explore => self.prefix.get(depth).map(|a| (a.thread, Some(a.op))),
        };
        if let Some((thread, op)) = forced {
            let mut found = self.exec.thread(thread).and_then(|t| t.pending);
            if let (Some(expected), Some(f)) = (op, found) {
                if self.enabled.contains(&thread) && self.rename_to_plan(expected, f, can_rename) {
                    found = self.exec.thread(thread).and_then(|t| t.pending);
                }
            }
            let expected_op = op.or(found);
            let performed = matches!((expected_op, found), (Some(e), Some(f)) if performs(e, f));
            if !self.enabled.contains(&thread) || !performed {
                let expected = Action::new(thread, expected_op.unwrap_or(Op::Exit));
                self.stats.diverged = true;
                self.done = true;
                return Choice::Diverged(Divergence { step: depth, expected, found });
            }
            self.rename_sleepers(depth);
            self.exec.perform(thread);
            self.exec.note_turn(thread, &self.enabled);
            return Choice::Run(thread);
        }
        let thread = match self.mode {
            Mode::Replay { .. } => self.enabled[0],
            Mode::Explore => match self.explore_step(depth, can_rename) {
                Ok(thread) => thread,
                Err(divergence) => {
                    self.stats.diverged = true;
                    self.done = true;
                    return Choice::Diverged(divergence);
                }
            },
        };
        self.exec.perform(thread);
        self.exec.note_turn(thread, &self.enabled);
        Choice::Run(thread)
    }

    /// A step at the frontier: follow the wakeup tree, else any awake thread.
    /// The op is performed by the caller.
    fn explore_step(&mut self, depth: usize, can_rename: &dyn Fn(Rename) -> bool) -> Result<ThreadId, Divergence> {
        let prev = depth.checked_sub(1).map(|i| self.exec.events[i].thread);
        let prev_enabled = prev.is_some_and(|p| self.enabled.contains(&p));
        let bound = self.config.preemption_bound;
        self.nodes[depth].last_enabled = prev_enabled;
        let node_preemptions = self.nodes[depth].preemptions;
        // A switch away from a spinning or sleeping thread is no preemption: it gave way. Nor is
        // one away from a thread that has just begun (threads start in any order for free), nor
        // one back to a thread part way through a report's steps (its own switch away counted).
        let prev_yields = depth
            .checked_sub(1)
            .map(|i| &self.exec.events[i])
            .is_some_and(|e| e.op == Op::Start || self.exec.threads[e.thread].yielding);
        self.nodes[depth].last_yielded = prev_yields;
        let mid_report: Vec<bool> = self.exec.threads.iter().map(|t| t.mid_report).collect();
        let preempts = |t: ThreadId| prev_enabled && !prev_yields && Some(t) != prev && !mid_report[t];
        let within_bound = |t: ThreadId| bound.is_none_or(|b| node_preemptions + preempts(t) as u32 <= b);
        let mut chosen = None;
        while !self.nodes[depth].pending.is_empty() {
            let mut branch = self.nodes[depth].pending.remove(0);
            let Action { thread, mut op } = branch.action;
            let mut found = self.exec.thread(thread).and_then(|t| t.pending);
            if let Some(f) = found.filter(|f| !performs(op, *f)) {
                if self.rename_to_plan(op, f, can_rename) {
                    found = self.exec.thread(thread).and_then(|t| t.pending);
                } else if let Some(renamed) = self.rekey_branch(&mut branch, f, can_rename) {
                    op = renamed;
                }
            }
            if let Some(f) = found.filter(|f| !performs(op, *f)) {
                if self.named_otherwise(op, f) {
                    // The branch was made in an execution that named this object otherwise (its
                    // first use came in another order), and it cannot take that name here: the
                    // branch is not followed, and a search that passes is not a proof.
                    self.stats.unfollowed += 1;
                    continue;
                }
            }
            if !found.is_some_and(|f| performs(op, f)) {
                // Same prefix, different next op: the program is not deterministic.
                return Err(Divergence { step: depth, expected: branch.action, found });
            }
            if !self.enabled.contains(&thread) {
                self.stats.infeasible += 1;
            } else if self.exec.unfair(thread, &self.enabled) {
                self.stats.unfair += 1;
            } else if !within_bound(thread) {
                self.stats.bounded = true;
            } else {
                chosen = Some((thread, branch.children));
                break;
            }
        }
        let node = &self.nodes[depth];
        let yielding = |t: ThreadId| self.exec.threads[t].yielding;
        let (thread, children) = match chosen {
            Some(c) => c,
            None => {
                let awake = |t: &ThreadId| self.redundant_at.is_none() && !node.sleep.iter().any(|s| s.thread == *t);
                // A thread that spins on while the only others that could change what it reads
                // are asleep (their turn here is explored in another branch) would spin for
                // ever: the rest of this execution is redundant, like one with every thread asleep.
                let steady_asleep = self.enabled.iter().any(|&t| !yielding(t) && !awake(&t));
                let stuck = |t: ThreadId| steady_asleep && self.exec.threads[t].spins_on();
                // The thread that ran last goes on, unless it spins or sleeps and another can
                // run. Threads that all spin or sleep take turns, the one that has waited
                // longest first: one polling in a loop does not keep one that slept from
                // waking up (to set what the first one polls).
                let fair = |t: ThreadId| !self.exec.unfair(t, &self.enabled);
                // Of the threads `ok` allows: the last one unless it yields, else one that does
                // not yield, else the one that has waited longest.
                // A thread part way through a report's steps goes first: its call reads after
                // the last step, so another thread's write between them would be ordered after
                // a read step although the call sees it.
                let mid = |t: ThreadId| mid_report[t] && !yielding(t);
                let pick_among = |ok: &dyn Fn(ThreadId) -> bool| {
                    prev.filter(|&p| prev_enabled && mid(p) && ok(p))
                        .or_else(|| self.enabled.iter().copied().find(|&t| mid(t) && ok(t)))
                        .or_else(|| prev.filter(|&p| prev_enabled && !yielding(p) && ok(p)))
                        .or_else(|| self.enabled.iter().copied().find(|&t| !yielding(t) && ok(t)))
                        .or_else(|| {
                            self.enabled
                                .iter()
                                .copied()
                                .filter(|&t| ok(t))
                                .min_by_key(|&t| self.exec.threads[t].last_step)
                        })
                };
                let open = |t: ThreadId| awake(&t) && within_bound(t) && !stuck(t) && fair(t);
                match pick_among(&open) {
                    Some(t) => (t, Vec::new()),
                    None => {
                        if self.redundant_at.is_none() {
                            if self.enabled.iter().any(|&t| awake(&t) && !stuck(t) && fair(t)) {
                                self.stats.bounded = true;
                            }
                            self.redundant_at = Some(depth);
                        }
                        // The rest only has to end: the same picks, with no one asleep or bounded.
                        let pick = pick_among(&fair).or(prev.filter(|_| prev_enabled));
                        (pick.unwrap_or(self.enabled[0]), Vec::new())
                    }
                }
            }
        };
        let action = Action::new(thread, self.exec.threads[thread].pending.expect("arrived"));
        self.rename_sleepers(depth);
        let sleep = self.nodes[depth].sleep.iter().filter(|s| !dependent(s, &action)).copied().collect();
        let preemptions = node_preemptions + preempts(thread) as u32;
        self.nodes.push(Node { sleep, pending: children, preemptions, ..Node::default() });
        self.stats.max_depth = self.stats.max_depth.max(depth + 1);
        Ok(thread)
    }

    /// Ends the current execution; analyses it and prepares the next one.
    pub fn end_execution(&mut self, outcome: Outcome) {
        assert!(self.running, "begin_execution was not called");
        self.running = false;
        let kind = match (outcome, self.deadlock.clone()) {
            (Outcome::Failure(message), _) => Some(FailureKind::Reported(message)),
            (Outcome::Ok, Some(deadlock)) => Some(FailureKind::Deadlock(deadlock)),
            (Outcome::Ok, None) => None,
        };
        if self.redundant_at.is_none() {
            self.stats.executions += 1;
        } else {
            self.stats.redundant += 1;
        }
        if self.deadlock.is_some() {
            self.stats.deadlocks += 1;
        }
        if let Some(kind) = kind {
            self.stats.failures += 1;
            if self.failures.len() < KEPT_FAILURES {
                let execution = self.stats.executions + self.stats.redundant;
                self.failures.push(Failure { execution, schedule: self.schedule(), kind });
            }
        }
        if self.done || matches!(self.mode, Mode::Replay { .. }) {
            self.done = true;
            return;
        }
        if self.redundant_at.is_none() {
            self.add_race_reversals();
        }
        if !self.backtrack() {
            self.done = true;
            self.stats.complete = true;
        }
    }

    /// For each new race e < e', make sure some branch before e explores e'
    /// first: insert notdep(e).e' into e's node unless a sleeping action covers it.
    fn add_race_reversals(&mut self) {
        let events = &self.exec.events;
        let new_races = self.exec.races.iter().filter(|r| r.second >= self.diverged_at);
        let performed = new_races.map(|r| (r.first, r.second, events[r.second].action()));
        let blocked = self.exec.blocked_races().into_iter().map(|(first, a)| (first, events.len(), a));
        // Before the prologue's thread exits (never, in an execution where it does not).
        let settled = self.prologue.map_or(0, |t| self.exec.exit_step(t).map_or(usize::MAX, |s| s + 1));
        let naming = self.keys_renamed.then(|| Naming::of(events));
        let lockstep_from = self.exec.lockstep_from.unwrap_or(usize::MAX);
        for (first, end, later) in performed.chain(blocked) {
            self.stats.races += 1;
            if end < settled {
                continue;
            }
            if end > lockstep_from {
                self.stats.lockstep_cut += 1;
                continue;
            }
            if end < events.len() && self.exec.spin_reread(first, end) {
                self.stats.spins_cut += 1;
                continue;
            }
            let e = &events[first];
            let mut seq: Vec<Action> =
                events[first + 1..end].iter().filter(|x| !x.is_after(e)).map(Event::action).collect();
            seq.push(later);
            let node = &mut self.nodes[first];
            if node.sleep.iter().any(|q| weak_initial(q, &seq).is_some()) {
                continue;
            }
            match &naming {
                Some(naming) => wakeup::insert_viewed(&mut node.pending, seq, &mut naming.below(first)),
                None => wakeup::insert(&mut node.pending, seq),
            };
        }
    }

    /// Moves to the deepest node with a pending branch; `false` if none is left.
    fn backtrack(&mut self) -> bool {
        let events = &self.exec.events;
        for depth in (0..events.len()).rev() {
            let node = &mut self.nodes[depth];
            node.sleep.push(events[depth].action());
            if let Some(bound) = self.config.preemption_bound {
                let prev = depth.checked_sub(1).map(|i| events[i].thread);
                let (preemptions, last_enabled) = (node.preemptions, node.last_enabled && !node.last_yielded);
                let before = node.pending.len();
                node.pending.retain(|b| {
                    let preempts = last_enabled && Some(b.action.thread) != prev;
                    preemptions + preempts as u32 <= bound
                });
                self.stats.bounded |= node.pending.len() != before;
            }
            if !node.pending.is_empty() {
                self.nodes.truncate(depth + 1);
                self.prefix = events[..depth].iter().map(Event::action).collect();
                self.diverged_at = depth;
                return true;
            }
        }
        false
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn verdict(&self) -> Verdict {
        if self.stats.failures > 0 {
            Verdict::Fail
        } else if self.stats.diverged {
            Verdict::Inconclusive("the program did not repeat a recorded schedule (nondeterminism)")
        } else if self.stats.hit_max_executions {
            Verdict::Inconclusive("max_executions reached before the search finished")
        } else if !self.stats.complete {
            Verdict::Inconclusive("the search has not finished")
        } else if self.stats.bounded {
            Verdict::Inconclusive("the preemption bound pruned some interleavings")
        } else if self.stats.unfollowed > 0 {
            Verdict::Inconclusive(
                "some interleavings could not be followed: an object they use was first used in another order \
                 and named otherwise (stats[\"unfollowed\"])",
            )
        } else {
            Verdict::Pass
        }
    }

    /// Failures found so far (the first 64 in full; `stats().failures` counts all).
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// Steps of the current (or just ended) execution.
    pub fn events(&self) -> &[Event] {
        &self.exec.events
    }

    /// Races of the current (or just ended) execution, ordered by their later event.
    pub fn races(&self) -> &[Race] {
        &self.exec.races
    }

    /// `thread`'s modelled time in the current execution, in seconds (`ThreadState::time`).
    pub fn time(&self, thread: ThreadId) -> f64 {
        self.exec.time(thread)
    }

    /// `thread` slept or timed out until `to`: its time moves on to it.
    pub fn raise_time(&mut self, thread: ThreadId, to: f64) {
        self.exec.raise_time(thread, to);
    }

    /// `thread`'s timed wait timed out at `deadline`: its time moves on to it, and its next step
    /// comes in time order with the ends of sleeps (`Execution::unfair`).
    pub fn time_out(&mut self, thread: ThreadId, deadline: f64) {
        self.exec.raise_time(thread, deadline);
        self.exec.thread_mut(thread).timed_out = true;
    }

    /// The latest modelled time of any thread of the current execution.
    pub fn latest_time(&self) -> f64 {
        self.exec.latest_time()
    }

    /// Whether step `a` happens before step `b` in the current execution.
    pub fn happens_before(&self, a: usize, b: usize) -> bool {
        a < b && self.exec.events[b].is_after(&self.exec.events[a])
    }

    /// Marks `thread` (of this execution) as a background thread (a daemon, a pool worker): an
    /// execution ends, rather than deadlocks, when only such threads are left and all wait.
    pub fn set_background(&mut self, thread: ThreadId) {
        if !self.background.contains(&thread) {
            self.background.push(thread);
        }
    }

    pub fn is_background(&self, thread: ThreadId) -> bool {
        self.background.contains(&thread)
    }

    /// A sleeping thread has not moved since it fell asleep: its entry is its pending op, named
    /// as in this execution (an earlier one may have named a fresh key otherwise).
    fn rename_sleepers(&mut self, depth: usize) {
        let threads = &self.exec.threads;
        // (A replay keeps no nodes.)
        let Some(node) = self.nodes.get_mut(depth) else { return };
        for s in &mut node.sleep {
            if let Some(op) = threads.get(s.thread).and_then(|t| t.pending) {
                s.op = op;
            }
        }
    }

    /// Renames `found`'s object (or key) to `expected`'s when they differ only there
    /// (`choose_with`).
    fn rename_to_plan(&mut self, expected: Op, found: Op, can_rename: &dyn Fn(Rename) -> bool) -> bool {
        if let Some((obj, from, to)) = key_difference(expected, found) {
            return self.rekey_to_plan(obj, from, to, can_rename);
        }
        let Some(pairs) = renaming(expected, found) else { return false };
        for &(from, to) in &pairs {
            let names = |op: &Op| op.mentions(from) || op.mentions(to);
            if self.exec.events.iter().any(|e| names(&e.op)) {
                return false;
            }
            // The plan's name is this execution's for another fresh object that only pending ops
            // name yet (a lock another thread is about to take, first reached here sooner than in
            // the plan's execution), or only a step still to come of a report made of several: the
            // two trade names, a one-to-one renaming of objects no step has used, so which ops
            // conflict stays as it was.
            let named_by_pending = self.exec.threads.iter().any(|t| t.pending.is_some_and(|p| p.mentions(to)));
            if named_by_pending || !can_rename(Rename::Object { from, to }) {
                return pairs.len() == 1 && self.trade_names(expected, found, from, to, can_rename);
            }
        }
        for &(from, to) in &pairs {
            self.rename_everywhere(|op| op.renamed(from, to));
            self.renames.push(Rename::Object { from, to });
        }
        true
    }

    /// Objects `from` (this execution's name) and `to` (the plan's) trade names, if the runtime
    /// allows it and neither holds lock state.
    fn trade_names(
        &mut self,
        expected: Op,
        found: Op,
        from: ObjId,
        to: ObjId,
        can_rename: &dyn Fn(Rename) -> bool,
    ) -> bool {
        if !performs(expected, found.swapped(from, to))
            || self.exec.has_lock_state(from)
            || self.exec.has_lock_state(to)
            || !can_rename(Rename::Objects { a: from, b: to })
        {
            return false;
        }
        self.rename_everywhere(|op| op.swapped(from, to));
        self.renames.push(Rename::Objects { a: from, b: to });
        true
    }

    /// Whether `found` is the branch's `expected` op but for the number of an object, where
    /// the two numbers are not both of objects this execution's steps have used: the same
    /// object, named otherwise by the execution the branch was made in (its first use came in
    /// another order), whose name here cannot be traded for the branch's. (Two objects that
    /// both took part already are two objects: nondeterminism.)
    fn named_otherwise(&self, expected: Op, found: Op) -> bool {
        let used = |n: u64| self.exec.events.iter().any(|e| e.op.mentions(n));
        renaming(expected, found).is_some_and(|pairs| pairs.iter().all(|&(from, to)| !(used(from) && used(to))))
    }

    /// Swaps keys `from` and `to` of `obj` for the rest of the execution, if neither was used
    /// on it yet: the swap is a one-to-one renaming, so which accesses conflict stays as it was.
    fn rekey_to_plan(&mut self, obj: ObjId, from: Key, to: Key, can_rename: &dyn Fn(Rename) -> bool) -> bool {
        if !can_rename(Rename::Keys { obj, from, to }) || self.uses_key(obj, from) || self.uses_key(obj, to) {
            return false;
        }
        self.rename_everywhere(|op| op.rekeyed(obj, from, to));
        self.renames.push(Rename::Keys { obj, from, to });
        self.keys_renamed = true;
        true
    }

    /// A branch made in an earlier execution may name a fresh key otherwise than this one has
    /// since (its first use came before the branch, at a step named differently then): when
    /// `found` differs from the branch's op only in that key, which this execution already uses
    /// and the branch's name not, the branch's two keys trade names. Returns the renamed op.
    fn rekey_branch(&mut self, branch: &mut Branch, found: Op, can_rename: &dyn Fn(Rename) -> bool) -> Option<Op> {
        let (obj, from, to) = key_difference(branch.action.op, found)?;
        if !can_rename(Rename::Keys { obj, from, to }) || !self.uses_key(obj, from) || self.uses_key(obj, to) {
            return None;
        }
        fn swap(branch: &mut Branch, obj: ObjId, a: Key, b: Key) {
            branch.action.op = branch.action.op.rekeyed(obj, a, b);
            for child in &mut branch.children {
                swap(child, obj, a, b);
            }
        }
        swap(branch, obj, from, to);
        self.keys_renamed = true;
        Some(branch.action.op)
    }

    /// Whether a step of this execution accessed key `key` of `obj`.
    fn uses_key(&self, obj: ObjId, key: Key) -> bool {
        self.exec.events.iter().any(|e| e.op.accesses().iter().any(|a| a.obj == obj && a.key == key))
    }

    /// Renames the pending ops, and the sleep entries along this execution (named as the
    /// pending ops were: `rename_sleepers`).
    fn rename_everywhere(&mut self, rename: impl Fn(Op) -> Op) {
        for t in &mut self.exec.threads {
            t.pending = t.pending.map(&rename);
        }
        for node in &mut self.nodes {
            for s in &mut node.sleep {
                s.op = rename(s.op);
            }
        }
    }

    /// The renames of the last `choose_with`, oldest first.
    pub fn take_renames(&mut self) -> Vec<Rename> {
        std::mem::take(&mut self.renames)
    }

    /// The replayable schedule of the current (or just ended) execution. It names
    /// threads by spawn order (main 0, then each child as its spawn ran), which
    /// equals the ids of `child_id` unless threads were discovered in another order.
    pub fn schedule(&self) -> Schedule {
        let order = &self.exec.spawn_order;
        let mut position = vec![0; order.iter().max().map_or(0, |m| m + 1)];
        for (nth, &thread) in order.iter().enumerate() {
            position[thread] = nth;
        }
        Schedule(self.exec.events.iter().map(|e| position[e.thread]).collect())
    }

    pub fn deadlock(&self) -> Option<&Deadlock> {
        self.deadlock.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::{counted, Access};

    fn op(accesses: &[(ObjId, Key)]) -> Op {
        let list: Vec<Access> =
            accesses.iter().map(|&(obj, key)| Access { obj, key, kind: AccessKind::Write }).collect();
        Op::accesses_of(&list)
    }

    #[test]
    fn a_queue_operation_is_the_plans_whichever_item_it_takes() {
        let (queue, gets) = (2, 7);
        let takes = |n| op(&[(queue, gets), (queue, counted(n))]);
        assert!(performs(takes(3), takes(5)));
        assert!(!performs(takes(3), op(&[(queue, gets), (queue, 3)])), "only counted keys are numbers");
        assert!(!performs(takes(3), op(&[(queue, 8), (queue, counted(3))])));
        assert!(!performs(takes(3), op(&[(queue, gets)])));
    }
}
