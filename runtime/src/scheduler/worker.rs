//! A worker: the loop that runs tasks, consumes the ring and sleeps in it.
//!
//! # Loop
//!
//! ```text
//!   loop:
//!     every EVENT_INTERVAL ticks: injector first (fairness), then harvest
//!       the ring without sleeping (I/O must not starve behind tasks), then
//!       take half the queue of a sibling that ran nothing since the last
//!       look (preempted or blocked: its tasks must not wait for it)
//!     task = LIFO slot (at most MAX_LIFO in a row) | local queue | injector
//!          | ring events (which wake tasks onto this worker) | steal
//!     run it with a fresh cooperative budget
//!     nothing anywhere: announce sleep, look once more, sleep in the ring
//! ```
//!
//! The local queue lives in a thread-local so that wakers called while a
//! task runs (or while ring events are dispatched) push straight into it.
//! The ring consumer stays on the loop's stack: dispatching events must not
//! hold the thread-local borrow, or wakers would fall back to the injector.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::task::Runnable;
use kevent_reactor::{Consumer, Event, WaitStatus};

use super::local_queue::Local;
use super::{drop_task, Shared, LOCAL_QUEUE, NOTIFY, SHUTDOWN, STALL};
use crate::driver::slab::IoToken;
use crate::task::coop;

/// Tasks a current-thread `block_on` runs between polls of its own future.
const EVENT_INTERVAL: u32 = 61;
/// Most tasks taken from the LIFO slot in a row before the queue's front.
const MAX_LIFO: u32 = 3;
/// Tasks queued on a worker (its LIFO slot included) from which a task it
/// spawns or wakes wakes a sleeping sibling to steal. Waking a thread costs
/// ~15-30 µs here (a context switch each way, more when the CPUs are busy),
/// about what a worker needs to run a few typical tasks itself: for a
/// shorter backlog the sibling arrives to find nothing left, and every such
/// wakeup is two context switches spent for nothing. tokio wakes one for
/// any second task. A worker that blocks with a short backlog behind it is
/// covered by the stall check, as a blocked one always was.
const NOTIFY_BACKLOG: usize = 4;
/// The same for tasks woken by the events a worker dispatches (I/O,
/// timers, send completions): one claim batch. The ring already shares
/// events out (a batch beyond what its publisher claims wakes one sleeper),
/// so a worker's own claim is its share; waking a sibling for a few of its
/// tasks costs more than it saves. Measured at 2 workers under HTTP load
/// (BENCHMARKS.md, stop 17): futex calls per request 0.021-0.027 with the
/// spawn rule, 0.009-0.012 with this one, at the same CPU per request.
const NOTIFY_BACKLOG_DISPATCH: usize = CLAIM_BATCH;
/// The same for a task that woke itself while it ran (`yield_now`, an
/// exhausted coop budget, hyper's dispatcher yielding after 16 messages):
/// it is no new work, only a turn given back, so it counts like the
/// dispatch rule. With the spawn rule, hyper's yields under pipelined load
/// woke the sleeping sibling 0.007 times per request (futex calls; tokio
/// 0.003-0.005); with this one 0.002, at 2 workers (BENCHMARKS.md, stop 23).
/// A backlog of yielding tasks that lasts is `SPREAD_AFTER`'s.
const NOTIFY_BACKLOG_YIELD: usize = CLAIM_BATCH;
/// How long a worker may run with tasks waiting behind it before it wakes
/// a sleeping sibling to steal them, whatever their count: a backlog that
/// lasts this long is worth the ~15-30 µs a wakeup costs. The counts above
/// suit short tasks; a handler that computes for 100 µs left a 64-task
/// backlog to one worker for milliseconds while the other slept
/// (BENCHMARKS.md, stop 22).
const SPREAD_AFTER: std::time::Duration = std::time::Duration::from_micros(500);
/// Ticks between looks at the clock while a backlog lasts (`SPREAD_AFTER`).
const SPREAD_CHECK_TICKS: u32 = 8;
/// Events claimed from the ring at a time.
pub(crate) const CLAIM_BATCH: usize = kevent_reactor::BUSY_CLAIM;

