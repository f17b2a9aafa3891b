//! Per-location summaries of past accesses, enough to find the events a new
//! access depends on without scanning the history.

use super::event::{AccessKind, Key, ObjId, ThreadId, SIZE, WHOLE};
use std::collections::HashMap;

/// Last write of a location and the reads since (the latest one per thread):
/// every earlier access happens before one of these.
#[derive(Default, Debug)]
struct Location {
    write: Option<usize>,
    reads: Vec<(ThreadId, usize)>,
}

impl Location {
    fn written(step: usize) -> Location {
        Location { write: Some(step), reads: Vec::new() }
    }

    fn add_read(&mut self, thread: ThreadId, step: usize) {
        match self.reads.iter_mut().find(|(t, _)| *t == thread) {
            Some(entry) => entry.1 = step,
            None => self.reads.push((thread, step)),
        }
    }

    fn all(&self) -> impl Iterator<Item = usize> + '_ {
        self.write.into_iter().chain(self.reads.iter().map(|&(_, s)| s))
    }
}

#[derive(Default, Debug)]
struct ObjectState {
    whole: Location,
    keys: HashMap<Key, Location>,
    /// The last insertion since the last whole write: insertions are ordered among themselves.
    insert: Option<usize>,
    /// Each thread's last insertion or deletion since the last whole write (as `reads`): a
    /// read of the size (`SIZE`) comes after them all.
    resized: Location,
}

/// Every object's access summaries.
#[derive(Default, Debug)]
pub(crate) struct Accesses {
    objects: HashMap<ObjId, ObjectState>,
}

impl Accesses {
    /// Events an access depends on (every earlier conflicting access is before one
    /// of them), updating the location summaries.
    pub fn access(
        &mut self,
        obj: ObjId,
        key: Key,
        kind: AccessKind,
        thread: ThreadId,
        step: usize,
        deps: &mut Vec<usize>,
    ) {
        let object = self.objects.entry(obj).or_default();
        let writes = !kind.is_read();
        deps.extend(object.whole.write);
        if key == WHOLE {
            for loc in object.keys.values() {
                if writes {
                    deps.extend(loc.all());
                } else {
                    deps.extend(loc.write);
                }
            }
            if writes {
                deps.extend(object.whole.all());
                object.whole = Location::written(step);
                object.keys.clear();
                object.insert = None;
                object.resized = Location::default();
            } else {
                object.whole.add_read(thread, step);
            }
        } else {
            if kind == AccessKind::Insert {
                deps.extend(object.insert.replace(step));
            }
            if matches!(kind, AccessKind::Insert | AccessKind::Delete) {
                if let Some(size) = object.keys.get(&SIZE) {
                    deps.extend(size.reads.iter().map(|&(_, s)| s));
                }
                object.resized.add_read(thread, step);
            }
            if key == SIZE {
                deps.extend(object.resized.reads.iter().map(|&(_, s)| s));
            }
            let loc = object.keys.entry(key).or_default();
            if writes {
                deps.extend(object.whole.reads.iter().map(|&(_, s)| s));
                deps.extend(loc.all());
                *loc = Location::written(step);
            } else {
                deps.extend(loc.write);
                loc.add_read(thread, step);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AccessKind::{Read, Write};

    fn deps(a: &mut Accesses, key: Key, kind: AccessKind, thread: ThreadId, step: usize) -> Vec<usize> {
        let mut d = Vec::new();
        a.access(1, key, kind, thread, step, &mut d);
        d.sort();
        d.dedup();
        d
    }

    #[test]
    fn write_depends_on_last_write_and_reads_since() {
        let mut a = Accesses::default();
        assert_eq!(deps(&mut a, 0, Write, 0, 0), Vec::<usize>::new());
        assert_eq!(deps(&mut a, 0, Read, 1, 1), vec![0]);
        assert_eq!(deps(&mut a, 0, Read, 1, 2), vec![0]);
        assert_eq!(deps(&mut a, 0, Read, 2, 3), vec![0]);
        // Only the latest read per thread is kept.
        assert_eq!(deps(&mut a, 0, Write, 0, 4), vec![0, 2, 3]);
        assert_eq!(deps(&mut a, 1, Write, 0, 5), Vec::<usize>::new());
    }

    #[test]
    fn whole_object_accesses() {
        let mut a = Accesses::default();
        deps(&mut a, 0, Write, 0, 0);
        deps(&mut a, 1, Read, 1, 1);
        assert_eq!(deps(&mut a, WHOLE, Read, 2, 2), vec![0]);
        assert_eq!(deps(&mut a, 5, Write, 3, 3), vec![2]);
        assert_eq!(deps(&mut a, WHOLE, Write, 0, 4), vec![0, 1, 2, 3]);
        // The whole write stands for everything before it.
        assert_eq!(deps(&mut a, 1, Read, 1, 5), vec![4]);
        assert_eq!(deps(&mut a, 7, Write, 1, 6), vec![4]);
    }

    #[test]
    fn insertions_depend_on_the_last_insertion() {
        let mut a = Accesses::default();
        assert_eq!(deps(&mut a, 1, AccessKind::Insert, 0, 0), Vec::<usize>::new());
        assert_eq!(deps(&mut a, 2, Write, 1, 1), Vec::<usize>::new());
        assert_eq!(deps(&mut a, 3, AccessKind::Insert, 1, 2), vec![0]);
        assert_eq!(deps(&mut a, 4, AccessKind::Insert, 2, 3), vec![2]);
        assert_eq!(deps(&mut a, WHOLE, Write, 0, 4), vec![0, 1, 2, 3]);
        // The whole write stands for the insertions before it.
        assert_eq!(deps(&mut a, 5, AccessKind::Insert, 1, 5), vec![4]);
    }
}
