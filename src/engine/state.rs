//! One execution as it unfolds: thread, lock and location state, the event list
//! with vector clocks, and the races each new event forms with earlier ones.

use super::access::Accesses;
use super::event::{
    dependent, is_counted, AccessKind, Action, Key, LockId, ObjId, Op, ThreadId, LIVENESS, SIZE, WHOLE, YIELD,
};
use super::report::{Deadlock, WaitReason, Waiter};
use super::vclock::VClock;
use std::collections::HashMap;

/// A performed operation, `step` being its index in the execution.
#[derive(Clone, Debug)]
pub struct Event {
    pub step: usize,
    pub thread: ThreadId,
    pub op: Op,
    /// Position of this event among its thread's events (1-based).
    seq: u32,
    clock: VClock,
    /// For a read: how often its thread has read this location with nothing it read changed
    /// since (1 for the first read, counting only reads from a frame in the same state), else 0.
    repeat: u32,
    /// The modelled time of the event (`ThreadState::time`).
    time: f64,
}

impl Event {
    pub fn action(&self) -> Action {
        Action::new(self.thread, self.op)
    }

    /// Whether `other` happens before (or is) this event.
    pub(crate) fn is_after(&self, other: &Event) -> bool {
        self.clock.covers(other.thread, other.seq)
    }
}

/// Two events of different threads that are adjacent in happens-before and could
/// have run in the other order: indices into the event list, `first < second`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Race {
    pub first: usize,
    pub second: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    Unborn,
    Live,
    Exited,
}

#[derive(Clone, Debug)]
pub(crate) struct ThreadState {
    pub life: Life,
    /// The op the thread is parked at, once it has arrived.
    pub pending: Option<Op>,
    /// Set by the runtime for waits the engine does not model.
    pub blocked: bool,
    /// Clock of the thread's latest event (of its spawn, before it has any).
    clock: VClock,
    seq: u32,
    exit_event: Option<usize>,
    pub spawned: u32,
    /// The locations the thread has read since anything it read last changed: location,
    /// reads, and the reading frame's state at the last of them. A thread that keeps reading
    /// the same ones is spinning (`yielding`).
    streak: Vec<(ObjId, Key, u32, Option<u64>)>,
    /// The pending op moves the thread on (`Explorer::moves_on`): it ends the streak.
    pub moves_on: bool,
    /// The pending op is a later step of one report (`Explorer::mid_report`).
    pub mid_report: bool,
    /// The state of the frame making the pending read (`Explorer::frame_state`).
    pub frame_state: Option<u64>,
    /// Steps at which `streak` started over (kept for `Execution::spin_reread`).
    streak_ends: Vec<usize>,
    /// Spinning or sleeping: the search lets the other threads run first, as a real scheduler
    /// would, until one of them changes what this one read (`Explorer`'s default pick).
    pub yielding: bool,
    /// The step of the thread's latest event: of the threads that yield, the one that has
    /// waited longest goes first.
    pub last_step: Option<usize>,
    /// Threads that were ready to run when this one went round (slept, or spun once more)
    /// and have not run since, with how many rounds it has gone since (`FAIR_ROUNDS`).
    pub overtaken: Vec<(ThreadId, u32)>,
    /// Locations the thread read that no one has written since, with the reading frame's
    /// state and `rounds` then: reading one again from a frame in the same state, with no other
    /// round in between, is a round of a loop that polls it while it works
    /// (`while not s.stop: s.count += 1`), for fairness only.
    polls: Vec<(ObjId, Key, Option<u64>, u32)>,
    /// The thread's latest step was such a round.
    polled: bool,
    /// Its sleeps, spin reads and failed tries of a lock so far.
    rounds: u32,
    /// Its steps since another thread's.
    run: u32,
    /// Modelled seconds since the execution began, as this thread sees them: moved on by its
    /// own sleeps and timeouts (`Execution::raise_time`), and to the time of every event that
    /// happens before its next one (a Lamport clock). Threads that sleep side by side do not
    /// add up their sleeps, and a thread that sees another's write is no earlier than it.
    time: f64,
    /// The pending step ends a timed wait that timed out, at `time` (`Execution::timed`).
    pub timed_out: bool,
    /// The owner of the lock the thread last failed to take with a try, unless a thread has
    /// got on since (`Execution::back_off`).
    backed_off: Option<ThreadId>,
    /// Its latest failed try: the lock, its owner and the state of the trying frame.
    last_failed_try: Option<(LockId, ThreadId, u64)>,
    /// That try repeated the one before it: same lock, same owner, and a frame in the same
    /// state (same place, same locals). A loop that goes round like this has not got on.
    stutters: bool,
    /// Its failed tries in lockstep since a thread last got on.
    lockstep_tries: u32,
}

