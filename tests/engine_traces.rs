//! Optimality and completeness against brute force: on random small programs the
//! explorer runs exactly one execution per Mazurkiewicz trace (of the feasible
//! interleavings, with locks), and every trace is among them — also when the program's keys
//! are other values in every execution, as fresh ids are, and the engine renames them. With
//! tokens given and taken (a queue's or a semaphore's counted steps) every trace is among them.

use frontrun::engine::sim::{run_once, run_once_fresh_keys, Loc, Program, SimOp, TAKES};
use frontrun::engine::ThreadId;
use frontrun::engine::{counted, AccessKind, Config, Explorer, Op, SIZE, WHOLE};
use proptest::prelude::*;
use std::collections::{BTreeSet, HashMap, HashSet};

/// Oracle view of an op: an access to key `k` of one object (`WHOLE`: all keys)
/// or a lock operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Act {
    Read(u64),
    Write(u64),
    /// A write of a new key: also ordered against every other insertion.
    Insert(u64),
    /// A dict store: an `Insert` of a key not stored yet, else a `Write`. The engine is told
    /// which when the thread arrives at it (as the runtime classifies a store when it is
    /// reported), so a key stored in between makes it an insertion to the engine only: ordered
    /// against more than it needs, never less.
    Store(u64),
    Lock(u64),
    Unlock(u64),
    /// `acquire(blocking=False)`: takes the lock if free, never waits.
    TryLock(u64),
    /// Releases the lock if this thread's try took it (no event otherwise).
    UnlockIfTaken(u64),
    /// Starts / waits for the thread with this index (it starts nowhere else).
    Spawn(usize),
    Join(usize),
    /// A report's earlier step: announces a read of the key, conflicts with nothing.
    Announce(u64),
    /// A report's last step: reads the first key and writes the second, as one event.
    ReadWrite(u64, u64),
    /// A token put into counter `c` / a try to take one / a take that waits for one
    /// (`SimOp::Give`, `SimOp::TryTake`, `SimOp::Take`).
    Give(u64),
    TryTake(u64),
    Take(u64),
    /// What a give or take did: writes a count and a token's number (`counter_keys`).
    Counted(u64, u64),
}

/// The oracle's keys of counter `c`'s count of puts (or takes) and of its token `n`.
fn counter_keys(c: u64, takes: bool, n: u64) -> (u64, u64) {
    (10 + 2 * c + u64::from(takes), 100 + 10 * c + n)
}

/// The engine's object of counter `c`.
const COUNTERS: u64 = 2;

/// The single accesses an act makes.
fn parts(a: Act) -> Vec<Act> {
    match a {
        Act::ReadWrite(x, y) => vec![Act::Read(x), Act::Write(y)],
        Act::Counted(x, y) => vec![Act::Write(x), Act::Write(y)],
        Act::Announce(_) => Vec::new(),
        other => vec![other],
    }
}

fn conflict(a: Act, b: Act) -> bool {
    parts(a).into_iter().any(|x| parts(b).into_iter().any(|y| conflict_one(x, y)))
}

fn conflict_one(a: Act, b: Act) -> bool {
    use Act::*;
    match (a, b) {
        (Insert(_), Insert(_)) => true,
        // `len(d)` (a read of `SIZE`) against an insertion of any key.
        (Read(SIZE), Insert(_)) | (Insert(_), Read(SIZE)) => true,
        (Read(x), Write(y) | Insert(y))
        | (Write(x) | Insert(x), Read(y))
        | (Write(x) | Insert(x), Write(y))
        | (Write(x), Insert(y)) => x == y || x == WHOLE || y == WHOLE,
        (Lock(x) | Unlock(x) | TryLock(x) | UnlockIfTaken(x), Lock(y) | Unlock(y) | TryLock(y) | UnlockIfTaken(y)) => {
            x == y
        }
        _ => false,
    }
}

