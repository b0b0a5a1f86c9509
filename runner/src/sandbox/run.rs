//! Running one step attempt: a fresh store with its limits, the guest's two directories
//! and the output quota's ledger, the deadline watch, and the report of how it ended.
//!
//! Two mechanisms stop a guest at its deadline. The epoch callback interrupts a guest that
//! is executing wasm; a guest waiting inside a host call (a sleep, a read that never
//! returns) executes no wasm, so the whole call is also raced against a timer and its
//! future dropped when the timer wins, which cancels the pending host work.
//!
//! Where the guest runs: when its input holds nothing but regular files, at least
//! [`INLINE_IO_MIN_BYTES`] of them, on a thread of tokio's blocking pool, with its file
//! reads and writes done inline on that thread (a hand-off to another thread per read
//! costs more than the read). Otherwise on the caller's task, with every file call handed
//! to the blocking pool, where a call that never returns is abandoned when its future is
//! dropped: a FIFO, a device, a link or a directory in the input could block a read
//! without end, and for a small input moving the guest to a thread costs more than the
//! hand-offs it saves.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::filesystem::WasiFilesystemCtxView;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use super::bindings::StepPre;
use super::capture::LogCapture;
use super::engine::EPOCH_TICK;
use super::limiter::StepLimiter;
use super::outcome::{Outcome, StepReport};
use super::plugin::Plugin;
use super::quota::fs::QuotaView;
use super::quota::{Ledger, SharedLedger, lock};
use super::verdict::{self, Observed};
use super::{EngineKey, GUEST_INPUT_DIR, GUEST_OUTPUT_DIR, Limits, Sandbox, bindings};

/// The input size from which a guest gets a thread of its own with inline file calls.
/// Moving a step onto a blocking-pool thread and back costs about as much as a few
/// hand-offs of a 64 KiB read (wasmtime-wasi's largest) to that pool, measured on a no-op
/// step and on `group-aggregate` (`docs/benchmarks.md`).
pub const INLINE_IO_MIN_BYTES: u64 = 1 << 20;

/// The state of one step's store.
pub struct StepState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: StepLimiter,
    log: LogCapture,
    quota: SharedLedger,
}

