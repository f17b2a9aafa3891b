//! A tiny program simulator that drives the explorer the way the runtime does:
//! used by the tests and the bench. A program is a main thread plus spawnable
//! threads, each a list of [`SimOp`]s over integer memory and one register.

use super::event::{counted, Access, AccessKind, Key, KeyNames, LockId, ObjId, Op, Rename, ThreadId};
use super::explorer::{Choice, Config, Explorer};
use super::report::{Failure, FailureKind, Outcome, Stats, Verdict};
use super::schedule::Schedule;
use std::collections::HashMap;

pub type Loc = (ObjId, Key);
pub type Memory = HashMap<Loc, i64>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimOp {
    /// register := memory[loc]
    Read(Loc),
    /// memory[loc] := value
    Write(Loc, i64),
    /// memory[loc] := register + 1
    WriteInc(Loc),
    /// memory[loc] := memory[loc] * 10 + digit, as one write (records order).
    Append(Loc, i64),
    /// memory[loc] := value, as an insertion (a dict's new key: ordered against every other
    /// insertion into the object).
    Insert(Loc, i64),
    /// memory[loc] := value, an insertion if memory has no `loc` when the thread arrives at it
    /// (as the runtime classifies a dict store when it is reported), else a write.
    Store(Loc, i64),
    Lock(LockId),
    Unlock(LockId),
    /// register := 1 if it took the free lock, else 0 (`acquire(blocking=False)`).
    TryLock(LockId),
    /// Releases the lock if this thread's `TryLock` of it took it; otherwise no op at all.
    UnlockIfTaken(LockId),
    /// Starts program thread `i` (an index into `Program::threads`).
    Spawn(usize),
    /// Waits for program thread `i`, spawned earlier by this thread.
    Join(usize),
    /// register := memory[first]; memory[second] := register + 1, as one event of two accesses
    /// (a call that reads its argument and writes its receiver: a report's last step).
    ReadWrite(Loc, Loc),
    /// Announces a read of `loc` (an earlier step of a report): no effect, no conflict.
    Announce(Loc),
    /// `while memory[loc] == 0: pass` (`sleep`: with a `time.sleep` after each read that
    /// sees 0): a busy wait, one read per round.
    SpinUntil(Loc, bool),
    /// Puts a token into the counted object `obj` (a semaphore's release, a queue's put): writes
    /// its count of puts and the token's number, as the runtime's counted steps do.
    Give(ObjId),
    /// register := 1 if it took the oldest token of `obj`, else 0 (`acquire(blocking=False)`,
    /// `get_nowait`): writes the count of takes and the number of the token it takes (or would
    /// take: a failed try is ordered as a take is), decided again whenever another thread has
    /// stepped.
    TryTake(ObjId),
    /// Takes the oldest token of `obj`, waiting for one (`acquire()`, `get()`): blocked while
    /// there is none; its op is a `TryTake`'s.
    Take(ObjId),
}

/// The keys of a counted object's counts of puts and takes (`SimOp::Give`, `SimOp::TryTake`).
pub const PUTS: Key = 0;
pub const TAKES: Key = 1;

#[derive(Clone, Debug, Default)]
pub struct Program {
    pub main: Vec<SimOp>,
    pub threads: Vec<Vec<SimOp>>,
}

impl Program {
    /// Main spawns every thread, then joins them all.
    pub fn parallel(threads: Vec<Vec<SimOp>>) -> Program {
        let n = threads.len();
        let main = (0..n).map(SimOp::Spawn).chain((0..n).map(SimOp::Join)).collect();
        Program { main, threads }
    }
}

pub type Invariant<'a> = &'a dyn Fn(&Memory) -> bool;

#[derive(Clone, Debug)]
pub struct Report {
    pub stats: Stats,
    pub verdict: Verdict,
    pub failures: Vec<Failure>,
}

/// Explores `program` to completion (or the config's limits).
pub fn explore(program: &Program, config: Config, invariant: Invariant) -> Report {
    let mut explorer = Explorer::new(config);
    while explorer.begin_execution() {
        run_once(&mut explorer, program, invariant);
    }
    Report { stats: explorer.stats().clone(), verdict: explorer.verdict(), failures: explorer.failures().to_vec() }
}

