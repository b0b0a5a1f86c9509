//! Daylight saving in the southern hemisphere and in a zone that shifts by half an hour.
//!
//! Transitions used (tz database, checked with `zdump -v`):
//! - Australia/Sydney 2024: Apr 6 16:00Z 03:00 AEDT -> 02:00 AEST;
//!   Oct 5 16:00Z 02:00 AEST -> 03:00 AEDT.
//! - Australia/Lord_Howe 2024: Apr 6 15:00Z 02:00 +11 -> 01:30 +10:30;
//!   Oct 5 15:30Z 02:00 +10:30 -> 02:30 +11.
//! - America/Santiago 2024 (changes at midnight): Apr 7 03:00Z 24:00 -03 -> 23:00 -04 (Apr 6);
//!   Sep 8 04:00Z 00:00 -04 -> 01:00 -03.

use super::fires;

#[test]
fn sydney_changes_in_the_southern_spring_and_autumn_follow_the_same_rules() {
    assert_eq!(
        fires(
            "30 2 * * *",
            "Australia/Sydney",
            "2024-10-05T12:00:00+10:00",
            2
        ),
        [
            "Sun 2024-10-06 03:00:00 +11:00",
            "Mon 2024-10-07 02:30:00 +11:00"
        ]
    );
    assert_eq!(
        fires(
            "30 2 * * *",
            "Australia/Sydney",
            "2024-04-06T12:00:00+11:00",
            2
        ),
        [
            "Sun 2024-04-07 02:30:00 +11:00",
            "Mon 2024-04-08 02:30:00 +10:00"
        ]
    );
    assert_eq!(
        fires(
            "*/30 * * * *",
            "Australia/Sydney",
            "2024-10-06T01:15:00+10:00",
            3
        ),
        [
            "Sun 2024-10-06 01:30:00 +10:00",
            "Sun 2024-10-06 03:00:00 +11:00",
            "Sun 2024-10-06 03:30:00 +11:00",
        ]
    );
    assert_eq!(
        fires(
            "*/30 * * * *",
            "Australia/Sydney",
            "2024-04-07T01:45:00+11:00",
            5
        ),
        [
            "Sun 2024-04-07 02:00:00 +11:00",
            "Sun 2024-04-07 02:30:00 +11:00",
            "Sun 2024-04-07 02:00:00 +10:00",
            "Sun 2024-04-07 02:30:00 +10:00",
            "Sun 2024-04-07 03:00:00 +10:00",
        ]
    );
}

#[test]
fn lord_howe_half_hour_shift_moves_a_skipped_fixed_time_to_half_past_two() {
    assert_eq!(
        fires(
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2024-10-05T12:00:00+10:30",
            2
        ),
        [
            "Sun 2024-10-06 02:30:00 +11:00",
            "Mon 2024-10-07 02:15:00 +11:00"
        ]
    );
    assert_eq!(
        fires(
            "45 1 * * *",
            "Australia/Lord_Howe",
            "2024-04-06T12:00:00+11:00",
            2
        ),
        [
            "Sun 2024-04-07 01:45:00 +11:00",
            "Mon 2024-04-08 01:45:00 +10:30"
        ]
    );
}

#[test]
fn lord_howe_quarter_hourly_loses_two_slots_in_spring_and_repeats_two_in_autumn() {
    assert_eq!(
        fires(
            "*/15 * * * *",
            "Australia/Lord_Howe",
            "2024-10-06T01:40:00+10:30",
            3
        ),
        [
            "Sun 2024-10-06 01:45:00 +10:30",
            "Sun 2024-10-06 02:30:00 +11:00",
            "Sun 2024-10-06 02:45:00 +11:00",
        ]
    );
    assert_eq!(
        fires(
            "*/15 * * * *",
            "Australia/Lord_Howe",
            "2024-04-07T01:20:00+11:00",
            5
        ),
        [
            "Sun 2024-04-07 01:30:00 +11:00",
            "Sun 2024-04-07 01:45:00 +11:00",
            "Sun 2024-04-07 01:30:00 +10:30",
            "Sun 2024-04-07 01:45:00 +10:30",
            "Sun 2024-04-07 02:00:00 +10:30",
        ]
    );
    // Hourly: 02:00 lies in the spring gap; no whole hour lies in the autumn repeat.
    assert_eq!(
        fires(
            "@hourly",
            "Australia/Lord_Howe",
            "2024-10-06T00:30:00+10:30",
            2
        ),
        [
            "Sun 2024-10-06 01:00:00 +10:30",
            "Sun 2024-10-06 03:00:00 +11:00"
        ]
    );
    assert_eq!(
        fires(
            "@hourly",
            "Australia/Lord_Howe",
            "2024-04-07T00:30:00+11:00",
            2
        ),
        [
            "Sun 2024-04-07 01:00:00 +11:00",
            "Sun 2024-04-07 02:00:00 +10:30"
        ]
    );
}

#[test]
fn santiago_midnight_that_does_not_exist_fires_daily_at_one_instead() {
    assert_eq!(
        fires("@daily", "America/Santiago", "2024-09-06T12:00:00-04:00", 3),
        [
            "Sat 2024-09-07 00:00:00 -04:00",
            "Sun 2024-09-08 01:00:00 -03:00",
            "Mon 2024-09-09 00:00:00 -03:00",
        ]
    );
}

#[test]
fn santiago_repeated_late_evening_fires_fixed_jobs_once_and_wildcard_jobs_twice() {
    assert_eq!(
        fires(
            "30 23 * * *",
            "America/Santiago",
            "2024-04-06T12:00:00-03:00",
            2
        ),
        [
            "Sat 2024-04-06 23:30:00 -03:00",
            "Sun 2024-04-07 23:30:00 -04:00"
        ]
    );
    assert_eq!(
        fires(
            "*/30 * * * *",
            "America/Santiago",
            "2024-04-06T22:45:00-03:00",
            5
        ),
        [
            "Sat 2024-04-06 23:00:00 -03:00",
            "Sat 2024-04-06 23:30:00 -03:00",
            "Sat 2024-04-06 23:00:00 -04:00",
            "Sat 2024-04-06 23:30:00 -04:00",
            "Sun 2024-04-07 00:00:00 -04:00",
        ]
    );
}
