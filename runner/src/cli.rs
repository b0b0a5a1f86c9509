//! The command line: `run`, `serve`, `validate`, `runs`, `show` and `deliver`, and the
//! scheduling commands of [`ops`].
//!
//! Exit codes (also in the README): 0 success; 1 the job ran and did not succeed (a step
//! failed or was interrupted); 2 bad input (arguments, job file, unknown job or run);
//! 3 the runner itself failed (history store, file system); 4 the run succeeded but a
//! downstream trigger failed for good (`run`), or a trigger was given up on (`deliver`).
//! Errors are printed once, on stderr, as `error: ...` with their causes.

/// `println!` for a command's output. When the reader has gone away (`runner runs | head`)
/// the command ends quietly with exit 0, as Unix tools do; any other failure to write is
/// exit 3. (`println!` would panic.)
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::cli::output_failed(e);
        }
    }};
}

mod ops;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::JobFile;
use crate::pipeline::Runner;
use crate::sandbox::{Sandbox, SandboxOptions};
use crate::schedule::SystemClock;
use crate::store::{RunRecord, StepRecord, Store, Trigger};

/// Default job file, looked up in the current directory.
const DEFAULT_CONFIG: &str = "runner.toml";
/// Default data directory when neither the command line nor the job file names one.
const DEFAULT_DATA_DIR: &str = "runner-data";

/// A job runner whose steps are sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "runner", version, about)]
pub struct Cli {
    /// The job file.
    #[arg(long, short, global = true, env = "RUNNER_CONFIG")]
    config: Option<PathBuf>,
    /// Where the SQLite history and run outputs live (default: the job file's
    /// `runner.data_dir`, else `./runner-data`).
    #[arg(long, global = true, env = "RUNNER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Where plugins named without a path are found (default: the job file's
    /// `runner.plugin_dir`).
    #[arg(long, global = true, env = "RUNNER_PLUGIN_DIR")]
    plugin_dir: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    /// More log output (repeat for more).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a job once, now, and print where its report is.
    Run {
        /// The job's name.
        job: String,
        /// How long to keep retrying the run's downstream triggers before exiting; what is
        /// still pending then is sent by `runner serve` or `runner deliver`.
        #[arg(long, default_value_t = 300)]
        delivery_wait_secs: u64,
    },
    /// Fire jobs on their schedules until SIGINT or SIGTERM.
    Serve,
    /// Check a job file without running anything.
    Validate {
        /// The job file (default: --config).
        file: Option<PathBuf>,
    },
    /// List past runs, newest first.
    Runs {
        /// Only this job's runs.
        #[arg(long)]
        job: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one run: its steps, durations, summaries and logs.
    Show {
        /// The run's id.
        run_id: i64,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop firing a job's schedule (its slots are recorded as skipped) until `resume`.
    Pause {
        /// The job's name.
        job: String,
    },
    /// Fire a paused job's schedule again, from its next slot.
    Resume {
        /// The job's name.
        job: String,
    },
    /// Run a job once, now, recorded as manual, under its overlap, timeout and retry policies.
    Trigger {
        /// The job's name.
        job: String,
    },
    /// Run a job once for every slot of its schedule in a span, oldest first.
    Backfill {
        /// The job's name.
        job: String,
        /// First time of the span: RFC 3339, or a date meaning midnight in the job's zone.
        #[arg(long)]
        from: String,
        /// Last time of the span (included), written as --from.
        #[arg(long)]
        to: String,
    },
    /// Print a job's next fire times, in its zone and in UTC.
    Next {
        /// The job's name.
        job: String,
        /// How many.
        #[arg(short, default_value_t = 5)]
        n: usize,
        /// From this time instead of now (RFC 3339, or a date in the job's zone).
        #[arg(long)]
        after: Option<String>,
    },
    /// Send pending downstream triggers (left by a crash or a short wait) and exit.
    Deliver {
        /// How long to keep retrying before exiting.
        #[arg(long, default_value_t = 300)]
        wait_secs: u64,
    },
}

/// An error with the exit code it maps to.
#[derive(Debug)]
struct Failure {
    code: u8,
    error: anyhow::Error,
}

/// Exit code of a run that did not succeed.
pub const EXIT_RUN_FAILED: u8 = 1;
/// Exit code of bad input: arguments, job file, unknown names.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code of a failure of the runner itself.
pub const EXIT_INTERNAL: u8 = 3;

/// Ends the process when its standard output cannot be written (see `say!`).
fn output_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to standard output: {e}");
    std::process::exit(i32::from(EXIT_INTERNAL));
}
/// Exit code of a run that succeeded but whose downstream trigger failed for good (`run`),
/// or of a `deliver` that gave up on a trigger: the job's own result is recorded and fine,
/// yet what depends on it was not told. A trigger still pending is not a failure: it is
/// sent later by `serve` or `deliver`.
pub const EXIT_TRIGGER_FAILED: u8 = 4;

fn bad_input(error: anyhow::Error) -> Failure {
    Failure {
        code: EXIT_BAD_INPUT,
        error,
    }
}

fn internal(error: anyhow::Error) -> Failure {
    Failure {
        code: EXIT_INTERNAL,
        error,
    }
}

/// Parses the command line, runs the command and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_INTERNAL);
        }
    };
    let ended = runtime.block_on(async {
        let ended = dispatch(cli).await;
        close_opened_stores().await;
        ended
    });
    match ended {
        Ok(code) => ExitCode::from(code),
        Err(Failure { code, error }) => {
            eprintln!("error: {}", crate::plain::error_line(&error));
            ExitCode::from(code)
        }
    }
}

