//! Hostile test step: sleeps inside a WASI call for `seconds` (default one hour). The host
//! must end it at its deadline, or when the runner is stopped, and record why.

use runner_sdk::{Guest, RunContext, StepError, Summary};

struct Step;

impl Guest for Step {
    fn run(ctx: RunContext) -> Result<Summary, StepError> {
        let seconds = serde_seconds(&ctx.config).unwrap_or(3600);
        runner_sdk::log(runner_sdk::Level::Info, &format!("sleeping {seconds} s"));
        std::thread::sleep(std::time::Duration::from_secs(seconds));
        Ok(Summary {
            rows_in: 0,
            rows_out: 0,
            metrics: vec![],
        })
    }
}

/// Reads `{"seconds": N}` without pulling a JSON parser into a test plugin.
fn serde_seconds(config: &str) -> Option<u64> {
    let rest = config.split("\"seconds\"").nth(1)?;
    let digits: String = rest
        .trim_start_matches([':', ' '])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

runner_sdk::export!(Step);
