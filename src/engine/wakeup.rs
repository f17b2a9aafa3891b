//! Wakeup trees (JACM 2017, Sect. 6): at each node of the current execution, the
//! sequences still to explore from there, ordered by insertion. A sequence is only
//! added when no existing branch already covers it up to reordering of independent
//! actions, which is what makes the exploration optimal.

use super::event::{dependent, Action};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Branch {
    pub action: Action,
    pub children: Vec<Branch>,
}

/// If `p` (the action thread `p.thread` takes next) is a weak initial of `w`
/// — `w` can be reordered to start with `p`, or `p` commutes with all of `w` —
/// returns `Some(position of p's action in w)`, or `Some(None)` if `w` lacks it.
pub fn weak_initial(p: &Action, w: &[Action]) -> Option<Option<usize>> {
    match w.iter().position(|a| a.thread == p.thread) {
        Some(k) => w[..k].iter().all(|a| !dependent(a, &w[k])).then_some(Some(k)),
        None => w.iter().all(|a| !dependent(a, p)).then_some(None),
    }
}

/// How the branches below a node read to the sequence being inserted: an earlier execution
/// may have named a key otherwise than the one that made the sequence.
pub trait View {
    /// `branch`'s action as the sequence's execution would name it.
    fn name(&self, branch: &Action) -> Action;
    /// Goes down through `branch`.
    fn descend(&mut self, branch: &Action);
}

/// The branches as they are.
pub struct AsNamed;

impl View for AsNamed {
    fn name(&self, branch: &Action) -> Action {
        *branch
    }

    fn descend(&mut self, _: &Action) {}
}

/// Inserts `w` into the branches below a node unless it is already covered.
/// Returns whether the tree changed.
pub fn insert(level: &mut Vec<Branch>, w: Vec<Action>) -> bool {
    insert_viewed(level, w, &mut AsNamed)
}

/// `insert`, comparing `w` with the branches as `view` names them.
pub fn insert_viewed(mut level: &mut Vec<Branch>, mut w: Vec<Action>, view: &mut dyn View) -> bool {
    loop {
        if w.is_empty() {
            return false;
        }
        let hit = level.iter().enumerate().find_map(|(i, b)| Some((i, weak_initial(&view.name(&b.action), &w)?)));
        match hit {
            Some((i, position)) => {
                if level[i].children.is_empty() {
                    // Exploring a leaf explores every extension, including `w`.
                    return false;
                }
                if let Some(k) = position {
                    w.remove(k);
                }
                view.descend(&level[i].action);
                level = &mut level[i].children;
            }
            None => {
                level.push(chain(&w));
                return true;
            }
        }
    }
}

fn chain(w: &[Action]) -> Branch {
    let mut branch = Branch { action: *w.last().expect("non-empty"), children: Vec::new() };
    for &action in w[..w.len() - 1].iter().rev() {
        branch = Branch { action, children: vec![branch] };
    }
    branch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::Op;

    fn w(thread: usize, obj: u64) -> Action {
        Action::new(thread, Op::write(obj, 0))
    }

    fn r(thread: usize, obj: u64) -> Action {
        Action::new(thread, Op::read(obj, 0))
    }

    #[test]
    fn weak_initials() {
        let seq = [w(1, 1), r(2, 1), w(3, 2)];
        assert_eq!(weak_initial(&w(1, 1), &seq), Some(Some(0)));
        assert_eq!(weak_initial(&r(2, 1), &seq), None);
        assert_eq!(weak_initial(&w(3, 2), &seq), Some(Some(2)));
        assert_eq!(weak_initial(&w(4, 9), &seq), Some(None));
        assert_eq!(weak_initial(&r(4, 2), &seq), None);
    }

    #[test]
    fn insert_skips_covered_sequences_and_appends_new_ones() {
        let mut tree = Vec::new();
        assert!(insert(&mut tree, vec![w(1, 1), w(2, 1)]));
        // Covered up to reordering of independent actions.
        assert!(!insert(&mut tree, vec![w(3, 2), w(1, 1), w(2, 1)]));
        assert!(!insert(&mut tree, vec![w(1, 1), w(2, 1)]));
        assert!(insert(&mut tree, vec![w(2, 1)]));
        assert_eq!(tree.len(), 2);
        // A leaf covers all its extensions.
        assert!(!insert(&mut tree, vec![w(2, 1), w(1, 1)]));
        // Descends through the matching branch and appends the rest below it.
        assert!(insert(&mut tree, vec![w(1, 1), r(3, 1)]));
        assert_eq!(tree[0].children.len(), 2);
    }
}