/// A worker's queue and identity, reachable from wakers on its thread.
pub(crate) struct WorkerCtx {
    /// The runtime.
    pub(crate) shared: Arc<Shared>,
    /// This worker's index (also its ring consumer slot and affinity hint).
    pub(crate) index: usize,
    /// The local run queue.
    local: RefCell<Local<Runnable>>,
    /// The worker is dispatching events: the tasks it wakes now came with
    /// them (see `NOTIFY_BACKLOG_DISPATCH`).
    dispatching: std::cell::Cell<bool>,
    /// Idle timer registrations this worker keeps for its own next timers,
    /// newest last: hyper arms and drops a timer per request, and a stack
    /// of its own costs no atomic and hands back the entry it just used,
    /// still in cache (the runtime's shared pool takes the overflow). An
    /// entry may still be armed in the ring (see [`IdleTimer`]).
    timers: RefCell<Vec<IdleTimer>>,
}

impl WorkerCtx {
    /// Hands this worker's idle timers to the runtime's pool, for the
    /// workers that stay; what it cannot take is removed.
    fn give_back_timers(&self) {
        for IdleTimer {
            key, token, armed, ..
        } in self.timers.borrow_mut().drain(..)
        {
            // The shared pool holds disarmed timers only.
            if armed.is_some() && self.shared.kevent.disarm_timer(key).is_err() {
                self.shared.io.release(token);
                continue;
            }
            if let Err((key, token)) = self.shared.timer_pool.push((key, token)) {
                let _ = self.shared.kevent.deregister(key);
                self.shared.io.release(token);
            }
        }
    }
}

/// Most idle timer registrations a worker keeps for itself.
const LOCAL_TIMERS: usize = 64;

/// An idle timer registration in a worker's own pool.
///
/// `armed`: the ring timer still runs and fires at this instant. A timer
/// dropped before its deadline (hyper's header-read timeout, once the
/// request has arrived) is kept so, its wakers cleared: the next sleep on
/// this worker whose deadline is no earlier takes it with no ring
/// operation at all, and re-arms it only if that early expiry comes while
/// it still waits (as `Sleep::reset` to a later deadline does). An expiry
/// while idle wakes nobody; it leaves readiness bits that the taker's
/// `Sleep` reads as an early expiry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdleTimer {
    pub(crate) key: kevent_reactor::Key,
    pub(crate) token: IoToken,
    pub(crate) armed: Option<std::time::Instant>,
    /// The worker the ring's affinity hint names (`usize::MAX`: none).
    pub(crate) hint: usize,
}

/// An idle timer registration from this worker's own pool, if this thread
/// is one of `shared`'s workers and has one.
pub(crate) fn take_timer(shared: &Arc<Shared>) -> Option<IdleTimer> {
    WORKER
        .try_with(|w| {
            let w = w.try_borrow().ok()?;
            let ctx = w.as_ref().filter(|ctx| Arc::ptr_eq(&ctx.shared, shared))?;
            let timer = ctx.timers.try_borrow_mut().ok()?.pop();
            timer
        })
        .ok()
        .flatten()
}

/// Keeps an idle timer registration in this worker's own pool. Gives it
/// back when this thread is no worker of `shared`'s or its pool is full.
pub(crate) fn keep_timer(shared: &Arc<Shared>, timer: IdleTimer) -> Result<(), IdleTimer> {
    let mut timer = Some(timer);
    let _ = WORKER.try_with(|w| {
        if let Ok(w) = w.try_borrow() {
            if let Some(ctx) = w.as_ref().filter(|ctx| Arc::ptr_eq(&ctx.shared, shared)) {
                if let Ok(mut timers) = ctx.timers.try_borrow_mut() {
                    if timers.len() < LOCAL_TIMERS {
                        timers.extend(timer.take());
                    }
                }
            }
        }
    });
    match timer {
        None => Ok(()),
        Some(timer) => Err(timer),
    }
}

thread_local! {
    /// The worker running on this thread, if any.
    static WORKER: RefCell<Option<Rc<WorkerCtx>>> = const { RefCell::new(None) };
}

