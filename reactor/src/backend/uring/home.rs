//! Whether the home thread has time for the other workers' requests.
//!
//! A request's completion work runs on the thread that submitted it, so
//! with a home (`Consumer::set_home`) every receive's copy runs on one
//! thread. That pays while the home has idle time: a parked worker is
//! never woken for a completion. Once the home is busy all the time while
//! another worker runs too, it is the runtime's bottleneck (two workers
//! that have both CPUs: 64 echo connections with client and server in one
//! runtime took 1.3-1.6x tokio's time with a home, 0.8-1.1x without;
//! ARCHITECTURE.md, "One home for the ring's requests").
//!
//! So over windows of [`WINDOW`] the home measures the share of its time
//! it slept in the ring, and the share of its looks at the other consumers
//! (one per harvest while it runs, `Consumer::harvest`) that found one
//! running. After [`CLOSE_AFTER`] windows in a row with under
//! [`CLOSE_BELOW`] of sleep and at least [`OTHERS_BUSY_AT`] of busy looks
//! it *closes*: the other workers then submit their own requests and take
//! over the receives of the sockets they read (`Inbox::take`), as without
//! a home. Where the other worker is parked most of the time (a load
//! generator has the other CPU) it stays open: closing would only have
//! that worker woken for its receives. A window with [`OPEN_AT`] of sleep,
//! or under [`OTHERS_IDLE_BELOW`] of busy looks, opens it again, and the
//! receives move back as their sockets are read.
//!
//! Only the home thread writes; the others read `open`. Every field is a
//! relaxed atomic: `open` only steers which thread submits a request,
//! and a stale answer moves one request's owner, nothing else (the
//! handshake that makes a queued request reach the kernel is
//! `submit::mark_queued`'s, whichever way `open` reads).

use crate::loom::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The span over which the home's idle share is measured.
const WINDOW: Duration = Duration::from_millis(10);
/// An open home whose idle share over a window falls below this closes.
const CLOSE_BELOW: f64 = 0.05;
/// An open home closes after this many windows in a row that would close
/// it: a single busy window (a burst of pipelined requests) is not worth
/// moving receives for.
const CLOSE_AFTER: u64 = 2;
/// A closed home whose idle share over a window reaches this opens.
const OPEN_AT: f64 = 0.15;
/// An open home closes only if, in the same window, at least this share of
/// its looks at the other consumers found one running: a worker that is
/// parked most of the time is better left parked, its requests with the
/// home (where a load generator shares the machine, the home may be busy
/// all the time while the other worker has no CPU to take its work).
const OTHERS_BUSY_AT: f64 = 0.3;
/// A closed home opens if fewer of its looks than this share found another
/// consumer running.
const OTHERS_IDLE_BELOW: f64 = 0.15;
/// A running home reads the clock once per this many looks at the others.
const LOOK_EVERY: u64 = 8;

/// The home thread's load: whether it has time for others' requests.
#[derive(Debug)]
pub(super) struct HomeLoad {
    /// Others leave their requests to the home (`UringBackend::leaves_to_home`).
    open: AtomicBool,
    /// When the current window began (nanoseconds on the backend's clock).
    window_from: AtomicU64,
    /// Nanoseconds the home slept in the ring in the current window.
    slept: AtomicU64,
    /// Samples taken in the current window (`sample`), and how many of
    /// them found another consumer running.
    samples: AtomicU64,
    others_busy: AtomicU64,
    /// Windows in a row, up to now, that would close an open home.
    strikes: AtomicU64,
    /// Times the home closed, for tests and statistics.
    closings: AtomicU64,
}

impl HomeLoad {
    pub(super) fn new() -> HomeLoad {
        HomeLoad {
            open: AtomicBool::new(true),
            window_from: AtomicU64::new(0),
            slept: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            others_busy: AtomicU64::new(0),
            strikes: AtomicU64::new(0),
            closings: AtomicU64::new(0),
        }
    }

    /// Whether the other workers leave their requests to the home.
    pub(super) fn is_open(&self) -> bool {
        self.open.load(Relaxed)
    }

    /// How many times the home has closed.
    pub(super) fn closings(&self) -> u64 {
        self.closings.load(Relaxed)
    }

    /// The home slept in the ring from `from` to `to` (nanoseconds).
    pub(super) fn slept(&self, from: u64, to: u64) {
        let slept = self.slept.load(Relaxed) + to.saturating_sub(from);
        self.slept.store(slept, Relaxed);
        self.look(to);
    }

    /// The busy home looked at the other consumers: `others_busy` if one of
    /// them was running. True when the home should read the clock for
    /// `look` (every [`LOOK_EVERY`] samples: a harvest is frequent, the
    /// window long).
    pub(super) fn sample(&self, others_busy: bool) -> bool {
        let samples = self.samples.load(Relaxed) + 1;
        self.samples.store(samples, Relaxed);
        if others_busy {
            self.others_busy
                .store(self.others_busy.load(Relaxed) + 1, Relaxed);
        }
        samples % LOOK_EVERY == 0
    }

