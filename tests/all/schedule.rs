//! The scheduling commands and policies as a user meets them: `next`, `validate`, `pause`,
//! `resume`, `trigger`, `backfill`, step and job retries, the job timeout, and `serve`
//! resuming from its last recorded slot after a restart (driven in-process by a ManualClock).

use std::sync::Arc;
use std::time::{Duration, Instant};

use runner::config::JobFile;
use runner::pipeline::Runner;
use runner::sandbox::Sandbox;
use runner::schedule::{Clock, ManualClock};
use runner::store::Store;
use tokio_util::sync::CancellationToken;

use crate::support::{Scratch, one_step_job, plugin, text};

const CSV: &str = "carrier,dep_delay\nAA,5\nUA,NA\nAA,-2\nB6,12\n";
const FILTER: &str = r#"{ column = "dep_delay", op = ">", value = 0 }"#;

/// A one-step csv-filter job named `a` with `schedule` in `zone`, and `extra` job-level lines.
fn filter_job(scratch: &Scratch, schedule: &str, zone: &str, extra: &str) -> String {
    let input = scratch.write("in.csv", CSV);
    one_step_job("a", &input, "csv-filter", FILTER).replace(
        "schedule = \"@daily\"\n",
        &format!("schedule = \"{schedule}\"\ntimezone = \"{zone}\"\n{extra}"),
    )
}

