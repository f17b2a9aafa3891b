//! The event model: what a thread does at a scheduling point, and which pairs of
//! such actions do not commute (the dependency relation the whole search is built on).

/// Engine-wide thread index. 0 is the main thread; children get stable ids from
/// [`crate::engine::Explorer::child_id`] so the same logical thread keeps its id
/// across executions (wakeup sequences name threads by id).
pub type ThreadId = usize;
/// Identity of a shared object (e.g. `id(obj)` on the Python side).
pub type ObjId = u64;
/// Attribute / index / slot within an object.
pub type Key = u64;
/// Identity of a lock.
pub type LockId = u64;

/// Key meaning "the whole object": conflicts with every key of the same object.
pub const WHOLE: Key = u64::MAX;

/// Key meaning "how many keys the object holds" (`len(d)`): only ever read; an insertion or a
/// deletion of any key changes it, a write of a key already there does not.
pub const SIZE: Key = u64::MAX - 1;

/// Whether an access of `key` with `kind` changes or reads what an access of `other` with
/// `other_kind` does, through the object's size: a read of it against an insertion or a deletion.
fn through_size(key: Key, other_kind: AccessKind) -> bool {
    key == SIZE && matches!(other_kind, AccessKind::Insert | AccessKind::Delete)
}

/// Keys numbered by a count (`counted(n)`): the `n`th item of a queue. Which item an operation
/// takes depends on the order of the operations before it, so a plan's op and the one found
/// name the same operation when only their counted keys differ (`Explorer`'s plan matching).
const COUNTED: Key = 1 << 60;
const NAMESPACE: Key = 0xF << 60;
/// Keys that name an object by its number (`IDENT_KEYS | n`: an identity-compared dict key, a
/// directory's entry for a file): renamed with the object.
pub const IDENT_KEYS: Key = 1 << 62;

/// `key` with the object it names renamed by `r`, if it names one.
fn key_renamed_by(key: Key, r: &impl Fn(ObjId) -> ObjId) -> Key {
    if key & NAMESPACE == IDENT_KEYS {
        IDENT_KEYS | (r(key & !NAMESPACE) & !NAMESPACE)
    } else {
        key
    }
}

fn key_names(key: Key, n: ObjId) -> bool {
    key & NAMESPACE == IDENT_KEYS && key & !NAMESPACE == n
}

/// The counted key numbered `n`.
pub fn counted(n: u64) -> Key {
    COUNTED | (n & !NAMESPACE)
}

/// A counted key no item has (a bounded queue's put before the queue was ever full: the room
/// it takes was made by no get), so that the op has as many counted keys as the later ones.
pub const NO_ITEM: Key = COUNTED | !NAMESPACE;

/// Whether `key` is a counted key (`counted`, `NO_ITEM`).
pub fn is_counted(key: Key) -> bool {
    key & NAMESPACE == COUNTED
}

/// The object of a yield (`time.sleep`): read with the thread's id as key, so no one else
/// touches it. A thread that yields lets the others run first (`state::ThreadState::yielding`).
pub const YIELD: ObjId = 0;

/// The object of threads' liveness (`Thread.is_alive`): a read with the thread's id as key.
/// The thread's `Exit` writes it, so a look before the exit and one after are ordered.
pub const LIVENESS: ObjId = u64::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessKind {
    Read,
    Write,
    Delete,
    /// A write of a key the container did not hold (a dict's new key): it also writes the order
    /// of the container's keys, which iteration shows, so two insertions never commute.
    Insert,
}

impl AccessKind {
    pub fn is_read(self) -> bool {
        matches!(self, AccessKind::Read)
    }
}

/// One access of an `Op::Accesses`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Access {
    pub obj: ObjId,
    pub key: Key,
    pub kind: AccessKind,
}

impl Access {
    /// The plain op making this access alone.
    pub fn op(self) -> Op {
        Op::Access { obj: self.obj, key: self.key, kind: self.kind }
    }
}

/// A list of accesses, interned process-wide so that `Op` stays `Copy` and cheap to compare:
/// equal lists are one `Group`. The table only grows; a program makes few distinct ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Group(u32);

type GroupTable = (Vec<std::sync::Arc<[Access]>>, std::collections::HashMap<std::sync::Arc<[Access]>, u32>);
static GROUPS: once_cell::sync::Lazy<std::sync::RwLock<GroupTable>> = once_cell::sync::Lazy::new(Default::default);

