//! Signals: `ctrl_c`, and Unix signals as streams.

use std::io;

use crate::driver::slab::Direction;
use crate::driver::Registration;

/// Completes when the process receives SIGINT (Ctrl-C). Once called, SIGINT
/// no longer terminates the process by default.
///
/// # Panics
///
/// Outside a kevent runtime.
pub async fn ctrl_c() -> io::Result<()> {
    let mut s = unix::signal(unix::SignalKind::interrupt())?;
    s.recv().await;
    Ok(())
}

/// Unix signals.
pub mod unix {
    use super::*;

    /// A signal number.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct SignalKind(i32);

    impl SignalKind {
        /// Any signal by number.
        pub const fn from_raw(signo: i32) -> SignalKind {
            SignalKind(signo)
        }

        /// The raw number.
        pub const fn as_raw_value(self) -> i32 {
            self.0
        }

        /// SIGINT.
        pub const fn interrupt() -> SignalKind {
            SignalKind(libc::SIGINT)
        }

        /// SIGTERM.
        pub const fn terminate() -> SignalKind {
            SignalKind(libc::SIGTERM)
        }

        /// SIGHUP.
        pub const fn hangup() -> SignalKind {
            SignalKind(libc::SIGHUP)
        }

        /// SIGQUIT.
        pub const fn quit() -> SignalKind {
            SignalKind(libc::SIGQUIT)
        }

        /// SIGUSR1.
        pub const fn user_defined1() -> SignalKind {
            SignalKind(libc::SIGUSR1)
        }

        /// SIGUSR2.
        pub const fn user_defined2() -> SignalKind {
            SignalKind(libc::SIGUSR2)
        }

        /// SIGWINCH.
        pub const fn window_change() -> SignalKind {
            SignalKind(libc::SIGWINCH)
        }

        /// SIGCHLD.
        pub const fn child() -> SignalKind {
            SignalKind(libc::SIGCHLD)
        }
    }

    /// A stream of one signal's deliveries; deliveries between two `recv`
    /// calls coalesce into one.
    #[derive(Debug)]
    pub struct Signal {
        /// The ring registration.
        reg: Registration,
    }

    /// Listens for `kind`.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    #[track_caller]
    pub fn signal(kind: SignalKind) -> io::Result<Signal> {
        let handle = crate::driver::current_handle();
        Ok(Signal {
            reg: Registration::new_signal(&handle, kind.0)?,
        })
    }

    impl Signal {
        /// Waits for the next delivery. Never returns `None` today (tokio
        /// returns `None` when the driver is gone).
        pub async fn recv(&mut self) -> Option<()> {
            let ev = self.reg.ready(Direction::Read).await.ok()?;
            self.reg.clear_readiness(ev);
            Some(())
        }

        /// Polls for the next delivery.
        pub fn poll_recv(
            &mut self,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<()>> {
            match self.reg.poll_ready(cx, Direction::Read) {
                std::task::Poll::Ready(Ok(ev)) => {
                    self.reg.clear_readiness(ev);
                    std::task::Poll::Ready(Some(()))
                }
                std::task::Poll::Ready(Err(_)) => std::task::Poll::Ready(None),
                std::task::Poll::Pending => std::task::Poll::Pending,
            }
        }
    }
}
