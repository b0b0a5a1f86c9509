//! Hostile test step: tries to open a TCP connection to every `host:port` in its config's
//! `addresses` (the tests give it the token, STS and function endpoints on 127.0.0.1).
//!
//! The sandbox grants no network, so every attempt must fail; the step then fails with one
//! line per address saying what the guest saw. Should any connection open, the step
//! succeeds and reports `connected` above zero, which the tests treat as a sandbox escape.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use runner_sdk::{Guest, Metric, RunContext, StepError, Summary};
use serde::Deserialize;

#[derive(Deserialize)]
struct Config {
    addresses: Vec<String>,
}

struct Step;

impl Guest for Step {
    fn run(ctx: RunContext) -> Result<Summary, StepError> {
        let config: Config = runner_sdk::config(&ctx)?;
        let mut connected = 0u32;
        let mut refusals = Vec::new();
        for address in &config.addresses {
            let attempt = address
                .parse::<SocketAddr>()
                .map_err(|e| e.to_string())
                .and_then(|addr| {
                    TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                        .map_err(|e| e.to_string())
                });
            match attempt {
                Ok(_) => connected += 1,
                Err(e) => refusals.push(format!("connect to `{address}`: {e}")),
            }
        }
        if connected == 0 {
            return Err(StepError::Other(refusals.join("; ")));
        }
        Ok(Summary {
            rows_in: 0,
            rows_out: 0,
            metrics: vec![Metric {
                name: "connected".to_string(),
                value: f64::from(connected),
            }],
        })
    }
}

runner_sdk::export!(Step);
