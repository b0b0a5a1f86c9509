//! What `parse` refuses, and what it must not refuse, with the exact messages users see.

use super::{fires, refusal};

#[test]
fn dates_that_never_exist_are_refused() {
    assert_eq!(
        refusal("0 0 30 2 *", "UTC"),
        "schedule `0 0 30 2 *` can never fire: no month in `2` has a day `30`"
    );
    for expr in [
        "0 0 31 4,6 *",
        "0 0 31 apr,jun,sep,nov *",
        "0 0 30,31 feb *",
    ] {
        assert!(refusal(expr, "UTC").contains("can never fire"), "{expr}");
    }
}

#[test]
fn a_leap_day_is_rare_but_valid_and_an_impossible_day_or_a_weekday_still_fires() {
    assert_eq!(
        fires("0 0 29 2 *", "UTC", "2024-03-01T00:00:00Z", 2),
        [
            "Tue 2028-02-29 00:00:00 +00:00",
            "Sun 2032-02-29 00:00:00 +00:00"
        ]
    );
    // Both day fields restricted: February 31st never comes, but Mondays in February do.
    assert_eq!(
        fires("0 0 31 2 mon", "UTC", "2024-01-01T00:00:00Z", 2),
        [
            "Mon 2024-02-05 00:00:00 +00:00",
            "Mon 2024-02-12 00:00:00 +00:00"
        ]
    );
}

#[test]
fn refusals_name_the_expression_the_field_and_the_value() {
    let cases = [
        (
            "60 * * * *",
            "schedule `60 * * * *`: minute field `60`: `60` is out of range 0-59",
        ),
        (
            "0 24 * * *",
            "schedule `0 24 * * *`: hour field `24`: `24` is out of range 0-23",
        ),
        (
            "0 0 0 * *",
            "schedule `0 0 0 * *`: day-of-month field `0`: `0` is out of range 1-31",
        ),
        (
            "0 0 32 * *",
            "schedule `0 0 32 * *`: day-of-month field `32`: `32` is out of range 1-31",
        ),
        (
            "0 0 * 13 *",
            "schedule `0 0 * 13 *`: month field `13`: `13` is out of range 1-12",
        ),
        (
            "0 0 * 0 *",
            "schedule `0 0 * 0 *`: month field `0`: `0` is out of range 1-12",
        ),
        (
            "0 0 * * 8",
            "schedule `0 0 * * 8`: day-of-week field `8`: `8` is out of range 0-7",
        ),
        (
            "60 0 0 * * *",
            "schedule `60 0 0 * * *`: second field `60`: `60` is out of range 0-59",
        ),
        (
            "0 0 * * fri-mon",
            "schedule `0 0 * * fri-mon`: day-of-week field `fri-mon`: range `fri-mon` runs backwards",
        ),
        (
            "*/0 * * * *",
            "schedule `*/0 * * * *`: minute field `*/0`: step `0` is not a whole number from 1 to 60",
        ),
        (
            "5/10 * * * *",
            "schedule `5/10 * * * *`: minute field `5/10`: a step needs a range or `*` before it, not the single value `5`",
        ),
        (
            "1,,2 * * * *",
            "schedule `1,,2 * * * *`: minute field `1,,2`: a list has an empty item",
        ),
        (
            "0 0 ? * *",
            "schedule `0 0 ? * *`: day-of-month field `?`: `?` is not a number or a name",
        ),
    ];
    for (expr, message) in cases {
        assert_eq!(refusal(expr, "UTC"), message);
    }
}

#[test]
fn names_are_refused_where_crontab_has_none_and_unknown_names_list_the_known_ones() {
    assert_eq!(
        refusal("five * * * *", "UTC"),
        "schedule `five * * * *`: minute field `five`: `five` is not a number, and names are \
         only allowed in the month and day-of-week fields"
    );
    assert_eq!(
        refusal("0 0 * * fry", "UTC"),
        "schedule `0 0 * * fry`: day-of-week field `fry`: unknown name `fry`: expected one of \
         `sun`, `mon`, `tue`, `wed`, `thu`, `fri`, `sat`"
    );
    // Quartz extensions are not crontab(5).
    for expr in ["0 0 L * *", "0 0 * * 5#3", "0 0 15W * *"] {
        assert!(refusal(expr, "UTC").contains("day-"), "{expr}");
    }
}

#[test]
fn a_wrong_number_of_fields_is_refused_with_the_count() {
    assert_eq!(
        refusal("* * * *", "UTC"),
        "schedule `* * * *` has 4 fields: expected 5 (minute hour day-of-month month \
         day-of-week) or 6 (seconds first)"
    );
    // The cron crate's seven-field form with a year is not crontab syntax.
    assert!(
        refusal("0 0 0 1 1 * 2030", "UTC").starts_with("schedule `0 0 0 1 1 * 2030` has 7 fields")
    );
    assert!(refusal("", "UTC").starts_with("schedule `` has 0 fields"));
}

#[test]
fn reboot_and_unknown_shorthands_are_refused() {
    assert_eq!(
        refusal("@reboot", "UTC"),
        "schedule `@reboot`: `@reboot` is not supported, only time-based schedules are"
    );
    assert!(refusal("@fortnightly", "UTC").contains("unknown shorthand `@fortnightly`"));
}

#[test]
fn an_unknown_zone_is_refused_by_name() {
    assert_eq!(
        refusal("@daily", "Mars/Olympus_Mons"),
        "unknown time zone `Mars/Olympus_Mons`: expected an IANA name such as `Europe/Berlin` \
         or `UTC`"
    );
}
