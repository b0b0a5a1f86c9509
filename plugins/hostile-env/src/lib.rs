//! Hostile test step: reads its environment variables, arguments and working directory
//! and prints whatever it finds. A step is given none of them; the summary counts them.

use runner_sdk::{Guest, Metric, RunContext, StepError, Summary};

struct Step;

impl Guest for Step {
    fn run(_ctx: RunContext) -> Result<Summary, StepError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        for (k, v) in &vars {
            println!("env {k}={v}");
        }
        let args: Vec<String> = std::env::args().collect();
        println!("args: {args:?}");
        println!("HOME: {:?}", std::env::var("HOME"));
        Ok(Summary {
            rows_in: 0,
            rows_out: 0,
            metrics: vec![
                Metric {
                    name: "env-vars".into(),
                    value: vars.len() as f64,
                },
                Metric {
                    name: "args".into(),
                    value: args.len() as f64,
                },
            ],
        })
    }
}

runner_sdk::export!(Step);
