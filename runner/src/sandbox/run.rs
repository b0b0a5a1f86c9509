//! Running one step attempt: a fresh store with its limits, the guest's two directories,
//! the deadline and quota watch, and the report of how it ended.
//!
//! Two mechanisms stop a guest at its deadline. The epoch callback interrupts a guest that
//! is executing wasm; a guest waiting inside a host call (a sleep, a read that never
//! returns) executes no wasm, so the whole call is also raced against a timer and its
//! future dropped when the timer wins, which cancels the pending host work.

use std::path::Path;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use super::capture::LogCapture;
use super::engine::EPOCH_TICK;
use super::limiter::StepLimiter;
use super::outcome::{Outcome, StepReport};
use super::plugin::Plugin;
use super::quota::{CHECK_EVERY_TICKS, Quota};
use super::verdict::{self, Observed};
use super::{GUEST_INPUT_DIR, GUEST_OUTPUT_DIR, Limits, Sandbox, bindings};

/// The state of one step's store.
pub struct StepState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: StepLimiter,
    log: LogCapture,
    quota_hit: Option<String>,
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::runner::step::types::Host for StepState {}

impl bindings::runner::step::log::Host for StepState {
    fn log(&mut self, level: bindings::Level, message: String) {
        let level = match level {
            bindings::Level::Trace => "trace",
            bindings::Level::Debug => "debug",
            bindings::Level::Info => "info",
            bindings::Level::Warn => "warn",
            bindings::Level::Error => "error",
        };
        self.log.line(level, &message);
    }
}

/// What one step attempt is given.
pub struct StepInput<'a> {
    /// The run context handed to the guest (its `inputs` are filled in by the sandbox).
    pub context: bindings::RunContext,
    /// Host directory granted read-only as `/input`.
    pub input_dir: &'a Path,
    /// Host directory granted read-write as `/output`; must exist and be fresh.
    pub output_dir: &'a Path,
    /// Limits of this attempt.
    pub limits: &'a Limits,
}

impl Sandbox {
    /// Runs one step attempt to its end. Never fails: every way the guest can end is an
    /// [`Outcome`] in the report.
    pub async fn run(&self, plugin: &Plugin, input: StepInput<'_>) -> StepReport {
        let limits = input.limits.effective();
        // A stack cap other than the plugin's engine's needs the engine for that cap; that
        // compile happens before the step's clock starts.
        let stack_kib = limits.stack_bytes >> 10;
        let other_engine;
        let plugin = if plugin.stack_kib == stack_kib {
            plugin
        } else {
            match self
                .load_with_stack(&plugin.path, Some(&plugin.sha256), stack_kib)
                .await
            {
                Ok(p) => {
                    other_engine = p;
                    &*other_engine
                }
                Err(e) => {
                    let mut report = StepReport::early(Outcome::LoadError, e.to_string());
                    report.limits = Some(limits);
                    return report;
                }
            }
        };

        let started = Instant::now();
        let log = LogCapture::new(usize::try_from(limits.log_bytes).unwrap_or(usize::MAX));
        let timeout = Duration::from_secs_f64(limits.timeout_secs);
        let quota = Quota::new(input.output_dir, limits.output_bytes, limits.output_files);
        let report = |outcome, summary, error: Option<String>| {
            let (text, truncated) = log.finish();
            StepReport {
                outcome,
                summary,
                error,
                log: text,
                log_truncated: truncated,
                duration: started.elapsed(),
                memory_peak_bytes: 0,
                fuel_consumed: None,
                limits: Some(limits),
            }
        };

        let mut context = input.context;
        context.input_dir = GUEST_INPUT_DIR.to_string();
        context.output_dir = GUEST_OUTPUT_DIR.to_string();
        context.inputs = match list_files(input.input_dir) {
            Ok(names) => names,
            Err(e) => {
                let msg = format!("cannot list input `{}`: {e}", input.input_dir.display());
                return report(Outcome::LoadError, None, Some(msg));
            }
        };
        let wasi = match wasi_context(input.input_dir, input.output_dir, &log) {
            Ok(w) => w,
            Err(e) => return report(Outcome::LoadError, None, Some(format!("{e:#}"))),
        };

        let state = StepState {
            wasi,
            table: ResourceTable::new(),
            limiter: StepLimiter::new(&limits),
            log: log.clone(),
            quota_hit: None,
        };
        let mut store = Store::new(&plugin.engine, state);
        store.limiter(|s| &mut s.limiter);
        if self.options.engine.fuel {
            // Without a budget the step may burn all it likes; fuel is still counted
            // because wasmtime turns fuel on per engine, not per store.
            let fuel = limits.fuel.unwrap_or(u64::MAX);
            store
                .set_fuel(fuel)
                .expect("fuel is enabled on this engine");
        }
        let deadline = started + timeout;
        let watched = quota.clone();
        let mut ticks: u64 = 0;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut ctx| {
            if Instant::now() >= deadline {
                return Ok(UpdateDeadline::Interrupt);
            }
            ticks += 1;
            if ticks.is_multiple_of(CHECK_EVERY_TICKS)
                && let Some(why) = watched.check()
            {
                ctx.data_mut().quota_hit = Some(why);
                return Ok(UpdateDeadline::Interrupt);
            }
            // Yielding each tick lets other steps on this thread run.
            Ok(UpdateDeadline::Yield(1))
        });

