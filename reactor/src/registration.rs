//! Registrations (what `kevent_ctl` adds and removes in the 2006 kevent
//! interface) and their delivery state.
//!
//! # Dispatch and coalescing
//!
//! Each registration has one atomic state word:
//!
//! ```text
//!   bits 63..32  generation (bumped when the slot is freed)
//!   bit  18      REMOVED
//!   bit  17      DISPATCHED  a consumer holds the entry and has not committed it
//!   bit  16      QUEUED      an entry for it waits in the ring, a mailbox or overflow
//!   bits 15..0   pending readiness
//! ```
//!
//! Readiness is OR-ed into the pending bits. Only the transition from neither
//! QUEUED nor DISPATCHED to QUEUED produces an entry, so a registration sits
//! in the ring at most once and the backlog is bounded by the number of
//! registrations, however small the ring. Claiming an entry moves the pending
//! bits to the consumer and sets DISPATCHED; readiness arriving meanwhile is
//! kept, not delivered to a second consumer (Solaris event ports /
//! `EV_DISPATCH`). Committing clears DISPATCHED and, if readiness arrived,
//! queues the registration again. Every transition is a CAS on the whole word
//! including the generation, so an entry left over from a freed registration
//! can never touch the slot's next occupant.

use std::sync::OnceLock;

use crate::event::{Flags, Hint, Ready};
use crate::loom::sync::atomic::{AtomicI32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use crate::loom::Mutex;
use crate::timer::TimerSlot;

const QUEUED: u64 = 1 << 16;
const DISPATCHED: u64 = 1 << 17;
const REMOVED: u64 = 1 << 18;
const READY_MASK: u64 = Ready::MASK as u64;

/// Hint value meaning "no preferred consumer".
pub(crate) const NO_HINT: usize = usize::MAX;

/// What kind of source a registration watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// A file descriptor registered with the backend.
    Fd = 0,
    /// A user event posted by any thread.
    User = 1,
    /// A one-shot timer.
    Timer = 2,
    /// A Unix signal.
    Signal = 3,
}

impl Kind {
    fn from_u8(v: u8) -> Kind {
        match v {
            0 => Kind::Fd,
            1 => Kind::User,
            2 => Kind::Timer,
            _ => Kind::Signal,
        }
    }
}

/// A registration's name in the ring: slab index and generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// Slot in the registration slab.
    pub(crate) index: u32,
    /// Generation of the slot when this registration was made.
    pub(crate) gen: u32,
}

impl Key {
    /// The ring entry for this registration.
    pub(crate) fn entry(self) -> u64 {
        (self.index as u64) << 32 | self.gen as u64
    }

    pub(crate) fn from_entry(entry: u64) -> Key {
        Key {
            index: (entry >> 32) as u32,
            gen: entry as u32,
        }
    }
}

/// One registration slot.
#[derive(Debug, Default)]
pub(crate) struct Reg {
    /// Generation, flags and pending readiness (see the module docs).
    state: AtomicU64,
    /// The caller's token.
    token: AtomicUsize,
    /// Preferred consumer, or [`NO_HINT`].
    hint: AtomicUsize,
    /// OR of user payloads (user events) or signal bits (signals) not yet delivered.
    payload: AtomicU64,
    /// [`Kind`] as a byte.
    kind: AtomicU8,
    /// [`Flags`] bits.
    flags: AtomicU8,
    /// The file descriptor (fd registrations) or signal number (signals).
    fd: AtomicI32,
    /// A timer's deadlines (timer registrations; see `timer.rs`).
    timer: TimerSlot,
}

/// What a consumer learns when it takes a queued registration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Taken {
    /// The readiness that was pending.
    pub(crate) ready: Ready,
    /// The payload that was pending.
    pub(crate) payload: u64,
    /// The registration's token.
    pub(crate) token: usize,
}

fn gen_of(state: u64) -> u32 {
    (state >> 32) as u32
}

impl Reg {
    pub(crate) fn kind(&self) -> Kind {
        Kind::from_u8(self.kind.load(Ordering::Relaxed))
    }

    pub(crate) fn flags(&self) -> Flags {
        Flags::from_bits(self.flags.load(Ordering::Relaxed))
    }

    pub(crate) fn hint(&self) -> usize {
        self.hint.load(Ordering::Relaxed)
    }

    pub(crate) fn set_hint(&self, hint: Hint) {
        self.hint.store(hint, Ordering::Relaxed);
    }

    /// A timer registration's deadlines.
    pub(crate) fn timer(&self) -> &TimerSlot {
        &self.timer
    }

    pub(crate) fn fd(&self) -> i32 {
        self.fd.load(Ordering::Relaxed)
    }

