//! The run history in SQLite: jobs, runs and step attempts.
//!
//! One file under the data directory, WAL mode, schema from `migrations/` applied by sqlx's
//! migrator at open. Every state change is written before the runner acts on it, so a crash
//! loses nothing already recorded; runs a dead process left `running` are found at the next
//! start (see [`Store::interrupt_unfinished`]).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::Value;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::sandbox::{Outcome, StepReport};

mod journal;

use journal::{Journal, Write};

/// Errors of the history store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or migrated.
    #[error("cannot open the run history `{path}`: {reason}")]
    Open {
        /// The database file.
        path: String,
        /// What sqlx or SQLite said.
        reason: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A query failed.
    #[error("run history: {0}")]
    Query(#[from] sqlx::Error),
    /// A write through the journal connection failed (and recorded nothing).
    #[error("run history: {0}")]
    Write(#[from] rusqlite::Error),
    /// The blocking task making a write panicked or was cancelled.
    #[error("run history: a write was abandoned: {0}")]
    Abandoned(tokio::task::JoinError),
    /// A write came after [`Store::close`].
    #[error("run history: the store is closed")]
    Closed,
    /// A run id that does not exist.
    #[error("no run with id `{0}`")]
    NoSuchRun(i64),
}

/// How a run came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// Fired by the schedule.
    Schedule,
    /// Asked for by a person (`runner run`, `runner trigger`).
    Manual,
    /// One slot of `runner backfill`.
    Backfill,
    /// Another attempt at a slot whose run failed or was interrupted.
    Retry,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Backfill => "backfill",
            Trigger::Retry => "retry",
        }
    }
}

/// A run as listed in the history.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// Run id.
    pub id: i64,
    /// Job name.
    pub job: String,
    /// The logical time the run is for.
    pub logical_time: String,
    /// `schedule`, `manual`, ...
    pub trigger: String,
    /// `queued`, `running`, `succeeded`, `failed`, `interrupted`; `missed` or `skipped` for a
    /// slot that did not run.
    pub status: String,
    /// When it was queued.
    pub queued_at: String,
    /// When it started.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// The step that failed.
    pub failed_step: Option<String>,
    /// Output of the last step.
    pub output_dir: Option<String>,
}

/// A step attempt as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// Position in the job, from 0.
    pub idx: i64,
    /// Attempt number, from 1.
    pub attempt: i64,
    /// Step name.
    pub name: String,
    /// Plugin file.
    pub plugin: String,
    /// sha256 of the plugin that ran.
    pub plugin_sha256: Option<String>,
    /// `running`, `succeeded`, `failed`, `interrupted`.
    pub status: String,
    /// How it ended (see [`Outcome`]).
    pub outcome: Option<String>,
    /// When it started.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Wall time in milliseconds.
    pub duration_ms: Option<f64>,
    /// Rows read.
    pub rows_in: Option<i64>,
    /// Rows written.
    pub rows_out: Option<i64>,
    /// Named figures (JSON object).
    pub metrics: Option<serde_json::Value>,
    /// What went wrong.
    pub error: Option<String>,
    /// Captured output.
    pub log: String,
    /// Whether the log was cut.
    pub log_truncated: bool,
    /// Output directory.
    pub output_dir: Option<String>,
    /// Bytes written to it.
    pub output_bytes: Option<i64>,
    /// The largest linear memory the guest grew to, in bytes.
    pub memory_peak_bytes: Option<i64>,
    /// The limits it ran under (JSON object, defaults filled in).
    pub limits: Option<serde_json::Value>,
    /// Fuel burned, when it had a CPU budget.
    pub fuel_consumed: Option<i64>,
}

/// The SQLite history.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    /// The connection the once-per-step writes go through (see [`journal`]).
    journal: Journal,
}

/// Now, as stored: RFC 3339 UTC with milliseconds.
pub fn now_text() -> String {
    time_text(Utc::now())
}

/// A time as stored.
pub fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A step attempt about to start. Its row is written before the guest runs, so a crash
/// mid-step leaves it `running` for recovery to mark interrupted.
#[derive(Debug, Clone, Copy)]
pub struct StepStart<'a> {
    /// The run.
    pub run_id: i64,
    /// Position in the job, from 0.
    pub idx: usize,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Step name.
    pub name: &'a str,
    /// Plugin file as the job names it.
    pub plugin: &'a str,
    /// The attempt's output directory.
    pub output_dir: &'a Path,
}