        let call = async {
            let step = plugin.pre.instantiate_async(&mut store).await?;
            step.call_run(&mut store, &context).await
        };
        // A grace of a few ticks lets the epoch callback name a computing guest's timeout
        // itself; the timer only decides for a guest stuck in a host call.
        let result = tokio::time::timeout(timeout + EPOCH_TICK * 10, call).await;
        let seen = Observed {
            refused: store.data().limiter.refused,
            quota: store.data_mut().quota_hit.take(),
        };
        let memory_peak_bytes = store.data().limiter.memory_peak as u64;
        let fuel_consumed = match (limits.fuel, store.get_fuel()) {
            (Some(budget), Ok(left)) => Some(budget.saturating_sub(left)),
            _ => None,
        };
        drop(store);

        let (outcome, summary, error) = match result {
            Err(_elapsed) => (
                Outcome::Timeout,
                None,
                Some(verdict::timeout_message(timeout)),
            ),
            Ok(Ok(Ok(summary))) => match verdict::check_summary(summary) {
                Ok(summary) => (Outcome::Succeeded, Some(summary), None),
                Err(msg) => (Outcome::GuestError, None, Some(msg)),
            },
            Ok(Ok(Err(step_error))) => (
                Outcome::GuestError,
                None,
                Some(verdict::describe_step_error(&step_error)),
            ),
            Ok(Err(err)) => {
                let (outcome, msg) = verdict::classify_trap(&err, &seen, &limits);
                (outcome, None, Some(msg))
            }
        };
        // The last walk: whatever the guest wrote after the previous one still counts.
        let (outcome, summary, error) = match outcome {
            Outcome::Succeeded | Outcome::GuestError | Outcome::Trap => match quota.check() {
                Some(why) => (Outcome::OutputQuota, None, Some(why)),
                None => (outcome, summary, error),
            },
            _ => (outcome, summary, error),
        };
        let mut report = report(outcome, summary, error);
        report.memory_peak_bytes = memory_peak_bytes;
        report.fuel_consumed = fuel_consumed;
        report
    }
}

/// The WASI context of one step: two preopens, captured output, nothing else. No
/// environment, arguments, stdin, sockets or name lookups.
fn wasi_context(input: &Path, output: &Path, log: &LogCapture) -> anyhow::Result<WasiCtx> {
    let mut builder = WasiCtx::builder();
    builder
        .preopened_dir(input, GUEST_INPUT_DIR, FsPerms::ReadOnly)
        .map_err(|e| anyhow::anyhow!("cannot grant input `{}`: {e:#}", input.display()))?
        .preopened_dir(output, GUEST_OUTPUT_DIR, FsPerms::ReadWrite)
        .map_err(|e| anyhow::anyhow!("cannot grant output `{}`: {e:#}", output.display()))?
        .stdout(log.clone())
        .stderr(log.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        // Blocking file calls go to tokio's blocking pool, never the executor thread, so
        // a guest reading a FIFO that never yields data cannot wedge other steps and its
        // future can still be dropped at the deadline.
        .allow_blocking_current_thread(false);
    Ok(builder.build())
}

/// Sorted names of the regular files in a directory.
fn list_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}
