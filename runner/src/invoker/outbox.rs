//! The outbox and the audit trail in SQLite (tables from `migrations/0004_invoker.sql`).
//!
//! [`enqueue`] runs inside the transaction that records a run's end, so a run that ended
//! always has its triggers written, and a crash right after loses none. The targets come
//! from the job definition recorded when the run started, so the run is triggered as it was
//! configured. Workers claim due rows with a lease (compare-and-set on the claim columns),
//! and a lease held by a process that no longer exists is taken over at once.

use std::path::Path;

use serde::Serialize;
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::target::Target;
use crate::store::{now_text, time_text};

/// One trigger a worker holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Outbox row id.
    pub id: i64,
    /// The run.
    pub run_id: i64,
    /// The target's name.
    pub target_name: String,
    /// The target's settings (JSON).
    pub target: String,
    /// The body to send.
    pub payload: String,
    /// The idempotency key.
    pub idempotency_key: String,
    /// The W3C trace id of this trigger.
    pub trace_id: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// When the run ended and the trigger was written.
    pub created_at: String,
}

/// One attempt, as the audit keeps it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Attempt {
    /// Attempt number for this trigger, from 1.
    pub attempt: i64,
    /// When it started.
    pub started_at: String,
    /// How long it took.
    pub duration_ms: f64,
    /// `retry`, `delivered` or `failed`.
    pub outcome: String,
    /// The STS request behind the assertion.
    pub sts_request_id: Option<String>,
    /// The assertion's `sub`.
    pub jwt_sub: Option<String>,
    /// The assertion's `jti`.
    pub jwt_jti: Option<String>,
    /// The assertion's `exp`.
    pub jwt_exp: Option<String>,
    /// The correlation id of the Entra exchange.
    pub entra_correlation_id: Option<String>,
    /// Entra's trace id.
    pub entra_trace_id: Option<String>,
    /// The function's HTTP status, if it answered.
    pub http_status: Option<i64>,
    /// The function host's `x-ms-request-id`.
    pub azure_request_id: Option<String>,
    /// The function's `x-ms-invocation-id`.
    pub azure_invocation_id: Option<String>,
    /// The `traceparent` sent.
    pub traceparent: String,
    /// The failure code, if it failed.
    pub error_code: Option<String>,
    /// What the failure means.
    pub error: Option<String>,
}

/// Writes the triggers of the run `run_id`, which has just ended, on `tx`.
pub async fn enqueue(tx: &mut SqliteConnection, run_id: i64) -> Result<u64, sqlx::Error> {
    let Some(run) = sqlx::query(
        "SELECT j.name, j.definition, r.status, r.logical_time, r.error, r.output_dir,
                r.finished_at
         FROM runs r JOIN jobs j ON j.id = r.job_id WHERE r.id = ?1",
    )
    .bind(run_id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(0);
    };
    let definition: serde_json::Value =
        serde_json::from_str(run.get::<&str, _>(1)).unwrap_or_default();
    let targets: Vec<Target> = definition
        .get("target")
        .cloned()
        .and_then(|t| serde_json::from_value(t).ok())
        .unwrap_or_default();
    let status: String = run.get(2);
    if !targets.iter().any(|t| t.when.matches(&status)) {
        return Ok(0);
    }

    let steps = sqlx::query(
        "SELECT name, outcome, rows_in, rows_out, metrics, duration_ms, error
         FROM steps WHERE run_id = ?1 ORDER BY idx, attempt",
    )
    .bind(run_id)
    .fetch_all(&mut *tx)
    .await?;
    let steps: Vec<serde_json::Value> = steps
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.get::<String, _>(0),
                "outcome": s.get::<Option<String>, _>(1),
                "rows_in": s.get::<Option<i64>, _>(2),
                "rows_out": s.get::<Option<i64>, _>(3),
                "metrics": s.get::<Option<String>, _>(4)
                    .and_then(|m| serde_json::from_str::<serde_json::Value>(&m).ok()),
                "duration_ms": s.get::<Option<f64>, _>(5),
                "error": s.get::<Option<String>, _>(6),
            })
        })
        .collect();
    let output_dir: Option<String> = run.get(5);
    let report = output_dir
        .as_deref()
        .map(|d| Path::new(d).join("report.md"))
        .filter(|p| p.is_file())
        .map(|p| p.display().to_string());
    let payload = serde_json::json!({
        "job": run.get::<String, _>(0),
        "run_id": run_id,
        "logical_time": run.get::<String, _>(3),
        "status": status,
        "error": run.get::<Option<String>, _>(4),
        "finished_at": run.get::<Option<String>, _>(6),
        "steps": steps,
        "report": report,
        "output_dir": output_dir,
    })
    .to_string();

    let now = now_text();
    let mut written = 0;
    for (idx, target) in targets.iter().enumerate() {
        if !target.when.matches(&status) {
            continue;
        }
        let key = format!("run-{run_id}-target-{}-{}", idx + 1, uuid::Uuid::new_v4());
        written += sqlx::query(
            "INSERT INTO invoker_outbox (run_id, target_idx, target_name, target, payload,
                 idempotency_key, trace_id, state, created_at, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8)
             ON CONFLICT (run_id, target_idx) DO NOTHING",
        )
        .bind(run_id)
        .bind(idx as i64)
        .bind(target.display_name(idx))
        .bind(serde_json::to_string(target).unwrap_or_default())
        .bind(&payload)
        .bind(key)
        .bind(uuid::Uuid::new_v4().simple().to_string())
        .bind(&now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    Ok(written)
}

