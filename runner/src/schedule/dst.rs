//! From wall-clock slots to real instants across time-zone changes (daylight saving and others).
//!
//! Debian's cron(8) documents the behaviour this file implements: a change of local time by
//! less than three hours is handled specially for jobs that run at a particular time (see
//! [`Timing::Fixed`]): wall times skipped by a jump forward run right after the jump, and wall
//! times repeated by a jump back run only once. Jobs with `*` in the minute or hour field
//! ([`Timing::Elapsed`]) follow the new local time at once. A change of three hours or more is
//! treated as a correction of the clock: skipped wall times are simply gone and repeated ones
//! fire again, for every job.
//!
//! The search walks real time one stretch of constant UTC offset at a time. Within a stretch
//! local time is UTC plus a constant, so the next wall slot maps to exactly one instant; only
//! at the edges (found by probing the zone's offset) do gaps and repeats need a decision.

use chrono::{DateTime, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use super::crontab::Timing;
use super::wall::WallSlots;

/// Local-time changes at least this large count as clock corrections, not daylight saving.
pub(crate) const CORRECTION: TimeDelta = TimeDelta::hours(3);

/// Offset probes are this far apart while looking for the next change. In the tz database
/// from 1970 on (the `cron` crate's range), offset changes are at least six days apart, so a
/// change and its reversal never both fall between two probes.
const PROBE_STEP_SECS: i64 = 24 * 60 * 60;

/// The first fire of `slots` in `zone` strictly after `after`, following `timing`'s rules.
pub(crate) fn next_fire(
    zone: Tz,
    timing: Timing,
    slots: &WallSlots,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    // Fires are sought after `from`, or at or after it once `from` is a change of offset.
    let mut from = after;
    let mut inclusive = false;
    loop {
        let offset = offset_at(zone, from);
        let wall_from = from.naive_utc() + offset;
        // Changes of offset fall on whole seconds, so one second back makes "after" inclusive.
        let probe = if inclusive {
            wall_from - TimeDelta::seconds(1)
        } else {
            wall_from
        };
        let wall = slots.next_after(probe)?;
        let candidate = (wall - offset).and_utc();

        let Some(change) = next_change(zone, from, candidate) else {
            // The candidate lies in the same stretch of constant offset, so it really shows
            // `wall` on the local clock. Only a second showing of a repeated time may be skipped.
            if timing == Timing::Fixed && is_repeat(zone, wall, candidate) {
                from = candidate;
                inclusive = false;
                continue;
            }
            return Some(candidate);
        };

        // The offset changes before the candidate: look at what the change did to `wall`.
        let new_offset = offset_at(zone, change);
        let jump = new_offset - offset;
        let skipped = wall < change.naive_utc() + new_offset;
        if timing == Timing::Fixed && jump > TimeDelta::zero() && jump < CORRECTION && skipped {
            return Some(change);
        }
        from = change;
        inclusive = true;
    }
}

/// Local time minus UTC in `zone` at instant `t`.
pub(crate) fn offset_at(zone: Tz, t: DateTime<Utc>) -> TimeDelta {
    let seconds = zone
        .offset_from_utc_datetime(&t.naive_utc())
        .fix()
        .local_minus_utc();
    TimeDelta::seconds(i64::from(seconds))
}

/// Whether `candidate` is the second showing of `wall` after a jump back smaller than
/// [`CORRECTION`], which fixed-time jobs do not fire again.
fn is_repeat(zone: Tz, wall: NaiveDateTime, candidate: DateTime<Utc>) -> bool {
    match zone.from_local_datetime(&wall) {
        chrono::LocalResult::Ambiguous(first, second) => {
            second.with_timezone(&Utc) == candidate && second - first < CORRECTION
        }
        _ => false,
    }
}

/// The first instant in `(after, until]` whose offset differs from the offset at `after`.
fn next_change(zone: Tz, after: DateTime<Utc>, until: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let offset_secs = |s: i64| DateTime::from_timestamp(s, 0).map(|t| offset_at(zone, t));
    let base = offset_at(zone, after);
    // Changes fall on whole seconds, so whole-second bounds lose nothing: the floor of
    // `after` still has the base offset, and a change at or before `until` is at or before
    // its floor.
    let mut low = after.timestamp();
    let end = until.timestamp();
    while low < end {
        let high = (low + PROBE_STEP_SECS).min(end);
        if offset_secs(high)? != base {
            // Invariant: offset at `low` is the base, offset at `high` is not.
            let mut high = high;
            while high - low > 1 {
                let mid = low + (high - low) / 2;
                if offset_secs(mid)? == base {
                    low = mid;
                } else {
                    high = mid;
                }
            }
            return DateTime::from_timestamp(high, 0);
        }
        low = high;
    }
    None
}
