//! The portable backend: mio's `Poll` (epoll on Linux, kqueue on the BSDs
//! and macOS). Every registration is edge-triggered, as mio always is; the
//! ring's per-registration coalescing keeps what an edge reported until a
//! consumer takes it.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Poll, Registry, Token, Waker};

use super::Poller;
use crate::event::{Interest, Ready};

/// The token of the backend's own waker; entries never take this value
/// because no registration has slab index `u32::MAX`.
const WAKER: Token = Token(usize::MAX);

/// mio's poller behind the [`Poller`] trait.
#[derive(Debug)]
pub(crate) struct MioBackend {
    /// The poller and its event buffer; locked only by the harvester.
    poll: parking_lot::Mutex<(Poll, Events)>,
    /// A clone of the poller's registry, so registering never waits for a
    /// harvester blocked in `poll`.
    registry: Registry,
    /// Interrupts a blocked poll.
    waker: Waker,
    /// Syscalls made by `poll` and `wake`.
    syscalls: AtomicU64,
}

impl MioBackend {
    pub(crate) fn new(events: usize) -> io::Result<MioBackend> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        Ok(MioBackend {
            poll: parking_lot::Mutex::new((poll, Events::with_capacity(events.max(16)))),
            registry,
            waker,
            syscalls: AtomicU64::new(0),
        })
    }
}

fn mio_interest(interest: Interest) -> mio::Interest {
    let mut out: Option<mio::Interest> = None;
    let mut add = |i: mio::Interest| out = Some(out.map_or(i, |o| o | i));
    if interest.is_readable() {
        add(mio::Interest::READABLE);
    }
    if interest.is_writable() {
        add(mio::Interest::WRITABLE);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if interest.is_priority() {
        add(mio::Interest::PRIORITY);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    if interest.is_priority() {
        // kqueue has no priority filter; urgent data reads as readable.
        add(mio::Interest::READABLE);
    }
    // Errors are always reported and mio has no interest for them; an
    // error-only registration still needs one, and its readable events
    // are filtered out by the waiter, which asks for errors only.
    out.unwrap_or(mio::Interest::READABLE)
}

fn ready_of(event: &mio::event::Event) -> Ready {
    let mut ready = Ready::EMPTY;
    if event.is_readable() {
        ready |= Ready::READABLE;
    }
    if event.is_writable() {
        ready |= Ready::WRITABLE;
    }
    if event.is_error() {
        ready |= Ready::ERROR;
    }
    if event.is_priority() {
        ready |= Ready::PRIORITY;
    }
    if event.is_read_closed() {
        ready |= Ready::READ_CLOSED;
    }
    if event.is_write_closed() {
        ready |= Ready::WRITE_CLOSED;
    }
    ready
}

impl Poller for MioBackend {
    fn register(&self, fd: RawFd, entry: u64, interest: Interest) -> io::Result<()> {
        self.registry.register(
            &mut SourceFd(&fd),
            Token(entry as usize),
            mio_interest(interest),
        )
    }

    fn reregister(&self, fd: RawFd, entry: u64, interest: Interest) -> io::Result<()> {
        self.registry.reregister(
            &mut SourceFd(&fd),
            Token(entry as usize),
            mio_interest(interest),
        )
    }

    fn deregister(&self, fd: RawFd, _entry: u64) -> io::Result<()> {
        self.registry.deregister(&mut SourceFd(&fd))
    }

    fn poll(
        &self,
        out: &mut Vec<(u64, Ready)>,
        timeout: Option<Duration>,
        sigmask: Option<&libc::sigset_t>,
    ) -> io::Result<()> {
        let mut guard = self.poll.lock();
        let (poll, events) = &mut *guard;
        self.syscalls.fetch_add(1, Ordering::Relaxed);
        crate::syscalls::count(1);
        if let Some(mask) = sigmask {
            return pwait(poll, out, timeout, mask);
        }
        match poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            if event.token() != WAKER {
                out.push((event.token().0 as u64, ready_of(event)));
            }
        }
        Ok(())
    }

    fn wake(&self) -> io::Result<()> {
        self.syscalls.fetch_add(1, Ordering::Relaxed);
        crate::syscalls::count(1);
        self.waker.wake()
    }

    fn name(&self) -> &'static str {
        if cfg!(target_os = "linux") {
            "mio (epoll)"
        } else {
            "mio (kqueue)"
        }
    }

    fn syscalls(&self) -> u64 {
        self.syscalls.load(Ordering::Relaxed)
    }
}

/// `epoll_pwait` on mio's epoll descriptor: mio has no call that installs a
/// signal mask for the duration of the wait, and emulating it with
/// `pthread_sigmask` around the wait would race with the signals it is
/// meant to let through.
#[cfg(target_os = "linux")]
fn pwait(
    poll: &Poll,
    out: &mut Vec<(u64, Ready)>,
    timeout: Option<Duration>,
    mask: &libc::sigset_t,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    const MAX: usize = 256;
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; MAX];
    let ms = match timeout {
        None => -1,
        // Round up so a timer is never reported before its deadline.
        Some(t) => t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
    };
    // SAFETY: `events` is a valid buffer of MAX epoll_event structs, the
    // epoll fd belongs to `poll` which we hold locked, and `mask` is a
    // valid, initialised sigset_t borrowed for the duration of the call.
    let n = unsafe {
        libc::epoll_pwait(
            poll.as_raw_fd(),
            events.as_mut_ptr(),
            MAX as i32,
            ms,
            mask as *const libc::sigset_t,
        )
    };
    if n < 0 {
        let err = io::Error::last_os_error();
        return if err.kind() == io::ErrorKind::Interrupted {
            Ok(())
        } else {
            Err(err)
        };
    }
    for ev in &events[..n as usize] {
        let token = ev.u64;
        if token as usize != WAKER.0 {
            out.push((token, Ready::from_poll_bits(ev.events)));
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn pwait(
    _poll: &Poll,
    _out: &mut Vec<(u64, Ready)>,
    _timeout: Option<Duration>,
    _mask: &libc::sigset_t,
) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "kevent: a signal mask during wait needs epoll_pwait (Linux)",
    ))
}
