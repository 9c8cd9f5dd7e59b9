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

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kevent_reactor::Event;

use super::{Flavor, Shared, NOTIFY};
use crate::driver::slab::IoToken;
use crate::runtime::{context, Handle};
use crate::task::coop;

/// How long the stand-in waits in the ring before looking at the injector
/// again (a task queued from elsewhere posts no wakeup while the one
/// worker is busy).
const LOOK_AGAIN: Duration = Duration::from_millis(1);

/// Whether a stand-in is wanted and whether its thread runs.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Workers lent to `block_in_place` now (0 or 1).
    lent: AtomicUsize,
    /// A stand-in thread is running (it checks `lent` before it exits).
    alive: AtomicBool,
}

/// A worker lent to a blocking closure; dropping it lets the stand-in stop.
pub(crate) struct StandIn {
    /// The runtime.
    shared: Arc<Shared>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.shared.stand_in.lent.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts a stand-in for `shared`'s only worker (or keeps the one still
/// running); `None` with more workers or on a current-thread runtime.
pub(crate) fn start(shared: &Arc<Shared>) -> Option<StandIn> {
    if shared.flavor != Flavor::MultiThread || shared.remotes.len() != 1 {
        return None;
    }
    let state = &shared.stand_in;
    state.lent.fetch_add(1, Ordering::SeqCst);
    let lent = StandIn {
        shared: shared.clone(),
    };
    // A stand-in still running (stopping after the previous closure)
    // sees `lent` again and goes on.
    if state
        .alive
        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
    {
        let handle = Handle {
            shared: shared.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("kevent-stand-in".into())
            .spawn(move || stand_in_main(handle));
        if spawned.is_err() {
            state.alive.store(false, Ordering::SeqCst);
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
        state.alive.store(false, Ordering::SeqCst);
        if state.lent.load(Ordering::SeqCst) == 0
            || shared.shutdown.load(Ordering::Acquire)
            || state
                .alive
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
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
