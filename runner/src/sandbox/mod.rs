//! The sandbox: loads step plugins as WebAssembly components and runs each attempt in a
//! store of its own, with only its two directories granted.
//!
//! Deny by default: a step gets no environment variables, no arguments, no network, no
//! inherited stdio and no preopens but `/input` (read-only) and `/output` (read-write).
//! Its stdout, stderr and log messages go to a bounded buffer that is recorded with the
//! step. A component is compiled once per process and kept by digest; each attempt only
//! instantiates it.
//!
//! Where to go next: [`Sandbox::load`] and [`Sandbox::run`]; the WIT contract is in
//! `wit/step.wit` and its host bindings in [`bindings`].

pub mod bindings;
mod capture;
mod limits;
mod outcome;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

pub use capture::LogCapture;
pub use limits::{DEFAULT_LOG_KIB, DEFAULT_MEMORY_MIB, DEFAULT_TIMEOUT_SECS, Limits};
pub use outcome::{Outcome, StepReport, StepSummary};

use bindings::{Step, StepPre};

/// How often the epoch ticks: the granularity of deadlines and of yielding to other tasks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Where the input and output directories appear inside the guest.
pub const GUEST_INPUT_DIR: &str = "/input";
/// See [`GUEST_INPUT_DIR`].
pub const GUEST_OUTPUT_DIR: &str = "/output";

/// Why a plugin could not be loaded. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// No file at the path.
    #[error("plugin `{path}` does not exist")]
    NotFound {
        /// The path.
        path: PathBuf,
    },
    /// The file could not be read.
    #[error("cannot read plugin `{path}`: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not WebAssembly at all.
    #[error("plugin `{path}` is not a WebAssembly file (it does not start with `\\0asm`)")]
    NotWasm {
        /// The path.
        path: PathBuf,
    },
    /// A core module where a component is needed.
    #[error(
        "plugin `{path}` is a core WebAssembly module, not a component: build it for the \
         `wasm32-wasip2` target with the runner SDK"
    )]
    CoreModule {
        /// The path.
        path: PathBuf,
    },
    /// The pinned digest does not match.
    #[error("plugin `{path}` has sha256 `{actual}`, but the job pins `{expected}`")]
    DigestMismatch {
        /// The path.
        path: PathBuf,
        /// The pinned digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// wasmtime could not compile it.
    #[error("plugin `{path}` does not compile: {message}")]
    Compile {
        /// The path.
        path: PathBuf,
        /// wasmtime's reason.
        message: String,
    },
    /// It is a component, but not of the `runner:step/step` world.
    #[error("plugin `{path}` is not a component of world `runner:step/step@0.1.0`: {message}")]
    WrongWorld {
        /// The path.
        path: PathBuf,
        /// What does not fit.
        message: String,
    },
}

/// A compiled plugin, ready to instantiate.
pub struct Plugin {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Hex sha256 of the file's bytes.
    pub sha256: String,
    pre: StepPre<StepState>,
}

/// The state of one step's store.
struct StepState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: StepLimiter,
    log: LogCapture,
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

/// Caps linear memory and remembers whether the cap was what stopped the guest.
struct StepLimiter {
    memory_cap: usize,
    memory_refused: bool,
    memory_peak: usize,
}

impl wasmtime::ResourceLimiter for StepLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_refused = true;
            return Ok(false);
        }
        self.memory_peak = self.memory_peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
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

/// The engine, the linker and the compiled plugins of this process.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<StepState>,
    plugins: Mutex<HashMap<String, Arc<Plugin>>>,
    ticker_stop: Arc<AtomicBool>,
}

