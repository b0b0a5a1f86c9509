//! Hostile test step: recurses without end, with a frame the optimiser cannot fold away.
//! The host must stop it at the wasm stack cap and record `stack-overflow`.

use runner_sdk::{Guest, RunContext, StepError, Summary};

struct Step;

fn deeper(depth: u64, pad: [u64; 16]) -> u64 {
    // Never reached: the stack ends long before; it only gives the recursion an exit.
    if depth == u64::MAX {
        return 0;
    }
    let mut next = std::hint::black_box(pad);
    next[(depth % 16) as usize] = depth;
    std::hint::black_box(deeper(depth + 1, next)) + next[0]
}

impl Guest for Step {
    fn run(_ctx: RunContext) -> Result<Summary, StepError> {
        let depth = deeper(0, [0; 16]);
        Ok(Summary {
            rows_in: depth,
            rows_out: 0,
            metrics: vec![],
        })
    }
}

runner_sdk::export!(Step);