/// A trace: which events ran (per-thread counts) and the order of every dependent pair.
type TraceKey = (Vec<usize>, BTreeSet<((usize, usize), (usize, usize))>);

fn trace_key(threads: usize, run: &[(usize, Act)]) -> TraceKey {
    let mut counts = vec![0; threads];
    let ids: Vec<(usize, usize)> = run
        .iter()
        .map(|&(t, _)| {
            counts[t] += 1;
            (t, counts[t] - 1)
        })
        .collect();
    let mut pairs = BTreeSet::new();
    for i in 0..run.len() {
        for j in i + 1..run.len() {
            if run[i].0 != run[j].0 && conflict(run[i].1, run[j].1) {
                pairs.insert((ids[i], ids[j]));
            }
        }
    }
    (counts, pairs)
}

/// Every maximal feasible interleaving (including deadlocked ones), canonicalised.
fn brute_force(threads: &[Vec<Act>]) -> HashSet<TraceKey> {
    #[allow(clippy::too_many_arguments)]
    fn go(
        threads: &[Vec<Act>],
        started: &mut Vec<bool>,
        pcs: &mut Vec<usize>,
        owners: &mut HashMap<u64, usize>,
        taken: &mut HashSet<(usize, u64)>,
        stored: &mut Vec<u64>,
        counters: &mut HashMap<u64, (u64, u64)>,
        run: &mut Vec<(usize, Act)>,
        out: &mut HashSet<TraceKey>,
    ) {
        let mut any = false;
        for t in 0..threads.len() {
            if !started[t] {
                continue;
            }
            let Some(&act) = threads[t].get(pcs[t]) else {
                continue;
            };
            if let Act::UnlockIfTaken(l) = act {
                if !taken.contains(&(t, l)) {
                    // The try failed: the release is no event; the thread goes on.
                    pcs[t] += 1;
                    go(threads, started, pcs, owners, taken, stored, counters, run, out);
                    pcs[t] -= 1;
                    any = true;
                    continue;
                }
            }
            let mut took = false;
            let counter = match act {
                Act::Give(c) | Act::TryTake(c) | Act::Take(c) => counters.get(&c).copied().unwrap_or_default(),
                _ => (0, 0),
            };
            match act {
                Act::Join(c) if pcs[c] < threads[c].len() || !started[c] => continue,
                Act::Take(_) if counter.1 >= counter.0 => continue,
                Act::Spawn(c) => started[c] = true,
                Act::Lock(l) if owners.contains_key(&l) => continue,
                Act::Lock(l) => {
                    owners.insert(l, t);
                }
                Act::Unlock(l) => {
                    owners.remove(&l);
                }
                Act::UnlockIfTaken(l) => {
                    owners.remove(&l);
                    taken.remove(&(t, l));
                }
                Act::TryLock(l) if !owners.contains_key(&l) => {
                    owners.insert(l, t);
                    taken.insert((t, l));
                    took = true;
                }
                _ => {}
            }
            any = true;
            // What a store is when it runs: the key's first store inserts it.
            let done = match act {
                Act::Store(k) if stored.contains(&k) => Act::Write(k),
                Act::Store(k) => Act::Insert(k),
                Act::Give(c) => {
                    let (count, token) = counter_keys(c, false, counter.0);
                    Act::Counted(count, token)
                }
                Act::TryTake(c) | Act::Take(c) => {
                    let (count, token) = counter_keys(c, true, counter.1);
                    Act::Counted(count, token)
                }
                other => other,
            };
            match act {
                Act::Give(c) => counters.entry(c).or_default().0 += 1,
                Act::TryTake(c) | Act::Take(c) if counter.1 < counter.0 => counters.entry(c).or_default().1 += 1,
                _ => {}
            }
            let stores = matches!(done, Act::Write(_) | Act::Insert(_));
            if let Act::Write(k) | Act::Insert(k) = done {
                stored.push(k);
            }
            pcs[t] += 1;
            run.push((t, done));
            go(threads, started, pcs, owners, taken, stored, counters, run, out);
            run.pop();
            pcs[t] -= 1;
            if stores {
                stored.pop();
            }
            if let Act::Give(c) | Act::TryTake(c) | Act::Take(c) = act {
                counters.insert(c, counter);
            }
            match act {
                Act::Spawn(c) => started[c] = false,
                Act::Lock(l) => {
                    owners.remove(&l);
                }
                Act::Unlock(l) => {
                    owners.insert(l, t);
                }
                Act::UnlockIfTaken(l) => {
                    owners.insert(l, t);
                    taken.insert((t, l));
                }
                Act::TryLock(l) if took => {
                    owners.remove(&l);
                    taken.remove(&(t, l));
                }
                _ => {}
            }
        }
        if !any {
            out.insert(trace_key(threads.len(), run));
        }
    }
    let mut out = HashSet::new();
    let mut started: Vec<bool> = (0..threads.len()).map(|t| !is_spawned(threads, t)).collect();
    go(
        threads,
        &mut started,
        &mut vec![0; threads.len()],
        &mut HashMap::new(),
        &mut HashSet::new(),
        &mut Vec::new(),
        &mut HashMap::new(),
        &mut Vec::new(),
        &mut out,
    );
    out
}

