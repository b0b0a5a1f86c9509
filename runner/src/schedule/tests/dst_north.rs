//! Daylight saving in the northern hemisphere, by Debian's cron(8) rules.
//!
//! Transitions used (tz database, checked with `zdump -v`):
//! - America/New_York 2024: Mar 10 07:00Z 02:00 EST -> 03:00 EDT;
//!   Nov 3 06:00Z 02:00 EDT -> 01:00 EST.
//! - Europe/Berlin 2024: Mar 31 01:00Z 02:00 CET -> 03:00 CEST;
//!   Oct 27 01:00Z 03:00 CEST -> 02:00 CET.

use super::fires;

#[test]
fn new_york_fixed_time_in_the_skipped_hour_fires_once_at_the_jump() {
    assert_eq!(
        fires(
            "30 2 * * *",
            "America/New_York",
            "2024-03-08T12:00:00-05:00",
            3
        ),
        [
            "Sat 2024-03-09 02:30:00 -05:00",
            "Sun 2024-03-10 03:00:00 -04:00",
            "Mon 2024-03-11 02:30:00 -04:00",
        ]
    );
}

#[test]
fn new_york_fixed_time_in_the_repeated_hour_fires_only_at_the_first_showing() {
    assert_eq!(
        fires(
            "30 1 * * *",
            "America/New_York",
            "2024-11-02T12:00:00-04:00",
            2
        ),
        [
            "Sun 2024-11-03 01:30:00 -04:00",
            "Mon 2024-11-04 01:30:00 -05:00"
        ]
    );
    // Asked from between the two showings, the second is still not a fire.
    assert_eq!(
        fires(
            "30 1 * * *",
            "America/New_York",
            "2024-11-03T01:10:00-05:00",
            1
        ),
        ["Mon 2024-11-04 01:30:00 -05:00"]
    );
    // An hour list is still a fixed time: 01:00 is not repeated, 02:00 comes once.
    assert_eq!(
        fires(
            "0 1,2 * * *",
            "America/New_York",
            "2024-11-02T12:00:00-04:00",
            3
        ),
        [
            "Sun 2024-11-03 01:00:00 -04:00",
            "Sun 2024-11-03 02:00:00 -05:00",
            "Mon 2024-11-04 01:00:00 -05:00",
        ]
    );
}

#[test]
fn new_york_every_fifteen_minutes_has_no_slots_in_the_skipped_hour() {
    assert_eq!(
        fires(
            "*/15 * * * *",
            "America/New_York",
            "2024-03-10T01:30:00-05:00",
            3
        ),
        [
            "Sun 2024-03-10 01:45:00 -05:00",
            "Sun 2024-03-10 03:00:00 -04:00",
            "Sun 2024-03-10 03:15:00 -04:00",
        ]
    );
}

#[test]
fn new_york_every_fifteen_minutes_fires_through_both_showings_of_the_repeated_hour() {
    assert_eq!(
        fires(
            "*/15 * * * *",
            "America/New_York",
            "2024-11-03T00:50:00-04:00",
            9
        ),
        [
            "Sun 2024-11-03 01:00:00 -04:00",
            "Sun 2024-11-03 01:15:00 -04:00",
            "Sun 2024-11-03 01:30:00 -04:00",
            "Sun 2024-11-03 01:45:00 -04:00",
            "Sun 2024-11-03 01:00:00 -05:00",
            "Sun 2024-11-03 01:15:00 -05:00",
            "Sun 2024-11-03 01:30:00 -05:00",
            "Sun 2024-11-03 01:45:00 -05:00",
            "Sun 2024-11-03 02:00:00 -05:00",
        ]
    );
    // Asked from inside either showing, the next slot is the next one in real time.
    assert_eq!(
        fires(
            "*/15 * * * *",
            "America/New_York",
            "2024-11-03T01:50:00-04:00",
            1
        ),
        ["Sun 2024-11-03 01:00:00 -05:00"]
    );
    assert_eq!(
        fires(
            "*/15 * * * *",
            "America/New_York",
            "2024-11-03T01:20:00-05:00",
            1
        ),
        ["Sun 2024-11-03 01:30:00 -05:00"]
    );
}

