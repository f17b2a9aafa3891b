//! DPOR engine: explores every meaningfully different interleaving of a test's threads.
//!
//! Event model. At each scheduling point every live thread is parked before its next
//! visible [`Op`]: an `Access` to `(obj, key)` (`key == WHOLE` means all keys of `obj`),
//! `Acquire`/`Release` of a lock, `Spawn`/`Join` of a thread, or `Exit`. Two actions of
//! different threads are *dependent* when they access the same location and one writes,
//! touch the same lock, or are spawn→child / exit→join. The engine models enabledness
//! itself for locks (held → acquire blocked; not reentrant) and joins (child not exited);
//! other waits (conditions, events, queues) are declared by the runtime with
//! `set_blocked`, modelled as accesses to the sync object. A deadlock is a state where
//! threads are live but none is enabled; it ends the execution and is reported.
//!
//! Algorithm. Optimal DPOR (Abdulla, Aronis, Jonsson, Sagonas, JACM 2017): happens-before
//! via vector clocks; each new event's races are found on the fly (an acquire races with
//! the previous acquire of its lock, since acquire/release cannot swap); when an execution
//! ends, each race e < e' inserts notdep(e).e' into the wakeup tree before e unless the
//! sleep set already covers it; backtracking follows the wakeup trees. The result is one
//! execution per Mazurkiewicz trace, none blocked by sleep sets.
//!
//! Driving it: `begin_execution`; each thread `arrive`s at its next op; when `is_ready`,
//! `choose` names the thread to run (and records its op); `end_execution` with the
//! outcome. See [`Explorer`].

mod event;
mod explorer;
mod schedule;
mod state;
mod vclock;
mod wakeup;
pub mod sim;

pub use event::{dependent, AccessKind, Action, Key, LockId, ObjId, Op, ThreadId, WHOLE};
pub use explorer::{Choice, Config, Divergence, Explorer, Failure, FailureKind, Outcome, Stats, Verdict};
pub use schedule::{ParseScheduleError, Schedule};
pub use state::{Deadlock, Event, Race, WaitReason, Waiter};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explorer_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Explorer>();
    }
}
