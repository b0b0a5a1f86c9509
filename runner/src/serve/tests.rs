//! The schedule loop driven by a [`ManualClock`] and an in-memory backend: months of schedule
//! in milliseconds. Expected fire times are worked out by hand from crontab(5), Debian's
//! cron(8) DST rules and the zones' published transition times, and written in UTC.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use super::policy::{Overlap, Policies, Retry};
use super::scheduler::{Backend, JobPlan, Launch, Stop, run_loop};
use super::state::{SlotRecord, SlotStatus};
use crate::schedule::{Clock, ManualClock, MissedPolicy, Schedule, SlotCount};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// What the loop asked of the backend, in order.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    /// A run started at the clock's time.
    Started {
        slot: DateTime<Utc>,
        at: DateTime<Utc>,
        attempt: u32,
    },
    /// A run was stopped by the loop, with the reason.
    Stopped { slot: DateTime<Utc>, reason: String },
    /// Slots recorded without a run.
    Recorded(SlotRecord),
}

/// Runs last `duration` of clock time (or until stopped); the pause switch is a flag.
struct Memory {
    clock: Arc<ManualClock>,
    duration: TimeDelta,
    paused: Mutex<bool>,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Backend for Memory {
    async fn paused(&self, _job: usize) -> bool {
        *self.paused.lock().unwrap()
    }

    async fn record(&self, _job: usize, record: SlotRecord) {
        self.events.lock().unwrap().push(Event::Recorded(record));
    }

    fn run(
        &self,
        _job: usize,
        launch: Launch,
        stop: Stop,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (clock, events) = (self.clock.clone(), self.events.clone());
        let end = clock.now() + self.duration;
        events.lock().unwrap().push(Event::Started {
            slot: launch.slot,
            at: clock.now(),
            attempt: launch.attempt,
        });
        async move {
            tokio::select! {
                () = clock.sleep_until(end) => {}
                () = stop.token.cancelled() => {
                    if let Some(reason) = stop.reason() {
                        events.lock().unwrap().push(Event::Stopped {
                            slot: launch.slot,
                            reason: reason.to_string(),
                        });
                    }
                }
            }
        }
    }
}

/// A loop over one job, running in the background on the test's runtime.
struct Harness {
    clock: Arc<ManualClock>,
    backend: Arc<Memory>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Harness {
    fn start(plan: JobPlan, start: &str, duration: TimeDelta, retries: Vec<Launch>) -> Harness {
        let clock = Arc::new(ManualClock::new(at(start)));
        let backend = Arc::new(Memory {
            clock: clock.clone(),
            duration,
            paused: Mutex::new(false),
            events: Arc::default(),
        });
        let cancel = CancellationToken::new();
        let retries = retries.into_iter().map(|l| (0, l)).collect();
        let task = tokio::spawn(run_loop(
            backend.clone(),
            vec![plan],
            retries,
            clock.clone() as Arc<dyn Clock>,
            cancel.clone(),
        ));
        Harness {
            clock,
            backend,
            cancel,
            task,
        }
    }

    /// Lets every task run until it blocks on the clock.
    async fn settle(&self) {
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
    }

    /// Moves the clock to `end` in steps of `step`, settling after each, as time passes for a
    /// runner that stays up.
    async fn run_until(&self, end: &str, step: TimeDelta) {
        self.settle().await;
        let end = at(end);
        while self.clock.now() < end {
            self.clock.set((self.clock.now() + step).min(end));
            self.settle().await;
        }
    }

    async fn stop(self) -> Vec<Event> {
        self.cancel.cancel();
        self.task.await.unwrap();
        self.backend.events.lock().unwrap().clone()
    }
}

fn plan(expr: &str, zone: &str, handled: Option<&str>) -> JobPlan {
    JobPlan {
        name: "j".into(),
        schedule: Schedule::parse(expr, zone).unwrap(),
        policies: Policies {
            missed: MissedPolicy::Latest,
            starting_deadline: None,
            overlap: Overlap::Allow,
            timeout: None,
            retry: Retry::from_spec(None, &[]),
        },
        handled: handled.map(at),
    }
}

fn with(mut plan: JobPlan, missed: MissedPolicy, overlap: Overlap) -> JobPlan {
    plan.policies.missed = missed;
    plan.policies.overlap = overlap;
    plan
}

fn started(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Started { slot, at, .. } => Some((slot.to_rfc3339(), at.to_rfc3339())),
            _ => None,
        })
        .collect()
}

fn slots_started(events: &[Event]) -> Vec<String> {
    started(events).into_iter().map(|(slot, _)| slot).collect()
}

fn recorded(events: &[Event]) -> Vec<SlotRecord> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Recorded(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

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
