//! The global injection queue: tasks spawned or woken from outside the
//! workers, and overflow from full local queues.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

/// A FIFO of tasks shared by all workers.
#[derive(Debug)]
pub(crate) struct Injector<T> {
    /// The tasks.
    queue: Mutex<VecDeque<T>>,
    /// `queue.len()`, readable without the lock.
    len: AtomicUsize,
}

impl<T> Injector<T> {
    pub(crate) fn new() -> Self {
        Injector {
            queue: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
        }
    }

    pub(crate) fn push(&self, task: T) {
        let mut q = self.queue.lock();
        q.push_back(task);
        // SeqCst: a worker going to sleep bumps the sleeper count and then
        // reads `len`; we bump `len` and then read the sleeper count.
        self.len.store(q.len(), Ordering::SeqCst);
    }

    pub(crate) fn push_batch(&self, tasks: &mut dyn Iterator<Item = T>) {
        let mut q = self.queue.lock();
        q.extend(tasks);
        self.len.store(q.len(), Ordering::SeqCst);
    }

    /// Pops up to `max` tasks (at least one if any) into `out`.
    pub(crate) fn pop_batch(&self, max: usize, out: &mut Vec<T>) {
        if self.is_empty() {
            return;
        }
        let mut q = self.queue.lock();
        let n = q.len().min(max.max(1));
        out.extend(q.drain(..n));
        self.len.store(q.len(), Ordering::SeqCst);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::SeqCst) == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::SeqCst)
    }

    pub(crate) fn drain(&self) -> Vec<T> {
        let mut q = self.queue.lock();
        self.len.store(0, Ordering::SeqCst);
        q.drain(..).collect()
    }
}
