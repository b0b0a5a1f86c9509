//! Regression tests from a fresh-user attack on the spine: the history and run outputs must
//! survive what users do to a data directory, and `validate` must catch inputs that cannot
//! work.

use crate::support::{Scratch, one_step_job, text};

const CSV: &str = "carrier,dep_delay\nAA,5\nUA,NA\nB6,12\n";
const DELAYED: &str = r#"{ column = "dep_delay", op = ">", value = 0 }"#;

#[test]
fn the_database_file_alone_holds_the_whole_history_after_a_run() {
    // Reported: after `run`, everything sat in runner.db-wal, so copying runner.db lost it.
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", CSV);
    scratch.job_file(&one_step_job("a", &input, "csv-filter", DELAYED));
    assert!(scratch.runner(&["run", "a"]).status.success());

    let copy = scratch.path("copy");
    std::fs::create_dir(&copy).unwrap();
    std::fs::copy(scratch.path("data/runner.db"), copy.join("runner.db")).unwrap();
    let out = scratch.runner(&["runs", "--json", "--data-dir", copy.to_str().unwrap()]);
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.len(), 1, "{}", text(&out.stderr));
    assert_eq!(runs[0]["status"], "succeeded");
}

#[test]
fn a_new_history_never_reads_an_old_runs_files() {
    // Reported: with runner.db deleted, run ids restart at 1 and run 1's old directories,
    // with a planted extra file, leaked into the new run's output.
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", CSV);
    scratch.job_file(&one_step_job("a", &input, "csv-filter", DELAYED));
    assert!(scratch.runner(&["run", "a"]).status.success());
    std::fs::write(
        scratch.path("data/runs/1/0-csv-filter/planted.csv"),
        "carrier\nZZ\n",
    )
    .unwrap();
    for f in ["runner.db", "runner.db-wal", "runner.db-shm"] {
        let _ = std::fs::remove_file(scratch.path("data").join(f));
    }

    assert!(scratch.runner(&["run", "a"]).status.success());
    let fresh = scratch.path("data/runs/1/0-csv-filter");
    let mut names: Vec<String> = std::fs::read_dir(&fresh)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["in.csv"]);
    // The old directory was set aside, not deleted.
    let aside = std::fs::read_dir(scratch.path("data/runs"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("1.stale-")
        })
        .count();
    assert_eq!(aside, 1);
}

