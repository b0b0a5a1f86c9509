//! The job file: its schema, loading it with precise errors, and resolving its paths.
//!
//! A job file is TOML. Relative paths in it are relative to the file itself, so a job file
//! and the data beside it can move together. Checks that need the sandbox (is the plugin a
//! component of our world?) live in [`crate::validate`]; this module only parses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sandbox::Limits;
use crate::serve::policy::RetrySpec;

/// The whole job file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    /// Settings of the runner itself.
    #[serde(default)]
    pub runner: RunnerSettings,
    /// The jobs, in file order.
    #[serde(default, rename = "job")]
    pub jobs: Vec<Job>,
    /// The file this was read from (absolute), set by [`JobFile::load`].
    #[serde(skip)]
    pub path: PathBuf,
}

/// The `[runner]` table.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerSettings {
    /// Where the SQLite database and run outputs live.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Where plugins named without a path are looked up.
    #[serde(default)]
    pub plugin_dir: Option<PathBuf>,
}

/// One `[[job]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Unique name: letters, digits, `-` and `_`.
    pub name: String,
    /// Cron expression (crontab(5) syntax).
    pub schedule: String,
    /// IANA time zone the schedule is read in.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Input file or directory of the first step.
    pub input: PathBuf,
    /// The steps, run in order, each reading the previous one's output.
    #[serde(default, rename = "step")]
    pub steps: Vec<StepSpec>,
    /// Slots missed while the runner was down: `skip`, `latest` (default) or `all`.
    #[serde(default)]
    pub missed: Option<String>,
    /// With `missed = "all"`, the most slots one catch-up runs (default 10).
    #[serde(default)]
    pub catch_up_max: Option<u32>,
    /// A slot older than this when its turn comes is recorded as missed (default: no limit).
    #[serde(default)]
    pub starting_deadline_secs: Option<u64>,
    /// A slot due while a run is running: `allow` (default), `forbid`, `queue-one`, `replace`.
    #[serde(default)]
    pub overlap: Option<String>,
    /// Deadline of the whole run in seconds (default: none; each step has its own).
    #[serde(default)]
    pub timeout_secs: Option<f64>,
    /// Whole-run retries (`[job.retry]`); without it a run is tried once.
    #[serde(default)]
    pub retry: Option<RetrySpec>,
    /// Azure Functions triggered when a run ends (see [`crate::invoker`]).
    #[serde(default, rename = "target", skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<crate::invoker::Target>,
}

/// One `[[job.step]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Name of the step within the job (default: the plugin's name).
    #[serde(default)]
    pub name: Option<String>,
    /// A plugin name looked up in the plugin directory, or a path to a `.wasm` file.
    pub plugin: String,
    /// If set, the plugin's sha256 must be exactly this (hex).
    #[serde(default)]
    pub sha256: Option<String>,
    /// The step's own config, handed to it as JSON.
    #[serde(default)]
    pub config: toml::Table,
    /// Sandbox limits for this step; unset ones take the defaults.
    #[serde(default)]
    pub limits: Limits,
    /// Retries of this step within a run (`[job.step.retry]`); without it, one attempt.
    #[serde(default)]
    pub retry: Option<RetrySpec>,
}

fn default_timezone() -> String {
    "UTC".to_string()
}

/// Why a job file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read job file `{path}`: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        reason: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema.
    #[error("job file `{path}`, line {line}, column {column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

impl JobFile {
    /// Reads and parses a job file; relative paths are kept as written (see the `resolve_*`
    /// methods).
    pub fn load(path: &Path) -> Result<JobFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|reason| ConfigError::Read {
            path: path.to_path_buf(),
            reason,
        })?;
        let mut file = JobFile::parse(&text, path)?;
        file.path = normalize(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
        Ok(file)
    }

    /// Parses job-file text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<JobFile, ConfigError> {
        toml::from_str::<JobFile>(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| line_column(text, s.start))
                .unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })
    }

    /// The folder relative paths in this file are read from.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// A path from the file, made absolute against the file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            normalize(path)
        } else {
            normalize(&self.base_dir().join(path))
        }
    }

    /// Finds a job by name.
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.name == name)
    }

    /// Where a step's plugin file is: a path (with `/` or ending in `.wasm`) relative to
    /// this file, or a name looked up in `plugin_dir` as `<name>.wasm`, then with `-` as `_`
    /// (how Cargo names the files it builds).
    pub fn plugin_path(&self, plugin: &str, plugin_dir_override: Option<&Path>) -> PathBuf {
        if plugin.contains('/') || plugin.ends_with(".wasm") {
            return self.resolve(Path::new(plugin));
        }
        let dir = match plugin_dir_override {
            Some(dir) => dir.to_path_buf(),
            None => self.resolve(self.runner.plugin_dir.as_deref().unwrap_or(Path::new("."))),
        };
        let plain = dir.join(format!("{plugin}.wasm"));
        if plain.exists() {
            return plain;
        }
        let cargo_name = dir.join(format!("{}.wasm", plugin.replace('-', "_")));
        if cargo_name.exists() {
            cargo_name
        } else {
            plain
        }
    }
}

