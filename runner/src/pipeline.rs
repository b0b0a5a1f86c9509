//! Runs one job once: records the run, feeds each step the previous step's output, and
//! records every attempt and the run's end.
//!
//! Directory layout under the data directory, per run: `runs/<run id>/input/` (the job's
//! input file, linked or copied, when the input is a file) and `runs/<run id>/<n>-<step>/`,
//! the fresh output directory of step `n`, which becomes step `n + 1`'s read-only input.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::config::{Job, JobFile};
use crate::sandbox::{Outcome, Sandbox, StepInput, StepReport, bindings};
use crate::serve::policy::{DEFAULT_STEP_RETRY_ON, Retry};
use crate::store::{StepEnd, StepStart, Store, StoreError, Trigger, time_text};

/// What the runner needs to run jobs.
pub struct Runner {
    /// The job file.
    pub file: JobFile,
    /// The run history.
    pub store: Store,
    /// The sandbox (engine, linker, compiled plugins).
    pub sandbox: Arc<Sandbox>,
    /// Where run outputs go.
    pub data_dir: PathBuf,
    /// Overrides the job file's plugin directory.
    pub plugin_dir: Option<PathBuf>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The run's id.
    pub run_id: i64,
    /// `succeeded`, `failed` or `interrupted`.
    pub status: &'static str,
    /// Why it did not succeed.
    pub error: Option<String>,
    /// Output directory of the last step that ran.
    pub output_dir: Option<PathBuf>,
}

impl Runner {
    /// Runs `job` once for `logical_time`. Returns `None` when a scheduled slot already has a
    /// run (it never runs twice). Step failures are recorded outcomes, not errors; only a
    /// failure to record is an error.
    pub async fn run_job(
        &self,
        job: &Job,
        trigger: Trigger,
        logical_time: DateTime<Utc>,
        cancel: &CancellationToken,
    ) -> Result<Option<RunResult>, StoreError> {
        let definition = serde_json::to_string(job).unwrap_or_default();
        let job_id = self
            .store
            .upsert_job(&job.name, &job.schedule, &job.timezone, &definition)
            .await?;
        let Some(run_id) = self.store.create_run(job_id, logical_time, trigger).await? else {
            info!(job = %job.name, logical_time = %time_text(logical_time), "slot already has a run");
            return Ok(None);
        };
        let span =
            info_span!("run", job = %job.name, run_id, logical_time = %time_text(logical_time));
        self.execute(job, run_id, logical_time, cancel)
            .instrument(span)
            .await
            .map(Some)
    }

    async fn execute(
        &self,
        job: &Job,
        run_id: i64,
        logical_time: DateTime<Utc>,
        cancel: &CancellationToken,
    ) -> Result<RunResult, StoreError> {
        let run_dir = self.data_dir.join("runs").join(run_id.to_string());
        set_aside_stale(&run_dir);
        let staged = stage_input(&self.file.resolve(&job.input), &run_dir);

        let names = job.step_names();
        let output_dirs: Vec<PathBuf> = names
            .iter()
            .enumerate()
            .map(|(idx, name)| run_dir.join(format!("{idx}-{}", safe_name(name))))
            .collect();
        let step_start = |idx: usize| StepStart {
            run_id,
            idx,
            attempt: 1,
            name: &names[idx],
            plugin: &job.steps[idx].plugin,
            output_dir: &output_dirs[idx],
        };
        let first = match staged {
            Ok(_) if !names.is_empty() => Some(step_start(0)),
            _ => None,
        };
        self.store.start_run(run_id, first.as_ref()).await?;
        info!("run started");

        let mut input_dir = match staged {
            Ok(dir) => dir,
            Err(message) => {
                warn!(error = %message, "run failed before its first step");
                self.store
                    .finish_run(run_id, "failed", Some(&message), None, None)
                    .await?;
                return Ok(RunResult {
                    run_id,
                    status: "failed",
                    error: Some(message),
                    output_dir: None,
                });
            }
        };

        for (idx, name) in names.iter().enumerate() {
            let output_dir = output_dirs[idx].clone();
            let next = (idx + 1 < names.len()).then(|| step_start(idx + 1));
            let report = self
                .attempt_step(
                    job,
                    run_id,
                    logical_time,
                    idx,
                    name,
                    (&input_dir, &output_dir),
                    next,
                    cancel,
                )
                .await?;

            if !report.outcome.is_success() {
                let status = if report.outcome == Outcome::Interrupted {
                    "interrupted"
                } else {
                    "failed"
                };
                let message = format!(
                    "step {} `{name}` ended with {}: {}",
                    idx + 1,
                    report.outcome.as_str(),
                    report.error.as_deref().unwrap_or("no reason given")
                );
                self.store
                    .finish_run(
                        run_id,
                        status,
                        Some(&message),
                        Some(name),
                        Some(&output_dir),
                    )
                    .await?;
                warn!(error = %message, "run {status}");
                return Ok(RunResult {
                    run_id,
                    status,
                    error: Some(message),
                    output_dir: Some(output_dir),
                });
            }
            input_dir = output_dir;
        }

        self.store
            .finish_run(run_id, "succeeded", None, None, Some(&input_dir))
            .await?;
        info!("run succeeded");
        Ok(RunResult {
            run_id,
            status: "succeeded",
            error: None,
            output_dir: Some(input_dir),
        })
    }