fn is_spawned(threads: &[Vec<Act>], t: usize) -> bool {
    threads.iter().flatten().any(|&a| a == Act::Spawn(t))
}

fn to_sim(act: Act) -> SimOp {
    match act {
        Act::Read(k) => SimOp::Read((1, k)),
        Act::Write(k) => SimOp::Write((1, k), 1),
        Act::Insert(k) => SimOp::Insert((1, k), 1),
        Act::Store(k) => SimOp::Store((1, k), 1),
        Act::Lock(l) => SimOp::Lock(100 + l),
        Act::Unlock(l) => SimOp::Unlock(100 + l),
        Act::TryLock(l) => SimOp::TryLock(100 + l),
        Act::UnlockIfTaken(l) => SimOp::UnlockIfTaken(100 + l),
        Act::Spawn(t) => SimOp::Spawn(t),
        Act::Join(t) => SimOp::Join(t),
        Act::Announce(k) => SimOp::Announce((1, k)),
        Act::ReadWrite(x, y) => SimOp::ReadWrite((1, x), (1, y)),
        Act::Give(c) => SimOp::Give(COUNTERS + c),
        Act::TryTake(c) => SimOp::TryTake(COUNTERS + c),
        Act::Take(c) => SimOp::Take(COUNTERS + c),
        Act::Counted(..) => unreachable!("only the oracle's record of a give or take"),
    }
}

