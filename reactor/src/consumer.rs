//! A consumer: one thread's handle on the ring (`kevent_wait` and
//! `kevent_commit` of the 2006 kevent interface).
//!
//! # Waiting and harvesting
//!
//! `wait` returns at once when the front moved past the index the caller
//! saw. Otherwise the consumer goes to sleep. If nobody holds the harvester
//! role it takes it and sleeps inside the backend's poll, bounded by the
//! nearest timer; what the poll returns is published into the ring (waking
//! one other consumer if there is more than it takes itself), and the role is
//! released before the consumer returns: it never keeps the role while ready
//! work waits for it. If the role is taken, the consumer parks on its own
//! condition variable and asks for the role to be handed over when released,
//! so that whenever consumers sleep one of them watches the backend.
//!
//! Consumers that promise to harvest while they run
//! ([`Consumer::set_harvests_while_busy`], the runtime's workers) refine
//! this: while another such consumer runs, the one taking the role does not
//! sleep in the backend (the busy one sees the OS's events at its next
//! harvest, and sleeping there would only be woken by them). It parks
//! instead, watching the timers; the last consumer to go idle sleeps in the
//! backend. On io_uring a harvest reads the completion queue without the
//! role at all (`Poller::drain_now`, where `Poller::drains_concurrently`).

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use crate::event::{Event, Ready, Token};
use crate::kevent::Kevent;
use crate::registration::Key;
use crate::timer::Timeout;

/// What [`Consumer::wait`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStatus {
    /// Entries are there to claim (or the front moved past `seen`).
    Ready,
    /// The timeout passed first.
    TimedOut,
    /// The ring is full and more entries wait behind it: commit what you
    /// hold so they can come in (the 2006 interface made this a special
    /// error of `kevent_wait`; here it is a result, not an error to guess).
    Full,
}

/// Counters of one consumer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Events delivered to this consumer.
    pub consumed: u64,
    /// Times it slept (parked or in the backend).
    pub sleeps: u64,
    /// Times a publisher woke it.
    pub woken: u64,
    /// Times it polled the backend.
    pub harvests: u64,
    /// Ring entries it published from the backend or timers.
    pub published: u64,
    /// Entries it took from its own mailbox (affinity hits).
    pub mailbox_hits: u64,
}

/// A delivered, not yet committed entry.
#[derive(Debug, Clone, Copy)]
struct Held {
    /// Ring position, `None` when it came from a mailbox.
    pos: Option<u64>,
    /// The registration entry.
    entry: u64,
}

/// One thread's handle on the ring. Not `Clone`: each consumer has its own
/// sleep slot and its own claimed entries.
pub struct Consumer {
    /// The ring.
    kevent: Kevent,
    /// This consumer's slot, also its affinity hint.
    id: usize,
    /// Scratch for ring claims.
    claimed: Vec<(u64, u64)>,
    /// Delivered entries awaiting commit, oldest first.
    held: VecDeque<Held>,
    /// The events of the last claim.
    events: Vec<Event>,
    /// Scratch for harvested OS readiness.
    harvested: Vec<(u64, Ready)>,
    /// Scratch for the ring entries `harvested` turns into.
    entries: Vec<u64>,
    /// This `wait` gave the harvester role back without waking a consumer
    /// that wanted it (see `park_while_others_run`): wake it on leaving.
    owes_hand_off: bool,
    /// The ring's home consumer (`set_home`).
    home: bool,
    /// Signal mask installed while this consumer sleeps in the backend.
    sigmask: Option<libc::sigset_t>,
    /// Counters.
    stats: ConsumerStats,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("id", &self.id)
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    pub(crate) fn new(kevent: Kevent, id: usize) -> Consumer {
        Consumer {
            kevent,
            id,
            claimed: Vec::new(),
            held: VecDeque::new(),
            events: Vec::new(),
            harvested: Vec::new(),
            entries: Vec::new(),
            owes_hand_off: false,
            home: false,
            sigmask: None,
            stats: ConsumerStats::default(),
        }
    }

    /// This consumer's slot: hint entries to it with [`Kevent::set_hint`].
    pub fn id(&self) -> usize {
        self.id
    }

    /// The ring this consumer reads.
    pub fn kevent(&self) -> &Kevent {
        &self.kevent
    }

    /// The front index now; pass it to a later [`wait`](Consumer::wait).
    pub fn front(&self) -> u64 {
        self.kevent.inner.ring.front()
    }

    /// Entries delivered to this consumer and not yet committed.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// This consumer's counters.
    pub fn stats(&self) -> ConsumerStats {
        ConsumerStats {
            woken: self.kevent.inner.waiters.wakeups(self.id),
            ..self.stats
        }
    }