    /// Runs a step's attempts, recording each, until one succeeds or the step's
    /// `[job.step.retry]` gives up (see [`Retry`]); returns the last attempt's report.
    /// The first attempt's start is already recorded (with the write before it); `next`,
    /// the following step's first attempt, is recorded with the write that ends this step
    /// when it succeeds.
    #[allow(clippy::too_many_arguments)] // One call site; a struct would only rename them.
    async fn attempt_step(
        &self,
        job: &Job,
        run_id: i64,
        logical_time: DateTime<Utc>,
        idx: usize,
        name: &str,
        (input_dir, output_dir): (&Path, &Path),
        next: Option<StepStart<'_>>,
        cancel: &CancellationToken,
    ) -> Result<StepReport, StoreError> {
        let spec = &job.steps[idx];
        let retry = Retry::from_spec(spec.retry.as_ref(), DEFAULT_STEP_RETRY_ON);
        let mut attempt = 1;
        loop {
            // A retry starts from an empty output directory, as the first attempt did.
            if attempt > 1 {
                let _ = std::fs::remove_dir_all(output_dir);
                self.store
                    .start_step(&StepStart {
                        run_id,
                        idx,
                        attempt,
                        name,
                        plugin: &spec.plugin,
                        output_dir,
                    })
                    .await?;
            }
            let span = info_span!(
                "step",
                step = %name,
                idx,
                attempt,
                plugin = %spec.plugin,
                sha256 = tracing::field::Empty
            );
            let (report, sha256) = self
                .run_step(
                    job,
                    run_id,
                    logical_time,
                    (idx, attempt),
                    name,
                    input_dir,
                    output_dir,
                    cancel,
                )
                .instrument(span)
                .await;
            let end = StepEnd {
                run_id,
                idx,
                attempt,
                plugin_sha256: sha256.as_deref(),
                report: &report,
                output_bytes: dir_bytes(output_dir),
            };
            let next = next.filter(|_| report.outcome.is_success());
            self.store.finish_step(&end, next.as_ref()).await?;
            info!(
                step = %name,
                attempt,
                outcome = report.outcome.as_str(),
                duration_ms = report.duration.as_secs_f64() * 1000.0,
                "step ended"
            );
            if report.outcome.is_success()
                || cancel.is_cancelled()
                || !retry.again(attempt, report.outcome)
            {
                return Ok(report);
            }
            let delay = retry.delay(attempt, (run_id as u64) << 8 ^ idx as u64);
            info!(step = %name, attempt, delay_ms = delay.as_millis() as u64, "retrying the step");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = cancel.cancelled() => return Ok(report),
            }
            attempt += 1;
        }
    }

    /// Loads the plugin and runs one attempt; returns its report and the digest that ran.
    #[allow(clippy::too_many_arguments)] // One call site; a struct would only rename them.
    async fn run_step(
        &self,
        job: &Job,
        run_id: i64,
        logical_time: DateTime<Utc>,
        (idx, attempt): (usize, u32),
        name: &str,
        input_dir: &Path,
        output_dir: &Path,
        cancel: &CancellationToken,
    ) -> (StepReport, Option<String>) {
        let spec = &job.steps[idx];
        let early = |outcome, error: String| (StepReport::early(outcome, error), None);
        if let Err(e) = std::fs::create_dir_all(output_dir) {
            return early(
                Outcome::LoadError,
                format!("cannot create output `{}`: {e}", output_dir.display()),
            );
        }
        let path = self
            .file
            .plugin_path(&spec.plugin, self.plugin_dir.as_deref());
        let plugin = match self.sandbox.load(&path, spec.sha256.as_deref()).await {
            Ok(p) => p,
            Err(e) => return early(Outcome::LoadError, e.to_string()),
        };
        tracing::Span::current().record("sha256", plugin.sha256.as_str());

        let context = bindings::RunContext {
            job: job.name.clone(),
            run_id: run_id as u64,
            logical_time: time_text(logical_time),
            attempt,
            step: name.to_string(),
            config: spec.config_json(),
            input_dir: String::new(),
            output_dir: String::new(),
            inputs: Vec::new(),
        };
        let input = StepInput {
            context,
            input_dir,
            output_dir,
            limits: &spec.limits,
        };
        let started = std::time::Instant::now();
        let report = tokio::select! {
            report = self.sandbox.run(&plugin, input) => report,
            () = cancel.cancelled() => StepReport {
                duration: started.elapsed(),
                limits: Some(spec.limits.effective()),
                ..StepReport::early(
                    Outcome::Interrupted,
                    "the runner was stopped while the step ran".to_string(),
                )
            },
        };
        (report, Some(plugin.sha256.clone()))
    }
}

