//! When jobs fire: crontab expressions in a time zone, daylight saving, and catch-up after
//! downtime.
//!
//! Everything here is pure computation on times except [`Clock`], the one seam through which
//! the scheduler loop reads and waits on the clock (so tests can drive time by hand).
//!
//! # The contract
//!
//! An expression means what crontab(5) says, not what the `cron` crate underneath would make of
//! the same text:
//!
//! - five fields `minute hour day-of-month month day-of-week`, or six with a leading seconds
//!   field; lists (`1,15`), ranges (`1-5`), steps (`*/15`, `1-30/5`), month names `jan`-`dec`
//!   and weekday names `sun`-`sat` in any case (also inside ranges), Sunday as `0` or `7`;
//! - when both day fields are restricted (neither starts with `*`) a day matching either one
//!   fires: `30 4 1,15 * 5` runs at 04:30 on the 1st, the 15th and every Friday. When either
//!   starts with `*` both must match, so `0 0 */2 * 1` means odd-numbered days that are
//!   Mondays, as in Vixie cron;
//! - `@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly`, `@annually`; `@reboot`
//!   is refused, as are expressions that name no existing date (`0 0 30 2 *`);
//! - a step must follow `*` or a range (`5/10` is refused, as crontab(5) only defines steps
//!   on ranges) and may be at most the field's size.
//!
//! Times are wall times in the schedule's IANA zone. How daylight saving affects them follows
//! Debian's cron(8); see [`Timing`] and the `dst` module. In short: a fixed-time job
//! (`30 2 * * *`) whose wall time is skipped fires once at the instant of the jump, and once,
//! at the first showing, when its wall time repeats; a job whose minute or hour field starts
//! with `*` fires at every real instant whose wall time matches. `0 */2 * * *` is such a job:
//! on a spring-forward day at 02:00 it has no 02:00 slot, and when 02:00-03:00 repeats it fires
//! at both 02:00s. Several skipped slots of one jump fire once between them.
//!
//! Fire times are computed up to the end of 2100, the last year the `cron` crate (and the
//! bundled zone data) covers; after that [`Schedule::next_after`] returns `None`.

mod catchup;
mod clock;
mod crontab;
mod dst;
mod error;
mod wall;

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

pub use catchup::{
    COUNT_LIMIT, Decision, MissedPolicy, MissedReason, MissedSlots, ON_TIME_GRACE, SlotCount,
    plan_catch_up,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use crontab::Timing;
pub use error::ScheduleError;

/// A parsed, validated schedule: an expression and the zone its wall times are read in.
#[derive(Clone, Debug)]
pub struct Schedule {
    expr: String,
    zone: Tz,
    timing: Timing,
    slots: wall::WallSlots,
}

impl Schedule {
    /// Parses a crontab(5) expression (five fields, six with leading seconds, or an `@`
    /// shorthand) to be read in the IANA zone `zone` (e.g. `America/New_York` or `UTC`).
    ///
    /// Fails on malformed or out-of-range fields, `@reboot`, expressions that can never fire
    /// and unknown zones.
    pub fn parse(expr: &str, zone: &str) -> Result<Schedule, ScheduleError> {
        let fields = crontab::parse(expr)?;
        let zone = zone.parse::<Tz>().map_err(|_| ScheduleError::UnknownZone {
            zone: zone.to_owned(),
        })?;
        let slots = wall::WallSlots::new(expr, &fields)?;
        Ok(Schedule {
            expr: expr.to_owned(),
            zone,
            timing: fields.timing,
            slots,
        })
    }

    /// The expression as it was written.
    pub fn expression(&self) -> &str {
        &self.expr
    }

    /// The zone the expression's wall times are read in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// Whether the schedule follows the wall clock or elapsed time across zone changes.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// The first fire time strictly after `after`, or `None` past the year 2100.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        dst::next_fire(self.zone, self.timing, &self.slots, after)
    }

    /// The fire times strictly after `after`, in increasing order.
    pub fn iter_after(&self, after: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        std::iter::successors(self.next_after(after), move |t| self.next_after(*t))
    }
}
