//! Hostile test step: tries to read and write outside its two directories, through `..`,
//! absolute paths and symlinks planted in its input. Each attempt and its result go to
//! the log; the summary counts the attempts that got through, which must be zero.

use runner_sdk::{Guest, Metric, RunContext, StepError, Summary};

#[derive(serde::Deserialize)]
struct Config {
    /// Paths to read.
    reads: Vec<String>,
    /// Paths to create and write.
    writes: Vec<String>,
}

struct Step;

impl Guest for Step {
    fn run(ctx: RunContext) -> Result<Summary, StepError> {
        let config: Config = runner_sdk::config(&ctx)?;
        let mut reads_through = 0;
        for path in &config.reads {
            match std::fs::read(path) {
                Ok(bytes) => {
                    reads_through += 1;
                    println!(
                        "read `{path}`: GOT THROUGH: {}",
                        String::from_utf8_lossy(&bytes[..bytes.len().min(64)])
                    );
                }
                Err(e) => println!("read `{path}`: refused: {e}"),
            }
        }
        let mut writes_through = 0;
        for path in &config.writes {
            match std::fs::write(path, b"escaped") {
                Ok(()) => {
                    writes_through += 1;
                    println!("write `{path}`: GOT THROUGH");
                }
                Err(e) => println!("write `{path}`: refused: {e}"),
            }
        }
        match std::fs::read_dir("/") {
            Ok(entries) => println!("list `/`: {} entries", entries.count()),
            Err(e) => println!("list `/`: refused: {e}"),
        }
        Ok(Summary {
            rows_in: 0,
            rows_out: 0,
            metrics: vec![
                Metric {
                    name: "reads-through".into(),
                    value: f64::from(reads_through),
                },
                Metric {
                    name: "writes-through".into(),
                    value: f64::from(writes_through),
                },
            ],
        })
    }
}

runner_sdk::export!(Step);
