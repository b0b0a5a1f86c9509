//! The schedule loop: a heap of next fire times, the catch-up and overlap policies, and
//! nothing else. What a fire does (run a job, record a slot) is behind [`Backend`], so tests
//! drive years of schedule with a [`ManualClock`](crate::schedule::ManualClock) and an
//! in-memory backend, and the benchmark measures the loop alone.
//!
//! Each wake-up costs O(log n) in the number of jobs: only the jobs whose time has come are
//! looked at, and a slot that is on time needs one schedule step to find the next one.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::policy::{Overlap, Policies};
use super::state::{SlotRecord, SlotStatus};
use crate::schedule::{
    Clock, Decision, MissedPolicy, MissedReason, ON_TIME_GRACE, Schedule, plan_catch_up,
};
use crate::store::time_text;

/// How late a fire may be before it is logged as late.
pub const LATE_AFTER: TimeDelta = TimeDelta::seconds(1);

/// A job as the loop sees it.
#[derive(Clone, Debug)]
pub struct JobPlan {
    /// The job's name, for logs.
    pub name: String,
    /// When it fires.
    pub schedule: Schedule,
    /// Its missed-slot, deadline and overlap policies.
    pub policies: Policies,
    /// The newest slot already recorded (where to resume), `None` for a job never fired.
    pub handled: Option<DateTime<Utc>>,
}

/// One run to start: the slot and which attempt of it this is (above 1 for a retry of a run
/// a dead process left unfinished).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    /// The slot.
    pub slot: DateTime<Utc>,
    /// The attempt, from 1.
    pub attempt: u32,
}

/// How the loop asks a run to stop, and why: the reason is kept so the run's record can say
/// it was replaced rather than merely interrupted.
#[derive(Clone, Debug)]
pub struct Stop {
    /// Cancelled when the run should stop.
    pub token: CancellationToken,
    reason: Arc<OnceLock<String>>,
}

impl Stop {
    /// A stop that also fires when `parent` is cancelled.
    pub fn child_of(parent: &CancellationToken) -> Stop {
        Stop {
            token: parent.child_token(),
            reason: Arc::default(),
        }
    }

    /// Asks the run to stop, for `reason` (the first reason given is kept).
    pub fn stop(&self, reason: String) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// Why the loop stopped the run, if it did (a stop signal gives no reason).
    pub fn reason(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }
}

/// What the loop's decisions act on.
pub trait Backend: Send + Sync + 'static {
    /// Whether job `job` (an index into the plans) is paused now.
    fn paused(&self, job: usize) -> impl Future<Output = bool> + Send;
    /// Records slots of job `job` that will not run.
    fn record(&self, job: usize, record: SlotRecord) -> impl Future<Output = ()> + Send;
    /// Runs a slot of job `job` to its end, stopping early when `stop` fires.
    fn run(
        &self,
        job: usize,
        launch: Launch,
        stop: Stop,
    ) -> impl Future<Output = ()> + Send + 'static;
}

/// A job's live state in the loop.
struct Live {
    plan: JobPlan,
    /// Slots up to here are decided.
    handled: DateTime<Utc>,
    running: Vec<(u64, Stop)>,
    queued: Option<Launch>,
}

/// Runs the loop until `cancel` fires, then waits for the runs it started to end.
///
/// At start each job catches up on the slots since its last recorded one (per its `missed`
/// policy and starting deadline) and the `retries` (job index and launch) are started.
pub async fn run_loop<B: Backend>(
    backend: Arc<B>,
    plans: Vec<JobPlan>,
    retries: Vec<(usize, Launch)>,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) {
    let start = clock.now();
    let mut loop_ = Loop {
        backend,
        jobs: Vec::with_capacity(plans.len()),
        heap: BinaryHeap::with_capacity(plans.len()),
        running: JoinSet::new(),
        tasks: HashMap::new(),
        cancel: cancel.clone(),
        next_key: 0,
    };
    for (j, plan) in plans.into_iter().enumerate() {
        // Resume after the last recorded slot, even one ahead of the clock (the clock was
        // stepped back): slots already recorded are never decided again.
        let handled = plan.handled.unwrap_or(start);
        loop_.jobs.push(Live {
            plan,
            handled,
            running: Vec::new(),
            queued: None,
        });
        if let Some(next) = loop_.jobs[j].plan.schedule.next_after(handled) {
            loop_.heap.push(Reverse((next, j)));
        }
    }
    for (j, launch) in retries {
        loop_.decide_run(j, launch).await;
    }
    info!(jobs = loop_.jobs.len(), "serving");

    loop {
        let due = loop_.heap.peek().map(|Reverse((t, _))| *t);
        let sleep = async {
            match due {
                Some(t) => clock.sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            Some(done) = loop_.running.join_next_with_id(), if !loop_.running.is_empty() => {
                // A run that panicked ended its own task only; the loop still learns it ended.
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => {
                        error!(error = %e, "a run task panicked");
                        e.id()
                    }
                };
                if let Some((j, key)) = loop_.tasks.remove(&id) {
                    loop_.ended(j, key).await;
                }
                continue;
            }
            () = sleep => {}
        }

        let now = clock.now();
        while let Some(&Reverse((t, j))) = loop_.heap.peek() {
            if t > now {
                break;
            }
            loop_.heap.pop();
            loop_.fire(j, t, now).await;
        }
    }

    info!(
        running = loop_.running.len(),
        "stop signal: no more fires; waiting for running runs to record"
    );
    while loop_.running.join_next().await.is_some() {}
}

