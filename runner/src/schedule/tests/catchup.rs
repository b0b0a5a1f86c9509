//! Catch-up planning after downtime. Most cases use `*/10 * * * *` in UTC with the runner
//! down from 08:00 to 10:05, so the missed slots are 08:10, 08:20, ..., 10:00: twelve slots.

use chrono::TimeDelta;

use super::{instant, schedule};
use crate::schedule::{
    Decision, MissedPolicy, MissedReason, MissedSlots, SlotCount, plan_catch_up,
};

fn missed(reason: MissedReason, first: &str, last: &str, count: SlotCount) -> Decision {
    Decision::Missed(MissedSlots {
        reason,
        first: instant(first),
        last: instant(last),
        count,
    })
}

fn run(slot: &str) -> Decision {
    Decision::Run(instant(slot))
}

/// The plan for the ten-minute job, last handled at 08:00, planned at 10:05.
fn after_downtime(policy: MissedPolicy, deadline: Option<TimeDelta>) -> Vec<Decision> {
    plan_catch_up(
        &schedule("*/10 * * * *", "UTC"),
        Some(instant("2024-01-01T08:00:00Z")),
        instant("2024-01-01T10:05:00Z"),
        policy,
        deadline,
    )
}

#[test]
fn a_slot_that_just_came_due_runs_under_every_policy() {
    let s = schedule("*/10 * * * *", "UTC");
    for policy in [
        MissedPolicy::Skip,
        MissedPolicy::Latest,
        MissedPolicy::All { max: 5 },
    ] {
        let plan = plan_catch_up(
            &s,
            Some(instant("2024-01-01T09:50:00Z")),
            instant("2024-01-01T10:00:00.250Z"),
            policy,
            Some(TimeDelta::minutes(5)),
        );
        assert_eq!(plan, [run("2024-01-01T10:00:00Z")], "{policy:?}");
    }
}

#[test]
fn skip_runs_nothing_after_downtime_and_records_every_slot_as_missed() {
    assert_eq!(
        after_downtime(MissedPolicy::Skip, None),
        [missed(
            MissedReason::Policy,
            "2024-01-01T08:10:00Z",
            "2024-01-01T10:00:00Z",
            SlotCount::Exact(12)
        )]
    );
}

#[test]
fn skip_still_runs_a_slot_within_the_on_time_grace_but_not_past_a_shorter_deadline() {
    let s = schedule("*/10 * * * *", "UTC");
    let last = Some(instant("2024-01-01T09:55:00Z"));
    let now = instant("2024-01-01T10:00:40Z");
    assert_eq!(
        plan_catch_up(&s, last, now, MissedPolicy::Skip, None),
        [run("2024-01-01T10:00:00Z")]
    );
    assert_eq!(
        plan_catch_up(
            &s,
            last,
            now,
            MissedPolicy::Skip,
            Some(TimeDelta::seconds(30))
        ),
        [missed(
            MissedReason::PastDeadline,
            "2024-01-01T10:00:00Z",
            "2024-01-01T10:00:00Z",
            SlotCount::Exact(1)
        )]
    );
}

#[test]
fn latest_runs_the_newest_slot_however_old_and_records_the_rest() {
    assert_eq!(
        after_downtime(MissedPolicy::Latest, None),
        [
            missed(
                MissedReason::Policy,
                "2024-01-01T08:10:00Z",
                "2024-01-01T09:50:00Z",
                SlotCount::Exact(11)
            ),
            run("2024-01-01T10:00:00Z"),
        ]
    );
}

#[test]
fn latest_runs_nothing_when_even_the_newest_slot_is_past_the_deadline() {
    assert_eq!(
        after_downtime(MissedPolicy::Latest, Some(TimeDelta::minutes(2))),
        [missed(
            MissedReason::PastDeadline,
            "2024-01-01T08:10:00Z",
            "2024-01-01T10:00:00Z",
            SlotCount::Exact(12)
        )]
    );
}

#[test]
fn all_runs_the_newest_max_slots_oldest_first() {
    assert_eq!(
        after_downtime(MissedPolicy::All { max: 3 }, None),
        [
            missed(
                MissedReason::Policy,
                "2024-01-01T08:10:00Z",
                "2024-01-01T09:30:00Z",
                SlotCount::Exact(9)
            ),
            run("2024-01-01T09:40:00Z"),
            run("2024-01-01T09:50:00Z"),
            run("2024-01-01T10:00:00Z"),
        ]
    );
    let everything = after_downtime(MissedPolicy::All { max: 100 }, None);
    assert_eq!(everything.len(), 12);
    assert_eq!(everything[0], run("2024-01-01T08:10:00Z"));
    assert_eq!(everything[11], run("2024-01-01T10:00:00Z"));
}

