//! The harvester role: at most one consumer at a time asks the backend
//! what is ready, and only its holder may sleep inside the backend.
//!
//! The protocol, between a holder giving the role back and a consumer that
//! found it taken:
//!
//! - The consumer that finds the role taken announces that it wants it
//!   ([`HarvestRole::want`]), tries once more to take it, and otherwise
//!   parks; after announcing its sleep (`Waiters::prepare`) it looks once
//!   more whether the role is still taken ([`HarvestRole::is_taken`]).
//! - The holder gives the role back ([`HarvestRole::release`]) and then
//!   looks for a wanter; if there is one it wakes a parked consumer (never
//!   itself), which takes the role over.
//!
//! Both sides store, fence (`SeqCst`), then load, so either the holder
//! sees the want, or the wanter sees the role free: a consumer never parks
//! while nobody harvests and nobody will wake it (`want_racing_release`
//! below). A holder that keeps waiting itself (it parks watching the
//! timers while other consumers run) steps aside without waking anyone
//! ([`HarvestRole::step_aside`]) and owes a hand-off when it leaves `wait`
//! ([`HarvestRole::hand_off`]).
//!
//! The role also records when its holder's sleep in the backend ends, so
//! that arming an earlier timer knows to wake it.

use crate::loom::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};

/// Who harvests, who wants to, and until when the harvester sleeps.
#[derive(Debug)]
pub(crate) struct HarvestRole {
    /// Someone holds the role.
    held: AtomicBool,
    /// A consumer parked because the role was taken and wants it handed over.
    wanted: AtomicBool,
    /// When the holder's current sleep in the backend ends, in the ring's
    /// nanoseconds; `u64::MAX`: no deadline; 0: nobody sleeps in the
    /// backend (arming a timer then needs no wakeup: whoever harvests next
    /// reads the new deadline).
    sleep_until: AtomicU64,
}

impl HarvestRole {
    pub(crate) fn new() -> HarvestRole {
        HarvestRole {
            held: AtomicBool::new(false),
            wanted: AtomicBool::new(false),
            sleep_until: AtomicU64::new(0),
        }
    }

    /// Tries to take the role.
    pub(crate) fn try_take(&self) -> bool {
        !self.held.load(Ordering::Relaxed)
            && self
                .held
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }

    /// Gives the role back. True: a consumer parked wanting it, and the
    /// caller must wake one (not itself) so that somebody keeps watching
    /// the backend and the timers.
    pub(crate) fn release(&self) -> bool {
        self.sleep_until.store(0, Ordering::SeqCst);
        self.held.store(false, Ordering::SeqCst);
        // Pairs with the fence in `want`: either the wanter's retry sees
        // the role free, or we see that it wants the role.
        fence(Ordering::SeqCst);
        self.wanted.swap(false, Ordering::SeqCst)
    }

    /// Gives the role back without waking anyone, by a holder that goes on
    /// waiting (it takes the role again or watches the timers while
    /// parked); it hands the role off when it leaves (`hand_off`).
    pub(crate) fn step_aside(&self) {
        self.sleep_until.store(0, Ordering::SeqCst);
        self.held.store(false, Ordering::SeqCst);
        // Pairs with the fence in `Waiters::prepare` (see
        // `Consumer::park_while_others_run`).
        fence(Ordering::SeqCst);
    }

    /// The caller leaves `wait`. True: a consumer parked wanting the role;
    /// the caller must wake one (not itself) to take it over.
    pub(crate) fn hand_off(&self) -> bool {
        self.wanted.load(Ordering::SeqCst) && self.wanted.swap(false, Ordering::SeqCst)
    }

    /// Someone holds the role.
    pub(crate) fn is_taken(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    /// A consumer that could not take the role asks for it before parking.
    pub(crate) fn want(&self) {
        self.wanted.store(true, Ordering::SeqCst);
        // Pairs with the fence in `release`.
        fence(Ordering::SeqCst);
    }

    /// The holder sleeps in the backend until `nanos` (`u64::MAX`: no
    /// deadline).
    pub(crate) fn set_sleep_until(&self, nanos: u64) {
        self.sleep_until.store(nanos, Ordering::SeqCst);
    }

    /// Whether a holder sleeps in the backend past `nanos`: a timer due
    /// then must wake it.
    pub(crate) fn sleeps_past(&self, nanos: u64) -> bool {
        nanos < self.sleep_until.load(Ordering::SeqCst)
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;

    /// A consumer wanting the role while the holder gives it back: either
    /// it takes the role, or it sees the role free after announcing its
    /// sleep, or the holder sees the want (and wakes it). Never none.
    #[test]
    fn want_racing_release() {
        loom::model(|| {
            let role = Arc::new(HarvestRole::new());
            assert!(role.try_take());
            let holder = {
                let role = role.clone();
                loom::thread::spawn(move || role.release())
            };
            role.want();
            let took = role.try_take();
            // `Waiters::prepare`'s fence, then the look `Consumer::sleep`
            // takes before parking.
            fence(Ordering::SeqCst);
            let saw_free = !took && !role.is_taken();
            let woken = holder.join().unwrap();
            assert!(took || saw_free || woken, "the wanter parks unseen");
        });
    }

    /// Two consumers race for a free role: exactly one holds it.
    #[test]
    fn one_holder_at_a_time() {
        loom::model(|| {
            let role = Arc::new(HarvestRole::new());
            let other = {
                let role = role.clone();
                loom::thread::spawn(move || role.try_take())
            };
            let mine = role.try_take();
            let theirs = other.join().unwrap();
            assert!(mine ^ theirs, "mine {mine}, theirs {theirs}");
            assert!(role.is_taken());
        });
    }
}
