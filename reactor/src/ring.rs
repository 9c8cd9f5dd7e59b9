//! The ring: a bounded, power-of-two array of entries that producers publish
//! at the front and consumers claim and later commit.
//!
//! # Algorithm
//!
//! This is the 2006 kevent ring (the kernel owns the front index, user space
//! the tail; no used flags, no holes, FIFO) made safe for many producers and
//! many consumers. Every slot carries a sequence number that
//! says which lap of the ring it belongs to and where it is in its life:
//!
//! ```text
//!   seq == pos            free: a producer at position `pos` may fill it
//!   seq == pos + 1        published: a consumer may claim it
//!   seq == pos + capacity committed: free again for the next lap
//! ```
//!
//! Producers reserve a position by advancing `head`, write the entry and
//! publish it with a `Release` store of `seq`. Consumers claim a *batch* of
//! published positions with one CAS on `claim` (claiming one entry at a time
//! from several threads is a CAS ping-pong; batches amortise it). A claimed
//! entry stays in its slot until its consumer commits it; only then may the
//! next lap's producer reuse the slot. Because producers take positions in
//! order, an uncommitted entry blocks the slots behind it: the ring frees the
//! oldest entries first and never has holes. A producer that
//! meets an uncommitted slot reports [`Full`] instead of overwriting.
//!
//! Entries are single `u64` words (a registration's slab index and
//! generation), so the slots are plain atomics and the ring needs no `unsafe`.

use crate::loom::sync::atomic::{AtomicU64, Ordering};
use crate::loom::CachePadded;

/// The ring had no free slot: the oldest entry is not committed yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

/// One slot of the ring.
#[derive(Debug)]
struct Slot {
    /// Lap and life-cycle stage of the slot (see the module docs).
    seq: AtomicU64,
    /// The published entry; only meaningful while `seq == pos + 1` or while
    /// the slot is claimed and not yet committed.
    entry: AtomicU64,
}

/// A bounded multi-producer, multi-consumer ring of `u64` entries with
/// deferred commit.
#[derive(Debug)]
pub(crate) struct Ring {
    /// The slots; the length is a power of two.
    slots: Box<[Slot]>,
    /// `slots.len() - 1`, to turn a position into an index.
    mask: u64,
    /// Next position a producer will reserve.
    head: CachePadded<AtomicU64>,
    /// Next position a consumer will claim.
    claim: CachePadded<AtomicU64>,
    /// How many entries have been published in total: the front index,
    /// which waiters compare with the index they last saw.
    front: CachePadded<AtomicU64>,
}

impl Ring {
    /// A ring of `capacity` slots, rounded up to a power of two (at least 2).
    pub(crate) fn new(capacity: usize) -> Ring {
        let capacity = capacity.max(2).next_power_of_two();
        let slots = (0..capacity as u64)
            .map(|i| Slot {
                seq: AtomicU64::new(i),
                entry: AtomicU64::new(0),
            })
            .collect();
        Ring {
            slots,
            mask: capacity as u64 - 1,
            head: CachePadded(AtomicU64::new(0)),
            claim: CachePadded(AtomicU64::new(0)),
            front: CachePadded(AtomicU64::new(0)),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn slot(&self, pos: u64) -> &Slot {
        &self.slots[(pos & self.mask) as usize]
    }

    /// Publishes `entry` at the front, or reports [`Full`] when the slot the
    /// next entry would take has not been committed.
    pub(crate) fn push(&self, entry: u64) -> Result<(), Full> {
        let mut pos = self.head.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(pos);
            // Acquire pairs with the Release store in `commit`: the consumer
            // of the previous lap is done with the slot before we overwrite it.
            let seq = slot.seq.load(Ordering::Acquire);
            if seq == pos {
                match self.head.compare_exchange_weak(
                    pos,
                    pos + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        slot.entry.store(entry, Ordering::Relaxed);
                        // Release pairs with the Acquire load in `claim`: the
                        // entry is visible to whoever sees the new seq.
                        slot.seq.store(pos + 1, Ordering::Release);
                        // SeqCst: waiters store their sleeping state and then
                        // read `front`; publishers bump `front` and then read
                        // the sleepers. One of the two sees the other.
                        self.front.fetch_add(1, Ordering::SeqCst);
                        return Ok(());
                    }
                    Err(current) => pos = current,
                }
            } else if seq < pos {
                // The slot still holds the previous lap's entry: the oldest
                // entry has not been committed.
                return Err(Full);
            } else {
                // Another producer took `pos`; catch up.
                pos = self.head.load(Ordering::Relaxed);
            }
        }
    }

