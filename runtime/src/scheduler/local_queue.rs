//! Per-worker bounded work-stealing run queue with a stealable LIFO slot.
//!
//! One worker thread owns the [`Local`] handle and is the only producer; any
//! number of other workers hold [`Steal`] handles and take work from the front
//! of the queue. The design follows the idea of tokio's multi-threaded
//! scheduler queue (a fixed ring, a packed two-part head, an owner-only tail),
//! extended with a LIFO slot that thieves may also take.
//!
//! # The ring
//!
//! `buffer` is a power-of-two array of slots. Queue positions are free-running
//! `u32` counters; position `p` lives in slot `p & mask`, and every distance
//! between positions is computed with wrapping arithmetic. Three positions
//! describe the queue:
//!
//! * `tail` (an `AtomicU32`): the position the owner writes next. Only the
//!   owner ever stores it.
//! * `head` (an `AtomicU64`) packs two `u32`s, `steal` in the high half and
//!   `real` in the low half. `real` is the first task no one has claimed yet
//!   (the owner pops from here); `steal` is the first slot a thief may still be
//!   reading. With no theft in flight, `steal == real`.
//!
//! So `[steal, real)` holds tasks claimed by the one in-flight thief and being
//! copied out, `[real, tail)` holds queued tasks, and `[tail, steal + capacity)`
//! is free. The invariant is `steal <= real <= tail <= steal + capacity`.
//!
//! * **Push** (owner): if `tail - steal < capacity`, write slot `tail`, then
//!   publish it by storing `tail + 1`.
//! * **Pop** (owner): CAS `head` to advance `real` by one; if no theft is in
//!   flight, `steal` moves along with it.
//! * **Steal half** (thief): (1) load `head` and give up if `steal != real`
//!   (another thief is busy here: at most one theft per queue at a time);
//!   (2) load `tail` and pick `n = ceil((tail - real) / 2)`; (3) claim the
//!   tasks by CASing `head` from `(real, real)` to `(real, real + n)`. `steal`
//!   stays put, so the owner can't overwrite those slots yet, while `real` has
//!   moved, so the owner won't pop them; (4) move the `n` tasks out: return the
//!   oldest to run now and write the rest at the thief's own tail; (5) CAS
//!   `steal` up to the current `real`, releasing the slots (the owner may have
//!   popped meanwhile, hence a loop); (6) publish the thief's new tail.
//! * **Overflow** (owner): if the ring is full (`tail - steal == capacity`)
//!   and no theft is in flight, the owner claims the oldest `capacity / 2`
//!   tasks by CASing `head` from `(real, real)` to `(real + half, real + half)`,
//!   and hands them plus the new task to the injector as a single batch. If a
//!   theft *is* in flight, the half it would take is not there: only the new
//!   task goes to the injector (the theft in progress frees room anyway).
//!   Either way no task is lost.
//!
//! # Memory ordering
//!
//! Three happens-before edges carry the proof:
//!
//! 1. **Publish.** The owner writes a slot, then stores `tail` with Release. A
//!    thief loads `tail` with Acquire before reading slots below it.
//! 2. **Reuse.** A thief reads its claimed slots, then sets `steal = real`
//!    with a Release CAS. The owner loads `head` with Acquire in `push_back`
//!    before overwriting a slot, and it only overwrites slots below
//!    `steal + capacity`.
//! 3. **Consistency.** Every successful CAS on `head` is Release, and its
//!    thread has already seen a `tail` at least as large as the `real` it
//!    stores. Every `head` load that is followed by a `tail` load is Acquire.
//!    So a reader never sees `tail < real`, and `tail - real` never
//!    underflows. The owner is the only one that stores `tail`, so its own
//!    `Relaxed` reads always see its latest value.
//!
//! # The LIFO slot, and why it is stealable
//!
//! When a task wakes another, the woken task usually runs best right away on
//! the same worker (its data is in cache). It goes into the LIFO slot, and
//! [`Local::pop`] checks there first. If that worker then blocks (in user
//! code, a blocking section, or a long poll), a task in a slot that only the
//! owner can see would be stuck until the worker returns. That can be
//! forever if the stuck task is the one that would unblock it. So thieves
//! may take the LIFO slot, but only when the victim's queue itself is empty.
//! A worker that is busy with queued work keeps its hot task.
//!
//! The slot is a tagged cell, not an `AtomicPtr<T>` holding a `Box<T>`: an
//! `AtomicU32` state (`EMPTY`, `FULL`, `TAKING`) plus an inline
//! `UnsafeCell<MaybeUninit<T>>`. That keeps allocation off the hot path (a
//! `Box` per wake-up would cost an allocation and a free for a pointer-sized
//! `Runnable`) and needs no pointer-sized-task trait. The transitions are:
//!
//! * `EMPTY -> FULL`: only the owner, after writing the cell (Release).
//! * `FULL -> EMPTY`: only the owner, by CAS, when it takes the task back out.
//! * `FULL -> TAKING -> EMPTY`: a thief wins a CAS (Acquire), reads the cell,
//!   then stores `EMPTY` (Release; the owner's Acquire load pairs with it
//!   before the owner writes the cell again).
//!
//! The cost of this design: while a thief is between its two steps (a few
//! instructions), the owner can't write the cell. [`Local::push_lifo`] then
//! hands the new task straight back, and the caller `push_back`s it, as it
//! does with any task that `push_lifo` returns. The LIFO preference is lost
//! for that one task; no task is lost.
//!
//! # Known limitation
//!
//! Like tokio's queue, the CASes compare 32-bit positions. A thief preempted
//! between loading `head` and its claim CAS for exactly a multiple of 2^32
//! queue operations could succeed on a stale value (ABA). We accept that.

