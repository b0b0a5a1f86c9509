//! Crash recovery: `serve` killed with SIGKILL in the middle of a run, then started again.
//! The run the dead process left `running` is marked interrupted, retried once as a `retry`
//! run of the same slot (its job retries `interrupted`), and no slot runs twice.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Scratch, one_step_job, plugin, text};

fn serve(scratch: &Scratch) -> Child {
    Command::new(env!("CARGO_BIN_EXE_runner"))
        .arg("--config")
        .arg(scratch.path("jobs.toml"))
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Polls `runner runs --json` (bounded) until `done` holds, and returns those runs.
fn wait_for(scratch: &Scratch, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        if scratch.path("data/runner.db").exists() {
            let out = scratch.runner(&["runs", "--json", "--limit", "10000"]);
            if let Ok(runs) = serde_json::from_slice::<Vec<Value>>(&out.stdout)
                && done(&runs)
            {
                return runs;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn is_run(r: &Value) -> bool {
    r["id"].as_i64().unwrap() > 0
}

#[test]
fn a_run_killed_with_sigkill_is_interrupted_and_retried_once_after_restart_and_no_slot_runs_twice()
{
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", "a\n1\n");
    let sleep = plugin("hostile-sleep").display().to_string();
    let job = one_step_job("slow", &input, &sleep, "{ seconds = 3600 }")
        .replace(
            "schedule = \"@daily\"\n",
            "schedule = \"* * * * * *\"\noverlap = \"forbid\"\n",
        )
        .replace(
            "[[job.step]]",
            "[job.retry]\nmax_attempts = 2\nbackoff_secs = 0\nretry_on = [\"interrupted\"]\n\
             [[job.step]]",
        );
    scratch.job_file(&job);

    // First process: wait until a run's step is sleeping, then kill it outright.
    let mut first = serve(&scratch);
    let runs = wait_for(&scratch, "a running run", |runs| {
        runs.iter().any(|r| is_run(r) && r["status"] == "running")
    });
    let killed = runs
        .iter()
        .find(|r| is_run(r) && r["status"] == "running")
        .unwrap()
        .clone();
    let killed_id = killed["id"].as_i64().unwrap();
    let slot = killed["logical_time"].as_str().unwrap().to_string();
    first.kill().unwrap();
    first.wait().unwrap();
    let after_kill = scratch.show(killed_id);
    assert_eq!(
        after_kill["run"]["status"], "running",
        "a dead process cannot record"
    );

    // Second process: recovery, then the retry of the killed slot starts.
    let second = serve(&scratch);
    // While the retry holds the job, the next slots are skipped under `overlap = forbid`.
    wait_for(&scratch, "the retry run and a skipped slot", |runs| {
        runs.iter()
            .any(|r| r["trigger"] == "retry" && r["status"] == "running")
            && runs.iter().any(|r| r["status"] == "skipped")
    });
    Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    let out = second.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let runs = scratch.runs_limit(10_000);

    let killed = scratch.show(killed_id);
    assert_eq!(killed["run"]["status"], "interrupted");
    assert_eq!(
        killed["run"]["error"],
        "the runner process ended before the run finished"
    );
    assert_eq!(killed["steps"][0]["outcome"], "interrupted");

    let retries: Vec<&Value> = runs.iter().filter(|r| r["trigger"] == "retry").collect();
    assert_eq!(retries.len(), 1, "retried exactly once");
    assert_eq!(retries[0]["logical_time"], slot.as_str());
    // The retry was stopped by SIGTERM in its turn.
    assert_eq!(retries[0]["status"], "interrupted");

    // Every scheduled slot is recorded once: as one run, or as one skipped or missed record.
    let mut seen = HashSet::new();
    for r in runs.iter().filter(|r| r["trigger"] == "schedule") {
        let t = r["logical_time"].as_str().unwrap();
        assert!(seen.insert(t.to_string()), "slot {t} recorded twice");
    }
    assert!(
        runs.iter()
            .all(|r| r["status"] != "running" && r["status"] != "queued")
    );
    let skipped: Vec<&Value> = runs.iter().filter(|r| r["status"] == "skipped").collect();
    assert!(!skipped.is_empty());
    for r in skipped {
        let t = r["logical_time"].as_str().unwrap();
        assert!(
            t > slot.as_str(),
            "only slots after the killed one are skipped: {t}"
        );
        assert_eq!(
            r["error"],
            "a run of the job was still running (overlap = forbid)"
        );
    }
}
