//! Driving the explorer directly, as the runtime does: runtime-declared blocking,
//! stable child ids, nondeterminism detection, replay.

use frontrun::engine::{Choice, Config, Explorer, Op, Outcome, Rename, Schedule, Verdict, WaitReason};

const EVENT: u64 = 50;

/// Main spawns a child that waits on a runtime-modelled event; main sets it
/// (or not) and joins. Returns the explorer after the search.
fn event_program(main_sets: bool) -> Explorer {
    let mut ex = Explorer::new(Config::default());
    while ex.begin_execution() {
        let child = ex.child_id(0);
        ex.arrive(0, Op::Spawn { child });
        let (mut main_pc, mut is_set) = (0, false);
        loop {
            match ex.choose() {
                Choice::Run(0) => {
                    main_pc += 1;
                    match (main_pc, main_sets) {
                        (1, _) => {
                            // event.wait(): a read of the event, blocked until it is set.
                            ex.arrive(child, Op::read(EVENT, 0));
                            ex.set_blocked(child, !is_set);
                            ex.arrive(0, if main_sets { Op::write(EVENT, 0) } else { Op::Join { child } });
                        }
                        (2, true) => {
                            is_set = true;
                            ex.set_blocked(child, false);
                            ex.arrive(0, Op::Join { child });
                        }
                        (2, false) | (3, true) => ex.arrive(0, Op::Exit),
                        _ => {} // exited
                    }
                }
                Choice::Run(t) if t == child => {
                    if ex.events().last().unwrap().op != Op::Exit {
                        ex.arrive(child, Op::Exit);
                    }
                }
                Choice::Run(0..) => unreachable!(),
                Choice::Finished | Choice::Deadlock(_) | Choice::Diverged(_) => break,
            }
            assert!(ex.is_ready());
        }
        ex.end_execution(Outcome::Ok);
    }
    ex
}

#[test]
fn runtime_declared_blocking_is_respected() {
    let ex = event_program(true);
    assert_eq!(ex.verdict(), Verdict::Pass, "{:?}", ex.stats());
    assert_eq!(ex.stats().executions, 1);
}

#[test]
fn waiting_forever_on_a_runtime_wait_is_a_deadlock() {
    let ex = event_program(false);
    assert_eq!(ex.verdict(), Verdict::Fail);
    let deadlock = ex.deadlock().expect("deadlock");
    let reasons: Vec<_> = deadlock.waiting.iter().map(|w| (w.thread, w.reason.clone())).collect();
    assert_eq!(reasons, vec![(0, WaitReason::Join { child: 1 }), (1, WaitReason::Blocked)]);
}

#[test]
fn child_ids_are_stable_per_parent_and_spawn_order() {
    let mut ex = Explorer::new(Config::default());
    assert!(ex.begin_execution());
    let first = ex.child_id(0);
    assert_eq!(ex.child_id(0), first, "idempotent until the spawn happens");
    ex.arrive(0, Op::Spawn { child: first });
    assert_eq!(ex.choose(), Choice::Run(0));
    let second = ex.child_id(0);
    assert_ne!(first, second);
    let grandchild = ex.child_id(first);
    assert!(![first, second].contains(&grandchild));
    assert!(!ex.is_ready(), "the child has not arrived yet");
}

/// Main and a child write X; from the second execution on the child writes
/// another key, so the recorded branch cannot be followed.
#[test]
fn nondeterminism_is_detected_not_explored() {
    let mut ex = Explorer::new(Config::default());
    let (mut runs, mut diverged) = (0, false);
    while ex.begin_execution() {
        runs += 1;
        let child = ex.child_id(0);
        ex.arrive(0, Op::Spawn { child });
        loop {
            match ex.choose() {
                Choice::Run(t) => match ex.events().last().unwrap().op {
                    Op::Spawn { child } => {
                        ex.arrive(child, Op::write(1, if runs == 1 { 0 } else { 1 }));
                        ex.arrive(0, Op::write(1, 0));
                    }
                    Op::Access { .. } => ex.arrive(t, Op::Exit),
                    _ => {}
                },
                Choice::Diverged(_) => {
                    diverged = true;
                    break;
                }
                _ => break,
            }
        }
        ex.end_execution(Outcome::Ok);
    }
    assert!(diverged);
    assert_eq!(runs, 2);
    assert!(matches!(ex.verdict(), Verdict::Inconclusive(r) if r.contains("nondeterminism")));
}