use std::fmt;
use std::mem::MaybeUninit;

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::AtomicU32;
use crate::loom::sync::atomic::AtomicU64;
use crate::loom::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use crate::loom::sync::Arc;
use crate::loom::CachePadded;

/// Largest supported capacity: positions are `u32` and a distance of
/// `capacity` must not be mistaken for a wrapped one.
const MAX_CAPACITY: usize = 1 << 31;

/// LIFO slot state: the cell is uninitialised; only the owner may write it.
const LIFO_EMPTY: u32 = 0;
/// LIFO slot state: the cell holds a task that the owner or a thief may claim.
const LIFO_FULL: u32 = 1;
/// LIFO slot state: a thief has claimed the task and is reading it out.
const LIFO_TAKING: u32 = 2;

/// Creates a queue with room for `capacity` tasks (plus one in the LIFO slot).
///
/// # Panics
///
/// If `capacity` is not a power of two in `2..=2^31`.
pub(crate) fn local<T>(capacity: usize) -> (Local<T>, Steal<T>) {
    assert!(
        capacity.is_power_of_two() && (2..=MAX_CAPACITY).contains(&capacity),
        "local queue capacity must be a power of two in 2..=2^31, got {capacity}"
    );
    let buffer = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let inner = Arc::new(Inner {
        head: CachePadded::new(AtomicU64::new(0)),
        tail: CachePadded::new(AtomicU32::new(0)),
        lifo: CachePadded::new(LifoSlot {
            state: AtomicU32::new(LIFO_EMPTY),
            task: UnsafeCell::new(MaybeUninit::uninit()),
        }),
        buffer,
        // The assert above keeps `capacity - 1` below 2^31.
        mask: (capacity - 1) as u32,
    });
    (
        Local {
            inner: inner.clone(),
        },
        Steal { inner },
    )
}

/// The owner's handle: push, pop and the LIFO slot. `Send`, not `Clone`.
pub(crate) struct Local<T> {
    /// State shared with the [`Steal`] handles.
    inner: Arc<Inner<T>>,
}

/// A thief's handle to someone else's queue. `Clone + Send + Sync`.
pub(crate) struct Steal<T> {
    /// State shared with the owner's [`Local`].
    inner: Arc<Inner<T>>,
}

/// State shared by one [`Local`] and its [`Steal`] handles.
struct Inner<T> {
    /// `(steal << 32) | real`; see the module docs. Both the owner and thieves
    /// CAS it.
    head: CachePadded<AtomicU64>,
    /// Next position the owner writes. Only the owner stores it.
    tail: CachePadded<AtomicU32>,
    /// The stealable LIFO slot.
    lifo: CachePadded<LifoSlot<T>>,
    /// The ring. Positions `[real, tail)` hold queued tasks; `[steal, real)`
    /// belongs to the in-flight thief, which moves them out; the rest is
    /// uninitialised.
    buffer: Box<[UnsafeCell<MaybeUninit<T>>]>,
    /// `capacity - 1`; `capacity` is a power of two.
    mask: u32,
}

/// A one-task slot that the owner fills and either the owner or a thief
/// empties; see the module docs for the state machine.
struct LifoSlot<T> {
    /// `LIFO_EMPTY`, `LIFO_FULL` or `LIFO_TAKING`.
    state: AtomicU32,
    /// Initialised iff `state` is `LIFO_FULL`, or `LIFO_TAKING` and not yet
    /// read by the thief that set it.
    task: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: `Inner` owns `T`s and moves each one out exactly once, to exactly
// one thread. Other threads never get a `&T`, so `T: Send` is enough. All
// shared mutation goes through atomics or through `UnsafeCell` slots that the
// protocol in the module docs gives to one thread at a time.
unsafe impl<T: Send> Send for Inner<T> {}
// SAFETY: see the `Send` impl. `&Inner` only lets threads run that protocol.
unsafe impl<T: Send> Sync for Inner<T> {}

/// Splits a packed head into `(steal, real)`.
fn unpack(head: u64) -> (u32, u32) {
    ((head >> 32) as u32, head as u32)
}

/// Packs `(steal, real)` into a head value.
fn pack(steal: u32, real: u32) -> u64 {
    (u64::from(steal) << 32) | u64::from(real)
}

/// Moves the task out of `slot`.
///
/// # Safety
///
/// `slot` must hold an initialised task that the caller has claimed for
/// itself under the queue protocol, with no write to the slot concurrent with
/// this read. The slot counts as uninitialised afterwards.
unsafe fn read_slot<T>(slot: &UnsafeCell<MaybeUninit<T>>) -> T {
    // SAFETY: forwarded from the caller: initialised, claimed, no concurrent
    // write. `MaybeUninit<T>` has the layout of `T`.
    slot.with(|p| unsafe { p.cast::<T>().read() })
}

/// Writes `task` into `slot`, overwriting it without dropping.
///
/// # Safety
///
/// `slot` must be free (uninitialised), and the caller must have exclusive
/// access to it: every earlier read of it happens-before this write and no
/// read is concurrent with it.
unsafe fn write_slot<T>(slot: &UnsafeCell<MaybeUninit<T>>, task: T) {
    // SAFETY: forwarded from the caller: exclusive access, and nothing
    // initialised is overwritten (so nothing leaks).
    slot.with_mut(|p| unsafe { p.cast::<T>().write(task) });
}

impl<T> Inner<T> {
    /// Number of ring slots.
    fn capacity(&self) -> u32 {
        self.mask + 1
    }

    /// The slot for queue position `pos`.
    fn slot(&self, pos: u32) -> &UnsafeCell<MaybeUninit<T>> {
        &self.buffer[(pos & self.mask) as usize]
    }

