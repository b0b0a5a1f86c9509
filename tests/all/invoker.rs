//! The federated invoker end to end: `daily-flights` with a target, run by the binary against
//! the stand-ins; exactly one effective call, with faults and across a SIGKILL; the audit
//! trail joins STS, Entra and the function; no token or AWS secret is left anywhere; a run
//! a dead process left running triggers its failure target once recovery interrupts it.

use std::time::Duration;

use standins::{CallOutcome, Fault, TOKEN_EXCHANGE_AUDIENCE};

use crate::cloud::{CLIENT_ID, Cloud, show, small_flights};
use crate::support::{Scratch, daily_flights, one_step_job, plugin, text};

async fn flights_with_target(cloud: &Cloud, scratch: &Scratch, extra: &str) {
    let input = small_flights(scratch, 300);
    scratch.job_file(&format!(
        "{}\n{}",
        daily_flights(&input),
        cloud.target(extra)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_run_triggers_the_function_once_with_its_summary_and_a_joined_audit_trail() {
    let cloud = Cloud::start().await;
    let scratch = Scratch::new();
    flights_with_target(&cloud, &scratch, "").await;

    let out = cloud.run(&scratch, &["run", "daily-flights"]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("trigger `downstream`: delivered"),
        "{stdout}"
    );

    let calls = cloud.function.all_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(call.outcome, CallOutcome::Delivered);
    assert_eq!(call.client_application.as_deref(), Some(CLIENT_ID));
    let body = call.body.as_ref().expect("a JSON body");
    let shown = show(&cloud, &scratch, 1).await;
    assert_eq!(body["job"], "daily-flights");
    assert_eq!(body["run_id"], 1);
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["logical_time"], shown["run"]["logical_time"]);
    let steps = body["steps"].as_array().expect("steps");
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["delayed", "by-carrier", "report"]);
    assert_eq!(steps[0]["rows_in"], 300);
    assert_eq!(steps[0]["rows_out"], shown["steps"][0]["rows_out"]);
    assert_eq!(steps[1]["outcome"], "succeeded");
    let report = body["report"].as_str().expect("where the report is");
    assert!(report.ends_with("/report.md") && std::path::Path::new(report).is_file());

    // The AWS side: one regional, RS256, 300 s token for the exchange audience.
    let sts = cloud.sts.requests();
    assert_eq!(sts.len(), 1);
    assert_eq!(sts[0].audiences, [TOKEN_EXCHANGE_AUDIENCE]);
    assert_eq!(sts[0].signing_algorithm.as_deref(), Some("RS256"));
    assert_eq!(sts[0].duration_seconds.as_deref(), Some("300"));
    assert_eq!(sts[0].region.as_deref(), Some("eu-west-1"));
    assert_eq!(
        sts[0].access_key_id.as_deref(),
        Some(cloud.imds.credentials().access_key_id.as_str())
    );
    // The Azure side: one exchange for the resource's default scope.
    let entra = cloud.entra.requests();
    assert_eq!(entra.len(), 1);
    assert_eq!(
        entra[0].scope.as_deref(),
        Some("api://runner-downstream/.default")
    );
    assert_eq!(entra[0].error_code, None);

    // The audit row joins them all.
    let delivery = &shown["deliveries"][0];
    assert_eq!(delivery["state"], "delivered");
    assert_eq!(
        delivery["idempotency_key"].as_str(),
        call.idempotency_key.as_deref()
    );
    let attempt = &delivery["attempts"][0];
    assert_eq!(delivery["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(
        attempt["sts_request_id"].as_str(),
        Some(sts[0].request_id.as_str())
    );
    assert_eq!(attempt["jwt_sub"].as_str(), Some(cloud.sts.role_arn()));
    assert_eq!(attempt["jwt_jti"].as_str(), sts[0].jti.as_deref());
    assert_eq!(
        attempt["entra_trace_id"].as_str(),
        Some(entra[0].trace_id.as_str())
    );
    assert_eq!(
        attempt["entra_correlation_id"].as_str(),
        Some(entra[0].correlation_id.as_str())
    );
    assert_eq!(attempt["http_status"], 200);
    assert_eq!(
        attempt["azure_request_id"].as_str(),
        Some(call.request_id.as_str())
    );
    assert_eq!(
        attempt["azure_invocation_id"].as_str(),
        call.invocation_id.as_deref()
    );
    assert_eq!(attempt["traceparent"].as_str(), call.traceparent.as_deref());
    let traceparent = call.traceparent.as_deref().unwrap();
    assert!(traceparent.starts_with(&format!("00-{}-", delivery["trace_id"].as_str().unwrap())));

    // And `runner show` prints it for a person.
    let human = cloud.run(&scratch, &["show", "1"]).await;
    let human = text(&human.stdout);
    assert!(human.contains("trigger `downstream`: delivered"), "{human}");
    assert!(human.contains(&sts[0].request_id), "{human}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_token_or_aws_secret_is_left_in_the_logs_or_the_database() {
    let cloud = Cloud::start().await;
    let scratch = Scratch::new();
    // A 401 on the first call forces a second exchange: two tokens of each kind to look for.
    cloud.function.inject(Fault::RevokeToken, 1);
    flights_with_target(&cloud, &scratch, "").await;

    let out = cloud
        .command(&scratch, &["--log-json", "run", "daily-flights"])
        .env("RUNNER_LOG", "debug")
        .output()
        .await
        .expect("runner runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(cloud.function.effective_calls().len(), 1);

    let mut haystack = out.stdout.clone();
    haystack.extend_from_slice(&out.stderr);
    for entry in std::fs::read_dir(scratch.path("data")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            haystack.extend(std::fs::read(&path).unwrap());
        }
    }
    let shown = cloud.run(&scratch, &["show", "1", "--json"]).await;
    haystack.extend_from_slice(&shown.stdout);
    let haystack = String::from_utf8_lossy(&haystack);

    let aws_tokens = cloud.sts.issued_tokens();
    let entra_tokens = cloud.entra.issued_tokens();
    assert_eq!((aws_tokens.len(), entra_tokens.len()), (2, 2));
    let credentials = cloud.imds.credentials();
    let mut secrets: Vec<(&str, String)> = vec![
        ("IMDS secret key", credentials.secret_access_key.clone()),
        ("IMDS session token", credentials.session_token.clone()),
    ];
    for token in aws_tokens.iter().chain(&entra_tokens) {
        secrets.push(("token", token.clone()));
        // A token's signature alone is as telling as the whole token.
        secrets.push((
            "token signature",
            token.rsplit('.').next().unwrap().to_string(),
        ));
    }
    for (what, secret) in &secrets {
        assert!(!haystack.contains(secret.as_str()), "a {what} leaked");
    }
    // The search itself looked at the logs: the delivery event is in them.
    assert!(haystack.contains("trigger delivered"));
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_on_the_function_still_end_in_exactly_one_effective_call() {
    let cloud = Cloud::start().await;
    let scratch = Scratch::new();
    cloud.function.inject(Fault::ServerError, 1);
    cloud.function.inject(
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        1,
    );
    cloud.function.inject(Fault::DropConnection, 1);
    cloud.function.inject(Fault::RevokeToken, 1);
    cloud.function.inject(Fault::DropAfterDelivery, 1);
    flights_with_target(&cloud, &scratch, "").await;

    let out = cloud.run(&scratch, &["run", "daily-flights"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    assert_eq!(cloud.function.pending_faults(), 0);
    let all = cloud.function.all_calls();
    let outcomes: Vec<CallOutcome> = all.iter().map(|c| c.outcome).collect();
    assert_eq!(
        outcomes,
        [
            CallOutcome::Injected(Fault::ServerError),
            CallOutcome::Injected(Fault::TooManyRequests {
                retry_after_secs: 1
            }),
            CallOutcome::Injected(Fault::DropConnection),
            CallOutcome::Injected(Fault::RevokeToken),
            CallOutcome::DeliveredThenDropped,
            CallOutcome::Replayed,
        ]
    );
    assert_eq!(cloud.function.effective_calls().len(), 1);
    let keys: std::collections::HashSet<_> =
        all.iter().map(|c| c.idempotency_key.clone()).collect();
    assert_eq!(keys.len(), 1, "one idempotency key across every retry");
    // One exchange at first, one more after the revoked token's 401: never one per call.
    assert_eq!(cloud.entra.token_issues(), 2);
    assert_eq!(cloud.sts.calls(), 2);

    let shown = show(&cloud, &scratch, 1).await;
    let delivery = &shown["deliveries"][0];
    assert_eq!(delivery["state"], "delivered");
    let statuses: Vec<Option<i64>> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["http_status"].as_i64())
        .collect();
    assert_eq!(
        statuses,
        [Some(500), Some(429), None, Some(401), None, Some(200)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runner_killed_between_the_run_end_and_the_delivery_delivers_once_after_restart() {
    let cloud = Cloud::start().await;
    let scratch = Scratch::new();
    // The first call hangs, holding the runner between the run's end and the delivery.
    cloud
        .function
        .inject(Fault::Delay(Duration::from_secs(20)), 1);
    flights_with_target(&cloud, &scratch, "").await;

    let mut first = cloud
        .command(&scratch, &["run", "daily-flights"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("runner starts");
    // Wait until the run is recorded as ended and its trigger's token was obtained: the
    // function call is then in flight.
    let mut waited = 0;
    while cloud.entra.token_issues() == 0 {
        assert!(waited < 600, "the runner never reached the token exchange");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.start_kill().expect("SIGKILL");
    let status = first.wait().await.expect("the runner exits");
    assert!(!status.success());

    let shown = show(&cloud, &scratch, 1).await;
    assert_eq!(shown["run"]["status"], "succeeded");
    assert_eq!(shown["deliveries"][0]["state"], "pending");
    assert_eq!(cloud.function.effective_calls().len(), 0);

    let out = cloud.run(&scratch, &["deliver", "--wait-secs", "60"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = show(&cloud, &scratch, 1).await;
    assert_eq!(shown["deliveries"][0]["state"], "delivered");
    let effective = cloud.function.effective_calls();
    assert_eq!(effective.len(), 1);
    assert_eq!(
        effective[0].idempotency_key.as_deref(),
        shown["deliveries"][0]["idempotency_key"].as_str()
    );
    assert_eq!(effective[0].body.as_ref().unwrap()["run_id"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_only_target_is_not_triggered_by_a_successful_run() {
    let cloud = Cloud::start().await;
    let scratch = Scratch::new();
    let target = cloud
        .target("")
        .replace("when = \"always\"", "when = \"failure\"");
    let input = small_flights(&scratch, 50);
    scratch.job_file(&format!("{}\n{target}", daily_flights(&input)));

    let out = cloud.run(&scratch, &["run", "daily-flights"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(cloud.function.all_calls().is_empty());
    assert_eq!(cloud.sts.calls(), 0);
    let shown = show(&cloud, &scratch, 1).await;
    assert_eq!(shown["deliveries"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn runner_serve_delivers_a_trigger_that_runner_run_left_pending() {
    let cloud = Cloud::start().await;
    let scratch = Scratch::new();
    cloud.function.inject(Fault::ServerError, 1);
    flights_with_target(&cloud, &scratch, "").await;

    // No time to retry: the 500 leaves the trigger pending.
    let out = cloud
        .run(
            &scratch,
            &["run", "daily-flights", "--delivery-wait-secs", "0"],
        )
        .await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("trigger `downstream`: pending"), "{stdout}");
    assert_eq!(cloud.function.effective_calls().len(), 0);

    let mut serve = cloud
        .command(&scratch, &["serve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut waited = 0;
    while cloud.function.effective_calls().is_empty() {
        assert!(waited < 600, "serve never delivered the pending trigger");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let pid = serve.id().expect("serve runs").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = serve.wait().await.expect("serve exits");
    assert!(status.success(), "serve exits cleanly on SIGTERM: {status}");

    assert_eq!(cloud.function.effective_calls().len(), 1);
    let shown = show(&cloud, &scratch, 1).await;
    assert_eq!(shown["deliveries"][0]["state"], "delivered");
    let statuses: Vec<Option<i64>> = shown["deliveries"][0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["http_status"].as_i64())
        .collect();
    assert_eq!(statuses, [Some(500), Some(200)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_left_running_by_a_dead_process_triggers_its_failure_target_once_after_recovery() {
    let cloud = Cloud::start().await;
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", "a\n1\n");
    let sleep = plugin("hostile-sleep").display().to_string();
    let target = cloud
        .target("")
        .replace("when = \"always\"", "when = \"failure\"");
    scratch.job_file(&format!(
        "{}{target}",
        one_step_job("slow", &input, &sleep, "{ seconds = 3600 }")
    ));

    // `runner run` is killed outright while its step sleeps: nobody records the run's end.
    let mut first = cloud
        .command(&scratch, &["run", "slow"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("runner starts");
    let mut waited = 0;
    loop {
        let runs = cloud.run(&scratch, &["runs", "--json"]).await;
        let runs: serde_json::Value =
            serde_json::from_slice(&runs.stdout).unwrap_or(serde_json::Value::Null);
        if runs[0]["status"] == "running" {
            break;
        }
        assert!(waited < 600, "the run never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    first.start_kill().expect("SIGKILL");
    first.wait().await.expect("the runner exits");
    assert_eq!(show(&cloud, &scratch, 1).await["run"]["status"], "running");
    assert!(cloud.function.all_calls().is_empty());

    // `runner serve` recovers it as interrupted, and its worker sends the failure trigger.
    let mut serve = cloud
        .command(&scratch, &["serve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut waited = 0;
    while cloud.function.effective_calls().is_empty() {
        assert!(
            waited < 600,
            "serve never sent the interrupted run's trigger"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let pid = serve.id().expect("serve runs").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = serve.wait().await.expect("serve exits");
    assert!(status.success(), "serve exits cleanly on SIGTERM: {status}");

    let calls = cloud.function.all_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].outcome, CallOutcome::Delivered);
    let body = calls[0].body.as_ref().expect("a JSON body");
    assert_eq!(body["job"], "slow");
    assert_eq!(body["run_id"], 1);
    assert_eq!(body["status"], "interrupted");
    assert_eq!(
        body["error"],
        "the runner process ended before the run finished"
    );
    assert_eq!(body["steps"][0]["outcome"], "interrupted");
    let shown = show(&cloud, &scratch, 1).await;
    assert_eq!(shown["run"]["status"], "interrupted");
    assert_eq!(shown["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(shown["deliveries"][0]["state"], "delivered");
    assert_eq!(
        shown["deliveries"][0]["idempotency_key"].as_str(),
        calls[0].idempotency_key.as_deref()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn runner_deliver_exits_4_when_a_pending_trigger_runs_out_of_time() {
    let cloud = Cloud::start().await;
    let scratch = Scratch::new();
    // More 500s than a five-second max age leaves attempts for (at 100 ms doubling); five
    // seconds so that a slow `runner run` still exits while the trigger is pending.
    cloud.function.inject(Fault::ServerError, 30);
    flights_with_target(&cloud, &scratch, "max_age_secs = 5").await;

    let out = cloud
        .run(
            &scratch,
            &["run", "daily-flights", "--delivery-wait-secs", "0"],
        )
        .await;
    let stdout = text(&out.stdout);
    // Pending is not failed: `run` succeeds and leaves the trigger to `deliver`.
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("trigger `downstream`: pending"), "{stdout}");

    let out = cloud.run(&scratch, &["deliver", "--wait-secs", "60"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("1 trigger(s) failed for good"), "{stdout}");
    let shown = show(&cloud, &scratch, 1).await;
    assert_eq!(shown["deliveries"][0]["state"], "failed");
    assert_eq!(shown["deliveries"][0]["error_code"], "max-age");
    assert!(cloud.function.effective_calls().is_empty());
}
