//! The audit trail as `runner show` presents it: each trigger of a run with every attempt,
//! joining the AWS side (STS request id, the JWT's `sub`, `jti`, expiry) to the Azure side
//! (Entra's correlation and trace ids, the function's request and invocation ids).

use serde::Serialize;
use sqlx::{Row, SqlitePool};

use super::outbox::Attempt;
use crate::store::Store;

/// A trigger and its attempts, for `runner show`.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// The target's name.
    pub target: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// The idempotency key sent.
    pub idempotency_key: String,
    /// The trace id of every attempt's `traceparent`.
    pub trace_id: String,
    /// When the last attempt settled it.
    pub finished_at: Option<String>,
    /// For a failed trigger: the code.
    pub error_code: Option<String>,
    /// For a failed trigger: what it means.
    pub error: Option<String>,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
}

/// The triggers of a run and their attempts.
pub async fn deliveries(store: &Store, run_id: i64) -> Result<Vec<Delivery>, sqlx::Error> {
    from_pool(store.pool(), run_id).await
}

/// The lines `runner show` prints for a run's triggers.
pub fn show_lines(deliveries: &[Delivery]) -> Vec<String> {
    let mut lines = Vec::new();
    for d in deliveries {
        lines.push(String::new());
        lines.push(format!("trigger `{}`: {}", d.target, d.state));
        lines.push(format!("  idempotency key: {}", d.idempotency_key));
        if let (Some(code), Some(error)) = (&d.error_code, &d.error) {
            lines.push(format!("  error:   {code}: {error}"));
        }
        for a in &d.attempts {
            lines.push(format!(
                "  attempt {} {} {} {:.1} ms {}",
                a.attempt,
                a.outcome,
                a.http_status
                    .map(|s| format!("HTTP {s}"))
                    .unwrap_or("-".into()),
                a.duration_ms,
                a.started_at
            ));
            let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
            lines.push(format!(
                "    aws:   sts request {}, sub {}, jti {}, exp {}",
                opt(&a.sts_request_id),
                opt(&a.jwt_sub),
                opt(&a.jwt_jti),
                opt(&a.jwt_exp)
            ));
            lines.push(format!(
                "    entra: correlation {}, trace {}",
                opt(&a.entra_correlation_id),
                opt(&a.entra_trace_id)
            ));
            lines.push(format!(
                "    azure: request {}, invocation {}, traceparent {}",
                opt(&a.azure_request_id),
                opt(&a.azure_invocation_id),
                a.traceparent
            ));
            if let Some(code) = &a.error_code {
                lines.push(format!(
                    "    error: {code}: {}",
                    a.error.as_deref().unwrap_or("")
                ));
            }
        }
    }
    lines
}

/// The triggers of a run with their attempts, for `runner show`.
async fn from_pool(pool: &SqlitePool, run_id: i64) -> Result<Vec<Delivery>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, target_name, state, idempotency_key, trace_id, finished_at, error_code, error
         FROM invoker_outbox WHERE run_id = ?1 ORDER BY target_idx",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let attempts = sqlx::query(
            "SELECT attempt, started_at, duration_ms, outcome, sts_request_id, jwt_sub, jwt_jti,
                    jwt_exp, entra_correlation_id, entra_trace_id, http_status,
                    azure_request_id, azure_invocation_id, traceparent, error_code, error
             FROM invoker_attempts WHERE outbox_id = ?1 ORDER BY id",
        )
        .bind(r.get::<i64, _>(0))
        .fetch_all(pool)
        .await?
        .iter()
        .map(|a| Attempt {
            attempt: a.get(0),
            started_at: a.get(1),
            duration_ms: a.get(2),
            outcome: a.get(3),
            sts_request_id: a.get(4),
            jwt_sub: a.get(5),
            jwt_jti: a.get(6),
            jwt_exp: a.get(7),
            entra_correlation_id: a.get(8),
            entra_trace_id: a.get(9),
            http_status: a.get(10),
            azure_request_id: a.get(11),
            azure_invocation_id: a.get(12),
            traceparent: a.get(13),
            error_code: a.get(14),
            error: a.get(15),
        })
        .collect();
        out.push(Delivery {
            target: r.get(1),
            state: r.get(2),
            idempotency_key: r.get(3),
            trace_id: r.get(4),
            finished_at: r.get(5),
            error_code: r.get(6),
            error: r.get(7),
            attempts,
        });
    }
    Ok(out)
}
