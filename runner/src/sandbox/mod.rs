//! The sandbox: loads step plugins as WebAssembly components and runs each attempt in a
//! store of its own, with only its two directories granted and every limit enforced.
//!
//! Deny by default: a step gets no environment variables, no arguments, no network, no
//! inherited stdio and no preopens but `/input` (read-only) and `/output` (read-write).
//! Its stdout, stderr and log messages go to a bounded buffer that is recorded with the
//! step. A component is compiled once per process and kept by digest (and, with a cache
//! directory, once per machine: see [`cache`]); each attempt only instantiates it.
//!
//! Where to go next: [`Sandbox::load`] and [`Sandbox::run`] (in `run.rs`); the limits in
//! [`Limits`], the outcomes in [`Outcome`]; the WIT contract is `wit/step.wit` and its host
//! bindings are in [`bindings`]. `docs/sandbox.md` is the guide for plugin authors.

pub mod bindings;
pub mod cache;
mod capture;
mod engine;
mod limiter;
mod limits;
mod outcome;
mod plugin;
mod quota;
mod run;
mod verdict;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, Linker};

pub use capture::LogCapture;
pub use engine::{Allocator, EPOCH_TICK, EngineOptions};
pub use limits::{
    DEFAULT_INSTANCES, DEFAULT_LOG_KIB, DEFAULT_MEMORY_MIB, DEFAULT_OUTPUT_FILES,
    DEFAULT_OUTPUT_MIB, DEFAULT_STACK_KIB, DEFAULT_TABLE_ELEMENTS, DEFAULT_TIMEOUT_SECS, Effective,
    Limits,
};
pub use outcome::{Outcome, StepReport, StepSummary};
pub use plugin::{Plugin, PluginError};
pub use run::{INLINE_IO_MIN_BYTES, StepInput};

use bindings::{Step, StepPre};
use cache::CompileCache;
use plugin::check_layer;
use run::StepState;

/// Where the input and output directories appear inside the guest.
pub const GUEST_INPUT_DIR: &str = "/input";
/// See [`GUEST_INPUT_DIR`].
pub const GUEST_OUTPUT_DIR: &str = "/output";

/// How a [`Sandbox`] is set up. [`Default`] is what the runner uses, without a disk cache.
#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    /// Engine settings.
    pub engine: EngineOptions,
    /// The runner's own directory for compiled components; `None` compiles every start.
    /// Never a directory a job file names: its contents are trusted as machine code.
    pub cache_dir: Option<PathBuf>,
}

/// What tells engines apart: wasmtime fixes both the stack cap and fuel metering per
/// engine, so each combination a step asks for gets an engine of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct EngineKey {
    /// The wasm stack cap in KiB.
    pub stack_kib: u64,
    /// Whether guests count fuel: only for steps with a CPU budget, because the checks
    /// cost every guest that runs metered.
    pub metered: bool,
}

impl EngineKey {
    /// The engine most steps use: the default stack cap, no fuel.
    const DEFAULT: EngineKey = EngineKey {
        stack_kib: DEFAULT_STACK_KIB,
        metered: false,
    };
}

/// One engine with its linker, its compiled plugins and its disk cache. Steps with the
/// default stack cap and no fuel budget share one; see [`EngineKey`] for the others.
struct EngineSet {
    engine: Engine,
    allocator: Allocator,
    linker: Linker<StepState>,
    plugins: Mutex<HashMap<String, Arc<Plugin>>>,
    cache: Option<CompileCache>,
    _ticker: engine::Ticker,
}

impl EngineSet {
    fn new(options: &SandboxOptions, key: EngineKey) -> anyhow::Result<EngineSet> {
        let (engine, allocator) = engine::build(&options.engine, key.stack_kib, key.metered)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wasm_error)?;
        quota::fs::add_to_linker(&mut linker, StepState::quota_view).map_err(wasm_error)?;
        Step::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(wasm_error)?;
        let cache = match &options.cache_dir {
            Some(dir) => Some(CompileCache::open(dir, &engine).map_err(|e| {
                anyhow::anyhow!("cannot open compile cache `{}`: {e}", dir.display())
            })?),
            None => None,
        };
        let ticker = engine::Ticker::start(&engine)?;
        Ok(EngineSet {
            engine,
            allocator,
            linker,
            plugins: Mutex::new(HashMap::new()),
            cache,
            _ticker: ticker,
        })
    }
}

/// The engines, linkers and compiled plugins of this process.
pub struct Sandbox {
    options: SandboxOptions,
    sets: Mutex<HashMap<EngineKey, Arc<EngineSet>>>,
    allocator: Allocator,
    compiled: Arc<AtomicU64>,
    cache_hits: Arc<AtomicU64>,
}

