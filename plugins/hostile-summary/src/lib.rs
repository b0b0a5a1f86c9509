//! Hostile test step: succeeds with a malformed summary, a metric whose value is NaN. The
//! host must refuse the summary and record a guest error naming the metric.

use runner_sdk::{Guest, Metric, RunContext, StepError, Summary};

struct Step;

impl Guest for Step {
    fn run(_ctx: RunContext) -> Result<Summary, StepError> {
        Ok(Summary {
            rows_in: 1,
            rows_out: 1,
            metrics: vec![Metric {
                name: "ratio".into(),
                value: f64::NAN,
            }],
        })
    }
}

runner_sdk::export!(Step);