fn init_tracing(cli: &Cli) {
    let default = match (cli.verbose, &cli.command) {
        (0, Command::Serve) => "info",
        (0, _) => "warn",
        (1, _) => "info",
        _ => "debug",
    };
    // wasmtime and sqlx are chatty at debug; keep them at warn unless asked via RUNNER_LOG.
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNNER_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{default},wasmtime=warn,cranelift=warn,sqlx=warn"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if cli.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn dispatch(cli: Cli) -> Result<u8, Failure> {
    match &cli.command {
        Command::Run {
            job,
            delivery_wait_secs,
        } => cmd_run(&cli, job, *delivery_wait_secs).await,
        Command::Deliver { wait_secs } => cmd_deliver(&cli, *wait_secs).await,
        Command::Serve => cmd_serve(&cli).await,
        Command::Validate { file } => cmd_validate(&cli, file.as_deref()).await,
        Command::Runs { job, limit, json } => cmd_runs(&cli, job.as_deref(), *limit, *json).await,
        Command::Show { run_id, json } => cmd_show(&cli, *run_id, *json).await,
        Command::Pause { job } => ops::cmd_pause(&cli, job, true).await,
        Command::Resume { job } => ops::cmd_pause(&cli, job, false).await,
        Command::Trigger { job } => ops::cmd_trigger(&cli, job).await,
        Command::Backfill { job, from, to } => ops::cmd_backfill(&cli, job, from, to).await,
        Command::Next { job, n, after } => ops::cmd_next(&cli, job, *n, after.as_deref()),
    }
}

/// The job file named on the command line, or `runner.toml`.
fn load_job_file(cli: &Cli, explicit: Option<&Path>) -> Result<JobFile, Failure> {
    let path = explicit
        .or(cli.config.as_deref())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    JobFile::load(&path).map_err(|e| bad_input(e.into()))
}

fn data_dir(cli: &Cli, file: Option<&JobFile>) -> PathBuf {
    if let Some(dir) = &cli.data_dir {
        return dir.clone();
    }
    match file.and_then(|f| f.runner.data_dir.as_deref().map(|d| f.resolve(d))) {
        Some(dir) => dir,
        None => PathBuf::from(DEFAULT_DATA_DIR),
    }
}

/// The histories this command opened: each is closed when the command ends, however it
/// ends, so that its write-ahead log is folded into `runner.db` (see [`Store::close`]).
static OPENED_STORES: std::sync::Mutex<Vec<Store>> = std::sync::Mutex::new(Vec::new());

async fn open_store(dir: &Path) -> Result<Store, Failure> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory `{}`", dir.display()))
        .map_err(internal)?;
    let store = Store::open(&dir.join("runner.db"))
        .await
        .map_err(|e| internal(e.into()))?;
    OPENED_STORES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(store.clone());
    Ok(store)
}