#[test]
fn new_york_hourly_is_elapsed_time_losing_one_slot_in_spring_and_gaining_one_in_autumn() {
    assert_eq!(
        fires(
            "@hourly",
            "America/New_York",
            "2024-03-10T00:30:00-05:00",
            3
        ),
        [
            "Sun 2024-03-10 01:00:00 -05:00",
            "Sun 2024-03-10 03:00:00 -04:00",
            "Sun 2024-03-10 04:00:00 -04:00",
        ]
    );
    assert_eq!(
        fires(
            "@hourly",
            "America/New_York",
            "2024-11-02T23:30:00-04:00",
            4
        ),
        [
            "Sun 2024-11-03 00:00:00 -04:00",
            "Sun 2024-11-03 01:00:00 -04:00",
            "Sun 2024-11-03 01:00:00 -05:00",
            "Sun 2024-11-03 02:00:00 -05:00",
        ]
    );
}

#[test]
fn berlin_fixed_time_fires_at_the_jump_in_spring_and_once_in_autumn() {
    assert_eq!(
        fires(
            "30 2 * * *",
            "Europe/Berlin",
            "2024-03-30T12:00:00+01:00",
            2
        ),
        [
            "Sun 2024-03-31 03:00:00 +02:00",
            "Mon 2024-04-01 02:30:00 +02:00"
        ]
    );
    assert_eq!(
        fires(
            "30 2 * * *",
            "Europe/Berlin",
            "2024-10-26T12:00:00+02:00",
            2
        ),
        [
            "Sun 2024-10-27 02:30:00 +02:00",
            "Mon 2024-10-28 02:30:00 +01:00"
        ]
    );
}

#[test]
fn berlin_skipped_slots_of_one_jump_fire_once_between_them() {
    assert_eq!(
        fires(
            "0,20,40 2 * * *",
            "Europe/Berlin",
            "2024-03-30T12:00:00+01:00",
            4
        ),
        [
            "Sun 2024-03-31 03:00:00 +02:00",
            "Mon 2024-04-01 02:00:00 +02:00",
            "Mon 2024-04-01 02:20:00 +02:00",
            "Mon 2024-04-01 02:40:00 +02:00",
        ]
    );
    // 02:00 is moved to the jump, where 03:00 also falls: one fire.
    assert_eq!(
        fires(
            "0 2,3 * * *",
            "Europe/Berlin",
            "2024-03-30T12:00:00+01:00",
            3
        ),
        [
            "Sun 2024-03-31 03:00:00 +02:00",
            "Mon 2024-04-01 02:00:00 +02:00",
            "Mon 2024-04-01 03:00:00 +02:00",
        ]
    );
}

#[test]
fn berlin_every_two_hours_is_elapsed_time_because_its_hour_field_starts_with_star() {
    assert_eq!(
        fires(
            "0 */2 * * *",
            "Europe/Berlin",
            "2024-03-30T23:30:00+01:00",
            3
        ),
        [
            "Sun 2024-03-31 00:00:00 +01:00",
            "Sun 2024-03-31 04:00:00 +02:00",
            "Sun 2024-03-31 06:00:00 +02:00",
        ]
    );
    assert_eq!(
        fires(
            "0 */2 * * *",
            "Europe/Berlin",
            "2024-10-26T23:30:00+02:00",
            4
        ),
        [
            "Sun 2024-10-27 00:00:00 +02:00",
            "Sun 2024-10-27 02:00:00 +02:00",
            "Sun 2024-10-27 02:00:00 +01:00",
            "Sun 2024-10-27 04:00:00 +01:00",
        ]
    );
}
