//! How a ring is built: its size, its consumers, and which backend feeds
//! it (with the fallback from io_uring to mio).

use std::io;
use std::sync::Arc;

use crate::backend::mio::MioBackend;
use crate::backend::user::UserBackend;
use crate::backend::Poller;

/// Which backend feeds the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Backend {
    /// io_uring where the kernel offers it, else mio (one log line says so).
    #[default]
    Auto,
    /// mio: epoll on Linux, kqueue on macOS and the BSDs.
    Mio,
    /// io_uring (Linux): the kernel fills the completion ring (multishot
    /// poll), so harvesting costs no syscall. An error where unavailable.
    Uring,
    /// No OS sources at all: user events, timers only. The ring as an
    /// in-process event queue.
    UserSpace,
}

/// How to build a [`Kevent`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Ring slots (rounded up to a power of two).
    pub capacity: usize,
    /// The most consumers that may be attached at once.
    pub max_consumers: usize,
    /// Which backend feeds the ring.
    pub backend: Backend,
    /// Most OS events one harvest collects.
    pub events_per_poll: usize,
    /// Whether a stream from [`Kevent::register_stream`] may receive
    /// through the ring (io_uring); `false` keeps every socket on readiness.
    pub recv_through_ring: bool,
    /// Whether a stream from [`Kevent::register_stream`] may send through
    /// the ring (io_uring); `false` keeps every socket writing on readiness.
    pub send_through_ring: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            capacity: 1024,
            max_consumers: 64,
            backend: Backend::Auto,
            events_per_poll: 1024,
            recv_through_ring: true,
            send_through_ring: true,
        }
    }
}

impl Config {
    /// Sets the ring's capacity.
    pub fn capacity(mut self, capacity: usize) -> Config {
        self.capacity = capacity;
        self
    }

    /// Sets the maximum number of consumers.
    pub fn max_consumers(mut self, n: usize) -> Config {
        self.max_consumers = n;
        self
    }

    /// Chooses the backend.
    pub fn backend(mut self, backend: Backend) -> Config {
        self.backend = backend;
        self
    }

    /// Lets stream sockets receive through the ring where the backend can
    /// (default `true`).
    pub fn recv_through_ring(mut self, on: bool) -> Config {
        self.recv_through_ring = on;
        self
    }

    /// Lets stream sockets send through the ring where the backend can
    /// (default `true`).
    pub fn send_through_ring(mut self, on: bool) -> Config {
        self.send_through_ring = on;
        self
    }
}

/// Builds the backend `config` asks for. `Auto` takes io_uring when this
/// kernel offers what the backend needs and falls back to mio with one log
/// line otherwise (old kernel, `ENOSYS`/`EPERM` from seccomp,
/// `kernel.io_uring_disabled`).
pub(crate) fn make_backend(config: &Config, ring: usize) -> io::Result<Arc<dyn Poller>> {
    match config.backend {
        Backend::Mio => Ok(Arc::new(MioBackend::new(config.events_per_poll)?)),
        Backend::UserSpace => Ok(Arc::new(UserBackend::new())),
        #[cfg(target_os = "linux")]
        Backend::Uring => {
            crate::backend::uring::probe()?;
            Ok(Arc::new(crate::backend::uring::UringBackend::new(ring)?))
        }
        #[cfg(not(target_os = "linux"))]
        Backend::Uring => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "kevent: io_uring is Linux-only; use Backend::Auto or Backend::Mio",
        )),
        Backend::Auto => {
            #[cfg(target_os = "linux")]
            match crate::backend::uring::probe()
                .and_then(|()| crate::backend::uring::UringBackend::new(ring))
            {
                Ok(b) => return Ok(Arc::new(b)),
                Err(e) => log_fallback(&e),
            }
            Ok(Arc::new(MioBackend::new(config.events_per_poll)?))
        }
    }
}

/// Says once per process that io_uring was refused and mio is used.
#[cfg(target_os = "linux")]
fn log_fallback(e: &io::Error) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| eprintln!("kevent: io_uring unavailable ({e}); using mio (epoll)"));
}