impl StepState {
    /// What the guest's `wasi:filesystem/types` calls work on (see [`super::quota::fs`]).
    pub(super) fn quota_view(&mut self) -> QuotaView<'_> {
        QuotaView {
            fs: WasiFilesystemCtxView {
                ctx: self.wasi.filesystem(),
                table: &mut self.table,
            },
            ledger: &self.quota,
        }
    }
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
        // A stack cap or a fuel budget the plugin's engine lacks needs the plugin in the
        // engine that has them; that compile happens before the step's clock starts.
        let key = EngineKey {
            stack_kib: limits.stack_bytes >> 10,
            metered: self.options.engine.fuel && limits.fuel.is_some(),
        };
        let other_engine;
        let plugin = if plugin.engine_key == key {
            plugin
        } else {
            match self
                .load_into(&plugin.path, Some(&plugin.sha256), key)
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
        let quota = Arc::new(Mutex::new(Ledger::open(
            input.output_dir,
            limits.output_bytes,
            limits.output_files,
        )));
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
        let listed;
        (context.inputs, listed) = match list_inputs(input.input_dir) {
            Ok(listed) => listed,
            Err(e) => {
                let msg = format!("cannot list input `{}`: {e}", input.input_dir.display());
                return report(Outcome::LoadError, None, Some(msg));
            }
        };
        let inline_io = listed.only_files && listed.bytes >= INLINE_IO_MIN_BYTES;
        let wasi = match wasi_context(input.input_dir, input.output_dir, &log, inline_io) {
            Ok(w) => w,
            Err(e) => return report(Outcome::LoadError, None, Some(format!("{e:#}"))),
        };

        let state = StepState {
            wasi,
            table: ResourceTable::new(),
            limiter: StepLimiter::new(&limits),
            log: log.clone(),
            quota: quota.clone(),
        };
        let mut store = Store::new(&plugin.engine, state);
        store.limiter(|s| &mut s.limiter);
        if key.metered {
            let fuel = limits.fuel.unwrap_or(u64::MAX);
            store
                .set_fuel(fuel)
                .expect("fuel is enabled on this engine");
        }
        let deadline = started + timeout;
        let abandoned = CancellationToken::new();
        let stop = abandoned.clone();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline || stop.is_cancelled() {
                return Ok(UpdateDeadline::Interrupt);
            }
            // Yielding each tick lets other steps on this thread run.
            Ok(UpdateDeadline::Yield(1))
        });

        let guest = Guest {
            store,
            pre: plugin.pre.clone(),
            context,
            timeout,
            abandoned: abandoned.clone(),
        };
        let ended = if inline_io {
            // Dropping this future (the runner stopping) stops the guest on its thread too.
            let _abandon = abandoned.drop_guard();
            let runtime = tokio::runtime::Handle::current();
            let thread = tokio::task::spawn_blocking(move || runtime.block_on(guest.call()));
            // The guest's own timer ends it; this one only fires if its thread is stuck in
            // a blocking call (a FIFO swapped into the input while it ran). The thread is
            // then left to finish that call, and the step is over for the runner.
            match tokio::time::timeout(timeout + EPOCH_TICK * 20, thread).await {
                Ok(Ok(ended)) => ended,
                Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // The only other way a blocking task ends unfinished: the runtime is
                // shutting down, so the runner is stopping.
                Ok(Err(_cancelled)) => {
                    let msg = "the runner was stopped while the step ran".to_string();
                    return report(Outcome::Interrupted, None, Some(msg));
                }
                Err(_stuck) => Ended {
                    result: None,
                    seen: Observed::default(),
                    memory_peak_bytes: 0,
                    fuel_left: None,
                },
            }
        } else {
            guest.call().await
        };
        let fuel_consumed = match (limits.fuel, ended.fuel_left) {
            (Some(budget), Some(left)) => Some(budget.saturating_sub(left)),
            _ => None,
        };

        let (outcome, summary, error) = match ended.result {
            None => (
                Outcome::Timeout,
                None,
                Some(verdict::timeout_message(timeout)),
            ),
            Some(Ok(Ok(summary))) => match verdict::check_summary(summary) {
                Ok(summary) => (Outcome::Succeeded, Some(summary), None),
                Err(msg) => (Outcome::GuestError, None, Some(msg)),
            },
            Some(Ok(Err(step_error))) => (
                Outcome::GuestError,
                None,
                Some(verdict::describe_step_error(&step_error)),
            ),
            Some(Err(err)) => {
                let (outcome, msg) = verdict::classify_trap(&err, &ended.seen, &limits);
                (outcome, None, Some(msg))
            }
        };
        // A refused write ends the step as output-quota even when the guest went on to
        // return: what it left is short of what it meant to write. (A trap is told apart in
        // `classify_trap`, which sees the refusal too.)
        let refused = lock(&quota).refusal().cloned();
        let (outcome, summary, error) = match (outcome, refused) {
            (Outcome::Succeeded | Outcome::GuestError, Some(why)) => {
                (Outcome::OutputQuota, None, Some(why.0))
            }
            (outcome, _) => (outcome, summary, error),
        };
        let mut report = report(outcome, summary, error);
        report.memory_peak_bytes = ended.memory_peak_bytes;
        report.fuel_consumed = fuel_consumed;
        report
    }
}

/// A store ready to run a step's guest, with everything the call needs, so it can be moved
/// onto the thread that runs it.
struct Guest {
    store: Store<StepState>,
    pre: StepPre<StepState>,
    context: bindings::RunContext,
    timeout: Duration,
    abandoned: CancellationToken,
}

