//! Per-resource readiness and wakers, found from a ring event's token.
//!
//! A ring event names its resource by a token: slab index and generation.
//! The slab's pages never move or shrink while the runtime lives, so a
//! worker holding a token from an event that raced with the resource's drop
//! still reads valid memory; the generation check turns such a token into a
//! no-op instead of waking the slot's next occupant.

use crate::loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::task::{Context, Poll};

use kevent_reactor::{Ready, WakerList};
use parking_lot::Mutex;

/// Readiness bits that wake readers: reads, closes, errors, timers, user
/// events and signals.
pub(crate) const READ_SIDE: u16 = Ready::READABLE.bits()
    | Ready::READ_CLOSED.bits()
    | Ready::ERROR.bits()
    | Ready::TIMER.bits()
    | Ready::USER.bits()
    | Ready::SIGNAL.bits();
/// Readiness bits that wake writers.
pub(crate) const WRITE_SIDE: u16 =
    Ready::WRITABLE.bits() | Ready::WRITE_CLOSED.bits() | Ready::ERROR.bits();

/// Readiness bits that wake a task waiting for priority data: the data,
/// or a close that means none will come.
pub(crate) const PRIORITY_SIDE: u16 = Ready::PRIORITY.bits() | Ready::READ_CLOSED.bits();

/// What a task waits on: which readiness bits answer it, and which of the
/// two waiter lists it waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Reads (and timers, signals).
    Read,
    /// Writes.
    Write,
    /// Priority data (`AsyncFd` with `Interest::PRIORITY`); waits with
    /// the readers.
    Priority,
    /// An error condition only (`Interest::ERROR`); waits with the
    /// readers.
    Error,
}

impl Direction {
    fn mask(self) -> u16 {
        match self {
            Direction::Read => READ_SIDE,
            Direction::Write => WRITE_SIDE,
            Direction::Priority => PRIORITY_SIDE,
            Direction::Error => Ready::ERROR.bits(),
        }
    }
}

/// Readiness observed by a task, with the tick it was observed at, so that
/// clearing it cannot erase readiness that arrived afterwards.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadyEvent {
    /// The readiness bits.
    pub(crate) ready: Ready,
    /// The dispatch tick the bits belong to.
    pub(crate) tick: u16,
}

/// One resource's readiness and waiting tasks.
#[derive(Debug, Default)]
pub(crate) struct ScheduledIo {
    /// Generation of the slot (bumped on release).
    gen: AtomicU32,
    /// Low 16 bits: readiness; high 16 bits: tick, bumped by every event.
    state: AtomicU32,
    /// Tasks waiting to read (usually one; several when tasks share a
    /// socket through `&TcpStream` or await `readable()` together).
    reader: Mutex<WakerList>,
    /// Tasks waiting to write.
    writer: Mutex<WakerList>,
}

