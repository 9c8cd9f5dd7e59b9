//! Where entries wait when the ring is full: a FIFO beside the ring, moved
//! into it as consumers commit slots. Coalescing bounds it by the number of
//! registrations, so nothing is ever dropped (invariant 3 in
//! ARCHITECTURE.md).
//!
//! A publisher that finds the ring full queues its entry here and then
//! retries the move; a consumer that commits slots moves entries in. Both
//! fence between their write and their look (`push`, and the fence the
//! committer runs before `drain`), so either the publisher sees the freed
//! slot or the committer sees the queued entry.

use std::collections::VecDeque;

use crate::loom::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
use crate::loom::Mutex;
use crate::ring::Ring;

/// Entries that found the ring full, oldest first.
#[derive(Debug)]
pub(crate) struct Overflow {
    /// The waiting entries.
    queue: Mutex<VecDeque<u64>>,
    /// `queue.len()`, readable without the lock.
    len: AtomicUsize,
    /// Entries that ever waited here.
    total: AtomicU64,
}

impl Overflow {
    pub(crate) fn new() -> Overflow {
        Overflow {
            queue: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
            total: AtomicU64::new(0),
        }
    }

    /// Pushes one entry into `ring`, or here when it is full (or older
    /// entries wait here: FIFO).
    pub(crate) fn push(&self, ring: &Ring, entry: u64) {
        if self.len.load(Ordering::SeqCst) == 0 && ring.push(entry).is_ok() {
            return;
        }
        {
            let mut queue = self.queue.lock();
            queue.push_back(entry);
            self.len.fetch_add(1, Ordering::SeqCst);
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        // Pairs with the fence a committer runs before `drain` (see
        // `Inner::after_commit`): either we see the slot it just committed,
        // or it sees our entry.
        fence(Ordering::SeqCst);
        self.drain(ring);
    }

    /// Moves entries into `ring` while it has room, oldest first. Returns
    /// how many moved.
    pub(crate) fn drain(&self, ring: &Ring) -> usize {
        if self.len.load(Ordering::SeqCst) == 0 {
            return 0;
        }
        let mut queue = self.queue.lock();
        let mut moved = 0;
        while let Some(&entry) = queue.front() {
            if ring.push(entry).is_err() {
                break;
            }
            queue.pop_front();
            self.len.fetch_sub(1, Ordering::SeqCst);
            moved += 1;
        }
        moved
    }

    /// Entries wait here.
    pub(crate) fn pending(&self) -> bool {
        self.len.load(Ordering::SeqCst) > 0
    }

    /// Entries that ever waited here.
    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}
