//! A step that does nothing and succeeds, so a benchmark of it measures only the runner's
//! own cost per step: instantiate, call, record.

use runner_sdk::{Guest, RunContext, StepError, Summary};

struct Step;

impl Guest for Step {
    fn run(_ctx: RunContext) -> Result<Summary, StepError> {
        Ok(Summary {
            rows_in: 0,
            rows_out: 0,
            metrics: vec![],
        })
    }
}

runner_sdk::export!(Step);
