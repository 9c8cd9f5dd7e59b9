//! Time: sleeps, timeouts and intervals on the ring's timers.
//!
//! Deadlines are [`Instant`]s of the runtime's clock, which a test can
//! pause ([`pause`], [`advance`], [`resume`], `Builder::start_paused`), as
//! tokio's. Timers live in the ring's hierarchical wheel (O(1) to arm and
//! cancel); the nearest one bounds the harvesting worker's sleep, and an
//! expiry arrives as a ring event.

pub(crate) mod clock;
mod instant;
mod interval;
mod sleep;
mod timeout;

pub use clock::{advance, pause, resume};
pub use instant::Instant;
pub use interval::{interval, interval_at, Interval, MissedTickBehavior};
pub(crate) use sleep::deadline_in;
pub use sleep::{sleep, sleep_until, Sleep};
pub use std::time::Duration;
pub use timeout::{timeout, timeout_at, Timeout};

/// Time errors.
pub mod error {
    use std::fmt;

    /// A [`timeout`](super::timeout) elapsed before its future completed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Elapsed(());

    impl Elapsed {
        pub(crate) fn new() -> Elapsed {
            Elapsed(())
        }
    }

    impl fmt::Display for Elapsed {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("deadline has elapsed")
        }
    }

    impl std::error::Error for Elapsed {}

    impl From<Elapsed> for std::io::Error {
        fn from(e: Elapsed) -> std::io::Error {
            std::io::Error::new(std::io::ErrorKind::TimedOut, e)
        }
    }
}