impl ScheduledIo {
    /// Records readiness from a ring event and wakes whoever waits for it.
    pub(crate) fn dispatch(&self, ready: Ready) {
        let bits = ready.bits() as u32;
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                let tick = (s >> 16).wrapping_add(1) & 0xffff;
                Some(tick << 16 | (s & 0xffff) | bits)
            });
        if ready.bits() & (READ_SIDE | PRIORITY_SIDE) != 0 {
            wake_list(&self.reader);
        }
        if ready.bits() & WRITE_SIDE != 0 {
            wake_list(&self.writer);
        }
    }

    /// Readiness for `dir` as last dispatched, without registering anyone.
    pub(crate) fn current(&self, dir: Direction) -> Option<ReadyEvent> {
        let s = self.state.load(Ordering::Acquire);
        let ready = (s & 0xffff) as u16 & dir.mask();
        (ready != 0).then(|| ReadyEvent {
            ready: Ready::from_bits(ready),
            tick: (s >> 16) as u16,
        })
    }

    /// Readiness for `dir`, or registers the task's waker and returns
    /// `Pending`.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<ReadyEvent> {
        if let Some(ev) = self.current(dir) {
            return Poll::Ready(ev);
        }
        let slot = match dir {
            Direction::Read | Direction::Priority | Direction::Error => &self.reader,
            Direction::Write => &self.writer,
        };
        {
            slot.lock().register(cx.waker());
        }
        // Readiness may have arrived between the first check and storing the
        // waker; `dispatch` sets the bits before taking the waker.
        match self.current(dir) {
            Some(ev) => Poll::Ready(ev),
            None => Poll::Pending,
        }
    }

    /// Clears `ev`'s bits if no event came since it was observed.
    pub(crate) fn clear(&self, ev: ReadyEvent) {
        let clear = ev.ready.bits() as u32
            & !(Ready::READ_CLOSED.bits() | Ready::WRITE_CLOSED.bits()) as u32;
        self.clear_bits(ev, clear);
    }

    /// Like [`ScheduledIo::clear`], closed bits included: for a stream
    /// whose reads come from its inbox, where end-of-stream is a state of
    /// the inbox (reported again by the receive), not of the readiness.
    pub(crate) fn clear_with_closed(&self, ev: ReadyEvent) {
        self.clear_bits(ev, ev.ready.bits() as u32);
    }

    fn clear_bits(&self, ev: ReadyEvent, clear: u32) {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                ((s >> 16) as u16 == ev.tick).then_some(s & !clear)
            });
    }

    /// Clears bits unconditionally (a timer reset).
    pub(crate) fn clear_all(&self, bits: Ready) {
        self.state
            .fetch_and(!(bits.bits() as u32), Ordering::AcqRel);
    }

    /// Wakes every waiter (shutdown, deregistration).
    pub(crate) fn wake_all(&self) {
        wake_list(&self.reader);
        wake_list(&self.writer);
    }

    /// Forgets the tasks waiting to read (a timer's only direction),
    /// leaving the readiness bits.
    pub(crate) fn forget_readers(&self) {
        // Taken under the lock, dropped after it.
        let forgotten = self.reader.lock().take();
        drop(forgotten);
    }

    /// Forgets readiness and waiters (a pooled timer being reused).
    pub(crate) fn reset(&self) {
        self.state.store(0, Ordering::Release);
        self.reader.lock().clear();
        self.writer.lock().clear();
    }
}

/// Wakes and removes every waker in `list`, outside the lock.
fn wake_list(list: &Mutex<WakerList>) {
    let mut guard = list.lock();
    if guard.is_empty() {
        return;
    }
    let wakers = guard.take();
    drop(guard);
    wakers.wake_all();
}

/// Pages; page `p` holds `PAGE0 << p` slots.
const PAGES: usize = 24;
/// Slots in the first page.
const PAGE0: usize = 64;

fn locate(index: u32) -> (usize, usize) {
    let i = index as usize + PAGE0;
    let page = (usize::BITS - 1 - i.leading_zeros()) as usize - PAGE0.trailing_zeros() as usize;
    (page, i - (PAGE0 << page))
}

/// The slab of [`ScheduledIo`]s.
#[derive(Debug)]
pub(crate) struct IoSlab {
    /// Pages, allocated on first use, never freed before the runtime.
    pages: Box<[OnceLock<Box<[ScheduledIo]>>]>,
    /// Released slots and the first never-used index.
    free: Mutex<(Vec<u32>, u32)>,
    /// Live slots.
    live: AtomicUsize,
}

/// A token: where a resource's [`ScheduledIo`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IoToken {
    /// Slab index.
    pub(crate) index: u32,
    /// Generation when allocated.
    pub(crate) gen: u32,
}

impl IoToken {
    pub(crate) fn to_usize(self) -> usize {
        (self.index as usize) << 32 | self.gen as usize
    }

    pub(crate) fn from_usize(v: usize) -> IoToken {
        IoToken {
            index: (v >> 32) as u32,
            gen: v as u32,
        }
    }
}

impl IoSlab {
    pub(crate) fn new() -> IoSlab {
        IoSlab {
            pages: (0..PAGES).map(|_| OnceLock::new()).collect(),
            free: Mutex::new((Vec::new(), 0)),
            live: AtomicUsize::new(0),
        }
    }

