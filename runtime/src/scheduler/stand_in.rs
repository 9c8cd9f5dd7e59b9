//! The stand-in: while the only worker of a multi-thread runtime is lent
//! to `task::block_in_place`, a thread of its own runs the runtime's tasks
//! and serves its ring (I/O, timers), so that nothing waits for the
//! blocking closure. With more workers the others do that already (the
//! lent worker's queue moves to the injector, see `worker::lend_for_blocking`).
//!
//! The stand-in takes tasks only from the injector (where every task woken
//! or spawned while the worker is lent goes) and claims ring events through
//! a consumer of its own, in the slot after the worker's (the builder
//! reserves it). It claims a `NOTIFY` like a worker would, but without
//! searching: the one worker is not asleep, so no wakeup is owed to it.
//! It stops when the closure returns, after the task it is running (and
//! goes on if the worker is lent again before it has stopped).

use std::sync::Arc;
use std::time::Duration;

use kevent_reactor::Event;

use crate::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::{Flavor, Shared, NOTIFY};
use crate::driver::slab::IoToken;
use crate::runtime::{context, Handle};
use crate::task::coop;

/// How long the stand-in waits in the ring before looking at the injector
/// again (a task queued from elsewhere posts no wakeup while the one
/// worker is busy).
const LOOK_AGAIN: Duration = Duration::from_millis(1);

/// Whether a stand-in is wanted and whether its thread runs.
///
/// The handshake: a lender counts itself in `lent`, then starts a thread
/// only if it turns `alive` on; a stopping stand-in turns `alive` off, then
/// looks at `lent` once more and goes on if it can turn `alive` back on.
/// So a worker lent while a stand-in stops is never left without one
/// (loom model `a_lent_worker_always_has_a_stand_in` below).
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Workers lent to `block_in_place` now (0 or 1).
    lent: AtomicUsize,
    /// A stand-in thread is running (it checks `lent` before it exits).
    alive: AtomicBool,
}

impl State {
    /// A worker is lent: true if the caller must start the stand-in.
    fn lend(&self) -> bool {
        self.lent.fetch_add(1, Ordering::SeqCst);
        self.alive
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// The lent worker is back.
    fn give_back(&self) {
        self.lent.fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether the stand-in is still wanted.
    fn wanted(&self) -> bool {
        self.lent.load(Ordering::SeqCst) > 0
    }

    /// The stand-in stops serving: true if it must exit, false if a worker
    /// was lent meanwhile and it goes on (it is counted alive again).
    fn try_exit(&self) -> bool {
        self.alive.store(false, Ordering::SeqCst);
        !self.wanted()
            || self
                .alive
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
    }

    /// Starting the thread failed: nobody is alive.
    fn start_failed(&self) {
        self.alive.store(false, Ordering::SeqCst);
    }
}

/// A worker lent to a blocking closure; dropping it lets the stand-in stop.
pub(crate) struct StandIn {
    /// The runtime.
    shared: Arc<Shared>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.shared.stand_in.give_back();
    }
}

/// Starts a stand-in for `shared`'s only worker (or keeps the one still
/// running); `None` with more workers or on a current-thread runtime.
pub(crate) fn start(shared: &Arc<Shared>) -> Option<StandIn> {
    if shared.flavor != Flavor::MultiThread || shared.remotes.len() != 1 {
        return None;
    }
    let lent = StandIn {
        shared: shared.clone(),
    };
    // A stand-in still running (stopping after the previous closure) sees
    // the worker lent again and goes on.
    if shared.stand_in.lend() {
        let handle = Handle {
            shared: shared.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("kevent-stand-in".into())
            .spawn(move || stand_in_main(handle));
        if spawned.is_err() {
            shared.stand_in.start_failed();
        }
    }
    Some(lent)
}

/// The stand-in thread: serves while a worker is lent, and before exiting
/// checks once more, so a worker lent as it stops is not missed.
fn stand_in_main(handle: Handle) {
    let shared = handle.shared.clone();
    let _enter = context::enter(handle);
    let _driving = context::driving();
    let state = &shared.stand_in;
    loop {
        // The slot after the worker's; free while no stand-in runs.
        if let Ok(consumer) = shared.kevent.consumer_for(shared.remotes.len()) {
            run(&shared, consumer);
        }
        if shared.shutdown.load(std::sync::atomic::Ordering::Acquire) || state.try_exit() {
            return;
        }
    }
}

/// Runs injected tasks and claims ring events until no worker is lent.
fn run(shared: &Shared, mut consumer: kevent_reactor::Consumer) {
    let mut batch = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    while shared.stand_in.lent.load(Ordering::SeqCst) > 0
        && !shared.shutdown.load(Ordering::Acquire)
    {
        batch.clear();
        shared.injector.pop_batch(1, &mut batch);
        let ran = batch.len();
        for task in batch.drain(..) {
            coop::budget(|| task.run());
        }
        let _ = consumer.harvest();
        events.clear();
        events.extend_from_slice(consumer.claim(super::worker::CLAIM_BATCH));
        for ev in &events {
            match ev.token {
                NOTIFY => {
                    let mut searching = false;
                    shared.idle.claimed_notify(&mut searching, false);
                }
                token => {
                    if let Some(io) = shared.io.get(IoToken::from_usize(token.0)) {
                        io.dispatch(ev.ready);
                    }
                }
            }
        }
        consumer.commit(events.len());
        if ran == 0 && events.is_empty() {
            let seen = consumer.front();
            let _ = consumer.wait(seen, 1, LOOK_AGAIN);
        }
    }
}

#[cfg(all(test, loom))]
mod loom {
    //! The stand-in handshake under loom: a worker lent while the stand-in
    //! stops must find it going on, or start a new one.
    use super::State;
    use crate::loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use crate::loom::sync::Arc;
    use crate::loom::thread;

    #[test]
    fn a_lent_worker_always_has_a_stand_in() {
        loom::model(|| {
            let state = Arc::new(State::default());
            // A stand-in is running for a closure that has just returned.
            assert!(state.lend());
            state.give_back();
            // Stand-ins running at the end: the old one if it went on, plus
            // any the lender started.
            let running = Arc::new(AtomicUsize::new(1));
            let (s, r) = (state.clone(), running.clone());
            let stand_in = thread::spawn(move || {
                if s.try_exit() {
                    r.fetch_sub(1, SeqCst);
                }
            });
            // The worker is lent again meanwhile.
            if state.lend() {
                running.fetch_add(1, SeqCst);
            }
            stand_in.join().unwrap();
            assert!(state.wanted());
            assert_eq!(
                running.load(SeqCst),
                1,
                "a lent worker without exactly one stand-in"
            );
        });
    }
}
