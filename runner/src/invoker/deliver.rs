//! One delivery attempt: token, call, classification, and the audit rows it leaves.
//!
//! A 401 from the function drops the cached token and retries once at once with a fresh
//! one (two audit rows); anything else becomes a [`Settle`] decision: delivered, retry at a
//! time (backoff, or the function's `Retry-After`), or failed with its code and meaning.

use std::time::{Duration, Instant};

use chrono::Utc;
use tracing::{info, warn};

use super::Invoker;
use super::failure::{Failure, Retry, function_status, retry_after};
use super::outbox::{Attempt, Claimed, Settle};
use super::target::{Target, check_url, loopback_guard};
use super::token::{Provenance, without_url};
use crate::store::now_text;

/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Makes one attempt (two after a 401) and decides how the trigger stands.
pub async fn attempt(invoker: &Invoker, claimed: &Claimed) -> (Vec<Attempt>, Settle) {
    let target: Target = match serde_json::from_str(&claimed.target) {
        Ok(t) => t,
        Err(e) => {
            let failure = Failure::permanent("bad-target", format!("unreadable target: {e}"));
            let record = audit(claimed, 1, Instant::now(), &Provenance::default(), &failure);
            return (vec![record], Settle::Failed(failure.code, failure.meaning));
        }
    };

    let mut records = Vec::new();
    let mut refreshed = false;
    loop {
        let number = claimed.attempts + records.len() as i64 + 1;
        let (record, result) = call_once(invoker, claimed, &target, number).await;
        let generation = record.1;
        let record = record.0;
        log(claimed, &record);
        records.push(record);
        match result {
            Ok(()) => return (records, Settle::Delivered),
            Err(failure) if failure.code == "HTTP 401" && !refreshed => {
                refreshed = true;
                if let Some(generation) = generation {
                    invoker.tokens.invalidate(&target, generation).await;
                }
                if let Some(last) = records.last_mut() {
                    last.outcome = "retry".to_string();
                    last.error = Some(
                        "the function refused the access token; refreshing it once".to_string(),
                    );
                }
            }
            Err(failure) => {
                let settle = decide(claimed, &target, number, &failure);
                if let (Settle::Failed(..), Some(last)) = (&settle, records.last_mut()) {
                    last.outcome = "failed".to_string();
                }
                if let (Settle::Failed(code, meaning), Some(last)) = (&settle, records.last_mut())
                    && code != &failure.code
                {
                    last.error = Some(meaning.clone());
                }
                return (records, settle);
            }
        }
    }
}

/// Retry or give up, and when. Every retryable failure waits the same backoff (or the
/// function's `Retry-After`) and stops when the next attempt would come after the trigger's
/// `max_age_secs`; a failure retried only [`Retry::Within`] a window stops at the window's
/// end if that comes first, and is then recorded under its own code.
fn decide(claimed: &Claimed, target: &Target, number: i64, failure: &Failure) -> Settle {
    if failure.retry == Retry::Never {
        return Settle::Failed(failure.code.clone(), failure.meaning.clone());
    }
    let delay = match failure.retry {
        Retry::After(wait) => wait,
        _ => backoff(target.retry_initial_ms, number),
    };
    let next = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
    let created = chrono::DateTime::parse_from_rfc3339(&claimed.created_at)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now());
    if let Retry::Within(window) = failure.retry
        && next > created + chrono::Duration::from_std(window).unwrap_or_default()
        && window.as_secs() < target.max_age_secs
    {
        return Settle::Failed(
            failure.code.clone(),
            format!(
                "{}; still refused {} min after the run ended, longer than a new credential \
                 takes to propagate",
                failure.meaning,
                window.as_secs() / 60
            ),
        );
    }
    if next > created + chrono::Duration::seconds(target.max_age_secs as i64) {
        return Settle::Failed(
            "max-age".to_string(),
            format!(
                "gave up after {number} attempts and {} s (max_age_secs); last: {failure}",
                target.max_age_secs
            ),
        );
    }
    Settle::RetryAt(next)
}

/// `initial * 2^(n-1)`, at most a minute, with up to a fifth added at random so many
/// triggers failing together do not retry together.
fn backoff(initial_ms: u64, number: i64) -> Duration {
    let exp = (number - 1).clamp(0, 20) as u32;
    let base = Duration::from_millis(initial_ms.saturating_mul(1 << exp)).min(MAX_BACKOFF);
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * base.as_millis() as u64 / 1275;
    base + Duration::from_millis(jitter)
}

