//! The whole cross-cloud path on 127.0.0.1 for the invoker's tests: the stand-ins of
//! `tests/standins`, a job file whose target names them, and the runner binary started with
//! every endpoint overridden and in loopback-only mode, so a missing override fails the test
//! instead of reaching AWS or Azure.

use std::path::PathBuf;
use std::process::Output;

use standins::{
    AppRegistration, Entra, EntraConfig, FederatedCredential, FunctionApp, FunctionConfig, Imds,
    Sts, StsConfig,
};

use crate::support::Scratch;

/// The client id of the app registration holding the federated credential.
pub const CLIENT_ID: &str = "3f0e9a51-7c2d-4b8e-a6f4-d1c09b7e25aa";
/// The function app's application id URI.
pub const RESOURCE: &str = "api://runner-downstream";

/// The stand-ins, started in dependency order.
pub struct Cloud {
    pub imds: Imds,
    pub sts: Sts,
    pub entra: Entra,
    pub function: FunctionApp,
}

impl Cloud {
    /// Everything set up correctly: the credential trusts the STS issuer and the role.
    pub async fn start() -> Cloud {
        Cloud::start_with(|issuer, role| FederatedCredential::new(issuer, role)).await
    }

    /// With the federated credential `credential(issuer, role_arn)` makes.
    pub async fn start_with(credential: impl FnOnce(&str, &str) -> FederatedCredential) -> Cloud {
        let imds = Imds::start().await.expect("imds starts");
        let sts = Sts::start(StsConfig::new(imds.credentials().clone()))
            .await
            .expect("sts starts");
        let app = AppRegistration::new(CLIENT_ID)
            .with_credential(credential(sts.issuer(), sts.role_arn()));
        let entra = Entra::start(EntraConfig::new(vec![app]))
            .await
            .expect("entra starts");
        let function = FunctionApp::start(
            FunctionConfig::trusting(&entra, RESOURCE).allow_client_application(CLIENT_ID),
        )
        .await
        .expect("function starts");
        Cloud {
            imds,
            sts,
            entra,
            function,
        }
    }

    /// A `[[job.target]]` calling the function stand-in; `extra` adds TOML lines.
    pub fn target(&self, extra: &str) -> String {
        format!(
            "[[job.target]]\nname = \"downstream\"\nwhen = \"always\"\n\
             function_url = \"{}\"\ntenant_id = \"{}\"\nclient_id = \"{CLIENT_ID}\"\n\
             resource = \"{RESOURCE}\"\nsts_region = \"{}\"\nretry_initial_ms = 100\n{extra}\n",
            self.function.url(),
            self.entra.tenant_id(),
            self.sts.region(),
        )
    }

    /// The runner binary in `scratch`, pointed at the stand-ins and nothing else.
    pub fn command(&self, scratch: &Scratch, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_runner"));
        command
            .current_dir(scratch.dir.path())
            .arg("--config")
            .arg(scratch.path("jobs.toml"))
            .args(args)
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", self.imds.base_url())
            .env("RUNNER_STS_ENDPOINT", self.sts.base_url())
            .env("RUNNER_ENTRA_AUTHORITY", self.entra.base_url())
            .env("RUNNER_INVOKER_LOOPBACK_ONLY", "1")
            // Nothing from this machine's AWS setup may stand in for the instance role.
            .env("AWS_CONFIG_FILE", scratch.path("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                scratch.path("no-aws-credentials"),
            )
            .kill_on_drop(true);
        for name in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_EC2_METADATA_DISABLED",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_STS",
            "RUNNER_CONFIG",
            "RUNNER_DATA_DIR",
            "RUNNER_PLUGIN_DIR",
            "RUNNER_LOG",
        ] {
            command.env_remove(name);
        }
        command
    }

    /// Runs the runner to its end.
    pub async fn run(&self, scratch: &Scratch, args: &[&str]) -> Output {
        self.command(scratch, args)
            .output()
            .await
            .expect("run the runner binary")
    }
}

/// A small flights CSV: the header and the first `rows` rows of the bundled sample.
pub fn small_flights(scratch: &Scratch, rows: usize) -> PathBuf {
    let sample = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/flights-2013-01.csv"),
    )
    .expect("the bundled sample");
    let text: Vec<&str> = sample.lines().take(rows + 1).collect();
    scratch.write("flights.csv", text.join("\n") + "\n")
}

/// `runner show RUN --json` of the scratch directory, parsed.
pub async fn show(cloud: &Cloud, scratch: &Scratch, run_id: i64) -> serde_json::Value {
    let out = cloud
        .run(scratch, &["show", &run_id.to_string(), "--json"])
        .await;
    assert!(
        out.status.success(),
        "show failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("show --json is JSON")
}
