//! Misconfigured federation, as operators get it wrong: each mistake stops retrying at once
//! and is recorded with its code and what it means, the function is never called, and
//! `runner run` exits 4 (the run succeeded, its trigger failed). A credential that is only
//! still propagating (`AADSTS70021`) is retried with backoff until it works.

use standins::{FederatedCredential, StsMode, TokenSigning};

use crate::cloud::{Cloud, show, small_flights};
use crate::support::{Scratch, daily_flights, text};

/// Runs daily-flights with a target against `cloud`; returns the recorded delivery.
async fn failed_delivery(cloud: &Cloud, extra: &str) -> serde_json::Value {
    let scratch = Scratch::new();
    let input = small_flights(&scratch, 20);
    scratch.job_file(&format!(
        "{}\n{}",
        daily_flights(&input),
        cloud.target(extra)
    ));
    let out = cloud.run(&scratch, &["run", "daily-flights"]).await;
    let stdout = text(&out.stdout);
    // The run itself succeeded; its trigger failed and says so, in words and exit code.
    assert_eq!(
        out.status.code(),
        Some(4),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("run 1 of `daily-flights`: succeeded"),
        "{stdout}"
    );
    assert!(
        stdout.contains("trigger `downstream`: failed ("),
        "{stdout}"
    );
    assert!(cloud.function.all_calls().is_empty());
    let shown = show(cloud, &scratch, 1).await;
    let delivery = shown["deliveries"][0].clone();
    assert_eq!(delivery["state"], "failed");
    let attempts = delivery["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "a configuration error is not retried");
    assert_eq!(attempts[0]["outcome"], "failed");
    assert_eq!(attempts[0]["error_code"], delivery["error_code"]);
    delivery
}

fn assert_explained(delivery: &serde_json::Value, code: &str, words: &str) {
    assert_eq!(delivery["error_code"], code, "{delivery:#}");
    let error = delivery["error"].as_str().unwrap();
    assert!(error.contains(words), "{code}: `{error}` lacks `{words}`");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credential_for_another_role_is_recorded_as_a_subject_mismatch() {
    let cloud = Cloud::start_with(|issuer, _role| {
        FederatedCredential::new(issuer, "arn:aws:iam::123456789012:role/someone-else")
    })
    .await;
    let delivery = failed_delivery(&cloud, "").await;
    assert_explained(&delivery, "AADSTS700213", "subject mismatch");
    // The AWS side of the join is there even though Entra refused.
    let attempt = &delivery["attempts"][0];
    assert_eq!(attempt["jwt_sub"].as_str(), Some(cloud.sts.role_arn()));
    assert_eq!(
        attempt["entra_trace_id"].as_str(),
        Some(cloud.entra.requests()[0].trace_id.as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_for_the_wrong_audience_is_recorded_as_an_audience_mismatch() {
    let cloud = Cloud::start().await;
    let delivery = failed_delivery(&cloud, "audience = \"api://not-the-exchange\"").await;
    assert_explained(&delivery, "AADSTS700212", "audience mismatch");
    assert_eq!(
        cloud.sts.requests()[0].audiences,
        ["api://not-the-exchange"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_assertion_is_recorded_with_the_clock_advice() {
    let cloud = Cloud::start().await;
    cloud.sts.set_issue_expired(true);
    let delivery = failed_delivery(&cloud, "").await;
    assert_explained(&delivery, "AADSTS700024", "clock");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_assertion_signed_by_an_unpublished_key_is_recorded_as_unknown_key() {
    let cloud = Cloud::start().await;
    cloud.sts.set_signing(TokenSigning::UnpublishedKey);
    let delivery = failed_delivery(&cloud, "").await;
    assert_explained(&delivery, "AADSTS7000272", "not in the issuer's JWKS");
}

#[tokio::test(flavor = "multi_thread")]
async fn sts_access_denied_and_disabled_federation_stop_before_entra() {
    for (mode, code, words) in [
        (StsMode::AccessDenied, "AccessDenied", "IAM policy"),
        (
            StsMode::FederationDisabled,
            "OutboundWebIdentityFederationDisabledException",
            "not enabled",
        ),
    ] {
        let cloud = Cloud::start().await;
        cloud.sts.set_mode(mode);
        let delivery = failed_delivery(&cloud, "").await;
        assert_explained(&delivery, code, words);
        assert!(cloud.entra.requests().is_empty(), "{mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_app_that_forbids_the_caller_is_a_permanent_failure() {
    use standins::{FunctionApp, FunctionConfig};
    let mut cloud = Cloud::start().await;
    // Easy Auth allowing another client application only: a valid token, then 403.
    cloud.function = FunctionApp::start(
        FunctionConfig::trusting(&cloud.entra, crate::cloud::RESOURCE)
            .allow_client_application("another-app"),
    )
    .await
    .unwrap();
    let scratch = Scratch::new();
    let input = small_flights(&scratch, 20);
    scratch.job_file(&format!("{}\n{}", daily_flights(&input), cloud.target("")));
    let out = cloud.run(&scratch, &["run", "daily-flights"]).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let shown = show(&cloud, &scratch, 1).await;
    assert_eq!(shown["run"]["status"], "succeeded");
    let delivery = &shown["deliveries"][0];
    assert_explained(delivery, "HTTP 403", "allowed client applications");
    assert_eq!(delivery["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(cloud.function.all_calls().len(), 1);
}

/// Regression: `AADSTS70021` used to be given up after four attempts, a few seconds after
/// the run at the default backoff, while a new credential takes minutes to propagate.
#[tokio::test(flavor = "multi_thread")]
async fn a_credential_still_propagating_is_retried_past_four_refusals_and_then_delivers() {
    let cloud = Cloud::start().await;
    cloud.entra.set_propagation_pending(5);
    let scratch = Scratch::new();
    let input = small_flights(&scratch, 20);
    scratch.job_file(&format!("{}\n{}", daily_flights(&input), cloud.target("")));

    let out = cloud.run(&scratch, &["run", "daily-flights"]).await;

    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("trigger `downstream`: delivered"),
        "{stdout}"
    );
    assert_eq!(cloud.function.effective_calls().len(), 1);
    let shown = show(&cloud, &scratch, 1).await;
    let attempts = shown["deliveries"][0]["attempts"]
        .as_array()
        .unwrap()
        .clone();
    let codes: Vec<Option<&str>> = attempts.iter().map(|a| a["error_code"].as_str()).collect();
    assert_eq!(
        codes,
        [
            Some("AADSTS70021"),
            Some("AADSTS70021"),
            Some("AADSTS70021"),
            Some("AADSTS70021"),
            Some("AADSTS70021"),
            None
        ]
    );
    assert!(attempts[..5].iter().all(|a| a["outcome"] == "retry"));
    assert_eq!(attempts[5]["http_status"], 200);
}
