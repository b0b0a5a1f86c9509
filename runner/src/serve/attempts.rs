//! One slot of a job, run to its end under the job's own policies: its timeout, and whole-run
//! retries with backoff. Used by the schedule loop, `runner trigger` and `runner backfill`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::policy::Policies;
use super::scheduler::{Backend, Launch, Stop};
use super::state::{self, SlotRecord};
use crate::config::Job;
use crate::pipeline::{RunResult, Runner};
use crate::sandbox::Outcome;
use crate::store::{StoreError, Trigger};

/// Runs `job` for `slot`, trying again per the job's `[job.retry]`; `attempt` is the first
/// attempt's number (above 1 when retrying a run a dead process left unfinished). Returns the
/// last run's result, or `None` when the slot already had a run.
pub async fn run_slot(
    runner: &Runner,
    job: &Job,
    trigger: Trigger,
    slot: DateTime<Utc>,
    mut attempt: u32,
    stop: &Stop,
) -> Result<Option<RunResult>, StoreError> {
    let policies = Policies::of(job);
    let mut trigger = if attempt > 1 { Trigger::Retry } else { trigger };
    loop {
        let Some(result) = run_once(runner, job, trigger, slot, &policies, stop).await? else {
            return Ok(None);
        };
        if result.status == "succeeded" || stop.token.is_cancelled() {
            return Ok(Some(result));
        }
        let outcome = match state::last_outcome(runner.store.pool(), result.run_id).await? {
            Some(o) => outcome_named(&o),
            None => None,
        };
        let timed_out = result
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with(JOB_TIMEOUT));
        let outcome = if timed_out {
            Some(Outcome::Timeout)
        } else {
            outcome
        };
        if !outcome.is_some_and(|o| policies.retry.again(attempt, o)) {
            return Ok(Some(result));
        }
        let delay = policies.retry.delay(attempt, result.run_id as u64);
        info!(job = %job.name, run_id = result.run_id, attempt, delay_ms = delay.as_millis() as u64,
              "retrying the run");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.token.cancelled() => return Ok(Some(result)),
        }
        attempt += 1;
        trigger = Trigger::Retry;
    }
}

/// How a run stopped by the job's timeout starts its error.
const JOB_TIMEOUT: &str = "the run exceeded the job's timeout";

/// One run under the job's timeout; restates the record when the loop replaced it or the
/// timeout stopped it, since the pipeline only saw an interruption.
async fn run_once(
    runner: &Runner,
    job: &Job,
    trigger: Trigger,
    slot: DateTime<Utc>,
    policies: &Policies,
    stop: &Stop,
) -> Result<Option<RunResult>, StoreError> {
    let token = stop.token.child_token();
    let run = runner.run_job(job, trigger, slot, &token);
    tokio::pin!(run);
    let mut timed_out = false;
    let result = match policies.timeout {
        None => run.await?,
        Some(limit) => tokio::select! {
            r = &mut run => r?,
            () = tokio::time::sleep(limit) => {
                timed_out = true;
                token.cancel();
                run.await?
            }
        },
    };
    let Some(mut result) = result else {
        return Ok(None);
    };
    if result.status == "interrupted" {
        let restated = if let Some(reason) = stop.reason() {
            Some(("interrupted", reason.to_string()))
        } else if timed_out && !stop.token.is_cancelled() {
            let secs = policies.timeout.unwrap_or_default().as_secs_f64();
            Some(("failed", format!("{JOB_TIMEOUT} of {secs} s")))
        } else {
            None
        };
        if let Some((status, error)) = restated {
            warn!(job = %job.name, run_id = result.run_id, status, error = %error, "run stopped");
            state::restate_run(runner.store.pool(), result.run_id, status, &error).await?;
            result.status = status;
            result.error = Some(error);
        }
    }
    Ok(Some(result))
}

/// The outcome with a stored name.
pub fn outcome_named(name: &str) -> Option<Outcome> {
    [
        Outcome::Succeeded,
        Outcome::GuestError,
        Outcome::Trap,
        Outcome::Timeout,
        Outcome::MemoryLimit,
        Outcome::StackOverflow,
        Outcome::LoadError,
        Outcome::Interrupted,
    ]
    .into_iter()
    .find(|o| o.as_str() == name)
}

/// The real backend: runs jobs through the pipeline and records slots in the store.
pub struct StoreBackend {
    /// The runner.
    pub runner: Arc<Runner>,
    /// The job ids, by plan index.
    pub job_ids: Vec<i64>,
    /// The job names, by plan index.
    pub names: Vec<String>,
    /// Writes to the history that failed (a run or slots that could not be recorded), so
    /// that `serve` can end with an error instead of success.
    pub lost_writes: Arc<std::sync::atomic::AtomicU64>,
}

impl Backend for StoreBackend {
    async fn paused(&self, job: usize) -> bool {
        match state::paused(self.runner.store.pool(), self.job_ids[job]).await {
            Ok(p) => p,
            Err(e) => {
                warn!(job = %self.names[job], error = %e, "cannot read the pause switch; firing");
                false
            }
        }
    }

    async fn record(&self, job: usize, record: SlotRecord) {
        let pool = self.runner.store.pool();
        if let Err(e) = state::record_slots(pool, self.job_ids[job], "schedule", &record).await {
            self.lost_writes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            warn!(job = %self.names[job], error = %e, "cannot record skipped or missed slots");
        }
    }

    fn run(
        &self,
        job: usize,
        launch: Launch,
        stop: Stop,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let runner = self.runner.clone();
        let name = self.names[job].clone();
        let lost_writes = self.lost_writes.clone();
        async move {
            let Some(spec) = runner.file.job(&name) else {
                return;
            };
            match run_slot(
                &runner,
                spec,
                Trigger::Schedule,
                launch.slot,
                launch.attempt,
                &stop,
            )
            .await
            {
                Ok(Some(r)) => {
                    info!(job = %name, run_id = r.run_id, status = r.status, "run ended")
                }
                Ok(None) => {}
                Err(e) => {
                    lost_writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    warn!(job = %name, error = %e, "could not record the run")
                }
            }
        }
    }
}