    pub(crate) fn alloc(&self) -> std::io::Result<(IoToken, &ScheduledIo)> {
        let index = {
            let mut free = self.free.lock();
            match free.0.pop() {
                Some(i) => i,
                None => {
                    let i = free.1;
                    if locate(i).0 >= PAGES {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::OutOfMemory,
                            "kevent: too many I/O resources",
                        ));
                    }
                    free.1 += 1;
                    i
                }
            }
        };
        let (page, offset) = locate(index);
        let io = &self.pages[page]
            .get_or_init(|| (0..PAGE0 << page).map(|_| ScheduledIo::default()).collect())[offset];
        io.state.store(0, Ordering::Release);
        let gen = io.gen.load(Ordering::Acquire);
        self.live.fetch_add(1, Ordering::Relaxed);
        Ok((IoToken { index, gen }, io))
    }

    /// The live slot `token` names.
    pub(crate) fn get(&self, token: IoToken) -> Option<&ScheduledIo> {
        let (page, offset) = locate(token.index);
        let io = &self.pages.get(page)?.get()?[offset];
        (io.gen.load(Ordering::Acquire) == token.gen).then_some(io)
    }

    pub(crate) fn release(&self, token: IoToken) {
        if let Some(io) = self.get(token) {
            io.gen.fetch_add(1, Ordering::AcqRel);
            io.reader.lock().clear();
            io.writer.lock().clear();
            self.free.lock().0.push(token.index);
            self.live.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Wakes every waiting task (runtime shutdown).
    pub(crate) fn wake_all(&self) {
        for page in self.pages.iter().filter_map(|p| p.get()) {
            for io in page.iter() {
                io.wake_all();
            }
        }
    }

    /// Live slots (resources, timers and signals registered now).
    #[allow(dead_code)]
    pub(crate) fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, loom))]
mod loom {
    //! The tick CAS under loom. A task that saw readiness, tried its
    //! operation and got `WouldBlock` clears what it saw; an event
    //! dispatched meanwhile bumps the tick, and the clear must then leave
    //! the new readiness alone, or the task would wait for an event that
    //! already came (a lost wakeup). The waker lists are not modelled: they
    //! sit behind a parking_lot mutex, which loom does not see.
    use super::*;
    use crate::loom::sync::Arc;
    use crate::loom::thread;

    /// Readiness a reader saw, then cleared after `WouldBlock`, racing
    /// with a new event of `fresh` on another thread.
    fn clear_races_dispatch(seen: Ready, fresh: Ready, with_closed: bool) {
        ::loom::model(move || {
            let io = Arc::new(ScheduledIo::default());
            io.dispatch(seen);
            let ev = io
                .current(Direction::Read)
                .expect("readiness was dispatched");
            let reader = {
                let io = io.clone();
                thread::spawn(move || {
                    if with_closed {
                        io.clear_with_closed(ev);
                    } else {
                        io.clear(ev);
                    }
                })
            };
            io.dispatch(fresh);
            reader.join().unwrap();
            let now = io
                .current(Direction::Read)
                .expect("readiness dispatched after the reader looked was erased by its clear");
            assert_eq!(now.ready.bits() & fresh.bits(), fresh.bits());
            assert_ne!(now.tick, ev.tick, "every dispatch bumps the tick");
        });
    }

    #[test]
    fn a_stale_clear_never_erases_readiness_dispatched_after_it_was_seen() {
        clear_races_dispatch(Ready::READABLE, Ready::READABLE, false);
    }

    #[test]
    fn a_stale_clear_with_closed_never_erases_a_close_dispatched_after_it_was_seen() {
        // The peer's close comes with the last data: readable and read-closed.
        clear_races_dispatch(Ready::READABLE, Ready::READABLE | Ready::READ_CLOSED, true);
    }

    #[test]
    fn two_concurrent_dispatches_keep_both_bits_and_bump_the_tick_twice() {
        ::loom::model(|| {
            let io = Arc::new(ScheduledIo::default());
            let other = {
                let io = io.clone();
                thread::spawn(move || io.dispatch(Ready::WRITABLE))
            };
            io.dispatch(Ready::READABLE);
            other.join().unwrap();
            let read = io
                .current(Direction::Read)
                .expect("readable was dispatched");
            let write = io
                .current(Direction::Write)
                .expect("writable was dispatched");
            assert_eq!(read.tick, 2);
            assert_eq!(write.tick, 2);
        });
    }

    #[test]
    fn a_clear_that_wins_the_race_only_erases_what_was_seen() {
        // The reader saw READABLE; WRITABLE arrives concurrently. Whatever
        // the order, WRITABLE survives, and READABLE is gone only if the
        // clear ran before the new event.
        ::loom::model(|| {
            let io = Arc::new(ScheduledIo::default());
            io.dispatch(Ready::READABLE);
            let ev = io
                .current(Direction::Read)
                .expect("readable was dispatched");
            let reader = {
                let io = io.clone();
                thread::spawn(move || io.clear(ev))
            };
            io.dispatch(Ready::WRITABLE);
            reader.join().unwrap();
            assert!(
                io.current(Direction::Write).is_some(),
                "a clear of read bits erased write readiness"
            );
        });
    }
}
