//! Long horizons: years of fire times, counted exactly, and the end of the supported range.
//! Day counts: 2025-01-01 to 2035-01-01 is 3652 days (leap years 2028 and 2032); Santiago's
//! local midnight is skipped once a year, on the first Sunday of September on or after the 2nd.

use super::{instant, schedule, show};

#[test]
fn ten_years_of_daily_in_santiago_fire_once_a_day_even_when_midnight_is_skipped() {
    let s = schedule("@daily", "America/Santiago");
    let end = instant("2035-01-01T00:00:00-03:00");
    let all: Vec<_> = s
        .iter_after(instant("2025-01-01T00:00:00-03:00"))
        .take_while(|t| *t <= end)
        .collect();

    assert_eq!(all.len(), 3652);
    assert_eq!(show(&s, all[0]), "Thu 2025-01-02 00:00:00 -03:00");
    assert_eq!(
        show(&s, *all.last().unwrap()),
        "Mon 2035-01-01 00:00:00 -03:00"
    );
    let moved: Vec<String> = all
        .iter()
        .map(|t| show(&s, *t))
        .filter(|shown| !shown.contains(" 00:00:00 "))
        .collect();
    assert_eq!(
        moved,
        [
            "Sun 2025-09-07 01:00:00 -03:00",
            "Sun 2026-09-06 01:00:00 -03:00",
            "Sun 2027-09-05 01:00:00 -03:00",
            "Sun 2028-09-03 01:00:00 -03:00",
            "Sun 2029-09-02 01:00:00 -03:00",
            "Sun 2030-09-08 01:00:00 -03:00",
            "Sun 2031-09-07 01:00:00 -03:00",
            "Sun 2032-09-05 01:00:00 -03:00",
            "Sun 2033-09-04 01:00:00 -03:00",
            "Sun 2034-09-03 01:00:00 -03:00",
        ]
    );
}

#[test]
fn ten_years_of_a_fixed_time_in_the_new_york_gap_fire_once_a_day() {
    let s = schedule("30 2 * * *", "America/New_York");
    let end = instant("2035-01-01T00:00:00-05:00");
    let count = s
        .iter_after(instant("2025-01-01T00:00:00-05:00"))
        .take_while(|t| *t <= end)
        .count();
    assert_eq!(count, 3652);
}

#[test]
fn a_year_of_quarter_hours_in_new_york_matches_real_elapsed_time() {
    // 365 days of 96 quarter hours: the four lost in March come back in November.
    let s = schedule("*/15 * * * *", "America/New_York");
    let end = instant("2026-01-01T00:00:00-05:00");
    let count = s
        .iter_after(instant("2025-01-01T00:00:00-05:00"))
        .take_while(|t| *t <= end)
        .count();
    assert_eq!(count, 365 * 96);
}

#[test]
fn fire_times_stop_after_2100_where_the_cron_crate_ends() {
    // FIXME: the `cron` crate has no years after 2100, so schedules end there. Remove this
    // marker when the wall-slot walk no longer depends on the crate's year field.
    let s = schedule("@yearly", "UTC");
    let fires: Vec<String> = s
        .iter_after(instant("2099-06-01T00:00:00Z"))
        .map(|t| show(&s, t))
        .collect();
    assert_eq!(fires, ["Fri 2100-01-01 00:00:00 +00:00"]);
}
