//! Who sleeps, who searches, and whether a wakeup is on its way: the
//! handshake that keeps work from waiting while a worker sleeps, without a
//! wakeup per queued task.
//!
//! # Protocol
//!
//! * A thread that queued work calls [`Idle::want_notify`]; if it says so,
//!   the thread posts one NOTIFY into the ring (which wakes one sleeper).
//!   No NOTIFY is needed while nobody sleeps, while a worker searches (it
//!   looks at the queues after this work was queued, see below), or while
//!   a NOTIFY is pending (its claimer will search).
//! * The worker that claims a NOTIFY calls [`Idle::claimed_notify`]: it
//!   counts itself as searching *before* the pending flag clears, so a
//!   queuer sees one or the other.
//! * A searching worker that finds a task calls [`Idle::found_work`]; the
//!   last searcher to do so checks for more work and, if any, asks for
//!   another NOTIFY (tokio's searching hand-off).
//! * A worker about to sleep calls [`Idle::announce_sleep`] (which also
//!   ends its search) and then looks at every queue once more: either that
//!   look sees work queued before it, or the queuer's `want_notify` sees
//!   the sleeper (both sides are SeqCst with a fence between write and
//!   read, the store-buffering pattern).
//!
//! `loom_tests` model it with a queuer and two workers.

use crate::loom::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering::SeqCst};

/// Idle bookkeeping for the notify policy.
#[derive(Debug, Default)]
pub(crate) struct Idle {
    /// Workers inside the ring's wait (announced, not yet back).
    sleeping: AtomicUsize,
    /// Workers woken by a NOTIFY and looking for work.
    searching: AtomicUsize,
    /// A NOTIFY is posted and not yet claimed.
    notify_pending: AtomicBool,
}

impl Idle {
    /// After queueing work: whether to post a NOTIFY. With `always`,
    /// whenever a worker sleeps (even if one searches). A true answer
    /// marks the NOTIFY pending; the caller posts it (or, if the post
    /// fails, calls [`post_failed`](Idle::post_failed)).
    pub(crate) fn want_notify(&self, always: bool) -> bool {
        // Pairs with the fence in `announce_sleep`: either the sleeper
        // sees the work just queued or we see it sleeping.
        fence(SeqCst);
        if self.sleeping.load(SeqCst) == 0 {
            return false;
        }
        if !always && (self.searching.load(SeqCst) > 0 || self.notify_pending.load(SeqCst)) {
            return false;
        }
        self.notify_pending.store(true, SeqCst);
        true
    }

    /// The NOTIFY `want_notify` asked for could not be posted.
    pub(crate) fn post_failed(&self) {
        self.notify_pending.store(false, SeqCst);
    }

    /// The worker whose `searching` flag this is claimed a NOTIFY: it
    /// searches now. `counted`: whether searchers are counted at all (not
    /// with a single worker).
    pub(crate) fn claimed_notify(&self, searching: &mut bool, counted: bool) {
        if counted && !*searching {
            *searching = true;
            self.searching.fetch_add(1, SeqCst);
        }
        self.notify_pending.store(false, SeqCst);
    }

    /// A searching worker found a task. True when it was the last
    /// searcher: it should then ask for another NOTIFY if more work waits
    /// (checked after this returns).
    pub(crate) fn found_work(&self, searching: &mut bool) -> bool {
        if !*searching {
            return false;
        }
        *searching = false;
        self.searching.fetch_sub(1, SeqCst) == 1
    }

    /// The worker is about to sleep: counted as sleeping, no longer as
    /// searching. The caller must look for work once more afterwards and
    /// call [`woke`](Idle::woke) when it does not sleep after all, or
    /// when it comes back.
    pub(crate) fn announce_sleep(&self, searching: &mut bool) {
        self.sleeping.fetch_add(1, SeqCst);
        if *searching {
            *searching = false;
            self.searching.fetch_sub(1, SeqCst);
        }
        // Pairs with the fence in `want_notify`.
        fence(SeqCst);
    }

    /// Back from (or not going into) the sleep announced before.
    pub(crate) fn woke(&self) {
        self.sleeping.fetch_sub(1, SeqCst);
    }

