//! The user-space-only backend: no file descriptors, only user events,
//! timers and signals. Its "poll" is a park on a condition variable, so the
//! ring can be used (and model checked) as a pure in-process event queue.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use super::Poller;
use crate::event::{Interest, Ready};
use crate::loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use crate::loom::{Condvar, Mutex};

/// A backend without OS sources.
#[derive(Debug, Default)]
pub(crate) struct UserBackend {
    /// Set by `wake`, cleared by the poll it ends.
    woken: Mutex<bool>,
    /// Where `poll` sleeps.
    cv: Condvar,
    /// Fast check for `wake` to skip the lock when nobody sleeps.
    sleeping: AtomicBool,
    /// Polls and wakes.
    syscalls: AtomicU64,
    /// Readiness injected by model tests, handed out by the next poll.
    #[cfg(loom)]
    injected: Mutex<Vec<(u64, Ready)>>,
}

impl UserBackend {
    pub(crate) fn new() -> UserBackend {
        UserBackend::default()
    }
}

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "kevent: the user-space backend has no file descriptors; use Backend::Mio",
    )
}

impl Poller for UserBackend {
    fn register(&self, _: RawFd, _: u64, _: Interest) -> io::Result<()> {
        Err(unsupported())
    }

    fn reregister(&self, _: RawFd, _: u64, _: Interest) -> io::Result<()> {
        Err(unsupported())
    }

    fn deregister(&self, _: RawFd, _: u64) -> io::Result<()> {
        Err(unsupported())
    }

    fn poll(
        &self,
        _out: &mut Vec<(u64, Ready)>,
        timeout: Option<Duration>,
        _sigmask: Option<&libc::sigset_t>,
    ) -> io::Result<()> {
        self.syscalls.fetch_add(1, Ordering::Relaxed);
        #[cfg(loom)]
        let _collect = Collect {
            from: &self.injected,
            out: _out,
        };
        if timeout == Some(Duration::ZERO) {
            *self.woken.lock() = false;
            return Ok(());
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut woken = self.woken.lock();
        self.sleeping.store(true, Ordering::SeqCst);
        #[cfg(not(loom))]
        while !*woken {
            if self.cv.wait_until(&mut woken, deadline) {
                break;
            }
        }
        #[cfg(loom)]
        while !*woken {
            woken = self.cv.wait_until(woken, deadline).0;
        }
        *woken = false;
        self.sleeping.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn wake(&self) -> io::Result<()> {
        self.syscalls.fetch_add(1, Ordering::Relaxed);
        *self.woken.lock() = true;
        self.cv.notify_one();
        Ok(())
    }

    fn name(&self) -> &'static str {
        "user-space"
    }

    fn syscalls(&self) -> u64 {
        self.syscalls.load(Ordering::Relaxed)
    }

    #[cfg(loom)]
    fn inject(&self, entry: u64, ready: Ready) {
        self.injected.lock().push((entry, ready));
        let _ = self.wake();
    }
}

/// Hands the injected readiness to a poll as it returns (model tests).
#[cfg(loom)]
struct Collect<'a> {
    from: &'a Mutex<Vec<(u64, Ready)>>,
    out: &'a mut Vec<(u64, Ready)>,
}

#[cfg(loom)]
impl Drop for Collect<'_> {
    fn drop(&mut self) {
        self.out.append(&mut self.from.lock());
    }
}
