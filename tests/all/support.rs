//! Shared test helpers: where the plugins and the binary are, a scratch directory with a
//! job file, and running the `runner` binary in it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The full nycflights13 flights table (read-only, shared).
pub fn flights_csv() -> PathBuf {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/nycflights13/flights.csv");
    assert!(
        path.exists(),
        "the shared data set is missing: {}",
        path.display()
    );
    path
}

/// Where `cargo plugins` put the components.
pub fn plugin_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("wasm32-wasip2/plugin");
    assert!(
        dir.join("csv_filter.wasm").exists() && dir.join("hostile_panic.wasm").exists(),
        "plugins are not built in {}: run `cargo plugins` first",
        dir.display()
    );
    dir
}

/// A plugin's component file.
pub fn plugin(name: &str) -> PathBuf {
    plugin_dir().join(format!("{}.wasm", name.replace('-', "_")))
}

/// A scratch directory holding a job file and the runner's data directory.
pub struct Scratch {
    /// The directory; removed on drop.
    pub dir: tempfile::TempDir,
}

impl Scratch {
    /// An empty scratch directory.
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The path of a file in it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `jobs.toml` with a `[runner]` table pointing at the built plugins and a data
    /// directory inside the scratch directory, followed by `jobs`.
    pub fn job_file(&self, jobs: &str) -> PathBuf {
        let text = format!(
            "[runner]\ndata_dir = \"data\"\nplugin_dir = \"{}\"\n\n{jobs}",
            plugin_dir().display()
        );
        let path = self.path("jobs.toml");
        std::fs::write(&path, text).expect("write job file");
        path
    }

    /// Writes a file into the scratch directory.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// Runs the runner binary with `--config jobs.toml` and `args`, in this directory.
    pub fn runner(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_runner"))
            .current_dir(self.dir.path())
            .arg("--config")
            .arg(self.path("jobs.toml"))
            .args(args)
            .env_remove("RUNNER_CONFIG")
            .env_remove("RUNNER_DATA_DIR")
            .env_remove("RUNNER_PLUGIN_DIR")
            .output()
            .expect("run the runner binary")
    }

    /// Starts the runner binary with `--config jobs.toml` and `args` in the background,
    /// its output discarded.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_runner"))
            .current_dir(self.dir.path())
            .arg("--config")
            .arg(self.path("jobs.toml"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the runner binary")
    }

    /// A run's status as `runner show` gives it; `None` while there is no such run.
    pub fn status(&self, run_id: i64) -> Option<String> {
        let out = self.runner(&["show", &run_id.to_string(), "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["run"]["status"].as_str().map(str::to_string)
    }

    /// Waits (up to a minute) until run `run_id` has `status`.
    pub fn wait_status(&self, run_id: i64, status: &str) {
        let start = std::time::Instant::now();
        while self.status(run_id).as_deref() != Some(status) {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "run {run_id} never became `{status}` (it is {:?})",
                self.status(run_id)
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// `runner show RUN --json`, parsed.
    pub fn show(&self, run_id: i64) -> serde_json::Value {
        let out = self.runner(&["show", &run_id.to_string(), "--json"]);
        assert!(out.status.success(), "show failed: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("show --json is JSON")
    }

    /// `runner runs --json`, parsed.
    pub fn runs(&self) -> Vec<serde_json::Value> {
        self.runs_limit(50)
    }

    /// `runner runs --json --limit N`, parsed.
    pub fn runs_limit(&self, limit: u32) -> Vec<serde_json::Value> {
        let out = self.runner(&["runs", "--json", "--limit", &limit.to_string()]);
        assert!(out.status.success(), "runs failed: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("runs --json is JSON")
    }
}

/// Bytes as text, for messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A job with one step, `plugin`, over `input`, with a TOML inline `config`.
pub fn one_step_job(name: &str, input: &Path, plugin: &str, config: &str) -> String {
    format!(
        "[[job]]\nname = \"{name}\"\nschedule = \"@daily\"\ninput = \"{}\"\n\
         [[job.step]]\nplugin = \"{plugin}\"\nconfig = {config}\n\n",
        input.display()
    )
}

/// The daily-flights job as the bundled example declares it, over `input`.
pub fn daily_flights(input: &Path) -> String {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/daily-flights.toml"),
    )
    .expect("the bundled example");
    // Keep the example's jobs (not its [runner] table) so the test checks what ships.
    let jobs = &example[example.find("[[job]]").expect("the example declares a job")..];
    jobs.replace(
        "input = \"data/flights-2013-01.csv\"",
        &format!("input = \"{}\"", input.display()),
    )
}
