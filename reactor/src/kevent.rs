//! The ring context (`kevent_init`): the ring, the registrations, the
//! sleeping consumers and the backend, and the `kevent_ctl` operations.
//!
//! What is here: registering sources (file descriptors, streams with their
//! byte path, user events, timers, signals), turning harvested readiness
//! into ring entries (`Inner::absorb`, `Inner::fire_timers`), placing them
//! and waking consumers (`Inner::enqueue`, the wake-one policy), and the
//! wakeups the harvester role and the timers ask for. The pieces it joins
//! live beside it: `config.rs` (building a ring and its backend),
//! `harvest.rs` (who may sleep in the backend), `overflow.rs`, `timer.rs`,
//! `signal.rs`, `waiters.rs`, `ring.rs`, and the backends in `backend/`.
//! ARCHITECTURE.md follows an event through them.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use crate::backend::Poller;
use crate::config::{make_backend, Config};
use crate::consumer::Consumer;
use crate::event::{Flags, Hint, Interest, Ready, Token};
use crate::harvest::HarvestRole;
use crate::loom::sync::atomic::{fence, Ordering};
use crate::overflow::Overflow;
use crate::registration::{Key, Kind, Reg, Slab};
use crate::ring::Ring;
use crate::signal::Signals;
use crate::stream::StreamIo;
use crate::timer::{Deadline, TimerQueue};
use crate::waiters::{Waiters, Woken};

/// Counters of a whole ring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Entries published into the ring (the front index).
    pub published: u64,
    /// Entries that found the ring full and waited in the overflow list.
    pub overflowed: u64,
    /// Syscalls the backend made to wait and wake.
    pub backend_syscalls: u64,
    /// Live registrations.
    pub registrations: usize,
    /// Sleeping consumers woken by publishers.
    pub wakeups: u64,
    /// Timer arms that took the timer lock to file the timer into the
    /// wheel. Re-arming a timer whose entry is still there and due no
    /// later (a pooled per-request timer) takes none, nor does
    /// cancelling one.
    pub timer_filings: u64,
    /// Times the ring's home consumer (`Consumer::set_home`) found itself
    /// busy all the time and left the other consumers to submit their own
    /// requests (io_uring; 0 elsewhere).
    pub home_closings: u64,
}

/// A kevent ring: register sources, post events, attach consumers.
///
/// Cheap to clone; all clones share one ring.
///
/// ```
/// use kevent_reactor::{Config, Backend, Kevent, Token, Flags};
/// use std::time::Duration;
///
/// let kq = Kevent::new(Config::default().backend(Backend::UserSpace))?;
/// let user = kq.add_user(Token(7), Flags::NONE)?;
/// let mut consumer = kq.consumer()?;
/// kq.post(user, 0b10)?;
/// consumer.wait(0, 1, Duration::from_secs(1))?;
/// let events = consumer.claim(16).to_vec();
/// assert_eq!(events[0].token, Token(7));
/// assert_eq!(events[0].payload, 0b10);
/// consumer.commit(events.len());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Kevent {
    /// The shared state.
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Kevent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kevent")
            .field("capacity", &self.inner.ring.capacity())
            .field("backend", &self.inner.backend.name())
            .finish_non_exhaustive()
    }
}

/// Ring ids (`Inner::id`).
static NEXT_RING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

/// Everything a ring is made of.
#[derive(Debug)]
pub(crate) struct Inner {
    /// The entries.
    pub(crate) ring: Ring,
    /// The registrations.
    pub(crate) regs: Slab,
    /// The consumers and their sleep states.
    pub(crate) waiters: Waiters,
    /// The OS readiness source.
    pub(crate) backend: Arc<dyn Poller>,
    /// [`Poller::drains_concurrently`], asked once.
    pub(crate) drains_concurrently: bool,
    /// This ring's identity among the rings of the process (never 0): what
    /// a consuming thread is marked with (`backend::mark_consuming`).
    id: usize,
    /// Entries that found the ring full, oldest first.
    overflow: Overflow,
    /// Who harvests (see `harvest.rs`).
    pub(crate) harvest: HarvestRole,
    /// The armed timers.
    timers: TimerQueue,
    /// The signal registrations and their self-pipe.
    signals: Signals,
    /// [`Config::recv_through_ring`].
    recv_through_ring: bool,
    /// [`Config::send_through_ring`].
    send_through_ring: bool,
}