/// Reads of one location, with nothing it read changed in between, that make a spin: the
/// thread yields, and the search does not try a further unchanged read of it before the write
/// that ends the spin (`Execution::spin_reread`).
pub const SPIN_READS: u32 = 3;
/// Rounds (sleeps, spin reads) a thread may go while another thread is ready to run and does
/// not: beyond them the search does not starve the other one (as a fair scheduler would not),
/// so a loop that sleeps between rounds of work is followed for this many rounds past the
/// point where the write that ends it could come, not for ever.
pub const FAIR_ROUNDS: u32 = 8;
/// Rounds of a try-and-back-off livelock (a failed try of a lock by a thread backing off from
/// one that has backed off from it, directly or round a cycle, with no thread getting on in
/// between; two threads at least) before the search stops reversing races in that execution
/// (`Execution::lockstep_from`): two threads that each hold one lock and try the other's go
/// round in lockstep for as long as the schedule says, and past a few rounds no real
/// scheduler keeps them in step.
pub const LOCKSTEP_ROUNDS: u32 = 4;
/// `FAIR_ROUNDS` for a thread whose latest failed try repeated the one before it
/// (`ThreadState::stutters`): each more round it goes while the owner waits only repeats it.
pub const STUTTER_ROUNDS: u32 = 2;
/// Steps a thread takes on its own before its polls of a flag count as rounds: a loop that
/// ends by itself (draining a list, filling one) is not cut short, one that waits for another
/// thread's write while it works is, after a hundred or so rounds.
const LONG_RUN: u32 = 300;
/// Reads of one unchanged location after which a spinning thread is taken to spin until
/// another thread changes something (`ThreadState::spins_on`).
const SPIN_FOREVER: u32 = 100;
/// A streak of more distinct locations than this is no spin: it starts over (and the linear
/// searches of the streak stay short).
const STREAK_LOCATIONS: usize = 32;

/// The location an op looks at without changing it, for spin detection: a read. (A lock
/// operation ends every streak, so a poll made of lock round trips is not followed.)
fn watched(op: Op) -> Option<(ObjId, Key)> {
    match op {
        Op::Access { obj, key, kind: AccessKind::Read } if obj != YIELD => Some((obj, key)),
        _ => None,
    }
}

impl ThreadState {
    /// Whether `op` reads a location in the thread's streak.
    pub fn rereads(&self, op: Op) -> bool {
        if let Op::Accesses { group } = op {
            return group.accesses().iter().any(|a| self.rereads(a.op()));
        }
        watched(op).is_some_and(|(obj, key)| {
            self.streak.iter().any(|&(o, k, _, _)| o == obj && k == key)
                || self.polls.iter().any(|&(o, k, _, _)| o == obj && k == key)
        })
    }

    /// Notes a read of `(obj, key)` from a frame in `state`; whether it is a poll round.
    fn poll(&mut self, obj: ObjId, key: Key, state: Option<u64>) -> bool {
        let rounds = self.rounds;
        // One entry per place in the round (a look at the same location twice a round,
        // `while s.x != 1 and s.x != 2`, is two places, each with its own frame state).
        let place = |&(o, k, last, _): &(ObjId, Key, Option<u64>, u32)| {
            o == obj && k == key && (state.is_none() || last.is_none() || last == state)
        };
        match self.polls.iter_mut().find(|p| place(p)) {
            Some((_, _, last, seen)) => {
                let round = state.is_some() && *last == state && *seen == rounds;
                *last = state.or(*last);
                *seen = rounds;
                round
            }
            None => {
                if self.polls.len() >= STREAK_LOCATIONS {
                    self.polls.clear();
                }
                self.polls.push((obj, key, state, rounds));
                false
            }
        }
    }