async fn close_opened_stores() {
    let stores = std::mem::take(
        &mut *OPENED_STORES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    for store in stores {
        store.close().await;
    }
}

/// Loads the job file, validates it, and opens the store: what `run` and `serve` share.
async fn prepare(cli: &Cli) -> Result<Runner, Failure> {
    let file = load_job_file(cli, None)?;
    let data_dir = data_dir(cli, Some(&file));
    let sandbox = Sandbox::with_options(SandboxOptions {
        cache_dir: Some(data_dir.join("cache").join("components")),
        ..SandboxOptions::default()
    });
    let sandbox = Arc::new(sandbox.map_err(internal)?);
    let problems = crate::validate::validate(&file, &sandbox, cli.plugin_dir.as_deref()).await;
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        return Err(bad_input(anyhow::anyhow!(
            "job file `{}` has {} problem(s):\n{}",
            file.path.display(),
            problems.len(),
            list.join("\n")
        )));
    }
    let store = open_store(&data_dir).await?;
    let data_dir = crate::config::normalize(&std::path::absolute(&data_dir).unwrap_or(data_dir));
    Ok(Runner {
        file,
        store,
        sandbox,
        data_dir,
        plugin_dir: cli.plugin_dir.clone(),
    })
}

async fn cmd_run(cli: &Cli, job_name: &str, delivery_wait: u64) -> Result<u8, Failure> {
    let runner = prepare(cli).await?;
    tidy_dead_manual_runs(&runner.store).await?;
    let Some(job) = runner.file.job(job_name).cloned() else {
        let names: Vec<&str> = runner.file.jobs.iter().map(|j| j.name.as_str()).collect();
        return Err(bad_input(anyhow::anyhow!(
            "no job `{}` in `{}` (jobs: {})",
            crate::plain::spelled_out(job_name, &[]),
            runner.file.path.display(),
            names.join(", ")
        )));
    };
    let cancel = crate::serve::stop_on_signals().map_err(internal)?;
    let result = runner
        .run_job(&job, Trigger::Manual, chrono::Utc::now(), &cancel)
        .await
        .map_err(|e| internal(e.into()))?
        .ok_or_else(|| internal(anyhow::anyhow!("a manual run was refused as a duplicate")))?;

    let (run, steps) = runner
        .store
        .run_detail(result.run_id)
        .await
        .map_err(|e| internal(e.into()))?;
    say!("run {} of `{}`: {}", run.id, run.job, run.status);
    for s in &steps {
        say!("  {}", step_line(s));
    }
    if let Some(error) = &result.error {
        say!("error: {error}");
    }
    if result.status == "succeeded"
        && let Some(dir) = &result.output_dir
    {
        let report = dir.join("report.md");
        if report.exists() {
            say!("report: {}", report.display());
        }
        say!("output: {}", dir.display());
    }
    let triggers =
        deliver_and_report(&runner.store, Some(result.run_id), delivery_wait, &cancel).await?;
    Ok(if result.status != "succeeded" {
        EXIT_RUN_FAILED
    } else if triggers.failed > 0 {
        EXIT_TRIGGER_FAILED
    } else {
        0
    })
}

/// Marks the manual runs of killed `runner run` or `trigger` processes as interrupted
/// (sending their failure triggers), so they do not read `running` until a `serve` starts.
async fn tidy_dead_manual_runs(store: &Store) -> Result<(), Failure> {
    let marked = store
        .interrupt_dead_manual_runs("the runner process ended before the run finished")
        .await
        .map_err(|e| internal(e.into()))?;
    if marked > 0 {
        tracing::warn!(
            runs = marked,
            "marked manual runs left unfinished by a process that ended as interrupted"
        );
    }
    Ok(())
}

async fn cmd_serve(cli: &Cli) -> Result<u8, Failure> {
    let runner = Arc::new(prepare(cli).await?);
    let cancel: CancellationToken = crate::serve::stop_on_signals().map_err(internal)?;
    crate::serve::serve(runner.clone(), Arc::new(SystemClock), cancel)
        .await
        .map_err(internal)?;
    Ok(0)
}

