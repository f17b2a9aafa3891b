//! What the search reports: outcomes, failures, deadlocks, statistics, verdict.

use super::event::{LockId, Op, ThreadId};
use super::schedule::Schedule;
use std::fmt;

/// How the runtime saw the execution end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failure(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureKind {
    Deadlock(Deadlock),
    /// Reported by the runtime (assertion, exception, invariant).
    Reported(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// 1-based number of the execution that failed.
    pub execution: u64,
    pub schedule: Schedule,
    pub kind: FailureKind,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Complete executions, one per explored Mazurkiewicz trace.
    pub executions: u64,
    /// Executions that ran into a sleep-set block (0 unless bounding or
    /// runtime-declared blocking interfered); not counted in `executions`.
    pub redundant: u64,
    /// Wakeup branches dropped because their thread could not run.
    pub infeasible: u64,
    pub failures: u64,
    pub deadlocks: u64,
    pub races: u64,
    /// Race reversals not tried because they would only make a spinning thread read an
    /// unchanged location once more (`state::SPIN_READS`).
    pub spins_cut: u64,
    /// Wakeup branches not taken because they would run a thread that has gone round
    /// (slept or spun) `state::FAIR_ROUNDS` times while another thread was ready to run and
    /// has not run since: schedules that starve a ready thread are not explored.
    pub unfair: u64,
    /// Race reversals not tried because their later step came after threads had gone round a
    /// try-and-back-off livelock `state::LOCKSTEP_ROUNDS` times in lockstep.
    pub lockstep_cut: u64,
    /// Wakeup branches not followed because an object they name has another number in this
    /// execution that it cannot trade for theirs (`Explorer::named_otherwise`); a search that
    /// passes with some is inconclusive.
    pub unfollowed: u64,
    pub max_depth: usize,
    /// The preemption bound pruned something.
    pub bounded: bool,
    /// `max_executions` stopped the search.
    pub hit_max_executions: bool,
    /// The program behaved nondeterministically under replay.
    pub diverged: bool,
    /// Every branch was explored (or pruned by the bound).
    pub complete: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    Inconclusive(&'static str),
}

/// Why a live thread cannot run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitReason {
    Lock {
        lock: LockId,
        owner: ThreadId,
    },
    Join {
        child: ThreadId,
    },
    /// The runtime marked the thread blocked (a wait the engine does not model).
    Blocked,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiter {
    pub thread: ThreadId,
    pub op: Op,
    pub reason: WaitReason,
}

/// No live thread is enabled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deadlock {
    pub waiting: Vec<Waiter>,
}

impl fmt::Display for Deadlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deadlock:")?;
        for w in &self.waiting {
            match w.reason {
                WaitReason::Lock { lock, owner } => {
                    write!(f, " thread {} waits for lock {lock} held by thread {owner};", w.thread)?
                }
                WaitReason::Join { child } => write!(f, " thread {} joins thread {child};", w.thread)?,
                WaitReason::Blocked => write!(f, " thread {} is blocked at {:?};", w.thread, w.op)?,
            }
        }
        Ok(())
    }
}
