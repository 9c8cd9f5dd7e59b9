//! The bridge from ring registrations to tasks: a [`Registration`] ties a
//! file descriptor, timer or signal to a [`ScheduledIo`] whose token the
//! ring hands back in each event.

pub(crate) mod slab;

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use kevent_reactor::{Flags, Interest, Key, Ready, StreamIo, Token};

use crate::runtime::Handle;
use crate::scheduler::worker::{self, IdleTimer};
use crate::task::coop;
use slab::{Direction, IoToken, ReadyEvent, ScheduledIo};

/// One source registered with the runtime's ring.
#[derive(Debug)]
pub(crate) struct Registration {
    /// The runtime.
    handle: Handle,
    /// The ring registration.
    key: Key,
    /// Where readiness and wakers live.
    token: IoToken,
    /// `token`'s slot, looked up once: every poll reads it.
    io: NonNull<ScheduledIo>,
    /// The last affinity hint given to the ring, to skip repeating it.
    hint: std::sync::atomic::AtomicUsize,
    /// A stream the ring may not watch yet (`Kevent::register_stream`):
    /// the first wait for its readiness, or look at it, arms it.
    unarmed: AtomicBool,
    /// A timer whose ring registration goes back to the runtime's pool on
    /// drop instead of being removed (hyper arms one per request).
    pooled_timer: bool,
}

// SAFETY: `io` points into the runtime's slab, which `handle` keeps alive
// and which never moves or frees a slot before the runtime drops; the slot
// is this registration's until its drop releases it. `ScheduledIo` is
// `Sync` (atomics and mutexes), so sharing the pointer across threads is
// sharing a `&ScheduledIo`.
unsafe impl Send for Registration {}
// SAFETY: as for `Send`: through `io` only `&ScheduledIo` is ever formed.
unsafe impl Sync for Registration {}

/// Most idle timer registrations a runtime keeps for reuse.
pub(crate) const TIMER_POOL: usize = 4096;

impl Registration {
    fn alloc(handle: &Handle) -> io::Result<(IoToken, NonNull<ScheduledIo>)> {
        let (token, io) = handle.shared.io.alloc()?;
        Ok((token, NonNull::from(io)))
    }

    fn finish(
        handle: Handle,
        (token, io): (IoToken, NonNull<ScheduledIo>),
        key: io::Result<Key>,
    ) -> io::Result<Registration> {
        match key {
            Ok(key) => Ok(Registration {
                handle,
                key,
                token,
                io,
                hint: std::sync::atomic::AtomicUsize::new(usize::MAX),
                unarmed: AtomicBool::new(false),
                pooled_timer: false,
            }),
            Err(e) => {
                handle.shared.io.release(token);
                Err(e)
            }
        }
    }

    /// Registers a file descriptor with the current runtime.
    #[track_caller]
    pub(crate) fn new_fd(fd: RawFd, interest: Interest) -> io::Result<Registration> {
        let handle = current_handle();
        let slot = Self::alloc(&handle)?;
        let token = slot.0;
        let key = handle
            .shared
            .kevent
            .register_fd(fd, Token(token.to_usize()), interest);
        Self::finish(handle, slot, key)
    }

    /// Registers a listening socket with the current runtime, so that no
    /// request in flight keeps it (and its port) open once it is closed.
    #[track_caller]
    pub(crate) fn new_listener_fd(fd: RawFd, interest: Interest) -> io::Result<Registration> {
        let handle = current_handle();
        let slot = Self::alloc(&handle)?;
        let token = slot.0;
        let key = handle
            .shared
            .kevent
            .register_listener_fd(fd, Token(token.to_usize()), interest);
        Self::finish(handle, slot, key)
    }

    /// Registers a stream socket with the current runtime; its bytes move
    /// through the returned [`StreamIo`], polled with this registration as
    /// its [`Readiness`](kevent_reactor::Readiness).
    #[track_caller]
    pub(crate) fn new_stream(
        fd: RawFd,
        interest: Interest,
    ) -> io::Result<(Registration, StreamIo)> {
        let handle = current_handle();
        let slot = Self::alloc(&handle)?;
        let token = slot.0;
        let registered =
            handle
                .shared
                .kevent
                .register_stream(&fd, Token(token.to_usize()), interest);
        let (key, stream) = match registered {
            Ok(registered) => registered,
            Err(e) => {
                handle.shared.io.release(token);
                return Err(e);
            }
        };
        let reg = Self::finish(handle, slot, Ok(key))?;
        reg.unarmed.store(true, Ordering::Relaxed);
        Ok((reg, stream))
    }

    /// Registers a file descriptor with `handle`'s runtime.
    pub(crate) fn new_fd_on(
        handle: &Handle,
        fd: RawFd,
        interest: Interest,
    ) -> io::Result<Registration> {
        let slot = Self::alloc(handle)?;
        let token = slot.0;
        let key = handle
            .shared
            .kevent
            .register_fd(fd, Token(token.to_usize()), interest);
        Self::finish(handle.clone(), slot, key)
    }