    /// Tasks in `[real, tail)` plus one if the LIFO slot is full. Exact for
    /// the owner, a snapshot for anyone else.
    fn len(&self) -> usize {
        // Acquire: pairs with the Release CASes on `head` (`pop_fifo`,
        // `push_overflow`, `steal_half`'s claim and release), so the `tail`
        // load below sees a value >= `real` (edge 3 in the module docs).
        let (_, real) = unpack(self.head.load(Acquire));
        let tail = self.tail.load(Relaxed);
        // A thief's `head` may be older than its `tail`, overstating the
        // length; clamp to what the ring can hold. (For the owner it is exact.)
        let queued = tail.wrapping_sub(real).min(self.capacity());
        queued as usize + usize::from(self.lifo.is_full())
    }
}

impl<T> LifoSlot<T> {
    /// Whether the slot holds a task that is not being stolen.
    fn is_full(&self) -> bool {
        self.state.load(Relaxed) == LIFO_FULL
    }

    /// Owner only: puts `task` in the slot. Returns the previous occupant, or
    /// `task` itself if a thief is in the middle of taking the previous one.
    fn push(&self, task: T) -> Option<T> {
        // Acquire: pairs with the Release store of `LIFO_EMPTY` in `steal`, so
        // the thief's read of the cell happens-before our write below.
        match self.state.load(Acquire) {
            LIFO_EMPTY => {
                // SAFETY: `EMPTY` means the cell is uninitialised, and only the
                // owner (us, via `&mut Local`) leaves `EMPTY`, so nobody else
                // touches the cell until we store `FULL`. A thief's earlier read
                // happens-before this (Acquire above).
                unsafe { write_slot(&self.task, task) };
                // Release: pairs with the Acquire CAS in `steal`, publishing
                // the write above to the thief that claims it.
                self.state.store(LIFO_FULL, Release);
                None
            }
            LIFO_FULL => {
                // Relaxed: the cell was written by this thread (the owner), and
                // no thief has touched this occupant (that would have set
                // `TAKING`), so there is nothing to acquire. On failure a thief
                // has just moved the slot to `TAKING`.
                if self
                    .state
                    .compare_exchange(LIFO_FULL, LIFO_EMPTY, Relaxed, Relaxed)
                    .is_err()
                {
                    return Some(task);
                }
                // SAFETY: our CAS from `FULL` claimed the initialised task, and
                // thieves ignore an `EMPTY` slot, so we have the cell to
                // ourselves until we store `FULL`: read the old task out, then
                // write the new one into the now-free cell.
                let prev = unsafe { read_slot(&self.task) };
                // SAFETY: as above; the cell is free after the read.
                unsafe { write_slot(&self.task, task) };
                // Release: pairs with the Acquire CAS in `steal` (as above).
                self.state.store(LIFO_FULL, Release);
                Some(prev)
            }
            _ => Some(task),
        }
    }

    /// Owner only: takes the task back out of the slot.
    fn take(&self) -> Option<T> {
        if !self.is_full() {
            return None;
        }
        // Relaxed: this thread wrote the cell, so there is nothing to acquire.
        // A failure means a thief won (`TAKING`).
        self.state
            .compare_exchange(LIFO_FULL, LIFO_EMPTY, Relaxed, Relaxed)
            .ok()?;
        // SAFETY: the CAS from `FULL` made the initialised task ours, and
        // `EMPTY` keeps thieves away; only the owner (us) writes the cell.
        Some(unsafe { read_slot(&self.task) })
    }

    /// Any thread: takes the task if the slot is full.
    fn steal(&self) -> Option<T> {
        if !self.is_full() {
            return None;
        }
        // Acquire: pairs with the Release stores of `LIFO_FULL` in `push`, so
        // the owner's write of the cell is visible to our read.
        self.state
            .compare_exchange(LIFO_FULL, LIFO_TAKING, Acquire, Relaxed)
            .ok()?;
        // SAFETY: winning the CAS from `FULL` made the initialised task ours.
        // While the state is `TAKING`, the owner neither writes nor takes the
        // cell and other thieves fail their CAS.
        let task = unsafe { read_slot(&self.task) };
        // Release: pairs with the Acquire load in `push`: our read
        // happens-before the owner's next write of the cell.
        self.state.store(LIFO_EMPTY, Release);
        Some(task)
    }
}

/// Result of one attempt to steal half of a victim's ring.
enum Grab<T> {
    /// Got at least one task; this is the one to run now.
    Stolen(T),
    /// Nothing queued (`real == tail`), so the LIFO slot may be taken.
    Empty,
    /// Another thief is in flight and tasks remain; try elsewhere.
    Busy,
}

/// The batch handed to the overflow callback: the claimed oldest half of the
/// ring, then the task that did not fit.
struct OverflowBatch<'a, T> {
    /// The queue whose slots `[pos, end)` this batch claimed.
    inner: &'a Inner<T>,
    /// Next claimed position to yield.
    pos: u32,
    /// One past the last claimed position.
    end: u32,
    /// The task being pushed, yielded last.
    task: Option<T>,
}

impl<T> Iterator for OverflowBatch<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.pos == self.end {
            return self.task.take();
        }
        let pos = self.pos;
        self.pos = pos.wrapping_add(1);
        // SAFETY: `push_overflow`'s CAS moved both `steal` and `real` past
        // `[pos, end)`, so these initialised slots belong to the owner alone.
        // Thieves start at the new `real`. The owner can't push while this
        // batch borrows its queue, and we read each position once.
        Some(unsafe { read_slot(self.inner.slot(pos)) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end.wrapping_sub(self.pos) as usize + usize::from(self.task.is_some());
        (n, Some(n))
    }
}

impl<T> ExactSizeIterator for OverflowBatch<'_, T> {}

impl<T> Drop for OverflowBatch<'_, T> {
    fn drop(&mut self) {
        // The callback must take every task. Anything it left is dropped here,
        // so nothing leaks and the claimed slots stay consistent.
        let left = self.by_ref().count();
        debug_assert!(
            left == 0 || std::thread::panicking(),
            "overflow callback left {left} task(s) unconsumed; they were dropped"
        );
    }
}

