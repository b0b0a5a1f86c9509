//! The function app stand-in: Easy Auth's 401/403, the call records, idempotency and faults.

use std::time::Duration;

use standins::{CallOutcome, Fault};

use crate::support::{CLIENT_ID, chain, chain_with};

const BODY: &str = r#"{"job":"nightly","run":42}"#;

#[tokio::test]
async fn a_valid_call_is_delivered_and_recorded_with_traceparent_key_and_body() {
    let chain = chain().await;
    let token = chain.federation.access_token().await;

    let response = chain
        .call(Some(&token), Some("run-42"), BODY)
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-ms-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let invocation_id = response.headers()["x-ms-invocation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["invocationId"], invocation_id.as_str());
    let call = &chain.function.effective_calls()[0];
    assert_eq!(call.request_id, request_id);
    assert_eq!(call.invocation_id.as_deref(), Some(invocation_id.as_str()));
    assert_eq!(
        call.traceparent.as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    assert_eq!(call.idempotency_key.as_deref(), Some("run-42"));
    assert_eq!(
        call.body,
        Some(serde_json::json!({"job": "nightly", "run": 42}))
    );
    assert_eq!(call.client_application.as_deref(), Some(CLIENT_ID));
    assert_eq!(
        (call.status, call.outcome),
        (Some(200), CallOutcome::Delivered)
    );
}

#[tokio::test]
async fn the_recorded_headers_never_hold_the_bearer_token() {
    let chain = chain().await;
    let token = chain.federation.access_token().await;

    chain.call(Some(&token), None, BODY).await.unwrap();

    let call = &chain.function.all_calls()[0];
    let authorization = call
        .headers
        .iter()
        .find(|(name, _)| name == "authorization")
        .unwrap();
    assert_eq!(authorization.1, "<redacted>");
    assert!(!format!("{call:?}").contains(&token));
}

#[tokio::test]
async fn a_call_without_a_token_is_401() {
    let chain = chain().await;

    let response = chain.call(None, None, BODY).await.unwrap();

    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(
        chain.function.all_calls()[0].outcome,
        CallOutcome::Unauthorized
    );
    assert!(chain.function.effective_calls().is_empty());
}

#[tokio::test]
async fn a_token_for_another_audience_is_401() {
    let chain = chain_with(|mut config| {
        config.allowed_audiences = vec!["api://another-function".to_owned()];
        config
    })
    .await;
    let token = chain.federation.access_token().await;

    let response = chain.call(Some(&token), None, BODY).await.unwrap();

    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_token_not_signed_by_entra_is_401() {
    let chain = chain().await;
    let aws_token = chain.federation.aws.token(crate::support::RESOURCE).await;

    let response = chain.call(Some(&aws_token), None, BODY).await.unwrap();

    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_valid_token_from_a_client_application_not_allowed_is_403() {
    let chain = chain_with(|config| config.allow_client_application("some-other-app")).await;
    let token = chain.federation.access_token().await;

    let response = chain.call(Some(&token), None, BODY).await.unwrap();

    assert_eq!(response.status(), 403);
    assert_eq!(
        chain.function.all_calls()[0].outcome,
        CallOutcome::Forbidden
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_is_400_and_not_effective() {
    let chain = chain().await;
    let token = chain.federation.access_token().await;

    let response = chain
        .call(Some(&token), Some("k"), "job=nightly")
        .await
        .unwrap();

    assert_eq!(response.status(), 400);
    assert!(chain.function.effective_calls().is_empty());
}

#[tokio::test]
async fn a_repeated_idempotency_key_is_answered_200_with_the_first_answer_but_counted_once() {
    let chain = chain().await;
    let token = chain.federation.access_token().await;

    let first = chain.call(Some(&token), Some("run-7"), BODY).await.unwrap();
    let first_answer: serde_json::Value = first.json().await.unwrap();
    let repeat = chain.call(Some(&token), Some("run-7"), BODY).await.unwrap();

    assert_eq!(repeat.status(), 200);
    assert_eq!(repeat.headers()["x-standin-replayed"], "true");
    let repeat_answer: serde_json::Value = repeat.json().await.unwrap();
    assert_eq!(repeat_answer, first_answer);
    assert_eq!(chain.function.effective_calls().len(), 1);
    let outcomes: Vec<_> = chain
        .function
        .all_calls()
        .iter()
        .map(|c| c.outcome)
        .collect();
    assert_eq!(outcomes, [CallOutcome::Delivered, CallOutcome::Replayed]);
}

#[tokio::test]
async fn calls_without_a_key_each_count() {
    let chain = chain().await;
    let token = chain.federation.access_token().await;

    chain.call(Some(&token), None, BODY).await.unwrap();
    chain.call(Some(&token), None, BODY).await.unwrap();

    assert_eq!(chain.function.effective_calls().len(), 2);
}

#[tokio::test]
async fn server_errors_are_answered_as_many_times_as_injected_then_the_call_is_delivered() {
    let chain = chain().await;
    let token = chain.federation.access_token().await;
    chain.function.inject(Fault::ServerError, 2);

    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            chain
                .call(Some(&token), Some("k"), BODY)
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }

    assert_eq!(statuses, [500, 500, 200]);
    assert_eq!(chain.function.effective_calls().len(), 1);
    assert_eq!(chain.function.pending_faults(), 0);
}

#[tokio::test]
async fn throttling_answers_429_with_the_injected_retry_after() {
    let chain = chain().await;
    let token = chain.federation.access_token().await;
    chain.function.inject(
        Fault::TooManyRequests {
            retry_after_secs: 7,
        },
        1,
    );

    let throttled = chain.call(Some(&token), None, BODY).await.unwrap();

    assert_eq!(throttled.status(), 429);
    assert_eq!(throttled.headers()["retry-after"], "7");
    assert_eq!(
        chain.function.all_calls()[0].outcome,
        CallOutcome::Injected(Fault::TooManyRequests {
            retry_after_secs: 7
        })
    );
}

#[tokio::test]
async fn a_dropped_connection_gives_the_client_no_answer_and_the_function_does_not_run() {
    let chain = chain().await;
    let token = chain.federation.access_token().await;
    chain.function.inject(Fault::DropConnection, 1);

    let dropped = chain.call(Some(&token), Some("k"), BODY).await;
    let retried = chain.call(Some(&token), Some("k"), BODY).await.unwrap();

    let error = dropped.expect_err("no answer on a dropped connection");
    assert!(error.status().is_none() && !error.is_timeout(), "{error:?}");
    assert_eq!(retried.status(), 200);
    assert!(retried.headers().get("x-standin-replayed").is_none());
    let calls = chain.function.all_calls();
    assert_eq!(calls[0].status, None);
    assert_eq!(chain.function.effective_calls().len(), 1);
}

#[tokio::test]
async fn a_drop_after_delivery_counts_the_call_and_the_retry_is_replayed() {
    let chain = chain().await;
    let token = chain.federation.access_token().await;
    chain.function.inject(Fault::DropAfterDelivery, 1);

    let dropped = chain.call(Some(&token), Some("k"), BODY).await;
    let retried = chain.call(Some(&token), Some("k"), BODY).await.unwrap();

    assert!(dropped.is_err());
    assert_eq!(retried.status(), 200);
    assert_eq!(retried.headers()["x-standin-replayed"], "true");
    let outcomes: Vec<_> = chain
        .function
        .all_calls()
        .iter()
        .map(|c| c.outcome)
        .collect();
    assert_eq!(
        outcomes,
        [CallOutcome::DeliveredThenDropped, CallOutcome::Replayed]
    );
    assert_eq!(chain.function.effective_calls().len(), 1);
}

#[tokio::test]
async fn a_revoked_token_stays_refused_until_a_new_token_is_used() {
    let chain = chain().await;
    let revoked = chain.federation.access_token().await;
    chain.function.inject(Fault::RevokeToken, 1);

    let first = chain.call(Some(&revoked), Some("k"), BODY).await.unwrap();
    let again = chain.call(Some(&revoked), Some("k"), BODY).await.unwrap();
    let fresh = chain.federation.access_token().await;
    let refreshed = chain.call(Some(&fresh), Some("k"), BODY).await.unwrap();

    assert_eq!(first.status(), 401);
    assert!(
        first.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(again.status(), 401);
    assert_eq!(refreshed.status(), 200);
    assert_eq!(chain.federation.entra.token_issues(), 2);
}

#[tokio::test]
async fn a_delayed_call_is_still_delivered_and_the_delay_recorded() {
    let chain = chain().await;
    let token = chain.federation.access_token().await;
    chain
        .function
        .inject(Fault::Delay(Duration::from_millis(50)), 1);

    let response = chain.call(Some(&token), None, BODY).await.unwrap();

    assert_eq!(response.status(), 200);
    let call = &chain.function.all_calls()[0];
    assert_eq!(call.delayed_by, Some(Duration::from_millis(50)));
    assert_eq!(call.outcome, CallOutcome::Delivered);
}
