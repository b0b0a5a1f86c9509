//! Hostile test step: recurses without end (or, with `{"depth": N}`, N calls deep and
//! back). The host must stop it at the wasm stack cap and record `stack-overflow`.
//!
//! The frames hold only scalars, so they live on the wasm stack that the host caps. (A
//! Rust guest keeps arrays and other address-taken locals on a shadow stack in its own
//! linear memory; overflowing that one is a guest bug that traps as an out-of-bounds
//! access, recorded as `trap`.)

use runner_sdk::{Guest, RunContext, StepError, Summary};

struct Step;

#[derive(serde::Deserialize)]
struct Config {
    depth: Option<u64>,
}

#[inline(never)]
fn deeper(depth: u64, limit: u64) -> u64 {
    if depth == limit {
        return 0;
    }
    // Calling through an opaque pointer keeps the optimiser from turning this into a loop.
    let next: fn(u64, u64) -> u64 = std::hint::black_box(deeper);
    next(depth + 1, limit) ^ depth
}

impl Guest for Step {
    fn run(ctx: RunContext) -> Result<Summary, StepError> {
        let config: Config = runner_sdk::config(&ctx)?;
        let depth = deeper(0, config.depth.unwrap_or(u64::MAX));
        Ok(Summary {
            rows_in: depth,
            rows_out: 0,
            metrics: vec![],
        })
    }
}

runner_sdk::export!(Step);