/// Main spawns two children that each write X; returns the writers in order
/// and the executed schedule.
fn replay_two_writers(schedule: &str) -> (Vec<usize>, String) {
    let mut ex = Explorer::replay(schedule.parse::<Schedule>().unwrap());
    assert!(ex.begin_execution());
    let first = ex.child_id(0);
    ex.arrive(0, Op::Spawn { child: first });
    while let Choice::Run(t) = ex.choose() {
        match ex.events().last().unwrap().op {
            Op::Spawn { child } => {
                ex.arrive(child, Op::write(1, 0));
                if child == first {
                    let second = ex.child_id(0);
                    ex.arrive(0, Op::Spawn { child: second });
                } else {
                    ex.arrive(0, Op::Exit);
                }
            }
            Op::Access { .. } => ex.arrive(t, Op::Exit),
            _ => {}
        }
    }
    ex.end_execution(Outcome::Ok);
    let writers = ex.events().iter().filter(|e| matches!(e.op, Op::Access { .. })).map(|e| e.thread).collect();
    (writers, ex.schedule().to_string())
}

#[test]
fn replay_forces_the_schedule() {
    let (writers, schedule) = replay_two_writers("0*2,2,1");
    assert_eq!(writers, vec![2, 1]);
    assert!(schedule.starts_with("0*2,2,1,"), "{schedule}");
    assert_eq!(replay_two_writers("0*2,1,2").0, vec![1, 2]);
}

/// Main spawns two children; child `i` (0 or 1) takes step `first(run, i)` (never on object
/// 2), then writes key 0 of object 2 (so the two orders of those writes are explored). The
/// explorer may rename what `may_rename` allows. Returns the verdict and the number of
/// executions.
fn two_children(first: impl Fn(u64, usize) -> Op, may_rename: impl Fn(Rename) -> bool) -> (Verdict, u64) {
    let mut ex = Explorer::new(Config::default());
    let mut run = 0;
    while ex.begin_execution() {
        run += 1;
        let mut children = vec![ex.child_id(0)];
        ex.arrive(0, Op::Spawn { child: children[0] });
        loop {
            let choice = ex.choose_with(&may_rename);
            let Choice::Run(t) = choice else { break };
            match ex.events().last().unwrap().op {
                Op::Spawn { child } => {
                    let i = children.iter().position(|&c| c == child).unwrap();
                    ex.arrive(child, first(run, i));
                    if children.len() == 1 {
                        children.push(ex.child_id(0));
                        ex.arrive(0, Op::Spawn { child: children[1] });
                    } else {
                        ex.arrive(0, Op::Exit);
                    }
                }
                Op::Access { obj: 2, .. } => ex.arrive(t, Op::Exit),
                Op::Access { .. } | Op::Accesses { .. } => ex.arrive(t, Op::write(2, 0)),
                _ => {}
            }
        }
        ex.end_execution(Outcome::Ok);
    }
    (ex.verdict(), ex.stats().executions)
}

/// Child `i` writes key `key(run, i)` of object 1 first.
fn keyed_writers(key: impl Fn(usize, usize) -> u64, rename_keys: bool) -> (Verdict, u64) {
    two_children(|run, i| Op::write(1, key(run as usize, i)), |r| rename_keys && matches!(r, Rename::Keys { .. }))
}

#[test]
fn keys_made_of_fresh_values_are_renamed_to_the_plan() {
    // An id from a global counter: other values in every execution, the same structure.
    let fresh = |run: usize, i: usize| (10 * run + i) as u64;
    assert_eq!(keyed_writers(fresh, true), (Verdict::Pass, 2));
    let (verdict, runs) = keyed_writers(fresh, false);
    assert!(matches!(verdict, Verdict::Inconclusive(r) if r.contains("nondeterminism")), "{runs}");
    // Two threads that share a key in every execution keep sharing it: both orders of their
    // writes to it are explored too, as with a key that stays the same.
    let shared = |run: usize, _: usize| (10 * run) as u64;
    assert_eq!(keyed_writers(shared, true), (Verdict::Pass, 4));
    assert_eq!(keyed_writers(|_, _| 7, false), (Verdict::Pass, 4));
}

#[test]
fn keys_that_stop_being_shared_are_still_nondeterminism() {
    // First run: both children write key 5; then keys 5 and 6. No renaming makes them one key.
    let split = |run: usize, i: usize| if run == 1 { 5 } else { 5 + i as u64 };
    let (verdict, _) = keyed_writers(split, true);
    assert!(matches!(verdict, Verdict::Inconclusive(r) if r.contains("nondeterminism")));
}

