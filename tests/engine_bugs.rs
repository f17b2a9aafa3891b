//! Bugs the search must find, and replay of their schedules.

use frontrun::engine::sim::{explore, replay, replay_explorer, Memory, Program, Report, SimOp};
use frontrun::engine::{Config, FailureKind, Op, Schedule, Verdict, WaitReason};

const X: (u64, u64) = (1, 0);
const RESULT: (u64, u64) = (9, 0);
const LOG: (u64, u64) = (3, 0);

/// Asserts a failure was found and that replaying its schedule string reproduces it.
fn assert_found_and_replays(program: &Program, report: &Report, invariant: &dyn Fn(&Memory) -> bool) {
    assert_eq!(report.verdict, Verdict::Fail, "{report:?}");
    for failure in &report.failures {
        let schedule: Schedule = failure.schedule.to_string().parse().unwrap();
        assert_eq!(replay(program, schedule, invariant), Some(failure.kind.clone()), "replaying {}", failure.schedule);
    }
}

fn counter(threads: usize) -> Program {
    Program::parallel(vec![vec![SimOp::Read(X), SimOp::WriteInc(X)]; threads])
}

#[test]
fn lost_update() {
    for threads in [2usize, 3] {
        let program = counter(threads);
        let invariant = move |m: &Memory| m.get(&X) == Some(&(threads as i64));
        let report = explore(&program, Config::default(), &invariant);
        assert_found_and_replays(&program, &report, &invariant);
        assert_eq!(report.failures[0].execution, 2, "{threads} threads: the second execution already loses an update");
        assert_eq!(report.stats.executions, if threads == 2 { 4 } else { 36 });
    }
}

#[test]
fn lost_update_explanation_names_the_racing_accesses() {
    let program = counter(2);
    let invariant = |m: &Memory| m.get(&X) == Some(&2);
    let report = explore(&program, Config::default(), &invariant);
    let explorer = replay_explorer(&program, report.failures[0].schedule.clone(), &invariant);
    let events = explorer.events();
    let on_x = |i: usize| matches!(events[i].op, Op::Access { obj: 1, .. });
    let races: Vec<_> = explorer.races().iter().filter(|r| on_x(r.first) && on_x(r.second)).collect();
    assert!(!races.is_empty());
    for race in races {
        assert_ne!(events[race.first].thread, events[race.second].thread);
        assert!(explorer.happens_before(race.first, race.second));
    }
}

#[test]
fn lock_order_deadlock() {
    let (a, b) = (100, 200);
    let t1 = vec![SimOp::Lock(a), SimOp::Lock(b), SimOp::Unlock(b), SimOp::Unlock(a)];
    let t2 = vec![SimOp::Lock(b), SimOp::Lock(a), SimOp::Unlock(a), SimOp::Unlock(b)];
    let program = Program::parallel(vec![t1, t2]);
    let report = explore(&program, Config::default(), &|_| true);
    assert_found_and_replays(&program, &report, &|_| true);
    let failure = &report.failures[0];
    assert!(failure.execution <= 3, "found in execution {}", failure.execution);
    let FailureKind::Deadlock(deadlock) = &failure.kind else { panic!("{failure:?}") };
    let mut locks: Vec<(u64, usize)> = deadlock
        .waiting
        .iter()
        .filter_map(|w| match w.reason {
            WaitReason::Lock { lock, owner } => {
                assert_eq!(w.op, Op::Acquire { lock });
                assert_ne!(owner, w.thread);
                Some((lock, w.thread))
            }
            _ => None,
        })
        .collect();
    locks.sort();
    assert_eq!(locks.len(), 2, "{deadlock}");
    assert_eq!((locks[0].0, locks[1].0), (a, b));
    assert_ne!(locks[0].1, locks[1].1);
    assert!(deadlock.to_string().contains("waits for lock 100"), "{deadlock}");
    assert_eq!(report.stats.deadlocks, 1, "{report:?}");
}

#[test]
fn self_deadlock_on_non_reentrant_lock() {
    let program = Program::parallel(vec![vec![SimOp::Lock(1), SimOp::Lock(1)]]);
    let report = explore(&program, Config::default(), &|_| true);
    let FailureKind::Deadlock(deadlock) = &report.failures[0].kind else { panic!() };
    assert!(deadlock.waiting.iter().any(|w| w.reason == WaitReason::Lock { lock: 1, owner: w.thread }));
}

fn three_preemption_bug() -> (Program, impl Fn(&Memory) -> bool) {
    let t1 = vec![SimOp::Append(LOG, 1); 3];
    let t2 = vec![SimOp::Append(LOG, 2); 2];
    (Program::parallel(vec![t1, t2]), |m: &Memory| m.get(&LOG) != Some(&12121))
}

#[test]
fn bug_needing_three_preemptions_found_by_default() {
    let (program, invariant) = three_preemption_bug();
    let report = explore(&program, Config::default(), &invariant);
    assert_found_and_replays(&program, &report, &invariant);
    assert_eq!(report.stats.executions, 10);
    assert_eq!(report.stats.failures, 1);
}