/// How a step attempt ended.
#[derive(Debug, Clone, Copy)]
pub struct StepEnd<'a> {
    /// The run.
    pub run_id: i64,
    /// Position in the job, from 0.
    pub idx: usize,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// sha256 of the plugin that ran, when it loaded.
    pub plugin_sha256: Option<&'a str>,
    /// What the sandbox reported.
    pub report: &'a StepReport,
    /// Bytes in the output directory.
    pub output_bytes: Option<u64>,
}

/// How long a write waits for another connection's write lock before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

// The writes made once per step go through the journal (see [`journal`]), one transaction
// each: a step's end with the next step's start, a run's start with its first step's, a
// retry's start. Their statements share one numbering of parameters: `?1`-`?7` start a step
// (`?6` is the time of the write, shared by all), `?8`-`?24` end one, `?9` names the run to
// start (see `step_start_values` and `Store::finish_step`).

const START_STEP: &str =
    "INSERT INTO steps (run_id, idx, attempt, name, plugin, status, started_at, output_dir)
     VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?7)";

const START_RUN: &str = "UPDATE runs SET status = 'running', started_at = ?6 WHERE id = ?9";

const FINISH_STEP: &str =
    "UPDATE steps SET status = ?11, outcome = ?12, finished_at = ?6, duration_ms = ?13,
         rows_in = ?14, rows_out = ?15, metrics = ?16, error = ?17, log = ?18,
         log_truncated = ?19, output_bytes = ?20, plugin_sha256 = ?21,
         memory_peak_bytes = ?22, limits = ?23, fuel_consumed = ?24
     WHERE run_id = ?8 AND idx = ?9 AND attempt = ?10";