/// The accesses of one op (`Op::accesses`), read as a slice.
pub enum AccessList {
    None,
    One([Access; 1]),
    Many(std::sync::Arc<[Access]>),
}

impl std::ops::Deref for AccessList {
    type Target = [Access];

    fn deref(&self) -> &[Access] {
        match self {
            AccessList::None => &[],
            AccessList::One(one) => one,
            AccessList::Many(list) => list,
        }
    }
}

impl Group {
    fn of(accesses: &[Access]) -> Group {
        if let Some(&n) = GROUPS.read().unwrap_or_else(|e| e.into_inner()).1.get(accesses) {
            return Group(n);
        }
        let mut table = GROUPS.write().unwrap_or_else(|e| e.into_inner());
        if let Some(&n) = table.1.get(accesses) {
            return Group(n);
        }
        let list: std::sync::Arc<[Access]> = accesses.into();
        let n = u32::try_from(table.0.len()).expect("too many access groups");
        table.0.push(list.clone());
        table.1.insert(list, n);
        Group(n)
    }

    pub fn accesses(self) -> std::sync::Arc<[Access]> {
        GROUPS.read().unwrap_or_else(|e| e.into_inner()).0[self.0 as usize].clone()
    }
}

impl Op {
    /// The op making all of `accesses` (in order, repeats dropped): a plain `Access` for one.
    pub fn accesses_of(accesses: &[Access]) -> Op {
        let mut list: Vec<Access> = Vec::with_capacity(accesses.len());
        for a in accesses {
            if !list.contains(a) {
                list.push(*a);
            }
        }
        match *list.as_slice() {
            [Access { obj, key, kind }] => Op::Access { obj, key, kind },
            _ => Op::Accesses { group: Group::of(&list) },
        }
    }

    /// The accesses the op names (none for a lock or thread operation), without allocating for
    /// one.
    pub fn accesses(&self) -> AccessList {
        match *self {
            Op::Access { obj, key, kind } | Op::Announce { obj, key, kind } => {
                AccessList::One([Access { obj, key, kind }])
            }
            Op::Accesses { group } => AccessList::Many(group.accesses()),
            _ => AccessList::None,
        }
    }

    /// Whether the op names object (or lock) `n`.
    pub fn mentions(&self, n: ObjId) -> bool {
        match self {
            Op::Accesses { group } => group.accesses().iter().any(|a| a.obj == n || key_names(a.key, n)),
            Op::Access { key, .. } | Op::Announce { key, .. } if key_names(*key, n) => true,
            _ => self.object() == Some(n),
        }
    }

    /// The object or lock the op names (object and lock ids share one numbering); `None` for
    /// several accesses.
    pub fn object(&self) -> Option<ObjId> {
        match *self {
            Op::Access { obj, .. } | Op::Announce { obj, .. } => Some(obj),
            Op::Acquire { lock } | Op::Release { lock } | Op::TryAcquire { lock } | Op::Peek { lock } => Some(lock),
            _ => None,
        }
    }

    /// The same op with keys `a` and `b` of object `of` swapped.
    pub fn rekeyed(self, of: ObjId, a: Key, b: Key) -> Op {
        match self {
            Op::Access { obj, key, kind } if obj == of => Op::Access { obj, key: swapped(key, a, b), kind },
            Op::Announce { obj, key, kind } if obj == of => Op::Announce { obj, key: swapped(key, a, b), kind },
            Op::Accesses { group } => Op::accesses_of(
                &group
                    .accesses()
                    .iter()
                    .map(|x| Access { key: if x.obj == of { swapped(x.key, a, b) } else { x.key }, ..*x })
                    .collect::<Vec<_>>(),
            ),
            other => other,
        }
    }

    /// The same op on object `to` in place of `from`.
    pub fn renamed(self, from: ObjId, to: ObjId) -> Op {
        self.renamed_by(|n| if n == from { to } else { n })
    }

    /// The same op with objects `a` and `b` trading names.
    pub fn swapped(self, a: ObjId, b: ObjId) -> Op {
        self.renamed_by(|n| swapped(n, a, b))
    }