/// The current worker context, if this thread is a worker.
pub(crate) fn current() -> Option<Rc<WorkerCtx>> {
    WORKER.with(|w| w.borrow().clone())
}

/// Index of the worker running on this thread within `shared`'s runtime.
pub(crate) fn current_index(shared: &Arc<Shared>) -> Option<usize> {
    WORKER.with(|w| {
        w.borrow()
            .as_ref()
            .filter(|ctx| Arc::ptr_eq(&ctx.shared, shared))
            .map(|ctx| ctx.index)
    })
}

/// A worker thread lent to a blocking closure (`task::block_in_place`):
/// while this lives the thread is no worker, so wakers called on it queue
/// into the injector; dropping it makes the thread a worker again.
pub(crate) struct Lent {
    /// The worker context to put back.
    ctx: Rc<WorkerCtx>,
    /// Runs the tasks meanwhile when this is the only worker.
    _stand_in: Option<super::stand_in::StandIn>,
}

/// Lends this worker thread to a blocking closure: the tasks queued on it
/// (its LIFO slot included) move to the injector, where the other workers
/// take them at once (one is woken; with no other worker, a stand-in
/// thread runs them), and the thread stops being a worker until the
/// returned guard drops. `None` when this thread is no worker.
pub(crate) fn lend_for_blocking() -> Option<Lent> {
    let ctx = current()?;
    let moved = {
        let mut local = ctx.local.try_borrow_mut().ok()?;
        let mut moved = 0;
        let mut tasks = std::iter::from_fn(|| local.pop()).inspect(|_| moved += 1);
        ctx.shared.injector.push_batch(&mut tasks);
        moved
    };
    if moved > 0 {
        ctx.shared.notify_one(true);
    }
    WORKER.with(|w| *w.borrow_mut() = None);
    let stand_in = super::stand_in::start(&ctx.shared);
    Some(Lent {
        ctx,
        _stand_in: stand_in,
    })
}

impl Drop for Lent {
    fn drop(&mut self) {
        let ctx = self.ctx.clone();
        WORKER.with(|w| *w.borrow_mut() = Some(ctx));
    }
}

/// Pushes onto the current worker's queue if this thread is one of
/// `shared`'s workers; gives the task back otherwise.
pub(crate) fn schedule_local(
    shared: &Arc<Shared>,
    task: Runnable,
    yielded: bool,
) -> Result<(), Runnable> {
    let Some(ctx) = current() else {
        return Err(task);
    };
    if !Arc::ptr_eq(&ctx.shared, shared) {
        return Err(task);
    }
    let Ok(mut local) = ctx.local.try_borrow_mut() else {
        return Err(task);
    };
    let mut overflow =
        |batch: &mut dyn Iterator<Item = Runnable>| shared.injector.push_batch(batch);
    let mut queued = false;
    if yielded {
        local.push_back(task, &mut overflow);
        queued = true;
    } else if let Some(prev) = local.push_lifo(task) {
        local.push_back(prev, &mut overflow);
        queued = true;
    }
    // A sibling is worth waking only for a backlog this worker would not
    // get through before the sibling is up (see `NOTIFY_BACKLOG`).
    let backlog = if ctx.dispatching.get() {
        NOTIFY_BACKLOG_DISPATCH
    } else if yielded {
        NOTIFY_BACKLOG_YIELD
    } else {
        NOTIFY_BACKLOG
    };
    let notify = queued && local.len() >= backlog;
    drop(local);
    if notify {
        shared.notify_sibling(ctx.index);
    }
    Ok(())
}

