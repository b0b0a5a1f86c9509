//! Hostile test step: waits inside a WASI call without end. By default it sleeps for
//! `{"seconds": N}` (one hour if unset); with `{"read": "name"}` it reads that file of its
//! input directory instead, which for a FIFO with no writer blocks forever. The host must
//! end it at its deadline, or when the runner is stopped, and record why.

use runner_sdk::{Guest, RunContext, StepError, Summary};

#[derive(serde::Deserialize)]
struct Config {
    seconds: Option<u64>,
    read: Option<String>,
}

struct Step;

impl Guest for Step {
    fn run(ctx: RunContext) -> Result<Summary, StepError> {
        let config: Config = runner_sdk::config(&ctx)?;
        if let Some(name) = &config.read {
            let path = runner_sdk::input_path(&ctx, name);
            runner_sdk::log(runner_sdk::Level::Info, &format!("reading {name}"));
            let bytes = std::fs::read(&path).map_err(|e| runner_sdk::io_error(&path, e))?;
            return Ok(Summary {
                rows_in: bytes.len() as u64,
                rows_out: 0,
                metrics: vec![],
            });
        }
        let seconds = config.seconds.unwrap_or(3600);
        runner_sdk::log(runner_sdk::Level::Info, &format!("sleeping {seconds} s"));
        std::thread::sleep(std::time::Duration::from_secs(seconds));
        Ok(Summary {
            rows_in: 0,
            rows_out: 0,
            metrics: vec![],
        })
    }
}

runner_sdk::export!(Step);
