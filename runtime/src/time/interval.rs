//! `Interval`: ticks at a fixed period.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::sleep::{sleep_until, Sleep};
use super::Instant;

/// What to do when ticks were missed (the task was late).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Fire the missed ticks at once, then keep the original schedule.
    #[default]
    Burst,
    /// Schedule the next tick one period after the late one.
    Delay,
    /// Skip the missed ticks; the next tick is the next multiple of the period.
    Skip,
}

/// Ticks every `period`; the first tick completes at once.
///
/// # Panics
///
/// If `period` is zero, or outside a kevent runtime.
#[track_caller]
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// Ticks every `period`, first at `start`.
///
/// # Panics
///
/// If `period` is zero, or outside a kevent runtime.
#[track_caller]
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(period > Duration::ZERO, "`period` must be non-zero");
    Interval {
        delay: sleep_until(start),
        period,
        missed: MissedTickBehavior::default(),
    }
}

/// A stream of ticks (see [`interval`]).
pub struct Interval {
    /// The next tick.
    delay: Sleep,
    /// Time between ticks.
    period: Duration,
    /// Late-tick policy.
    missed: MissedTickBehavior,
}

impl Interval {
    /// Waits for the next tick and returns its scheduled instant.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if self.delay.poll_elapsed(cx).is_pending() {
            return Poll::Pending;
        }
        let scheduled = self.delay.deadline();
        let now = Instant::now();
        // As tokio: a tick less than 5 ms late is on time, whatever the policy.
        let late = now.saturating_duration_since(scheduled) > Duration::from_millis(5);
        let next = match self.missed {
            _ if !late => scheduled + self.period,
            MissedTickBehavior::Burst => scheduled + self.period,
            MissedTickBehavior::Delay => now + self.period,
            MissedTickBehavior::Skip => {
                let late = now.saturating_duration_since(scheduled);
                let periods = late.as_nanos() / self.period.as_nanos() + 1;
                scheduled + self.period * periods as u32
            }
        };
        Pin::new(&mut self.delay).reset(next);
        Poll::Ready(scheduled)
    }

    /// Restarts the schedule: the next tick is one period from now.
    pub fn reset(&mut self) {
        Pin::new(&mut self.delay).reset(Instant::now() + self.period);
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The late-tick policy.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed
    }

    /// Sets the late-tick policy.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interval")
            .field("period", &self.period)
            .field("next", &self.delay.deadline())
            .finish()
    }
}