/// The first step's input directory: the job's input if it is a directory, else a fresh
/// directory holding only the input file (hard-linked, or copied across file systems), so
/// the step is granted that file and nothing beside it.
fn stage_input(input: &Path, run_dir: &Path) -> Result<PathBuf, String> {
    // Link the file a symlink points to, not the symlink (which would dangle in the sandbox).
    let input = &std::fs::canonicalize(input)
        .map_err(|e| format!("input `{}` cannot be read: {e}", input.display()))?;
    let meta = std::fs::metadata(input)
        .map_err(|e| format!("input `{}` cannot be read: {e}", input.display()))?;
    if !meta.is_dir() && !meta.is_file() {
        return Err(format!(
            "input `{}` is neither a regular file nor a directory",
            input.display()
        ));
    }
    if meta.is_dir() {
        return Ok(input.to_path_buf());
    }
    let staged = run_dir.join("input");
    std::fs::create_dir_all(&staged)
        .map_err(|e| format!("cannot create `{}`: {e}", staged.display()))?;
    let name = input
        .file_name()
        .ok_or_else(|| format!("input `{}` has no file name", input.display()))?;
    let target = staged.join(name);
    if std::fs::hard_link(input, &target).is_err() {
        std::fs::copy(input, &target).map_err(|e| {
            format!(
                "cannot copy input `{}` to `{}`: {e}",
                input.display(),
                target.display()
            )
        })?;
    }
    Ok(staged)
}

/// Moves away a run directory left from an earlier history (a deleted or replaced
/// `runner.db` restarts run ids), so a new run never reads an old run's files. Nothing is
/// deleted: the old directory is renamed `<id>.stale-<unix time>`.
fn set_aside_stale(run_dir: &Path) {
    if !run_dir.exists() {
        return;
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut aside = run_dir.as_os_str().to_owned();
    aside.push(format!(".stale-{stamp}"));
    match std::fs::rename(run_dir, &aside) {
        Ok(()) => warn!(
            dir = %run_dir.display(),
            moved_to = %Path::new(&aside).display(),
            "a run directory from an earlier history was in the way; set it aside"
        ),
        Err(e) => {
            warn!(dir = %run_dir.display(), error = %e, "cannot set aside a stale run directory")
        }
    }
}

/// A step name fit for a directory name.
fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Total bytes of the regular files in a directory tree (symlinks are not followed).
fn dir_bytes(dir: &Path) -> Option<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).ok()?.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                total += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    Some(total)
}