/// Runs the explorer; returns the canonical trace of every execution it ran, how many it
/// ran, and whether the search finished (it stops on a divergence).
fn explore_traces(threads: &[Vec<Act>], naming: Naming) -> (Vec<TraceKey>, u64, bool) {
    // Programs with stores write other keys only through them.
    let has_stores = threads.iter().flatten().any(|a| matches!(a, Act::Store(_)));
    // Main spawns the threads no other thread spawns, then joins them.
    let roots: Vec<usize> = (0..threads.len()).filter(|&t| !is_spawned(threads, t)).collect();
    let main = roots.iter().map(|&t| SimOp::Spawn(t)).chain(roots.iter().map(|&t| SimOp::Join(t))).collect();
    let program = Program { main, threads: threads.iter().map(|t| t.iter().copied().map(to_sim).collect()).collect() };
    let mut explorer = Explorer::new(Config::default());
    let mut keys = Vec::new();
    let mut execution = 0;
    while explorer.begin_execution() {
        execution += 1;
        let redundant_before = explorer.stats().redundant;
        // The program's own keys of its accesses, in order (the engine's may be renamed).
        let mut ran: std::vec::IntoIter<Loc> = match naming {
            Naming::Fixed => {
                run_once(&mut explorer, &program, &|_| true);
                Vec::new().into_iter()
            }
            _ => {
                let fresh = |(_, key): Loc| naming.key(execution, key);
                run_once_fresh_keys(&mut explorer, &program, &|_| true, &fresh).into_iter()
            }
        };
        let mut worker_of: HashMap<ThreadId, usize> = HashMap::new();
        let mut run = Vec::new();
        let mut stored = HashSet::new();
        for event in explorer.events() {
            match event.op {
                Op::Spawn { child } if event.thread == 0 => {
                    worker_of.insert(child, roots[worker_of.len()]);
                }
                Op::Spawn { child } => {
                    let parent = worker_of[&event.thread];
                    let nested = threads[parent]
                        .iter()
                        .find_map(|a| if let Act::Spawn(c) = a { Some(*c) } else { None })
                        .unwrap();
                    worker_of.insert(child, nested);
                    run.push((parent, Act::Spawn(nested)));
                }
                Op::Join { child } if event.thread != 0 => {
                    run.push((worker_of[&event.thread], Act::Join(worker_of[&child])))
                }
                Op::Access { key, kind, .. } => {
                    let key = match naming {
                        Naming::Fixed => key,
                        _ => ran.next().expect("an access the program made").1,
                    };
                    let act = match kind {
                        AccessKind::Read => Act::Read(key),
                        // A store, named after what it did (see `Act::Store`).
                        _ if has_stores && key != WHOLE && stored.insert(key) => Act::Insert(key),
                        _ if has_stores => Act::Write(key),
                        AccessKind::Insert => Act::Insert(key),
                        _ => Act::Write(key),
                    };
                    run.push((worker_of[&event.thread], act));
                }
                Op::Announce { key, .. } => {
                    let key = match naming {
                        Naming::Fixed => key,
                        _ => ran.next().expect("an access the program made").1,
                    };
                    run.push((worker_of[&event.thread], Act::Announce(key)));
                }
                Op::Accesses { group } if group.accesses()[0].obj >= COUNTERS => {
                    let [count, token] = group.accesses()[..] else { unreachable!("a count and a token") };
                    let number = token.key - counted(0);
                    let keys = counter_keys(count.obj - COUNTERS, count.key == TAKES, number);
                    run.push((worker_of[&event.thread], Act::Counted(keys.0, keys.1)));
                }
                Op::Accesses { group } => {
                    let keys: Vec<u64> = match naming {
                        Naming::Fixed => group.accesses().iter().map(|a| a.key).collect(),
                        _ => (0..2).map(|_| ran.next().expect("an access the program made").1).collect(),
                    };
                    run.push((worker_of[&event.thread], Act::ReadWrite(keys[0], keys[1])));
                }
                Op::Acquire { lock } => run.push((worker_of[&event.thread], Act::Lock(lock - 100))),
                Op::Release { lock } => run.push((worker_of[&event.thread], Act::Unlock(lock - 100))),
                Op::TryAcquire { lock } => run.push((worker_of[&event.thread], Act::TryLock(lock - 100))),
                _ => {}
            }
        }
        if explorer.stats().redundant == redundant_before {
            keys.push(trace_key(threads.len(), &run));
        }
    }
    // (A take that waits for a token can be planned where it has none yet: that execution
    // stops, redundant, when nothing else is left to run.)
    if !threads.iter().flatten().any(|a| matches!(a, Act::Take(_))) {
        assert_eq!(explorer.stats().redundant, 0, "{:?}", explorer.stats());
    }
    (keys, explorer.stats().executions, explorer.stats().complete)
}

/// How the program's keys look to the engine in execution `n` (from 1): the same, or values
/// that differ in every execution (ids from a global counter; reused values such as thread
/// idents, traded between keys), which the engine renames to its plan.
#[derive(Clone, Copy, Debug)]
enum Naming {
    Fixed,
    /// Key k is k + 1000·n: other values every time.
    Shifted,
    /// Keys 0 and 1 trade values in every other execution.
    Swapped,
}