#[test]
fn all_records_slots_past_the_deadline_apart_from_slots_over_the_cap() {
    // The deadline of 30 minutes cuts at 09:35.
    assert_eq!(
        after_downtime(MissedPolicy::All { max: 100 }, Some(TimeDelta::minutes(30))),
        [
            missed(
                MissedReason::PastDeadline,
                "2024-01-01T08:10:00Z",
                "2024-01-01T09:30:00Z",
                SlotCount::Exact(9)
            ),
            run("2024-01-01T09:40:00Z"),
            run("2024-01-01T09:50:00Z"),
            run("2024-01-01T10:00:00Z"),
        ]
    );
    assert_eq!(
        after_downtime(MissedPolicy::All { max: 2 }, Some(TimeDelta::minutes(30))),
        [
            missed(
                MissedReason::PastDeadline,
                "2024-01-01T08:10:00Z",
                "2024-01-01T09:30:00Z",
                SlotCount::Exact(9)
            ),
            missed(
                MissedReason::Policy,
                "2024-01-01T09:40:00Z",
                "2024-01-01T09:40:00Z",
                SlotCount::Exact(1)
            ),
            run("2024-01-01T09:50:00Z"),
            run("2024-01-01T10:00:00Z"),
        ]
    );
}

#[test]
fn a_zero_deadline_still_runs_a_slot_at_exactly_now() {
    let plan = plan_catch_up(
        &schedule("*/10 * * * *", "UTC"),
        Some(instant("2024-01-01T09:55:00Z")),
        instant("2024-01-01T10:00:00Z"),
        MissedPolicy::Latest,
        Some(TimeDelta::zero()),
    );
    assert_eq!(plan, [run("2024-01-01T10:00:00Z")]);
}

#[test]
fn no_history_or_no_time_passed_means_nothing_to_decide() {
    let s = schedule("*/10 * * * *", "UTC");
    let now = instant("2024-01-01T10:05:00Z");
    assert_eq!(
        plan_catch_up(&s, None, now, MissedPolicy::All { max: 9 }, None),
        []
    );
    assert_eq!(
        plan_catch_up(&s, Some(now), now, MissedPolicy::Latest, None),
        []
    );
    let no_slot = Some(instant("2024-01-01T10:01:00Z"));
    assert_eq!(
        plan_catch_up(&s, no_slot, now, MissedPolicy::Latest, None),
        []
    );
}

#[test]
fn a_year_of_downtime_for_a_job_every_second_is_planned_without_listing_every_slot() {
    let s = schedule("* * * * * *", "UTC");
    let plan = plan_catch_up(
        &s,
        Some(instant("2023-01-01T00:00:00Z")),
        instant("2024-01-01T00:00:00Z"),
        MissedPolicy::All { max: 3 },
        None,
    );
    assert_eq!(
        plan,
        [
            missed(
                MissedReason::Policy,
                "2023-01-01T00:00:01Z",
                "2023-12-31T23:59:57Z",
                SlotCount::AtLeast(crate::schedule::COUNT_LIMIT)
            ),
            run("2023-12-31T23:59:58Z"),
            run("2023-12-31T23:59:59Z"),
            run("2024-01-01T00:00:00Z"),
        ]
    );
}

#[test]
fn catch_up_sees_the_fire_moved_to_the_jump_on_a_spring_forward_day() {
    // 02:30 New York does not exist on 2024-03-10; the slot is the jump, 07:00Z.
    let plan = plan_catch_up(
        &schedule("30 2 * * *", "America/New_York"),
        Some(instant("2024-03-09T12:00:00-05:00")),
        instant("2024-03-10T12:00:00-04:00"),
        MissedPolicy::Latest,
        None,
    );
    assert_eq!(plan, [run("2024-03-10T07:00:00Z")]);
}

#[test]
fn a_deadline_longer_than_all_of_time_cuts_nothing() {
    assert_eq!(
        after_downtime(MissedPolicy::Latest, Some(TimeDelta::MAX)),
        after_downtime(MissedPolicy::Latest, None)
    );
}