impl Sandbox {
    /// A sandbox with the default settings and no disk cache.
    pub fn new() -> anyhow::Result<Sandbox> {
        Sandbox::with_options(SandboxOptions::default())
    }

    /// Builds the engine for the default stack cap without fuel (pooling allocator when
    /// the machine allows it), its linker (WASI 0.2 and the runner's own imports) and
    /// compile cache, and starts its epoch ticker.
    pub fn with_options(options: SandboxOptions) -> anyhow::Result<Sandbox> {
        let set = EngineSet::new(&options, EngineKey::DEFAULT)?;
        Ok(Sandbox {
            allocator: set.allocator,
            sets: Mutex::new(HashMap::from([(EngineKey::DEFAULT, Arc::new(set))])),
            options,
            compiled: Arc::default(),
            cache_hits: Arc::default(),
        })
    }

    /// The engine set for a key, built on first use.
    fn engine_set(&self, key: EngineKey) -> anyhow::Result<Arc<EngineSet>> {
        let mut sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = sets.get(&key) {
            return Ok(set.clone());
        }
        let set = Arc::new(EngineSet::new(&self.options, key)?);
        sets.insert(key, set.clone());
        Ok(set)
    }

    /// How many components this sandbox compiled, and how many it loaded from the disk
    /// cache instead.
    pub fn load_counts(&self) -> (u64, u64) {
        (
            self.compiled.load(Ordering::Relaxed),
            self.cache_hits.load(Ordering::Relaxed),
        )
    }

    /// Which instance allocator the default engine ended up with.
    pub fn allocator(&self) -> Allocator {
        self.allocator
    }

    /// Loads a plugin for the default engine (default stack cap, no fuel), compiling it
    /// unless a plugin with the same digest is already loaded. With `pin`, refuses a file
    /// whose sha256 differs.
    pub async fn load(&self, path: &Path, pin: Option<&str>) -> Result<Arc<Plugin>, PluginError> {
        self.load_into(path, pin, EngineKey::DEFAULT).await
    }

    /// Loads a plugin into the engine for `key`.
    async fn load_into(
        &self,
        path: &Path,
        pin: Option<&str>,
        key: EngineKey,
    ) -> Result<Arc<Plugin>, PluginError> {
        let set = self.engine_set(key).map_err(|e| PluginError::Compile {
            path: path.to_path_buf(),
            message: format!(
                "no engine with a {} KiB stack{}: {e:#}",
                key.stack_kib,
                if key.metered { " and fuel" } else { "" }
            ),
        })?;
        let bytes = match tokio::fs::read(path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PluginError::NotFound {
                    path: path.to_path_buf(),
                });
            }
            Err(reason) => {
                return Err(PluginError::Read {
                    path: path.to_path_buf(),
                    reason,
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
        if let Some(plugin) = set
            .plugins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&sha256)
        {
            return Ok(plugin.clone());
        }

        check_layer(path, &bytes)?;
        let (engine, cache, digest) = (set.engine.clone(), set.cache.clone(), sha256.clone());
        let (compiled_count, hit_count) = (self.compiled.clone(), self.cache_hits.clone());
        let compiled = tokio::task::spawn_blocking(move || {
            if let Some(hit) = cache.as_ref().and_then(|c| c.load(&engine, &digest)) {
                hit_count.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(plugin_sha256 = %digest, "loaded compiled plugin from cache");
                return Ok(hit);
            }
            let compiled = Component::from_binary(&engine, &bytes)?;
            compiled_count.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(plugin_sha256 = %digest, "compiled plugin");
            if let Some(cache) = &cache {
                cache.store(&digest, &compiled);
            }
            Ok(compiled)
        })
        .await
        .map_err(|e| PluginError::Compile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?
        .map_err(|e: wasmtime::Error| PluginError::Compile {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        })?;
        let wrong_world = |e: wasmtime::Error| PluginError::WrongWorld {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        };
        let instance_pre = set.linker.instantiate_pre(&compiled).map_err(wrong_world)?;
        let pre = StepPre::new(instance_pre).map_err(wrong_world)?;

        let plugin = Arc::new(Plugin {
            path: path.to_path_buf(),
            sha256: sha256.clone(),
            engine_key: key,
            engine: set.engine.clone(),
            pre,
        });
        set.plugins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sha256, plugin.clone());
        Ok(plugin)
    }
}

/// wasmtime has an error type of its own; the rest of the runner speaks anyhow.
fn wasm_error(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}
