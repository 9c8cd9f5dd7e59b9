//! hyper on kevent with no adapter types: `TcpStream` and `UnixStream`
//! implement `hyper::rt::Read` and `hyper::rt::Write` directly (reads go
//! into hyper's uninitialised buffer without zeroing it; writes are
//! vectored), [`Executor`] spawns hyper's background tasks (HTTP/2
//! included), and [`Timer`] gives hyper kevent sleeps whose `reset` reuses
//! the ring timer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::runtime::Handle;
use crate::time::Sleep;

/// Spawns hyper's connection and stream tasks on a kevent runtime.
#[derive(Debug, Clone, Default)]
pub struct Executor {
    /// The runtime to spawn on; `None`: the current runtime at each spawn.
    handle: Option<Handle>,
}

impl Executor {
    /// Spawns on whichever kevent runtime is current when hyper spawns.
    pub fn new() -> Executor {
        Executor { handle: None }
    }

    /// Spawns on `handle`'s runtime, from any thread.
    pub fn with_handle(handle: Handle) -> Executor {
        Executor {
            handle: Some(handle),
        }
    }
}

impl<F> hyper::rt::Executor<F> for Executor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        match &self.handle {
            Some(h) => drop(h.spawn(future)),
            None => drop(crate::spawn(future)),
        }
    }
}

/// kevent's timers for hyper (header-read timeouts, keep-alive, HTTP/2
/// pings).
#[derive(Debug, Clone, Default)]
pub struct Timer {
    /// Not constructible with a literal, so fields can be added.
    _private: (),
}

impl Timer {
    /// A timer using the current kevent runtime.
    pub fn new() -> Timer {
        Timer { _private: () }
    }
}

/// A kevent [`Sleep`] as a `hyper::rt::Sleep`.
#[derive(Debug)]
pub struct HyperSleep {
    /// The sleep.
    inner: Sleep,
}

impl Future for HyperSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}

impl hyper::rt::Sleep for HyperSleep {}

impl hyper::rt::Timer for Timer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep {
            inner: crate::time::sleep(duration),
        })
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep {
            inner: crate::time::sleep_until(deadline),
        })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<HyperSleep>() {
            Some(s) => Pin::new(&mut s.get_mut().inner).reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}