    /// Workers sleeping now.
    pub(crate) fn sleeping(&self) -> usize {
        self.sleeping.load(SeqCst)
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! A queuer and two workers under loom. A worker asleep at the end
    //! with work queued and no NOTIFY pending (every worker asleep) would
    //! be a lost wakeup: nothing would ever run that work.
    use super::*;
    use crate::loom::sync::atomic::Ordering::{Acquire, Release};
    use crate::loom::sync::Arc;
    use crate::loom::thread;

    /// The model's world: a run queue (a count; pushed with Release only,
    /// as a worker's local queue is), the ring's NOTIFY entry, and the
    /// handshake.
    #[derive(Default)]
    struct World {
        idle: Idle,
        queued: AtomicUsize,
        notify_entry: AtomicBool,
        ran: AtomicUsize,
    }

    impl World {
        fn queue_one(&self, always: bool) {
            self.queued.fetch_add(1, Release);
            if self.idle.want_notify(always) {
                self.notify_entry.store(true, SeqCst);
            }
        }

        fn take(&self) -> bool {
            self.queued
                .fetch_update(Acquire, Acquire, |n| n.checked_sub(1))
                .is_ok()
        }

        /// Runs what it finds, then announces its sleep and looks once
        /// more; returns asleep (having found nothing).
        fn run_until_idle(&self, searching: &mut bool) {
            loop {
                while self.take() {
                    if self.idle.found_work(searching)
                        && self.queued.load(Acquire) > 0
                        && self.idle.want_notify(false)
                    {
                        self.notify_entry.store(true, SeqCst);
                    }
                    self.ran.fetch_add(1, SeqCst);
                }
                self.idle.announce_sleep(searching);
                if self.queued.load(Acquire) == 0 {
                    return;
                }
                self.idle.woke();
            }
        }

        /// One worker, asleep (announced) on entry unless `searching`
        /// (it just claimed a NOTIFY): sleeps until it sees a NOTIFY,
        /// runs what it finds, sleeps again; at most `rounds` wakeups.
        fn worker(&self, mut searching: bool, rounds: usize) {
            if searching {
                self.run_until_idle(&mut searching);
            }
            for _ in 0..rounds {
                if !self.notify_entry.load(SeqCst) {
                    return;
                }
                self.idle.woke();
                if self.notify_entry.swap(false, SeqCst) {
                    self.idle.claimed_notify(&mut searching, true);
                }
                self.run_until_idle(&mut searching);
            }
        }
    }

    /// `first_searching`: worker 0 starts as a searcher (it claimed a
    /// NOTIFY), worker 1 asleep; else both asleep.
    fn check(always: bool, first_searching: bool, tasks: usize) {
        loom::model(move || {
            let world = Arc::new(World::default());
            if first_searching {
                world.idle.sleeping.store(1, SeqCst);
                world.idle.searching.store(1, SeqCst);
            } else {
                world.idle.sleeping.store(2, SeqCst);
            }
            let workers: Vec<_> = (0..2)
                .map(|i| {
                    let w = world.clone();
                    thread::spawn(move || w.worker(first_searching && i == 0, 2))
                })
                .collect();
            for _ in 0..tasks {
                world.queue_one(always);
            }
            for w in workers {
                w.join().unwrap();
            }
            let queued = world.queued.load(SeqCst);
            assert!(
                queued == 0 || world.notify_entry.load(SeqCst),
                "{queued} tasks queued, every worker asleep, no NOTIFY on its way"
            );
            assert_eq!(world.ran.load(SeqCst) + queued, tasks);
        });
    }

    /// Work queued from outside never waits behind sleeping workers with
    /// no NOTIFY on its way: the claimer-searches rule, the last
    /// searcher's hand-off, and announce-then-look before sleeping.
    #[test]
    fn queued_work_always_has_a_worker_or_a_notify_on_its_way() {
        check(false, false, 2);
    }

    /// The same while a worker searches when the work arrives (a searcher
    /// that goes to sleep must stop counting as one first).
    #[test]
    fn work_queued_while_a_worker_searches_is_never_stranded() {
        check(false, true, 1);
    }

    /// The same with `always` notifies (spilled batches, block_on wakes).
    #[test]
    fn queued_work_with_always_notify_is_never_stranded() {
        check(true, false, 2);
    }
}