    /// Whether the thread has read one location `SPIN_FOREVER` times with nothing it read
    /// changed in between: going on with it alone would only repeat those reads.
    pub fn spins_on(&self) -> bool {
        self.yielding && self.streak.iter().any(|&(_, _, n, _)| n >= SPIN_FOREVER)
    }

    fn unborn() -> ThreadState {
        ThreadState {
            life: Life::Unborn,
            pending: None,
            blocked: false,
            clock: VClock::default(),
            seq: 0,
            exit_event: None,
            spawned: 0,
            streak: Vec::new(),
            moves_on: false,
            mid_report: false,
            frame_state: None,
            streak_ends: Vec::new(),
            yielding: false,
            last_step: None,
            overtaken: Vec::new(),
            polls: Vec::new(),
            polled: false,
            rounds: 0,
            run: 0,
            time: 0.0,
            timed_out: false,
            backed_off: None,
            last_failed_try: None,
            stutters: false,
            lockstep_tries: 0,
        }
    }
}

#[derive(Default, Debug)]
struct LockState {
    owner: Option<ThreadId>,
    last_acquire: Option<usize>,
    last_release: Option<usize>,
}

#[derive(Debug, Default)]
pub(crate) struct Execution {
    pub threads: Vec<ThreadState>,
    locks: HashMap<LockId, LockState>,
    accesses: Accesses,
    /// Lock operations as accesses of the lock: a try writes it, acquire and release read
    /// it. Finds the tries a lock operation can swap with, and the other way round.
    lock_uses: Accesses,
    pub events: Vec<Event>,
    pub races: Vec<Race>,
    /// Main, then each child in the order its spawn ran: schedules name threads by
    /// position here, which replays agree on whatever ids `child_id` handed out.
    pub spawn_order: Vec<ThreadId>,
    /// The step at which threads had gone round in lockstep `LOCKSTEP_ROUNDS` times: races of
    /// later steps are not reversed, as a fair scheduler's are not past `FAIR_ROUNDS`.
    pub lockstep_from: Option<usize>,
}

impl Execution {
    /// A fresh execution with only the main thread (0) alive, not yet arrived.
    pub fn new() -> Execution {
        let mut main = ThreadState::unborn();
        main.life = Life::Live;
        Execution { threads: vec![main], spawn_order: vec![0], ..Execution::default() }
    }

    /// The step at which `thread` exited, if it has.
    pub fn exit_step(&self, thread: ThreadId) -> Option<usize> {
        self.thread(thread).and_then(|t| t.exit_event)
    }

    pub fn thread(&self, thread: ThreadId) -> Option<&ThreadState> {
        self.threads.get(thread)
    }

    pub fn thread_mut(&mut self, thread: ThreadId) -> &mut ThreadState {
        &mut self.threads[thread]
    }

    /// Whether `thread`'s pending step ends at its time: the end of a sleep (a yield, whose
    /// thread's time is its end), or of a timed wait that timed out.
    pub fn timed(&self, thread: ThreadId) -> bool {
        self.thread(thread).is_some_and(|t| {
            t.timed_out || matches!(t.pending, Some(Op::Access { obj: YIELD, kind: AccessKind::Read, .. }))
        })
    }

    /// `thread`'s modelled time (`ThreadState::time`).
    pub fn time(&self, thread: ThreadId) -> f64 {
        self.thread(thread).map_or(0.0, |t| t.time)
    }

    /// Moves `thread`'s modelled time on to `to`, if it is behind it.
    pub fn raise_time(&mut self, thread: ThreadId, to: f64) {
        if let Some(t) = self.threads.get_mut(thread) {
            t.time = t.time.max(to);
        }
    }

