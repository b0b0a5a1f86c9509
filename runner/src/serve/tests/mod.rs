//! The schedule loop driven by a [`ManualClock`] and an in-memory backend: months of schedule
//! in milliseconds. Expected fire times are worked out by hand from crontab(5), Debian's
//! cron(8) DST rules and the zones' published transition times, and written in UTC.
//!
//! This file holds the harness; [`calendar`] checks when the loop fires (DST, long spans,
//! downtime), [`overlap`] what it does when runs meet (overlap policies, pause, retries).

mod calendar;
mod overlap;

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
