//! The bridge from ring registrations to tasks: a [`Registration`] ties a
//! file descriptor, timer or signal to a [`ScheduledIo`] whose token the
//! ring hands back in each event.

pub(crate) mod slab;

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use kevent_reactor::{Flags, Inbox, Interest, Key, Token};

use crate::runtime::Handle;
use crate::scheduler::worker;
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
    /// The last affinity hint given to the ring, to skip repeating it.
    hint: std::sync::atomic::AtomicUsize,
    /// A timer whose ring registration goes back to the runtime's pool on
    /// drop instead of being removed (hyper arms one per request).
    pooled_timer: bool,
    /// A stream's inbox once it receives through the ring (set at its
    /// first read; `None` inside when the ring cannot).
    inbox: OnceLock<Option<Arc<Inbox>>>,
    /// A stream's outbox once it sends through the ring (set at its first
    /// write; `None` inside when it writes to the socket itself).
    outbox: OnceLock<Option<Arc<kevent_reactor::Outbox>>>,
}

/// Most idle timer registrations a runtime keeps for reuse.
const TIMER_POOL: usize = 4096;

impl Registration {
    fn alloc(handle: &Handle) -> io::Result<IoToken> {
        Ok(handle.shared.io.alloc()?.0)
    }

    fn finish(handle: Handle, token: IoToken, key: io::Result<Key>) -> io::Result<Registration> {
        match key {
            Ok(key) => Ok(Registration {
                handle,
                key,
                token,
                hint: std::sync::atomic::AtomicUsize::new(usize::MAX),
                pooled_timer: false,
                inbox: OnceLock::new(),
                outbox: OnceLock::new(),
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
        let token = Self::alloc(&handle)?;
        let key = handle
            .shared
            .kevent
            .register_fd(fd, Token(token.to_usize()), interest);
        Self::finish(handle, token, key)
    }

    /// A timer firing at `deadline`, on `handle`'s runtime. Reuses an idle
    /// timer registration from the runtime's pool when there is one.
    pub(crate) fn new_timer(handle: &Handle, deadline: Instant) -> io::Result<Registration> {
        let pooled = handle.shared.timer_pool.lock().pop();
        if let Some((key, token)) = pooled {
            if let Some(io) = handle.shared.io.get(token) {
                io.reset();
                if handle.shared.kevent.reset_timer(key, deadline).is_ok() {
                    return Ok(Registration {
                        handle: handle.clone(),
                        key,
                        token,
                        hint: std::sync::atomic::AtomicUsize::new(usize::MAX),
                        pooled_timer: true,
                        inbox: OnceLock::new(),
                        outbox: OnceLock::new(),
                    });
                }
            }
        }
        let token = Self::alloc(handle)?;
        let key = handle
            .shared
            .kevent
            .add_timer(Token(token.to_usize()), deadline, Flags::NONE);
        let mut reg = Self::finish(handle.clone(), token, key)?;
        reg.pooled_timer = true;
        Ok(reg)
    }

    /// A signal watcher.
    pub(crate) fn new_signal(handle: &Handle, signo: i32) -> io::Result<Registration> {
        let token = Self::alloc(handle)?;
        let key = handle
            .shared
            .kevent
            .add_signal(Token(token.to_usize()), signo);
        Self::finish(handle.clone(), token, key)
    }

    fn io(&self) -> &ScheduledIo {
        self.handle
            .shared
            .io
            .get(self.token)
            .expect("a live registration's slot is live")
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
        match self.io().poll_ready(cx, dir) {
            Poll::Ready(ev) => Poll::Ready(Ok(ev)),
            Poll::Pending => {
                // The event should go to the worker this task runs on.
                if let Some(i) = worker::current_index(&self.handle.shared) {
                    if self.hint.swap(i, std::sync::atomic::Ordering::Relaxed) != i {
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

    /// The inbox of a stream socket receiving through the ring, arming
    /// the receive on first use; `None` where the ring cannot (mio, or
    /// turned off): read the socket on readiness then.
    pub(crate) fn stream_inbox(&self) -> Option<&Arc<Inbox>> {
        self.inbox
            .get_or_init(|| self.handle.shared.kevent.arm_recv(self.key).ok().flatten())
            .as_ref()
    }

    /// The outbox of a stream socket sending through the ring, made at
    /// its first write; `None` where the ring cannot (mio, or turned off):
    /// write to the socket on readiness then.
    pub(crate) fn stream_outbox(&self) -> Option<&Arc<kevent_reactor::Outbox>> {
        self.outbox
            .get_or_init(|| {
                self.handle
                    .shared
                    .kevent
                    .new_outbox(self.key)
                    .ok()
                    .flatten()
            })
            .as_ref()
    }

    /// The outbox if the stream already sends through the ring.
    pub(crate) fn armed_outbox(&self) -> Option<&Arc<kevent_reactor::Outbox>> {
        self.outbox.get().and_then(Option::as_ref)
    }

    /// Starts a send of what `outbox` holds.
    pub(crate) fn start_send(&self, outbox: &Arc<kevent_reactor::Outbox>) -> io::Result<()> {
        self.handle.shared.kevent.start_send(outbox)
    }

    /// Keeps the stream on readiness: [`Registration::stream_inbox`] will
    /// return `None`.
    pub(crate) fn without_ring_recv(&self) {
        let _ = self.inbox.set(None);
    }

    /// The inbox if the stream already receives through the ring.
    pub(crate) fn armed_inbox(&self) -> Option<&Arc<Inbox>> {
        self.inbox.get().and_then(Option::as_ref)
    }

    /// Reads (or peeks at) bytes the ring received into `inbox`; on
    /// `WouldBlock` forgets the read readiness `ev` acted on, closed bits
    /// included (the receive reports end-of-stream itself).
    pub(crate) fn recv(
        &self,
        inbox: &Inbox,
        dst: &mut [MaybeUninit<u8>],
        peek: bool,
        ev: ReadyEvent,
    ) -> io::Result<usize> {
        let res = self.handle.shared.kevent.recv(self.key, inbox, dst, peek);
        if matches!(&res, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.io().clear_with_closed(ev);
        }
        res
    }

    /// [`Registration::recv`] now if the read side looks ready;
    /// `WouldBlock` otherwise.
    pub(crate) fn try_recv(&self, inbox: &Inbox, dst: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        match self.current_read() {
            Some(ev) => self.recv(inbox, dst, false, ev),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// The read side's readiness, without registering anyone.
    pub(crate) fn current_read(&self) -> Option<ReadyEvent> {
        self.io().current(Direction::Read)
    }

    /// Waits until ready in `dir`.
    pub(crate) async fn ready(&self, dir: Direction) -> io::Result<ReadyEvent> {
        std::future::poll_fn(|cx| self.poll_ready(cx, dir)).await
    }

    /// Moves a timer to a new deadline and withdraws an expiry not yet seen.
    pub(crate) fn reset_timer(&self, deadline: Instant) -> io::Result<()> {
        self.io().clear_all(kevent_reactor::Ready::TIMER);
        self.handle.shared.kevent.reset_timer(self.key, deadline)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let shared = &self.handle.shared;
        if self.pooled_timer && !shared.shutdown.load(std::sync::atomic::Ordering::Relaxed) {
            let mut pool = shared.timer_pool.lock();
            if pool.len() < TIMER_POOL && shared.kevent.disarm_timer(self.key).is_ok() {
                // An expiry dispatched after this point sets a stale bit that
                // the next user clears (`ScheduledIo::reset`, and `Sleep`
                // ignores expiries seen before its deadline).
                pool.push((self.key, self.token));
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