type Record = (Attempt, Option<u64>);

/// One token fetch and one function call.
async fn call_once(
    invoker: &Invoker,
    claimed: &Claimed,
    target: &Target,
    number: i64,
) -> (Record, Result<(), Failure>) {
    let started = Instant::now();
    let traceparent = traceparent(&claimed.trace_id);
    let fail = |provenance: &Provenance, failure: Failure, traceparent: &str| {
        let mut record = audit(claimed, number, started, provenance, &failure);
        record.traceparent = traceparent.to_string();
        ((record, None), Err(failure))
    };

    if let Err(message) =
        check_url(&target.function_url).and_then(|()| loopback_guard(&target.function_url))
    {
        return fail(
            &Provenance::default(),
            Failure::permanent("function-url", message),
            &traceparent,
        );
    }
    let token = match invoker.tokens.get(target).await {
        Ok(token) => token,
        Err(e) => return fail(&e.provenance, e.failure, &traceparent),
    };

    let mut request = invoker
        .http
        .post(&target.function_url)
        .bearer_auth(token.token.expose())
        .header("traceparent", &traceparent)
        .header(target.idempotency_header.as_str(), &claimed.idempotency_key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .timeout(Duration::from_secs(target.timeout_secs));
    for (name, value) in &target.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let outcome = request.body(claimed.payload.clone()).send().await;
    let response = match outcome {
        Ok(r) => r,
        Err(e) => {
            let failure = Failure::transient(
                if e.is_timeout() {
                    "timeout"
                } else {
                    "connection"
                },
                format!("calling the function: {}", without_url(&e)),
            );
            let mut r = fail(&token.provenance, failure, &traceparent);
            r.0.1 = Some(token.generation);
            return r;
        }
    };
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let azure_request_id = header("x-ms-request-id");
    let invocation_id = header("x-ms-invocation-id");
    let wait = retry_after(header("retry-after").as_deref());
    // Read the answer to the end so the connection can be reused; its content is not kept.
    let body = response.bytes().await;

    let result = match (status, body) {
        (200..=299, Ok(_)) => Ok(()),
        (200..=299, Err(e)) => Err(Failure::transient(
            "connection",
            format!("the function's answer broke off: {}", without_url(&e)),
        )),
        (status, _) => Err(function_status(status, wait)),
    };
    let mut record = match &result {
        Ok(()) => audit_ok(claimed, number, started, &token.provenance),
        Err(failure) => audit(claimed, number, started, &token.provenance, failure),
    };
    record.traceparent = traceparent;
    record.http_status = Some(i64::from(status));
    record.azure_request_id = azure_request_id;
    record.azure_invocation_id = invocation_id;
    ((record, Some(token.generation)), result)
}

/// `00-<trace id>-<new span id>-01`: one trace per trigger, one span per attempt.
fn traceparent(trace_id: &str) -> String {
    let span = uuid::Uuid::new_v4().simple().to_string();
    format!("00-{trace_id}-{}-01", &span[..16])
}

fn audit_ok(claimed: &Claimed, number: i64, started: Instant, p: &Provenance) -> Attempt {
    let mut a = base(claimed, number, started, p);
    a.outcome = "delivered".to_string();
    a
}

fn audit(
    claimed: &Claimed,
    number: i64,
    started: Instant,
    p: &Provenance,
    failure: &Failure,
) -> Attempt {
    let mut a = base(claimed, number, started, p);
    a.outcome = "retry".to_string();
    a.error_code = Some(failure.code.clone());
    a.error = Some(failure.meaning.clone());
    a
}

fn base(_claimed: &Claimed, number: i64, started: Instant, p: &Provenance) -> Attempt {
    let elapsed = started.elapsed();
    Attempt {
        attempt: number,
        started_at: crate::store::time_text(
            Utc::now() - chrono::Duration::from_std(elapsed).unwrap_or_default(),
        ),
        duration_ms: elapsed.as_secs_f64() * 1000.0,
        sts_request_id: p.sts_request_id.clone(),
        jwt_sub: p.jwt.sub.clone(),
        jwt_jti: p.jwt.jti.clone(),
        jwt_exp: p.jwt.exp.clone(),
        entra_correlation_id: p.entra_correlation_id.clone(),
        entra_trace_id: p.entra_trace_id.clone(),
        ..Attempt::default()
    }
}

fn log(claimed: &Claimed, a: &Attempt) {
    if a.outcome == "delivered" {
        info!(
            run_id = claimed.run_id,
            target = %claimed.target_name,
            attempt = a.attempt,
            http_status = a.http_status,
            traceparent = %a.traceparent,
            azure_request_id = a.azure_request_id.as_deref(),
            sts_request_id = a.sts_request_id.as_deref(),
            jwt_jti = a.jwt_jti.as_deref(),
            duration_ms = a.duration_ms,
            "trigger delivered"
        );
    } else {
        warn!(
            run_id = claimed.run_id,
            target = %claimed.target_name,
            attempt = a.attempt,
            http_status = a.http_status,
            code = a.error_code.as_deref(),
            error = a.error.as_deref(),
            traceparent = %a.traceparent,
            at = %now_text(),
            "trigger attempt failed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_stops_at_a_minute() {
        let first = backoff(500, 1);
        assert!(first >= Duration::from_millis(500) && first <= Duration::from_millis(600));
        let third = backoff(500, 3);
        assert!(third >= Duration::from_millis(2000) && third <= Duration::from_millis(2400));
        assert!(backoff(500, 30) <= Duration::from_secs(72));
    }

    fn claimed(age: chrono::Duration) -> Claimed {
        Claimed {
            id: 1,
            run_id: 1,
            target_name: "downstream".to_string(),
            target: String::new(),
            payload: String::new(),
            idempotency_key: "key".to_string(),
            trace_id: "0af7651916cd43dd8448eb211c80319c".to_string(),
            attempts: 0,
            created_at: crate::store::time_text(Utc::now() - age),
        }
    }

    fn target(max_age_secs: u64) -> Target {
        toml::from_str(&format!(
            "function_url = \"https://f.example/api/f\"\ntenant_id = \"t\"\n\
             client_id = \"c\"\nresource = \"api://r\"\nsts_region = \"eu-west-1\"\n\
             max_age_secs = {max_age_secs}\n"
        ))
        .expect("target parses")
    }

    #[test]
    fn a_propagating_credential_is_retried_with_backoff_well_past_four_attempts() {
        let refused = crate::invoker::failure::entra_error(Some(70021), 400, "");
        let young = claimed(chrono::Duration::minutes(2));
        // Four attempts used to be the end, a few seconds after the run.
        for number in [1, 4, 8] {
            let settle = decide(&young, &target(86_400), number, &refused);
            assert!(matches!(settle, Settle::RetryAt(_)), "{number}: {settle:?}");
        }
    }

    #[test]
    fn a_credential_still_refused_after_the_window_is_recorded_under_its_own_code() {
        let refused = crate::invoker::failure::entra_error(Some(70021), 400, "");
        let old = claimed(chrono::Duration::minutes(16));
        match decide(&old, &target(86_400), 12, &refused) {
            Settle::Failed(code, meaning) => {
                assert_eq!(code, "AADSTS70021");
                assert!(meaning.contains("still refused 15 min after"), "{meaning}");
            }
            other => panic!("{other:?}"),
        }
        // A shorter max age ends it first, as for any retryable failure.
        let settle = decide(
            &claimed(chrono::Duration::minutes(5)),
            &target(60),
            9,
            &refused,
        );
        assert!(matches!(settle, Settle::Failed(code, _) if code == "max-age"));
    }

    #[test]
    fn an_unreachable_issuer_is_retried_up_to_the_max_age_like_an_outage() {
        let unreachable = crate::invoker::failure::entra_error(Some(50166), 401, "");
        let day_old = claimed(chrono::Duration::hours(20));
        let settle = decide(&day_old, &target(86_400), 30, &unreachable);
        assert!(matches!(settle, Settle::RetryAt(_)), "{settle:?}");
        let past = claimed(chrono::Duration::hours(25));
        let settle = decide(&past, &target(86_400), 31, &unreachable);
        assert!(matches!(settle, Settle::Failed(code, _) if code == "max-age"));
    }

    #[test]
    fn a_traceparent_keeps_the_trace_and_changes_the_span() {
        let a = traceparent("0af7651916cd43dd8448eb211c80319c");
        let b = traceparent("0af7651916cd43dd8448eb211c80319c");
        assert!(a.starts_with("00-0af7651916cd43dd8448eb211c80319c-") && a.ends_with("-01"));
        assert_eq!(a.len(), 55);
        assert_ne!(a, b);
    }
}