/// Sends the pending triggers (of one run, or all) and prints how each stands. For one run,
/// `failed` counts its triggers recorded as failed, whenever that happened; for all, the
/// triggers this call gave up on.
async fn deliver_and_report(
    store: &Store,
    run_id: Option<i64>,
    wait_secs: u64,
    cancel: &CancellationToken,
) -> Result<crate::invoker::Drained, Failure> {
    let invoker = crate::invoker::Invoker::new(store.clone()).map_err(internal)?;
    let mut drained = invoker
        .drain(run_id, std::time::Duration::from_secs(wait_secs), cancel)
        .await
        .map_err(internal)?;
    if let Some(run_id) = run_id {
        let deliveries = crate::invoker::deliveries(store, run_id)
            .await
            .map_err(|e| internal(e.into()))?;
        drained.failed = deliveries.iter().filter(|d| d.state == "failed").count();
        for d in &deliveries {
            let why = match (&d.error_code, &d.error) {
                (Some(code), Some(error)) => format!(" ({code}: {error})"),
                _ => String::new(),
            };
            say!("trigger `{}`: {}{why}", d.target, d.state);
        }
    }
    if drained.pending > 0 {
        say!(
            "{} trigger(s) still pending: `runner serve` or `runner deliver` will send them",
            drained.pending
        );
    }
    Ok(drained)
}

async fn cmd_deliver(cli: &Cli, wait_secs: u64) -> Result<u8, Failure> {
    let store = history(cli).await?;
    let cancel = crate::serve::stop_on_signals().map_err(internal)?;
    let drained = deliver_and_report(&store, None, wait_secs, &cancel).await?;
    if drained.failed > 0 {
        say!(
            "{} trigger(s) failed for good: `runner show RUN` says why",
            drained.failed
        );
        return Ok(EXIT_TRIGGER_FAILED);
    }
    Ok(0)
}

async fn cmd_validate(cli: &Cli, file: Option<&Path>) -> Result<u8, Failure> {
    let file = load_job_file(cli, file)?;
    let sandbox = Sandbox::new().map_err(internal)?;
    let problems = crate::validate::validate(&file, &sandbox, cli.plugin_dir.as_deref()).await;
    if problems.is_empty() {
        let steps: usize = file.jobs.iter().map(|j| j.steps.len()).sum();
        say!(
            "`{}`: {} job(s), {steps} step(s), no problems",
            file.path.display(),
            file.jobs.len()
        );
        return Ok(0);
    }
    for p in &problems {
        eprintln!("{}: {p}", file.path.display());
    }
    Err(bad_input(anyhow::anyhow!(
        "{} problem(s) in `{}`",
        problems.len(),
        file.path.display()
    )))
}

/// The store for the read-only commands: the job file is optional here.
async fn history(cli: &Cli) -> Result<Store, Failure> {
    Ok(history_and_jobs(cli).await?.0)
}

/// The run history, with the job file when there is one.
async fn history_and_jobs(cli: &Cli) -> Result<(Store, Option<JobFile>), Failure> {
    let file = match (&cli.config, JobFile::load(Path::new(DEFAULT_CONFIG))) {
        (Some(path), _) => Some(JobFile::load(path).map_err(|e| bad_input(e.into()))?),
        (None, Ok(f)) => Some(f),
        (None, Err(_)) => None,
    };
    let dir = data_dir(cli, file.as_ref());
    if dir.exists() && !dir.is_dir() {
        return Err(bad_input(anyhow::anyhow!(
            "data directory `{}` is not a directory",
            dir.display()
        )));
    }
    if !dir.join("runner.db").exists() {
        return Err(bad_input(anyhow::anyhow!(
            "no run history in `{}` (give --data-dir, or run a job first)",
            dir.display()
        )));
    }
    Ok((open_store(&dir).await?, file))
}

async fn cmd_runs(cli: &Cli, job: Option<&str>, limit: u32, json: bool) -> Result<u8, Failure> {
    let (store, file) = history_and_jobs(cli).await?;
    let runs = store
        .list_runs(job, limit)
        .await
        .map_err(|e| internal(e.into()))?;
    // A name that neither the history nor the job file knows is most likely a typo.
    if let Some(name) = job
        && runs.is_empty()
        && file.as_ref().and_then(|f| f.job(name)).is_none()
        && !store.has_job(name).await.map_err(|e| internal(e.into()))?
    {
        return Err(bad_input(anyhow::anyhow!(
            "no job named `{}` in the run history or the job file",
            crate::plain::spelled_out(name, &[])
        )));
    }
    if json {
        say!(
            "{}",
            serde_json::to_string_pretty(&runs).map_err(|e| internal(e.into()))?
        );
        return Ok(0);
    }
    say!(
        "{:>6}  {:<20} {:<24} {:<9} {:<11} {:>9}  ERROR",
        "ID",
        "JOB",
        "LOGICAL TIME",
        "TRIGGER",
        "STATUS",
        "SECONDS"
    );
    for r in &runs {
        say!(
            "{:>6}  {:<20} {:<24} {:<9} {:<11} {:>9}  {}",
            r.id,
            r.job,
            r.logical_time,
            r.trigger,
            r.status,
            seconds(r).map(|s| format!("{s:.2}")).unwrap_or_default(),
            r.error.as_deref().unwrap_or("")
        );
    }
    Ok(0)
}

