//! An in-process host for sandbox tests: one runner (sandbox, store, data directory) over a
//! scratch job file, plus a good job to prove the host still serves after a hostile one.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use runner::config::JobFile;
use runner::pipeline::{RunResult, Runner};
use runner::sandbox::Sandbox;
use runner::store::{Store, Trigger};
use tokio_util::sync::CancellationToken;

use crate::support::Scratch;

/// Three rows, one with a missing `dep_delay`: the good job keeps two.
const GOOD_CSV: &str = "carrier,dep_delay\nAA,5\nUA,NA\nAA,-2\n";

/// A job named `name` with one step of `plugin` over the scratch `input/` directory, with
/// TOML inline tables for its `config` and `limits`.
pub fn job(name: &str, plugin: &str, config: &str, limits: &str) -> String {
    format!(
        "[[job]]\nname = \"{name}\"\nschedule = \"@daily\"\ninput = \"input\"\n\
         [[job.step]]\nplugin = \"{plugin}\"\nconfig = {config}\nlimits = {limits}\n\n"
    )
}

/// A scratch directory and a runner over it.
pub struct Host {
    /// The scratch directory: `jobs.toml`, `input/`, `data/`.
    pub scratch: Scratch,
    /// The runner, in this process.
    pub runner: Runner,
}

impl Host {
    /// A host whose job file holds `jobs` and the good job `fine`.
    pub async fn new(jobs: &str) -> Host {
        let scratch = Scratch::new();
        std::fs::create_dir_all(scratch.path("input")).unwrap();
        scratch.write("input/in.csv", GOOD_CSV);
        let runner = build(&scratch, jobs, Arc::new(Sandbox::new().unwrap())).await;
        Host { scratch, runner }
    }

    /// The same scratch directory and sandbox with a new job file.
    pub async fn with_jobs(self, jobs: &str) -> Host {
        let runner = build(&self.scratch, jobs, self.runner.sandbox.clone()).await;
        Host {
            scratch: self.scratch,
            runner,
        }
    }

    /// The directory every job here reads.
    pub fn input_dir(&self) -> PathBuf {
        self.scratch.path("input")
    }

    /// Runs a job once, manually, for now.
    pub async fn run(&self, name: &str) -> RunResult {
        self.run_for(name, chrono::Utc::now()).await
    }

    /// Runs a job once, manually, for a given logical time.
    pub async fn run_for(&self, name: &str, logical_time: DateTime<Utc>) -> RunResult {
        let job = self.runner.file.job(name).expect("job in the job file");
        self.runner
            .run_job(
                job,
                Trigger::Manual,
                logical_time,
                &CancellationToken::new(),
            )
            .await
            .expect("the run is recorded")
            .expect("a manual run always runs")
    }

    /// Runs a one-step job and returns its step record as `runner show --json` has it.
    pub async fn run_one(&self, name: &str) -> serde_json::Value {
        let result = self.run(name).await;
        let (_, steps) = self.runner.store.run_detail(result.run_id).await.unwrap();
        assert_eq!(steps.len(), 1);
        serde_json::to_value(&steps[0]).unwrap()
    }

    /// Runs the good job and checks its result by hand count.
    pub async fn assert_still_serves(&self) {
        let result = self.run("fine").await;
        assert_eq!(result.status, "succeeded", "{:?}", result.error);
        let (_, steps) = self.runner.store.run_detail(result.run_id).await.unwrap();
        assert_eq!((steps[0].rows_in, steps[0].rows_out), (Some(3), Some(2)));
    }
}

async fn build(scratch: &Scratch, jobs: &str, sandbox: Arc<Sandbox>) -> Runner {
    let fine = job(
        "fine",
        "csv-filter",
        r#"{ column = "dep_delay", op = "is-not-na" }"#,
        "{}",
    );
    let path = scratch.job_file(&format!("{jobs}{fine}"));
    let data = scratch.path("data");
    std::fs::create_dir_all(&data).unwrap();
    Runner {
        store: Store::open(&data.join("runner.db")).await.unwrap(),
        sandbox,
        data_dir: data,
        plugin_dir: None,
        file: JobFile::load(&path).unwrap(),
    }
}
