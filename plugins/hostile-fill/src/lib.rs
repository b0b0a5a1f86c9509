//! Hostile test step: fills its output directory without end, either growing one file in
//! 64 KiB writes (`{"mode": "bytes"}`, the default) or creating empty files
//! (`{"mode": "files"}`). The host must stop it at the output quota and record
//! `output-quota`.

use std::io::Write;

use runner_sdk::{Guest, RunContext, StepError, Summary};

#[derive(serde::Deserialize)]
struct Config {
    mode: Option<String>,
}

struct Step;

impl Guest for Step {
    fn run(ctx: RunContext) -> Result<Summary, StepError> {
        let config: Config = runner_sdk::config(&ctx)?;
        if config.mode.as_deref() == Some("files") {
            for i in 0u64.. {
                let path = runner_sdk::output_path(&ctx, &format!("f{i}"));
                std::fs::File::create(&path).map_err(|e| runner_sdk::io_error(&path, e))?;
            }
        }
        let path = runner_sdk::output_path(&ctx, "fill.bin");
        let mut file = std::fs::File::create(&path).map_err(|e| runner_sdk::io_error(&path, e))?;
        let block = [0x5Au8; 64 * 1024];
        loop {
            file.write_all(&block)
                .map_err(|e| runner_sdk::io_error(&path, e))?;
        }
    }
}

runner_sdk::export!(Step);
