//! The crontab(5) expression language, read into sets of allowed values.
//!
//! This is the only place that knows the syntax users write: five fields (minute, hour,
//! day-of-month, month, day-of-week) or six with leading seconds, lists, ranges, steps, month
//! and weekday names, Sunday as `0` or `7`, and the `@` shorthands. The result is plain bit
//! sets plus the two facts the rest of the module needs from the text itself: whether the
//! day fields are "restricted" (for the either-day rule) and whether the minute or hour field
//! starts with `*` (for the daylight-saving rule). Nothing here knows about the `cron` crate.

use super::ScheduleError;

/// How a schedule's fire times react to daylight-saving changes, as Debian's cron(8) defines.
///
/// The rule is textual: a job is [`Timing::Elapsed`] when its minute or its hour field starts
/// with `*` (so `@hourly`, `*/15 * * * *` and `0 */2 * * *` are all elapsed-time jobs), and
/// [`Timing::Fixed`] otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// Runs at a particular wall time. A wall time skipped by a jump forward of less than three
    /// hours fires once, at the instant of the jump; a wall time repeated by a jump back of
    /// less than three hours fires only at its first occurrence.
    Fixed,
    /// Follows real elapsed time: every instant whose local wall time matches fires, so a
    /// repeated hour fires twice and a skipped hour not at all.
    Elapsed,
}

/// The allowed values of every field, one bit per value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fields {
    /// Bits 0-59.
    pub seconds: u64,
    /// Bits 0-59.
    pub minutes: u64,
    /// Bits 0-23.
    pub hours: u64,
    /// Bits 1-31.
    pub days_of_month: u64,
    /// Bits 1-12.
    pub months: u64,
    /// Bits 0-6, Sunday = 0 (a written `7` is folded onto `0`).
    pub days_of_week: u64,
    /// The day-of-month field starts with `*`, so it does not count as restricted.
    pub dom_star: bool,
    /// The day-of-week field starts with `*`, so it does not count as restricted.
    pub dow_star: bool,
    /// Whether fire times follow the wall clock or elapsed time.
    pub timing: Timing,
}

impl Fields {
    /// Whether a day must match day-of-month OR day-of-week (both restricted) rather than both.
    pub fn either_day(&self) -> bool {
        !self.dom_star && !self.dow_star
    }
}

/// One field's name, range and optional names (the first name stands for `min`).
struct Spec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECOND: Spec = Spec {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: Spec = Spec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Spec = Spec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: Spec = Spec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Spec = Spec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
/// `7` is accepted as a second Sunday, as crontab(5) allows.
const DAY_OF_WEEK: Spec = Spec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// Reads a whole expression: five or six fields, or an `@` shorthand.
pub(crate) fn parse(expr: &str) -> Result<Fields, ScheduleError> {
    let trimmed = expr.trim();
    if let Some(word) = trimmed.strip_prefix('@') {
        let expansion = match word.to_ascii_lowercase().as_str() {
            "hourly" => "0 * * * *",
            "daily" | "midnight" => "0 0 * * *",
            "weekly" => "0 0 * * 0",
            "monthly" => "0 0 1 * *",
            "yearly" | "annually" => "0 0 1 1 *",
            "reboot" => {
                return Err(ScheduleError::Reboot {
                    expr: expr.to_owned(),
                });
            }
            _ => {
                return Err(ScheduleError::UnknownShorthand {
                    expr: expr.to_owned(),
                    word: trimmed.to_owned(),
                });
            }
        };
        return parse_fields(expr, expansion);
    }
    parse_fields(expr, trimmed)
}

/// Reads the five or six whitespace-separated fields of `text`; errors quote `expr`.
fn parse_fields(expr: &str, text: &str) -> Result<Fields, ScheduleError> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let (second_text, rest) = match parts.len() {
        5 => ("0", &parts[..]),
        6 => (parts[0], &parts[1..]),
        found => {
            return Err(ScheduleError::FieldCount {
                expr: expr.to_owned(),
                found,
            });
        }
    };
    let [minute_text, hour_text, dom_text, month_text, dow_text] = rest else {
        unreachable!("`rest` has five fields by the match above");
    };