/// Runs `program` once along `schedule`; returns the failure it shows, if any.
pub fn replay(program: &Program, schedule: Schedule, invariant: Invariant) -> Option<FailureKind> {
    replay_explorer(program, schedule, invariant).failures().first().map(|f| f.kind.clone())
}

/// Like [`replay`], returning the explorer to inspect the execution's events and races.
pub fn replay_explorer(program: &Program, schedule: Schedule, invariant: Invariant) -> Explorer {
    let mut explorer = Explorer::replay(schedule);
    assert!(explorer.begin_execution());
    run_once(&mut explorer, program, invariant);
    explorer
}

struct Body<'p> {
    ops: &'p [SimOp],
    pc: usize,
    register: i64,
    /// Program thread index → engine id, for the threads this one spawned.
    children: HashMap<usize, ThreadId>,
    /// Locks this thread's `TryLock`s took and has not released.
    taken: Vec<LockId>,
    /// In a `SpinUntil(_, true)` round: the read saw 0, the sleep comes next.
    asleep: bool,
    /// Performed its `Start` (the root starts started).
    started: bool,
}

impl<'p> Body<'p> {
    fn new(ops: &'p [SimOp]) -> Body<'p> {
        Body { ops, pc: 0, register: 0, children: HashMap::new(), taken: Vec::new(), asleep: false, started: true }
    }
}

/// One execution: answers the explorer's choices until it finishes.
pub fn run_once(explorer: &mut Explorer, program: &Program, invariant: Invariant) {
    run_keyed(explorer, program, invariant, &mut Keys::Fixed);
}

/// `run_once` for a program whose keys are made of fresh values, as a global counter's ids
/// are: the engine sees key `fresh(loc)` for each access, another one in every execution, and
/// renames keys to its plan (`Rename::Keys`) as the runtime lets it. Returns the program's own
/// location of every read and write, in the order they ran.
pub fn run_once_fresh_keys(
    explorer: &mut Explorer,
    program: &Program,
    invariant: Invariant,
    fresh: &dyn Fn(Loc) -> Key,
) -> Vec<Loc> {
    let mut keys = Keys::Fresh { fresh, names: KeyNames::default(), ran: Vec::new() };
    run_keyed(explorer, program, invariant, &mut keys);
    match keys {
        Keys::Fresh { ran, .. } => ran,
        Keys::Fixed => unreachable!(),
    }
}

/// How a run names the keys it shows the engine.
enum Keys<'a> {
    Fixed,
    Fresh {
        fresh: &'a dyn Fn(Loc) -> Key,
        /// As the runtime keeps them.
        names: KeyNames,
        ran: Vec<Loc>,
    },
}

impl Keys<'_> {
    fn choose(&mut self, explorer: &mut Explorer) -> Choice {
        let Keys::Fresh { names, .. } = self else { return explorer.choose() };
        let choice = explorer.choose_with(&|r| matches!(r, Rename::Keys { .. }));
        for rename in explorer.take_renames() {
            if let Rename::Keys { obj, from, to } = rename {
                names.swap(obj, from, to);
            }
        }
        choice
    }

    fn name(&self, (obj, key): Loc) -> Key {
        match self {
            Keys::Fixed => key,
            Keys::Fresh { fresh, names, .. } => names.name(obj, fresh((obj, key))),
        }
    }
}

