//! The tasks waiting on one resource.
//!
//! Nearly always one task waits on a resource's side (a connection's
//! reader, its writer), so the first waker is held inline and only a second
//! one allocates. Taking the list to wake it moves the wakers out without
//! freeing anything, and the next wait stores its waker without allocating:
//! a `Vec<Waker>` taken with `mem::take` on every wake-up cost a malloc and a
//! free per wait.

use std::task::Waker;

/// Wakers of the tasks waiting on one resource; each task at most once.
#[derive(Debug, Default)]
pub struct WakerList {
    /// The first waiter.
    first: Option<Waker>,
    /// Waiters after the first (tasks sharing the resource).
    rest: Vec<Waker>,
}

impl WakerList {
    /// An empty list.
    pub const fn new() -> WakerList {
        WakerList {
            first: None,
            rest: Vec::new(),
        }
    }

    /// Adds `waker` unless it would wake a task already in the list.
    pub fn register(&mut self, waker: &Waker) {
        match &self.first {
            None => self.first = Some(waker.clone()),
            Some(w) if w.will_wake(waker) => {}
            Some(_) => {
                if !self.rest.iter().any(|w| w.will_wake(waker)) {
                    self.rest.push(waker.clone());
                }
            }
        }
    }

    /// Adds `waker` as it is (for gathering the lists of several resources
    /// to wake together, where a task appears once per resource at most).
    pub fn push(&mut self, waker: Waker) {
        if self.first.is_none() {
            self.first = Some(waker);
        } else {
            self.rest.push(waker);
        }
    }

    /// Moves every waker of `other` into this list.
    pub fn append(&mut self, other: WakerList) {
        for w in other {
            self.push(w);
        }
    }

    /// Whether no task waits.
    pub fn is_empty(&self) -> bool {
        self.first.is_none() && self.rest.is_empty()
    }

    /// Takes the wakers out, leaving the list empty (what a wake-up does
    /// under the resource's lock, to wake outside it).
    pub fn take(&mut self) -> WakerList {
        WakerList {
            first: self.first.take(),
            rest: if self.rest.is_empty() {
                Vec::new()
            } else {
                std::mem::take(&mut self.rest)
            },
        }
    }

    /// Forgets every waker.
    pub fn clear(&mut self) {
        self.first = None;
        self.rest.clear();
    }

    /// Wakes every task in the list.
    pub fn wake_all(self) {
        for w in self {
            w.wake();
        }
    }
}

impl IntoIterator for WakerList {
    type Item = Waker;
    type IntoIter = std::iter::Chain<std::option::IntoIter<Waker>, std::vec::IntoIter<Waker>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

#[cfg(test)]
mod tests {
    use super::WakerList;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[test]
    fn each_task_is_kept_once_and_woken_once() {
        let (a, wa) = counter();
        let (b, wb) = counter();
        let mut list = WakerList::new();
        assert!(list.is_empty());
        list.register(&wa);
        list.register(&wa);
        list.register(&wb);
        list.register(&wb);
        assert!(!list.is_empty());
        let taken = list.take();
        assert!(list.is_empty());
        taken.wake_all();
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_single_waiter_needs_no_allocation_and_take_keeps_none() {
        let (_a, wa) = counter();
        let mut list = WakerList::new();
        list.register(&wa);
        assert_eq!(list.rest.capacity(), 0);
        let taken = list.take();
        assert_eq!(taken.into_iter().count(), 1);
        list.register(&wa);
        assert_eq!(list.rest.capacity(), 0);
    }

    #[test]
    fn append_and_clear() {
        let (a, wa) = counter();
        let (b, wb) = counter();
        let mut one = WakerList::new();
        one.register(&wa);
        let mut two = WakerList::new();
        two.register(&wb);
        one.append(two);
        let mut cleared = WakerList::new();
        cleared.register(&wa);
        cleared.clear();
        assert!(cleared.is_empty());
        one.wake_all();
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
    }
}