impl Sandbox {
    /// Builds the engine (component model, epoch interruption) and the linker (WASI 0.2 and
    /// the runner's own imports), and starts the epoch ticker.
    pub fn new() -> anyhow::Result<Sandbox> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(wasm_error)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wasm_error)?;
        Step::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(wasm_error)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (weak_engine, stop) = (engine.weak(), ticker_stop.clone());
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })?;

        Ok(Sandbox {
            engine,
            linker,
            plugins: Mutex::new(HashMap::new()),
            ticker_stop,
        })
    }

    /// Loads a plugin, compiling it unless a plugin with the same digest is already loaded.
    /// With `pin`, refuses a file whose sha256 differs.
    pub async fn load(&self, path: &Path, pin: Option<&str>) -> Result<Arc<Plugin>, PluginError> {
        let bytes = match tokio::fs::read(path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PluginError::NotFound {
                    path: path.to_path_buf(),
                });
            }
            Err(source) => {
                return Err(PluginError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if let Some(expected) = pin
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            return Err(PluginError::DigestMismatch {
                path: path.to_path_buf(),
                expected: expected.to_string(),
                actual: sha256,
            });
        }
        if let Some(plugin) = self
            .plugins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&sha256)
        {
            return Ok(plugin.clone());
        }

        check_layer(path, &bytes)?;
        let engine = self.engine.clone();
        let compiled = tokio::task::spawn_blocking(move || Component::from_binary(&engine, &bytes))
            .await
            .map_err(|e| PluginError::Compile {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
            .map_err(|e| PluginError::Compile {
                path: path.to_path_buf(),
                message: format!("{e:#}"),
            })?;
        let wrong_world = |e: wasmtime::Error| PluginError::WrongWorld {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        };
        let instance_pre = self
            .linker
            .instantiate_pre(&compiled)
            .map_err(wrong_world)?;
        let pre = StepPre::new(instance_pre).map_err(wrong_world)?;

        let plugin = Arc::new(Plugin {
            path: path.to_path_buf(),
            sha256: sha256.clone(),
            pre,
        });
        self.plugins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sha256, plugin.clone());
        Ok(plugin)
    }

    /// Runs one step attempt to its end. Never fails: every way the guest can end is an
    /// [`Outcome`] in the report.
    pub async fn run(&self, plugin: &Plugin, input: StepInput<'_>) -> StepReport {
        let started = Instant::now();
        let log = LogCapture::new(input.limits.log_bytes());
        let timeout = input.limits.timeout();

        let report = |outcome, summary, error: Option<String>, log: &LogCapture| {
            let (text, truncated) = log.finish();
            StepReport {
                outcome,
                summary,
                error,
                log: text,
                log_truncated: truncated,
                duration: started.elapsed(),
                memory_peak_bytes: 0,
            }
        };

        let mut context = input.context;
        context.input_dir = GUEST_INPUT_DIR.to_string();
        context.output_dir = GUEST_OUTPUT_DIR.to_string();
        context.inputs = match list_files(input.input_dir) {
            Ok(names) => names,
            Err(e) => {
                let msg = format!("cannot list input `{}`: {e}", input.input_dir.display());
                return report(Outcome::LoadError, None, Some(msg), &log);
            }
        };

        let wasi = match wasi_context(input.input_dir, input.output_dir, &log) {
            Ok(w) => w,
            Err(e) => return report(Outcome::LoadError, None, Some(format!("{e:#}")), &log),
        };
        let state = StepState {
            wasi,
            table: ResourceTable::new(),
            limiter: StepLimiter {
                memory_cap: input.limits.memory_bytes(),
                memory_refused: false,
                memory_peak: 0,
            },
            log: log.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let deadline = started + timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });

        let call = async {
            let step = plugin.pre.instantiate_async(&mut store).await?;
            step.call_run(&mut store, &context).await
        };
        // The epoch callback stops a guest that computes; dropping the future at the deadline
        // (plus a grace for the callback to win) stops one that waits inside a host call.
        let result = tokio::time::timeout(timeout + EPOCH_TICK * 10, call).await;
        let memory_refused = store.data().limiter.memory_refused;
        let memory_peak_bytes = store.data().limiter.memory_peak as u64;
        drop(store);

        let mut report = match result {
            Err(_elapsed) => report(Outcome::Timeout, None, Some(timeout_message(timeout)), &log),
            Ok(Ok(Ok(summary))) => match check_summary(summary) {
                Ok(summary) => report(Outcome::Succeeded, Some(summary), None, &log),
                Err(msg) => report(Outcome::GuestError, None, Some(msg), &log),
            },
            Ok(Ok(Err(step_error))) => report(
                Outcome::GuestError,
                None,
                Some(describe_step_error(&step_error)),
                &log,
            ),
            Ok(Err(err)) => {
                let (outcome, msg) = classify_trap(&err, memory_refused, timeout, input.limits);
                report(outcome, None, Some(msg), &log)
            }
        };
        report.memory_peak_bytes = memory_peak_bytes;
        report
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// wasmtime has an error type of its own; the rest of the runner speaks anyhow.
fn wasm_error(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}

