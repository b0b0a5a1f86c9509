//! `runner serve`: fires on schedule, never twice for a slot, and on SIGTERM stops firing
//! and records the steps it had to abandon as interrupted.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Scratch, one_step_job, plugin, text};

#[test]
fn serve_fires_each_second_slot_once_and_sigterm_interrupts_running_steps() {
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", "carrier,dep_delay\nAA,5\n");
    let every_second =
        |job: String| job.replace("schedule = \"@daily\"", "schedule = \"* * * * * *\"");
    let jobs = every_second(one_step_job(
        "tick",
        &input,
        "csv-filter",
        r#"{ column = "dep_delay", op = ">", value = 0 }"#,
    )) + &one_step_job(
        "slow",
        &input,
        &plugin("hostile-sleep").display().to_string(),
        "{ seconds = 3600 }",
    )
    .replace("schedule = \"@daily\"", "schedule = \"* * * * *\"");
    let path = scratch.job_file(&jobs);

    let child = Command::new(env!("CARGO_BIN_EXE_runner"))
        .arg("--config")
        .arg(&path)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Wait (bounded) for three succeeded ticks; by then the every-minute job may or may not
    // have fired, so also wait for it when the minute turns within the bound.
    let start = Instant::now();
    let mut succeeded = 0;
    // The bound is generous: each process compiles its plugins at start, which on a loaded
    // two-core machine running other tests' processes has taken most of 20 s.
    while start.elapsed() < Duration::from_secs(60) && succeeded < 3 {
        std::thread::sleep(Duration::from_millis(250));
        if scratch.path("data/runner.db").exists() {
            let out = scratch.runner(&["runs", "--json", "--job", "tick"]);
            if let Ok(runs) = serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout) {
                succeeded = runs.iter().filter(|r| r["status"] == "succeeded").count();
            }
        }
    }
    assert!(succeeded >= 3, "serve fired {succeeded} ticks in 60 s");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "serve exits 0 on SIGTERM: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("stopping"),
        "{}",
        text(&out.stderr)
    );

    let runs = scratch.runs();
    let ticks: Vec<&serde_json::Value> = runs.iter().filter(|r| r["job"] == "tick").collect();
    let mut slots: Vec<&str> = ticks
        .iter()
        .map(|r| r["logical_time"].as_str().unwrap())
        .collect();
    for slot in &slots {
        assert!(slot.ends_with(".000Z"), "a slot is a whole second: {slot}");
    }
    let n = slots.len();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), n, "no slot ran twice");
    assert!(ticks.iter().all(|r| r["trigger"] == "schedule"));
    // Nothing is left running: each run ended, and any `slow` run was interrupted with its
    // step recorded as interrupted.
    for r in &runs {
        assert_ne!(r["status"], "running");
        assert_ne!(r["status"], "queued");
    }
    for r in runs.iter().filter(|r| r["job"] == "slow") {
        assert_eq!(r["status"], "interrupted");
        let shown = scratch.show(r["id"].as_i64().unwrap());
        assert_eq!(shown["steps"][0]["outcome"], "interrupted");
    }
}