    /// The latest time any thread has reached: once they are done, the time for everyone.
    pub fn latest_time(&self) -> f64 {
        self.threads.iter().map(|t| t.time).fold(0.0, f64::max)
    }

    pub fn is_live(&self, thread: ThreadId) -> bool {
        self.thread(thread).is_some_and(|t| t.life == Life::Live)
    }

    /// `lock` is held by the root (thread 0) from the start: taken before the execution.
    pub fn held_before(&mut self, lock: u64) {
        self.locks.entry(lock).or_default().owner = Some(0);
    }

    /// Whether this execution has a state for `lock` (taken, or held before it began).
    pub fn has_lock_state(&self, lock: u64) -> bool {
        self.locks.contains_key(&lock)
    }

    /// Why `thread` (live, arrived) cannot run now, or `None` if it can.
    pub fn wait_reason(&self, thread: ThreadId) -> Option<WaitReason> {
        let state = &self.threads[thread];
        if state.blocked {
            return Some(WaitReason::Blocked);
        }
        match state.pending? {
            Op::Acquire { lock } => {
                let owner = self.locks.get(&lock).and_then(|l| l.owner)?;
                Some(WaitReason::Lock { lock, owner })
            }
            Op::Join { child } => match self.thread(child).map(|c| c.life) {
                Some(Life::Exited) => None,
                _ => Some(WaitReason::Join { child }),
            },
            _ => None,
        }
    }

    pub fn deadlock(&self) -> Deadlock {
        let waiting = (0..self.threads.len())
            .filter(|&t| self.is_live(t))
            .filter_map(|t| {
                let op = self.threads[t].pending?;
                Some(Waiter { thread: t, op, reason: self.wait_reason(t)? })
            })
            .collect();
        Deadlock { waiting }
    }

    /// Races of operations that never happened: a thread left waiting for a lock (in a
    /// deadlock) races with the acquisition that took it, so the search also tries granting
    /// the lock to the waiter first; a thread left blocked at an access (a queue's get whose
    /// item another get took) races with every step that conflicts with it and is not before
    /// it, so the search also tries that access first. Pairs (earlier step, waiter's action).
    pub fn blocked_races(&self) -> Vec<(usize, Action)> {
        let mut races = Vec::new();
        for (thread, state) in self.threads.iter().enumerate() {
            let (Some(op), Life::Live) = (state.pending, state.life) else {
                continue;
            };
            let waiter = Action::new(thread, op);
            let concurrent = |e: &Event| e.thread != thread && !state.clock.covers(e.thread, e.seq);
            match op {
                Op::Acquire { lock } => {
                    let last = self.locks.get(&lock).and_then(|l| l.owner.and(l.last_acquire));
                    races.extend(last.filter(|&first| concurrent(&self.events[first])).map(|first| (first, waiter)));
                }
                // Any of them may be the one that took what it waits for.
                Op::Access { .. } | Op::Accesses { .. } if state.blocked => races.extend(
                    self.events
                        .iter()
                        .filter(|e| concurrent(e) && dependent(&e.action(), &waiter))
                        .map(|e| (e.step, waiter)),
                ),
                _ => {}
            }
        }
        races
    }

