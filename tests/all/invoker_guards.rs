//! What keeps the invoker's credentials out of reach: plugins have no network, so a step
//! cannot call the token or function endpoints itself, and `runner validate` refuses static
//! secrets and plain http to non-loopback hosts, saying why.

use crate::cloud::{Cloud, show};
use crate::support::{Scratch, one_step_job, text};

fn address(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_cannot_reach_the_imds_sts_entra_or_function_endpoints() {
    let cloud = Cloud::start().await;
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", "a\n1\n");
    let addresses: Vec<String> = [
        cloud.imds.base_url(),
        cloud.sts.base_url(),
        cloud.entra.base_url(),
        cloud.function.base_url(),
    ]
    .iter()
    .map(|u| format!("\"{}\"", address(u)))
    .collect();
    let config = format!("{{ addresses = [{}] }}", addresses.join(", "));
    scratch.job_file(&one_step_job("nosy", &input, "hostile-net-cloud", &config));

    let out = cloud.run(&scratch, &["run", "nosy"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let shown = show(&cloud, &scratch, 1).await;
    let step = &shown["steps"][0];
    assert_eq!(step["outcome"], "guest-error", "{step:#}");
    let error = step["error"].as_str().unwrap();
    for a in &addresses {
        assert!(error.contains(a.trim_matches('"')), "{error}");
    }
    assert!(
        step["metrics"].is_null(),
        "no connection may open: {step:#}"
    );
    assert_eq!(cloud.imds.token_requests(), 0);
    assert_eq!(cloud.sts.calls(), 0);
    assert!(cloud.entra.requests().is_empty());
    assert!(cloud.function.all_calls().is_empty());
}

#[test]
fn validate_refuses_static_secrets_in_every_form_and_says_why() {
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", "a\n1\n");
    let target = |extra: &str, url: &str| {
        format!(
            "[[job.target]]\nfunction_url = \"{url}\"\ntenant_id = \"t\"\nclient_id = \"c\"\n\
             resource = \"api://fn\"\nsts_region = \"eu-west-1\"\n{extra}\n"
        )
    };
    let good = "https://fn.example.net/api/x";
    let job = format!(
        "{}{}{}{}{}{}",
        one_step_job(
            "a",
            &input,
            "csv-filter",
            "{ column = \"a\", op = \">\", value = 0 }"
        ),
        target("client_secret = \"s3cr3t\"", good),
        target("aws_secret_access_key = \"abc\"", good),
        target("", "https://fn.example.net/api/x?code=abc"),
        target("headers = { x-functions-key = \"abc\" }", good),
        target("", "http://fn.example.net/api/x"),
    );
    scratch.job_file(&job);

    let out = scratch.runner(&["validate"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.matches("static secrets are not accepted").count(),
        4,
        "{stderr}"
    );
    assert!(
        stderr.contains("`target.target-1.client_secret`: a client secret"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`target.target-2.aws_secret_access_key`: AWS keys"),
        "{stderr}"
    );
    assert!(stderr.contains("`code=` query"), "{stderr}");
    assert!(stderr.contains("headers.x-functions-key"), "{stderr}");
    assert!(
        stderr.contains(
            "`target.target-5.function_url`: `http://fn.example.net/api/x` uses plain http"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("5 problem(s)"), "{stderr}");
}

#[test]
fn validate_accepts_a_federated_target_and_loopback_http() {
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", "a\n1\n");
    let job = format!(
        "{}[[job.target]]\nfunction_url = \"http://127.0.0.1:7071/api/x\"\ntenant_id = \"t\"\n\
         client_id = \"c\"\nresource = \"api://fn\"\nsts_region = \"eu-west-1\"\n",
        one_step_job(
            "a",
            &input,
            "csv-filter",
            "{ column = \"a\", op = \">\", value = 0 }"
        ),
    );
    scratch.job_file(&job);
    let out = scratch.runner(&["validate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("no problems"));
}