/// `?1`-`?7`: the step to start (nulls when there is none) and the time of the write.
fn step_start_values(step: Option<&StepStart<'_>>) -> Vec<Value> {
    vec![
        step.map(|s| s.run_id).into(),
        step.map(|s| s.idx as i64).into(),
        step.map(|s| i64::from(s.attempt)).into(),
        step.map(|s| s.name.to_string()).into(),
        step.map(|s| s.plugin.to_string()).into(),
        now_text().into(),
        step.map(|s| s.output_dir.display().to_string()).into(),
    ]
}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies the migrations.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |reason: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.display().to_string(),
            reason,
        };
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| open_err(e.into()))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // A connection to a local file cannot go stale, so skip the ping sqlx would
        // otherwise make (a round trip to its worker thread) before each query.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|e| open_err(e.into()))?;
        // SQLite gives sqlx's migrator no lock, so two processes opening a new history at
        // once would both apply the same migration; an exclusive lock on a file beside the
        // database makes them take turns (it is released when `_lock` is dropped).
        let lock_path = path.with_extension("db.migrate-lock");
        let _lock = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::create(&lock_path)?;
            file.lock()?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(|e| open_err(e.into()))?
        .map_err(|e| open_err(e.into()))?;
        sqlx::migrate!("../migrations")
            .run(&pool)
            .await
            .map_err(|e| open_err(e.into()))?;
        let journal = Journal::open(path, BUSY_TIMEOUT).map_err(|e| open_err(e.into()))?;
        Ok(Store { pool, journal })
    }

    /// Checkpoints the write-ahead log into the database file and closes the pool, so the
    /// history is whole in `runner.db` alone once the process has ended (a copy of that
    /// one file is then a full copy). Another process reading or writing the history can
    /// hold that up: after a second this gives up with a warning, and the rest stays
    /// in `runner.db-wal` until a later command folds it in. Closing twice is harmless.
    pub async fn close(&self) {
        if self.pool.is_closed() {
            return;
        }
        self.journal.close();
        match self.fold_log().await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "another process is using the run history, so its latest changes stay in \
                 runner.db-wal beside runner.db until a later command folds them in"
            ),
            Err(e) => tracing::warn!(error = %e, "could not checkpoint the run history"),
        }
        self.pool.close().await;
    }

    /// Folds the whole log into the database file and empties it; `false` if other
    /// connections kept it from finishing within a second.
    async fn fold_log(&self) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("PRAGMA busy_timeout = 1000")
            .execute(&mut *conn)
            .await?;
        let busy: i64 = sqlx::query_scalar("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut *conn)
            .await?;
        Ok(busy == 0)
    }

    /// The pool, for modules that keep tables of their own.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Records a job's current definition and returns its id.
    pub async fn upsert_job(
        &self,
        name: &str,
        schedule: &str,
        timezone: &str,
        definition: &str,
    ) -> Result<i64, StoreError> {
        let now = now_text();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO jobs (name, schedule, timezone, definition, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)
             ON CONFLICT (name) DO UPDATE SET
                 schedule = excluded.schedule, timezone = excluded.timezone,
                 definition = excluded.definition, updated_at = excluded.updated_at
             RETURNING id",
        )
        .bind(name)
        .bind(schedule)
        .bind(timezone)
        .bind(definition)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Whether the history has ever recorded a job of this name.
    pub async fn has_job(&self, name: &str) -> Result<bool, StoreError> {
        let known: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM jobs WHERE name = ?1)")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(known)
    }

    /// Queues a run. For scheduled runs, returns `None` if that slot already has a run.
    pub async fn create_run(
        &self,
        job_id: i64,
        logical_time: DateTime<Utc>,
        trigger: Trigger,
    ) -> Result<Option<i64>, StoreError> {
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO runs (job_id, logical_time, trigger, status, queued_at, owner)
             VALUES (?1, ?2, ?3, 'queued', ?4, ?5)
             ON CONFLICT DO NOTHING
             RETURNING id",
        )
        .bind(job_id)
        .bind(time_text(logical_time))
        .bind(trigger.as_str())
        .bind(now_text())
        .bind(this_process())
        .fetch_optional(&self.pool)
        .await?;
        Ok(id)
    }

    /// Marks a run as running and records its first step attempt as started, in one
    /// transaction (see [`StepStart`]).
    pub async fn start_run(
        &self,
        run_id: i64,
        first: Option<&StepStart<'_>>,
    ) -> Result<(), StoreError> {
        let mut values = step_start_values(first);
        values.extend([Value::Null, run_id.into()]);
        let statements: &[&str] = match first {
            Some(_) => &[START_RUN, START_STEP],
            None => &[START_RUN],
        };
        self.journal.write(Write { statements, values }).await
    }

    /// Records that a step attempt started (a retry: first attempts are recorded with the
    /// write that ends the step or run before them).
    pub async fn start_step(&self, step: &StepStart<'_>) -> Result<(), StoreError> {
        let write = Write {
            statements: &[START_STEP],
            values: step_start_values(Some(step)),
        };
        self.journal.write(write).await
    }

    /// Records how a step attempt ended and, when the run goes straight on, that the next
    /// step's first attempt started: both in one transaction.
    pub async fn finish_step(
        &self,
        end: &StepEnd<'_>,
        next: Option<&StepStart<'_>>,
    ) -> Result<(), StoreError> {
        let report = end.report;
        let status = match report.outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::Interrupted => "interrupted",
            _ => "failed",
        };
        let metrics = report.summary.as_ref().map(|s| {
            let object: serde_json::Map<String, serde_json::Value> = s
                .metrics
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::json!(v)))
                .collect();
            serde_json::Value::Object(object).to_string()
        });
        let mut values = step_start_values(next);
        values.extend([
            end.run_id.into(),
            (end.idx as i64).into(),
            i64::from(end.attempt).into(),
            status.to_string().into(),
            report.outcome.as_str().to_string().into(),
            (report.duration.as_secs_f64() * 1000.0).into(),
            report.summary.as_ref().map(|s| s.rows_in as i64).into(),
            report.summary.as_ref().map(|s| s.rows_out as i64).into(),
            metrics.into(),
            report.error.clone().into(),
            report.log.clone().into(),
            i64::from(report.log_truncated).into(),
            end.output_bytes.map(|b| b as i64).into(),
            end.plugin_sha256.map(str::to_string).into(),
            (report.memory_peak_bytes as i64).into(),
            report
                .limits
                .and_then(|l| serde_json::to_string(&l).ok())
                .into(),
            report.fuel_consumed.map(|f| f as i64).into(),
        ]);
        let statements: &[&str] = match next {
            Some(_) => &[FINISH_STEP, START_STEP],
            None => &[FINISH_STEP],
        };
        self.journal.write(Write { statements, values }).await
    }

    /// Records how a run ended and, in the same transaction, the downstream triggers its job
    /// names for that ending (see [`crate::invoker::outbox::enqueue`]).
    pub async fn finish_run(
        &self,
        run_id: i64,
        status: &str,
        error: Option<&str>,
        failed_step: Option<&str>,
        output_dir: Option<&Path>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE runs SET status = ?2, finished_at = ?3, error = ?4, failed_step = ?5,
                 output_dir = ?6
             WHERE id = ?1",
        )
        .bind(run_id)
        .bind(status)
        .bind(now_text())
        .bind(error)
        .bind(failed_step)
        .bind(output_dir.map(|p| p.display().to_string()))
        .execute(&mut *tx)
        .await?;
        crate::invoker::outbox::enqueue(&mut tx, run_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks every run and step still `queued` or `running` as interrupted: at start-up these
    /// belong to a process that died. In the same transaction, writes the downstream triggers
    /// the job names for a run that did not succeed (`failure` and `always` targets), as
    /// [`Store::finish_run`] does for a run that ends by itself. Returns how many runs were
    /// marked.
    pub async fn interrupt_unfinished(&self, why: &str) -> Result<u64, StoreError> {
        let orphans = self.orphaned_runs().await?;
        self.interrupt_runs(&orphans, why).await
    }

    /// Marks the manual runs (`runner run`, `runner trigger`) whose process is gone as
    /// interrupted, so a killed `runner run` does not stay `running` until some `serve`
    /// starts. Scheduled and backfill runs are left for `serve`, whose recovery may retry
    /// them. Returns how many runs were marked.
    pub async fn interrupt_dead_manual_runs(&self, why: &str) -> Result<u64, StoreError> {
        let mut orphans = self.orphaned_runs().await?;
        let manual: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM runs WHERE trigger = 'manual' AND status IN ('queued', 'running')",
        )
        .fetch_all(&self.pool)
        .await?;
        orphans.retain(|id| manual.contains(id));
        self.interrupt_runs(&orphans, why).await
    }

    async fn interrupt_runs(&self, orphans: &[i64], why: &str) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = now_text();
        for &run_id in orphans {
            sqlx::query(
                "UPDATE steps SET status = 'interrupted', outcome = 'interrupted',
                     finished_at = ?2, error = ?3
                 WHERE run_id = ?1 AND status IN ('queued', 'running')",
            )
            .bind(run_id)
            .bind(&now)
            .bind(why)
            .execute(&mut *tx)
            .await?;
            let marked = sqlx::query(
                "UPDATE runs SET status = 'interrupted', finished_at = ?2, error = ?3
                 WHERE id = ?1 AND status IN ('queued', 'running')",
            )
            .bind(run_id)
            .bind(&now)
            .bind(why)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if marked == 1 {
                crate::invoker::outbox::enqueue(&mut tx, run_id).await?;
            }
        }
        tx.commit().await?;
        Ok(orphans.len() as u64)
    }

    /// Ids of the runs still `queued` or `running` whose owning process is gone (or
    /// unknown): the ones recovery may take over. Runs of a live process are left alone.
    pub async fn orphaned_runs(&self) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, owner FROM runs WHERE status IN ('queued', 'running') ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .filter(|r| !process_alive(r.get::<Option<String>, _>(1).as_deref()))
            .map(|r| r.get(0))
            .collect())
    }

    /// Lists runs, newest first, with the slots recorded as missed or skipped (which have no
    /// run: their `id` is 0 and their `error` says why and how many slots).
    pub async fn list_runs(
        &self,
        job: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, j.name, r.logical_time, r.trigger, r.status, r.queued_at, r.started_at,
                    r.finished_at, r.error, r.failed_step, r.output_dir
             FROM runs r JOIN jobs j ON j.id = r.job_id
             WHERE ?1 IS NULL OR j.name = ?1
             UNION ALL
             SELECT 0, j.name, s.logical_time, s.trigger, s.status, s.recorded_at, NULL, NULL,
                    s.reason, NULL, NULL
             FROM schedule_slots s JOIN jobs j ON j.id = s.job_id
             WHERE ?1 IS NULL OR j.name = ?1
             ORDER BY 6 DESC, 1 DESC LIMIT ?2",
        )
        .bind(job)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(run_record).collect())
    }

    /// One run with its step attempts in order.
    pub async fn run_detail(
        &self,
        run_id: i64,
    ) -> Result<(RunRecord, Vec<StepRecord>), StoreError> {
        let row = sqlx::query(
            "SELECT r.id, j.name, r.logical_time, r.trigger, r.status, r.queued_at, r.started_at,
                    r.finished_at, r.error, r.failed_step, r.output_dir
             FROM runs r JOIN jobs j ON j.id = r.job_id WHERE r.id = ?1",
        )
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NoSuchRun(run_id))?;
        let steps = sqlx::query(
            "SELECT idx, attempt, name, plugin, plugin_sha256, status, outcome, started_at,
                    finished_at, duration_ms, rows_in, rows_out, metrics, error, log,
                    log_truncated, output_dir, output_bytes, memory_peak_bytes, limits,
                    fuel_consumed
             FROM steps WHERE run_id = ?1 ORDER BY idx, attempt",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        let steps = steps
            .iter()
            .map(|r| StepRecord {
                idx: r.get(0),
                attempt: r.get(1),
                name: r.get(2),
                plugin: r.get(3),
                plugin_sha256: r.get(4),
                status: r.get(5),
                outcome: r.get(6),
                started_at: r.get(7),
                finished_at: r.get(8),
                duration_ms: r.get(9),
                rows_in: r.get(10),
                rows_out: r.get(11),
                metrics: r
                    .get::<Option<String>, _>(12)
                    .and_then(|m| serde_json::from_str(&m).ok()),
                error: r.get(13),
                log: r.get(14),
                log_truncated: r.get(15),
                output_dir: r.get(16),
                output_bytes: r.get(17),
                memory_peak_bytes: r.get(18),
                limits: r
                    .get::<Option<String>, _>(19)
                    .and_then(|m| serde_json::from_str(&m).ok()),
                fuel_consumed: r.get(20),
            })
            .collect();
        Ok((run_record(&row), steps))
    }
}