    /// Performs `thread`'s pending op: updates the model, the clocks and the races.
    pub fn perform(&mut self, thread: ThreadId) -> usize {
        let step = self.events.len();
        let op = self.threads[thread].pending.take().expect("thread has not arrived");
        let before = self.threads[thread].clock.clone();
        let seq = self.threads[thread].seq + 1;
        let mut deps = Vec::new();
        // Lock acquisitions race with the previous acquisition, not with the release
        // in between: swapping acquire and release is never possible.
        let mut lock_race = None;
        // Events this one could have run before: its access dependencies, and for a lock
        // operation the tries of that lock (or, for a try, every lock operation since).
        let mut racing = Vec::new();
        // A queue's put or get (it makes a counted item) may have waited for its turn: it races
        // with every put or get before it (its count's writes), even when a look at the queue
        // or another put or get came in between (as an acquisition races with the previous
        // one, but further back: a reversal to just before the last one may find it waiting
        // still), so that the search also runs it before the one that took its item or room.
        // (The op's accesses, read once: a list's are in a process-wide table behind a lock.)
        let named = op.accesses();
        let counted_races: Vec<usize> = if named.iter().any(|a| is_counted(a.key)) {
            let counts: Vec<(ObjId, Key)> =
                named.iter().filter(|a| !is_counted(a.key) && !a.kind.is_read()).map(|a| (a.obj, a.key)).collect();
            let writes_count = |e: &Event| {
                e.thread != thread
                    && e.op.accesses().iter().any(|a| !a.kind.is_read() && counts.contains(&(a.obj, a.key)))
            };
            self.events.iter().filter(|e| writes_count(e)).map(|e| e.step).collect()
        } else {
            Vec::new()
        };
        match op {
            Op::Access { obj, key, kind } => self.accesses.access(obj, key, kind, thread, step, &mut racing),
            Op::Accesses { .. } => {
                for a in named.iter() {
                    self.accesses.access(a.obj, a.key, a.kind, thread, step, &mut racing);
                }
                // A read and a write of one location in one event: not a dependency on itself.
                racing.retain(|&d| d != step);
            }
            Op::Acquire { lock } => {
                self.lock_uses.access(lock, WHOLE, AccessKind::Read, thread, step, &mut racing);
                let state = self.locks.entry(lock).or_default();
                deps.extend(state.last_release);
                lock_race = state.last_acquire;
                state.owner = Some(thread);
                state.last_acquire = Some(step);
            }
            Op::Release { lock } => {
                self.lock_uses.access(lock, WHOLE, AccessKind::Read, thread, step, &mut racing);
                let state = self.locks.entry(lock).or_default();
                deps.extend(state.last_acquire);
                state.owner = None;
                state.last_release = Some(step);
            }
            Op::Peek { lock } => {
                // Ordered against every use of the lock, as a try is (which it was decides
                // what it sees); two looks are ordered too (`event::dependent`).
                self.lock_uses.access(lock, WHOLE, AccessKind::Write, thread, step, &mut racing);
                let state = self.locks.entry(lock).or_default();
                deps.extend(state.last_acquire.into_iter().chain(state.last_release));
            }
            Op::TryAcquire { lock } => {
                self.lock_uses.access(lock, WHOLE, AccessKind::Write, thread, step, &mut racing);
                let state = self.locks.entry(lock).or_default();
                deps.extend(state.last_acquire.into_iter().chain(state.last_release));
                let owner = state.owner;
                if owner.is_none() {
                    state.owner = Some(thread);
                    state.last_acquire = Some(step);
                }
                let frame = self.threads[thread].frame_state;
                self.back_off(thread, lock, owner, frame, step);
            }
            Op::Join { child } => deps.extend(self.threads.get(child).and_then(|c| c.exit_event)),
            Op::Spawn { .. } | Op::Start | Op::Announce { .. } => {}
            Op::Exit => {
                self.accesses.access(LIVENESS, thread as Key, AccessKind::Write, thread, step, &mut racing);
                let state = &mut self.threads[thread];
                state.life = Life::Exited;
                state.exit_event = Some(step);
                self.progress();
            }
        }
        let racing = self.latest_per_thread(&racing);
        deps.extend_from_slice(&racing);
        let deps = self.latest_per_thread(&deps);
        let mut clock = before.clone();
        let mut time = self.threads[thread].time;
        for &d in &deps {
            clock.join(&self.events[d].clock);
            time = time.max(self.events[d].time);
        }
        clock.set(thread, seq);
        let concurrent = |e: &Event| e.thread != thread && !before.covers(e.thread, e.seq);
        let first_new = self.races.len();
        for &d in &racing {
            let e = &self.events[d];
            let hidden = deps.iter().any(|&o| o != d && self.events[o].is_after(e));
            if concurrent(e) && !hidden {
                self.races.push(Race { first: d, second: step });
            }
        }
        for d in lock_race.into_iter().chain(counted_races) {
            let known = self.races[first_new..].iter().any(|r| r.first == d);
            if concurrent(&self.events[d]) && !known {
                self.races.push(Race { first: d, second: step });
            }
        }
        if let Op::Spawn { child } = op {
            if self.threads.len() <= child {
                self.threads.resize_with(child + 1, ThreadState::unborn);
            }
            let state = &mut self.threads[child];
            assert_eq!(state.life, Life::Unborn, "thread {child} spawned twice");
            state.life = Life::Live;
            state.clock = clock.clone();
            state.time = time;
            self.threads[thread].spawned += 1;
            self.spawn_order.push(child);
        }
        let state = &mut self.threads[thread];
        state.clock = clock.clone();
        state.time = time;
        state.timed_out = false;
        state.seq = seq;
        state.last_step = Some(step);
        let repeat = self.note_progress(thread, op, step);
        self.events.push(Event { step, thread, op, seq, clock, repeat, time });
        step
    }