impl<T> Local<T> {
    /// Pushes `task` to the back of the queue.
    ///
    /// If the ring is full, it moves the oldest half plus `task` to the global
    /// injector as one batch, calling `overflow` once with it. If a thief is
    /// in flight (so half can't be taken right now), the batch is `task`
    /// alone. The queue never loses a task, but `overflow` must consume the
    /// whole iterator: any task it leaves is dropped (and debug builds
    /// panic).
    pub(crate) fn push_back(
        &mut self,
        mut task: T,
        overflow: &mut dyn FnMut(&mut dyn Iterator<Item = T>),
    ) {
        let inner = &*self.inner;
        // Relaxed: only this handle stores `tail`, so we read our own latest
        // store.
        let tail = inner.tail.load(Relaxed);
        loop {
            // Acquire: pairs with the Release of the thief's releasing CAS in
            // `steal_half` (the one that sets `steal = real`): its reads of
            // the slots below the new `steal` happen-before our overwrite
            // (edge 2).
            let (steal, real) = unpack(inner.head.load(Acquire));
            if tail.wrapping_sub(steal) < inner.capacity() {
                // SAFETY: `tail` is outside `[steal, tail)`, the only range
                // anyone else may read. The slot's previous occupant, position
                // `tail - capacity < steal`, has been moved out, and that read
                // happens-before this write (Acquire above, or our own pops).
                unsafe { write_slot(inner.slot(tail), task) };
                // Release: pairs with the Acquire `tail` loads in `steal_half`,
                // publishing the slot write (edge 1).
                inner.tail.store(tail.wrapping_add(1), Release);
                return;
            }
            if steal != real {
                // A thief is copying `[steal, real)`. The ring frees up when
                // it finishes, but we can't wait, and the oldest half is not
                // ours to move.
                overflow(&mut std::iter::once(task));
                return;
            }
            match self.push_overflow(task, real, tail, overflow) {
                Ok(()) => return,
                // A thief claimed tasks first; re-check, there may be room now.
                Err(t) => task = t,
            }
        }
    }

    /// Moves the oldest half of a full ring plus `task` to `overflow`. Fails
    /// (returning `task`) if `head` is no longer `(head, head)`. Owner only:
    /// its one caller, `push_back`, holds `&mut self`.
    fn push_overflow(
        &self,
        task: T,
        head: u32,
        tail: u32,
        overflow: &mut dyn FnMut(&mut dyn Iterator<Item = T>),
    ) -> Result<(), T> {
        let inner = &*self.inner;
        debug_assert_eq!(tail.wrapping_sub(head), inner.capacity(), "not full");
        let end = head.wrapping_add(inner.capacity() / 2);
        // Release (success): pairs with the Acquire `head` loads in
        // `steal_half` and `len`: whoever sees `real == end` also sees our
        // `tail` (== head + capacity > end), edge 3. We acquire nothing: the
        // slots we take were written by this thread. Relaxed (failure): the
        // caller reloads `head` with Acquire.
        if inner
            .head
            .compare_exchange(pack(head, head), pack(end, end), Release, Relaxed)
            .is_err()
        {
            return Err(task);
        }
        overflow(&mut OverflowBatch {
            inner,
            pos: head,
            end,
            task: Some(task),
        });
        Ok(())
    }

    /// Puts `task` in the LIFO slot so it runs next. Returns a task that the
    /// caller must `push_back`: the previous occupant, or, if a thief is
    /// taking that occupant at this very moment, `task` itself.
    #[must_use = "the returned task must be pushed back, or it is lost"]
    pub(crate) fn push_lifo(&mut self, task: T) -> Option<T> {
        self.inner.lifo.push(task)
    }

    /// Next task for the owner: the LIFO slot first, then the front of the
    /// queue.
    #[must_use = "dropping a popped task drops (cancels) it"]
    pub(crate) fn pop(&mut self) -> Option<T> {
        self.inner.lifo.take().or_else(|| self.pop_fifo())
    }

    /// Front of the queue, skipping the LIFO slot (so the owner can be fair).
    #[must_use = "dropping a popped task drops (cancels) it"]
    pub(crate) fn pop_fifo(&mut self) -> Option<T> {
        let inner = &*self.inner;
        // Relaxed: only this handle stores `tail`.
        let tail = inner.tail.load(Relaxed);
        // Relaxed: the slot we pop was written by this thread, so nothing is
        // acquired through `head`. A stale value only makes the CAS fail.
        let mut head = inner.head.load(Relaxed);
        let real = loop {
            let (steal, real) = unpack(head);
            if real == tail {
                return None;
            }
            let next_real = real.wrapping_add(1);
            let next = if steal == real {
                pack(next_real, next_real)
            } else {
                // A theft is in flight: `steal` stays until the thief is done.
                pack(steal, next_real)
            };
            // Release (success): pairs with the Acquire `head` loads in
            // `steal_half` and `len`: whoever sees `next_real` also sees our
            // `tail` (> real), edge 3. Relaxed (failure): we retry with
            // `actual`, and nothing is acquired (see the load above).
            match inner.head.compare_exchange(head, next, Release, Relaxed) {
                Ok(_) => break real,
                Err(actual) => head = actual,
            }
        };
        // SAFETY: `real < tail`, so the slot is initialised (we wrote it). Our
        // CAS moved `real` past it, so no thief will claim it, and the owner
        // won't overwrite it before we return.
        Some(unsafe { read_slot(inner.slot(real)) })
    }

    /// Tasks in the queue plus the LIFO slot.
    pub(crate) fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether both the queue and the LIFO slot are empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the LIFO slot holds a task.
    pub(crate) fn has_lifo(&self) -> bool {
        self.inner.lifo.is_full()
    }
}