    fn renamed_by(self, r: impl Fn(ObjId) -> ObjId) -> Op {
        match self {
            Op::Access { obj, key, kind } => Op::Access { obj: r(obj), key: key_renamed_by(key, &r), kind },
            Op::Announce { obj, key, kind } => Op::Announce { obj: r(obj), key: key_renamed_by(key, &r), kind },
            Op::Accesses { group } => Op::accesses_of(
                &group
                    .accesses()
                    .iter()
                    .map(|x| Access { obj: r(x.obj), key: key_renamed_by(x.key, &r), ..*x })
                    .collect::<Vec<_>>(),
            ),
            Op::Acquire { lock } => Op::Acquire { lock: r(lock) },
            Op::Release { lock } => Op::Release { lock: r(lock) },
            Op::TryAcquire { lock } => Op::TryAcquire { lock: r(lock) },
            Op::Peek { lock } => Op::Peek { lock: r(lock) },
            other => other,
        }
    }
}

/// A name a run takes over from its plan (`Explorer::choose_with`): names follow first use or
/// fresh values, which another schedule or a later execution changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rename {
    /// Object `from`, first used in this execution, is `to` from now on.
    Object { from: ObjId, to: ObjId },
    /// Objects `a` and `b`, both first used in this execution and so far named only by pending
    /// ops, trade names for the rest of it (each was first used at another step than in the
    /// plan's execution, so each has the number the other had there).
    Objects { a: ObjId, b: ObjId },
    /// Keys `from` and `to` of object `obj` trade names for the rest of this execution (a key
    /// made of a value that differs per execution: an id from a global counter, a uuid, a time).
    Keys { obj: ObjId, from: Key, to: Key },
}

/// `n` (a key, or an object), with `a` and `b` trading places.
pub fn swapped(n: u64, a: u64, b: u64) -> u64 {
    if n == a {
        b
    } else if n == b {
        a
    } else {
        n
    }
}

/// What each key is named in one execution after its `Rename::Keys` swaps, as a runtime keeps
/// it to name the accesses it reports next: (object, key) → name; absent, a key is its own.
#[derive(Clone, Debug, Default)]
pub struct KeyNames(std::collections::HashMap<(ObjId, Key), Key>);

impl KeyNames {
    /// Whether any key of `obj` has been renamed.
    pub fn names_keys_of(&self, obj: ObjId) -> bool {
        self.0.keys().any(|&(o, _)| o == obj)
    }

    /// Keys `a` and `b` of `obj` trade names, after the swaps before.
    pub fn swap(&mut self, obj: ObjId, a: Key, b: Key) {
        for (_, named) in self.0.iter_mut().filter(|((o, _), _)| *o == obj) {
            *named = swapped(*named, a, b);
        }
        for k in [a, b] {
            self.0.entry((obj, k)).or_insert_with(|| swapped(k, a, b));
        }
    }

    /// The name of `key` of `obj`.
    pub fn name(&self, obj: ObjId, key: Key) -> Key {
        if self.0.is_empty() {
            return key;
        }
        self.0.get(&(obj, key)).copied().unwrap_or(key)
    }

    /// The key of `obj` that is named `name`.
    pub fn key_named(&self, obj: ObjId, name: Key) -> Key {
        self.0.iter().find(|(&(o, _), &n)| o == obj && n == name).map_or(name, |(&(_, k), _)| k)
    }
}

/// A thread's next visible operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Access to a shared location; `key == WHOLE` touches every key of `obj`.
    Access {
        obj: ObjId,
        key: Key,
        kind: AccessKind,
    },
    /// A report's earlier step, whose access the operation makes later, at the report's last
    /// step (an `Accesses`): it names the access (a plan's names follow it) and lets the
    /// runtime look at what the operation will read, and conflicts with nothing.
    Announce {
        obj: ObjId,
        key: Key,
        kind: AccessKind,
    },
    /// Several accesses made at once: the last step of a report whose earlier steps each read
    /// one object (a call's arguments, a class attribute before the instance's) also makes
    /// theirs, since the operation reads them all right after it (`Group`).
    Accesses {
        group: Group,
    },
    /// Blocks while another thread (or this one: locks are not reentrant) holds `lock`.
    Acquire {
        lock: LockId,
    },
    Release {
        lock: LockId,
    },
    /// Takes `lock` if it is free, else does nothing (`acquire(blocking=False)`); never
    /// blocks. The same op whatever the lock's state: which it was is decided when it runs.
    TryAcquire {
        lock: LockId,
    },
    /// Looks whether `lock` is held (`lock.locked()`); never blocks, changes nothing.
    Peek {
        lock: LockId,
    },
    /// Starts thread `child`, which must be `Explorer::child_id(parent)`.
    Spawn {
        child: ThreadId,
    },
    /// Enabled only once `child` has performed `Exit`.
    Join {
        child: ThreadId,
    },
    /// A spawned thread's first operation: it begins to run. Its code up to its first report
    /// runs in this step, when the thread is chosen, not right after `Spawn` (that code may
    /// touch state nothing reports). Commutes with every other thread's operations.
    Start,
    /// The thread's last operation.
    Exit,
}

