//! Hostile test step: prints `{"mib": N}` MiB (default 8) to stdout in 1 KiB lines, then
//! succeeds. The host must keep only its log cap, mark the cut, and still record success.

use std::io::Write;

use runner_sdk::{Guest, RunContext, StepError, Summary};

#[derive(serde::Deserialize)]
struct Config {
    mib: Option<u64>,
}

struct Step;

impl Guest for Step {
    fn run(ctx: RunContext) -> Result<Summary, StepError> {
        let config: Config = runner_sdk::config(&ctx)?;
        let mut line = [b'x'; 1024];
        line[1023] = b'\n';
        let mut out = std::io::stdout().lock();
        for _ in 0..config.mib.unwrap_or(8) * 1024 {
            out.write_all(&line)
                .map_err(|e| StepError::Io(format!("stdout: {e}")))?;
        }
        Ok(Summary {
            rows_in: 0,
            rows_out: 0,
            metrics: vec![],
        })
    }
}

runner_sdk::export!(Step);
