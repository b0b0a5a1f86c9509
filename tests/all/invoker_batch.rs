//! The delivery worker records a batch's outcomes together (one transaction, multi-row
//! statements): each trigger's outbox row and audit rows must still get its own outcome,
//! and two workers claiming at once must never both take one trigger.

use std::collections::HashMap;
use std::sync::Arc;

use runner::invoker::Invoker;
use runner::invoker::outbox;
use runner::store::Store;
use sqlx::Row;
use standins::{CallOutcome, Fault};

use crate::cloud::Cloud;
use crate::invoker_tokens::{add_ended_runs, aws, standin_target};

#[tokio::test(flavor = "multi_thread")]
async fn delivered_retried_and_failed_triggers_of_one_pass_each_get_their_own_record() {
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("runner.db")).await.unwrap();
    // A minute's backoff: a trigger answered 500 stays pending through this one pass.
    let good = standin_target(
        &cloud,
        &[("retry_initial_ms = 100", "retry_initial_ms = 60000")],
    );
    let good_runs = add_ended_runs(&store, "good", &good, 30).await;
    // Plain http to a host that is not loopback: refused before any call, for good.
    let url = cloud.function.url().to_string();
    let broken = standin_target(&cloud, &[(url.as_str(), "http://downstream.example/api/f")]);
    let broken_runs = add_ended_runs(&store, "broken", &broken, 5).await;
    cloud.function.inject(Fault::ServerError, 4);
    let invoker = Invoker::with_aws(store.clone(), aws(&cloud).await).unwrap();

    let sent = invoker.deliver_due(None).await.unwrap();

    assert_eq!(sent.attempted, 35);
    assert_eq!(sent.failed, 5);
    let calls: HashMap<String, CallOutcome> = cloud
        .function
        .all_calls()
        .into_iter()
        .map(|c| (c.idempotency_key.unwrap(), c.outcome))
        .collect();
    assert_eq!(
        calls.len(),
        30,
        "one call per good trigger, none for the broken ones"
    );

    let (mut delivered, mut retried) = (0, 0);
    for run in good_runs {
        let d = &runner::invoker::deliveries(&store, run).await.unwrap()[0];
        assert_eq!(d.attempts.len(), 1, "run {run}: {d:?}");
        let a = &d.attempts[0];
        match calls[&d.idempotency_key] {
            CallOutcome::Delivered => {
                delivered += 1;
                assert_eq!(d.state, "delivered", "run {run}");
                assert_eq!(
                    (a.outcome.as_str(), a.http_status),
                    ("delivered", Some(200))
                );
                assert!(d.finished_at.is_some());
            }
            CallOutcome::Injected(Fault::ServerError) => {
                retried += 1;
                assert_eq!(d.state, "pending", "run {run}");
                assert_eq!((a.outcome.as_str(), a.http_status), ("retry", Some(500)));
                assert_eq!(a.error_code.as_deref(), Some("HTTP 500"));
                assert_eq!(
                    (d.finished_at.as_deref(), d.error_code.as_deref()),
                    (None, None)
                );
            }
            other => panic!("run {run}: unexpected call {other:?}"),
        }
    }
    assert_eq!((delivered, retried), (26, 4));
    for run in broken_runs {
        let d = &runner::invoker::deliveries(&store, run).await.unwrap()[0];
        assert_eq!(d.state, "failed", "run {run}");
        assert_eq!(d.error_code.as_deref(), Some("function-url"));
        assert_eq!(d.attempts.len(), 1);
        assert_eq!(d.attempts[0].outcome, "failed");
        assert_eq!(d.attempts[0].http_status, None);
    }

    // The outbox rows: counts added, claims released, retries a backoff away.
    let rows = sqlx::query(
        "SELECT state, attempts, claimed_by, claimed_until, created_at, next_attempt_at,
                finished_at
         FROM invoker_outbox ORDER BY id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), 35);
    let time = |text: String| chrono::DateTime::parse_from_rfc3339(&text).unwrap();
    for r in &rows {
        assert_eq!(r.get::<i64, _>(1), 1);
        assert_eq!(r.get::<Option<i64>, _>(2), None);
        assert_eq!(r.get::<Option<String>, _>(3), None);
        let waits = time(r.get(5)) - time(r.get(4));
        let finished: Option<String> = r.get(6);
        if r.get::<String, _>(0) == "pending" {
            assert!(waits > chrono::Duration::seconds(50), "{waits}");
            assert_eq!(finished, None);
        } else {
            assert!(waits < chrono::Duration::seconds(50), "{waits}");
            assert!(finished.is_some());
        }
    }
    let (pending, next) = outbox::pending(store.pool(), None).await.unwrap();
    assert_eq!(pending, 4);
    let next = time(next.unwrap()).with_timezone(&chrono::Utc);
    assert!(
        next > chrono::Utc::now() + chrono::Duration::seconds(50),
        "{next}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_claiming_at_once_never_send_one_trigger_twice() {
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("runner.db")).await.unwrap();
    add_ended_runs(&store, "many", &standin_target(&cloud, &[]), 150).await;
    let first: Arc<Invoker> = Invoker::with_aws(store.clone(), aws(&cloud).await).unwrap();
    let second: Arc<Invoker> = Invoker::with_aws(store.clone(), aws(&cloud).await).unwrap();

    let (a, b) = tokio::join!(first.deliver_due(None), second.deliver_due(None));

    assert_eq!(a.unwrap().attempted + b.unwrap().attempted, 150);
    let calls = cloud.function.all_calls();
    assert_eq!(calls.len(), 150, "no trigger sent by both workers");
    assert!(calls.iter().all(|c| c.outcome == CallOutcome::Delivered));
    let (pending, _) = outbox::pending(store.pool(), None).await.unwrap();
    assert_eq!(pending, 0);
}