    pub(crate) fn token(&self) -> usize {
        self.token.load(Ordering::Relaxed)
    }

    /// Whether `key` still names this slot's current registration.
    pub(crate) fn is_current(&self, key: Key) -> bool {
        let s = self.state.load(Ordering::Acquire);
        gen_of(s) == key.gen && s & REMOVED == 0
    }

    /// ORs `ready` (and `payload`) into the registration. Returns true when
    /// the caller must enqueue the registration's entry (it was idle).
    pub(crate) fn mark_ready(&self, key: Key, ready: Ready, payload: u64) -> bool {
        if payload != 0 {
            // Release pairs with the Acquire swap in `take`.
            self.payload.fetch_or(payload, Ordering::Release);
        }
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if gen_of(s) != key.gen || s & REMOVED != 0 {
                return false;
            }
            let mut new = s | ready.bits() as u64;
            let enqueue = s & (QUEUED | DISPATCHED) == 0;
            if enqueue {
                new |= QUEUED;
            }
            if new == s {
                return false;
            }
            // AcqRel: the consumer that takes the entry must see the token
            // and payload written before readiness was marked.
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return enqueue,
                Err(cur) => s = cur,
            }
        }
    }

    /// Whether an entry for this registration waits in the ring, a mailbox
    /// or overflow, not yet claimed.
    pub(crate) fn is_waiting(&self) -> bool {
        let s = self.state.load(Ordering::SeqCst);
        s & QUEUED != 0 && s & DISPATCHED == 0
    }

    /// A consumer claimed this registration's entry: move the pending
    /// readiness to it and mark the registration dispatched. `None` when the
    /// entry is stale (the registration was removed or replaced).
    pub(crate) fn take(&self, key: Key) -> Option<Taken> {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if gen_of(s) != key.gen || s & REMOVED != 0 || s & QUEUED == 0 {
                return None;
            }
            let new = (s & !(READY_MASK | QUEUED)) | DISPATCHED;
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    // Acquire pairs with the Release fetch_or in `mark_ready`.
                    let payload = self.payload.swap(0, Ordering::Acquire);
                    return Some(Taken {
                        ready: Ready::from_bits((s & READY_MASK) as u16),
                        payload,
                        token: self.token(),
                    });
                }
                Err(cur) => s = cur,
            }
        }
    }

    /// The consumer committed: re-arm. Returns true when readiness arrived
    /// during dispatch and the caller must enqueue the entry again.
    pub(crate) fn rearm(&self, key: Key) -> bool {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if gen_of(s) != key.gen || s & DISPATCHED == 0 {
                return false;
            }
            let mut new = s & !DISPATCHED;
            let again = s & READY_MASK != 0 && s & REMOVED == 0;
            if again {
                new |= QUEUED;
            }
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return again,
                Err(cur) => s = cur,
            }
        }
    }

    /// Drops pending readiness without delivering it (timer reset).
    pub(crate) fn clear_pending(&self, key: Key) {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (gen_of(s) == key.gen).then_some(s & !READY_MASK)
            });
    }
}

/// Number of pages; page `p` holds `PAGE0 << p` slots.
const PAGES: usize = 26;
/// Slots in the first page (small under loom to keep models small).
#[cfg(not(loom))]
const PAGE0: usize = 64;
#[cfg(loom)]
const PAGE0: usize = 4;

/// The registration slab: pages that never move, so a slot can be read
/// without a lock while others are added.
#[derive(Debug)]
pub(crate) struct Slab {
    /// Pages allocated on first use.
    pages: Box<[OnceLock<Box<[Reg]>>]>,
    /// Free slots and the first never-used index.
    free: Mutex<FreeList>,
    /// How many registrations are live.
    live: AtomicUsize,
}

/// Free slots of the slab.
#[derive(Debug, Default)]
struct FreeList {
    /// Slots released and ready for reuse.
    slots: Vec<u32>,
    /// First index never handed out.
    next: u32,
}

fn locate(index: u32) -> (usize, usize) {
    let i = index as usize + PAGE0;
    let page = (usize::BITS - 1 - i.leading_zeros()) as usize - PAGE0.trailing_zeros() as usize;
    (page, i - (PAGE0 << page))
}

impl Slab {
    pub(crate) fn new() -> Slab {
        Slab {
            pages: (0..PAGES).map(|_| OnceLock::new()).collect(),
            free: Mutex::new(FreeList::default()),
            live: AtomicUsize::new(0),
        }
    }