struct Loop<B> {
    backend: Arc<B>,
    jobs: Vec<Live>,
    heap: BinaryHeap<Reverse<(DateTime<Utc>, usize)>>,
    running: JoinSet<()>,
    /// The job and key of each running task.
    tasks: HashMap<tokio::task::Id, (usize, u64)>,
    cancel: CancellationToken,
    next_key: u64,
}

impl<B: Backend> Loop<B> {
    /// Job `j`'s slot `due` (its next slot after `handled`) has come; it is `now`.
    async fn fire(&mut self, j: usize, due: DateTime<Utc>, now: DateTime<Utc>) {
        let live = &mut self.jobs[j];
        let schedule = &live.plan.schedule;
        let after = schedule.next_after(due);
        let policies = &live.plan.policies;
        let on_time =
            now - due <= ON_TIME_GRACE && policies.starting_deadline.is_none_or(|d| now - due <= d);

        // The common case, one slot and on time, runs under every policy without planning.
        let decisions = if on_time && after.is_none_or(|a| a > now) {
            vec![Decision::Run(due)]
        } else {
            plan_catch_up(
                schedule,
                Some(live.handled),
                now,
                policies.missed,
                policies.starting_deadline,
            )
        };
        live.handled = now;
        let next = if after.is_none_or(|a| a > now) {
            after
        } else {
            schedule.next_after(now)
        };
        if let Some(next) = next {
            self.heap.push(Reverse((next, j)));
        }
        self.apply(j, decisions, now).await;
    }

    async fn apply(&mut self, j: usize, decisions: Vec<Decision>, now: DateTime<Utc>) {
        for decision in decisions {
            match decision {
                Decision::Run(slot) => {
                    let late = now - slot;
                    if late > LATE_AFTER {
                        warn!(job = %self.jobs[j].plan.name, slot = %time_text(slot),
                              late_ms = late.num_milliseconds(), "fired late");
                    }
                    self.decide_run(j, Launch { slot, attempt: 1 }).await;
                }
                Decision::Missed(group) => {
                    let reason = match group.reason {
                        MissedReason::PastDeadline => "past the job's starting deadline",
                        MissedReason::Policy => match self.jobs[j].plan.policies.missed {
                            MissedPolicy::Skip => {
                                "over 60 s old when the runner got to it (missed = skip)"
                            }
                            MissedPolicy::Latest => {
                                "a newer slot was taken instead (missed = latest)"
                            }
                            MissedPolicy::All { .. } => {
                                "older than the catch-up bound (missed = all, catch_up_max)"
                            }
                        },
                    };
                    let record = SlotRecord::missed(&group, reason);
                    warn!(job = %self.jobs[j].plan.name, first = %time_text(group.first),
                          last = %time_text(group.last), slots = ?group.count, reason,
                          "slots missed");
                    self.backend.record(j, record).await;
                }
            }
        }
    }

    /// A slot may run: applies the pause switch and the overlap policy.
    async fn decide_run(&mut self, j: usize, launch: Launch) {
        let skip = |reason: &str| SlotRecord::one(launch.slot, SlotStatus::Skipped, reason);
        if self.backend.paused(j).await {
            info!(job = %self.jobs[j].plan.name, slot = %time_text(launch.slot), "paused: slot skipped");
            self.backend.record(j, skip("the job is paused")).await;
            return;
        }
        let live = &mut self.jobs[j];
        if live.running.is_empty() {
            self.launch(j, launch);
            return;
        }
        match live.plan.policies.overlap {
            Overlap::Allow => self.launch(j, launch),
            Overlap::Forbid => {
                warn!(job = %live.plan.name, slot = %time_text(launch.slot), "a run is still running: slot skipped");
                let record = skip("a run of the job was still running (overlap = forbid)");
                self.backend.record(j, record).await;
            }
            Overlap::QueueOne if live.queued.is_none() => live.queued = Some(launch),
            Overlap::QueueOne => {
                warn!(job = %live.plan.name, slot = %time_text(launch.slot), "a slot already waits: slot skipped");
                let record =
                    skip("a run was running and another slot already waited (overlap = queue-one)");
                self.backend.record(j, record).await;
            }
            Overlap::Replace => {
                for (_, stop) in &live.running {
                    stop.stop(format!(
                        "cancelled: replaced by the run for slot {} (overlap = replace)",
                        time_text(launch.slot)
                    ));
                }
                self.launch(j, launch);
            }
        }
    }

    fn launch(&mut self, j: usize, launch: Launch) {
        let key = self.next_key;
        self.next_key += 1;
        let stop = Stop::child_of(&self.cancel);
        self.jobs[j].running.push((key, stop.clone()));
        let run = self.backend.run(j, launch, stop);
        let id = self.running.spawn(run).id();
        self.tasks.insert(id, (j, key));
    }

    /// A run of job `j` ended: a queued slot may start now.
    async fn ended(&mut self, j: usize, key: u64) {
        let live = &mut self.jobs[j];
        live.running.retain(|(k, _)| *k != key);
        if live.running.is_empty()
            && let Some(launch) = live.queued.take()
        {
            self.decide_run(j, launch).await;
        }
    }
}