    /// Lockstep bookkeeping for `thread`'s try of `lock`, which `owner` held (`None`: it took
    /// it), from a frame in state `frame`. A failed try that repeats the thread's previous one
    /// (`ThreadState::stutters`) counts when the owner has backed off too since a thread last
    /// got on, from `thread` or from a thread that has (round a cycle of them). A successful
    /// try or a thread's exit is getting on.
    fn back_off(&mut self, thread: ThreadId, lock: LockId, owner: Option<ThreadId>, frame: Option<u64>, step: usize) {
        let Some(owner) = owner else {
            let t = &mut self.threads[thread];
            t.last_failed_try = None;
            t.stutters = false;
            self.progress();
            return;
        };
        if owner == thread {
            return;
        }
        let t = &mut self.threads[thread];
        t.backed_off = Some(owner);
        // (A try with no frame state, a timed wait's try after its first, tells nothing.)
        if let Some(frame) = frame {
            let this_try = Some((lock, owner, frame));
            t.stutters = this_try == t.last_failed_try;
            t.last_failed_try = this_try;
        }
        if !t.stutters {
            return;
        }
        let mut next = owner;
        for _ in 0..self.threads.len() {
            match self.threads[next].backed_off {
                Some(from) if from == thread => {
                    self.threads[thread].lockstep_tries += 1;
                    let tries = self.threads.iter().map(|t| t.lockstep_tries);
                    let (rounds, threads) = tries.fold((0, 0), |(r, n), t| (r + t, n + (t > 0) as u32));
                    if rounds >= LOCKSTEP_ROUNDS && threads >= 2 && self.lockstep_from.is_none() {
                        self.lockstep_from = Some(step);
                    }
                    return;
                }
                Some(from) => next = from,
                None => return,
            }
        }
    }

    /// A thread got on (took a lock with a try, or exited): no one is in lockstep.
    fn progress(&mut self) {
        for t in &mut self.threads {
            t.backed_off = None;
            t.lockstep_tries = 0;
        }
    }

    /// Fairness bookkeeping after `thread`'s step, `ready` the threads that could have run
    /// instead: no one waits on `thread` any more, and a round (a sleep, a spin read, a failed
    /// try of a lock, a poll of a flag in a loop that works) overtakes the others once more.
    pub fn note_turn(&mut self, thread: ThreadId, ready: &[ThreadId]) {
        for t in &mut self.threads {
            t.overtaken.retain(|&(u, _)| u != thread);
        }
        let Some(e) = self.events.last() else { return };
        let again = self.events.len() >= 2 && self.events[self.events.len() - 2].thread == thread;
        let went_round = match e.op {
            Op::Access { obj: YIELD, kind: AccessKind::Read, .. } => true,
            // A failed `acquire(blocking=False)`: a look at a lock someone else holds.
            Op::TryAcquire { lock } => self.locks.get(&lock).and_then(|l| l.owner) != Some(thread),
            // `while lock.locked():` looking at a lock another thread holds.
            Op::Peek { lock } => self.locks.get(&lock).and_then(|l| l.owner).is_some_and(|o| o != thread),
            _ => e.repeat >= SPIN_READS,
        };
        let t = &mut self.threads[thread];
        t.run = if again { t.run.saturating_add(1) } else { 1 };
        t.rounds += went_round as u32;
        let polled_long = t.polled && t.run >= LONG_RUN;
        if !(went_round || polled_long) {
            return;
        }
        for &u in ready.iter().filter(|&&u| u != thread) {
            match t.overtaken.iter_mut().find(|(o, _)| *o == u) {
                Some((_, n)) => *n += 1,
                None => t.overtaken.push((u, 1)),
            }
        }
    }

