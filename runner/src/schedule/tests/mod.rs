//! Tests of the schedule contract, with expected values worked out by hand from crontab(5),
//! Debian's cron(8) and the published transition times of each zone (cross-checked with
//! `zdump`), never from the `cron` crate.
//!
//! Helpers print fire times as local wall time with weekday and UTC offset, so an expectation
//! reads like a calendar and a wrong offset (a DST mistake) shows in the diff.

mod catchup;
mod corrections;
mod dst_north;
mod dst_south;
mod refusals;
mod span;
mod syntax;

use chrono::{DateTime, Utc};

use super::Schedule;

/// Parses an RFC 3339 instant with any offset.
fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad instant `{s}`: {e}"))
        .to_utc()
}

/// Parses `expr` in `zone`, panicking with the error's message if it is refused.
fn schedule(expr: &str, zone: &str) -> Schedule {
    Schedule::parse(expr, zone).unwrap_or_else(|e| panic!("{e}"))
}

/// Formats an instant as local time in the schedule's zone, e.g. `Sun 2024-03-10 03:00:00 -04:00`.
fn show(schedule: &Schedule, t: DateTime<Utc>) -> String {
    t.with_timezone(&schedule.zone())
        .format("%a %Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

/// The first `n` fires of `expr` in `zone` strictly after `after`, formatted by [`show`].
fn fires(expr: &str, zone: &str, after: &str, n: usize) -> Vec<String> {
    let schedule = schedule(expr, zone);
    schedule
        .iter_after(instant(after))
        .take(n)
        .map(|t| show(&schedule, t))
        .collect()
}

/// The message of the error `parse` gives for `expr` in `zone`.
fn refusal(expr: &str, zone: &str) -> String {
    match Schedule::parse(expr, zone) {
        Ok(s) => panic!("`{expr}` was accepted: {s:?}"),
        Err(e) => e.to_string(),
    }
}