#[test]
fn preemption_bound_prunes_and_is_inconclusive() {
    let (program, invariant) = three_preemption_bug();
    let bounded = |b| explore(&program, Config { preemption_bound: Some(b), ..Config::default() }, &invariant);
    let report = bounded(2);
    assert_eq!(report.stats.failures, 0, "{report:?}");
    assert!(report.stats.bounded && report.stats.complete);
    assert!(matches!(report.verdict, Verdict::Inconclusive(_)), "{report:?}");
    assert!(report.stats.executions < 10);
    assert_eq!(bounded(3).verdict, Verdict::Fail);
}

#[test]
fn threads_start_in_any_order_without_preemptions() {
    // The reader running first is a failure that needs no preemption: where a thread's first
    // step falls after it began costs none.
    let writer = vec![SimOp::Write(X, 1)];
    let reader = vec![SimOp::Read(X), SimOp::WriteInc(RESULT)];
    let program = Program::parallel(vec![writer, reader]);
    let report = explore(&program, Config { preemption_bound: Some(0), ..Config::default() }, &|m| {
        m.get(&RESULT).copied() == Some(2)
    });
    assert_eq!(report.verdict, Verdict::Fail, "{report:?}");
}

#[test]
fn max_executions_is_inconclusive() {
    let report = explore(&counter(3), Config { max_executions: Some(5), ..Config::default() }, &|_| true);
    assert_eq!(report.stats.executions, 5);
    assert!(report.stats.hit_max_executions);
    assert!(matches!(report.verdict, Verdict::Inconclusive(r) if r.contains("max_executions")));
}

#[test]
fn lock_order_matters_without_contention() {
    // The producer publishes under the lock; the consumer takes the lock first and
    // finds nothing. The critical sections never overlap, yet both orders run.
    let producer = vec![SimOp::Lock(7), SimOp::Write(X, 1), SimOp::Unlock(7)];
    let consumer = vec![SimOp::Lock(7), SimOp::Read(X), SimOp::WriteInc(RESULT), SimOp::Unlock(7)];
    let program = Program::parallel(vec![producer, consumer]);
    let invariant = |m: &Memory| m.get(&RESULT) == Some(&2);
    let report = explore(&program, Config::default(), &invariant);
    assert_found_and_replays(&program, &report, &invariant);
    assert_eq!(report.stats.executions, 2);
    assert_eq!(report.stats.failures, 1);
    // Same without any shared data: the two lock orders are still explored.
    let t = vec![SimOp::Lock(7), SimOp::Unlock(7)];
    let report = explore(&Program::parallel(vec![t.clone(), t]), Config::default(), &|_| true);
    assert_eq!(report.stats.executions, 2);
}

#[test]
fn race_between_worker_and_the_thread_it_spawns() {
    let worker = vec![SimOp::Spawn(1), SimOp::Read(X), SimOp::WriteInc(X), SimOp::Join(1)];
    let child = vec![SimOp::Read(X), SimOp::WriteInc(X)];
    let program = Program { main: vec![SimOp::Spawn(0), SimOp::Join(0)], threads: vec![worker, child] };
    let invariant = |m: &Memory| m.get(&X) == Some(&2);
    let report = explore(&program, Config::default(), &invariant);
    assert_found_and_replays(&program, &report, &invariant);
    assert_eq!(report.stats.executions, 4);
    // Accesses before the spawn cannot race with the child.
    let worker = vec![SimOp::Read(X), SimOp::WriteInc(X), SimOp::Spawn(1), SimOp::Join(1)];
    let program =
        Program { main: vec![SimOp::Spawn(0), SimOp::Join(0)], threads: vec![worker, program.threads[1].clone()] };
    let report = explore(&program, Config::default(), &invariant);
    assert_eq!((report.verdict, report.stats.executions), (Verdict::Pass, 1));
}

#[test]
fn schedules_replay_whatever_order_threads_were_discovered_in() {
    // Each worker writes Z and then spawns a child; the children race on X. Which
    // worker spawns first differs between executions.
    const Z: (u64, u64) = (4, 0);
    let worker = |child| vec![SimOp::Write(Z, 1), SimOp::Spawn(child), SimOp::Join(child)];
    let child = vec![SimOp::Read(X), SimOp::WriteInc(X)];
    let program = Program {
        main: vec![SimOp::Spawn(0), SimOp::Spawn(1), SimOp::Join(0), SimOp::Join(1)],
        threads: vec![worker(2), worker(3), child.clone(), child],
    };
    let invariant = |m: &Memory| m.get(&X) == Some(&2);
    let report = explore(&program, Config::default(), &invariant);
    assert_eq!(report.stats.executions, 8);
    assert_eq!(report.stats.failures, 4);
    assert_found_and_replays(&program, &report, &invariant);
}