    /// Whether running `thread` now would starve a ready thread it has gone round
    /// `FAIR_ROUNDS` times ahead of (`STUTTER_ROUNDS` if its latest failed try repeated the one
    /// before it). One that holds a lock gets as many rounds again to let
    /// go of it: switched out right after a failed try of a second lock, still holding its
    /// first, it would hand a try-and-back-off loop's livelock to the other thread for ever.
    ///
    /// A step that ends at a time (a sleep's end, a timed wait that timed out: `timed`) comes
    /// before the steps of threads whose clocks are past that time already: no thread runs while
    /// a ready one's sleep or timeout ends sooner than its own time, and a thread whose sleep
    /// ends later is not one the others starve. (Other steps take no time: a thread that is
    /// not sleeping may be as slow as the schedule says.)
    pub fn unfair(&self, thread: ThreadId, ready: &[ThreadId]) -> bool {
        let at = self.threads[thread].time;
        if ready.iter().any(|&u| u != thread && self.timed(u) && self.threads[u].time < at) {
            return true;
        }
        let later = |u: ThreadId| self.timed(u) && self.threads[u].time > at;
        let ahead = |rounds: u32| {
            self.threads[thread].overtaken.iter().any(|&(u, n)| n >= rounds && ready.contains(&u) && !later(u))
        };
        // (The locks are looked at only for a thread that is that far ahead: this runs per pick.)
        let fair = if self.threads[thread].stutters { STUTTER_ROUNDS } else { FAIR_ROUNDS };
        ahead(fair) && (ahead(2 * fair) || !self.locks.values().any(|l| l.owner == Some(thread)))
    }

    /// Whether `read` (a read by a thread T) run right before `write` would be one more read
    /// of a location T has read `SPIN_READS` times already with nothing it read changed: a
    /// spin going round once more, which tells the search nothing new.
    pub fn spin_reread(&self, write: usize, read: usize) -> bool {
        let r = &self.events[read];
        let only_reads = match r.op {
            Op::Accesses { group } => group.accesses().iter().all(|a| a.kind.is_read() && a.obj != YIELD),
            op => watched(op).is_some(),
        };
        if !only_reads {
            return false;
        }
        let ends = &self.threads[r.thread].streak_ends;
        // The streak T was on at `write` must last until `read`, but for `write`'s own end of it
        // and ends by events that happen after `write` (the reversal leaves them after `read`).
        let w = &self.events[write];
        let moved = |s: usize| s < write || (s > write && !self.events[s].is_after(w));
        let last_end = ends[..ends.partition_point(|&s| s < read)].iter().rev().find(|&&s| moved(s));
        let from = last_end.map_or(0, |&s| s + 1);
        if from > write {
            return false;
        }
        self.events[from..write]
            .iter()
            .rev()
            .find(|e| e.thread == r.thread && e.op == r.op)
            .is_some_and(|p| p.repeat >= SPIN_READS)
    }

