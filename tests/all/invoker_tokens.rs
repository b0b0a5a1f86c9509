//! The invoker's token cache inside one process: many triggers at once share one exchange
//! (single flight), and a token past its refresh time is never reused.

use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_sdk_sts::config::Region;
use runner::invoker::Invoker;
use runner::invoker::aws::Aws;
use runner::store::{Store, Trigger};
use standins::Fault;

use crate::cloud::Cloud;

/// AWS configuration whose credentials come from the IMDS stand-in, not this process's env.
pub async fn aws(cloud: &Cloud) -> Aws {
    let imds = aws_config::imds::Client::builder()
        .endpoint(cloud.imds.base_url())
        .expect("endpoint parses")
        .build();
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(cloud.sts.region().to_owned()))
        .credentials_provider(ImdsCredentialsProvider::builder().imds_client(imds).build())
        .load()
        .await;
    Aws::with_config(config)
}

/// A store with `runs` ended runs of a job whose one target is the function stand-in.
async fn ended_runs(cloud: &Cloud, dir: &std::path::Path, runs: usize) -> Store {
    let store = Store::open(&dir.join("runner.db"))
        .await
        .expect("store opens");
    add_ended_runs(&store, "many", &standin_target(cloud, &[]), runs).await;
    store
}

/// The stand-in's target as the invoker reads it, with every endpoint overridden and each
/// `(from, to)` of `edits` replaced in its TOML.
pub fn standin_target(cloud: &Cloud, edits: &[(&str, &str)]) -> runner::invoker::Target {
    let mut text = format!(
        "{}sts_endpoint = \"{}\"\nauthority = \"{}\"\n",
        cloud.target("").trim_start_matches("[[job.target]]\n"),
        cloud.sts.base_url(),
        cloud.entra.base_url()
    );
    for (from, to) in edits {
        assert!(text.contains(from), "the stand-in's target has no `{from}`");
        text = text.replace(from, to);
    }
    toml::from_str(&text).expect("target parses")
}

/// Records job `name` with `target` and `runs` runs of it that succeeded, each leaving one
/// pending trigger; returns the run ids.
pub async fn add_ended_runs(
    store: &Store,
    name: &str,
    target: &runner::invoker::Target,
    runs: usize,
) -> Vec<i64> {
    let definition = serde_json::json!({ "name": name, "target": [target] }).to_string();
    let job = store
        .upsert_job(name, "@daily", "UTC", &definition)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..runs {
        let run = store
            .create_run(job, chrono::Utc::now(), Trigger::Manual)
            .await
            .unwrap()
            .unwrap();
        store
            .finish_run(run, "succeeded", None, None, None)
            .await
            .unwrap();
        ids.push(run);
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_concurrent_triggers_share_one_token_exchange() {
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = ended_runs(&cloud, dir.path(), 100).await;
    let invoker: Arc<Invoker> = Invoker::with_aws(store.clone(), aws(&cloud).await).unwrap();

    let sent = invoker.deliver_due(None).await.unwrap();

    assert_eq!(sent.attempted, 100);
    assert_eq!(sent.failed, 0);
    assert_eq!(cloud.function.effective_calls().len(), 100);
    assert_eq!(cloud.sts.calls(), 1);
    assert_eq!(cloud.entra.token_issues(), 1);
    assert_eq!(invoker.exchanges(), 1);
    let keys: std::collections::HashSet<_> = cloud
        .function
        .all_calls()
        .into_iter()
        .map(|c| c.idempotency_key)
        .collect();
    assert_eq!(keys.len(), 100, "one idempotency key per (run, target)");
    let delivered = runner::invoker::deliveries(&store, 100).await.unwrap();
    assert_eq!(delivered[0].state, "delivered");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_is_refreshed_once_for_every_caller_that_saw_the_401() {
    let cloud = Cloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = ended_runs(&cloud, dir.path(), 40).await;
    let invoker = Invoker::with_aws(store.clone(), aws(&cloud).await).unwrap();
    // The first call revokes the token every concurrent call holds.
    cloud.function.inject(Fault::RevokeToken, 1);

    invoker.deliver_due(None).await.unwrap();

    assert_eq!(cloud.function.effective_calls().len(), 40);
    assert_eq!(cloud.entra.token_issues(), 2);
    assert_eq!(cloud.sts.calls(), 2);
    // A fresh AWS token for each exchange, never a reused one.
    let jtis: std::collections::HashSet<_> =
        cloud.sts.requests().into_iter().map(|r| r.jti).collect();
    assert_eq!(jtis.len(), 2);
}