/// This process as recorded in `runs.owner`: boot id, pid, start time and PID namespace.
fn this_process() -> Option<String> {
    let ns = pid_namespace()?;
    Some(format!("{}:{ns}", process_id(std::process::id())?))
}

/// `boot id:pid:start time` of a process as this process's `/proc` shows it.
fn process_id(pid: u32) -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (start time) counted after the command name, which is in parentheses and may
    // hold spaces.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let start = after_name.split(' ').nth(19)?;
    Some(format!("{}:{pid}:{start}", boot.trim()))
}

/// The inode of this process's PID namespace (`/proc/self/ns/pid` reads `pid:[N]`).
fn pid_namespace() -> Option<String> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let text = link.to_string_lossy();
    Some(
        text.trim_start_matches("pid:[")
            .trim_end_matches(']')
            .to_string(),
    )
}

/// Whether the process recorded as `owner` still runs. Unknown owners count as gone. A
/// process of another PID namespace (a container sharing the data directory) cannot be
/// looked up from here, so it counts as alive unless the machine has rebooted since: a
/// run is never taken from a live process, at the cost of a dead one's run staying
/// `running` until a runner in its own namespace starts.
fn process_alive(owner: Option<&str>) -> bool {
    let Some(owner) = owner else { return false };
    let parts: Vec<&str> = owner.split(':').collect();
    let (Some(boot), Some(pid)) = (
        parts.first(),
        parts.get(1).and_then(|p| p.parse::<u32>().ok()),
    ) else {
        return false;
    };
    let this_boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok();
    if this_boot.as_deref().map(str::trim) != Some(*boot) {
        return false;
    }
    // Owners recorded before the namespace was part of them have three fields.
    if let Some(ns) = parts.get(3)
        && pid_namespace().as_deref() != Some(*ns)
    {
        return true;
    }
    process_id(pid).as_deref() == Some(parts[..3.min(parts.len())].join(":").as_str())
}

fn run_record(r: &sqlx::sqlite::SqliteRow) -> RunRecord {
    RunRecord {
        id: r.get(0),
        job: r.get(1),
        logical_time: r.get(2),
        trigger: r.get(3),
        status: r.get(4),
        queued_at: r.get(5),
        started_at: r.get(6),
        finished_at: r.get(7),
        error: r.get(8),
        failed_step: r.get(9),
        output_dir: r.get(10),
    }
}