    /// Promises that while this consumer runs (between waits) it calls
    /// [`Consumer::harvest`] regularly, say between tasks, as a runtime's
    /// worker does. Other consumers going idle then park instead of
    /// sleeping in the backend while this one runs: it sees the OS's events
    /// at its next harvest, and the last consumer to go idle sleeps in the
    /// backend. That spares a wakeup per event a busy consumer would have
    /// taken itself anyway. The price: while every promising consumer is
    /// stuck in one long task, events wait for a parked consumer's next
    /// timer. Off by default.
    pub fn set_harvests_while_busy(&mut self, on: bool) {
        self.kevent
            .inner
            .waiters
            .set_harvests_while_busy(self.id, on);
    }

    /// Makes this consumer the ring's home (or not): on io_uring, only its
    /// thread submits requests to the ring and only it sleeps in the
    /// backend; other consumers queue their requests for it and always
    /// park (on their own futex) when idle. The kernel runs a request's
    /// completion work on the thread that submitted it and wakes that
    /// thread for it, so without a home a parked worker is woken for its
    /// own sockets' completions only to sleep again while the consumer in
    /// the backend is woken for the same event. With one, an event wakes
    /// one thread, as a readiness backend's single waiter does. For a
    /// runtime's workers, which harvest while busy
    /// ([`set_harvests_while_busy`](Consumer::set_harvests_while_busy));
    /// the price: while the home consumer is stuck in one long task,
    /// requests queued for it wait (a parked consumer's timers still
    /// fire). At most one consumer per ring should be home. A no-op on mio.
    pub fn set_home(&mut self, on: bool) {
        self.home = on;
        self.kevent.inner.backend.set_home(on);
    }

    /// Installs `mask` as the thread's signal mask, atomically, whenever
    /// this consumer sleeps in the backend (`epoll_pwait`); Linux only.
    pub fn set_sigmask(&mut self, mask: Option<libc::sigset_t>) {
        self.sigmask = mask;
    }

    /// Whether there is anything for this consumer to claim.
    fn has_work(&self, min: usize) -> bool {
        let inner = &self.kevent.inner;
        inner.ring.available() >= min.max(1)
            || inner.waiters.has_mail(self.id)
            || inner.waiters.stealable(self.id)
    }

    /// Waits for entries (`kevent_wait`).
    ///
    /// Returns at once with [`WaitStatus::Ready`] when the front moved past
    /// `seen`; otherwise sleeps until at least `min` entries can be claimed
    /// or the timeout (relative or absolute; `None`: forever) passes.
    /// Returns [`WaitStatus::Full`] at once when the ring is full and more
    /// entries wait behind it.
    pub fn wait(
        &mut self,
        seen: u64,
        min: usize,
        timeout: impl Into<Timeout>,
    ) -> io::Result<WaitStatus> {
        let deadline = timeout.into().0.map(|d| d.instant());
        let inner = self.kevent.inner.clone();
        if inner.ring.is_full() && inner.overflow_pending() {
            return Ok(WaitStatus::Full);
        }
        if inner.ring.front() != seen || inner.waiters.has_mail(self.id) {
            return Ok(WaitStatus::Ready);
        }
        let broadcasts = inner.waiters.broadcasts();
        let status = self.sleep(&inner, seen, min, deadline, broadcasts);
        if std::mem::take(&mut self.owes_hand_off) {
            // A consumer that parked wanting the harvester role while we
            // watched the timers in its place takes over now that we leave.
            inner.hand_off_harvest_role(self.id);
        }
        status
    }