impl Naming {
    fn key(self, execution: u64, key: u64) -> u64 {
        match self {
            _ if key == WHOLE || key == SIZE => key,
            Naming::Fixed => key,
            Naming::Shifted => key + 1000 * execution,
            Naming::Swapped if execution % 2 == 0 && key < 2 => key ^ 1,
            Naming::Swapped => key,
        }
    }
}

/// One execution per trace, whether the program's keys stay the same from one execution to
/// the next or are fresh values every time (renamed to the plan's as the runtime does).
fn check(threads: &[Vec<Act>]) -> Result<(), TestCaseError> {
    for naming in [Naming::Fixed, Naming::Shifted, Naming::Swapped] {
        check_named(threads, naming)?;
    }
    Ok(())
}

fn check_named(threads: &[Vec<Act>], naming: Naming) -> Result<(), TestCaseError> {
    let expected = brute_force(threads);
    let (keys, executions, _complete) = explore_traces(threads, naming);
    let distinct: HashSet<TraceKey> = keys.iter().cloned().collect();
    prop_assert_eq!(executions as usize, keys.len());
    // A store the engine took for an insertion (its key was stored after the thread arrived
    // at it) orders it against more than it did: two executions may then do the same. So may
    // two with gives and takes: the plan matches one by its count, whatever token it finds.
    if !threads.iter().flatten().any(|a| matches!(a, Act::Store(_) | Act::Give(_) | Act::TryTake(_) | Act::Take(_))) {
        prop_assert_eq!(
            distinct.len(),
            keys.len(),
            "an equivalent execution ran twice ({:?} keys): {:?}",
            naming,
            threads
        );
    }
    prop_assert_eq!(
        distinct.len(),
        expected.len(),
        "explored {} traces, brute force {}: {:?}",
        distinct.len(),
        expected.len(),
        threads
    );
    prop_assert!(distinct == expected, "different traces ({:?} keys): {:?}", naming, threads);
    Ok(())
}

fn access_of(keys: impl Strategy<Value = u64>) -> impl Strategy<Value = Act> {
    (any::<bool>(), keys).prop_map(|(write, k)| if write { Act::Write(k) } else { Act::Read(k) })
}

fn access() -> impl Strategy<Value = Act> {
    access_of(0..2u64)
}

/// Accesses with up to two lock-protected ranges (nested, disjoint or crossing),
/// at most `cap` ops in all.
fn locked_thread(cap: usize) -> impl Strategy<Value = Vec<Act>> {
    guarded_thread(cap, Just(false))
}

/// Like `locked_thread`, each range entered by a blocking acquire or a try
/// (`if lock.acquire(blocking=False)`, released only if taken).
fn trying_thread(cap: usize) -> impl Strategy<Value = Vec<Act>> {
    guarded_thread(cap, any::<bool>())
}

fn guarded_thread(cap: usize, tries: impl Strategy<Value = bool> + Clone) -> impl Strategy<Value = Vec<Act>> {
    let wrap = (0..2u64, 0..=3usize, 0..=3usize, tries);
    (prop::collection::vec(access(), 0..=3), prop::collection::vec(wrap, 0..=2)).prop_map(
        move |(mut accesses, mut wraps)| {
            while accesses.len() + 2 * wraps.len() > cap {
                if wraps.pop().is_none() {
                    accesses.pop();
                }
            }
            let n = accesses.len();
            // Sort key: (position * 2 [+1 for the access], order within position).
            let mut items: Vec<((usize, usize, usize), Act)> =
                accesses.into_iter().enumerate().map(|(i, a)| ((2 * i + 1, 0, 0), a)).collect();
            for (w, (lock, a, b, try_)) in wraps.into_iter().enumerate() {
                let (start, end) = (a.min(b).min(n), a.max(b).min(n));
                let (enter, exit) = if try_ {
                    (Act::TryLock(lock), Act::UnlockIfTaken(lock))
                } else {
                    (Act::Lock(lock), Act::Unlock(lock))
                };
                items.push(((2 * start, 1, w), enter));
                let after_lock = if start == end { 2 } else { 0 };
                items.push(((2 * end, after_lock, w), exit));
            }
            items.sort();
            items.into_iter().map(|(_, a)| a).collect()
        },
    )
}

