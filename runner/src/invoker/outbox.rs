//! The outbox and the audit trail in SQLite (tables from `migrations/0004_invoker.sql`).
//!
//! [`enqueue`] runs inside the transaction that records a run's end, so a run that ended
//! always has its triggers written, and a crash right after loses none. The targets come
//! from the job definition recorded when the run started, so the run is triggered as it was
//! configured. Workers claim due rows with a lease, in one statement for the whole batch,
//! and a lease held by a process that no longer exists is taken over at once. Outcomes are
//! recorded for many triggers at a time ([`record`]): every statement is a round trip to
//! sqlx's worker thread, so the number of statements, not only of transactions, sets the
//! pace.

use std::path::Path;

use serde::Serialize;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

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

/// A row of `RETURNING id, run_id, target_name, target, payload, idempotency_key, trace_id,
/// attempts, created_at`.
fn claimed_row(r: &sqlx::sqlite::SqliteRow) -> Claimed {
    Claimed {
        id: r.get(0),
        run_id: r.get(1),
        target_name: r.get(2),
        target: r.get(3),
        payload: r.get(4),
        idempotency_key: r.get(5),
        trace_id: r.get(6),
        attempts: r.get(7),
        created_at: r.get(8),
    }
}

/// Claims up to `limit` due triggers for this process, for `lease`.
///
/// Rows nobody holds (or whose lease ran out) are claimed by one `UPDATE ... RETURNING`:
/// each statement is a round trip to sqlx's worker thread, and a statement per row used to
/// cost more than the deliveries. Only when that leaves room are rows still leased to
/// another process looked at, and those whose holder is gone taken over one by one, each
/// with a compare-and-set on the claim columns.
pub async fn claim(
    pool: &SqlitePool,
    limit: i64,
    lease: chrono::Duration,
    run_id: Option<i64>,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let now = now_text();
    let me = std::process::id() as i64;
    let until = time_text(chrono::Utc::now() + lease);
    let mut conn = pool.acquire().await?;

    let mut claimed: Vec<Claimed> = sqlx::query(
        "UPDATE invoker_outbox SET claimed_until = ?2, claimed_by = ?3
         WHERE id IN (
             SELECT id FROM invoker_outbox
             WHERE state = 'pending' AND next_attempt_at <= ?1 AND (?4 IS NULL OR run_id = ?4)
                 AND (claimed_until IS NULL OR claimed_until <= ?1 OR claimed_by IS NULL)
             ORDER BY next_attempt_at, id LIMIT ?5)
         RETURNING id, run_id, target_name, target, payload, idempotency_key, trace_id,
             attempts, created_at",
    )
    .bind(&now)
    .bind(&until)
    .bind(me)
    .bind(run_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(claimed_row)
    .collect();

    let room = limit - claimed.len() as i64;
    if room > 0 {
        let held = sqlx::query(
            "SELECT id, claimed_until, claimed_by FROM invoker_outbox
             WHERE state = 'pending' AND next_attempt_at <= ?1 AND (?2 IS NULL OR run_id = ?2)
                 AND claimed_until > ?1 AND claimed_by IS NOT NULL AND claimed_by != ?3
             ORDER BY next_attempt_at, id LIMIT ?4",
        )
        .bind(&now)
        .bind(run_id)
        .bind(me)
        .bind(room * 4)
        .fetch_all(&mut *conn)
        .await?;
        for r in held {
            if claimed.len() as i64 >= limit {
                break;
            }
            let holder: i64 = r.get(2);
            if process_alive(holder) {
                continue;
            }
            let taken = sqlx::query(
                "UPDATE invoker_outbox SET claimed_until = ?2, claimed_by = ?3
                 WHERE id = ?1 AND state = 'pending' AND claimed_until IS ?4 AND claimed_by IS ?5
                 RETURNING id, run_id, target_name, target, payload, idempotency_key,
                     trace_id, attempts, created_at",
            )
            .bind(r.get::<i64, _>(0))
            .bind(&until)
            .bind(me)
            .bind(r.get::<Option<String>, _>(1))
            .bind(holder)
            .fetch_optional(&mut *conn)
            .await?;
            claimed.extend(taken.as_ref().map(claimed_row));
        }
    }
    // `RETURNING` gives no order; send the oldest first, as the claim chose them.
    claimed.sort_by_key(|c| c.id);
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

/// A claimed trigger after its attempt: what was tried and how it stands.
#[derive(Debug, Clone)]
pub struct Settled {
    /// The trigger.
    pub claimed: Claimed,
    /// The attempts made (two after a refused token).
    pub attempts: Vec<Attempt>,
    /// How it stands now.
    pub settle: Settle,
}

/// Rows per multi-row statement: 19 parameters an audit row keeps this far under SQLite's
/// 32,766 bound parameters.
const ROWS_PER_STATEMENT: usize = 500;

/// Records the attempts of several settled triggers and how each stands, in one
/// transaction of few statements (one multi-row `INSERT` of the audit rows and one
/// multi-row `UPDATE` of the outbox per 500 rows), whatever their number.
///
/// Nothing here decides exactly-once delivery: a trigger sent but not yet recorded when the
/// process dies is sent again with the same idempotency key, which the function treats as
/// already done. Recording many at once only widens that window a little.
pub async fn record(pool: &SqlitePool, settled: &[Settled]) -> Result<(), sqlx::Error> {
    if settled.is_empty() {
        return Ok(());
    }
    let now = now_text();
    let mut tx = pool.begin().await?;

    let audit: Vec<(&Claimed, &Attempt)> = settled
        .iter()
        .flat_map(|s| s.attempts.iter().map(move |a| (&s.claimed, a)))
        .collect();
    for rows in audit.chunks(ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO invoker_attempts (outbox_id, run_id, target_name, attempt, started_at,
                 duration_ms, outcome, sts_request_id, jwt_sub, jwt_jti, jwt_exp,
                 entra_correlation_id, entra_trace_id, http_status, azure_request_id,
                 azure_invocation_id, traceparent, error_code, error) ",
        );
        insert.push_values(rows, |mut row, (c, a)| {
            row.push_bind(c.id)
                .push_bind(c.run_id)
                .push_bind(c.target_name.clone())
                .push_bind(a.attempt)
                .push_bind(a.started_at.clone())
                .push_bind(a.duration_ms)
                .push_bind(a.outcome.clone())
                .push_bind(a.sts_request_id.clone())
                .push_bind(a.jwt_sub.clone())
                .push_bind(a.jwt_jti.clone())
                .push_bind(a.jwt_exp.clone())
                .push_bind(a.entra_correlation_id.clone())
                .push_bind(a.entra_trace_id.clone())
                .push_bind(a.http_status)
                .push_bind(a.azure_request_id.clone())
                .push_bind(a.azure_invocation_id.clone())
                .push_bind(a.traceparent.clone())
                .push_bind(a.error_code.clone())
                .push_bind(a.error.clone());
        });
        // Each batch size is another SQL text: not worth a slot in the statement cache.
        insert.build().persistent(false).execute(&mut *tx).await?;
    }

    for rows in settled.chunks(ROWS_PER_STATEMENT) {
        let mut update = QueryBuilder::<Sqlite>::new(
            "WITH s (id, state, tried, next_attempt_at, error_code, error) AS (",
        );
        update.push_values(rows, |mut row, s| {
            let (state, next, code, error) = match &s.settle {
                Settle::Delivered => ("delivered", now.clone(), None, None),
                Settle::RetryAt(at) => ("pending", time_text(*at), None, None),
                Settle::Failed(code, meaning) => (
                    "failed",
                    now.clone(),
                    Some(code.clone()),
                    Some(meaning.clone()),
                ),
            };
            row.push_bind(s.claimed.id)
                .push_bind(state)
                .push_bind(s.attempts.len() as i64)
                .push_bind(next)
                .push_bind(code)
                .push_bind(error);
        });
        update
            .push(
                ")
             UPDATE invoker_outbox SET state = s.state, attempts = attempts + s.tried,
                 next_attempt_at = s.next_attempt_at, claimed_until = NULL, claimed_by = NULL,
                 error_code = s.error_code, error = s.error,
                 finished_at = CASE WHEN s.state = 'pending' THEN NULL ELSE ",
            )
            .push_bind(now.clone())
            .push(" END FROM s WHERE invoker_outbox.id = s.id");
        update.build().persistent(false).execute(&mut *tx).await?;
    }
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
