//! crontab(5) syntax and its meaning, in UTC so that no daylight saving is involved.
//! Calendar facts used: 2024-01-01 and 2024-07-01 are Mondays, 2024-03-01 a Friday,
//! 2024-06-01 a Saturday, 2024-09-01 a Sunday.

use super::{fires, schedule};
use crate::schedule::Timing;

#[test]
fn every_field_star_fires_at_each_whole_minute() {
    assert_eq!(
        fires("* * * * *", "UTC", "2024-01-01T00:00:30Z", 3),
        [
            "Mon 2024-01-01 00:01:00 +00:00",
            "Mon 2024-01-01 00:02:00 +00:00",
            "Mon 2024-01-01 00:03:00 +00:00",
        ]
    );
}

#[test]
fn a_list_fires_at_each_listed_value() {
    assert_eq!(
        fires("5,20,50 * * * *", "UTC", "2024-01-01T10:00:00Z", 4),
        [
            "Mon 2024-01-01 10:05:00 +00:00",
            "Mon 2024-01-01 10:20:00 +00:00",
            "Mon 2024-01-01 10:50:00 +00:00",
            "Mon 2024-01-01 11:05:00 +00:00",
        ]
    );
}

#[test]
fn a_range_includes_both_ends() {
    assert_eq!(
        fires("0 9-11 * * *", "UTC", "2024-01-01T08:00:00Z", 4),
        [
            "Mon 2024-01-01 09:00:00 +00:00",
            "Mon 2024-01-01 10:00:00 +00:00",
            "Mon 2024-01-01 11:00:00 +00:00",
            "Tue 2024-01-02 09:00:00 +00:00",
        ]
    );
}

#[test]
fn a_step_over_star_counts_from_the_field_minimum() {
    assert_eq!(
        fires("*/15 * * * *", "UTC", "2024-01-01T10:07:00Z", 4),
        [
            "Mon 2024-01-01 10:15:00 +00:00",
            "Mon 2024-01-01 10:30:00 +00:00",
            "Mon 2024-01-01 10:45:00 +00:00",
            "Mon 2024-01-01 11:00:00 +00:00",
        ]
    );
}

#[test]
fn a_step_over_a_range_counts_from_the_range_start_and_stops_at_its_end() {
    let minutes: Vec<String> = fires("1-30/5 * * * *", "UTC", "2024-01-01T10:00:00Z", 7)
        .into_iter()
        .map(|t| t[15..20].to_owned())
        .collect();
    assert_eq!(
        minutes,
        [
            "10:01", "10:06", "10:11", "10:16", "10:21", "10:26", "11:01"
        ]
    );
}

#[test]
fn month_names_work_in_lists_and_ranges_in_any_case() {
    assert_eq!(
        fires("0 0 1 JAN,jul *", "UTC", "2024-02-01T00:00:00Z", 2),
        [
            "Mon 2024-07-01 00:00:00 +00:00",
            "Wed 2025-01-01 00:00:00 +00:00"
        ]
    );
    assert_eq!(
        fires("0 0 1 Mar-May *", "UTC", "2024-01-01T00:00:00Z", 4),
        [
            "Fri 2024-03-01 00:00:00 +00:00",
            "Mon 2024-04-01 00:00:00 +00:00",
            "Wed 2024-05-01 00:00:00 +00:00",
            "Sat 2025-03-01 00:00:00 +00:00",
        ]
    );
}

#[test]
fn weekday_names_work_in_ranges_in_any_case() {
    assert_eq!(
        fires("0 12 * * MON-wed", "UTC", "2024-01-01T12:00:00Z", 4),
        [
            "Tue 2024-01-02 12:00:00 +00:00",
            "Wed 2024-01-03 12:00:00 +00:00",
            "Mon 2024-01-08 12:00:00 +00:00",
            "Tue 2024-01-09 12:00:00 +00:00",
        ]
    );
}

#[test]
fn sunday_is_both_zero_and_seven() {
    let sundays = [
        "Sun 2024-01-07 00:00:00 +00:00",
        "Sun 2024-01-14 00:00:00 +00:00",
    ];
    for expr in ["0 0 * * 0", "0 0 * * 7", "0 0 * * sun", "0 0 * * SUN"] {
        assert_eq!(
            fires(expr, "UTC", "2024-01-01T00:00:00Z", 2),
            sundays,
            "{expr}"
        );
    }
    assert_eq!(
        fires("0 0 * * 5-7", "UTC", "2024-01-01T00:00:00Z", 4),
        [
            "Fri 2024-01-05 00:00:00 +00:00",
            "Sat 2024-01-06 00:00:00 +00:00",
            "Sun 2024-01-07 00:00:00 +00:00",
            "Fri 2024-01-12 00:00:00 +00:00",
        ]
    );
}