impl Op {
    pub fn read(obj: ObjId, key: Key) -> Op {
        Op::Access { obj, key, kind: AccessKind::Read }
    }
    pub fn write(obj: ObjId, key: Key) -> Op {
        Op::Access { obj, key, kind: AccessKind::Write }
    }
    pub fn delete(obj: ObjId, key: Key) -> Op {
        Op::Access { obj, key, kind: AccessKind::Delete }
    }
    pub fn insert(obj: ObjId, key: Key) -> Op {
        Op::Access { obj, key, kind: AccessKind::Insert }
    }
}

/// A thread together with the operation it performs: the unit that wakeup trees,
/// sleep sets and schedules are made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Action {
    pub thread: ThreadId,
    pub op: Op,
}

impl Action {
    pub fn new(thread: ThreadId, op: Op) -> Action {
        Action { thread, op }
    }
}

/// Whether two actions do not commute. Actions of one thread are always ordered.
/// Must agree with the happens-before edges that `state::Execution` builds.
pub fn dependent(a: &Action, b: &Action) -> bool {
    if a.thread == b.thread {
        return true;
    }
    let each = |group: Group, thread: ThreadId, other: &Action| {
        group.accesses().iter().any(|x| dependent(&Action::new(thread, x.op()), other))
    };
    match (a.op, b.op) {
        (Op::Announce { .. }, _) | (_, Op::Announce { .. }) => return false,
        (Op::Accesses { group }, _) => return each(group, a.thread, b),
        (_, Op::Accesses { group }) => return each(group, b.thread, a),
        _ => {}
    }
    match (a.op, b.op) {
        (Op::Access { obj: oa, key: ka, kind: ta }, Op::Access { obj: ob, key: kb, kind: tb }) => {
            let both_insert = ta == AccessKind::Insert && tb == AccessKind::Insert;
            let size = through_size(ka, tb) || through_size(kb, ta);
            oa == ob
                && (ka == kb || ka == WHOLE || kb == WHOLE || both_insert || size)
                && !(ta.is_read() && tb.is_read())
        }
        (
            Op::Acquire { lock: la } | Op::Release { lock: la } | Op::TryAcquire { lock: la } | Op::Peek { lock: la },
            Op::Acquire { lock: lb } | Op::Release { lock: lb } | Op::TryAcquire { lock: lb } | Op::Peek { lock: lb },
        ) => la == lb,
        (Op::Spawn { child }, _) => child == b.thread,
        (_, Op::Spawn { child }) => child == a.thread,
        (Op::Exit, Op::Join { child }) => child == a.thread,
        (Op::Join { child }, Op::Exit) => child == b.thread,
        (Op::Exit, Op::Access { obj: LIVENESS, key, .. }) => key == a.thread as Key,
        (Op::Access { obj: LIVENESS, key, .. }, Op::Exit) => key == b.thread as Key,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(thread: ThreadId, op: Op) -> Action {
        Action::new(thread, op)
    }

    #[test]
    fn two_objects_trade_names_in_every_kind_of_op() {
        assert_eq!(Op::Acquire { lock: 4 }.swapped(4, 9), Op::Acquire { lock: 9 });
        assert_eq!(Op::Release { lock: 9 }.swapped(4, 9), Op::Release { lock: 4 });
        assert_eq!(Op::write(5, 4).swapped(4, 9), Op::write(5, 4), "keys are not objects");
        let both = Op::accesses_of(&[
            Access { obj: 4, key: 1, kind: AccessKind::Read },
            Access { obj: 9, key: 1, kind: AccessKind::Write },
            Access { obj: 5, key: 1, kind: AccessKind::Read },
        ]);
        let objects: Vec<ObjId> = both.swapped(4, 9).accesses().iter().map(|a| a.obj).collect();
        assert_eq!(objects, vec![9, 4, 5]);
        assert_eq!(both.swapped(4, 9).swapped(4, 9), both);
    }

    #[test]
    fn accesses_conflict_on_same_key_with_a_write() {
        assert!(dependent(&act(0, Op::write(1, 2)), &act(1, Op::read(1, 2))));
        assert!(!dependent(&act(0, Op::read(1, 2)), &act(1, Op::read(1, 2))));
        assert!(!dependent(&act(0, Op::write(1, 2)), &act(1, Op::write(1, 3))));
        assert!(!dependent(&act(0, Op::write(1, 2)), &act(1, Op::write(2, 2))));
        assert!(dependent(&act(0, Op::delete(1, 2)), &act(1, Op::read(1, 2))));
    }

    #[test]
    fn insertions_of_different_keys_conflict_and_are_writes_otherwise() {
        assert!(dependent(&act(0, Op::insert(1, 2)), &act(1, Op::insert(1, 3))));
        assert!(!dependent(&act(0, Op::insert(1, 2)), &act(1, Op::insert(2, 3))));
        assert!(dependent(&act(0, Op::insert(1, 2)), &act(1, Op::read(1, 2))));
        assert!(dependent(&act(0, Op::insert(1, 2)), &act(1, Op::read(1, WHOLE))));
        assert!(!dependent(&act(0, Op::insert(1, 2)), &act(1, Op::read(1, 3))));
        assert!(!dependent(&act(0, Op::insert(1, 2)), &act(1, Op::write(1, 3))));
    }

    #[test]
    fn whole_object_conflicts_with_every_key() {
        assert!(dependent(&act(0, Op::write(1, WHOLE)), &act(1, Op::read(1, 7))));
        assert!(dependent(&act(0, Op::read(1, WHOLE)), &act(1, Op::write(1, 7))));
        assert!(!dependent(&act(0, Op::read(1, WHOLE)), &act(1, Op::read(1, 7))));
    }

    #[test]
    fn sync_dependencies() {
        let acq = |l| Op::Acquire { lock: l };
        let rel = |l| Op::Release { lock: l };
        assert!(dependent(&act(0, acq(1)), &act(1, acq(1))));
        assert!(dependent(&act(0, rel(1)), &act(1, acq(1))));
        assert!(!dependent(&act(0, acq(1)), &act(1, acq(2))));
        assert!(dependent(&act(0, Op::Spawn { child: 3 }), &act(3, Op::write(1, 1))));
        assert!(dependent(&act(0, Op::Spawn { child: 3 }), &act(3, Op::Start)));
        for other in [Op::write(1, WHOLE), acq(1), Op::Exit, Op::Join { child: 3 }, Op::Start] {
            assert!(!dependent(&act(3, Op::Start), &act(1, other)), "{other:?}");
        }
        assert!(dependent(&act(3, Op::Exit), &act(0, Op::Join { child: 3 })));
        assert!(!dependent(&act(2, Op::Exit), &act(0, Op::Join { child: 3 })));
        assert!(dependent(&act(3, Op::Exit), &act(0, Op::read(LIVENESS, 3))));
        assert!(dependent(&act(0, Op::read(LIVENESS, 3)), &act(3, Op::Exit)));
        assert!(!dependent(&act(2, Op::Exit), &act(0, Op::read(LIVENESS, 3))));
        assert!(!dependent(&act(0, Op::read(LIVENESS, 3)), &act(1, Op::read(LIVENESS, 3))));
        assert!(dependent(&act(0, Op::read(1, 1)), &act(0, Op::read(2, 2))));
        let try_ = |l| Op::TryAcquire { lock: l };
        assert!(dependent(&act(0, try_(1)), &act(1, rel(1))));
        assert!(dependent(&act(0, acq(1)), &act(1, try_(1))));
        assert!(dependent(&act(0, try_(1)), &act(1, try_(1))));
        assert!(!dependent(&act(0, try_(1)), &act(1, acq(2))));
        assert!(!dependent(&act(0, try_(1)), &act(1, Op::write(1, WHOLE))));
    }
}
