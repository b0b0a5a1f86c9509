//! The scheduling commands and policies as a user meets them: `next`, `validate`, `pause`,
//! `resume`, `trigger`, `backfill`, step and job retries and the job timeout.

use std::time::{Duration, Instant};

use crate::support::{Scratch, one_step_job, plugin, text};

const CSV: &str = "carrier,dep_delay\nAA,5\nUA,NA\nAA,-2\nB6,12\n";
const FILTER: &str = r#"{ column = "dep_delay", op = ">", value = 0 }"#;

/// A one-step csv-filter job named `a` with `schedule` in `zone`, and `extra` job-level lines.
pub fn filter_job(scratch: &Scratch, schedule: &str, zone: &str, extra: &str) -> String {
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

    // A span holding no slot says so (it printed only a tally of zeros).
    let out = scratch.runner(&[
        "backfill",
        "a",
        "--from",
        "2024-04-01T10:00:00Z",
        "--to",
        "2024-04-01T11:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(
            "no slot of `a` (`0 6 * * *` in Europe/Berlin) falls from \
             2024-04-01T10:00:00.000Z to 2024-04-01T11:00:00.000Z: nothing to backfill"
        ),
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