#[test]
fn both_day_fields_restricted_fire_on_a_day_matching_either() {
    // crontab(5): "30 4 1,15 * 5" runs at 4:30 am on the 1st and 15th of each month, plus
    // every Friday.
    assert_eq!(
        fires("30 4 1,15 * 5", "UTC", "2024-05-31T05:00:00Z", 7),
        [
            "Sat 2024-06-01 04:30:00 +00:00",
            "Fri 2024-06-07 04:30:00 +00:00",
            "Fri 2024-06-14 04:30:00 +00:00",
            "Sat 2024-06-15 04:30:00 +00:00",
            "Fri 2024-06-21 04:30:00 +00:00",
            "Fri 2024-06-28 04:30:00 +00:00",
            "Mon 2024-07-01 04:30:00 +00:00",
        ]
    );
}

#[test]
fn the_thirteenth_and_friday_means_every_friday_and_every_thirteenth() {
    let days: Vec<String> = fires("0 0 13 * fri", "UTC", "2024-09-01T00:00:00Z", 8)
        .into_iter()
        .map(|t| t[..14].to_owned())
        .collect();
    assert_eq!(
        days,
        [
            "Fri 2024-09-06",
            "Fri 2024-09-13",
            "Fri 2024-09-20",
            "Fri 2024-09-27",
            "Fri 2024-10-04",
            "Fri 2024-10-11",
            "Sun 2024-10-13",
            "Fri 2024-10-18",
        ]
    );
}

#[test]
fn a_star_led_day_field_makes_both_day_fields_required() {
    // Odd days of the month that are also Mondays.
    let days: Vec<String> = fires("0 0 */2 * 1", "UTC", "2024-01-01T00:00:00Z", 4)
        .into_iter()
        .map(|t| t[..14].to_owned())
        .collect();
    assert_eq!(
        days,
        [
            "Mon 2024-01-15",
            "Mon 2024-01-29",
            "Mon 2024-02-05",
            "Mon 2024-02-19"
        ]
    );

    // The 13th when it is a Sunday or a Friday (`*/5` over 0-7 is 0 and 5).
    let days: Vec<String> = fires("0 0 13 * */5", "UTC", "2024-01-01T00:00:00Z", 3)
        .into_iter()
        .map(|t| t[..14].to_owned())
        .collect();
    assert_eq!(days, ["Fri 2024-09-13", "Sun 2024-10-13", "Fri 2024-12-13"]);
}

#[test]
fn the_man_page_example_crontab_means_what_its_comments_say() {
    // "run five minutes after midnight, every day"
    assert_eq!(
        fires("5 0 * * *", "UTC", "2024-01-01T00:00:00Z", 2),
        [
            "Mon 2024-01-01 00:05:00 +00:00",
            "Tue 2024-01-02 00:05:00 +00:00"
        ]
    );
    // "run at 2:15pm on the first of every month"
    assert_eq!(
        fires("15 14 1 * *", "UTC", "2024-01-01T00:00:00Z", 2),
        [
            "Mon 2024-01-01 14:15:00 +00:00",
            "Thu 2024-02-01 14:15:00 +00:00"
        ]
    );
    // "run at 10 pm on weekdays"
    assert_eq!(
        fires("0 22 * * 1-5", "UTC", "2024-01-05T12:00:00Z", 2),
        [
            "Fri 2024-01-05 22:00:00 +00:00",
            "Mon 2024-01-08 22:00:00 +00:00"
        ]
    );
    // "run 23 minutes after midn, 2am, 4am ..., everyday": twelve a day.
    let day = fires("23 0-23/2 * * *", "UTC", "2024-01-01T00:00:00Z", 13);
    assert_eq!(day[0], "Mon 2024-01-01 00:23:00 +00:00");
    assert_eq!(day[1], "Mon 2024-01-01 02:23:00 +00:00");
    assert_eq!(day[11], "Mon 2024-01-01 22:23:00 +00:00");
    assert_eq!(day[12], "Tue 2024-01-02 00:23:00 +00:00");
    // "run at 5 after 4 every sunday"
    assert_eq!(
        fires("5 4 * * sun", "UTC", "2024-01-01T00:00:00Z", 2),
        [
            "Sun 2024-01-07 04:05:00 +00:00",
            "Sun 2024-01-14 04:05:00 +00:00"
        ]
    );
    // Debian's "run every 4th hour on the 1st and on every Monday".
    let hours: Vec<String> = fires("0 */4 1 * mon", "UTC", "2024-05-31T22:00:00Z", 7)
        .into_iter()
        .map(|t| t[..20].to_owned())
        .collect();
    assert_eq!(
        hours,
        [
            "Sat 2024-06-01 00:00",
            "Sat 2024-06-01 04:00",
            "Sat 2024-06-01 08:00",
            "Sat 2024-06-01 12:00",
            "Sat 2024-06-01 16:00",
            "Sat 2024-06-01 20:00",
            "Mon 2024-06-03 00:00",
        ]
    );
}