    /// The home is at `now` (nanoseconds): at the end of a window, opens or
    /// closes on the window's shares and starts the next window.
    pub(super) fn look(&self, now: u64) {
        let from = self.window_from.load(Relaxed);
        let span = now.saturating_sub(from);
        if span < WINDOW.as_nanos() as u64 {
            return;
        }
        let idle = self.slept.load(Relaxed) as f64 / span as f64;
        let samples = self.samples.load(Relaxed);
        let others = if samples == 0 {
            0.0
        } else {
            self.others_busy.load(Relaxed) as f64 / samples as f64
        };
        let open = self.open.load(Relaxed);
        if open && idle < CLOSE_BELOW && others >= OTHERS_BUSY_AT {
            let strikes = self.strikes.load(Relaxed) + 1;
            self.strikes.store(strikes, Relaxed);
            if strikes >= CLOSE_AFTER {
                self.open.store(false, Relaxed);
                self.strikes.store(0, Relaxed);
                self.closings
                    .store(self.closings.load(Relaxed) + 1, Relaxed);
            }
        } else {
            self.strikes.store(0, Relaxed);
            if !open && (idle >= OPEN_AT || others < OTHERS_IDLE_BELOW) {
                self.open.store(true, Relaxed);
            }
        }
        self.start_window(now);
    }

    /// The home is gone or changes thread: start over, open.
    pub(super) fn reset(&self, now: u64) {
        self.open.store(true, Relaxed);
        self.strikes.store(0, Relaxed);
        self.start_window(now);
    }

    fn start_window(&self, now: u64) {
        self.window_from.store(now, Relaxed);
        self.slept.store(0, Relaxed);
        self.samples.store(0, Relaxed);
        self.others_busy.store(0, Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// One window from `at` (ms) in which the home slept `slept` ms and
    /// looked at the others 11 times, `busy` of them finding one running.
    fn window(load: &HomeLoad, at: u64, slept: u64, busy: u64) {
        load.slept(at * MS + MS, (at + 1 + slept) * MS);
        for i in 0..10 {
            look_at(load, i < busy, at * MS + 5 * MS);
        }
        look_at(load, false, (at + 10) * MS);
    }

    /// A look at the others at `now`, the clock read as if every time.
    fn look_at(load: &HomeLoad, others_busy: bool, now: u64) {
        load.sample(others_busy);
        load.look(now);
    }

    #[test]
    fn a_busy_home_beside_busy_workers_closes_after_two_windows() {
        let load = HomeLoad::new();
        look_at(&load, true, 5 * MS);
        assert!(load.is_open(), "a window is not over yet");
        window(&load, 0, 0, 10);
        assert!(load.is_open(), "one busy window");
        window(&load, 10, 0, 10);
        assert!(!load.is_open());
        assert_eq!(load.closings(), 1);
    }

    #[test]
    fn busy_windows_must_come_in_a_row() {
        let load = HomeLoad::new();
        for w in 0..4 {
            window(&load, w * 20, 0, 10);
            window(&load, w * 20 + 10, 0, 2);
        }
        assert!(load.is_open());
        assert_eq!(load.closings(), 0);
    }

    #[test]
    fn a_busy_home_beside_parked_workers_stays_open() {
        // The others run in 2 of 11 looks: closing would only have them
        // woken for their own receives.
        let load = HomeLoad::new();
        for w in 0..5 {
            window(&load, w * 10, 0, 2);
            assert!(load.is_open(), "window {w}");
        }
        assert_eq!(load.closings(), 0);
    }

    #[test]
    fn a_home_with_idle_time_stays_open() {
        let load = HomeLoad::new();
        for w in 0..5 {
            // 2 ms of sleep in each 10 ms window: 20% idle.
            window(&load, w * 10, 2, 10);
            assert!(load.is_open(), "window {w}");
        }
        assert_eq!(load.closings(), 0);
    }

    #[test]
    fn a_closed_home_opens_only_past_the_other_thresholds() {
        let load = HomeLoad::new();
        window(&load, 0, 0, 10);
        window(&load, 10, 0, 10);
        assert!(!load.is_open());
        // 10% idle, others busy in 2 of 11 looks: between the two
        // thresholds of each share, so it stays as it is.
        window(&load, 20, 1, 2);
        assert!(!load.is_open(), "no flapping between the thresholds");
        // 20% idle: opens.
        window(&load, 30, 2, 10);
        assert!(load.is_open());
        // 10% idle again: an open home stays open.
        window(&load, 40, 1, 10);
        assert!(load.is_open());
        // Closed again, then the others park: opens.
        window(&load, 50, 0, 10);
        window(&load, 60, 0, 10);
        assert!(!load.is_open());
        window(&load, 70, 0, 0);
        assert!(load.is_open());
        assert_eq!(load.closings(), 2);
    }

    #[test]
    fn the_clock_is_read_once_per_eight_looks() {
        let load = HomeLoad::new();
        let reads: Vec<bool> = (0..16).map(|_| load.sample(true)).collect();
        assert_eq!(reads.iter().filter(|&&r| r).count(), 2);
        assert!(reads[7] && reads[15]);
    }

    #[test]
    fn reset_opens() {
        let load = HomeLoad::new();
        window(&load, 0, 0, 10);
        window(&load, 10, 0, 10);
        assert!(!load.is_open());
        load.reset(21 * MS);
        assert!(load.is_open());
        look_at(&load, true, 25 * MS);
        assert!(load.is_open(), "the window starts at the reset");
        window(&load, 21, 0, 10);
        assert!(load.is_open(), "the strikes start at the reset");
    }
}