/// Tells a core module from a component before handing the bytes to the compiler, so the
/// error says what to do.
fn check_layer(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(PluginError::NotWasm {
            path: path.to_path_buf(),
        });
    }
    // Bytes 4..8 are version and layer: a core module is `01 00 00 00`, a component has
    // layer 1 in bytes 6..8.
    if bytes[6..8] == [0, 0] {
        return Err(PluginError::CoreModule {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// The WASI context of one step: two preopens, captured output, nothing else.
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
        .allow_blocking_current_thread(true);
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

fn timeout_message(timeout: Duration) -> String {
    format!("deadline of {:.3} s passed", timeout.as_secs_f64())
}

/// Rejects summaries the runner cannot record faithfully.
fn check_summary(summary: bindings::Summary) -> Result<StepSummary, String> {
    let mut metrics = Vec::with_capacity(summary.metrics.len());
    for m in summary.metrics {
        if !m.value.is_finite() {
            return Err(format!(
                "malformed summary: metric `{}` is `{}`",
                m.name, m.value
            ));
        }
        if m.name.is_empty() || m.name.len() > 128 {
            return Err("malformed summary: a metric name is empty or over 128 bytes".into());
        }
        metrics.push((m.name, m.value));
    }
    if metrics.len() > 256 {
        return Err(format!(
            "malformed summary: {} metrics (at most 256)",
            metrics.len()
        ));
    }
    Ok(StepSummary {
        rows_in: summary.rows_in,
        rows_out: summary.rows_out,
        metrics,
    })
}

fn describe_step_error(e: &bindings::StepError) -> String {
    use bindings::StepError as E;
    match e {
        E::InvalidConfig(m) => format!("invalid config: {m}"),
        E::MissingColumn(m) => format!("missing column: {m}"),
        E::BadInput(m) => format!("bad input: {m}"),
        E::Io(m) => format!("i/o: {m}"),
        E::Other(m) => m.clone(),
    }
}

/// Names the way a guest stopped from the error wasmtime gave.
fn classify_trap(
    err: &wasmtime::Error,
    memory_refused: bool,
    timeout: Duration,
    limits: &Limits,
) -> (Outcome, String) {
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return (
            Outcome::Trap,
            format!("the step called exit with code {}", exit.0),
        );
    }
    match err.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => (Outcome::Timeout, timeout_message(timeout)),
        Some(wasmtime::Trap::StackOverflow) => {
            (Outcome::StackOverflow, "wasm stack overflow".to_string())
        }
        _ if memory_refused => (
            Outcome::MemoryLimit,
            format!(
                "linear memory cap of {} MiB refused a grow; then: {}",
                limits.memory_bytes() >> 20,
                first_line(err)
            ),
        ),
        _ => (Outcome::Trap, first_line(err)),
    }
}

/// The error's chain on one line, without the wasm backtrace.
fn first_line(err: &wasmtime::Error) -> String {
    let mut text: String = err
        .chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    if let Some(i) = text.find("\nwasm backtrace") {
        text.truncate(i);
    }
    let text = text.replace('\n', " ");
    if text.len() > 2000 {
        format!("{}…", &text[..text.floor_char_boundary(2000)])
    } else {
        text
    }
}