fn stdout_lines(out: &std::process::Output) -> Vec<String> {
    text(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn next_prints_a_spring_forward_slot_at_the_instant_of_the_jump_in_the_jobs_zone() {
    // New York springs forward at 02:00 EST on 10 March 2024 to 03:00 EDT: 02:30 does not
    // exist that day, so the fixed-time job fires at the jump (03:00 EDT = 07:00 UTC).
    let scratch = Scratch::new();
    scratch.job_file(&filter_job(&scratch, "30 2 * * *", "America/New_York", ""));
    let out = scratch.runner(&["next", "a", "-n", "3", "--after", "2024-03-09T12:00:00Z"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        stdout_lines(&out)[1..],
        [
            "Sun 2024-03-10 03:00:00 EDT (-04:00)  2024-03-10T07:00:00.000Z",
            "Mon 2024-03-11 02:30:00 EDT (-04:00)  2024-03-11T06:30:00.000Z",
            "Tue 2024-03-12 02:30:00 EDT (-04:00)  2024-03-12T06:30:00.000Z",
        ]
    );
}

#[test]
fn validate_names_the_job_step_field_and_value_of_every_bad_scheduling_setting() {
    let scratch = Scratch::new();
    let job = filter_job(
        &scratch,
        "@hourly",
        "UTC",
        "missed = \"sometimes\"\noverlap = \"never\"\ntimeout_secs = 0\n",
    )
    .replace(
        "[[job.step]]",
        "[job.retry]\nretry_on = [\"trap\", \"bad-luck\"]\n[[job.step]]",
    ) + "[job.step.retry]\nmax_attempts = 0\n";
    scratch.job_file(&job);
    let out = scratch.runner(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    for expected in [
        "job `a`, `missed`: `sometimes` is not a policy: expected `skip`, `latest` or `all`",
        "job `a`, `overlap`: `never` is not a policy",
        "job `a`, `timeout_secs`: `0`: must be above 0",
        "job `a`, `retry.retry_on`: `bad-luck` is not a failure outcome",
        "job `a`, step `csv-filter`, `retry.max_attempts`: `0`: must be 1 to 100",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
    assert!(err.contains("5 problem(s)"), "{err}");
}

#[test]
fn pause_and_resume_are_durable_across_processes_and_say_whether_anything_changed() {
    let scratch = Scratch::new();
    scratch.job_file(&filter_job(&scratch, "@hourly", "UTC", ""));
    let say = |args: &[&str]| {
        let out = scratch.runner(args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    assert_eq!(say(&["pause", "a"]), "`a` paused");
    assert_eq!(say(&["pause", "a"]), "`a` was already paused");
    assert_eq!(say(&["resume", "a"]), "`a` resumed");
    assert_eq!(say(&["resume", "a"]), "`a` was already running");
    let out = scratch.runner(&["pause", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no job `nope`"));
}

#[test]
fn backfill_runs_each_slot_once_with_its_logical_time_across_a_dst_change() {
    // 06:00 Berlin: CET (+1) on 30 March 2024, CEST (+2) from 31 March on.
    let scratch = Scratch::new();
    scratch.job_file(&filter_job(&scratch, "0 6 * * *", "Europe/Berlin", ""));
    let args = [
        "backfill",
        "a",
        "--from",
        "2024-03-30",
        "--to",
        "2024-04-01T12:00:00+02:00",
    ];
    let out = scratch.runner(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("3 succeeded, 0 failed, 0 already had a run, 0 skipped"),
        "{}",
        text(&out.stdout)
    );
    let mut slots: Vec<String> = scratch
        .runs()
        .iter()
        .map(|r| {
            assert_eq!(r["trigger"], "backfill");
            assert_eq!(r["status"], "succeeded");
            r["logical_time"].as_str().unwrap().to_string()
        })
        .collect();
    slots.sort();
    assert_eq!(
        slots,
        [
            "2024-03-30T05:00:00.000Z",
            "2024-03-31T04:00:00.000Z",
            "2024-04-01T04:00:00.000Z"
        ]
    );

    // Again: every slot already has its run.
    let out = scratch.runner(&args);
    assert!(
        text(&out.stdout).contains("0 succeeded, 0 failed, 3 already had a run"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(scratch.runs().len(), 3);

    let out = scratch.runner(&[
        "backfill",
        "a",
        "--from",
        "2024-04-02",
        "--to",
        "2024-04-01",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is after --to"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_step_retried_by_its_policy_records_every_attempt_and_trigger_records_it_as_manual() {
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", CSV);
    let job = one_step_job(
        "p",
        &input,
        &plugin("hostile-panic").display().to_string(),
        "{}",
    ) + "[job.step.retry]\nmax_attempts = 3\nbackoff_secs = 0\n";
    scratch.job_file(&job);
    let out = scratch.runner(&["trigger", "p"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let runs = scratch.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["trigger"], "manual");
    assert_eq!(runs[0]["status"], "failed");
    let shown = scratch.show(runs[0]["id"].as_i64().unwrap());
    let attempts: Vec<(i64, &str)> = shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["attempt"].as_i64().unwrap(),
                s["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(attempts, [(1, "trap"), (2, "trap"), (3, "trap")]);
}

#[test]
fn a_run_over_the_jobs_timeout_fails_saying_so_and_a_job_retry_tries_the_slot_again() {
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", CSV);
    let sleep = plugin("hostile-sleep").display().to_string();
    let job = one_step_job("s", &input, &sleep, "{ seconds = 30 }").replace(
        "[[job.step]]",
        "timeout_secs = 0.5\n[job.retry]\nmax_attempts = 2\nbackoff_secs = 0\n\
         retry_on = [\"timeout\"]\n[[job.step]]",
    );
    scratch.job_file(&job);
    let out = scratch.runner(&["trigger", "s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let runs = scratch.runs();
    let triggers: Vec<&str> = runs
        .iter()
        .map(|r| r["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(triggers, ["retry", "manual"], "newest first");
    assert_eq!(runs[0]["logical_time"], runs[1]["logical_time"]);
    for r in &runs {
        assert_eq!(r["status"], "failed");
        assert_eq!(r["error"], "the run exceeded the job's timeout of 0.5 s");
    }
}

async fn runner_for(scratch: &Scratch) -> Arc<Runner> {
    let file = JobFile::load(&scratch.path("jobs.toml")).unwrap();
    let data = scratch.path("data");
    std::fs::create_dir_all(&data).unwrap();
    Arc::new(Runner {
        store: Store::open(&data.join("runner.db")).await.unwrap(),
        sandbox: Arc::new(Sandbox::new().unwrap()),
        data_dir: data,
        plugin_dir: None,
        file,
    })
}

/// Waits (bounded, in real time) until `n` runs have ended.
async fn wait_for_ended_runs(runner: &Runner, n: usize) {
    let start = Instant::now();
    loop {
        let runs = runner.store.list_runs(None, 1000).await.unwrap();
        let ended = runs
            .iter()
            .filter(|r| r.id > 0 && r.finished_at.is_some())
            .count();
        if ended >= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{ended} of {n} runs ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_resumes_from_its_last_recorded_slot_after_a_restart_and_never_reruns_one() {
    let scratch = Scratch::new();
    scratch.job_file(&filter_job(&scratch, "0 * * * *", "UTC", ""));

    // First process: up from 00:30, fires 01:00 and 02:00, stops.
    let runner = runner_for(&scratch).await;
    let clock = Arc::new(ManualClock::new(at("2024-01-01T00:30:00Z")));
    let cancel = CancellationToken::new();
    let serve = tokio::spawn(runner::serve::serve(
        runner.clone(),
        clock.clone() as Arc<dyn Clock>,
        cancel.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    clock.set(at("2024-01-01T01:00:00Z"));
    wait_for_ended_runs(&runner, 1).await;
    clock.set(at("2024-01-01T02:00:00Z"));
    wait_for_ended_runs(&runner, 2).await;
    cancel.cancel();
    serve.await.unwrap().unwrap();

    // Second process, up at 05:10: 02:00 is recorded, so it resumes with 03:00 and 04:00
    // (missed, one record) and runs 05:00 once (missed = latest, the default).
    let runner = runner_for(&scratch).await;
    let clock = Arc::new(ManualClock::new(at("2024-01-01T05:10:00Z")));
    let cancel = CancellationToken::new();
    let serve = tokio::spawn(runner::serve::serve(
        runner.clone(),
        clock.clone() as Arc<dyn Clock>,
        cancel.clone(),
    ));
    wait_for_ended_runs(&runner, 3).await;
    cancel.cancel();
    serve.await.unwrap().unwrap();

    let history = runner.store.list_runs(None, 100).await.unwrap();
    let mut ran: Vec<&str> = history
        .iter()
        .filter(|r| r.id > 0)
        .map(|r| {
            assert_eq!(
                (r.trigger.as_str(), r.status.as_str()),
                ("schedule", "succeeded")
            );
            r.logical_time.as_str()
        })
        .collect();
    ran.sort();
    assert_eq!(
        ran,
        [
            "2024-01-01T01:00:00.000Z",
            "2024-01-01T02:00:00.000Z",
            "2024-01-01T05:00:00.000Z"
        ]
    );
    let missed: Vec<(&str, &str, &str)> = history
        .iter()
        .filter(|r| r.id == 0)
        .map(|r| {
            (
                r.logical_time.as_str(),
                r.status.as_str(),
                r.error.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        missed,
        [(
            "2024-01-01T03:00:00.000Z",
            "missed",
            "2 slots from 2024-01-01T03:00:00.000Z to 2024-01-01T04:00:00.000Z: a newer slot \
             ran instead (missed = latest)"
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reads_the_pause_switch_at_each_fire_and_records_paused_slots_as_skipped() {
    let scratch = Scratch::new();
    scratch.job_file(&filter_job(&scratch, "0 * * * *", "UTC", ""));
    let out = scratch.runner(&["pause", "a"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let runner = runner_for(&scratch).await;
    let clock = Arc::new(ManualClock::new(at("2024-01-01T00:30:00Z")));
    let cancel = CancellationToken::new();
    let serve = tokio::spawn(runner::serve::serve(
        runner.clone(),
        clock.clone() as Arc<dyn Clock>,
        cancel.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    clock.set(at("2024-01-01T01:00:00Z"));
    let start = Instant::now();
    while !runner
        .store
        .list_runs(None, 10)
        .await
        .unwrap()
        .iter()
        .any(|r| r.status == "skipped")
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "01:00 was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = scratch.runner(&["resume", "a"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    clock.set(at("2024-01-01T02:00:00Z"));
    wait_for_ended_runs(&runner, 1).await;
    cancel.cancel();
    serve.await.unwrap().unwrap();

    let history = runner.store.list_runs(None, 100).await.unwrap();
    let rows: Vec<(i64, &str, &str)> = history
        .iter()
        .map(|r| (r.id.min(1), r.logical_time.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            (1, "2024-01-01T02:00:00.000Z", "succeeded"),
            (0, "2024-01-01T01:00:00.000Z", "skipped")
        ]
    );
    assert_eq!(history[1].error.as_deref(), Some("the job is paused"));
}

#[test]
fn trigger_under_forbid_skips_and_records_when_the_job_is_running_in_another_process() {
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", CSV);
    let sleep = plugin("hostile-sleep").display().to_string();
    let job = one_step_job("s", &input, &sleep, "{ seconds = 3600 }")
        .replace("[[job.step]]", "overlap = \"forbid\"\n[[job.step]]");
    let path = scratch.job_file(&job);
    let first = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .arg("--config")
        .arg(&path)
        .args(["trigger", "s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !scratch.path("data/runner.db").exists()
        || !scratch.runs().iter().any(|r| r["status"] == "running")
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the first run never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let out = scratch.runner(&["trigger", "s"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("is running already: trigger skipped and recorded"),
        "{}",
        text(&out.stdout)
    );
    std::process::Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    let out = first.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "an interrupted run is not a success"
    );

    let runs = scratch.runs();
    let rows: Vec<(&str, &str)> = runs
        .iter()
        .map(|r| {
            (
                r["trigger"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [("manual", "skipped"), ("manual", "interrupted")]);
}