    /// `wait`'s loop: announces the sleep, re-checks, sleeps (in the
    /// backend as harvester, or parked), until something came.
    fn sleep(
        &mut self,
        inner: &crate::kevent::Inner,
        seen: u64,
        min: usize,
        deadline: Option<Instant>,
        broadcasts: u64,
    ) -> io::Result<WaitStatus> {
        // The front as of our last look. Checked again after announcing
        // sleep: whatever was published since is seen before we sleep, and
        // after each wakeup that did not bring `min` entries it moves on, so
        // `min` is honoured.
        let mut seen = seen;
        loop {
            if inner.fire_timers(Some(self.id)) > 0 && self.has_work(min) {
                return Ok(WaitStatus::Ready);
            }
            if let Some(d) = deadline {
                if Instant::now() >= d {
                    return Ok(WaitStatus::TimedOut);
                }
            }
            if !self.home && inner.backend.has_home() {
                // Beside a home consumer: never the harvester (see
                // `set_home`).
                if self.park_beside_home(inner, seen, deadline, broadcasts, min)? {
                    return Ok(WaitStatus::Ready);
                }
            } else if inner.harvest.try_take() {
                inner.waiters.prepare(self.id, true);
                if inner.ring.front() != seen
                    || inner.waiters.broadcasts() != broadcasts
                    || self.has_work(min)
                {
                    inner.waiters.cancel(self.id);
                    inner.release_harvest_role(self.id);
                    return Ok(WaitStatus::Ready);
                }
                // The home consumer sleeps in the backend even while others
                // run: every completion's work is its own (`set_home`).
                if !self.home && inner.waiters.others_busy(self.id) {
                    // A consumer that harvests as it runs is running: it sees
                    // the OS's events at its next harvest, and whoever goes
                    // idle last sleeps in the backend. Sleeping there now
                    // would only be woken by events that consumer is about
                    // to take itself (tokio's idle workers likewise leave
                    // the driver to the one that parks last).
                    if self.park_while_others_run(inner, deadline, broadcasts)? {
                        return Ok(WaitStatus::Ready);
                    }
                } else {
                    let until = earliest(deadline, inner.next_timer());
                    inner.set_harvest_until(until);
                    // The timer list may have changed between reading it and
                    // announcing our deadline; arm_timer wakes us if so.
                    let until = earliest(until, inner.next_timer());
                    let timeout = until.map(|u| u.saturating_duration_since(Instant::now()));
                    self.stats.sleeps += 1;
                    self.stats.harvests += 1;
                    self.harvested.clear();
                    inner
                        .backend
                        .set_sole_consumer(inner.waiters.attached() <= 1);
                    let polled =
                        inner
                            .backend
                            .poll(&mut self.harvested, timeout, self.sigmask.as_ref());
                    let notified = inner.waiters.cancel(self.id);
                    let published = inner.absorb(&self.harvested, &mut self.entries, Some(self.id))
                        + inner.fire_timers(Some(self.id));
                    self.stats.published += published as u64;
                    inner.release_harvest_role(self.id);
                    polled?;
                    if notified && inner.waiters.broadcasts() != broadcasts {
                        return Ok(WaitStatus::Ready);
                    }
                }
            } else {
                inner.harvest.want();
                if inner.harvest.try_take() {
                    // Back to the top to take it as holder; our own want
                    // stays set until someone leaves (waking whoever else
                    // wants it now would only have it park again).
                    inner.harvest.step_aside();
                    continue;
                }
                inner.waiters.prepare(self.id, false);
                if inner.ring.front() != seen
                    || inner.waiters.broadcasts() != broadcasts
                    || self.has_work(min)
                {
                    inner.waiters.cancel(self.id);
                    return Ok(WaitStatus::Ready);
                }
                // The holder may have released the role between our retry
                // and `prepare`: its wakeup then found nobody asleep. Pairs
                // with the fence in `HarvestRole::release` (and `prepare`'s).
                if !inner.harvest.is_taken() {
                    inner.waiters.cancel(self.id);
                    continue;
                }
                self.stats.sleeps += 1;
                if self.park(inner, deadline)? && inner.waiters.broadcasts() != broadcasts {
                    // Woken by a WAKEUP_ALL event: report it even if another
                    // consumer claimed the entry first, so it reaches everyone.
                    return Ok(WaitStatus::Ready);
                }
            }
            if self.has_work(min) {
                return Ok(WaitStatus::Ready);
            }
            if inner.ring.is_full() && inner.overflow_pending() {
                return Ok(WaitStatus::Full);
            }
            seen = inner.ring.front();
        }
    }

    /// Parks (after `Waiters::prepare`) until notified or `deadline`;
    /// true if notified. Where the backend gives a word to sleep on
    /// (io_uring's completion tail), also until the kernel posts an event
    /// from this thread's own task work, which this consumer then reads
    /// and publishes itself (nobody else is woken for it); with events
    /// already waiting unread, it reads them instead of sleeping.
    fn park(
        &mut self,
        inner: &crate::kevent::Inner,
        deadline: Option<Instant>,
    ) -> io::Result<bool> {
        let Some((word, quiet)) = inner.backend.sleep_word() else {
            return Ok(inner.waiters.park(self.id, deadline, None));
        };
        let notified = match quiet {
            Some(seen) => inner.waiters.park(self.id, deadline, Some((word, seen))),
            None => inner.waiters.cancel(self.id),
        };
        if inner.backend.sleep_word().is_some_and(|(_, q)| q.is_none()) {
            self.harvested.clear();
            self.stats.harvests += 1;
            let drained = inner.backend.drain_now(&mut self.harvested);
            let published = inner.absorb(&self.harvested, &mut self.entries, Some(self.id));
            self.stats.published += published as u64;
            drained?;
        }
        Ok(notified)
    }