async fn cmd_show(cli: &Cli, run_id: i64, json: bool) -> Result<u8, Failure> {
    let store = history(cli).await?;
    let (run, steps) = store.run_detail(run_id).await.map_err(|e| match e {
        crate::store::StoreError::NoSuchRun(_) => bad_input(e.into()),
        other => internal(other.into()),
    })?;
    let deliveries = crate::invoker::deliveries(&store, run_id)
        .await
        .map_err(|e| internal(e.into()))?;
    if json {
        let value = serde_json::json!({ "run": run, "steps": steps, "deliveries": deliveries });
        say!(
            "{}",
            serde_json::to_string_pretty(&value).map_err(|e| internal(e.into()))?
        );
        return Ok(0);
    }
    say!("run {} of `{}`", run.id, run.job);
    say!("  status:       {}", run.status);
    say!("  trigger:      {}", run.trigger);
    say!("  logical time: {}", run.logical_time);
    say!(
        "  started:      {}",
        run.started_at.as_deref().unwrap_or("-")
    );
    say!(
        "  finished:     {}",
        run.finished_at.as_deref().unwrap_or("-")
    );
    if let Some(e) = &run.error {
        say!("  error:        {e}");
    }
    if let Some(o) = &run.output_dir {
        say!("  output:       {o}");
    }
    for s in &steps {
        say!();
        say!("step {}", step_line(s));
        say!(
            "  plugin:  {} (sha256 {})",
            s.plugin,
            s.plugin_sha256.as_deref().unwrap_or("-")
        );
        if let Some(m) = &s.metrics {
            say!("  metrics: {m}");
        }
        if let Some(peak) = s.memory_peak_bytes.filter(|&p| p > 0) {
            say!(
                "  memory:  {:.1} MiB peak linear memory",
                peak as f64 / (1 << 20) as f64
            );
        }
        if let Some(fuel) = s.fuel_consumed {
            say!("  fuel:    {fuel} units burned");
        }
        if let Some(e) = &s.error {
            say!("  error:   {e}");
        }
        if let Some(o) = &s.output_dir {
            say!("  output:  {o} ({} bytes)", s.output_bytes.unwrap_or(0));
        }
        if !s.log.is_empty() {
            say!(
                "  log{}:",
                if s.log_truncated { " (truncated)" } else { "" }
            );
            // The log is the guest's own output: shown with its control characters
            // (escape sequences, carriage returns) written out, so it cannot redraw the
            // operator's terminal.
            for line in s.log.lines() {
                say!("    {}", crate::plain::spelled_out(line, &['\t']));
            }
        }
    }
    for line in crate::invoker::show_lines(&deliveries) {
        say!("{line}");
    }
    Ok(0)
}

fn step_line(s: &StepRecord) -> String {
    let rows = match (s.rows_in, s.rows_out) {
        (Some(i), Some(o)) => format!("{i} -> {o} rows"),
        _ => String::new(),
    };
    format!(
        "{} {:<16} attempt {} {:<14} {:>9}  {rows}",
        s.idx + 1,
        s.name,
        s.attempt,
        s.outcome.as_deref().unwrap_or(&s.status),
        s.duration_ms
            .map(|d| format!("{:.3} s", d / 1000.0))
            .unwrap_or_default(),
    )
}

fn seconds(r: &RunRecord) -> Option<f64> {
    let start = chrono::DateTime::parse_from_rfc3339(r.started_at.as_deref()?).ok()?;
    let end = chrono::DateTime::parse_from_rfc3339(r.finished_at.as_deref()?).ok()?;
    Some((end - start).num_milliseconds() as f64 / 1000.0)
}