#[test]
fn shorthands_expand_to_their_documented_five_fields() {
    let after = "2024-01-01T10:30:00Z";
    assert_eq!(
        fires("@hourly", "UTC", after, 2),
        [
            "Mon 2024-01-01 11:00:00 +00:00",
            "Mon 2024-01-01 12:00:00 +00:00"
        ]
    );
    let midnights = [
        "Tue 2024-01-02 00:00:00 +00:00",
        "Wed 2024-01-03 00:00:00 +00:00",
    ];
    assert_eq!(fires("@daily", "UTC", after, 2), midnights);
    assert_eq!(fires("@midnight", "UTC", after, 2), midnights);
    assert_eq!(fires("@DAILY", "UTC", after, 2), midnights);
    assert_eq!(
        fires("@weekly", "UTC", after, 2),
        [
            "Sun 2024-01-07 00:00:00 +00:00",
            "Sun 2024-01-14 00:00:00 +00:00"
        ]
    );
    assert_eq!(
        fires("@monthly", "UTC", after, 2),
        [
            "Thu 2024-02-01 00:00:00 +00:00",
            "Fri 2024-03-01 00:00:00 +00:00"
        ]
    );
    let new_years = [
        "Wed 2025-01-01 00:00:00 +00:00",
        "Thu 2026-01-01 00:00:00 +00:00",
    ];
    assert_eq!(
        fires("@yearly", "UTC", "2024-01-01T00:00:00Z", 2),
        new_years
    );
    assert_eq!(
        fires("@annually", "UTC", "2024-01-01T00:00:00Z", 2),
        new_years
    );
}

#[test]
fn a_sixth_leading_field_gives_seconds_and_five_fields_mean_second_zero() {
    assert_eq!(
        fires("*/20 * * * * *", "UTC", "2024-01-01T00:00:00Z", 3),
        [
            "Mon 2024-01-01 00:00:20 +00:00",
            "Mon 2024-01-01 00:00:40 +00:00",
            "Mon 2024-01-01 00:01:00 +00:00",
        ]
    );
    assert_eq!(
        fires("30 0 12 * * *", "UTC", "2024-01-01T00:00:00Z", 1),
        ["Mon 2024-01-01 12:00:30 +00:00"]
    );
}

#[test]
fn a_fire_time_is_strictly_after_the_given_instant_even_within_a_second() {
    assert_eq!(
        fires("0 12 * * *", "UTC", "2024-01-01T12:00:00Z", 1),
        ["Tue 2024-01-02 12:00:00 +00:00"]
    );
    assert_eq!(
        fires("0 12 * * *", "UTC", "2024-01-01T11:59:59.999Z", 1),
        ["Mon 2024-01-01 12:00:00 +00:00"]
    );
}

#[test]
fn the_schedule_remembers_its_expression_zone_and_timing() {
    let s = schedule("30 2 * * *", "America/New_York");
    assert_eq!(s.expression(), "30 2 * * *");
    assert_eq!(s.zone(), chrono_tz::America::New_York);
    assert_eq!(s.timing(), Timing::Fixed);
    for expr in ["*/15 * * * *", "@hourly", "0 */2 * * *", "15 * * * *"] {
        assert_eq!(schedule(expr, "UTC").timing(), Timing::Elapsed, "{expr}");
    }
    for expr in [
        "@daily",
        "@weekly",
        "0 9-17 * * *",
        "0,30 1,2 * * *",
        "* 30 2 * * *",
    ] {
        assert_eq!(schedule(expr, "UTC").timing(), Timing::Fixed, "{expr}");
    }
}
