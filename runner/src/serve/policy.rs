//! The per-job scheduling policies a job file can set, their defaults, and their checks.
//!
//! The job file holds them as plain text (`missed = "latest"`) so that `runner validate` can
//! name the job, the step, the field and the value of a bad one; this module reads the text
//! into the types the scheduler uses and computes retry delays.

use std::time::Duration;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use crate::config::Job;
use crate::sandbox::Outcome;
use crate::schedule::MissedPolicy;

/// With `missed = "all"` and no `catch_up_max`, the most slots one catch-up runs.
pub const DEFAULT_CATCH_UP_MAX: u32 = 10;
/// Delay before the second attempt when `backoff_secs` is not set.
pub const DEFAULT_BACKOFF_SECS: f64 = 1.0;
/// Longest delay between attempts when `max_backoff_secs` is not set.
pub const DEFAULT_MAX_BACKOFF_SECS: f64 = 300.0;
/// Outcomes a step retries when its `retry_on` is not set: the sandbox stopped the guest.
pub const DEFAULT_STEP_RETRY_ON: &[&str] = &["trap", "timeout"];
/// Outcomes a job retries when its `retry_on` is not set: also runs cut short by a crash.
pub const DEFAULT_JOB_RETRY_ON: &[&str] = &["trap", "timeout", "interrupted"];
/// Names `retry_on` accepts: the step outcomes that are failures.
pub const RETRYABLE: &[&str] = &[
    "guest-error",
    "trap",
    "timeout",
    "memory-limit",
    "stack-overflow",
    "load-error",
    "interrupted",
];
/// The longest delay or timeout a job file may set: seven days.
const LONGEST_SECS: f64 = 7.0 * 86_400.0;
/// The longest starting deadline a job file may set: 366 days.
const LONGEST_DEADLINE_SECS: u64 = 366 * 86_400;

/// What happens to a slot that comes due while a run of the same job is still running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlap {
    /// Start it anyway: runs of the job may overlap (the default).
    Allow,
    /// Do not start it; record it as skipped.
    Forbid,
    /// Start it when the running one ends; while one slot waits, newer ones are skipped.
    QueueOne,
    /// Cancel the running one (recorded as interrupted, replaced) and start the new one.
    Replace,
}

/// `[job.retry]` or `[job.step.retry]`: how often and on what to try again.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, the first included (default 3 once the table is written; 1 without).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Delay before the second attempt; it doubles per attempt (default 1).
    #[serde(default)]
    pub backoff_secs: Option<f64>,
    /// The delay never grows past this (default 300).
    #[serde(default)]
    pub max_backoff_secs: Option<f64>,
    /// Outcomes that are retried (step default `trap`, `timeout`; job default adds
    /// `interrupted`).
    #[serde(default)]
    pub retry_on: Option<Vec<String>>,
}

/// A [`RetrySpec`] with its defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    /// Attempts in all, at least 1.
    pub max_attempts: u32,
    /// Delay before the second attempt.
    pub backoff: Duration,
    /// Cap of the delay.
    pub max_backoff: Duration,
    /// Outcome names that are retried.
    pub retry_on: Vec<String>,
}

impl Retry {
    /// Reads an optional retry table; `defaults` is the `retry_on` used when it names none.
    pub fn from_spec(spec: Option<&RetrySpec>, defaults: &[&str]) -> Retry {
        let seconds = |s: Option<f64>, d: f64| {
            Duration::from_secs_f64(s.filter(|s| s.is_finite() && *s >= 0.0).unwrap_or(d))
        };
        Retry {
            max_attempts: match spec {
                None => 1,
                Some(s) => s.max_attempts.unwrap_or(3).max(1),
            },
            backoff: seconds(spec.and_then(|s| s.backoff_secs), DEFAULT_BACKOFF_SECS),
            max_backoff: seconds(
                spec.and_then(|s| s.max_backoff_secs),
                DEFAULT_MAX_BACKOFF_SECS,
            ),
            retry_on: spec
                .and_then(|s| s.retry_on.clone())
                .unwrap_or_else(|| defaults.iter().map(|s| s.to_string()).collect()),
        }
    }

