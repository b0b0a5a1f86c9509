//! Wall-clock slots: the local dates and times an expression names, found by the `cron` crate.
//!
//! The `cron` crate does the calendar walking, but its language differs from crontab(5): it
//! has a mandatory seconds field and an optional year field, it numbers weekdays 1-7 from
//! Sunday (crontab uses 0-7 with both 0 and 7 meaning Sunday), and it requires a day to match
//! day-of-month AND day-of-week. So it never sees what the user wrote: [`WallSlots::new`]
//! renders each parsed field as an explicit list of numbers in the crate's own numbering, and
//! when crontab's either-day rule applies it builds two schedules (one per day field) and
//! merges their slots. Times here are naive local wall times; the crate walks them as if they
//! were UTC, where every wall time exists exactly once. Daylight saving is handled elsewhere.

use std::str::FromStr;

use chrono::{NaiveDateTime, TimeZone, Utc};

use super::ScheduleError;
use super::crontab::Fields;

/// The wall times an expression matches, in order.
#[derive(Clone, Debug)]
pub(crate) struct WallSlots {
    /// One schedule, or two whose union is the expression (day-of-month OR day-of-week).
    parts: Vec<cron::Schedule>,
}

impl WallSlots {
    /// Translates parsed fields into `cron` crate schedules; `expr` is only used in errors.
    pub fn new(expr: &str, fields: &Fields) -> Result<WallSlots, ScheduleError> {
        let seconds = list(fields.seconds, 0..=59, 0);
        let minutes = list(fields.minutes, 0..=59, 0);
        let hours = list(fields.hours, 0..=23, 0);
        let doms = list(fields.days_of_month, 1..=31, 0);
        let months = list(fields.months, 1..=12, 0);
        // The crate counts Sunday as 1, crontab as 0.
        let dows = list(fields.days_of_week, 0..=6, 1);

        let times = format!("{seconds} {minutes} {hours}");
        let sources = if fields.either_day() {
            vec![
                format!("{times} {doms} {months} *"),
                format!("{times} * {months} {dows}"),
            ]
        } else {
            vec![format!("{times} {doms} {months} {dows}")]
        };
        let parts = sources
            .into_iter()
            .map(|source| {
                cron::Schedule::from_str(&source).map_err(|e| ScheduleError::Translation {
                    expr: expr.to_owned(),
                    translated: source.clone(),
                    message: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(WallSlots { parts })
    }

    /// The first matching wall time strictly after `after`, at whole-second resolution.
    ///
    /// `None` once past the `cron` crate's last year, 2100.
    pub fn next_after(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        let after = Utc.from_utc_datetime(&after);
        self.parts
            .iter()
            .filter_map(|part| part.after(&after).next())
            .min()
            .map(|t| t.naive_utc())
    }
}

/// Renders the values set in `bits` within `range` as `a,b,c` shifted by `shift`, or `*` when
/// every value in the range is set.
fn list(bits: u64, range: std::ops::RangeInclusive<u32>, shift: u32) -> String {
    let values: Vec<String> = range
        .clone()
        .filter(|v| bits & (1 << v) != 0)
        .map(|v| (v + shift).to_string())
        .collect();
    if values.len() == range.count() {
        "*".to_owned()
    } else {
        values.join(",")
    }
}
