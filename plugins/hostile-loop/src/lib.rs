//! Hostile test step: computes forever (or, with `{"iterations": N}`, N rounds of a
//! xorshift, which benchmarks use as a CPU-bound step). The host must stop the endless
//! one at its deadline or when its fuel runs out.

use runner_sdk::{Guest, Metric, RunContext, StepError, Summary};

#[derive(serde::Deserialize)]
struct Config {
    iterations: Option<u64>,
}

struct Step;

impl Guest for Step {
    fn run(ctx: RunContext) -> Result<Summary, StepError> {
        let config: Config = runner_sdk::config(&ctx)?;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut i: u64 = 0;
        while config.iterations.is_none_or(|n| i < n) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            i = i.wrapping_add(1);
        }
        Ok(Summary {
            rows_in: 0,
            rows_out: 0,
            // Returned so the optimiser cannot drop the loop.
            metrics: vec![Metric {
                name: "low-bits".into(),
                value: (x & 0xffff) as f64,
            }],
        })
    }
}

runner_sdk::export!(Step);