impl Kevent {
    /// Creates a ring (`kevent_init`).
    pub fn new(config: Config) -> io::Result<Kevent> {
        let id = NEXT_RING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let backend = make_backend(&config, id)?;
        Ok(Kevent {
            inner: Arc::new(Inner {
                ring: Ring::new(config.capacity),
                regs: Slab::new(),
                waiters: Waiters::new(config.max_consumers),
                drains_concurrently: backend.drains_concurrently(),
                backend,
                id,
                overflow: Overflow::new(),
                harvest: HarvestRole::new(),
                timers: TimerQueue::new(),
                signals: Signals::new(),
                recv_through_ring: config.recv_through_ring,
                send_through_ring: config.send_through_ring,
            }),
        })
    }

    /// Attaches a consumer in the first free slot.
    pub fn consumer(&self) -> io::Result<Consumer> {
        let id = self.inner.waiters.attach(None).ok_or_else(|| {
            io::Error::other("kevent: every consumer slot is taken; raise Config::max_consumers")
        })?;
        Ok(Consumer::new(self.clone(), id))
    }

    /// Attaches a consumer in slot `hint`: entries hinted to `hint` prefer it.
    pub fn consumer_for(&self, hint: Hint) -> io::Result<Consumer> {
        let id = self.inner.waiters.attach(Some(hint)).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("kevent: consumer slot {hint} is taken or out of range"),
            )
        })?;
        Ok(Consumer::new(self.clone(), id))
    }

    /// The ring's capacity.
    pub fn capacity(&self) -> usize {
        self.inner.ring.capacity()
    }

    /// The backend's name ("mio (epoll)", ...).
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend.name()
    }

    /// The front index: entries published so far. Pass it to
    /// [`Consumer::wait`] as the index last seen.
    pub fn front(&self) -> u64 {
        self.inner.ring.front()
    }

    /// Times consumer `id` was woken by a publisher.
    pub fn consumer_wakeups(&self, id: usize) -> u64 {
        if id < self.inner.waiters.len() {
            self.inner.waiters.wakeups(id)
        } else {
            0
        }
    }

    /// Counters for the whole ring.
    pub fn stats(&self) -> RingStats {
        RingStats {
            published: self.inner.ring.front(),
            overflowed: self.inner.overflow.total(),
            backend_syscalls: self.inner.backend.syscalls(),
            registrations: self.inner.regs.len(),
            wakeups: self.inner.waiters.total_wakeups(),
            timer_filings: self.inner.timers.filings(),
            home_closings: self.inner.backend.home_closings(),
        }
    }

    /// Watches a file descriptor (any mio source on Unix is one).
    pub fn register(&self, fd: &impl AsRawFd, token: Token, interest: Interest) -> io::Result<Key> {
        self.register_fd(fd.as_raw_fd(), token, interest)
    }

    /// Watches a raw file descriptor. The caller keeps it open until
    /// [`Kevent::deregister`].
    pub fn register_fd(&self, fd: RawFd, token: Token, interest: Interest) -> io::Result<Key> {
        self.register_with(fd, token, interest, Source::Fd)
    }

    /// Watches a listening socket's raw descriptor, as
    /// [`Kevent::register_fd`] does, but so that nothing the backend has
    /// in flight keeps the socket open: its port is free as soon as the
    /// descriptor is closed or its process exits (on io_uring, listeners
    /// are watched through an epoll set the ring polls; see
    /// ARCHITECTURE.md).
    pub fn register_listener_fd(
        &self,
        fd: RawFd,
        token: Token,
        interest: Interest,
    ) -> io::Result<Key> {
        self.register_with(fd, token, interest, Source::Listener)
    }

    fn register_with(
        &self,
        fd: RawFd,
        token: Token,
        interest: Interest,
        source: Source,
    ) -> io::Result<Key> {
        let (key, _) = self.inner.regs.insert(Kind::Fd, token.0, Flags::NONE, fd)?;
        let backend = &self.inner.backend;
        let registered = match source {
            Source::Fd => backend.register(fd, key.entry(), interest),
            Source::Listener => backend.register_listener(fd, key.entry(), interest),
            Source::Stream => {
                let ring_recv = self.inner.recv_through_ring;
                backend.register_stream(fd, key.entry(), interest, ring_recv)
            }
        };
        if let Err(e) = registered {
            self.inner.regs.remove(key);
            return Err(e);
        }
        Ok(key)
    }

    /// Changes what a file-descriptor registration listens for.
    pub fn reregister(&self, key: Key, interest: Interest) -> io::Result<()> {
        let reg = self.inner.regs.get(key).ok_or_else(stale)?;
        if reg.kind() != Kind::Fd {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "kevent: reregister takes a file-descriptor registration",
            ));
        }
        self.inner
            .backend
            .reregister(reg.fd(), key.entry(), interest)
    }

    /// Watches a stream socket (TCP or Unix) and hands out its byte path:
    /// every read, write, flush and shutdown of the stream goes through the
    /// returned [`StreamIo`], which moves the bytes as this ring's backend
    /// does (on readiness, or through io_uring's inbox and outbox, as
    /// [`Config::recv_through_ring`] and [`Config::send_through_ring`]
    /// allow). The caller keeps `fd` open while the `StreamIo` lives and
    /// until [`Kevent::deregister`].
    ///
    /// Where the stream receives through the ring, the backend may start
    /// watching it only at its first read or at [`Kevent::arm`]: call
    /// `arm` before waiting for its readiness or reading its current
    /// readiness, as the runtime's registrations do.
    pub fn register_stream(
        &self,
        fd: &impl AsRawFd,
        token: Token,
        interest: Interest,
    ) -> io::Result<(Key, StreamIo)> {
        let fd = fd.as_raw_fd();
        let key = self.register_with(fd, token, interest, Source::Stream)?;
        let inner = &self.inner;
        let io = inner.backend.clone().stream(
            fd,
            key.entry(),
            inner.recv_through_ring,
            inner.send_through_ring,
        );
        Ok((key, io))
    }

    /// Has the backend watch a stream registered with
    /// [`Kevent::register_stream`] now, if it left that for its first use;
    /// nothing for any other registration, or one already watched.
    pub fn arm(&self, key: Key) -> io::Result<()> {
        let reg = self.inner.regs.get(key).ok_or_else(stale)?;
        if reg.kind() != Kind::Fd {
            return Ok(());
        }
        self.inner.backend.arm(key.entry())
    }

    /// Removes a registration of any kind. Entries still queued for it are
    /// dropped, never delivered.
    pub fn deregister(&self, key: Key) -> io::Result<()> {
        let inner = &self.inner;
        let reg = inner.regs.get(key).ok_or_else(stale)?;
        let (kind, fd) = (reg.kind(), reg.fd());
        let result = match kind {
            Kind::Fd => inner.backend.deregister(fd, key.entry()),
            Kind::Timer => {
                inner.timers.remove(reg.timer(), key);
                Ok(())
            }
            Kind::Signal => {
                inner.signals.remove(key);
                Ok(())
            }
            Kind::User => Ok(()),
        };
        inner.regs.remove(key).ok_or_else(stale)?;
        result
    }

    /// Sets the consumer an entry of this registration should preferably go
    /// to (the CPU or worker where its task last ran). Only ever a hint.
    pub fn set_hint(&self, key: Key, hint: Hint) {
        if let Some(reg) = self.inner.regs.get(key) {
            reg.set_hint(hint);
        }
    }

    /// Adds a user event: any thread may [`post`](Kevent::post) it.
    pub fn add_user(&self, token: Token, flags: Flags) -> io::Result<Key> {
        Ok(self.inner.regs.insert(Kind::User, token.0, flags, -1)?.0)
    }

    /// Model checking only: `ready` for `key` as the OS would report it,
    /// seen only by a consumer that polls the backend.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn inject_os_event(&self, key: Key, ready: Ready) {
        self.inner.backend.inject(key.entry(), ready);
    }

    /// Posts a user event with a payload. Posts that arrive before the
    /// event is delivered coalesce into one event; their payloads are OR-ed
    /// (kqueue's `NOTE_FFOR`).
    ///
    /// A post that coalesces into an entry still waiting to be claimed
    /// wakes one more sleeper, if any: the consumer woken for that entry
    /// may have been taken up by other work before claiming it, and a post
    /// is a new batch that must not wait behind it.
    pub fn post(&self, key: Key, payload: u64) -> io::Result<()> {
        let reg = self.inner.regs.get(key).ok_or_else(stale)?;
        if reg.mark_ready(key, Ready::USER, payload) {
            self.inner.enqueue(&[key.entry()], None);
        } else if reg.is_waiting() {
            fence(Ordering::SeqCst);
            if let Some(w) = self.inner.waiters.wake_one(None) {
                self.inner.reach(w);
            }
        }
        Ok(())
    }

    /// Adds a one-shot timer that fires at `deadline` (relative or absolute).
    pub fn add_timer(
        &self,
        token: Token,
        deadline: impl Into<Deadline>,
        flags: Flags,
    ) -> io::Result<Key> {
        let at = deadline.into().instant();
        let (key, reg) = self.inner.regs.insert(Kind::Timer, token.0, flags, -1)?;
        self.inner.arm_timer(reg, key, at);
        Ok(key)
    }

    /// Moves a timer to a new deadline; an expiry not yet claimed is
    /// withdrawn, so the timer fires once, at the new deadline.
    pub fn reset_timer(&self, key: Key, deadline: impl Into<Deadline>) -> io::Result<()> {
        let at = deadline.into().instant();
        let reg = self.inner.regs.get(key).ok_or_else(stale)?;
        if reg.kind() != Kind::Timer {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "kevent: reset_timer takes a timer registration",
            ));
        }
        reg.clear_pending(key);
        self.inner.arm_timer(reg, key, at);
        Ok(())
    }

    /// Stops a timer without removing it: it fires again only after
    /// [`reset_timer`](Kevent::reset_timer). An expiry not yet claimed is
    /// withdrawn. Cheaper than removing and re-adding a timer.
    pub fn disarm_timer(&self, key: Key) -> io::Result<()> {
        let reg = self.inner.regs.get(key).ok_or_else(stale)?;
        if reg.kind() != Kind::Timer {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "kevent: disarm_timer takes a timer registration",
            ));
        }
        self.inner.timers.disarm(reg.timer());
        reg.clear_pending(key);
        Ok(())
    }

    /// Delivers `signo` as an event (`Ready::SIGNAL`, payload bit `signo`).
    /// Installs a process-wide handler for it; the signal's default action
    /// no longer happens.
    pub fn add_signal(&self, token: Token, signo: i32) -> io::Result<Key> {
        let inner = &self.inner;
        inner.signals.watch(signo, &inner.regs, &*inner.backend)?;
        let (key, _) = inner
            .regs
            .insert(Kind::Signal, token.0, Flags::NONE, signo)?;
        inner.signals.add(signo, key);
        Ok(key)
    }

    /// Whether the registration `key` names is still live.
    pub fn is_registered(&self, key: Key) -> bool {
        self.inner.regs.get(key).is_some()
    }
}

