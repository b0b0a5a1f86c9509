//! The clock the scheduler reads and sleeps on, behind a trait so tests can move time by hand.
//!
//! [`SystemClock`] is the real one; [`ManualClock`] only moves when a test says so, and wakes
//! every sleeper whose time has come when it does.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

/// A source of the current time that can also wait for a given time.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// Completes once [`Clock::now`] is at or after `t`; at once if it already is.
    fn sleep_until(&self, t: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The system's wall clock, waiting with tokio timers.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

/// The longest single timer [`SystemClock`] sets. Tokio timers run on the monotonic clock,
/// which stands still while the machine is suspended and ignores steps of the wall clock, so
/// a long wait re-reads the wall clock at least this often; a slot is then late by at most
/// this much after a resume or a clock step, at the cost of one wake-up per interval.
const LONGEST_TIMER: TimeDelta = TimeDelta::minutes(1);

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, t: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            loop {
                let left = t - Utc::now();
                if left <= TimeDelta::zero() {
                    return;
                }
                // `left` is positive here, so the conversion cannot fail.
                let nap = left.min(LONGEST_TIMER).to_std().unwrap_or_default();
                tokio::time::sleep(nap).await;
            }
        })
    }
}

/// A clock that stands still until told to move, for tests.
///
/// Sleepers wake as soon as [`ManualClock::advance`] or [`ManualClock::set`] moves the time to
/// or past their target.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock {
            now: watch::Sender::new(start),
        }
    }

    /// Moves the time forward by `by` (backward if negative) and wakes due sleepers.
    pub fn advance(&self, by: TimeDelta) {
        self.now.send_modify(|now| *now += by);
    }

    /// Sets the time to `t` and wakes due sleepers.
    pub fn set(&self, t: DateTime<Utc>) {
        self.now.send_replace(t);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep_until(&self, t: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut changes = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as `self`, which this future borrows, so waiting
            // cannot fail with a closed channel.
            let _ = changes.wait_for(|now| *now >= t).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// Lets spawned tasks on the current-thread runtime run until they block.
    async fn settle() {
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn manual_clock_shows_the_time_it_was_given_and_moves_only_when_told() {
        let clock = ManualClock::new(at("2024-03-10T06:00:00Z"));
        assert_eq!(clock.now(), at("2024-03-10T06:00:00Z"));
        clock.advance(TimeDelta::minutes(90));
        assert_eq!(clock.now(), at("2024-03-10T07:30:00Z"));
        clock.set(at("2030-01-01T00:00:00Z"));
        assert_eq!(clock.now(), at("2030-01-01T00:00:00Z"));
    }

    #[tokio::test]
    async fn manual_sleeper_wakes_only_once_time_reaches_its_target() {
        let clock = std::sync::Arc::new(ManualClock::new(at("2024-01-01T00:00:00Z")));
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(at("2024-01-01T00:10:00Z")).await })
        };
        settle().await;
        assert!(!sleeper.is_finished());

        clock.advance(TimeDelta::minutes(9));
        settle().await;
        assert!(!sleeper.is_finished(), "woke a minute early");

        clock.advance(TimeDelta::minutes(1));
        settle().await;
        assert!(sleeper.is_finished(), "did not wake at its target");
    }

    #[tokio::test]
    async fn manual_clock_wakes_every_due_sleeper_and_keeps_later_ones_waiting() {
        let clock = std::sync::Arc::new(ManualClock::new(at("2024-01-01T00:00:00Z")));
        let spawn = |target: &str| {
            let (clock, target) = (clock.clone(), at(target));
            tokio::spawn(async move { clock.sleep_until(target).await })
        };
        let early = spawn("2024-01-01T01:00:00Z");
        let also_early = spawn("2024-01-01T02:00:00Z");
        let late = spawn("2024-01-02T00:00:00Z");
        settle().await;

        clock.set(at("2024-01-01T03:00:00Z"));
        settle().await;
        assert!(early.is_finished() && also_early.is_finished());
        assert!(!late.is_finished());
    }

    #[tokio::test]
    async fn sleeping_until_a_past_time_returns_at_once_on_both_clocks() {
        let manual = ManualClock::new(at("2024-01-01T00:00:00Z"));
        manual.sleep_until(at("2023-12-31T23:59:59Z")).await;
        manual.sleep_until(at("2024-01-01T00:00:00Z")).await;
        SystemClock
            .sleep_until(Utc::now() - TimeDelta::seconds(5))
            .await;
    }
}