fn run_keyed(explorer: &mut Explorer, program: &Program, invariant: Invariant, keys: &mut Keys) {
    let mut memory = Memory::new();
    let mut owners: HashMap<LockId, ThreadId> = HashMap::new();
    let mut bodies: HashMap<ThreadId, Body> = HashMap::new();
    bodies.insert(0, Body::new(&program.main));
    arrive(explorer, &mut bodies, 0, keys, &memory);
    let clean_end = loop {
        match keys.choose(explorer) {
            Choice::Run(t) => {
                let body = bodies.get_mut(&t).expect("running thread has a body");
                if !body.started {
                    body.started = true;
                    arrive(explorer, &mut bodies, t, keys, &memory);
                    continue;
                }
                let Some(&op) = body.ops.get(body.pc) else {
                    continue; // performed Exit
                };
                body.pc += 1;
                if let (
                    Keys::Fresh { ran, .. },
                    SimOp::Read(loc)
                    | SimOp::Write(loc, _)
                    | SimOp::WriteInc(loc)
                    | SimOp::Append(loc, _)
                    | SimOp::Insert(loc, _)
                    | SimOp::Store(loc, _)
                    | SimOp::Announce(loc),
                ) = (&mut *keys, op)
                {
                    ran.push(loc);
                }
                if let (Keys::Fresh { ran, .. }, SimOp::ReadWrite(first, second)) = (&mut *keys, op) {
                    ran.extend([first, second]);
                }
                match op {
                    SimOp::SpinUntil(_, _) if body.asleep => {
                        body.asleep = false;
                        body.pc -= 1;
                    }
                    SimOp::SpinUntil(loc, sleep) => {
                        if memory_value(&memory, loc) == 0 {
                            body.pc -= 1;
                            body.asleep = sleep;
                        }
                    }
                    SimOp::Read(loc) => body.register = memory.get(&loc).copied().unwrap_or(0),
                    SimOp::ReadWrite(first, second) => {
                        body.register = memory_value(&memory, first);
                        memory.insert(second, body.register + 1);
                    }
                    SimOp::Announce(_) => {}
                    SimOp::Write(loc, value) | SimOp::Insert(loc, value) | SimOp::Store(loc, value) => {
                        memory.insert(loc, value);
                    }
                    SimOp::WriteInc(loc) => {
                        memory.insert(loc, body.register + 1);
                    }
                    SimOp::Append(loc, digit) => {
                        memory.insert(loc, memory_value(&memory, loc) * 10 + digit);
                    }
                    SimOp::Spawn(i) => {
                        let Some(Op::Spawn { child }) = explorer.events().last().map(|e| e.op) else { unreachable!() };
                        body.children.insert(i, child);
                        let ops = &program.threads[i];
                        bodies.insert(child, Body { started: false, ..Body::new(ops) });
                        explorer.arrive(child, Op::Start);
                    }
                    SimOp::Lock(lock) => {
                        owners.insert(lock, t);
                    }
                    SimOp::TryLock(lock) => {
                        let took = !owners.contains_key(&lock);
                        body.register = i64::from(took);
                        if took {
                            owners.insert(lock, t);
                            body.taken.push(lock);
                        }
                    }
                    SimOp::Unlock(lock) => {
                        owners.remove(&lock);
                    }
                    SimOp::UnlockIfTaken(lock) => {
                        owners.remove(&lock);
                        body.taken.retain(|&l| l != lock);
                    }
                    SimOp::Join(_) => {}
                    SimOp::Give(obj) => {
                        *memory.entry((obj, PUTS)).or_insert(0) += 1;
                    }
                    SimOp::TryTake(obj) | SimOp::Take(obj) => {
                        let took = has_token(&memory, obj);
                        body.register = i64::from(took);
                        if took {
                            *memory.entry((obj, TAKES)).or_insert(0) += 1;
                        }
                    }
                }
                arrive(explorer, &mut bodies, t, keys, &memory);
                // What other threads' counted steps do now, and whether they wait (the
                // runtime's `recheck_queue_steps`).
                for (&other, body) in &bodies {
                    let op = body.ops.get(body.pc).copied();
                    if let Some(SimOp::Give(obj) | SimOp::TryTake(obj) | SimOp::Take(obj)) = op {
                        if other != t && body.started {
                            explorer.change_pending(other, counted_op(body.ops[body.pc], obj, &memory));
                            if let Some(SimOp::Take(obj)) = op {
                                explorer.set_blocked(other, !has_token(&memory, obj));
                            }
                        }
                    }
                }
            }
            Choice::Finished | Choice::Deadlock(_) => break true,
            Choice::Diverged(_) => break false,
        }
    };
    let outcome = if clean_end && explorer.deadlock().is_none() && !invariant(&memory) {
        let sorted: std::collections::BTreeMap<_, _> = memory.iter().collect();
        Outcome::Failure(format!("invariant violated: {sorted:?}"))
    } else {
        Outcome::Ok
    };
    explorer.end_execution(outcome);
}