/// Claims up to `limit` due triggers for this process, for `lease`.
pub async fn claim(
    pool: &SqlitePool,
    limit: i64,
    lease: chrono::Duration,
    run_id: Option<i64>,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let now = now_text();
    let rows = sqlx::query(
        "SELECT id, run_id, target_name, target, payload, idempotency_key, trace_id, attempts,
                created_at, claimed_until, claimed_by
         FROM invoker_outbox
         WHERE state = 'pending' AND next_attempt_at <= ?1 AND (?2 IS NULL OR run_id = ?2)
         ORDER BY next_attempt_at, id LIMIT ?3",
    )
    .bind(&now)
    .bind(run_id)
    .bind(limit * 4)
    .fetch_all(pool)
    .await?;
    let me = std::process::id() as i64;
    let until = time_text(chrono::Utc::now() + lease);
    let mut claimed = Vec::new();
    // One write transaction for the whole batch: a commit per row would cost more than the
    // deliveries themselves.
    let mut tx = pool.begin().await?;
    for r in rows {
        if claimed.len() as i64 >= limit {
            break;
        }
        let held_until: Option<String> = r.get(9);
        let holder: Option<i64> = r.get(10);
        let free = match (&held_until, holder) {
            (None, _) => true,
            (Some(t), _) if *t <= now => true,
            (Some(_), Some(pid)) => pid != me && !process_alive(pid),
            (Some(_), None) => true,
        };
        if !free {
            continue;
        }
        let id: i64 = r.get(0);
        let taken = sqlx::query(
            "UPDATE invoker_outbox SET claimed_until = ?2, claimed_by = ?3
             WHERE id = ?1 AND state = 'pending' AND claimed_until IS ?4 AND claimed_by IS ?5",
        )
        .bind(id)
        .bind(&until)
        .bind(me)
        .bind(&held_until)
        .bind(holder)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if taken == 1 {
            claimed.push(Claimed {
                id,
                run_id: r.get(1),
                target_name: r.get(2),
                target: r.get(3),
                payload: r.get(4),
                idempotency_key: r.get(5),
                trace_id: r.get(6),
                attempts: r.get(7),
                created_at: r.get(8),
            });
        }
    }
    tx.commit().await?;
    Ok(claimed)
}

/// Whether a process with this id runs on this host (the database is local to the host).
fn process_alive(pid: i64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// How a trigger stands after an attempt.
#[derive(Debug, Clone)]
pub enum Settle {
    /// Delivered: done.
    Delivered,
    /// Try again at this time.
    RetryAt(chrono::DateTime<chrono::Utc>),
    /// Given up: the code and its meaning.
    Failed(String, String),
}

/// Records `attempts` of the claimed trigger and how it stands, in one transaction.
pub async fn record(
    pool: &SqlitePool,
    claimed: &Claimed,
    attempts: &[Attempt],
    settle: &Settle,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for a in attempts {
        sqlx::query(
            "INSERT INTO invoker_attempts (outbox_id, run_id, target_name, attempt, started_at,
                 duration_ms, outcome, sts_request_id, jwt_sub, jwt_jti, jwt_exp,
                 entra_correlation_id, entra_trace_id, http_status, azure_request_id,
                 azure_invocation_id, traceparent, error_code, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                 ?17, ?18, ?19)",
        )
        .bind(claimed.id)
        .bind(claimed.run_id)
        .bind(&claimed.target_name)
        .bind(a.attempt)
        .bind(&a.started_at)
        .bind(a.duration_ms)
        .bind(&a.outcome)
        .bind(&a.sts_request_id)
        .bind(&a.jwt_sub)
        .bind(&a.jwt_jti)
        .bind(&a.jwt_exp)
        .bind(&a.entra_correlation_id)
        .bind(&a.entra_trace_id)
        .bind(a.http_status)
        .bind(&a.azure_request_id)
        .bind(&a.azure_invocation_id)
        .bind(&a.traceparent)
        .bind(&a.error_code)
        .bind(&a.error)
        .execute(&mut *tx)
        .await?;
    }
    let count = attempts.len() as i64;
    let now = now_text();
    let (state, next, code, error) = match settle {
        Settle::Delivered => ("delivered", now.clone(), None, None),
        Settle::RetryAt(at) => ("pending", time_text(*at), None, None),
        Settle::Failed(code, meaning) => (
            "failed",
            now.clone(),
            Some(code.clone()),
            Some(meaning.clone()),
        ),
    };
    sqlx::query(
        "UPDATE invoker_outbox SET state = ?2, attempts = attempts + ?3, next_attempt_at = ?4,
             claimed_until = NULL, claimed_by = NULL, error_code = ?5, error = ?6,
             finished_at = CASE WHEN ?2 = 'pending' THEN NULL ELSE ?7 END
         WHERE id = ?1",
    )
    .bind(claimed.id)
    .bind(state)
    .bind(count)
    .bind(next)
    .bind(code)
    .bind(error)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Pending triggers (of one run, or all) and the earliest time one is due.
pub async fn pending(
    pool: &SqlitePool,
    run_id: Option<i64>,
) -> Result<(i64, Option<String>), sqlx::Error> {
    let row = sqlx::query(
        "SELECT count(*), min(max(next_attempt_at, coalesce(claimed_until, '')))
         FROM invoker_outbox WHERE state = 'pending' AND (?1 IS NULL OR run_id = ?1)",
    )
    .bind(run_id)
    .fetch_one(pool)
    .await?;
    Ok((row.get(0), row.get(1)))
}
