//! When the loop fires: a fixed-time job on an autumn change day, a whole year of Berlin
//! midnights, and catch-up after downtime under each `missed` policy and a deadline.

use chrono::TimeDelta;

use super::*;

#[tokio::test]
async fn a_fixed_time_job_runs_once_on_the_autumn_change_day_when_its_hour_repeats() {
    // 01:30 New York: EDT (-4) on 2 November 2024, the 01:00-02:00 hour repeats on 3 November
    // (first in EDT, then in EST), and EST (-5) from then on. Debian cron fires once, at the
    // first showing.
    let h = Harness::start(
        plan("30 1 * * *", "America/New_York", None),
        "2024-11-02T00:00:00Z",
        TimeDelta::seconds(10),
        vec![],
    );
    h.run_until("2024-11-05T00:00:00Z", TimeDelta::minutes(10))
        .await;
    let events = h.stop().await;
    assert_eq!(
        slots_started(&events),
        [
            "2024-11-02T05:30:00+00:00",
            "2024-11-03T05:30:00+00:00",
            "2024-11-04T06:30:00+00:00"
        ]
    );
    assert!(recorded(&events).is_empty());
}

#[tokio::test]
async fn a_daily_job_runs_every_berlin_midnight_of_2023_once_and_on_time() {
    // 2023 has 365 days. Berlin is UTC+1 in winter and UTC+2 from 26 March to 29 October, so
    // midnight is 23:00 UTC of the day before in winter and 22:00 UTC in summer.
    let h = Harness::start(
        plan("@daily", "Europe/Berlin", None),
        "2022-12-31T22:00:00Z",
        TimeDelta::minutes(5),
        vec![],
    );
    h.run_until("2023-12-31T22:30:00Z", TimeDelta::hours(1))
        .await;
    let events = h.stop().await;
    let runs = started(&events);
    assert_eq!(runs.len(), 365);
    assert_eq!(runs[0].0, "2022-12-31T23:00:00+00:00");
    // 1 July is day 182 of the year (index 181), in summer time.
    assert_eq!(runs[181].0, "2023-06-30T22:00:00+00:00");
    assert_eq!(runs[364].0, "2023-12-30T23:00:00+00:00");
    // Stepping by whole hours wakes the loop exactly at each slot: none is late.
    assert!(runs.iter().all(|(slot, at)| slot == at));
}

#[tokio::test]
async fn after_downtime_latest_runs_the_newest_missed_slot_once_and_records_the_rest() {
    // Last recorded slot 08:00; the runner comes back at 11:30. Slots 09:00 and 10:00 are
    // missed; 11:00 runs, late by 30 minutes; the loop goes on with 12:00.
    let h = Harness::start(
        plan("0 * * * *", "UTC", Some("2024-01-01T08:00:00Z")),
        "2024-01-01T11:30:00Z",
        TimeDelta::minutes(1),
        vec![],
    );
    h.run_until("2024-01-01T12:30:00Z", TimeDelta::minutes(15))
        .await;
    let events = h.stop().await;
    assert_eq!(
        started(&events),
        [
            (
                "2024-01-01T11:00:00+00:00".into(),
                "2024-01-01T11:30:00+00:00".into()
            ),
            (
                "2024-01-01T12:00:00+00:00".into(),
                "2024-01-01T12:00:00+00:00".into()
            ),
        ]
    );
    let missed = recorded(&events);
    assert_eq!(missed.len(), 1);
    assert_eq!(missed[0].status, SlotStatus::Missed);
    assert_eq!(
        (missed[0].first, missed[0].last, missed[0].count),
        (
            at("2024-01-01T09:00:00Z"),
            at("2024-01-01T10:00:00Z"),
            SlotCount::Exact(2)
        )
    );
}