/// A worker's private state, kept on its loop's stack.
pub(crate) struct Core {
    /// Worker index.
    index: usize,
    /// The local queue, moved into the thread-local while running.
    local: Option<Local<Runnable>>,
    /// This worker's ring consumer.
    consumer: Consumer,
    /// Loop iterations.
    tick: u32,
    /// LIFO pops in a row.
    lifo_streak: u32,
    /// Claimed a NOTIFY and counted in `Idle::searching` until it runs a
    /// task or sleeps again.
    searching: bool,
    /// Where the next steal starts.
    rand: u32,
    /// Scratch for claimed events.
    events: Vec<Event>,
    /// Scratch for injector batches.
    batch: Vec<Runnable>,
    /// Ticks between non-sleeping harvests (`Builder::event_interval`).
    event_interval: u32,
    /// Ticks between injector-first looks (`Builder::global_queue_interval`).
    global_queue_interval: u32,
    /// When the worker last woke, for its busy time.
    awake_since: std::time::Instant,
    /// Since when tasks have waited in the local queue without a break (or
    /// since this worker last woke a sibling for them): see `SPREAD_AFTER`.
    backlog_since: Option<std::time::Instant>,
    /// Each worker's poll count at this worker's previous look
    /// (`rescue_preempted`); sized when the worker enters its runtime.
    peer_polls: Vec<u64>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Core {
    pub(crate) fn new(index: usize, local: Local<Runnable>, consumer: Consumer) -> Core {
        Core {
            index,
            local: Some(local),
            consumer,
            tick: 0,
            lifo_streak: 0,
            searching: false,
            rand: (index as u32).wrapping_mul(0x9E37_79B9) | 1,
            events: Vec::with_capacity(CLAIM_BATCH),
            batch: Vec::new(),
            event_interval: EVENT_INTERVAL,
            global_queue_interval: EVENT_INTERVAL,
            awake_since: std::time::Instant::now(),
            backlog_since: None,
            peer_polls: Vec::new(),
        }
    }

    /// The worker index.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// Drops every queued task (shutdown).
    pub(crate) fn drain(&mut self) {
        if let Some(local) = self.local.as_mut() {
            while let Some(t) = local.pop() {
                drop_task(t);
            }
        }
    }
}

/// A worker running on this thread: the core plus its installed context.
pub(crate) struct Worker {
    /// The runtime.
    shared: Arc<Shared>,
    /// Private state.
    core: Core,
    /// The context installed in the thread-local.
    ctx: Rc<WorkerCtx>,
}

impl Worker {
    /// Installs `core` as this thread's worker.
    pub(crate) fn enter(shared: Arc<Shared>, mut core: Core) -> Worker {
        let local = core.local.take().expect("core without its queue");
        let knobs = shared.knobs();
        core.event_interval = knobs.event_interval;
        core.global_queue_interval = knobs.global_queue_interval;
        core.awake_since = std::time::Instant::now();
        core.peer_polls = vec![u64::MAX; shared.remotes.len()];
        let ctx = Rc::new(WorkerCtx {
            shared: shared.clone(),
            index: core.index,
            local: RefCell::new(local),
            dispatching: std::cell::Cell::new(false),
            timers: RefCell::new(Vec::new()),
        });
        WORKER.with(|w| *w.borrow_mut() = Some(ctx.clone()));
        Worker { shared, core, ctx }
    }

    /// Uninstalls the worker and gives its core back.
    pub(crate) fn leave(self) -> Core {
        WORKER.with(|w| *w.borrow_mut() = None);
        let Worker { mut core, ctx, .. } = self;
        ctx.give_back_timers();
        let ctx = Rc::try_unwrap(ctx)
            .ok()
            .expect("worker context still borrowed");
        core.local = Some(ctx.local.into_inner());
        core
    }

