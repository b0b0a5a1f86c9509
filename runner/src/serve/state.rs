//! The scheduler's durable state in SQLite: where each job's schedule stands, slots recorded
//! as missed or skipped, the pause switch, and what a dead process left unfinished.
//!
//! The tables are in `migrations/0003_schedule.sql`. Nothing here is cached: the scheduler
//! resumes from what is recorded, so a restart continues from the last recorded slot.

use chrono::{DateTime, Utc};
use sqlx::{Row, SqlitePool};

use crate::schedule::{MissedSlots, SlotCount};
use crate::store::{StoreError, now_text, time_text};

/// Why a slot was not run, as recorded in `schedule_slots.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotStatus {
    /// Nothing could run it in time: downtime, the starting deadline or the catch-up policy.
    Missed,
    /// A policy or an operator chose not to run it: overlap, queue full, pause.
    Skipped,
}

impl SlotStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SlotStatus::Missed => "missed",
            SlotStatus::Skipped => "skipped",
        }
    }
}

/// Slots recorded without a run: one slot, or a group of consecutive missed ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotRecord {
    /// The oldest slot.
    pub first: DateTime<Utc>,
    /// The newest slot (the same as `first` for one slot).
    pub last: DateTime<Utc>,
    /// How many slots.
    pub count: SlotCount,
    /// Missed or skipped.
    pub status: SlotStatus,
    /// Why, in words.
    pub reason: String,
}

impl SlotRecord {
    /// One slot.
    pub fn one(slot: DateTime<Utc>, status: SlotStatus, reason: impl Into<String>) -> SlotRecord {
        SlotRecord {
            first: slot,
            last: slot,
            count: SlotCount::Exact(1),
            status,
            reason: reason.into(),
        }
    }

    /// A missed group from a catch-up plan, with the reason in words.
    pub fn missed(group: &MissedSlots, reason: impl Into<String>) -> SlotRecord {
        SlotRecord {
            first: group.first,
            last: group.last,
            count: group.count,
            status: SlotStatus::Missed,
            reason: reason.into(),
        }
    }

    /// The reason with the group's extent, as `runner runs` shows it.
    pub fn described(&self) -> String {
        match self.count {
            SlotCount::Exact(1) => self.reason.clone(),
            SlotCount::Exact(n) => format!(
                "{n} slots from {} to {}: {}",
                time_text(self.first),
                time_text(self.last),
                self.reason
            ),
            SlotCount::AtLeast(n) => format!(
                "at least {n} slots from {} to {}: {}",
                time_text(self.first),
                time_text(self.last),
                self.reason
            ),
        }
    }
}

/// Records slots that will not run. A slot already recorded (as a run or a slot) is kept as
/// it was; returns whether a row was written.
pub async fn record_slots(
    pool: &SqlitePool,
    job_id: i64,
    trigger: &str,
    record: &SlotRecord,
) -> Result<bool, StoreError> {
    let (count, lower_bound) = match record.count {
        SlotCount::Exact(n) => (n, false),
        SlotCount::AtLeast(n) => (n, true),
    };
    let first = time_text(record.first);
    let written = sqlx::query(
        "INSERT INTO schedule_slots (job_id, logical_time, last_time, slot_count,
             count_is_lower_bound, trigger, status, reason, recorded_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9
         WHERE NOT EXISTS (SELECT 1 FROM runs WHERE job_id = ?1 AND logical_time = ?2
                               AND trigger IN ('schedule', 'backfill'))
         ON CONFLICT DO NOTHING",
    )
    .bind(job_id)
    .bind(&first)
    .bind(time_text(record.last))
    .bind(count as i64)
    .bind(lower_bound)
    .bind(trigger)
    .bind(record.status.as_str())
    .bind(record.described())
    .bind(now_text())
    .execute(pool)
    .await?
    .rows_affected();
    Ok(written == 1)
}