    /// Updates which threads spin (`ThreadState::yielding`) after `thread` performed `op` at
    /// `step`; returns the read's `Event::repeat`. A read counts towards a spin, a sleep yields
    /// at once; anything else the thread does ends its spin, and so does a change to what a
    /// spinning thread read (a write to it, any lock operation, spawn, join or exit). A step
    /// that moves the thread on (`Explorer::moves_on`) or a re-read from a frame whose locals
    /// changed ends its own.
    fn note_progress(&mut self, thread: ThreadId, op: Op, step: usize) -> u32 {
        if let Op::Accesses { group } = op {
            // As its accesses one after another: a spin's re-read of several locations is
            // still a spin, and a write among them ends the spins on what it writes.
            let accesses = group.accesses();
            let moves_on = self.threads[thread].moves_on;
            let state = self.threads[thread].frame_state;
            let mut repeat = u32::MAX;
            for a in accesses.iter() {
                let t = &mut self.threads[thread];
                t.moves_on = moves_on;
                t.frame_state = state;
                let r = self.note_progress(thread, a.op(), step);
                repeat = repeat.min(r);
            }
            return if accesses.iter().all(|a| a.kind.is_read()) { repeat } else { 0 };
        }
        let reset = |t: &mut ThreadState| {
            t.streak.clear();
            t.streak_ends.push(step);
            t.yielding = false;
        };
        let moves_on = std::mem::take(&mut self.threads[thread].moves_on);
        self.threads[thread].polled = false;
        if moves_on && matches!(op, Op::Access { kind: AccessKind::Read, .. }) {
            reset(&mut self.threads[thread]);
            return 0;
        }
        if let Some((obj, key)) = watched(op) {
            let t = &mut self.threads[thread];
            let state = t.frame_state.take();
            t.polled = t.poll(obj, key, state);
            // Only a look from a frame in a state it was in at an earlier look is a spin round:
            // one whose locals changed is getting on (a loop counting), and one of unknown
            // state (the first look, code without a frame) proves nothing. The state includes
            // where the frame is, so a loop that looks at a location at two places a round has
            // an entry for each.
            let mut at = t.streak.iter().position(|&(o, k, _, last)| {
                o == obj && k == key && (state.is_none() || last.is_none() || last == state)
            });
            if at.is_none() && t.streak.len() >= STREAK_LOCATIONS {
                reset(t);
                at = None;
            }
            let count = match at {
                Some(i) => {
                    let (_, _, n, last) = &mut t.streak[i];
                    if state.is_some() && *last == state {
                        *n += 1;
                    }
                    *last = state.or(*last);
                    *n
                }
                None => {
                    t.streak.push((obj, key, 1, state));
                    1
                }
            };
            if count >= SPIN_READS {
                t.yielding = true;
            }
            return count;
        }
        match op {
            Op::Access { obj: YIELD, kind: AccessKind::Read, .. } => {
                self.threads[thread].yielding = true;
                0
            }
            Op::Access { obj, key, kind } => {
                let resizes = matches!(kind, AccessKind::Insert | AccessKind::Delete);
                let touches =
                    |o: ObjId, k: Key| o == obj && (k == key || k == WHOLE || key == WHOLE || (k == SIZE && resizes));
                for (u, t) in self.threads.iter_mut().enumerate() {
                    t.polls.retain(|&(o, k, _, _)| !touches(o, k));
                    let read_it = t.streak.iter().any(|&(o, k, _, _)| touches(o, k));
                    if u == thread || read_it {
                        reset(t);
                    }
                }
                0
            }
            // A thread beginning changes nothing another one could be waiting for, nor does
            // an announced access (the report's last step makes it).
            Op::Start | Op::Announce { .. } => 0,
            _ => {
                self.threads.iter_mut().for_each(reset);
                0
            }
        }
    }

    /// Keeps each thread's latest event: its earlier ones happen before it.
    fn latest_per_thread(&self, deps: &[usize]) -> Vec<usize> {
        let mut latest: Vec<usize> = Vec::with_capacity(deps.len().min(8));
        for &d in deps {
            let thread = self.events[d].thread;
            match latest.iter_mut().find(|l| self.events[**l].thread == thread) {
                Some(l) => *l = (*l).max(d),
                None => latest.push(d),
            }
        }
        latest
    }
}