    /// The role holder's sleep while another consumer runs: harvest what
    /// is there without waiting, give the role back and park, watching the
    /// timers (nobody may sleep in the backend now; the stall check is one
    /// of them). True: return `Ready` (something came, or a broadcast).
    fn park_while_others_run(
        &mut self,
        inner: &crate::kevent::Inner,
        deadline: Option<Instant>,
        broadcasts: u64,
    ) -> io::Result<bool> {
        let (polled, published) = self.poll_without_sleeping(inner);
        if published > 0 || polled.is_err() || !inner.waiters.harvester_parks(self.id) {
            inner.waiters.cancel(self.id);
            inner.release_harvest_role(self.id);
            polled?;
            return Ok(true);
        }
        // Whoever wants the role is left parked: we watch the timers in
        // its place until we leave (`hand_off_harvest_role`). Waking it now
        // would only have it park again, each of us waking the other.
        // Unless nobody runs any more (the one we parked for went idle and
        // waits for the role): then it must sleep in the backend, or I/O
        // goes unwatched. Pairs with the fence in `prepare`: either we see
        // it asleep, or its re-check sees the role free.
        inner.harvest.step_aside();
        if !inner.waiters.others_busy(self.id) {
            inner.hand_off_harvest_role(self.id);
        }
        self.owes_hand_off = true;
        let notified = self.park_watching_timers(inner, deadline)?;
        Ok(notified && inner.waiters.broadcasts() != broadcasts)
    }

    /// Polls the backend without sleeping (on io_uring that also submits
    /// the sends a blocked worker left behind, `submit_stranded_sends`)
    /// and publishes what it reported and the timers that are due; returns
    /// the poll's result and the entries published.
    fn poll_without_sleeping(&mut self, inner: &crate::kevent::Inner) -> (io::Result<()>, usize) {
        self.harvested.clear();
        let polled = inner
            .backend
            .poll(&mut self.harvested, Some(Duration::ZERO), None);
        let published = inner.absorb(&self.harvested, &mut self.entries, Some(self.id))
            + inner.fire_timers(Some(self.id));
        self.stats.harvests += 1;
        self.stats.published += published as u64;
        (polled, published)
    }

    /// Parks (announced with `Waiters::prepare`) until notified, `deadline`
    /// or the nearest timer, whichever comes first (an earlier timer armed
    /// meanwhile wakes it); true if notified.
    fn park_watching_timers(
        &mut self,
        inner: &crate::kevent::Inner,
        deadline: Option<Instant>,
    ) -> io::Result<bool> {
        self.stats.sleeps += 1;
        let until = earliest(deadline, inner.next_timer());
        let notified = if inner.watch_timers(self.id, until) {
            self.park(inner, until)?
        } else {
            inner.waiters.cancel(self.id)
        };
        inner.unwatch_timers(self.id);
        Ok(notified)
    }

    /// A consumer beside the ring's home sleeps: it reads what the kernel
    /// already posted (and submits sends a blocked worker left), then
    /// parks watching the timers (the home may be busy), until a publisher
    /// wakes it or a timer is due. True if it should report `Ready`.
    fn park_beside_home(
        &mut self,
        inner: &crate::kevent::Inner,
        seen: u64,
        deadline: Option<Instant>,
        broadcasts: u64,
        min: usize,
    ) -> io::Result<bool> {
        inner.waiters.prepare(self.id, false);
        let (drained, published) = self.poll_without_sleeping(inner);
        if published > 0
            || drained.is_err()
            || inner.ring.front() != seen
            || inner.waiters.broadcasts() != broadcasts
            || self.has_work(min)
        {
            inner.waiters.cancel(self.id);
            drained?;
            return Ok(true);
        }
        let notified = self.park_watching_timers(inner, deadline)?;
        Ok(notified && inner.waiters.broadcasts() != broadcasts)
    }

