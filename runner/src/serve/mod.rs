//! `runner serve`: fires jobs on their schedules until SIGINT or SIGTERM.
//!
//! Start-up recovers first: runs a dead process left running are marked interrupted and, when
//! the job's `[job.retry]` retries `interrupted`, tried again as `retry` runs of the same slot.
//! Each job then resumes from its last recorded slot (never from "now"), so downtime is caught
//! up per the job's `missed` policy. The loop itself ([`scheduler`]) sleeps until the earliest
//! next fire time on a heap, applies the overlap and pause rules, and starts each run as a
//! task of its own; a run that fails is logged and the loop goes on. On a stop signal it stops
//! firing, lets running steps be interrupted and recorded as such, and returns.
//!
//! Where to go next: [`policy`] for what a job file can set, [`state`] for what is recorded.

pub mod attempts;
pub mod policy;
pub mod scheduler;
pub mod state;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::pipeline::Runner;
use crate::schedule::{Clock, Schedule};
use attempts::StoreBackend;
use policy::Policies;
use scheduler::{JobPlan, Launch};

/// Runs the schedule loop until `cancel` fires, then waits for running jobs to record their
/// interruption.
pub async fn serve(
    runner: Arc<Runner>,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let pool = runner.store.pool().clone();
    // Only runs whose process is gone: another live `runner` on this data directory keeps
    // its own.
    let orphans = runner.store.orphaned_runs().await?;
    let mut unfinished = state::unfinished_runs(&pool).await?;
    unfinished.retain(|u| orphans.contains(&u.run_id));
    let recovered = runner
        .store
        .interrupt_unfinished("the runner process ended before the run finished")
        .await?;
    if recovered > 0 {
        warn!(
            runs = recovered,
            "marked runs left unfinished by an earlier process as interrupted"
        );
    }

    let mut plans = Vec::new();
    let mut job_ids = Vec::new();
    for job in &runner.file.jobs {
        let schedule = Schedule::parse(&job.schedule, &job.timezone)?;
        let definition = serde_json::to_string(job).unwrap_or_default();
        let id = runner
            .store
            .upsert_job(&job.name, &job.schedule, &job.timezone, &definition)
            .await?;
        plans.push(JobPlan {
            name: job.name.clone(),
            schedule,
            policies: Policies::of(job),
            handled: state::last_handled(&pool, id).await?,
        });
        job_ids.push(id);
    }

    // A run cut short by the dead process is retried when its job says so and attempts are
    // left; otherwise it stays interrupted, which is its final state.
    let mut retries = Vec::new();
    for u in unfinished {
        let Some(j) = runner.file.jobs.iter().position(|job| job.name == u.job) else {
            continue;
        };
        let retry = &plans[j].policies.retry;
        let tries = state::runs_for_slot(&pool, job_ids[j], u.logical_time).await?;
        // `tries` counts the interrupted run itself, so a retry is attempt 2 or later.
        if retry.retry_on.iter().any(|o| o == "interrupted") && tries < retry.max_attempts {
            info!(job = %u.job, run_id = u.run_id, attempt = tries + 1, "retrying an interrupted run");
            retries.push((
                j,
                Launch {
                    slot: u.logical_time,
                    attempt: (tries + 1).max(2),
                },
            ));
        } else {
            info!(job = %u.job, run_id = u.run_id, "an interrupted run is not retried (its job's retry policy)");
        }
    }

    let lost_writes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let backend = Arc::new(StoreBackend {
        runner: runner.clone(),
        job_ids,
        names: plans.iter().map(|p| p.name.clone()).collect(),
        lost_writes: lost_writes.clone(),
    });
    // Downstream triggers are sent by their own worker, resuming whatever the outbox holds.
    let invoker = crate::invoker::Invoker::new(runner.store.clone())?;
    let delivering = tokio::spawn(invoker.serve(cancel.clone()));
    scheduler::run_loop(backend, plans, retries, clock, cancel).await;
    delivering.await?;
    match lost_writes.load(std::sync::atomic::Ordering::Relaxed) {
        0 => Ok(()),
        lost => anyhow::bail!(
            "{lost} run(s) or slot record(s) could not be written to the run history \
             (the log above says why); the next `serve` marks a run it left `running` \
             as interrupted"
        ),
    }
}

/// A token cancelled on the first SIGINT or SIGTERM.
pub fn stop_on_signals() -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!(signal = "SIGTERM", "stopping"),
            _ = int.recv() => info!(signal = "SIGINT", "stopping"),
        }
        t.cancel();
    });
    Ok(token)
}
