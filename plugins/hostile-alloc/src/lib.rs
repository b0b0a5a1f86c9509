//! Hostile test step: allocates 1 MiB blocks and touches every page, keeping them all,
//! until the allocator is refused. The host must refuse at the step's memory cap and
//! record `memory-limit`.

use runner_sdk::{Guest, RunContext, StepError, Summary};

struct Step;

impl Guest for Step {
    fn run(_ctx: RunContext) -> Result<Summary, StepError> {
        let mut kept: Vec<Vec<u8>> = Vec::new();
        loop {
            let block = vec![0xA5u8; 1 << 20];
            kept.push(block);
            if kept.len().is_multiple_of(64) {
                println!("hostile-alloc: holding {} MiB", kept.len());
            }
        }
    }
}

runner_sdk::export!(Step);