    /// Claims up to `max` published entries in FIFO order, appending
    /// `(position, entry)` pairs to `out`. Returns how many were claimed.
    pub(crate) fn claim(&self, max: usize, out: &mut Vec<(u64, u64)>) -> usize {
        if max == 0 {
            return 0;
        }
        let mut start = self.claim.load(Ordering::Relaxed);
        loop {
            let mut n = 0u64;
            while (n as usize) < max {
                let pos = start + n;
                // Acquire pairs with the Release store in `push`.
                if self.slot(pos).seq.load(Ordering::Acquire) != pos + 1 {
                    break;
                }
                n += 1;
            }
            if n == 0 {
                return 0;
            }
            // The CAS makes the batch ours. A slot we saw published cannot be
            // recycled before `claim` passes it, so if the CAS succeeds every
            // slot in the batch still holds the entry we saw published.
            match self.claim.compare_exchange_weak(
                start,
                start + n,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    for pos in start..start + n {
                        let entry = self.slot(pos).entry.load(Ordering::Relaxed);
                        out.push((pos, entry));
                    }
                    return n as usize;
                }
                Err(current) => start = current,
            }
        }
    }

    /// Frees the slot of a claimed entry for the next lap.
    pub(crate) fn commit(&self, pos: u64) {
        debug_assert_eq!(self.slot(pos).seq.load(Ordering::Relaxed), pos + 1);
        // Release pairs with the Acquire load in `push`.
        self.slot(pos)
            .seq
            .store(pos + self.slots.len() as u64, Ordering::Release);
    }

    /// The front index: how many entries were ever published.
    pub(crate) fn front(&self) -> u64 {
        self.front.load(Ordering::SeqCst)
    }

    /// Published entries not yet claimed (a snapshot).
    pub(crate) fn available(&self) -> usize {
        let claimed = self.claim.load(Ordering::SeqCst);
        let front = self.front.load(Ordering::SeqCst);
        front.saturating_sub(claimed) as usize
    }

    /// Whether the next push would find the oldest slot uncommitted.
    pub(crate) fn is_full(&self) -> bool {
        let pos = self.head.load(Ordering::SeqCst);
        self.slot(pos).seq.load(Ordering::SeqCst) < pos
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn capacity_rounds_up_to_a_power_of_two() {
        assert_eq!(Ring::new(5).capacity(), 8);
        assert_eq!(Ring::new(0).capacity(), 2);
        assert_eq!(Ring::new(64).capacity(), 64);
    }

    #[test]
    fn claims_in_fifo_order() {
        let ring = Ring::new(8);
        for e in 10..15 {
            ring.push(e).unwrap();
        }
        let mut out = Vec::new();
        assert_eq!(ring.claim(3, &mut out), 3);
        assert_eq!(ring.claim(10, &mut out), 2);
        let entries: Vec<u64> = out.iter().map(|&(_, e)| e).collect();
        assert_eq!(entries, vec![10, 11, 12, 13, 14]);
        assert_eq!(ring.front(), 5);
        assert_eq!(ring.available(), 0);
    }

    #[test]
    fn full_ring_refuses_instead_of_overwriting() {
        let ring = Ring::new(4);
        for e in 0..4 {
            ring.push(e).unwrap();
        }
        assert!(ring.is_full());
        assert_eq!(ring.push(99), Err(Full));
        // Claiming is not enough: the slot must be committed.
        let mut out = Vec::new();
        assert_eq!(ring.claim(4, &mut out), 4);
        assert_eq!(ring.push(99), Err(Full));
        ring.commit(out[0].0);
        ring.push(99).unwrap();
        assert_eq!(ring.push(100), Err(Full));
    }

    #[test]
    fn commit_frees_only_the_oldest_slots() {
        let ring = Ring::new(4);
        for e in 0..4 {
            ring.push(e).unwrap();
        }
        let mut out = Vec::new();
        ring.claim(4, &mut out);
        // Committing entries 1..4 but not 0 frees nothing: no holes.
        for &(pos, _) in &out[1..] {
            ring.commit(pos);
        }
        assert_eq!(ring.push(7), Err(Full));
        ring.commit(out[0].0);
        for e in 4..8 {
            ring.push(e).unwrap();
        }
        let mut out = Vec::new();
        ring.claim(8, &mut out);
        let entries: Vec<u64> = out.iter().map(|&(_, e)| e).collect();
        assert_eq!(entries, vec![4, 5, 6, 7]);
    }

    #[test]
    fn many_laps_with_concurrent_producers_and_consumers_lose_nothing() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::Arc;
        let ring = Arc::new(Ring::new(16));
        let per_producer = 20_000u64;
        let seen = Arc::new(
            (0..2 * per_producer)
                .map(|_| AtomicUsize::new(0))
                .collect::<Vec<_>>(),
        );
        let done = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for p in 0..2u64 {
            let ring = ring.clone();
            threads.push(std::thread::spawn(move || {
                for i in 0..per_producer {
                    let e = p * per_producer + i;
                    while ring.push(e).is_err() {
                        std::thread::yield_now();
                    }
                }
            }));
        }
        for _ in 0..2 {
            let (ring, seen, done) = (ring.clone(), seen.clone(), done.clone());
            threads.push(std::thread::spawn(move || {
                let mut out = Vec::new();
                while done.load(Ordering::Relaxed) < 2 * per_producer as usize {
                    out.clear();
                    if ring.claim(4, &mut out) == 0 {
                        std::thread::yield_now();
                        continue;
                    }
                    for &(pos, e) in &out {
                        seen[e as usize].fetch_add(1, Ordering::Relaxed);
                        ring.commit(pos);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
        assert!(seen.iter().all(|c| c.load(Ordering::Relaxed) == 1));
    }
}