fn stale() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        "kevent: stale registration key (already deregistered)",
    )
}

impl Inner {
    fn arm_timer(&self, reg: &Reg, key: Key, at: Instant) {
        // Unchanged wheel (the timer's entry is due first and will see the
        // new deadline): the sleepers' deadlines stand.
        let Some(next) = self.timers.arm(reg.timer(), key, at) else {
            return;
        };
        // A harvester sleeping past the new deadline must recompute its
        // timeout: wake the backend.
        if self.harvest.sleeps_past(next) {
            let _ = self.backend.wake();
        }
        // Likewise a consumer parked in its place (see `watch_timers`).
        self.waiters.wake_watcher_before(next);
    }

    /// Consumer `id`, parked (SLEEPING) instead of sleeping in the
    /// backend, watches the timers until `until`: a timer armed to come
    /// due earlier wakes it (or another such watcher). Returns false if one
    /// was armed meanwhile: recompute the deadline.
    pub(crate) fn watch_timers(&self, id: usize, until: Option<Instant>) -> bool {
        let n = until.map_or(u64::MAX, |u| self.timers.nanos(u).max(1));
        self.waiters.watch(id, n);
        // Pairs with `arm_timer`: it stores the new deadline, then reads
        // ours; we store ours, then read the deadline.
        fence(Ordering::SeqCst);
        self.timers.next_nanos() >= n
    }