    let field = |spec: &Spec, text: &str| {
        parse_field(spec, text).map_err(|problem| ScheduleError::Field {
            expr: expr.to_owned(),
            field: spec.name,
            text: text.to_owned(),
            problem,
        })
    };
    let seconds = field(&SECOND, second_text)?;
    let minutes = field(&MINUTE, minute_text)?;
    let hours = field(&HOUR, hour_text)?;
    let days_of_month = field(&DAY_OF_MONTH, dom_text)?;
    let months = field(&MONTH, month_text)?;
    let mut days_of_week = field(&DAY_OF_WEEK, dow_text)?;

    // Sunday written as 7 is the same day as 0.
    if days_of_week & (1 << 7) != 0 {
        days_of_week = (days_of_week & !(1 << 7)) | 1;
    }

    let timing = if minute_text.starts_with('*') || hour_text.starts_with('*') {
        Timing::Elapsed
    } else {
        Timing::Fixed
    };
    let fields = Fields {
        seconds,
        minutes,
        hours,
        days_of_month,
        months,
        days_of_week,
        dom_star: dom_text.starts_with('*'),
        dow_star: dow_text.starts_with('*'),
        timing,
    };

    if let Some(reason) = never_fires(&fields, dom_text, month_text) {
        return Err(ScheduleError::NeverFires {
            expr: expr.to_owned(),
            reason,
        });
    }
    Ok(fields)
}

/// Reads one field: a comma-separated list of `*`, `N`, `A-B`, `*/S` or `A-B/S` items.
fn parse_field(spec: &Spec, text: &str) -> Result<u64, String> {
    let mut bits = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err("a list has an empty item".to_owned());
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        let (first, last) = if range == "*" {
            (spec.min, spec.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(spec, a)?, value(spec, b)?);
            if a > b {
                return Err(format!("range `{range}` runs backwards"));
            }
            (a, b)
        } else {
            let v = value(spec, range)?;
            if step.is_some() {
                return Err(format!(
                    "a step needs a range or `*` before it, not the single value `{range}`"
                ));
            }
            (v, v)
        };
        let step = match step {
            None => 1,
            Some(s) => {
                let span = spec.max - spec.min + 1;
                match s.parse::<u32>() {
                    Ok(n) if (1..=span).contains(&n) && s.bytes().all(|b| b.is_ascii_digit()) => n,
                    _ => return Err(format!("step `{s}` is not a whole number from 1 to {span}")),
                }
            }
        };
        for v in (first..=last).step_by(step as usize) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

/// Reads one value: a decimal number in the field's range or, where allowed, a three-letter
/// name in any case.
fn value(spec: &Spec, text: &str) -> Result<u32, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(v) if (spec.min..=spec.max).contains(&v) => Ok(v),
            _ => Err(format!(
                "`{text}` is out of range {}-{}",
                spec.min, spec.max
            )),
        };
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphabetic()) {
        if spec.names.is_empty() {
            return Err(format!(
                "`{text}` is not a number, and names are only allowed in the month and \
                 day-of-week fields"
            ));
        }
        let lower = text.to_ascii_lowercase();
        return match spec.names.iter().position(|n| *n == lower) {
            Some(i) => Ok(spec.min + i as u32),
            None => Err(format!(
                "unknown name `{text}`: expected one of `{}`",
                spec.names.join("`, `")
            )),
        };
    }
    Err(format!("`{text}` is not a number or a name"))
}

/// Why no date can ever match, if so. With both day fields restricted a matching weekday
/// always comes, and a `*`-led day-of-month always includes the 1st, so only a restricted
/// day-of-month combined with an unrestricted weekday can name only days that do not exist.
fn never_fires(fields: &Fields, dom_text: &str, month_text: &str) -> Option<String> {
    if fields.either_day() || fields.dom_star {
        return None;
    }
    // February counts 29 days: a leap day still comes every four years (mostly).
    const LONGEST: [u32; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let exists = (1..=12u32)
        .filter(|m| fields.months & (1 << m) != 0)
        .any(|m| (1..=LONGEST[m as usize]).any(|d| fields.days_of_month & (1 << d) != 0));
    (!exists).then(|| format!("no month in `{month_text}` has a day `{dom_text}`"))
}
