//! Why a schedule was refused.
//!
//! Every rejection happens in [`Schedule::parse`](super::Schedule::parse), so a job file with a
//! bad schedule fails when it is loaded, not at its first fire. Each message names the whole
//! expression (or zone) and the part that is wrong, so it can be shown to the user as it is.

/// A schedule expression or time zone that cannot be used.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ScheduleError {
    /// The zone is not an IANA time zone name known to the bundled database.
    #[error("unknown time zone `{zone}`: expected an IANA name such as `Europe/Berlin` or `UTC`")]
    UnknownZone {
        /// The zone as written.
        zone: String,
    },

    /// The expression does not have five fields (or six with leading seconds).
    #[error(
        "schedule `{expr}` has {found} fields: expected 5 (minute hour day-of-month month \
         day-of-week) or 6 (seconds first)"
    )]
    FieldCount {
        /// The expression as written.
        expr: String,
        /// How many whitespace-separated fields it has.
        found: usize,
    },

    /// `@reboot` names no time, and the runner only schedules by time.
    #[error("schedule `{expr}`: `@reboot` is not supported, only time-based schedules are")]
    Reboot {
        /// The expression as written.
        expr: String,
    },

    /// An `@` word that is not one of the crontab(5) shorthands.
    #[error(
        "schedule `{expr}`: unknown shorthand `{word}`: expected one of `@hourly`, `@daily`, \
         `@midnight`, `@weekly`, `@monthly`, `@yearly`, `@annually`"
    )]
    UnknownShorthand {
        /// The expression as written.
        expr: String,
        /// The `@` word.
        word: String,
    },

    /// One field is malformed or holds a value out of its range.
    #[error("schedule `{expr}`: {field} field `{text}`: {problem}")]
    Field {
        /// The expression as written.
        expr: String,
        /// Which field, e.g. `minute` or `day-of-week`.
        field: &'static str,
        /// The field as written.
        text: String,
        /// What is wrong with it, lowercase, values in backticks.
        problem: String,
    },

    /// The expression is well formed but names no date that exists.
    #[error("schedule `{expr}` can never fire: {reason}")]
    NeverFires {
        /// The expression as written.
        expr: String,
        /// Why no date matches.
        reason: String,
    },

    /// The `cron` crate refused the expression this module translated the fields into. This is
    /// a bug in the translation, not in the user's expression.
    #[error("schedule `{expr}`: internal translation `{translated}` was rejected: {message}")]
    Translation {
        /// The expression as written.
        expr: String,
        /// The expression handed to the `cron` crate.
        translated: String,
        /// The crate's error message.
        message: String,
    },
}