/// Threads of reads, writes and reports of two steps (an announced read of a key, then one event
/// that reads it and writes another), as the runtime makes a call that reads its argument.
fn reporting_thread() -> impl Strategy<Value = Vec<Act>> {
    let key = || prop_oneof![Just(0u64), Just(1), Just(WHOLE)];
    let item = prop_oneof![
        access_of(key()).prop_map(|a| vec![a]),
        (key(), 0..2u64).prop_map(|(x, y)| vec![Act::Announce(x), Act::ReadWrite(x, y)]),
    ];
    prop::collection::vec(item, 0..=3).prop_map(|items| items.into_iter().flatten().collect())
}

/// Two threads plus a third that thread 0 spawns (and maybe joins) midway.
fn with_nested_child() -> impl Strategy<Value = Vec<Vec<Act>>> {
    (locked_thread(3), locked_thread(3), locked_thread(2), 0..=3usize, prop::option::of(0..=3usize)).prop_map(
        |(mut parent, other, child, at, join)| {
            let at = at.min(parent.len());
            parent.insert(at, Act::Spawn(2));
            if let Some(j) = join {
                parent.insert((at + 1 + j).min(parent.len()), Act::Join(2));
            }
            vec![parent, other, child]
        },
    )
}

/// Known gap: keys that trade values between executions can leave a branch planned under one
/// execution's names disagreeing with this one's (here the search diverges at its tenth
/// execution). The search then stops, unfinished (`nondeterminism` to the user): it never
/// claims to have covered traces it did not run.
#[test]
fn swapped_keys_that_confuse_a_plan_stop_the_search_unfinished() {
    use Act::*;
    let threads = vec![
        vec![Lock(1), Lock(0), Unlock(1), Unlock(0)],
        vec![Lock(0), Unlock(0), Write(0)],
        vec![Read(1), Read(0), TryLock(1), UnlockIfTaken(1)],
    ];
    let expected = brute_force(&threads);
    for naming in [Naming::Fixed, Naming::Shifted] {
        let (keys, _, complete) = explore_traces(&threads, naming);
        assert!(complete);
        assert_eq!(keys.into_iter().collect::<HashSet<_>>(), expected);
    }
    let (keys, _, complete) = explore_traces(&threads, Naming::Swapped);
    let explored: HashSet<TraceKey> = keys.into_iter().collect();
    assert!(explored == expected || !complete, "a finished search missed a trace");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn one_execution_per_trace(threads in (2..=3usize).prop_flat_map(|n| prop::collection::vec(prop::collection::vec(access(), 0..=4), n))) {
        check(&threads)?;
    }

    #[test]
    fn one_execution_per_trace_with_whole_object_accesses(threads in (2..=3usize).prop_flat_map(|n| prop::collection::vec(prop::collection::vec(access_of(prop_oneof![Just(0u64), Just(1), Just(WHOLE)]), 0..=4), n))) {
        check(&threads)?;
    }

    #[test]
    fn one_execution_per_trace_with_insertions(threads in (2..=3usize).prop_flat_map(|n| prop::collection::vec(prop::collection::vec(prop_oneof![access_of(prop_oneof![Just(0u64), Just(1), Just(2), Just(WHOLE)]), (0..3u64).prop_map(Act::Insert)], 0..=4), n))) {
        check(&threads)?;
    }

    #[test]
    fn one_execution_per_trace_with_stores_that_insert_or_write(threads in (2..=3usize).prop_flat_map(|n| prop::collection::vec(prop::collection::vec(prop_oneof![prop_oneof![Just(0u64), Just(1), Just(WHOLE)].prop_map(Act::Read), Just(Act::Write(WHOLE)), (0..2u64).prop_map(Act::Store)], 0..=4), n))) {
        check(&threads)?;
    }

    #[test]
    fn one_execution_per_trace_with_size_reads_and_insertions(threads in (2..=3usize).prop_flat_map(|n| prop::collection::vec(prop::collection::vec(prop_oneof![access_of(prop_oneof![Just(0u64), Just(1), Just(WHOLE)]), (0..2u64).prop_map(Act::Insert), Just(Act::Read(SIZE))], 0..=4), n))) {
        check(&threads)?;
    }

    #[test]
    fn one_execution_per_trace_with_size_reads_and_stores(threads in (2..=3usize).prop_flat_map(|n| prop::collection::vec(prop::collection::vec(prop_oneof![prop_oneof![Just(0u64), Just(SIZE), Just(WHOLE)].prop_map(Act::Read), Just(Act::Write(WHOLE)), (0..2u64).prop_map(Act::Store)], 0..=4), n))) {
        check(&threads)?;
    }

    #[test]
    fn one_execution_per_trace_with_reports_of_two_steps(threads in (2..=3usize).prop_flat_map(|n| prop::collection::vec(reporting_thread(), n))) {
        check(&threads)?;
    }

    #[test]
    fn one_execution_per_trace_with_a_nested_spawn(threads in with_nested_child()) {
        check(&threads)?;
    }

    #[test]
    fn one_execution_per_feasible_trace_with_tries_and_locks(threads in (2..=3usize).prop_flat_map(|n| prop::collection::vec(trying_thread(if n == 2 { 6 } else { 4 }), n))) {
        check(&threads)?;
    }

    #[test]
    fn one_execution_per_feasible_trace_with_locks(threads in (2..=3usize).prop_flat_map(|n| prop::collection::vec(locked_thread(if n == 2 { 6 } else { 4 }), n))) {
        check(&threads)?;
    }

    // A queue's or a semaphore's counted steps: every trace, each token taken by its number.
    #[test]
    fn every_trace_with_tokens_given_and_taken(threads in (2..=3usize).prop_flat_map(|n| prop::collection::vec(prop::collection::vec(token_act(), 0..=4), n))) {
        check_named(&threads, Naming::Fixed)?;
    }
}

