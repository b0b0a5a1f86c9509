//! Zone changes of three hours or more, which Debian's cron(8) treats as corrections of the
//! clock: skipped wall times are not made up and repeated ones fire again, for every job.
//!
//! Transitions used (tz database, checked with `zdump -v`):
//! - Pacific/Apia 2011: Dec 30 10:00Z 24:00 Dec 29 -10 -> 00:00 Dec 31 +14 (a day skipped).
//! - Antarctica/Casey: 2009 Oct 17 18:00Z 02:00 +08 -> 05:00 +11;
//!   2010 Mar 4 15:00Z 02:00 Mar 5 +11 -> 23:00 Mar 4 +08.

use super::fires;

#[test]
fn apia_skipping_a_whole_day_is_a_clock_correction_so_its_slots_are_not_made_up() {
    assert_eq!(
        fires("0 12 * * *", "Pacific/Apia", "2011-12-29T00:00:00-10:00", 2),
        [
            "Thu 2011-12-29 12:00:00 -10:00",
            "Sat 2011-12-31 12:00:00 +14:00"
        ]
    );
    assert_eq!(
        fires("0 * * * *", "Pacific/Apia", "2011-12-29T22:30:00-10:00", 2),
        [
            "Thu 2011-12-29 23:00:00 -10:00",
            "Sat 2011-12-31 00:00:00 +14:00"
        ]
    );
}

#[test]
fn casey_three_hour_changes_count_as_corrections_for_fixed_time_jobs_too() {
    // 03:00 on 2009-10-18 is skipped by a three-hour jump: not made up.
    assert_eq!(
        fires(
            "0 3 * * *",
            "Antarctica/Casey",
            "2009-10-17T12:00:00+08:00",
            1
        ),
        ["Mon 2009-10-19 03:00:00 +11:00"]
    );
    // Midnight of 2010-03-05 shows twice, three hours apart: a correction, so both fire.
    assert_eq!(
        fires("@daily", "Antarctica/Casey", "2010-03-04T12:00:00+11:00", 3),
        [
            "Fri 2010-03-05 00:00:00 +11:00",
            "Fri 2010-03-05 00:00:00 +08:00",
            "Sat 2010-03-06 00:00:00 +08:00",
        ]
    );
}