    pub(crate) fn shared_ref(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn remote(&self) -> &super::Remote {
        &self.shared.remotes[self.core.index]
    }

    /// Runs tasks until shutdown (multi-thread workers).
    pub(crate) fn run(&mut self) {
        while !self.shared.shutdown.load(Ordering::Acquire) {
            if !self.run_once() {
                self.park(None);
            }
        }
        let mut local = self.ctx.local.borrow_mut();
        while let Some(t) = local.pop() {
            drop_task(t);
        }
    }

    /// Finds and runs one task. False when there was nothing to do.
    pub(crate) fn run_once(&mut self) -> bool {
        self.core.tick = self.core.tick.wrapping_add(1);
        if self.core.tick % self.core.event_interval == 0 {
            self.publish_syscalls();
            // I/O and timers first: with more runnable tasks than the local
            // queue holds the injector is never empty, and returning before
            // the harvest would starve them forever.
            self.harvest();
            self.rescue_preempted();
        }
        if self.core.tick % self.core.global_queue_interval == 0 {
            // Fairness: take a batch from the injector, not one task, or a
            // stream of remote spawns trickles in at one per interval.
            if let Some(task) = self.next_injected() {
                self.run_task(task);
                return true;
            }
        }
        if let Some(task) = self.next_local() {
            self.run_task(task);
            return true;
        }
        if let Some(task) = self.next_injected() {
            self.run_task(task);
            return true;
        }
        if self.consume_ring() > 0 {
            return true;
        }
        if self.harvest() > 0 {
            return true;
        }
        if let Some(task) = self.steal() {
            self.run_task(task);
            return true;
        }
        false
    }

    fn next_local(&mut self) -> Option<Runnable> {
        let mut local = self.ctx.local.borrow_mut();
        if self.core.lifo_streak >= MAX_LIFO {
            self.core.lifo_streak = 0;
            if let Some(t) = local.pop_fifo() {
                return Some(t);
            }
        }
        let had_lifo = local.has_lifo();
        let t = local.pop();
        if t.is_some() && had_lifo {
            self.core.lifo_streak += 1;
        } else {
            self.core.lifo_streak = 0;
        }
        t
    }

    fn next_injected(&mut self) -> Option<Runnable> {
        if self.shared.injector.is_empty() {
            return None;
        }
        let mut local = self.ctx.local.borrow_mut();
        let room = LOCAL_QUEUE.saturating_sub(local.len()) / 2;
        let per_worker = self.shared.injector.len() / self.shared.remotes.len() + 1;
        let mut batch = std::mem::take(&mut self.core.batch);
        self.shared
            .injector
            .pop_batch(room.min(per_worker).max(1), &mut batch);
        let mut tasks = batch.drain(..);
        let first = tasks.next();
        let injector = &self.shared.injector;
        let spilled = tasks.len() > 0;
        for t in tasks {
            // A thief mid-copy can make the queue look fuller than `room`
            // said; overflow then goes back where it came from.
            local.push_back(t, &mut |rest| injector.push_batch(rest));
        }
        self.core.batch = batch;
        drop(local);
        if spilled && !self.shared.single {
            // We took more than we run now: let an idle worker steal some
            // (even if we are still counted as searching ourselves).
            self.shared.notify_one(true);
        }
        first
    }

    fn steal(&mut self) -> Option<Runnable> {
        let n = self.shared.remotes.len();
        if n <= 1 {
            return None;
        }
        self.core.rand ^= self.core.rand << 13;
        self.core.rand ^= self.core.rand >> 17;
        self.core.rand ^= self.core.rand << 5;
        let start = self.core.rand as usize % n;
        let mut local = self.ctx.local.borrow_mut();
        for i in 0..n {
            let victim = (start + i) % n;
            if victim == self.core.index {
                continue;
            }
            if let Some(t) = self.shared.remotes[victim].steal.steal_into(&mut local) {
                self.remote()
                    .counters
                    .steals
                    .fetch_add(1, Ordering::Relaxed);
                return Some(t);
            }
        }
        None
    }

    fn run_task(&mut self, task: Runnable) {
        if !self.shared.single {
            self.spread_backlog();
        }
        let remote = self.remote();
        super::bump(&remote.counters.polls, 1);
        if self.core.searching {
            self.transition_from_searching();
        }
        // While a task runs and a worker sleeps, the stall check stays
        // armed: this task may block (see `check_stalls`). Armed already, as
        // a rule: one relaxed load.
        if !self.shared.single {
            self.shared.arm_stall_check();
        }
        coop::budget(|| task.run());
    }

    /// Wakes a sleeping sibling to steal once tasks have waited behind
    /// this worker for `SPREAD_AFTER` without a break.
    fn spread_backlog(&mut self) {
        if self.ctx.local.borrow().is_empty() {
            self.core.backlog_since = None;
            return;
        }
        // While the backlog lasts, the clock is read every few tasks only:
        // a read per poll was a measurable share of a poll of a task that
        // only yields (`yield_many`), and a backlog worth spreading is of
        // long tasks, where a few more of them add little to the wait.
        if self.core.backlog_since.is_some() && self.core.tick % SPREAD_CHECK_TICKS != 0 {
            return;
        }
        let now = std::time::Instant::now();
        match self.core.backlog_since {
            None => self.core.backlog_since = Some(now),
            Some(since) if now.duration_since(since) >= SPREAD_AFTER => {
                self.core.backlog_since = Some(now);
                self.shared.notify_sibling(self.core.index);
            }
            Some(_) => {}
        }
    }

    /// Polls the backend without sleeping, then consumes what came.
    fn harvest(&mut self) -> usize {
        self.ctx.dispatching.set(true);
        let _ = self.core.consumer.harvest();
        self.ctx.dispatching.set(false);
        self.consume_ring()
    }

    /// Claims ring events and dispatches them; returns how many.
    pub(crate) fn consume_ring(&mut self) -> usize {
        self.core.events.clear();
        self.core
            .events
            .extend_from_slice(self.core.consumer.claim(CLAIM_BATCH));
        let n = self.core.events.len();
        if n == 0 {
            return 0;
        }
        let counters = &self.shared.remotes[self.core.index].counters;
        super::bump(&counters.events, n as u64);
        let mut stall = false;
        let mut notified = false;
        self.ctx.dispatching.set(true);
        for ev in &self.core.events {
            match ev.token {
                NOTIFY => notified = true,
                SHUTDOWN => {}
                STALL => stall = true,
                token => {
                    if let Some(io) = self.shared.io.get(IoToken::from_usize(token.0)) {
                        io.dispatch(ev.ready);
                    }
                }
            }
        }
        self.ctx.dispatching.set(false);
        // Commit after dispatching: until then each registration is ours
        // alone, and readiness arriving meanwhile is queued again.
        self.core.consumer.commit(n);
        if notified {
            self.claimed_notify();
        }
        if stall {
            self.check_stalls();
        }
        n
    }

    /// This worker claimed a NOTIFY: it searches now (counted before the
    /// pending flag clears, so work queued meanwhile sees one or the other
    /// and posts no second wakeup; see `Shared::notify_one`).
    fn claimed_notify(&mut self) {
        let counted = !self.shared.single;
        self.shared
            .idle
            .claimed_notify(&mut self.core.searching, counted);
    }

    /// A searching worker found a task. If it was the last searcher and
    /// more work is waiting, it wakes another worker to look (tokio's
    /// searching hand-off): while anyone searches, new work posts no wakeup.
    fn transition_from_searching(&mut self) {
        if self.shared.idle.found_work(&mut self.core.searching)
            && (!self.shared.injector.is_empty() || self.ctx.local.borrow().len() > 1)
        {
            self.shared.notify_one(false);
        }
    }

    /// Sleeps in the ring until an event (or `limit`).
    pub(crate) fn park(&mut self, limit: Option<Duration>) {
        self.park_unless(limit, || false);
    }

    /// Like `park`, but does not sleep if `ready()` holds after the worker
    /// announced its sleep (so a wakeup racing with it is not lost).
    pub(crate) fn park_unless(&mut self, limit: Option<Duration>, ready: impl Fn() -> bool) {
        // Whatever waited before is gone (run or stolen): a backlog after
        // the sleep is timed from then.
        self.core.backlog_since = None;
        let shared = self.shared.clone();
        let seen = self.core.consumer.front();
        // Either the queuer sees us asleep and not searching, or we see its
        // work below.
        shared.idle.announce_sleep(&mut self.core.searching);
        if shared.shutdown.load(Ordering::Acquire)
            || ready()
            || !shared.injector.is_empty()
            || self.others_have_queued_work()
        {
            shared.idle.woke();
            return;
        }
        let timeout = limit;
        if !shared.single && shared.idle.sleeping() < shared.remotes.len() {
            // Others are busy: watch them while we sleep.
            shared.arm_stall_check();
        }
        let counters = &self.remote().counters;
        super::bump(&counters.parks, 1);
        let busy = self.core.awake_since.elapsed().as_nanos() as u64;
        super::bump(&counters.busy_nanos, busy);
        self.publish_syscalls();
        let knobs = shared.knobs();
        if let Some(hook) = &knobs.on_park {
            hook();
        }
        let status = self.core.consumer.wait(seen, 1, timeout);
        if let Some(hook) = &knobs.on_unpark {
            hook();
        }
        self.core.awake_since = std::time::Instant::now();
        super::bump(&self.remote().counters.unparks, 1);
        shared.idle.woke();
        match status {
            Ok(WaitStatus::Ready) => {
                // A NOTIFY among what woke us makes this worker a searcher.
                // Take what woke us now: a NOTIFY left unclaimed while we run
                // a task would swallow the posts that follow it.
                self.consume_ring();
            }
            Ok(WaitStatus::Full) => {
                self.consume_ring();
            }
            _ => {}
        }
    }

    /// Copies this thread's syscall count into the worker's counters.
    fn publish_syscalls(&self) {
        self.remote()
            .counters
            .syscalls
            .store(kevent_reactor::syscalls::this_thread(), Ordering::Relaxed);
    }

    /// The stall check fired: steal from workers whose poll count has not
    /// moved since the previous check and who have tasks waiting (their
    /// LIFO slot included: a task woken into it by a task that then blocked
    /// must not wait for that worker), and keep checking while any worker
    /// is busy.
    fn check_stalls(&mut self) {
        let shared = self.shared.clone();
        let stalled: Vec<usize> = {
            let mut last = shared.stall_ticks.lock();
            shared
                .remotes
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    let tick = r.counters.polls.load(Ordering::Relaxed);
                    let stuck = last[i] == tick && i != self.core.index && !r.steal.is_empty();
                    last[i] = tick;
                    stuck.then_some(i)
                })
                .collect()
        };
        shared.stall_armed.store(false, Ordering::SeqCst);
        if shared.idle.sleeping() + 1 < shared.remotes.len() {
            shared.arm_stall_check();
        }
        for i in stalled {
            if self.steal_queued(i) {
                break;
            }
        }
    }

