//! The scheduling commands: `pause`, `resume`, `trigger`, `backfill` and `next`.
//!
//! They live beside [`super`] (the rest of the command line) to share its job-file, store and
//! exit-code helpers. Pause is durable: it is a row in SQLite that `runner serve` reads at each
//! fire, so pausing needs no running server and survives restarts.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use indicatif::{ProgressBar, ProgressStyle};

use super::{
    Cli, Failure, bad_input, data_dir, internal, load_job_file, open_store, prepare,
    tidy_dead_manual_runs,
};
use crate::config::{Job, JobFile};
use crate::pipeline::Runner;
use crate::schedule::Schedule;
use crate::serve::attempts::run_slot;
use crate::serve::policy::{Overlap, Policies};
use crate::serve::scheduler::Stop;
use crate::serve::state::{self, SlotRecord, SlotStatus};
use crate::store::{Store, Trigger, time_text};

/// The most slots one `runner backfill` runs.
pub const BACKFILL_LIMIT: usize = 10_000;

fn find_job<'a>(file: &'a JobFile, name: &str) -> Result<&'a Job, Failure> {
    file.job(name).ok_or_else(|| {
        let names: Vec<&str> = file.jobs.iter().map(|j| j.name.as_str()).collect();
        bad_input(anyhow::anyhow!(
            "no job `{}` in `{}` (jobs: {})",
            crate::plain::spelled_out(name, &[]),
            file.path.display(),
            names.join(", ")
        ))
    })
}

async fn job_id(store: &Store, job: &Job) -> Result<i64, Failure> {
    let definition = serde_json::to_string(job).unwrap_or_default();
    store
        .upsert_job(&job.name, &job.schedule, &job.timezone, &definition)
        .await
        .map_err(|e| internal(e.into()))
}

/// `runner pause JOB` and `runner resume JOB`.
pub async fn cmd_pause(cli: &Cli, name: &str, paused: bool) -> Result<u8, Failure> {
    let file = load_job_file(cli, None)?;
    let job = find_job(&file, name)?;
    let store = open_store(&data_dir(cli, Some(&file))).await?;
    let id = job_id(&store, job).await?;
    let changed = state::set_paused(store.pool(), id, paused)
        .await
        .map_err(|e| internal(e.into()))?;
    let word = if paused { "paused" } else { "resumed" };
    if changed {
        say!("`{name}` {word}");
    } else {
        say!(
            "`{name}` was already {}",
            if paused { "paused" } else { "running" }
        );
    }
    Ok(0)
}

/// `runner trigger JOB`: one manual run now, under the job's overlap, timeout and retry
/// policies. Another process's run cannot be cancelled from here, so `replace` acts as
/// `allow`.
pub async fn cmd_trigger(cli: &Cli, name: &str) -> Result<u8, Failure> {
    let runner = prepare(cli).await?;
    tidy_dead_manual_runs(&runner.store).await?;
    let job = find_job(&runner.file, name)?.clone();
    let id = job_id(&runner.store, &job).await?;
    let now = Utc::now();
    let policies = Policies::of(&job);
    let busy = state::running_runs(runner.store.pool(), id)
        .await
        .map_err(|e| internal(e.into()))?
        > 0;
    if busy && matches!(policies.overlap, Overlap::Forbid | Overlap::QueueOne) {
        let record = SlotRecord::one(
            now,
            SlotStatus::Skipped,
            "a run of the job was still running (manual trigger, overlap forbids it)",
        );
        state::record_slots(runner.store.pool(), id, "manual", &record)
            .await
            .map_err(|e| internal(e.into()))?;
        say!("`{name}` is running already: trigger skipped and recorded");
        return Ok(0);
    }
    let cancel = crate::serve::stop_on_signals().map_err(internal)?;
    let stop = Stop::child_of(&cancel);
    let result = run_slot(&runner, &job, Trigger::Manual, now, 1, &stop)
        .await
        .map_err(|e| internal(e.into()))?
        .ok_or_else(|| internal(anyhow::anyhow!("a manual run was refused as a duplicate")))?;
    say!("run {} of `{name}`: {}", result.run_id, result.status);
    if let Some(error) = &result.error {
        say!("error: {error}");
    }
    Ok(if result.status == "succeeded" {
        0
    } else {
        super::EXIT_RUN_FAILED
    })
}

/// Reads a backfill bound: an RFC 3339 instant, or a date meaning midnight in the job's zone.
pub fn parse_bound(text: &str, schedule: &Schedule) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.to_utc());
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        format!("`{text}` is not an RFC 3339 time (2024-03-01T00:00:00Z) or a date (2024-03-01)")
    })?;
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    midnight
        .and_local_timezone(schedule.zone())
        .earliest()
        .map(|t| t.to_utc())
        .ok_or_else(|| {
            format!(
                "midnight of `{text}` does not exist in `{}`",
                schedule.zone()
            )
        })
}

/// The slots of `schedule` in `[from, to]`, at most `limit + 1` of them.
pub fn slots_between(
    schedule: &Schedule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: usize,
) -> Vec<DateTime<Utc>> {
    schedule
        .iter_after(from - TimeDelta::nanoseconds(1))
        .take_while(|t| *t <= to)
        .take(limit + 1)
        .collect()
}