    /// Whether a failed attempt numbered `attempt` (from 1) that ended with `outcome` gets
    /// another one.
    pub fn again(&self, attempt: u32, outcome: Outcome) -> bool {
        attempt < self.max_attempts && self.retry_on.iter().any(|o| o == outcome.as_str())
    }

    /// The wait after failed attempt `attempt` (from 1): `backoff * 2^(attempt-1)`, capped at
    /// `max_backoff`, then scaled by a jitter factor in [0.5, 1] drawn from `seed`, so retries
    /// of many runs that failed together spread out instead of failing together again.
    pub fn delay(&self, attempt: u32, seed: u64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(62);
        let full = self.backoff.as_secs_f64() * (1u64 << doublings) as f64;
        let full = full.min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64(full * (0.5 + 0.5 * unit(seed ^ u64::from(attempt))))
    }
}

/// A number in [0, 1) mixed from `seed` (SplitMix64's finaliser): jitter without a random
/// number generator, and repeatable in tests.
fn unit(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// A job's scheduling policies, read from its job-file fields with defaults filled in.
#[derive(Debug, Clone)]
pub struct Policies {
    /// Missed slots after downtime.
    pub missed: MissedPolicy,
    /// Slots older than this when their turn comes are recorded as missed.
    pub starting_deadline: Option<TimeDelta>,
    /// Slots that come due while a run is running.
    pub overlap: Overlap,
    /// The whole run's deadline.
    pub timeout: Option<Duration>,
    /// Whole-run retries.
    pub retry: Retry,
}

impl Policies {
    /// The policies of `job`. Values `validate` would refuse fall back to the defaults, so
    /// this never fails; `runner serve` refuses a job file with problems before it gets here.
    pub fn of(job: &Job) -> Policies {
        let missed = match job.missed.as_deref() {
            Some("skip") => MissedPolicy::Skip,
            Some("all") => MissedPolicy::All {
                max: job.catch_up_max.unwrap_or(DEFAULT_CATCH_UP_MAX).max(1) as usize,
            },
            _ => MissedPolicy::Latest,
        };
        Policies {
            missed,
            starting_deadline: job
                .starting_deadline_secs
                .map(|s| TimeDelta::seconds(s.min(LONGEST_DEADLINE_SECS) as i64)),
            overlap: parse_overlap(job.overlap.as_deref().unwrap_or("allow"))
                .unwrap_or(Overlap::Allow),
            timeout: job
                .timeout_secs
                .filter(|t| t.is_finite() && *t > 0.0)
                .map(Duration::from_secs_f64),
            retry: Retry::from_spec(job.retry.as_ref(), DEFAULT_JOB_RETRY_ON),
        }
    }
}

fn parse_overlap(text: &str) -> Option<Overlap> {
    Some(match text {
        "allow" => Overlap::Allow,
        "forbid" => Overlap::Forbid,
        "queue-one" => Overlap::QueueOne,
        "replace" => Overlap::Replace,
        _ => return None,
    })
}

/// A problem with a scheduling field: the step (if in one), the field and the message.
pub type FieldProblem = (Option<String>, &'static str, String);

/// Every problem with `job`'s scheduling fields, each naming the field and the value.
pub fn problems(job: &Job) -> Vec<FieldProblem> {
    let mut out = Vec::new();
    if let Some(m) = &job.missed
        && !["skip", "latest", "all"].contains(&m.as_str())
    {
        out.push((
            None,
            "missed",
            format!("`{m}` is not a policy: expected `skip`, `latest` or `all`"),
        ));
    }
    if let Some(n) = job.catch_up_max
        && !(1..=10_000).contains(&n)
    {
        out.push((None, "catch_up_max", format!("`{n}`: must be 1 to 10000")));
    }
    if let Some(d) = job.starting_deadline_secs
        && d > LONGEST_DEADLINE_SECS
    {
        out.push((
            None,
            "starting_deadline_secs",
            format!("`{d}`: must be at most 31622400 (366 days)"),
        ));
    }
    if let Some(o) = &job.overlap
        && parse_overlap(o).is_none()
    {
        out.push((
            None,
            "overlap",
            format!("`{o}` is not a policy: expected `allow`, `forbid`, `queue-one` or `replace`"),
        ));
    }
    if let Some(t) = job.timeout_secs
        && !(t.is_finite() && t > 0.0 && t <= LONGEST_SECS)
    {
        out.push((
            None,
            "timeout_secs",
            format!("`{t}`: must be above 0 and at most 604800 (7 days)"),
        ));
    }
    if let Some(r) = &job.retry {
        for (field, message) in retry_problems(r) {
            out.push((None, field, message));
        }
    }
    for (spec, name) in job.steps.iter().zip(job.step_names()) {
        if let Some(r) = &spec.retry {
            for (field, message) in retry_problems(r) {
                out.push((Some(name.clone()), field, message));
            }
        }
    }
    out
}

fn retry_problems(r: &RetrySpec) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(n) = r.max_attempts
        && !(1..=100).contains(&n)
    {
        out.push(("retry.max_attempts", format!("`{n}`: must be 1 to 100")));
    }
    for (field, value) in [
        ("retry.backoff_secs", r.backoff_secs),
        ("retry.max_backoff_secs", r.max_backoff_secs),
    ] {
        if let Some(v) = value
            && !(v.is_finite() && (0.0..=LONGEST_SECS).contains(&v))
        {
            out.push((field, format!("`{v}`: must be 0 to 604800 (7 days)")));
        }
    }
    for o in r.retry_on.iter().flatten() {
        if !RETRYABLE.contains(&o.as_str()) {
            out.push((
                "retry.retry_on",
                format!(
                    "`{o}` is not a failure outcome: expected one of `{}`",
                    RETRYABLE.join("`, `")
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(max_attempts: u32, backoff: f64, cap: f64) -> Retry {
        Retry::from_spec(
            Some(&RetrySpec {
                max_attempts: Some(max_attempts),
                backoff_secs: Some(backoff),
                max_backoff_secs: Some(cap),
                retry_on: None,
            }),
            DEFAULT_STEP_RETRY_ON,
        )
    }

    #[test]
    fn backoff_doubles_per_attempt_stops_at_its_cap_and_jitter_keeps_half_to_all_of_it() {
        let r = retry(10, 2.0, 20.0);
        // Full delays 2, 4, 8, 16, then the cap 20: jitter scales each into [half, whole].
        for (attempt, full) in [
            (1, 2.0),
            (2, 4.0),
            (3, 8.0),
            (4, 16.0),
            (5, 20.0),
            (9, 20.0),
        ] {
            for seed in 0..200u64 {
                let d = r.delay(attempt, seed).as_secs_f64();
                assert!(
                    (full / 2.0..=full).contains(&d),
                    "attempt {attempt}, seed {seed}: {d} s outside [{}, {full}]",
                    full / 2.0
                );
            }
        }
    }

    #[test]
    fn jitter_spreads_retries_of_runs_that_failed_together() {
        let r = retry(3, 10.0, 10.0);
        let delays: std::collections::BTreeSet<u64> = (0..100u64)
            .map(|seed| r.delay(1, seed).as_millis() as u64)
            .collect();
        assert!(delays.len() > 90, "only {} distinct delays", delays.len());
        let mean = delays.iter().sum::<u64>() as f64 / delays.len() as f64;
        assert!((6_500.0..8_500.0).contains(&mean), "mean {mean} ms");
    }

    #[test]
    fn a_step_without_a_retry_table_runs_once_and_one_with_it_defaults_to_three_attempts() {
        let none = Retry::from_spec(None, DEFAULT_STEP_RETRY_ON);
        assert!(!none.again(1, Outcome::Trap));
        let some = Retry::from_spec(Some(&RetrySpec::default()), DEFAULT_STEP_RETRY_ON);
        assert!(some.again(1, Outcome::Trap) && some.again(2, Outcome::Timeout));
        assert!(!some.again(3, Outcome::Trap), "three attempts in all");
        assert!(
            !some.again(1, Outcome::GuestError),
            "a step's own error is about its data and is not retried by default"
        );
    }
}