impl Job {
    /// The step names, defaulted and made unique by position where the file repeats one.
    pub fn step_names(&self) -> Vec<String> {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        self.steps
            .iter()
            .map(|s| {
                let base = s.name.clone().unwrap_or_else(|| s.plugin_stem());
                let n = seen.entry(base.clone()).or_insert(0);
                *n += 1;
                if *n == 1 { base } else { format!("{base}-{n}") }
            })
            .collect()
    }
}

impl StepSpec {
    /// The plugin's name without folders or `.wasm`.
    pub fn plugin_stem(&self) -> String {
        Path::new(&self.plugin)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.plugin.clone())
    }

    /// The step's config as the JSON text handed to the plugin.
    pub fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap_or_else(|_| "{}".to_string())
    }
}

/// Removes `.` and resolves `..` lexically, so stored and printed paths read plainly.
/// (Lexical is what a job file means: its paths are written relative to the file.)
pub fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_error_reports_line_and_column() {
        let text = "[[job]]\nname = \"a\"\nschedule = \"* * * * *\nx = 1\n";
        let err = JobFile::parse(text, Path::new("j.toml")).unwrap_err();
        match err {
            ConfigError::Parse { line, column, .. } => {
                // The string opened on line 3 (`"* * * * *`, columns 12-21) lacks its closing
                // quote where the line ends: column 22.
                assert_eq!((line, column), (3, 22));
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn an_unknown_key_is_named_with_its_position() {
        let text = "[[job]]\nname = \"a\"\nschedule = \"@daily\"\ninput = \"x\"\ncolour = 1\n";
        let err = JobFile::parse(text, Path::new("j.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 5") && err.contains("colour"), "{err}");
    }

    #[test]
    fn relative_paths_resolve_against_the_file_and_read_plainly() {
        let mut file = JobFile::parse("", Path::new("j.toml")).unwrap();
        file.path = PathBuf::from("/srv/jobs/examples/j.toml");
        assert_eq!(
            file.resolve(Path::new("../../data/x.csv")),
            Path::new("/srv/data/x.csv")
        );
        assert_eq!(
            file.resolve(Path::new("./a/./b")),
            Path::new("/srv/jobs/examples/a/b")
        );
        assert_eq!(file.resolve(Path::new("/abs/y")), Path::new("/abs/y"));
    }

    #[test]
    fn steps_default_to_plugin_names_and_repeats_are_numbered() {
        let text = r#"
            [[job]]
            name = "a"
            schedule = "@daily"
            input = "in.csv"
            [[job.step]]
            plugin = "csv-filter"
            [[job.step]]
            plugin = "plugins/csv-filter.wasm"
            [[job.step]]
            name = "final"
            plugin = "report"
        "#;
        let file = JobFile::parse(text, Path::new("j.toml")).unwrap();
        assert_eq!(
            file.jobs[0].step_names(),
            ["csv-filter", "csv-filter-2", "final"]
        );
        assert_eq!(file.jobs[0].timezone, "UTC");
    }

    #[test]
    fn step_config_becomes_json() {
        let text = r#"
            [[job]]
            name = "a"
            schedule = "@daily"
            input = "in.csv"
            [[job.step]]
            plugin = "csv-filter"
            config = { column = "dep_delay", op = ">", value = 0 }
        "#;
        let file = JobFile::parse(text, Path::new("j.toml")).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&file.jobs[0].steps[0].config_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"column": "dep_delay", "op": ">", "value": 0})
        );
    }
}