    /// `id` stops watching the timers.
    pub(crate) fn unwatch_timers(&self, id: usize) {
        self.waiters.watch(id, 0);
    }

    /// The instant of the nearest timer, if any.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Fires due timers; returns how many entries were published.
    pub(crate) fn fire_timers(&self, publisher: Option<usize>) -> usize {
        let mut expired = Vec::new();
        self.timers.expire_due(&self.regs, &mut expired);
        if expired.is_empty() {
            return 0;
        }
        let entries: Vec<u64> = expired
            .into_iter()
            .filter(|&key| {
                self.regs
                    .get(key)
                    .is_some_and(|reg| reg.mark_ready(key, Ready::TIMER, 0))
            })
            .map(Key::entry)
            .collect();
        self.enqueue(&entries, publisher);
        entries.len()
    }

    /// This ring's identity among the rings of the process (never 0).
    pub(crate) fn id(&self) -> usize {
        self.id
    }

    /// Turns harvested OS readiness into ring entries (`entries` is the
    /// caller's scratch, emptied first).
    pub(crate) fn absorb(
        &self,
        harvested: &[(u64, Ready)],
        entries: &mut Vec<u64>,
        publisher: Option<usize>,
    ) -> usize {
        entries.clear();
        if harvested.is_empty() {
            return 0;
        }
        let signal_entry = self.signals.entry();
        for &(entry, ready) in harvested {
            if Some(entry) == signal_entry {
                self.signals.arrived(&self.regs, entries);
                continue;
            }
            let key = Key::from_entry(entry);
            if let Some(reg) = self.regs.get(key) {
                if reg.mark_ready(key, ready, 0) {
                    entries.push(entry);
                }
            }
        }
        self.enqueue(entries, publisher);
        entries.len()
    }

