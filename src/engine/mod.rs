//! DPOR engine: explores every meaningfully different interleaving of a test's threads.
//!
//! Event model. At each scheduling point every live thread is parked before its next
//! visible [`Op`]: an `Access` to `(obj, key)` (`key == WHOLE` means all keys of `obj`),
//! `Acquire`/`Release`/`TryAcquire` of a lock, `Spawn`/`Join` of a thread, or `Exit`. Two actions of
//! different threads are *dependent* when they access the same location and one writes,
//! touch the same lock, or are spawn→child / exit→join. The engine models enabledness
//! itself for locks (held → acquire blocked; not reentrant: the runtime reports only the
//! outermost RLock acquire/release) and joins (child not exited). Other waits (conditions,
//! events, queues) are accesses to the sync object plus `set_blocked` from the runtime.
//! A deadlock is a state where threads are live but none is enabled; it is reported.
//!
//! Algorithm. Optimal DPOR (Abdulla, Aronis, Jonsson, Sagonas, JACM 2017): happens-before
//! by vector clocks; each new event's races are found on the fly from per-location
//! summaries (an acquire races with the previous acquire of its lock, since acquire and
//! release cannot swap; a try races with the latest acquire, release or try of its lock
//! by each other thread, and they with it; a thread left waiting for a lock in a deadlock races with the
//! acquire that took it). When an execution ends, each new race e < e' inserts
//! notdep(e).e' into the wakeup tree of the node before e unless its sleep set covers
//! it; backtracking follows wakeup trees depth-first. Result: one execution per
//! Mazurkiewicz trace, none blocked by sleep sets.
//!
//! Object names. The runtime numbers what the threads find when they begin, then other
//! objects by first use in an execution; another schedule changes that order for objects
//! made during the run, and `choose_with` gives an op
//! the plan's name for its object when that is the only difference and neither name is
//! used yet (the runtime follows with `take_renames`), instead of calling it nondeterminism.
//! Keys made of values that differ per execution (ids from a global counter, uuids) are
//! renamed the same way, by swapping two keys of one object for the rest of the execution.
//! What earlier executions left behind is named the way this one names it: a sleeping
//! thread's entry is its pending op, and a wakeup branch whose key this execution already
//! named otherwise takes that name. The brute-force proptests check one execution per trace
//! with keys that change every execution too.
//!
//! Driving it: `begin_execution`; each thread `arrive`s at its next op; when `is_ready`,
//! `choose` names the thread to run (and records its op as done); `end_execution` with
//! the outcome; repeat until `begin_execution` returns false. See [`Explorer`].

mod access;
mod event;
mod explorer;
mod report;
mod schedule;
pub mod sim;
mod state;
mod vclock;
mod wakeup;

pub use event::{
    counted, dependent, swapped, Access, AccessKind, AccessList, Action, Group, Key, KeyNames, LockId, ObjId, Op,
    Rename, ThreadId, IDENT_KEYS, LIVENESS, NO_ITEM, SIZE, WHOLE, YIELD,
};
pub use explorer::{Choice, Config, Divergence, Explorer};
pub use report::{Deadlock, Failure, FailureKind, Outcome, Stats, Verdict, WaitReason, Waiter};
pub use schedule::{ParseScheduleError, Schedule};
pub use state::{Event, Race};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explorer_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Explorer>();
    }
}