impl<T> Drop for Local<T> {
    fn drop(&mut self) {
        // Drop the tasks still queued, the LIFO slot's first. Tasks claimed by
        // an in-flight thief are the thief's.
        while let Some(task) = self.pop() {
            drop(task);
        }
        debug_assert!(self.is_empty(), "local queue not empty after draining");
    }
}

impl<T> fmt::Debug for Local<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Local")
            .field("len", &self.len())
            .field("has_lifo", &self.has_lifo())
            .finish()
    }
}

impl<T> Steal<T> {
    /// Steals about half (rounded up) of the victim's queued tasks. Returns
    /// the oldest to run now and puts the rest in `dst`, the thief's own
    /// queue. If the victim's queue is empty, it takes the victim's LIFO task
    /// instead. Returns `None` without stealing if `dst` is more than half
    /// full, the victim has nothing, or another thief is busy with a
    /// non-empty victim.
    #[must_use = "dropping a stolen task drops (cancels) it"]
    pub(crate) fn steal_into(&self, dst: &mut Local<T>) -> Option<T> {
        debug_assert!(
            !Arc::ptr_eq(&self.inner, &dst.inner),
            "a worker must not steal from itself"
        );
        let dst_inner = &*dst.inner;
        // Relaxed: we own `dst`, and only its owner stores its `tail`.
        let dst_tail = dst_inner.tail.load(Relaxed);
        // Acquire: pairs with the Release of the releasing CAS of thieves
        // stealing *from `dst`*: their reads of `dst` slots happen-before our
        // writes into those slots in `steal_half` (edge 2, for `dst`).
        let (dst_steal, _) = unpack(dst_inner.head.load(Acquire));
        let used = dst_tail.wrapping_sub(dst_steal);
        if used > dst_inner.capacity() / 2 {
            return None;
        }
        match self.steal_half(dst_inner, dst_tail, dst_inner.capacity() - used) {
            Grab::Stolen(task) => Some(task),
            Grab::Empty => self.inner.lifo.steal(),
            Grab::Busy => None,
        }
    }

    /// Claims `ceil(len / 2)` tasks (at most `room + 1`), returns the oldest
    /// and appends the rest to `dst`, whose owner is the caller and whose
    /// tail is `dst_tail` with `room` free slots above it.
    fn steal_half(&self, dst: &Inner<T>, dst_tail: u32, room: u32) -> Grab<T> {
        let src = &*self.inner;
        // Acquire: pairs with the Release CASes on `head` (owner pop,
        // overflow, thieves' claim and release), so the `tail` loaded below is
        // >= `real` (edge 3).
        let mut head = src.head.load(Acquire);
        let (first, n) = loop {
            let (steal, real) = unpack(head);
            // Acquire: pairs with the Release `tail` stores in `push_back`
            // and `steal_into` (when the victim stole into its own queue),
            // making the slot writes below `tail` visible (edge 1).
            let tail = src.tail.load(Acquire);
            // `tail >= real` (edge 3), but `head` may be older than `tail`, so
            // `avail` may exceed the capacity. The claim CAS then fails: the
            // owner wrote this `tail` only after seeing a `steal` newer than
            // our `head` value, and that observation happens-before our CAS
            // (through the `tail` Acquire), so the CAS must read a newer
            // `head` (positions are monotonic).
            let avail = tail.wrapping_sub(real);
            if avail == 0 {
                return Grab::Empty;
            }
            if steal != real {
                return Grab::Busy;
            }
            let n = (avail - avail / 2).min(room + 1);
            // Release (success): pairs with other threads' Acquire `head`
            // loads: whoever sees `real + n` also sees the `tail` we loaded
            // (edge 3). Safety doesn't need it, since a thief that sees our
            // claim (`steal != real`) backs off. It keeps `len` snapshots and
            // the Empty/Busy choice from seeing `tail < real`. Acquire
            // (failure): same pairing as the initial load, for the retry.
            match src.head.compare_exchange(
                head,
                pack(steal, real.wrapping_add(n)),
                Release,
                Acquire,
            ) {
                Ok(_) => {
                    debug_assert!(avail <= src.capacity(), "claimed from a stale head");
                    break (real, n);
                }
                Err(actual) => head = actual,
            }
        };

        // SAFETY: our claim CAS made `[first, first + n)` ours: those
        // positions are below the `tail` we acquired, so they are initialised
        // and visible. `real` has moved past them, so neither the owner nor
        // other thieves will read them. `steal` stays at `first` until our
        // releasing CAS, so the owner won't overwrite them.
        let task = unsafe { read_slot(src.slot(first)) };
        for i in 1..n {
            // SAFETY: as for `first`, above.
            let t = unsafe { read_slot(src.slot(first.wrapping_add(i))) };
            // SAFETY: we own `dst` (the caller holds `&mut Local`). Positions
            // `dst_tail..dst_tail + n - 1` are within the `room` free slots
            // above `dst`'s tail, so they are uninitialised, and other thieves
            // only read below `dst_tail`. Earlier thieves' reads of these
            // slots happen-before this write (Acquire load of `dst.head` in
            // `steal_into`).
            unsafe { write_slot(dst.slot(dst_tail.wrapping_add(i - 1)), t) };
        }

        // Release the claimed slots: `steal` catches up with `real`, which the
        // owner may have advanced meanwhile.
        let mut head = pack(first, first.wrapping_add(n));
        loop {
            let (steal, real) = unpack(head);
            debug_assert_eq!(steal, first, "steal moved under an in-flight thief");
            debug_assert_ne!(steal, real);
            // Release (success): pairs with the Acquire `head` load in
            // `push_back`: our slot reads above happen-before the owner
            // reuses them (edge 2). Also keeps edge 3 for thieves' Acquire
            // loads. Relaxed (failure): the owner popped. Retry with `actual`,
            // nothing to acquire.
            match src
                .head
                .compare_exchange(head, pack(real, real), Release, Relaxed)
            {
                Ok(_) => break,
                Err(actual) => head = actual,
            }
        }

        if n > 1 {
            // Release: pairs with the Acquire `tail` loads of thieves stealing
            // from `dst`, publishing the slot writes above (edge 1, for
            // `dst`).
            dst.tail.store(dst_tail.wrapping_add(n - 1), Release);
        }
        Grab::Stolen(task)
    }