    /// Puts entries of registrations that just became queued into the
    /// mailboxes or the ring, then applies the wake policy: at most one
    /// sleeper per batch unless an entry asks for `WAKEUP_ALL`.
    ///
    /// `publisher` is the consumer publishing, if it will go on to claim.
    /// It takes what it can claim at once itself (one entry, or a whole
    /// claim batch for a consumer that harvests while busy, see
    /// [`Waiters::claims`]), so a batch it can take wakes nobody: waking a
    /// sleeper for entries the publisher is about to claim costs a context
    /// switch each way and finds nothing left to do. Entries hinted to a
    /// consumer that is running go to its mailbox (it claims them at its
    /// next turn, no wakeup needed); entries hinted to a sleeping one are
    /// taken by such a publisher rather than woken for (the hint is only a
    /// hint), and otherwise wake that consumer first.
    pub(crate) fn enqueue(&self, entries: &[u64], publisher: Option<usize>) {
        if entries.is_empty() {
            return;
        }
        let waiters = &self.waiters;
        let takes = publisher.map_or(0, |p| waiters.claims(p));
        let publisher_takes_all = takes >= entries.len();
        let mut wake_all = false;
        let mut preferred = None;
        // Entries pushed into the ring (displaced mailbox entries included).
        let mut in_ring = 0usize;
        for &entry in entries {
            let reg = self.regs.slot(Key::from_entry(entry).index);
            wake_all |= reg.flags().contains(Flags::WAKEUP_ALL);
            let hint = reg.hint();
            let hinted = hint < waiters.len() && {
                let state = waiters.state(hint);
                let asleep =
                    state == crate::waiters::SLEEPING || state == crate::waiters::HARVESTING;
                // A publisher about to claim the whole batch handles an
                // entry hinted to a sleeper itself: a cross-CPU wakeup per
                // event costs more than the warm cache saves (a ping-pong
                // between two sockets would bounce between workers).
                state != crate::waiters::FREE && !(asleep && publisher_takes_all)
            };
            if !hinted {
                self.push(entry);
                in_ring += 1;
                continue;
            }
            if let Some(displaced) = waiters.put(hint, entry) {
                self.push(displaced);
                in_ring += 1;
            }
            let state = waiters.state(hint);
            if Some(hint) != publisher
                && preferred.is_none()
                && (state == crate::waiters::SLEEPING || state == crate::waiters::HARVESTING)
            {
                preferred = Some(hint);
            }
        }
        // The SeqCst bumps of the ring's front (and the mailbox swaps) come
        // before this check of the sleepers; sleepers announce themselves
        // before re-checking for work. See `waiters`.
        fence(Ordering::SeqCst);
        if wake_all {
            waiters.wake_all(|w| self.reach(w));
            return;
        }
        if in_ring > takes || preferred.is_some() {
            if let Some(w) = waiters.wake_one(preferred) {
                self.reach(w);
            }
        }
    }

