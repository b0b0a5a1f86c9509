//! Hostile test step: opens a TCP connection and sends a UDP datagram to
//! `127.0.0.1:{"port"}`, a listener the test starts. A step has no network; the summary
//! counts what got through, which must be zero.

use std::net::{TcpStream, UdpSocket};

use runner_sdk::{Guest, Metric, RunContext, StepError, Summary};

#[derive(serde::Deserialize)]
struct Config {
    tcp_port: u16,
    udp_port: u16,
}

struct Step;

impl Guest for Step {
    fn run(ctx: RunContext) -> Result<Summary, StepError> {
        let config: Config = runner_sdk::config(&ctx)?;
        let tcp = match TcpStream::connect(("127.0.0.1", config.tcp_port)) {
            Ok(_) => {
                println!("tcp connect: GOT THROUGH");
                1.0
            }
            Err(e) => {
                println!("tcp connect: refused: {e}");
                0.0
            }
        };
        let udp = match UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.send_to(b"hostile", ("127.0.0.1", config.udp_port)))
        {
            Ok(_) => {
                println!("udp send: GOT THROUGH");
                1.0
            }
            Err(e) => {
                println!("udp send: refused: {e}");
                0.0
            }
        };
        Ok(Summary {
            rows_in: 0,
            rows_out: 0,
            metrics: vec![
                Metric {
                    name: "tcp-through".into(),
                    value: tcp,
                },
                Metric {
                    name: "udp-through".into(),
                    value: udp,
                },
            ],
        })
    }
}

runner_sdk::export!(Step);