    /// Takes half of worker `victim`'s queued tasks into the local queue,
    /// to run in turn after the tasks already there. False if it had none.
    fn steal_queued(&mut self, victim: usize) -> bool {
        let shared = &self.shared;
        let mut local = self.ctx.local.borrow_mut();
        let Some(task) = shared.remotes[victim].steal.steal_into(&mut local) else {
            return false;
        };
        self.remote()
            .counters
            .steals
            .fetch_add(1, Ordering::Relaxed);
        local.push_back(task, &mut |rest| shared.injector.push_batch(rest));
        true
    }

    /// A busy worker's look at the others, every `event_interval` ticks:
    /// one whose poll count has not moved since the previous look, with
    /// tasks queued, is off its CPU (the kernel preempted it: with more
    /// runnable threads than CPUs, for a whole time slice, 1.5-3 ms here)
    /// or stuck in a long task, and its tasks would wait for it. Take half.
    /// A busy worker never steals otherwise, and the stall check runs only
    /// while some worker sleeps. Cost when nobody is stuck: one relaxed
    /// load per worker per interval.
    fn rescue_preempted(&mut self) {
        for i in 0..self.core.peer_polls.len() {
            if i == self.core.index {
                continue;
            }
            let remote = &self.shared.remotes[i];
            let polls = remote.counters.polls.load(Ordering::Relaxed);
            let stuck = self.core.peer_polls[i] == polls && !remote.steal.is_empty();
            self.core.peer_polls[i] = polls;
            if stuck {
                self.steal_queued(i);
            }
        }
    }