    /// Polls the backend without sleeping, if no other consumer is
    /// harvesting, and fires due timers. Returns the entries published.
    pub fn harvest(&mut self) -> io::Result<usize> {
        let inner = self.kevent.inner.clone();
        let mut published = inner.fire_timers(Some(self.id));
        self.harvested.clear();
        // io_uring: what the kernel posted is read without the role, so a
        // busy consumer never takes it from (nor hands it back to) a
        // sleeping one.
        if inner.drains_concurrently {
            self.stats.harvests += 1;
            if self.home {
                // Whether the home should keep every request depends on
                // whether the others run (`uring/home.rs`).
                inner
                    .backend
                    .home_sample(inner.waiters.others_busy(self.id));
            }
            inner.backend.drain_now(&mut self.harvested)?;
            published += inner.absorb(&self.harvested, &mut self.entries, Some(self.id));
        } else if inner.harvest.try_take() {
            self.stats.harvests += 1;
            let polled = inner.backend.drain_now(&mut self.harvested);
            published += inner.absorb(&self.harvested, &mut self.entries, Some(self.id));
            inner.release_harvest_role(self.id);
            polled?;
        }
        self.stats.published += published as u64;
        Ok(published)
    }

    /// Claims up to `max` events: this consumer's mailbox first (entries
    /// hinted to it), then the ring in FIFO order, then, if it found
    /// nothing, a mailbox whose owner is not coming for it. Claimed entries
    /// are held until [`commit`](Consumer::commit): until then their
    /// registrations are dispatched to this consumer and to no other.
    pub fn claim(&mut self, max: usize) -> &[Event] {
        self.events.clear();
        if max == 0 {
            return &self.events;
        }
        let inner = &*self.kevent.inner;
        crate::backend::mark_consuming(inner.id());
        if self.home {
            inner.backend.home_claims();
        }
        let mut out = Delivery {
            id: self.id,
            events: &mut self.events,
            held: &mut self.held,
        };
        if let Some(entry) = inner.waiters.take_own(self.id) {
            self.stats.mailbox_hits += 1;
            out.deliver(inner, None, entry);
        }
        inner.waiters.running(self.id);
        let room = max - out.events.len();
        self.claimed.clear();
        if room > 0 && inner.ring.claim(room, &mut self.claimed) > 0 {
            for &(pos, entry) in &self.claimed {
                out.deliver(inner, Some(pos), entry);
            }
        }
        if out.events.is_empty() {
            if let Some(entry) = inner.waiters.steal(self.id) {
                out.deliver(inner, None, entry);
            }
        }
        self.stats.consumed += self.events.len() as u64;
        &self.events
    }

    /// Commits the oldest `n` held entries (`kevent_commit`):
    /// frees their slots and re-arms their registrations; readiness that
    /// arrived meanwhile is queued again.
    pub fn commit(&mut self, n: usize) {
        let inner = &*self.kevent.inner;
        let n = n.min(self.held.len());
        if n == 0 {
            return;
        }
        let mut again = Vec::new();
        for held in self.held.drain(..n) {
            if let Some(pos) = held.pos {
                inner.ring.commit(pos);
            }
            let key = Key::from_entry(held.entry);
            if inner.regs.slot(key.index).rearm(key) {
                again.push(held.entry);
            }
        }
        inner.after_commit(self.id);
        inner.enqueue(&again, Some(self.id));
    }
}

/// Where claimed entries go: the events handed out and the held list.
/// The earlier of two optional instants (`None`: never).
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

struct Delivery<'a> {
    /// The consumer's slot.
    id: usize,
    /// Events of this claim.
    events: &'a mut Vec<Event>,
    /// Entries awaiting commit.
    held: &'a mut VecDeque<Held>,
}

impl Delivery<'_> {
    fn deliver(&mut self, inner: &crate::kevent::Inner, pos: Option<u64>, entry: u64) {
        let key = Key::from_entry(entry);
        let reg = inner.regs.slot(key.index);
        match reg.take(key) {
            Some(taken) if !taken.ready.is_empty() || taken.payload != 0 => {
                self.events.push(Event {
                    token: Token(taken.token),
                    ready: taken.ready,
                    payload: taken.payload,
                });
                self.held.push_back(Held { pos, entry });
            }
            taken => {
                // Stale (the registration is gone) or withdrawn (a timer
                // was reset): nothing to deliver; free the slot now.
                if let Some(pos) = pos {
                    inner.ring.commit(pos);
                }
                if taken.is_some() && reg.rearm(key) {
                    inner.enqueue(&[entry], Some(self.id));
                }
                inner.after_commit(self.id);
            }
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.commit(self.held.len());
        crate::backend::unmark_consuming(self.kevent.inner.id());
        if self.home {
            self.kevent.inner.backend.set_home(false);
        }
        if let Some(entry) = self.kevent.inner.waiters.detach(self.id) {
            // Hand the entry hinted to us to the others.
            let key = Key::from_entry(entry);
            self.kevent.inner.regs.slot(key.index).set_hint(usize::MAX);
            self.kevent.inner.enqueue(&[entry], None);
        }
    }
}
