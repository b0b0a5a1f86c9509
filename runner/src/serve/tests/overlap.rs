//! What the loop does when runs meet: `forbid`, `queue-one` and `replace`, the pause switch,
//! and retries handed over at start-up.

use chrono::TimeDelta;

use super::*;

#[tokio::test]
async fn forbid_skips_and_records_slots_that_come_due_while_a_run_is_running() {
    // Every minute, each run lasting 2.5 minutes: 00:01 runs until 00:03:30, so 00:02 and
    // 00:03 are skipped; 00:04 runs until 00:06:30, so 00:05 and 00:06 are skipped.
    let h = Harness::start(
        with(
            plan("* * * * *", "UTC", None),
            MissedPolicy::Latest,
            Overlap::Forbid,
        ),
        "2024-01-01T00:00:30Z",
        TimeDelta::seconds(150),
        vec![],
    );
    h.run_until("2024-01-01T00:06:45Z", TimeDelta::seconds(15))
        .await;
    let events = h.stop().await;
    assert_eq!(
        slots_started(&events),
        ["2024-01-01T00:01:00+00:00", "2024-01-01T00:04:00+00:00"]
    );
    let skipped: Vec<DateTime<Utc>> = recorded(&events).iter().map(|r| r.first).collect();
    assert_eq!(
        skipped,
        ["00:02", "00:03", "00:05", "00:06"].map(|m| at(&format!("2024-01-01T{m}:00Z")))
    );
    assert!(
        recorded(&events)
            .iter()
            .all(|r| r.status == SlotStatus::Skipped)
    );
}

#[tokio::test]
async fn queue_one_starts_one_waiting_slot_when_the_run_ends_and_skips_the_others() {
    // 00:01 runs until 00:03:30; 00:02 waits, 00:03 finds the queue full and is skipped; at
    // 00:03:30 the waiting 00:02 starts.
    let h = Harness::start(
        with(
            plan("* * * * *", "UTC", None),
            MissedPolicy::Latest,
            Overlap::QueueOne,
        ),
        "2024-01-01T00:00:30Z",
        TimeDelta::seconds(150),
        vec![],
    );
    h.run_until("2024-01-01T00:03:45Z", TimeDelta::seconds(15))
        .await;
    let events = h.stop().await;
    assert_eq!(
        started(&events),
        [
            (
                "2024-01-01T00:01:00+00:00".into(),
                "2024-01-01T00:01:00+00:00".into()
            ),
            (
                "2024-01-01T00:02:00+00:00".into(),
                "2024-01-01T00:03:30+00:00".into()
            ),
        ]
    );
    let skipped: Vec<DateTime<Utc>> = recorded(&events).iter().map(|r| r.first).collect();
    assert_eq!(skipped, [at("2024-01-01T00:03:00Z")]);
}

#[tokio::test]
async fn replace_cancels_the_running_run_says_why_and_starts_the_new_slot() {
    let h = Harness::start(
        with(
            plan("* * * * *", "UTC", None),
            MissedPolicy::Latest,
            Overlap::Replace,
        ),
        "2024-01-01T00:00:30Z",
        TimeDelta::seconds(150),
        vec![],
    );
    h.run_until("2024-01-01T00:02:15Z", TimeDelta::seconds(15))
        .await;
    let events = h.stop().await;
    assert_eq!(
        slots_started(&events),
        ["2024-01-01T00:01:00+00:00", "2024-01-01T00:02:00+00:00"]
    );
    assert!(
        events.contains(&Event::Stopped {
            slot: at("2024-01-01T00:01:00Z"),
            reason: "cancelled: replaced by the run for slot 2024-01-01T00:02:00.000Z \
                 (overlap = replace)"
                .into(),
        })
    );
}

#[tokio::test]
async fn a_paused_job_records_its_slots_as_skipped_and_fires_again_once_resumed() {
    let h = Harness::start(
        plan("0 * * * *", "UTC", None),
        "2024-01-01T00:30:00Z",
        TimeDelta::minutes(1),
        vec![],
    );
    *h.backend.paused.lock().unwrap() = true;
    h.run_until("2024-01-01T02:30:00Z", TimeDelta::minutes(10))
        .await;
    *h.backend.paused.lock().unwrap() = false;
    h.run_until("2024-01-01T03:30:00Z", TimeDelta::minutes(10))
        .await;
    let events = h.stop().await;
    assert_eq!(slots_started(&events), ["2024-01-01T03:00:00+00:00"]);
    let skipped: Vec<(DateTime<Utc>, String)> = recorded(&events)
        .into_iter()
        .map(|r| (r.first, r.reason))
        .collect();
    assert_eq!(
        skipped,
        [
            (at("2024-01-01T01:00:00Z"), "the job is paused".to_string()),
            (at("2024-01-01T02:00:00Z"), "the job is paused".to_string()),
        ]
    );
}

#[tokio::test]
async fn a_retry_handed_over_at_start_runs_at_once_with_its_attempt_number() {
    let h = Harness::start(
        plan("0 0 * * *", "UTC", Some("2024-01-01T00:00:00Z")),
        "2024-01-01T00:05:00Z",
        TimeDelta::minutes(1),
        vec![Launch {
            slot: at("2024-01-01T00:00:00Z"),
            attempt: 2,
        }],
    );
    h.settle().await;
    let events = h.stop().await;
    assert_eq!(
        events,
        [Event::Started {
            slot: at("2024-01-01T00:00:00Z"),
            at: at("2024-01-01T00:05:00Z"),
            attempt: 2
        }]
    );
}