    /// Whether another worker has tasks queued (LIFO slots aside: a busy
    /// worker runs its LIFO task next, and stealing it would move a
    /// ping-pong across cores).
    fn others_have_queued_work(&self) -> bool {
        self.shared
            .remotes
            .iter()
            .enumerate()
            .any(|(i, r)| i != self.core.index && r.steal.queue_len() > 0)
    }

    /// Runs `future` to completion on this thread, running the runtime's
    /// tasks while it is pending (the current-thread flavor).
    pub(crate) fn block_on<F: Future>(&mut self, future: F) -> F::Output {
        let woken = Arc::new(MainWaker {
            woken: std::sync::atomic::AtomicBool::new(true),
            shared: self.shared.clone(),
        });
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        // A paused clock's jump waits for one look at the backend first.
        let mut polled_before_jump = false;
        loop {
            let mut woke_itself = false;
            if woken.woken.swap(false, Ordering::AcqRel) {
                if let Poll::Ready(out) = coop::budget(|| future.as_mut().poll(&mut cx)) {
                    return out;
                }
                // Woken during its own poll (`yield_now`, or a future that
                // spins on its waker): like a yielding task it goes behind
                // the tasks already queued, and when none is left
                // `run_once` harvests the ring, so its timers and I/O fire
                // however often it wakes itself.
                woke_itself = woken.woken.load(Ordering::Acquire);
            }
            let mut ran = 0;
            while ran < EVENT_INTERVAL && (woke_itself || !woken.woken.load(Ordering::Acquire)) {
                if !self.run_once() {
                    break;
                }
                ran += 1;
            }
            if ran > 0 || woken.woken.load(Ordering::Acquire) {
                polled_before_jump = false;
                continue;
            }
            // Nothing to run and nothing ready on the ring (`run_once`
            // harvested it): a paused clock jumps to its next timer rather
            // than sleep, unless a blocking closure may still wake us.
            let clock = &self.shared.clock;
            if clock.is_paused() {
                if !self.shared.blocking.busy() {
                    // Ask the backend once without sleeping (submitting
                    // what is queued: a receive armed just now may complete
                    // at once), and jump only if that brought nothing.
                    if !polled_before_jump {
                        polled_before_jump = true;
                        self.park_unless(Some(Duration::ZERO), || {
                            woken.woken.load(Ordering::SeqCst)
                        });
                        continue;
                    }
                    polled_before_jump = false;
                    if clock.advance_to_next_sleeper() {
                        continue;
                    }
                } else {
                    self.park_unless(Some(Duration::from_millis(1)), || {
                        woken.woken.load(Ordering::SeqCst)
                    });
                    continue;
                }
            }
            self.park_unless(None, || woken.woken.load(Ordering::SeqCst));
        }
    }
}