/// `runner backfill JOB --from T --to T`: one `backfill` run per slot, oldest first, one at a
/// time (so backfilled runs never overlap each other); a slot that already has a run is left
/// as it is, and under `overlap = forbid` or `queue-one` a slot whose turn comes while another
/// process runs the job is recorded as skipped.
pub async fn cmd_backfill(cli: &Cli, name: &str, from: &str, to: &str) -> Result<u8, Failure> {
    let runner = Arc::new(prepare(cli).await?);
    let job = find_job(&runner.file, name)?.clone();
    let schedule =
        Schedule::parse(&job.schedule, &job.timezone).map_err(|e| bad_input(e.into()))?;
    let bound = |t: &str, flag: &str| {
        parse_bound(t, &schedule).map_err(|e| bad_input(anyhow::anyhow!("{flag}: {e}")))
    };
    let (from, to) = (bound(from, "--from")?, bound(to, "--to")?);
    if from > to {
        return Err(bad_input(anyhow::anyhow!(
            "--from `{}` is after --to `{}`",
            time_text(from),
            time_text(to)
        )));
    }
    let slots = slots_between(&schedule, from, to, BACKFILL_LIMIT);
    if slots.len() > BACKFILL_LIMIT {
        return Err(bad_input(anyhow::anyhow!(
            "`{name}` has more than {BACKFILL_LIMIT} slots from {} to {}: backfill a shorter span",
            time_text(from),
            time_text(to)
        )));
    }
    if slots.is_empty() {
        say!(
            "no slot of `{name}` (`{}` in {}) falls from {} to {}: nothing to backfill",
            job.schedule,
            job.timezone,
            time_text(from),
            time_text(to)
        );
        return Ok(0);
    }
    let id = job_id(&runner.store, &job).await?;
    let overlap = Policies::of(&job).overlap;
    let cancel = crate::serve::stop_on_signals().map_err(internal)?;

    let bar = ProgressBar::new(slots.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} slots {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut tally = Tally::default();
    for slot in slots {
        if cancel.is_cancelled() {
            break;
        }
        bar.set_message(time_text(slot));
        backfill_one(&runner, &job, id, overlap, slot, &cancel, &mut tally).await?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    say!(
        "backfill of `{name}`: {} succeeded, {} failed, {} already had a run, {} skipped",
        tally.succeeded,
        tally.failed,
        tally.existing,
        tally.skipped
    );
    Ok(if tally.failed > 0 || cancel.is_cancelled() {
        super::EXIT_RUN_FAILED
    } else {
        0
    })
}

#[derive(Default)]
struct Tally {
    succeeded: usize,
    failed: usize,
    existing: usize,
    skipped: usize,
}

async fn backfill_one(
    runner: &Runner,
    job: &Job,
    id: i64,
    overlap: Overlap,
    slot: DateTime<Utc>,
    cancel: &tokio_util::sync::CancellationToken,
    tally: &mut Tally,
) -> Result<(), Failure> {
    let pool = runner.store.pool();
    if matches!(overlap, Overlap::Forbid | Overlap::QueueOne)
        && state::running_runs(pool, id)
            .await
            .map_err(|e| internal(e.into()))?
            > 0
    {
        let record = SlotRecord::one(
            slot,
            SlotStatus::Skipped,
            "a run of the job was still running (backfill, overlap forbids it)",
        );
        if state::record_slots(pool, id, "backfill", &record)
            .await
            .map_err(|e| internal(e.into()))?
        {
            tally.skipped += 1;
        } else {
            tally.existing += 1;
        }
        return Ok(());
    }
    let stop = Stop::child_of(cancel);
    match run_slot(runner, job, Trigger::Backfill, slot, 1, &stop)
        .await
        .map_err(|e| internal(e.into()))?
    {
        None => tally.existing += 1,
        Some(r) if r.status == "succeeded" => tally.succeeded += 1,
        Some(_) => tally.failed += 1,
    }
    Ok(())
}

/// `runner next JOB [-n N] [--after T]`: the next fire times in the job's zone and in UTC.
pub fn cmd_next(cli: &Cli, name: &str, n: usize, after: Option<&str>) -> Result<u8, Failure> {
    let file = load_job_file(cli, None)?;
    let job = find_job(&file, name)?;
    let schedule = Schedule::parse(&job.schedule, &job.timezone)
        .map_err(|e| bad_input(anyhow::anyhow!("job `{name}`, `schedule`: {e}")))?;
    let after = match after {
        None => Utc::now(),
        Some(t) => {
            parse_bound(t, &schedule).map_err(|e| bad_input(anyhow::anyhow!("--after: {e}")))?
        }
    };
    say!("`{name}`: `{}` in {}", job.schedule, job.timezone);
    let mut shown = 0;
    for t in schedule.iter_after(after).take(n) {
        let local = t.with_timezone(&schedule.zone());
        say!(
            "{}  {}",
            local.format("%a %Y-%m-%d %H:%M:%S %Z (%:z)"),
            time_text(t)
        );
        shown += 1;
    }
    if shown < n {
        say!(
            "(no fire times after {}: schedules end with the year 2100)",
            time_text(after)
        );
    }
    Ok(0)
}
