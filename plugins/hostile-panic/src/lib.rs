//! Hostile test step: prints a line, then panics. The host must record a trap with the
//! panic message in the step's log, and keep serving.

use runner_sdk::{Guest, RunContext, StepError, Summary};

struct Step;

impl Guest for Step {
    fn run(ctx: RunContext) -> Result<Summary, StepError> {
        println!("hostile-panic: about to panic in run {}", ctx.run_id);
        panic!("hostile-panic was told to panic");
    }
}

runner_sdk::export!(Step);
