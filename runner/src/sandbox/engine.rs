//! The wasmtime engine every step runs in: its settings, the instance allocator, and the
//! epoch ticker that drives deadlines.
//!
//! The pooling allocator makes instantiation cheap (slots reserved once, reused per step),
//! but it reserves a large span of virtual memory up front. Where the machine refuses that
//! (an address-space `ulimit`, a container cap), the engine falls back to on-demand
//! allocation and logs why, so a constrained host still runs steps, only slower.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::limits::MAX_MEMORY_MIB;
use super::wasm_error;

/// How often the epoch ticks: the granularity of deadlines and of yielding to other tasks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How the engine allocates instances, memories and stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    /// Pre-reserved slots, reused from step to step.
    Pooling,
    /// mmap per instance; used when the pool cannot be reserved or is switched off.
    OnDemand,
}

/// Engine-wide settings. [`Default`] is what the runner uses.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Try the pooling allocator first.
    pub pooling: bool,
    /// Steps that may run at once in this process: sizes the pool.
    pub concurrent_steps: u32,
    /// Interrupt guests at their deadline through epochs. Only benchmarks switch it off,
    /// to measure what it costs; without it a computing guest can only be stopped by fuel.
    pub epoch_interruption: bool,
    /// Let steps set a CPU budget. Only steps that set one run metered: wasmtime turns
    /// fuel on per engine, so they get an engine of their own and every other step runs
    /// on an engine without the fuel checks.
    pub fuel: bool,
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        EngineOptions {
            pooling: true,
            concurrent_steps: 64,
            epoch_interruption: true,
            fuel: true,
        }
    }
}

/// Builds the engine: pooling when it can be reserved, else on-demand. With `metered`,
/// guests count fuel.
pub fn build(
    options: &EngineOptions,
    stack_kib: u64,
    metered: bool,
) -> anyhow::Result<(Engine, Allocator)> {
    if options.pooling {
        let mut config = base_config(options, stack_kib, metered);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool(options)));
        match Engine::new(&config) {
            Ok(engine) => return Ok((engine, Allocator::Pooling)),
            Err(e) => tracing::warn!(
                error = %format!("{e:#}"),
                "the pooling allocator could not reserve its memory; \
                 falling back to on-demand allocation"
            ),
        }
    }
    let engine = Engine::new(&base_config(options, stack_kib, metered)).map_err(wasm_error)?;
    Ok((engine, Allocator::OnDemand))
}

fn base_config(options: &EngineOptions, stack_kib: u64, metered: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(options.epoch_interruption);
    config.consume_fuel(metered);
    config.max_wasm_stack((stack_kib << 10) as usize);
    // The fiber a guest runs on must hold the wasm stack plus the host calls made from it.
    config.async_stack_size(((stack_kib << 10) + (1 << 20)) as usize);
    config
}

/// Bytes of a freed linear memory reset in place and kept resident for the next step.
const KEEP_RESIDENT_MEMORY: usize = 1 << 20;
/// Bytes of a freed table reset in place.
const KEEP_RESIDENT_TABLE: usize = 64 << 10;

fn pool(options: &EngineOptions) -> PoolingAllocationConfig {
    let steps = options.concurrent_steps.max(1);
    let mut pool = PoolingAllocationConfig::default();
    // A Rust step built for wasip2 holds a handful of core instances, one or two memories
    // and a few tables; the factors leave room for larger toolchains.
    pool.total_component_instances(steps)
        .total_core_instances(steps * 16)
        .total_memories(steps * 4)
        .total_tables(steps * 8)
        .total_stacks(steps)
        .max_memory_size((MAX_MEMORY_MIB << 20) as usize);
    // A freed slot is reset by zeroing the pages the guest touched (found with Linux's
    // PAGEMAP_SCAN, up to the amounts kept resident) instead of `madvise`, whose TLB
    // shootdown interrupts every core the process runs on: on the 2-core VM that took a
    // no-op step from 31 to 45 us alone, and cost the history write beside it more.
    // Kernels without the ioctl (before 6.7) reset the lowest pages with `memset`.
    pool.pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
        .table_keep_resident(KEEP_RESIDENT_TABLE);
    pool
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until stopped or the engine is gone.
pub struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    /// Starts the ticker thread.
    pub fn start(engine: &Engine) -> std::io::Result<Ticker> {
        let stop = Arc::new(AtomicBool::new(false));
        let (weak_engine, flag) = (engine.weak(), stop.clone());
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })?;
        Ok(Ticker { stop })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