#[test]
fn a_symlinked_input_file_is_followed() {
    let scratch = Scratch::new();
    let real = scratch.write("real.csv", CSV);
    let link = scratch.path("link.csv");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    scratch.job_file(&one_step_job("a", &link, "csv-filter", DELAYED));
    let out = scratch.runner(&["run", "a"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // Hand count: 5 and 12 are delays.
    assert!(
        text(&out.stdout).contains("3 -> 2 rows"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn validate_refuses_an_empty_input_a_fifo_and_a_repeated_step_name() {
    let scratch = Scratch::new();
    let fifo = scratch.path("pipe");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let input = scratch.write("in.csv", CSV);
    let repeated = one_step_job("twice", &input, "csv-filter", DELAYED)
        .replace("[[job.step]]\n", "[[job.step]]\nname = \"same\"\n")
        + "[[job.step]]\nname = \"same\"\nplugin = \"csv-filter\"\n\n";
    let jobs = one_step_job("empty", std::path::Path::new(""), "csv-filter", DELAYED)
        + &one_step_job("fifo", &fifo, "csv-filter", DELAYED)
        + &repeated;
    scratch.job_file(&jobs);
    let out = scratch.runner(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("job `empty`, `input`: is empty"),
        "{stderr}"
    );
    assert!(
        stderr.contains("job `fifo`, `input`")
            && stderr.contains("neither a regular file nor a directory"),
        "{stderr}"
    );
    assert!(
        stderr.contains("job `twice`, step `same`, `name`: step name `same` is used twice"),
        "{stderr}"
    );
}

#[test]
fn an_error_prints_its_cause_once() {
    // Reported: `Is a directory (os error 21): Is a directory (os error 21)`.
    let scratch = Scratch::new();
    std::fs::create_dir(scratch.path("jobs.toml")).unwrap();
    let out = scratch.runner(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.matches("Is a directory").count(), 1, "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes when stderr is not a terminal: {stderr:?}"
    );
}

/// A scratch directory whose jobs are `slow` (one step sleeping an hour) and `quick`.
fn slow_and_quick() -> Scratch {
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", CSV);
    let sleeper = crate::support::plugin("hostile-sleep")
        .display()
        .to_string();
    scratch.job_file(
        &(one_step_job("slow", &input, &sleeper, "{ seconds = 3600 }")
            + &one_step_job("quick", &input, "csv-filter", DELAYED)),
    );
    scratch
}

/// Sends `signal` (`-TERM`, `-INT`) to the process.
fn signal(child: &std::process::Child, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {signal}");
}

/// SIGTERM, then waits for the process to end.
fn stop(mut child: std::process::Child) {
    signal(&child, "-TERM");
    child.wait().unwrap();
}

#[test]
fn starting_serve_leaves_a_live_runs_run_alone_and_recovers_a_dead_ones() {
    // Reported: `serve` marked the running run of another live `runner run` as interrupted.
    let scratch = slow_and_quick();
    let mut live = scratch.spawn(&["run", "slow"]);
    scratch.wait_status(1, "running");
    // A `serve` started now must not touch run 1: its process is alive.
    let serve = scratch.spawn(&["serve"]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(scratch.status(1).as_deref(), Some("running"));
    stop(serve);

    // Once that process is killed, the next `serve` recovers its run.
    live.kill().unwrap();
    live.wait().unwrap();
    let serve = scratch.spawn(&["serve"]);
    scratch.wait_status(1, "interrupted");
    stop(serve);
}

#[test]
fn the_next_runner_run_marks_a_killed_runner_runs_run_interrupted_and_leaves_a_live_one() {
    // Reported: a `runner run` killed with SIGKILL left its run `running` until some
    // `serve` started.
    let scratch = slow_and_quick();
    let mut live = scratch.spawn(&["run", "slow"]);
    scratch.wait_status(1, "running");
    let mut killed = scratch.spawn(&["run", "slow"]);
    scratch.wait_status(2, "running");
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert_eq!(
        scratch.status(2).as_deref(),
        Some("running"),
        "nothing has looked yet"
    );

    let out = scratch.runner(&["run", "quick"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(scratch.status(2).as_deref(), Some("interrupted"));
    assert_eq!(
        scratch.status(1).as_deref(),
        Some("running"),
        "its process is alive"
    );
    assert_eq!(scratch.status(3).as_deref(), Some("succeeded"));
    let shown = scratch.show(2);
    assert_eq!(shown["steps"][0]["outcome"], "interrupted");
    live.kill().unwrap();
    live.wait().unwrap();
}

#[test]
fn a_live_run_in_another_pid_namespace_is_left_alone() {
    // Reported: a `runner run` inside its own PID namespace (a container sharing the data
    // directory) records pid 1; another runner saw its own pid 1 with another start time,
    // took the run for dead, marked it interrupted and sent its failure trigger.
    // Needs `unshare` from util-linux and the right to make namespaces (root, as CI runs).
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let scratch = slow_and_quick();
    let mut contained = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(env!("CARGO_BIN_EXE_runner"))
        .arg("--config")
        .arg(scratch.path("jobs.toml"))
        .args(["run", "slow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("unshare (util-linux) runs");
    let start = Instant::now();
    while scratch.status(1).as_deref() != Some("running") {
        assert!(
            contained.try_wait().unwrap().is_none(),
            "the runner in a new PID namespace ended early (can this user unshare?)"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "run 1 never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let out = scratch.runner(&["run", "quick"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(scratch.status(1).as_deref(), Some("running"));
    assert_eq!(scratch.status(2).as_deref(), Some("succeeded"));
    contained.kill().unwrap();
    contained.wait().unwrap();
}

#[test]
fn processes_opening_a_new_history_at_once_all_get_it() {
    // Reported: processes started together on a new data directory raced on the schema
    // migrations and some exited 3 with "duplicate column name" or "table already exists".
    use std::process::{Command, Stdio};
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", CSV);
    let path = scratch.job_file(&one_step_job("a", &input, "csv-filter", DELAYED));
    for round in 0..6 {
        let data = scratch.path(&format!("data-{round}"));
        let children: Vec<_> = (0..8)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_runner"))
                    .arg("--config")
                    .arg(&path)
                    .arg("--data-dir")
                    .arg(&data)
                    .args(["pause", "a"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", text(&out.stderr));
        }
    }
}

#[test]
fn validate_refuses_odd_step_names_and_checks_a_badly_pinned_plugin_too() {
    // Reported: empty, multi-line and 300-character step names passed `validate` (the last
    // failed at run time with "File name too long"), and a malformed `sha256` hid that the
    // same step's plugin did not exist.
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", CSV);
    let named = |job: &str, name: &str| {
        one_step_job(job, &input, "csv-filter", DELAYED).replace(
            "[[job.step]]\n",
            &format!("[[job.step]]\nname = \"{name}\"\n"),
        )
    };
    let jobs = named("empty", "")
        + &named("lines", "a\\nb")
        + &named("long", &"x".repeat(300))
        + &one_step_job("pinned", &input, "no-such-plugin", DELAYED)
            .replace("[[job.step]]\n", "[[job.step]]\nsha256 = \"abc\"\n")
        + &one_step_job(
            "nan",
            &input,
            "csv-filter",
            r#"{ column = "dep_delay", op = ">", value = nan, more = [1.0, -inf] }"#,
        );
    scratch.job_file(&jobs);
    let out = scratch.runner(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    for expected in [
        "job `empty`, step ``, `name`: step name `` must be 1-128 bytes",
        "job `lines`, step `a\\nb`, `name`: step name `a\\nb` must be 1-128 bytes without control characters",
        &format!("step name `{}` must be 1-128 bytes", "x".repeat(300)),
        "job `pinned`, step `no-such-plugin`, `sha256`: `abc` is not 64 hexadecimal digits",
        "job `pinned`, step `no-such-plugin`, `plugin`:",
        "job `nan`, step `csv-filter`, `config.value`: `NaN`: a plugin's config reaches it as JSON",
        "job `nan`, step `csv-filter`, `config.more[1]`: `-inf`",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

/// A job of `steps` no-op steps over a one-line input.
fn long_job(scratch: &Scratch, name: &str, steps: usize) {
    let input = scratch.write("in.csv", "a\n1\n");
    let step = "[[job.step]]\nplugin = \"noop\"\n";
    scratch.job_file(&format!(
        "[[job]]\nname = \"{name}\"\nschedule = \"@daily\"\ninput = \"{}\"\n{}",
        input.display(),
        step.repeat(steps)
    ));
}

/// The steps of run `run_id` with status `succeeded`, read from a copy of `runner.db`
/// alone (without its write-ahead log).
fn succeeded_steps_in_a_copy(scratch: &Scratch, run_id: i64) -> usize {
    let copy = scratch.path(&format!("copy-{run_id}"));
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(scratch.path("data/runner.db"), copy.join("runner.db")).unwrap();
    let out = scratch.runner(&[
        "show",
        &run_id.to_string(),
        "--json",
        "--data-dir",
        copy.to_str().unwrap(),
    ]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("show {run_id}: {}", text(&out.stderr)));
    shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "succeeded")
        .count()
}

#[test]
fn trigger_and_backfill_also_leave_the_whole_history_in_the_database_file() {
    // Reported: only `run` and `serve` folded the write-ahead log into runner.db when they
    // ended, so a copy of runner.db after `trigger` held 255 of a run's 300 steps.
    let scratch = Scratch::new();
    long_job(&scratch, "long", 300);
    assert!(scratch.runner(&["trigger", "long"]).status.success());
    assert_eq!(succeeded_steps_in_a_copy(&scratch, 1), 300);
    let out = scratch.runner(&[
        "backfill",
        "long",
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-01",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(succeeded_steps_in_a_copy(&scratch, 2), 300);
}

#[test]
fn the_log_stays_bounded_while_three_processes_run_long_jobs() {
    // Reported: three `runner run` processes of 3,000 steps each grew runner.db-wal to 106
    // MB (116 MB here), since each process's checkpoints never caught up with the others.
    let scratch = Scratch::new();
    long_job(&scratch, "long", 3000);
    let wal = scratch.path("data/runner.db-wal");
    // A first run creates the history, so the three start on an existing one.
    assert!(scratch.runner(&["run", "long"]).status.success());
    let mut children: Vec<_> = (0..3).map(|_| scratch.spawn(&["run", "long"])).collect();
    let mut largest = 0;
    while children.iter_mut().any(|c| c.try_wait().unwrap().is_none()) {
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    // With the checkpoints that wait for the others past 16 MiB of log: 21 MB at most.
    assert!(largest < 48 << 20, "runner.db-wal grew to {largest} bytes");
    assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0);
    for run in 2..=4 {
        assert_eq!(succeeded_steps_in_a_copy(&scratch, run), 3000);
    }
}

#[test]
fn a_reader_holding_the_log_delays_the_end_of_a_command_briefly_and_is_reported() {
    // Reported: with another process in a read transaction, `run` waited the full 10 s
    // busy timeout at exit to fold the log in, then failed to without a word.
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", CSV);
    scratch.job_file(&one_step_job("a", &input, "csv-filter", DELAYED));
    assert!(scratch.runner(&["run", "a"]).status.success());

    let reader = rusqlite::Connection::open(scratch.path("data/runner.db")).unwrap();
    reader
        .execute_batch("BEGIN; SELECT count(*) FROM runs;")
        .unwrap();
    let out = scratch.runner(&["run", "a"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("another process is using the run history"),
        "{stderr}"
    );
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);

    // The next command folds the log in: a copy of runner.db alone has both runs.
    assert_eq!(scratch.runs().len(), 2);
    let copy = scratch.path("copy");
    std::fs::create_dir(&copy).unwrap();
    std::fs::copy(scratch.path("data/runner.db"), copy.join("runner.db")).unwrap();
    let out = scratch.runner(&["runs", "--json", "--data-dir", copy.to_str().unwrap()]);
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.len(), 2, "{}", text(&out.stderr));
}

#[test]
fn serve_ends_with_an_error_when_it_could_not_record_what_it_abandoned() {
    // Reported: with the history locked by another process past the busy timeout, `serve`
    // stopped on SIGTERM, logged that it could not record the run, and exited 0.
    use std::process::{Command, Stdio};
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", CSV);
    let sleeper = crate::support::plugin("hostile-sleep")
        .display()
        .to_string();
    scratch.job_file(
        &one_step_job("tick", &input, &sleeper, "{ seconds = 3600 }")
            .replace("schedule = \"@daily\"", "schedule = \"* * * * * *\""),
    );
    let serve = Command::new(env!("CARGO_BIN_EXE_runner"))
        .arg("--config")
        .arg(scratch.path("jobs.toml"))
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    scratch.wait_status(1, "running");

    // Another process takes the write lock and keeps it past the 10 s busy timeout.
    let blocker = rusqlite::Connection::open(scratch.path("data/runner.db")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE;").unwrap();
    signal(&serve, "-TERM");
    let out = serve.wait_with_output().unwrap();
    blocker.execute_batch("COMMIT").unwrap();

    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("could not be written to the run history"),
        "{stderr}"
    );
    // The next `serve` marks the run it left `running` as interrupted.
    let serve = scratch.spawn(&["serve"]);
    scratch.wait_status(1, "interrupted");
    stop(serve);
}

#[test]
fn a_step_interrupted_by_a_signal_records_how_long_it_ran() {
    // Reported: a step interrupted by SIGINT after running 0.46 s was stored with a
    // duration of 0 ms.
    let scratch = slow_and_quick();
    let run = scratch.spawn(&["run", "slow"]);
    scratch.wait_status(1, "running");
    std::thread::sleep(std::time::Duration::from_millis(1000));
    signal(&run, "-INT");
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let step = &scratch.show(1)["steps"][0];
    assert_eq!(step["outcome"], "interrupted");
    let ms = step["duration_ms"].as_f64().unwrap();
    assert!((1000.0..60_000.0).contains(&ms), "duration_ms = {ms}");
    assert_eq!(step["limits"]["timeout_secs"], 600.0);
}