#[tokio::test]
async fn after_downtime_all_runs_the_newest_slots_oldest_first_within_its_bound() {
    // Slots 09:00 ... 11:00 (three) came due while down; `all` with a bound of 2 runs 10:00
    // then 11:00 and records 09:00 as missed.
    let h = Harness::start(
        with(
            plan("0 * * * *", "UTC", Some("2024-01-01T08:00:00Z")),
            MissedPolicy::All { max: 2 },
            Overlap::Allow,
        ),
        "2024-01-01T11:30:00Z",
        TimeDelta::minutes(1),
        vec![],
    );
    h.run_until("2024-01-01T11:45:00Z", TimeDelta::minutes(15))
        .await;
    let events = h.stop().await;
    assert_eq!(
        slots_started(&events),
        ["2024-01-01T10:00:00+00:00", "2024-01-01T11:00:00+00:00"]
    );
    let missed = recorded(&events);
    assert_eq!(missed.len(), 1);
    assert_eq!(missed[0].first, at("2024-01-01T09:00:00Z"));
    assert_eq!(missed[0].count, SlotCount::Exact(1));
}

#[tokio::test]
async fn after_downtime_skip_runs_nothing_old_and_a_starting_deadline_cuts_latest_too() {
    let skip = Harness::start(
        with(
            plan("0 * * * *", "UTC", Some("2024-01-01T08:00:00Z")),
            MissedPolicy::Skip,
            Overlap::Allow,
        ),
        "2024-01-01T11:30:00Z",
        TimeDelta::minutes(1),
        vec![],
    );
    skip.settle().await;
    let events = skip.stop().await;
    assert!(slots_started(&events).is_empty());
    assert_eq!(recorded(&events)[0].count, SlotCount::Exact(3));

    // Latest would run 11:00, but it is 30 minutes old and the deadline is 10 minutes.
    let mut p = plan("0 * * * *", "UTC", Some("2024-01-01T08:00:00Z"));
    p.policies.starting_deadline = Some(TimeDelta::minutes(10));
    let deadline = Harness::start(p, "2024-01-01T11:30:00Z", TimeDelta::minutes(1), vec![]);
    deadline.settle().await;
    let events = deadline.stop().await;
    assert!(slots_started(&events).is_empty());
    let missed = recorded(&events);
    assert_eq!(missed.len(), 1);
    assert_eq!(
        (missed[0].first, missed[0].last, missed[0].count),
        (
            at("2024-01-01T09:00:00Z"),
            at("2024-01-01T11:00:00Z"),
            SlotCount::Exact(3)
        )
    );
}

#[tokio::test]
async fn a_year_down_for_an_every_second_job_costs_one_run_and_one_bounded_record() {
    // 366 days of 2024 hold 31,622,400 seconds: far past the count limit of 10,000.
    let h = Harness::start(
        plan("* * * * * *", "UTC", Some("2024-01-01T00:00:00Z")),
        "2025-01-01T00:00:00Z",
        TimeDelta::milliseconds(1),
        vec![],
    );
    h.settle().await;
    let events = h.stop().await;
    assert_eq!(slots_started(&events), ["2025-01-01T00:00:00+00:00"]);
    let missed = recorded(&events);
    assert_eq!(missed.len(), 1);
    assert_eq!(missed[0].first, at("2024-01-01T00:00:01Z"));
    assert_eq!(missed[0].last, at("2024-12-31T23:59:59Z"));
    assert_eq!(missed[0].count, SlotCount::AtLeast(10_000));
}

#[tokio::test]
async fn a_restart_with_the_clock_behind_the_last_recorded_slot_does_not_fire_it_again() {
    // 05:00 is recorded, but the machine's clock now says 04:30 (it was stepped back). The
    // loop resumes after 05:00: the first slot it fires is 06:00.
    let h = Harness::start(
        plan("0 * * * *", "UTC", Some("2024-01-01T05:00:00Z")),
        "2024-01-01T04:30:00Z",
        TimeDelta::minutes(1),
        vec![],
    );
    h.run_until("2024-01-01T06:10:00Z", TimeDelta::minutes(10))
        .await;
    let events = h.stop().await;
    assert_eq!(slots_started(&events), ["2024-01-01T06:00:00+00:00"]);
    assert!(recorded(&events).is_empty());
}
