//! Vector clocks: entry `t` counts the events of thread `t` that happen before
//! (or are) the clocked event. An event is identified by (thread, seq), seq ≥ 1.

use super::event::ThreadId;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VClock(Vec<u32>);

impl VClock {
    pub fn get(&self, thread: ThreadId) -> u32 {
        self.0.get(thread).copied().unwrap_or(0)
    }

    pub fn set(&mut self, thread: ThreadId, value: u32) {
        if self.0.len() <= thread {
            self.0.resize(thread + 1, 0);
        }
        self.0[thread] = value;
    }

    pub fn join(&mut self, other: &VClock) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// Whether event `seq` of `thread` happens before (or is) this clock's event.
    pub fn covers(&self, thread: ThreadId, seq: u32) -> bool {
        self.get(thread) >= seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_takes_pointwise_max_and_grows() {
        let mut a = VClock::default();
        a.set(0, 3);
        let mut b = VClock::default();
        b.set(0, 1);
        b.set(2, 5);
        a.join(&b);
        assert_eq!((a.get(0), a.get(1), a.get(2), a.get(9)), (3, 0, 5, 0));
        assert!(a.covers(2, 5) && !a.covers(2, 6) && !a.covers(1, 1));
    }
}
