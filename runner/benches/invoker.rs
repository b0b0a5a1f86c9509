//! Benchmark of the federated invoker against the local stand-ins: 1,000 ended runs each
//! trigger one target within one token lifetime. Prints how many STS and Entra calls were
//! made (the aim is one exchange) and how many triggers per second went through the outbox,
//! the token cache and the function stand-in (the aim is 2,000/s or more).
//!
//! Run: `cargo bench -p runner --bench invoker`. The figures go to `docs/benchmarks.md`.

use std::time::Instant;

use aws_config::BehaviorVersion;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_sdk_sts::config::Region;
use runner::invoker::Invoker;
use runner::invoker::aws::Aws;
use runner::store::{Store, Trigger};
use standins::{
    AppRegistration, Entra, EntraConfig, FederatedCredential, FunctionApp, FunctionConfig, Imds,
    Sts, StsConfig,
};

const TRIGGERS: usize = 1_000;
const ROUNDS: usize = 3;

#[tokio::main]
async fn main() {
    let imds = Imds::start().await.expect("imds starts");
    let sts = Sts::start(StsConfig::new(imds.credentials().clone()))
        .await
        .expect("sts starts");
    let app = AppRegistration::new("bench-client")
        .with_credential(FederatedCredential::new(sts.issuer(), sts.role_arn()));
    let entra = Entra::start(EntraConfig::new(vec![app]))
        .await
        .expect("entra starts");
    let function = FunctionApp::start(FunctionConfig::trusting(&entra, "api://bench"))
        .await
        .expect("function starts");

    let target = format!(
        "name = \"bench\"\nfunction_url = \"{}\"\ntenant_id = \"{}\"\nclient_id = \"bench-client\"\n\
         resource = \"api://bench\"\nsts_region = \"{}\"\nsts_endpoint = \"{}\"\nauthority = \"{}\"\n",
        function.url(),
        entra.tenant_id(),
        sts.region(),
        sts.base_url(),
        entra.base_url()
    );
    let target: runner::invoker::Target = toml::from_str(&target).expect("target parses");
    let definition = serde_json::json!({ "name": "bench", "target": [target] }).to_string();

    println!("invoker benchmark: {TRIGGERS} triggers per round, {ROUNDS} rounds");
    for round in 1..=ROUNDS {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("runner.db"))
            .await
            .expect("store opens");
        let job = store
            .upsert_job("bench", "@daily", "UTC", &definition)
            .await
            .expect("job");
        for _ in 0..TRIGGERS {
            let run = store
                .create_run(job, chrono::Utc::now(), Trigger::Manual)
                .await
                .expect("run")
                .expect("manual runs are never duplicates");
            store
                .finish_run(run, "succeeded", None, None, None)
                .await
                .expect("finish");
        }

        let imds_client = aws_config::imds::Client::builder()
            .endpoint(imds.base_url())
            .expect("endpoint parses")
            .build();
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(sts.region().to_owned()))
            .credentials_provider(
                ImdsCredentialsProvider::builder()
                    .imds_client(imds_client)
                    .build(),
            )
            .load()
            .await;
        let invoker = Invoker::with_aws(store, Aws::with_config(config)).expect("invoker");
        let (sts_before, entra_before) = (sts.calls(), entra.token_issues());
        let calls_before = function.effective_calls().len();

        let started = Instant::now();
        let attempts = invoker.deliver_due(None).await.expect("delivery").attempted;
        let elapsed = started.elapsed();

        let delivered = function.effective_calls().len() - calls_before;
        assert_eq!(
            delivered, TRIGGERS,
            "every trigger reached the function once"
        );
        println!(
            "round {round}: {attempts} attempts, {delivered} delivered in {:.3} s = {:.0} triggers/s; \
             STS calls {}, Entra token requests {}",
            elapsed.as_secs_f64(),
            TRIGGERS as f64 / elapsed.as_secs_f64(),
            sts.calls() - sts_before,
            entra.token_issues() - entra_before,
        );
    }
}