fn memory_value(memory: &Memory, loc: Loc) -> i64 {
    memory.get(&loc).copied().unwrap_or(0)
}

/// Parks thread `t` before its next op.
fn arrive(explorer: &mut Explorer, bodies: &mut HashMap<ThreadId, Body>, t: ThreadId, keys: &Keys, memory: &Memory) {
    let body = bodies.get_mut(&t).expect("arriving thread has a body");
    while let Some(SimOp::UnlockIfTaken(lock)) = body.ops.get(body.pc) {
        if body.taken.contains(lock) {
            break;
        }
        body.pc += 1; // the try failed: nothing to release
    }
    let op = match body.ops.get(body.pc) {
        None => Op::Exit,
        Some(&SimOp::SpinUntil(_, _)) if body.asleep => Op::read(super::event::YIELD, t as Key),
        Some(&SimOp::SpinUntil(loc, _)) => Op::read(loc.0, keys.name(loc)),
        Some(&SimOp::Read(loc)) => Op::read(loc.0, keys.name(loc)),
        Some(&SimOp::ReadWrite(first, second)) => Op::accesses_of(&[
            Access { obj: first.0, key: keys.name(first), kind: AccessKind::Read },
            Access { obj: second.0, key: keys.name(second), kind: AccessKind::Write },
        ]),
        Some(&SimOp::Announce(loc)) => Op::Announce { obj: loc.0, key: keys.name(loc), kind: AccessKind::Read },
        Some(&SimOp::Write(loc, _) | &SimOp::WriteInc(loc) | &SimOp::Append(loc, _)) => {
            Op::write(loc.0, keys.name(loc))
        }
        Some(&SimOp::Insert(loc, _)) => Op::insert(loc.0, keys.name(loc)),
        Some(&SimOp::Store(loc, _)) if memory.contains_key(&loc) => Op::write(loc.0, keys.name(loc)),
        Some(&SimOp::Store(loc, _)) => Op::insert(loc.0, keys.name(loc)),
        Some(&SimOp::Lock(lock)) => Op::Acquire { lock },
        Some(&SimOp::Unlock(lock) | &SimOp::UnlockIfTaken(lock)) => Op::Release { lock },
        Some(&SimOp::TryLock(lock)) => Op::TryAcquire { lock },
        Some(&SimOp::Spawn(_)) => Op::Spawn { child: explorer.child_id(t) },
        Some(&SimOp::Join(i)) => Op::Join { child: body.children[&i] },
        Some(&(op @ SimOp::Give(obj) | op @ SimOp::TryTake(obj) | op @ SimOp::Take(obj))) => {
            counted_op(op, obj, memory)
        }
    };
    explorer.arrive(t, op);
    if let Some(&SimOp::Take(obj)) = body.ops.get(body.pc) {
        explorer.set_blocked(t, !has_token(memory, obj));
    }
    if let Some(SimOp::SpinUntil(..)) = body.ops.get(body.pc) {
        // A spin's frame is the same every round (the runtime fingerprints a frame's locals).
        explorer.frame_state(t, body.pc as u64);
    }
}

fn has_token(memory: &Memory, obj: ObjId) -> bool {
    memory_value(memory, (obj, TAKES)) < memory_value(memory, (obj, PUTS))
}

/// A `Give`'s or a take's op in state `memory`.
fn counted_op(op: SimOp, obj: ObjId, memory: &Memory) -> Op {
    let count = if matches!(op, SimOp::Give(_)) { PUTS } else { TAKES };
    let number = memory_value(memory, (obj, count)) as u64;
    let write = |key| Access { obj, key, kind: AccessKind::Write };
    Op::accesses_of(&[write(count), write(counted(number))])
}