/// Child `i` first makes one step over two objects fresh in every run (a file and its
/// directory entry, both first named by that step).
fn fresh_pair_writers(rename_objects: bool) -> (Verdict, u64) {
    use frontrun::engine::{Access, AccessKind};
    let fresh = |run: u64, i: usize| {
        let (file, dir) = (1000 * run + 10 * i as u64, 1000 * run + 10 * i as u64 + 1);
        let write = |obj| Access { obj, key: 0, kind: AccessKind::Write };
        Op::accesses_of(&[write(file), write(dir)])
    };
    two_children(fresh, |r| rename_objects && matches!(r, Rename::Object { .. }))
}

#[test]
fn a_step_over_several_fresh_objects_renames_them_all_to_the_plan() {
    assert_eq!(fresh_pair_writers(true), (Verdict::Pass, 2));
    let (verdict, _) = fresh_pair_writers(false);
    assert!(matches!(verdict, Verdict::Inconclusive(r) if r.contains("nondeterminism")));
}

/// Main spawns W, T and P, then exits. W writes Y then Z; P (maybe the prologue) writes Y; T
/// joins P, then writes Z. Returns the executions of the full search.
fn prologue_program(prologue: bool) -> u64 {
    const Y: u64 = 60;
    const Z: u64 = 61;
    let mut ex = Explorer::new(Config::default());
    while ex.begin_execution() {
        // Main spawns W, T, P; each child's ops, its first one arriving at its spawn.
        let mut kids = [0usize; 3];
        let mut scripts: [Vec<Op>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        let mut spawned = 0;
        kids[0] = ex.child_id(0);
        ex.arrive(0, Op::Spawn { child: kids[0] });
        loop {
            match ex.choose() {
                Choice::Run(0) if spawned == 3 => {} // exited
                Choice::Run(0) => {
                    let i = spawned;
                    spawned += 1;
                    if spawned < 3 {
                        kids[spawned] = ex.child_id(0);
                        ex.arrive(0, Op::Spawn { child: kids[spawned] });
                    } else {
                        ex.arrive(0, Op::Exit);
                    }
                    scripts[i] = match i {
                        0 => vec![Op::write(Y, 0), Op::write(Z, 0), Op::Exit],
                        1 => vec![Op::Join { child: kids[2] }, Op::write(Z, 0), Op::Exit],
                        _ => vec![Op::write(Y, 0), Op::Exit],
                    };
                    if i == 2 && prologue {
                        ex.set_prologue(kids[2]);
                    }
                    ex.arrive(kids[i], scripts[i].remove(0));
                }
                Choice::Run(x) => {
                    let i = kids.iter().position(|&k| k == x).expect("a child");
                    if !scripts[i].is_empty() {
                        ex.arrive(x, scripts[i].remove(0));
                    }
                }
                Choice::Finished | Choice::Deadlock(_) | Choice::Diverged(_) => break,
            }
        }
        ex.end_execution(Outcome::Ok);
    }
    assert_eq!(ex.verdict(), Verdict::Pass);
    ex.stats().executions
}

#[test]
fn a_prologue_is_taken_in_one_order() {
    // Without: W's and P's writes of Y in both orders, each with W's and T's writes of Z in
    // both. With P a prologue, Y is written in the first order found; Z still in both.
    let full = prologue_program(false);
    let with_prologue = prologue_program(true);
    assert_eq!((full, with_prologue), (4, 2));
}

#[test]
fn a_pending_op_changed_before_it_is_chosen_is_the_one_taken() {
    // The runtime re-decides a store's kind (insert or write) when another thread's step
    // removed or added its key after the thread arrived.
    let mut ex = Explorer::new(Config::default());
    assert!(ex.begin_execution());
    let child = ex.child_id(0);
    ex.arrive(0, Op::Spawn { child });
    assert_eq!(ex.choose(), Choice::Run(0));
    ex.arrive(0, Op::Exit);
    ex.arrive(child, Op::write(EVENT, 1));
    ex.change_pending(child, Op::insert(EVENT, 1));
    while let Choice::Run(t) = ex.choose() {
        if t == child && ex.events().last().unwrap().op != Op::Exit {
            assert_eq!(ex.events().last().unwrap().op, Op::insert(EVENT, 1));
            ex.arrive(child, Op::Exit);
        }
    }
    assert!(ex.events().iter().any(|e| e.op == Op::insert(EVENT, 1)));
    assert!(!ex.events().iter().any(|e| e.op == Op::write(EVENT, 1)));
}