    /// A timer firing at `deadline`, on `handle`'s runtime, and the instant
    /// its ring timer fires at: `deadline`, or, with `take_armed`, an
    /// earlier one when it reuses an idle timer still armed no later than
    /// `deadline` (its owner then moves it on when that expiry comes; see
    /// [`IdleTimer`](crate::scheduler::worker::IdleTimer)). Reuses an idle
    /// timer registration when there is one: from the calling worker's own
    /// pool first, then from the runtime's.
    pub(crate) fn new_timer(
        handle: Handle,
        deadline: Instant,
        take_armed: bool,
    ) -> io::Result<(Registration, Instant)> {
        let pooled = crate::scheduler::worker::take_timer(&handle.shared).or_else(|| {
            let (key, token) = handle.shared.timer_pool.pop()?;
            Some(IdleTimer {
                key,
                token,
                armed: None,
                hint: usize::MAX,
            })
        });
        if let Some(IdleTimer {
            key,
            token,
            armed,
            hint,
        }) = pooled
        {
            let reused = |handle, io| Registration {
                handle,
                key,
                token,
                io,
                hint: std::sync::atomic::AtomicUsize::new(hint),
                unarmed: AtomicBool::new(false),
                pooled_timer: true,
            };
            // An idle timer's slot stays live (it is released with the
            // timer), so this finds it.
            if let Some(io) = handle.shared.io.get(token) {
                let fires_at = match armed {
                    // Still armed, early enough: nothing to do (its slot
                    // keeps the bits of an expiry while idle, for the new
                    // owner).
                    Some(at) if take_armed && at <= deadline => Some(at),
                    _ => {
                        io.reset();
                        let reset = handle.shared.kevent.reset_timer(key, deadline);
                        reset.is_ok().then_some(deadline)
                    }
                };
                if let Some(at) = fires_at {
                    let io = NonNull::from(io);
                    return Ok((reused(handle, io), at));
                }
            }
        }
        let slot = Self::alloc(&handle)?;
        let token = slot.0;
        let key = handle
            .shared
            .kevent
            .add_timer(Token(token.to_usize()), deadline, Flags::NONE);
        let mut reg = Self::finish(handle, slot, key)?;
        reg.pooled_timer = true;
        Ok((reg, deadline))
    }

    /// Gives back a timer whose ring timer still fires at `armed`, left
    /// armed for the calling worker's next timer (its wakers forgotten).
    /// Off a worker, with its pool full, or while the runtime stops, it is
    /// dropped as usual (disarmed, or removed).
    pub(crate) fn release_armed(self, armed: Instant) {
        debug_assert!(self.pooled_timer);
        let shared = &self.handle.shared;
        if shared.shutdown.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        self.io().forget_readers();
        let idle = IdleTimer {
            key: self.key,
            token: self.token,
            armed: Some(armed),
            hint: self.hint.load(std::sync::atomic::Ordering::Relaxed),
        };
        if crate::scheduler::worker::keep_timer(shared, idle).is_ok() {
            let this = std::mem::ManuallyDrop::new(self);
            // SAFETY: `this` is never used or dropped again: its handle is
            // moved out once and dropped here, and its other fields own
            // nothing (the registration itself now belongs to the pool).
            drop(unsafe { std::ptr::read(&this.handle) });
        }
    }

    /// A signal watcher.
    pub(crate) fn new_signal(handle: &Handle, signo: i32) -> io::Result<Registration> {
        let slot = Self::alloc(handle)?;
        let token = slot.0;
        let key = handle
            .shared
            .kevent
            .add_signal(Token(token.to_usize()), signo);
        Self::finish(handle.clone(), slot, key)
    }

    /// The runtime it is registered with.
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    fn io(&self) -> &ScheduledIo {
        // SAFETY: the slot outlives `self` (see `impl Send`): the slab
        // keeps it in place while `handle` keeps the slab, and only
        // `self`'s drop releases it.
        unsafe { self.io.as_ref() }
    }