fn token_act() -> impl Strategy<Value = Act> {
    prop_oneof![
        (0..2u64).prop_map(Act::Give),
        (0..2u64).prop_map(Act::TryTake),
        (0..2u64).prop_map(Act::Take),
        access()
    ]
}

#[test]
fn brute_force_agrees_with_known_counts() {
    let w = Act::Write(0);
    assert_eq!(brute_force(&[vec![w; 3], vec![w; 3]]).len(), 20);
    let rw = vec![Act::Read(0), Act::Write(0)];
    assert_eq!(brute_force(&[rw.clone(), rw.clone(), rw]).len(), 36);
    let deadlock = [
        vec![Act::Lock(0), Act::Lock(1), Act::Unlock(1), Act::Unlock(0)],
        vec![Act::Lock(1), Act::Lock(0), Act::Unlock(0), Act::Unlock(1)],
    ];
    assert_eq!(brute_force(&deadlock).len(), 3);
    check(&deadlock).unwrap();
}

/// A branch made by one execution names a key first used past its node as that execution
/// did; the same location comes under another name in a later one (keys of fresh values).
/// Compared by name, thread 0's write below would look independent of thread 2's read, and the
/// order "thread 2 reads and inserts between thread 0's insertion and its write" would be
/// taken for covered.
#[test]
fn fresh_keys_of_earlier_branches_are_named_as_this_execution_names_them() {
    use Act::*;
    check(&[vec![Insert(2), Write(1)], vec![Read(2), Read(0), Read(WHOLE)], vec![Read(1), Insert(0)]]).unwrap();
}
