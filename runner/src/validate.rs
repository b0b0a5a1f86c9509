//! `runner validate`: every check that can be made without running a job, all reported at
//! once, each naming the job, the step and the field.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use crate::config::JobFile;
use crate::sandbox::{PluginError, Sandbox};
use crate::schedule::Schedule;

/// One problem found in a job file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The job, when the problem is in one.
    pub job: Option<String>,
    /// The step, when the problem is in one.
    pub step: Option<String>,
    /// The field at fault.
    pub field: String,
    /// What is wrong, with the value.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names as written in the file, with any control character spelled out, so each
        // problem stays on its line.
        let plain = |name: &str| crate::plain::spelled_out(name, &[]);
        if let Some(job) = &self.job {
            write!(f, "job `{}`, ", plain(job))?;
        }
        if let Some(step) = &self.step {
            write!(f, "step `{}`, ", plain(step))?;
        }
        write!(f, "`{}`: {}", self.field, self.message)
    }
}

/// Checks a loaded job file: names, schedules, zones, inputs, plugins (that they exist and
/// are components of the step world, with the pinned digest) and limits.
pub async fn validate(
    file: &JobFile,
    sandbox: &Sandbox,
    plugin_dir: Option<&Path>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut push = |job: Option<&str>, step: Option<&str>, field: &str, message: String| {
        problems.push(Problem {
            job: job.map(str::to_string),
            step: step.map(str::to_string),
            field: field.to_string(),
            message,
        })
    };

    if file.jobs.is_empty() {
        push(
            None,
            None,
            "job",
            "the file declares no `[[job]]`".to_string(),
        );
    }
    let mut seen = HashSet::new();
    for job in &file.jobs {
        let j = Some(job.name.as_str());
        if !valid_name(&job.name) {
            push(
                j,
                None,
                "name",
                format!(
                    "`{}` is not a valid job name: use 1-64 letters, digits, `-` or `_`",
                    job.name
                ),
            );
        }
        if !seen.insert(job.name.clone()) {
            push(j, None, "name", format!("`{}` is declared twice", job.name));
        }
        let zone_ok = job.timezone.parse::<chrono_tz::Tz>().is_ok();
        if !zone_ok {
            push(
                j,
                None,
                "timezone",
                format!(
                    "`{}` is not an IANA time zone (for example `Europe/Berlin` or `UTC`)",
                    job.timezone
                ),
            );
        }
        if let Err(e) = Schedule::parse(&job.schedule, if zone_ok { &job.timezone } else { "UTC" })
        {
            push(j, None, "schedule", e.to_string());
        }
        let input = file.resolve(&job.input);
        match std::fs::metadata(&input) {
            _ if job.input.as_os_str().is_empty() => push(
                j,
                None,
                "input",
                "is empty: name a CSV file or a directory".to_string(),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => push(
                j,
                None,
                "input",
                format!("`{}` does not exist", input.display()),
            ),
            Err(e) => push(
                j,
                None,
                "input",
                format!("`{}` cannot be read: {e}", input.display()),
            ),
            Ok(m) if !(m.is_file() || m.is_dir()) => push(
                j,
                None,
                "input",
                format!(
                    "`{}` is neither a regular file nor a directory",
                    input.display()
                ),
            ),
            Ok(_) => {}
        }
        let mut step_names = HashSet::new();
        for name in job.steps.iter().filter_map(|s| s.name.as_deref()) {
            // Step names become directory names under the run and lines of `runs`/`show`.
            if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
                push(
                    j,
                    Some(name),
                    "name",
                    format!(
                        "step name `{}` must be 1-128 bytes without control characters",
                        crate::plain::spelled_out(name, &[])
                    ),
                );
            }
            if !step_names.insert(name) {
                push(
                    j,
                    Some(name),
                    "name",
                    format!("step name `{name}` is used twice in the job"),
                );
            }
        }
        for (step, field, message) in crate::serve::policy::problems(job) {
            push(j, step.as_deref(), field, message);
        }
        if job.steps.is_empty() {
            push(j, None, "step", "the job has no `[[job.step]]`".to_string());
        }
        for (idx, target) in job.targets.iter().enumerate() {
            for (field, message) in target.problems() {
                let field = format!("target.{}.{field}", target.display_name(idx));
                push(j, None, &field, message);
            }
        }

        for (spec, name) in job.steps.iter().zip(job.step_names()) {
            let s = Some(name.as_str());
            for (field, value) in
                non_finite_floats("config", &toml::Value::Table(spec.config.clone()))
            {
                push(
                    j,
                    s,
                    &field,
                    format!(
                        "`{value}`: a plugin's config reaches it as JSON, which has no NaN or infinity"
                    ),
                );
            }
            for limit in spec.limits.problems() {
                push(j, s, "limits", limit);
            }
            if let Some(pin) = &spec.sha256
                && !(pin.len() == 64 && pin.chars().all(|c| c.is_ascii_hexdigit()))
            {
                push(
                    j,
                    s,
                    "sha256",
                    format!("`{pin}` is not 64 hexadecimal digits"),
                );
                // The plugin is still checked, without the pin.
                let path = file.plugin_path(&spec.plugin, plugin_dir);
                if let Err(e) = sandbox.load(&path, None).await {
                    push(j, s, "plugin", e.to_string());
                }
                continue;
            }
            let path = file.plugin_path(&spec.plugin, plugin_dir);
            if let Err(e) = sandbox.load(&path, spec.sha256.as_deref()).await {
                let field = if matches!(e, PluginError::DigestMismatch { .. }) {
                    "sha256"
                } else {
                    "plugin"
                };
                push(j, s, field, e.to_string());
            }
        }
    }
    problems
}

/// The fields of a step's config that hold NaN or an infinity (`config.value`,
/// `config.list[2]`), which would reach the plugin as JSON `null`.
fn non_finite_floats(at: &str, value: &toml::Value) -> Vec<(String, f64)> {
    match value {
        toml::Value::Float(f) if !f.is_finite() => vec![(at.to_string(), *f)],
        toml::Value::Table(t) => t
            .iter()
            .flat_map(|(k, v)| non_finite_floats(&format!("{at}.{k}"), v))
            .collect(),
        toml::Value::Array(a) => a
            .iter()
            .enumerate()
            .flat_map(|(i, v)| non_finite_floats(&format!("{at}[{i}]"), v))
            .collect(),
        _ => Vec::new(),
    }
}

/// Job names end up in paths and logs: keep them plain.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
