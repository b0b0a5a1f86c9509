//! `runner serve`: fires jobs on their schedules until SIGINT or SIGTERM.
//!
//! The loop sleeps until the earliest next fire time (no polling), starts each due job as a
//! task of its own, and on a stop signal stops firing, lets running steps be interrupted
//! and recorded as such, and returns. A run that fails is logged and the loop goes on.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::pipeline::Runner;
use crate::schedule::{Clock, Schedule};
use crate::store::{Trigger, time_text};

/// How late a fire may be before it is logged as late.
const LATE_AFTER: chrono::Duration = chrono::Duration::seconds(1);

/// Runs the schedule loop until `cancel` fires, then waits for running jobs to record their
/// interruption.
pub async fn serve(
    runner: Arc<Runner>,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
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

    let mut schedules = Vec::new();
    for job in &runner.file.jobs {
        let schedule = Schedule::parse(&job.schedule, &job.timezone)?;
        schedules.push((job.name.clone(), schedule));
    }
    let start = clock.now();
    let mut next: BTreeMap<String, Option<DateTime<Utc>>> = schedules
        .iter()
        .map(|(name, s)| (name.clone(), s.next_after(start)))
        .collect();
    info!(jobs = schedules.len(), "serving");
    let invoker = crate::invoker::Invoker::new(runner.store.clone())?;
    let delivering = tokio::spawn(invoker.serve(cancel.clone()));

    let mut running = JoinSet::new();
    loop {
        let Some(due) = next.values().flatten().min().copied() else {
            info!("no job has a future fire time; waiting for a stop signal");
            cancel.cancelled().await;
            break;
        };
        tokio::select! {
            () = clock.sleep_until(due) => {}
            () = cancel.cancelled() => break,
        }
        while running.try_join_next().is_some() {}

        let now = clock.now();
        for (name, schedule) in &schedules {
            if next[name] != Some(due) {
                continue;
            }
            if now - due > LATE_AFTER {
                warn!(job = %name, slot = %time_text(due), late_ms = (now - due).num_milliseconds(), "fired late");
            }
            next.insert(name.clone(), schedule.next_after(due));
            let (runner, cancel, name) = (runner.clone(), cancel.clone(), name.clone());
            running.spawn(async move {
                let Some(job) = runner.file.job(&name) else { return };
                match runner.run_job(job, Trigger::Schedule, due, &cancel).await {
                    Ok(Some(result)) => info!(job = %name, run_id = result.run_id, status = result.status, "run ended"),
                    Ok(None) => {}
                    Err(e) => error!(job = %name, error = %e, "could not record the run"),
                }
            });
        }
    }

    info!(
        running = running.len(),
        "stop signal: no more fires; waiting for running steps to record"
    );
    while running.join_next().await.is_some() {}
    delivering.await?;
    Ok(())
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
