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
///
/// It takes its runtime, and its ring timer, at its first poll: hyper makes
/// a header-read timeout for every request it reads and drops it once the
/// head is parsed, which with pipelined requests (the next head already
/// buffered) is before anything waited on it. A timeout nobody waited on
/// then costs no runtime handle (a reference count the workers would pass
/// back and forth) and no timer. Polled outside a kevent runtime, it
/// panics as [`crate::time::sleep`] does.
#[derive(Debug)]
pub struct HyperSleep {
    state: SleepState,
}

#[derive(Debug)]
enum SleepState {
    /// Not polled yet: only the deadline.
    Deadline(crate::time::Instant),
    /// Polled: the sleep, on the runtime it was first polled in.
    Sleeping(Sleep),
}

impl HyperSleep {
    fn until(deadline: crate::time::Instant) -> HyperSleep {
        HyperSleep {
            state: SleepState::Deadline(deadline),
        }
    }
}

impl Future for HyperSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let SleepState::Deadline(deadline) = this.state {
            this.state = SleepState::Sleeping(crate::time::sleep_until(deadline));
        }
        match &mut this.state {
            SleepState::Sleeping(sleep) => Pin::new(sleep).poll(cx),
            SleepState::Deadline(_) => unreachable!("made a sleep above"),
        }
    }
}

impl hyper::rt::Sleep for HyperSleep {}

impl hyper::rt::Timer for Timer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep::until(crate::time::deadline_in(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep::until(deadline.into()))
    }

    /// The runtime's clock, the one its sleeps run on: with the clock
    /// paused (`kevent::time::pause`) hyper's deadlines move with it, as
    /// they do with tokio's timer. Outside a runtime, the machine's clock.
    fn now(&self) -> Instant {
        crate::time::Instant::now().into_std()
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<HyperSleep>() {
            Some(s) => match &mut s.get_mut().state {
                SleepState::Deadline(d) => *d = new_deadline.into(),
                SleepState::Sleeping(inner) => Pin::new(inner).reset(new_deadline.into()),
            },
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

mod io_impls {
    //! `hyper::rt::Read` / `Write` for kevent's stream sockets.

    use std::io::{self, IoSlice};
    use std::os::fd::AsRawFd;
    use std::pin::Pin;
    use std::task::{ready, Context, Poll};

    use hyper::rt::ReadBufCursor;

    use crate::net::evented::Evented;
    use crate::net::{TcpStream, UnixStream};

    /// Reads into hyper's buffer without zeroing it first: the read writes
    /// the bytes, and only the bytes it reports are marked filled.
    fn poll_read_uninit<S: AsRawFd>(
        io: &Evented<S>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: the slice is only written (by the read below) and never
        // read; `advance` then marks exactly the bytes written.
        let n = ready!(io.poll_read_uninit(cx, unsafe { buf.as_mut() }))?;
        // SAFETY: the read initialised the first `n` bytes of the cursor.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }

    macro_rules! hyper_stream {
        ($ty:ty) => {
            impl hyper::rt::Read for $ty {
                fn poll_read(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: ReadBufCursor<'_>,
                ) -> Poll<io::Result<()>> {
                    poll_read_uninit(self.evented(), cx, buf)
                }
            }

            impl hyper::rt::Write for $ty {
                fn poll_write(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &[u8],
                ) -> Poll<io::Result<usize>> {
                    self.evented().poll_write(cx, buf)
                }

                fn poll_write_vectored(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    bufs: &[IoSlice<'_>],
                ) -> Poll<io::Result<usize>> {
                    self.evented().poll_write_vectored(cx, bufs)
                }

                fn is_write_vectored(&self) -> bool {
                    true
                }

                /// Write-behind: hyper flushes at the end of every response
                /// and learns of a failed send at its next write, flush or
                /// shutdown, so this does not wait for the ring's send (the
                /// bytes go out in order whatever the connection does next;
                /// `AsyncWrite::flush` on the stream still waits for them).
                /// Waiting would cost each response a second wakeup of its
                /// connection's task.
                fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                    Poll::Ready(self.evented().flush_behind())
                }

                fn poll_shutdown(
                    self: Pin<&mut Self>,
                    _cx: &mut Context<'_>,
                ) -> Poll<io::Result<()>> {
                    match self.shutdown_std(std::net::Shutdown::Write) {
                        Err(e) if e.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(e)),
                        _ => Poll::Ready(Ok(())),
                    }
                }
            }
        };
    }

    hyper_stream!(TcpStream);
    hyper_stream!(UnixStream);
}

mod io;
pub use io::Io;