    /// Wakes a consumer that sleeps inside the backend.
    pub(crate) fn reach(&self, woken: Woken) {
        if let Woken::Harvester(_) = woken {
            let _ = self.backend.wake();
        }
    }

    /// Pushes one entry into the ring, or into overflow when it is full.
    fn push(&self, entry: u64) {
        self.overflow.push(&self.ring, entry);
    }

    /// After a consumer committed slots: refill from overflow and wake.
    pub(crate) fn after_commit(&self, publisher: usize) {
        // Pairs with the fence in `Overflow::push` (see there).
        fence(Ordering::SeqCst);
        let moved = self.overflow.drain(&self.ring);
        if moved > 1 || (moved == 1 && self.waiters.any_sleeping()) {
            fence(Ordering::SeqCst);
            if let Some(w) = self.waiters.wake_one(None) {
                self.reach(w);
            }
        }
        let _ = publisher;
    }

    pub(crate) fn overflow_pending(&self) -> bool {
        self.overflow.pending()
    }

    /// Consumer `by` gives the harvester role back; if a consumer parked
    /// wanting it, wakes one (never `by`) so that somebody keeps watching
    /// the backend and the timers.
    pub(crate) fn release_harvest_role(&self, by: usize) {
        if self.harvest.release() {
            self.wake_one_but(by);
        }
    }

    /// Consumer `by` leaves `wait`: if a consumer parked wanting the role,
    /// wakes one (never `by`) to take it over.
    pub(crate) fn hand_off_harvest_role(&self, by: usize) {
        if self.harvest.hand_off() {
            self.wake_one_but(by);
        }
    }

    fn wake_one_but(&self, by: usize) {
        if let Some(w) = self.waiters.wake_one_but(None, by) {
            self.reach(w);
        }
    }

    /// The harvester sleeps in the backend until `until` (`None`: no
    /// deadline).
    pub(crate) fn set_harvest_until(&self, until: Option<Instant>) {
        let n = until.map_or(u64::MAX, |u| self.timers.nanos(u).max(1));
        self.harvest.set_sleep_until(n);
    }
}

/// What a file-descriptor registration watches (`Kevent::register_with`).
#[derive(Clone, Copy, Debug)]
enum Source {
    /// Any descriptor, watched at once.
    Fd,
    /// A listening socket, watched without holding it open.
    Listener,
    /// A stream socket, watched from its first use where the backend
    /// receives for it.
    Stream,
}
