//! Execution counts: exactly one execution per Mazurkiewicz trace.

use frontrun::engine::sim::{explore, Program, SimOp};
use frontrun::engine::{Config, Verdict};

const X: (u64, u64) = (1, 0);
const Y: (u64, u64) = (2, 0);

fn count(program: &Program) -> u64 {
    let report = explore(program, Config::default(), &|_| true);
    assert_eq!(report.verdict, Verdict::Pass, "{report:?}");
    assert_eq!(report.stats.redundant, 0, "sleep-set blocked executions: {report:?}");
    report.stats.executions
}

#[test]
fn two_threads_three_writes_each() {
    let t = vec![SimOp::Write(X, 1); 3];
    assert_eq!(count(&Program::parallel(vec![t.clone(), t])), 20);
}

#[test]
fn three_threads_one_write_each() {
    assert_eq!(count(&Program::parallel(vec![vec![SimOp::Write(X, 1)]; 3])), 6);
}

#[test]
fn crossed_writes_of_two_locations() {
    let t1 = vec![SimOp::Write(X, 1), SimOp::Write(Y, 1)];
    let t2 = vec![SimOp::Write(Y, 2), SimOp::Write(X, 2)];
    assert_eq!(count(&Program::parallel(vec![t1, t2])), 3);
}

#[test]
fn one_writer_n_readers() {
    for n in 1..=6u32 {
        let mut threads = vec![vec![SimOp::Write(X, 1)]];
        threads.extend((0..n).map(|_| vec![SimOp::Read(X)]));
        assert_eq!(count(&Program::parallel(threads)), 1 << n, "n = {n}");
    }
}

#[test]
fn read_then_write_threads() {
    for (threads, expected) in [(2, 4), (3, 36), (4, 576)] {
        let body = vec![SimOp::Read(X), SimOp::WriteInc(X)];
        assert_eq!(count(&Program::parallel(vec![body; threads])), expected, "{threads} threads");
    }
}

#[test]
fn disjoint_locations() {
    let threads = (0..4).map(|i| vec![SimOp::Read((10 + i, 0)), SimOp::Write((10 + i, 0), 1)]).collect();
    assert_eq!(count(&Program::parallel(threads)), 1);
}

#[test]
fn two_critical_sections_per_thread() {
    let cs = [SimOp::Lock(7), SimOp::Read(X), SimOp::WriteInc(X), SimOp::Unlock(7)];
    let body: Vec<SimOp> = cs.iter().chain(cs.iter()).copied().collect();
    assert_eq!(count(&Program::parallel(vec![body.clone(), body])), 6);
}

#[test]
fn empty_critical_sections_are_still_ordered() {
    let cs = [SimOp::Lock(7), SimOp::Unlock(7)];
    let body: Vec<SimOp> = cs.iter().chain(cs.iter()).copied().collect();
    assert_eq!(count(&Program::parallel(vec![body.clone(), body])), 6);
}

#[test]
fn one_lock_protecting_read_then_write() {
    let body = vec![SimOp::Lock(7), SimOp::Read(X), SimOp::WriteInc(X), SimOp::Unlock(7)];
    assert_eq!(count(&Program::parallel(vec![body.clone(), body])), 2);
}

#[test]
fn whole_object_access_conflicts_with_keys() {
    // A whole-object write vs. reads of two keys: 3 orders of the write among them... but
    // the reads commute, so the write is before both, between (2 ways) or after: 4.
    let threads = vec![vec![SimOp::Write((5, u64::MAX), 1)], vec![SimOp::Read((5, 1))], vec![SimOp::Read((5, 2))]];
    assert_eq!(count(&Program::parallel(threads)), 4);
    // Writes of different keys commute.
    let threads = vec![vec![SimOp::Write((5, 1), 1)], vec![SimOp::Write((5, 2), 1)]];
    assert_eq!(count(&Program::parallel(threads)), 1);
}

/// A busy wait (`while not flag: pass`, or with a sleep in the loop) for a flag another thread
/// sets after its data: a spinning thread gives way, and the search tries the write before
/// each of its first `SPIN_READS` reads and after them (4 traces), not once per extra round.
#[test]
fn busy_wait_for_a_flag_is_explored_in_a_few_executions() {
    const FLAG: (u64, u64) = (3, 0);
    const SEEN: (u64, u64) = (4, 0);
    for sleep in [false, true] {
        for data_first in [true, false] {
            let setter = if data_first {
                vec![SimOp::Write(X, 1), SimOp::Write(FLAG, 1)]
            } else {
                vec![SimOp::Write(FLAG, 1), SimOp::Write(X, 1)]
            };
            let waiter = vec![SimOp::SpinUntil(FLAG, sleep), SimOp::Read(X), SimOp::WriteInc(SEEN)];
            let program = Program::parallel(vec![setter, waiter]);
            let report = explore(&program, Config::default(), &|m| m.get(&SEEN).copied() == Some(2));
            let what = format!("sleep {sleep}, data first {data_first}: {report:?}");
            assert!(report.stats.complete, "{what}");
            assert_eq!(report.stats.redundant, 0, "{what}");
            if data_first {
                assert_eq!(report.verdict, Verdict::Pass, "{what}");
                assert_eq!(report.stats.executions, 4, "{what}");
            } else {
                // The flag seen before the data: the waiter reads X = 0.
                assert_eq!(report.verdict, Verdict::Fail, "{what}");
                assert!(report.stats.failures >= 1, "{what}");
            }
            assert!(report.stats.spins_cut >= 1, "{what}");
        }
    }
}

/// Two waiters on one flag: each may read it unset up to `SPIN_READS` times before the write.
#[test]
fn two_busy_waiters() {
    const FLAG: (u64, u64) = (3, 0);
    let setter = vec![SimOp::Write(FLAG, 1)];
    let waiter = vec![SimOp::SpinUntil(FLAG, false)];
    let report = explore(&Program::parallel(vec![setter, waiter.clone(), waiter]), Config::default(), &|_| true);
    assert_eq!(report.verdict, Verdict::Pass, "{report:?}");
    assert_eq!(report.stats.executions, 16, "{report:?}");
}