    /// Has the ring watch a stream registered lazily, before its
    /// readiness is waited for or looked at (see `unarmed`).
    fn arm(&self) -> io::Result<()> {
        if self.unarmed.load(Ordering::Relaxed) && self.unarmed.swap(false, Ordering::Relaxed) {
            if let Err(e) = self.handle.shared.kevent.arm(self.key) {
                // The next wait tries again.
                self.unarmed.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Readiness in `dir`, or registers the task to be woken.
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
    ) -> Poll<io::Result<ReadyEvent>> {
        if !coop::poll_proceed(cx) {
            return Poll::Pending;
        }
        if self.runtime_is_gone() {
            return Poll::Ready(Err(crate::runtime::shut_down_error()));
        }
        if let Err(e) = self.arm() {
            return Poll::Ready(Err(e));
        }
        match self.io().poll_ready(cx, dir) {
            Poll::Ready(ev) => Poll::Ready(Ok(ev)),
            Poll::Pending => {
                // The event should go to the worker this task runs on.
                // A load first: the hint rarely changes, and a plain load
                // costs no locked instruction on every wait.
                if let Some(i) = worker::current_index(&self.handle.shared) {
                    if self.hint.load(std::sync::atomic::Ordering::Relaxed) != i {
                        self.hint.store(i, std::sync::atomic::Ordering::Relaxed);
                        self.handle.shared.kevent.set_hint(self.key, i);
                    }
                }
                Poll::Pending
            }
        }
    }

    /// Whether the runtime has shut down and this poll is not one of its
    /// workers finishing its last task: no event would ever come.
    fn runtime_is_gone(&self) -> bool {
        let shared = &self.handle.shared;
        shared.shutdown.load(std::sync::atomic::Ordering::Acquire)
            && worker::current_index(shared).is_none()
    }

    /// Forgets readiness observed in `ev` (after an operation hit
    /// `WouldBlock`), unless newer readiness arrived since.
    pub(crate) fn clear_readiness(&self, ev: ReadyEvent) {
        self.io().clear(ev);
    }

    /// Runs `op` when ready in `dir`, clearing readiness and waiting again
    /// when it would block.
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            let ev = match self.poll_ready(cx, dir) {
                Poll::Ready(Ok(ev)) => ev,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.clear_readiness(ev),
                res => return Poll::Ready(res),
            }
        }
    }

    /// Runs `op` now if the resource looks ready; `WouldBlock` otherwise.
    pub(crate) fn try_io<R>(
        &self,
        dir: Direction,
        op: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        // Look, don't register: a `try_*` call must not disturb the wakers
        // of tasks awaiting this resource.
        self.arm()?;
        let Some(ev) = self.io().current(dir) else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let res = op();
        if let Err(e) = &res {
            if e.kind() == io::ErrorKind::WouldBlock {
                self.clear_readiness(ev);
            }
        }
        res
    }

    /// Waits until ready in `dir`.
    pub(crate) async fn ready(&self, dir: Direction) -> io::Result<ReadyEvent> {
        std::future::poll_fn(|cx| self.poll_ready(cx, dir)).await
    }

    /// Moves a timer to a new deadline and withdraws an expiry not yet seen.
    pub(crate) fn reset_timer(&self, deadline: Instant) -> io::Result<()> {
        self.io().clear_all(Ready::TIMER);
        self.handle.shared.kevent.reset_timer(self.key, deadline)
    }
}

/// A stream's readiness, as its [`StreamIo`] waits on it and clears it.
impl kevent_reactor::Readiness for Registration {
    type Event = ReadyEvent;

    fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        dir: kevent_reactor::Direction,
    ) -> Poll<io::Result<ReadyEvent>> {
        Registration::poll_ready(self, cx, direction(dir))
    }

    fn current(&self, dir: kevent_reactor::Direction) -> Option<ReadyEvent> {
        // An error to arm shows at the next wait, which tries again.
        let _ = self.arm();
        self.io().current(direction(dir))
    }

    fn clear(&self, ev: ReadyEvent) {
        self.io().clear(ev);
    }

    fn clear_with_closed(&self, ev: ReadyEvent) {
        self.io().clear_with_closed(ev);
    }

    fn ready(ev: ReadyEvent) -> Ready {
        ev.ready
    }
}

/// The runtime's name for a stream direction.
fn direction(dir: kevent_reactor::Direction) -> Direction {
    match dir {
        kevent_reactor::Direction::Read => Direction::Read,
        kevent_reactor::Direction::Write => Direction::Write,
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let shared = &self.handle.shared;
        if self.pooled_timer && !shared.shutdown.load(std::sync::atomic::Ordering::Relaxed) {
            // An expiry dispatched after the disarm sets a stale bit that
            // the next user clears (`ScheduledIo::reset`, and `Sleep`
            // ignores expiries seen before its deadline). Neither step takes
            // a lock (the ring's disarm leaves the wheel entry to be dropped
            // when due); a full pool refuses and the timer is removed.
            let idle = IdleTimer {
                key: self.key,
                token: self.token,
                armed: None,
                hint: self.hint.load(std::sync::atomic::Ordering::Relaxed),
            };
            if shared.kevent.disarm_timer(self.key).is_ok()
                && crate::scheduler::worker::keep_timer(shared, idle)
                    .or_else(|idle| shared.timer_pool.push((idle.key, idle.token)))
                    .is_ok()
            {
                return;
            }
        }
        // Deregister before the caller closes the fd (epoll needs the fd).
        let _ = shared.kevent.deregister(self.key);
        shared.io.release(self.token);
    }
}

#[track_caller]
pub(crate) fn current_handle() -> Handle {
    match Handle::try_current() {
        Ok(h) => h,
        Err(_) => panic!(
            "there is no kevent runtime on this thread: I/O resources and timers must be \
             created inside `#[kevent::main]`, `Runtime::block_on`, a task, or after \
             `Runtime::enter`"
        ),
    }
}