/// The newest slot the schedule has recorded for a job, as a run or as a missed or skipped
/// slot: where the scheduler resumes. `None` for a job that never fired.
pub async fn last_handled(
    pool: &SqlitePool,
    job_id: i64,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let text: Option<String> = sqlx::query_scalar(
        "SELECT max(t) FROM (
             SELECT max(logical_time) AS t FROM runs WHERE job_id = ?1 AND trigger = 'schedule'
             UNION ALL
             SELECT max(last_time) FROM schedule_slots WHERE job_id = ?1 AND trigger = 'schedule')",
    )
    .bind(job_id)
    .fetch_one(pool)
    .await?;
    Ok(text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok().map(|t| t.to_utc())))
}

/// Whether a job is paused.
pub async fn paused(pool: &SqlitePool, job_id: i64) -> Result<bool, StoreError> {
    let paused: Option<bool> = sqlx::query_scalar("SELECT paused FROM job_state WHERE job_id = ?1")
        .bind(job_id)
        .fetch_optional(pool)
        .await?;
    Ok(paused.unwrap_or(false))
}

/// Pauses or resumes a job; returns whether that changed anything.
pub async fn set_paused(pool: &SqlitePool, job_id: i64, paused: bool) -> Result<bool, StoreError> {
    let before = self::paused(pool, job_id).await?;
    sqlx::query(
        "INSERT INTO job_state (job_id, paused, changed_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (job_id) DO UPDATE SET paused = excluded.paused,
             changed_at = excluded.changed_at",
    )
    .bind(job_id)
    .bind(paused)
    .bind(now_text())
    .execute(pool)
    .await?;
    Ok(before != paused)
}

/// A run that a dead process left queued or running.
#[derive(Clone, Debug)]
pub struct Unfinished {
    /// The run.
    pub run_id: i64,
    /// Its job's name.
    pub job: String,
    /// The slot it was for.
    pub logical_time: DateTime<Utc>,
}

/// Runs still queued or running: at start-up, a dead process's.
pub async fn unfinished_runs(pool: &SqlitePool) -> Result<Vec<Unfinished>, StoreError> {
    let rows = sqlx::query(
        "SELECT r.id, j.name, r.logical_time FROM runs r JOIN jobs j ON j.id = r.job_id
         WHERE r.status IN ('queued', 'running') ORDER BY r.id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let t: String = r.get(2);
            Some(Unfinished {
                run_id: r.get(0),
                job: r.get(1),
                logical_time: DateTime::parse_from_rfc3339(&t).ok()?.to_utc(),
            })
        })
        .collect())
}

/// How many runs (first tries and retries, whatever their trigger) a job's logical time has
/// had.
pub async fn runs_for_slot(
    pool: &SqlitePool,
    job_id: i64,
    slot: DateTime<Utc>,
) -> Result<u32, StoreError> {
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM runs WHERE job_id = ?1 AND logical_time = ?2")
            .bind(job_id)
            .bind(time_text(slot))
            .fetch_one(pool)
            .await?;
    Ok(n as u32)
}

/// How many runs of a job are running now (in any process).
pub async fn running_runs(pool: &SqlitePool, job_id: i64) -> Result<u32, StoreError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM runs WHERE job_id = ?1 AND status IN ('queued', 'running')",
    )
    .bind(job_id)
    .fetch_one(pool)
    .await?;
    Ok(n as u32)
}

/// The outcome of the last step attempt of a run, if a step ran.
pub async fn last_outcome(pool: &SqlitePool, run_id: i64) -> Result<Option<String>, StoreError> {
    let outcome: Option<Option<String>> = sqlx::query_scalar(
        "SELECT outcome FROM steps WHERE run_id = ?1 ORDER BY idx DESC, attempt DESC LIMIT 1",
    )
    .bind(run_id)
    .fetch_optional(pool)
    .await?;
    Ok(outcome.flatten())
}

/// Rewrites how a run ended, when the scheduler knows more than the pipeline did (it was
/// replaced, or the job's timeout stopped it).
pub async fn restate_run(
    pool: &SqlitePool,
    run_id: i64,
    status: &str,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE runs SET status = ?2, error = ?3 WHERE id = ?1")
        .bind(run_id)
        .bind(status)
        .bind(error)
        .execute(pool)
        .await?;
    Ok(())
}