    /// Snapshot of the victim's queued tasks, LIFO slot included.
    pub(crate) fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the snapshot found nothing to steal.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Snapshot of the victim's queued tasks, LIFO slot excluded: work its
    /// owner has announced to the other workers.
    pub(crate) fn queue_len(&self) -> usize {
        self.inner
            .len()
            .saturating_sub(usize::from(self.inner.lifo.is_full()))
    }
}

impl<T> Clone for Steal<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T> fmt::Debug for Steal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Steal").field("len", &self.len()).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::sync::{Barrier, Mutex};

    /// An overflow callback for tests that must never overflow.
    fn no_overflow(_: &mut dyn Iterator<Item = usize>) {
        panic!("unexpected overflow");
    }

    /// Pops everything from `q` in owner order.
    fn drain(q: &mut Local<usize>) -> Vec<usize> {
        std::iter::from_fn(|| q.pop()).collect()
    }

    #[test]
    fn fifo_order() {
        let (mut q, _s) = local(8);
        // Go round the ring twice to cover wraparound.
        for round in 0..3 {
            for i in 0..8 {
                q.push_back(round * 10 + i, &mut no_overflow);
            }
            assert_eq!(q.len(), 8);
            let got = drain(&mut q);
            assert_eq!(got, (0..8).map(|i| round * 10 + i).collect::<Vec<_>>());
            assert!(q.is_empty());
        }
    }

    #[test]
    fn lifo_first_then_fifo() {
        let (mut q, _s) = local(8);
        q.push_back(1, &mut no_overflow);
        q.push_back(2, &mut no_overflow);
        assert!(!q.has_lifo());
        assert_eq!(q.push_lifo(10), None);
        assert!(q.has_lifo());
        assert_eq!(q.len(), 3);
        // Replacing returns the previous occupant.
        assert_eq!(q.push_lifo(11), Some(10));
        q.push_back(10, &mut no_overflow);
        assert_eq!(q.pop(), Some(11));
        assert!(!q.has_lifo());
        assert_eq!(drain(&mut q), vec![1, 2, 10]);
    }

    #[test]
    fn pop_fifo_skips_lifo() {
        let (mut q, _s) = local(4);
        q.push_back(1, &mut no_overflow);
        assert_eq!(q.push_lifo(2), None);
        assert_eq!(q.pop_fifo(), Some(1));
        assert_eq!(q.pop_fifo(), None);
        assert!(q.has_lifo());
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn overflow_moves_half_plus_one() {
        let (mut q, _s) = local(8);
        // Offset the positions so that the batch wraps around the ring end.
        for _ in 0..5 {
            q.push_back(99, &mut no_overflow);
            assert_eq!(q.pop(), Some(99));
        }
        for i in 0..8 {
            q.push_back(i, &mut no_overflow);
        }
        let mut batches = Vec::new();
        q.push_back(8, &mut |it| {
            assert_eq!(it.size_hint(), (5, Some(5)));
            batches.push(it.collect::<Vec<_>>());
        });
        assert_eq!(batches, vec![vec![0, 1, 2, 3, 8]]);
        assert_eq!(q.len(), 4);
        // There is room again.
        q.push_back(9, &mut no_overflow);
        assert_eq!(drain(&mut q), vec![4, 5, 6, 7, 9]);
    }

    #[test]
    fn overflow_repeatedly_loses_nothing() {
        let (mut q, _s) = local(4);
        let mut overflowed = Vec::new();
        for i in 0..1000 {
            q.push_back(i, &mut |it| overflowed.extend(it));
            if i % 5 == 0 {
                overflowed.extend(q.pop());
            }
        }
        overflowed.extend(drain(&mut q));
        overflowed.sort_unstable();
        assert_eq!(overflowed, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn steal_takes_about_half() {
        for (queued, expect) in [(1, 1), (2, 1), (7, 4), (10, 5), (16, 8)] {
            let (mut victim, steal) = local(16);
            let (mut dst, _dst_steal) = local(16);
            for i in 0..queued {
                victim.push_back(i, &mut no_overflow);
            }
            assert_eq!(steal.len(), queued);
            // The oldest comes back to run now, the rest land in `dst`.
            assert_eq!(steal.steal_into(&mut dst), Some(0));
            assert_eq!(dst.len(), expect - 1);
            assert_eq!(drain(&mut dst), (1..expect).collect::<Vec<_>>());
            assert_eq!(drain(&mut victim), (expect..queued).collect::<Vec<_>>());
        }
    }

    #[test]
    fn steal_refuses_when_dst_more_than_half_full() {
        let (mut victim, steal) = local(8);
        let (mut dst, _dst_steal) = local(8);
        for i in 0..4 {
            victim.push_back(i, &mut no_overflow);
        }
        for i in 0..5 {
            dst.push_back(100 + i, &mut no_overflow);
        }
        assert_eq!(steal.steal_into(&mut dst), None);
        assert_eq!(dst.pop(), Some(100));
        // Four in `dst` is half: allowed, and the 2 stolen fit.
        assert_eq!(steal.steal_into(&mut dst), Some(0));
        assert_eq!(drain(&mut dst), vec![101, 102, 103, 104, 1]);
        assert_eq!(drain(&mut victim), vec![2, 3]);
    }

    #[test]
    fn steal_lifo_only_when_queue_empty() {
        let (mut victim, steal) = local(8);
        let (mut dst, _dst_steal) = local(8);
        assert_eq!(victim.push_lifo(42), None);
        victim.push_back(1, &mut no_overflow);
        assert_eq!(steal.len(), 2);
        // The queue has work, so the LIFO task stays with its worker.
        assert_eq!(steal.steal_into(&mut dst), Some(1));
        assert!(victim.has_lifo());
        // Only the LIFO slot is left: it is stolen.
        assert_eq!(steal.steal_into(&mut dst), Some(42));
        assert!(!victim.has_lifo());
        assert!(steal.is_empty());
        assert_eq!(victim.pop(), None);
        assert_eq!(steal.steal_into(&mut dst), None);
        assert!(dst.is_empty());
        // The slot is usable again afterwards.
        assert_eq!(victim.push_lifo(7), None);
        assert_eq!(victim.pop(), Some(7));
    }

    #[test]
    fn drop_drops_remaining_tasks() {
        let drops = Arc::new(AtomicUsize::new(0));
        /// Counts its drops.
        struct Counted(
            /// Shared drop counter.
            Arc<AtomicUsize>,
        );
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, SeqCst);
            }
        }
        let (mut q, steal) = local(4);
        for _ in 0..3 {
            q.push_back(Counted(drops.clone()), &mut |_| unreachable!());
        }
        assert!(q.push_lifo(Counted(drops.clone())).is_none());
        drop(q);
        assert_eq!(drops.load(SeqCst), 4);
        // The thief's handle outlives the owner and sees an empty queue.
        let (mut dst, _) = local(4);
        assert!(steal.steal_into(&mut dst).is_none());
    }

    #[test]
    #[should_panic(expected = "power of two")]
    fn rejects_bad_capacity() {
        let _ = local::<usize>(6);
    }

    /// One owner pushes (some via the LIFO slot) and pops 100k tasks; three
    /// thieves steal from the owner and from each other. Every task must be
    /// seen exactly once.
    #[test]
    fn stress_exactly_once() {
        const N: usize = 100_000;
        const THIEVES: usize = 3;
        let seen: Arc<Vec<AtomicUsize>> = Arc::new((0..N).map(|_| AtomicUsize::new(0)).collect());
        let injector = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let start = Arc::new(Barrier::new(THIEVES + 1));

        let (mut owner, owner_steal) = local::<usize>(256);
        let mut locals = Vec::new();
        let mut steals = vec![owner_steal];
        for _ in 0..THIEVES {
            let (l, s) = local::<usize>(256);
            locals.push(l);
            steals.push(s);
        }
        let handles: Vec<_> = locals
            .into_iter()
            .enumerate()
            .map(|(me, mut mine)| {
                let seen = seen.clone();
                let injector = injector.clone();
                let done = done.clone();
                let start = start.clone();
                // Victims: the owner (index 0) and the other thieves.
                let victims: Vec<_> = steals
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != me + 1)
                    .map(|(_, s)| s.clone())
                    .collect();
                std::thread::spawn(move || {
                    start.wait();
                    let mark = |t: usize| {
                        seen[t].fetch_add(1, SeqCst);
                    };
                    let mut idle_after_done = 0;
                    let mut round = me;
                    loop {
                        let finished = done.load(SeqCst);
                        let mut found = false;
                        if let Some(t) = mine.pop() {
                            mark(t);
                            found = true;
                        }
                        round += 1;
                        let v = &victims[round % victims.len()];
                        if let Some(t) = v.steal_into(&mut mine) {
                            mark(t);
                            found = true;
                        }
                        if round % 16 == 0 {
                            if let Some(t) = injector.lock().unwrap().pop() {
                                mark(t);
                                found = true;
                            }
                        }
                        if found {
                            idle_after_done = 0;
                        } else if finished {
                            idle_after_done += 1;
                            // Nothing new is produced after `done`, and each
                            // thief drains its own queue, so a few empty
                            // rounds mean we are finished.
                            if idle_after_done > 64 && mine.is_empty() {
                                break;
                            }
                        } else {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();

        let mut overflow = |it: &mut dyn Iterator<Item = usize>| {
            injector.lock().unwrap().extend(it);
        };
        start.wait();
        for i in 0..N {
            if i % 128 == 0 {
                // Give the thieves a chance on a machine with few cores.
                std::thread::yield_now();
            }
            if i % 7 == 0 {
                if let Some(prev) = owner.push_lifo(i) {
                    owner.push_back(prev, &mut overflow);
                }
            } else {
                owner.push_back(i, &mut overflow);
            }
            if i % 3 == 0 {
                if let Some(t) = owner.pop() {
                    seen[t].fetch_add(1, SeqCst);
                }
            }
        }
        while let Some(t) = owner.pop() {
            seen[t].fetch_add(1, SeqCst);
        }
        done.store(true, SeqCst);
        for h in handles {
            h.join().unwrap();
        }
        for t in injector.lock().unwrap().drain(..) {
            seen[t].fetch_add(1, SeqCst);
        }
        for (i, c) in seen.iter().enumerate() {
            assert_eq!(c.load(SeqCst), 1, "task {i}");
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::thread;

    /// Small ring so that the models wrap around and fill up.
    const CAP: usize = 4;

    /// An overflow callback for models that must never overflow.
    fn no_overflow(_: &mut dyn Iterator<Item = usize>) {
        panic!("unexpected overflow");
    }

    /// Pushes and pops `by` dummy tasks so that later positions wrap.
    fn offset(q: &mut Local<usize>, by: usize) {
        for _ in 0..by {
            q.push_back(usize::MAX, &mut no_overflow);
            assert_eq!(q.pop(), Some(usize::MAX));
        }
    }

    /// Pops everything from `q` into `seen`.
    fn drain(q: &mut Local<usize>, seen: &mut Vec<usize>) {
        while let Some(t) = q.pop() {
            seen.push(t);
        }
    }

    /// A thief that makes `attempts` steals into its own queue, runs them,
    /// and returns what it saw.
    fn thief(victim: Steal<usize>, attempts: usize) -> thread::JoinHandle<Vec<usize>> {
        thread::spawn(move || {
            let (mut mine, _mine_steal) = local(CAP);
            let mut seen = Vec::new();
            for _ in 0..attempts {
                seen.extend(victim.steal_into(&mut mine));
                drain(&mut mine, &mut seen);
            }
            seen
        })
    }

    /// Asserts that `seen` is exactly `0..n`, each once.
    fn assert_exactly_once(mut seen: Vec<usize>, n: usize) {
        seen.sort_unstable();
        assert_eq!(seen, (0..n).collect::<Vec<_>>());
    }

    /// (a) The owner pushes and pops (wrapping the ring) while one thief
    /// steals.
    #[test]
    fn owner_push_pop_vs_stealer() {
        ::loom::model(|| {
            let (mut q, steal) = local(CAP);
            offset(&mut q, 3);
            q.push_back(0, &mut no_overflow);
            q.push_back(1, &mut no_overflow);
            let th = thief(steal, 1);
            let mut seen = Vec::new();
            seen.extend(q.pop());
            q.push_back(2, &mut no_overflow);
            q.push_back(3, &mut no_overflow);
            drain(&mut q, &mut seen);
            seen.extend(th.join().unwrap());
            assert_exactly_once(seen, 4);
        });
    }

    /// (b) Two thieves race on three queued tasks while the owner pops.
    #[test]
    fn two_stealers_and_owner_pop() {
        ::loom::model(|| {
            let (mut q, steal) = local(CAP);
            offset(&mut q, 2);
            for i in 0..3 {
                q.push_back(i, &mut no_overflow);
            }
            let t1 = thief(steal.clone(), 1);
            let t2 = thief(steal, 1);
            let mut seen = Vec::new();
            drain(&mut q, &mut seen);
            seen.extend(t1.join().unwrap());
            seen.extend(t2.join().unwrap());
            assert_exactly_once(seen, 3);
        });
    }

    /// (c) The owner fills the ring and pushes into it full (overflow)
    /// while a thief steals. The fill happens after the thief starts, so
    /// the thief may see the overflow's `head` together with an old `tail`.
    #[test]
    fn overflow_vs_stealer() {
        ::loom::model(|| {
            let (mut q, steal) = local(CAP);
            offset(&mut q, 1);
            q.push_back(0, &mut no_overflow);
            let th = thief(steal, 1);
            let mut seen = Vec::new();
            for i in 1..4 {
                q.push_back(i, &mut no_overflow);
            }
            let mut calls = 0;
            q.push_back(4, &mut |it| {
                calls += 1;
                seen.extend(it);
            });
            assert!(calls <= 1);
            q.push_back(5, &mut |it| seen.extend(it));
            drain(&mut q, &mut seen);
            seen.extend(th.join().unwrap());
            assert_exactly_once(seen, 6);
        });
    }

    /// (d) The owner uses the LIFO slot while a thief steals twice.
    #[test]
    fn lifo_vs_stealer() {
        ::loom::model(|| {
            let (mut q, steal) = local(CAP);
            assert!(q.push_lifo(0).is_none());
            let th = thief(steal, 2);
            let mut seen = Vec::new();
            if let Some(prev) = q.push_lifo(1) {
                q.push_back(prev, &mut no_overflow);
            }
            drain(&mut q, &mut seen);
            if let Some(prev) = q.push_lifo(2) {
                q.push_back(prev, &mut no_overflow);
            }
            drain(&mut q, &mut seen);
            seen.extend(th.join().unwrap());
            assert_exactly_once(seen, 3);
        });
    }

    /// (e) Chained stealing, publish side: B steals from A into its own
    /// (empty) queue while C steals from B, so C may read a slot that B
    /// wrote as a `dst`.
    #[test]
    fn chained_steal_publish() {
        ::loom::model(|| {
            let (mut a, a_steal) = local(CAP);
            for i in 0..4 {
                a.push_back(i, &mut no_overflow);
            }
            let (mut b, b_steal) = local::<usize>(CAP);
            offset(&mut b, 3);
            let c = thief(b_steal, 1);
            let b_th = thread::spawn(move || {
                let mut seen = Vec::new();
                seen.extend(a_steal.steal_into(&mut b));
                drain(&mut b, &mut seen);
                seen
            });
            let mut seen = Vec::new();
            drain(&mut a, &mut seen);
            seen.extend(b_th.join().unwrap());
            seen.extend(c.join().unwrap());
            assert_exactly_once(seen, 4);
        });
    }

    /// (f) Chained stealing, reuse side: B's queue is full; C steals half
    /// of it, after which B may steal from A and write into the very slot C
    /// just read.
    #[test]
    fn chained_steal_reuse() {
        ::loom::model(|| {
            let (a, a_steal) = local(CAP);
            let mut a = a;
            for i in 0..4 {
                a.push_back(i, &mut no_overflow);
            }
            let (mut b, b_steal) = local::<usize>(CAP);
            for i in 4..8 {
                b.push_back(i, &mut no_overflow);
            }
            let c = thief(b_steal, 1);
            let b_th = thread::spawn(move || {
                let mut seen = Vec::new();
                seen.extend(a_steal.steal_into(&mut b));
                drain(&mut b, &mut seen);
                seen
            });
            let mut seen = Vec::new();
            drain(&mut a, &mut seen);
            seen.extend(b_th.join().unwrap());
            seen.extend(c.join().unwrap());
            assert_exactly_once(seen, 8);
        });
    }
}