/// How a guest's call ended, and what the store saw.
struct Ended {
    /// `None` when the deadline (or the runner giving up on it) came first.
    result: Option<wasmtime::Result<Result<bindings::Summary, bindings::StepError>>>,
    seen: Observed,
    memory_peak_bytes: u64,
    /// Fuel left, on a metered engine.
    fuel_left: Option<u64>,
}

impl Guest {
    /// Instantiates the plugin and calls `run`, until it returns, the deadline passes or
    /// the runner gives up on it; then drops the store, which frees its instance slot.
    async fn call(self) -> Ended {
        let Guest {
            mut store,
            pre,
            context,
            timeout,
            abandoned,
        } = self;
        let call = async {
            let step = pre.instantiate_async(&mut store).await?;
            step.call_run(&mut store, &context).await
        };
        // A grace of a few ticks lets the epoch callback name a computing guest's timeout
        // itself; the timer only decides for a guest stuck in a host call.
        let result = tokio::select! {
            result = tokio::time::timeout(timeout + EPOCH_TICK * 10, call) => result.ok(),
            () = abandoned.cancelled() => None,
        };
        Ended {
            result,
            seen: Observed {
                refused: store.data().limiter.refused,
                quota: lock(&store.data().quota).refusal().map(|why| why.0.clone()),
            },
            memory_peak_bytes: store.data().limiter.memory_peak as u64,
            fuel_left: store.get_fuel().ok(),
        }
    }
}

/// The WASI context of one step: two preopens, captured output, nothing else. No
/// environment, arguments, stdin, sockets or name lookups. With `inline_io`, file calls
/// run on the calling thread (see the module docs for when that is safe).
fn wasi_context(
    input: &Path,
    output: &Path,
    log: &LogCapture,
    inline_io: bool,
) -> anyhow::Result<WasiCtx> {
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
        .allow_blocking_current_thread(inline_io);
    Ok(builder.build())
}

/// What the input directory holds besides its files' names.
#[derive(Debug, PartialEq, Eq)]
struct Listed {
    /// Nothing but regular files (links are not followed: a link is something else).
    only_files: bool,
    /// The regular files' total length.
    bytes: u64,
}

/// Sorted names of the regular files in a directory, and what else it holds.
fn list_inputs(dir: &Path) -> std::io::Result<(Vec<String>, Listed)> {
    let mut names = Vec::new();
    let mut listed = Listed {
        only_files: true,
        bytes: 0,
    };
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
            listed.bytes += entry.metadata()?.len();
        } else {
            listed.only_files = false;
        }
    }
    names.sort();
    Ok((names, listed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_let_the_guest_block_its_thread() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.csv"), "x\n").unwrap();
        std::fs::write(dir.path().join("a.csv"), "x\n").unwrap();
        let (names, listed) = list_inputs(dir.path()).unwrap();
        assert_eq!(names, ["a.csv", "b.csv"]);
        assert_eq!(
            listed,
            Listed {
                only_files: true,
                bytes: 4
            }
        );

        // A directory could hold a FIFO: it keeps file calls off the guest's thread.
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let (names, listed) = list_inputs(dir.path()).unwrap();
        assert_eq!(names, ["a.csv", "b.csv"]);
        assert!(!listed.only_files);
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_or_a_link_in_the_input_keeps_file_calls_off_the_guests_thread() {
        for planted in ["fifo", "link"] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("a.csv"), "x\n").unwrap();
            let path = dir.path().join(planted);
            if planted == "fifo" {
                let made = std::process::Command::new("mkfifo").arg(&path).status();
                assert!(made.unwrap().success(), "mkfifo failed");
            } else {
                std::os::unix::fs::symlink("a.csv", &path).unwrap();
            }
            let (names, listed) = list_inputs(dir.path()).unwrap();
            assert_eq!(names, ["a.csv"], "{planted}");
            assert!(!listed.only_files, "{planted}");
        }
    }
}