    /// Reserves a slot and initialises it; the registration is live (and
    /// can be marked ready) when this returns.
    pub(crate) fn insert(
        &self,
        kind: Kind,
        token: usize,
        flags: Flags,
        fd: i32,
    ) -> std::io::Result<(Key, &Reg)> {
        let index = {
            let mut free = self.free.lock();
            match free.slots.pop() {
                Some(i) => i,
                None => {
                    let i = free.next;
                    if locate(i).0 >= PAGES {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::OutOfMemory,
                            "kevent: registration slab is full",
                        ));
                    }
                    free.next += 1;
                    i
                }
            }
        };
        let (page, offset) = locate(index);
        let reg = &self.pages[page]
            .get_or_init(|| (0..PAGE0 << page).map(|_| Reg::default()).collect())[offset];
        let gen = gen_of(reg.state.load(Ordering::Acquire));
        reg.token.store(token, Ordering::Relaxed);
        reg.hint.store(NO_HINT, Ordering::Relaxed);
        reg.payload.store(0, Ordering::Relaxed);
        reg.kind.store(kind as u8, Ordering::Relaxed);
        reg.flags.store(flags.bits(), Ordering::Relaxed);
        reg.fd.store(fd, Ordering::Relaxed);
        // Release: publishes the fields above with the cleared state.
        reg.state.store((gen as u64) << 32, Ordering::Release);
        self.live.fetch_add(1, Ordering::Relaxed);
        Ok((Key { index, gen }, reg))
    }

    /// The slot behind `index`. Panics if the index was never handed out.
    pub(crate) fn slot(&self, index: u32) -> &Reg {
        let (page, offset) = locate(index);
        &self.pages[page]
            .get()
            .expect("kevent: unknown registration")[offset]
    }

    /// The registration `key` names, if it is still live.
    pub(crate) fn get(&self, key: Key) -> Option<&Reg> {
        let (page, offset) = locate(key.index);
        let reg = &self.pages.get(page)?.get()?[offset];
        reg.is_current(key).then_some(reg)
    }

    /// Marks `key` removed and frees its slot for reuse with a new
    /// generation. Entries still in the ring for it become stale.
    pub(crate) fn remove(&self, key: Key) -> Option<Kind> {
        let reg = self.get(key)?;
        let kind = reg.kind();
        let next = ((key.gen.wrapping_add(1)) as u64) << 32 | REMOVED;
        let mut s = reg.state.load(Ordering::Acquire);
        loop {
            if gen_of(s) != key.gen || s & REMOVED != 0 {
                return None;
            }
            match reg
                .state
                .compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(cur) => s = cur,
            }
        }
        self.free.lock().slots.push(key.index);
        self.live.fetch_sub(1, Ordering::Relaxed);
        Some(kind)
    }

    /// Live registrations.
    pub(crate) fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn user(slab: &Slab) -> Key {
        slab.insert(Kind::User, 7, Flags::NONE, -1).unwrap().0
    }

    #[test]
    fn locate_covers_pages_without_gaps() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(63), (0, 63));
        assert_eq!(locate(64), (1, 0));
        assert_eq!(locate(191), (1, 127));
        assert_eq!(locate(192), (2, 0));
    }

    #[test]
    fn readiness_coalesces_while_queued() {
        let slab = Slab::new();
        let key = user(&slab);
        let reg = slab.get(key).unwrap();
        assert!(reg.mark_ready(key, Ready::READABLE, 0));
        assert!(!reg.mark_ready(key, Ready::WRITABLE, 0));
        let t = reg.take(key).unwrap();
        assert_eq!(t.ready, Ready::READABLE | Ready::WRITABLE);
        assert_eq!(t.token, 7);
    }

    #[test]
    fn readiness_during_dispatch_requeues_on_rearm() {
        let slab = Slab::new();
        let key = user(&slab);
        let reg = slab.get(key).unwrap();
        assert!(reg.mark_ready(key, Ready::USER, 1));
        reg.take(key).unwrap();
        // Dispatched: no second entry while a consumer holds it.
        assert!(!reg.mark_ready(key, Ready::USER, 2));
        assert!(reg.rearm(key));
        let t = reg.take(key).unwrap();
        assert_eq!(t.payload, 2);
        assert!(!reg.rearm(key));
    }

    #[test]
    fn stale_keys_touch_nothing() {
        let slab = Slab::new();
        let old = user(&slab);
        assert!(slab.get(old).unwrap().mark_ready(old, Ready::USER, 0));
        slab.remove(old).unwrap();
        let new = user(&slab);
        assert_eq!(new.index, old.index);
        assert_ne!(new.gen, old.gen);
        let reg = slab.slot(old.index);
        assert!(reg.take(old).is_none());
        assert!(!reg.mark_ready(old, Ready::USER, 0));
        assert!(slab.get(old).is_none());
        assert!(slab.remove(old).is_none());
        assert!(reg.mark_ready(new, Ready::USER, 0));
        assert_eq!(slab.len(), 1);
    }
}