/// Wakes the future given to a current-thread `block_on`.
struct MainWaker {
    /// Set by `wake`, cleared before each poll.
    woken: std::sync::atomic::AtomicBool,
    /// The runtime, to post NOTIFY when the thread sleeps in the ring.
    shared: Arc<Shared>,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::SeqCst) {
            // The block_on thread may sleep in the ring (`park` announces
            // it in `idle.sleeping` before its last check of `woken`).
            self.shared.notify_one(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    /// Polls `f` once, as a task's first poll would.
    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(std::task::Waker::noop()))
    }

    #[test]
    fn a_timer_dropped_on_a_worker_is_kept_there_for_its_next_one() {
        let rt = crate::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let kept = rt.block_on(async {
            crate::spawn(async {
                let shared = crate::driver::current_handle().shared.clone();
                // Drain what the runtime's own timers left here.
                while super::take_timer(&shared).is_some() {}
                {
                    let mut s = pin!(crate::time::sleep(Duration::from_secs(30)));
                    assert!(poll_once(s.as_mut()).is_pending());
                }
                // Dropped before its deadline: kept still armed.
                let kept = super::take_timer(&shared).map(|t| t.armed.is_some());
                // Dropped after its expiry: kept disarmed.
                crate::time::sleep(Duration::from_millis(1)).await;
                let fired = super::take_timer(&shared).map(|t| t.armed.is_some());
                // Off the workers (here: a plain thread) nothing is kept.
                let elsewhere = std::thread::spawn(move || super::take_timer(&shared).is_none())
                    .join()
                    .unwrap();
                (kept, fired, elsewhere)
            })
            .await
            .unwrap()
        });
        assert_eq!(kept, (Some(true), Some(false), true));
    }
}
