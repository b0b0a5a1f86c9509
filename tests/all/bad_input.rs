//! Bad input gets a clear message naming the thing and the value, a documented exit code
//! (2 for bad input, 1 for a run that failed) and no panic; a failing step is a recorded
//! outcome and the runner goes on.

use std::sync::Arc;

use runner::config::JobFile;
use runner::pipeline::Runner;
use runner::sandbox::Sandbox;
use runner::store::{Store, Trigger};
use tokio_util::sync::CancellationToken;

use crate::support::{Scratch, one_step_job, plugin, text};

const CSV: &str = "carrier,dep_delay\nAA,5\nUA,NA\nAA,-2\n";

fn assert_no_panic(out: &std::process::Output) {
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "the runner panicked:\n{stderr}"
    );
}

/// Runs `runner validate` and returns (exit code, stderr).
fn validate(scratch: &Scratch) -> (i32, String) {
    let out = scratch.runner(&["validate"]);
    assert_no_panic(&out);
    (out.status.code().unwrap(), text(&out.stderr))
}

#[test]
fn a_missing_job_file_is_named_and_exits_2() {
    let scratch = Scratch::new();
    let out = scratch.runner(&["run", "x"]);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot read job file") && stderr.contains("jobs.toml"),
        "{stderr}"
    );
}

#[test]
fn a_toml_syntax_error_gives_line_and_column() {
    let scratch = Scratch::new();
    scratch.write(
        "jobs.toml",
        "[[job]]\nname = \"a\"\nschedule = \"@daily\nx = 1\n",
    );
    let (code, stderr) = validate(&scratch);
    assert_eq!(code, 2);
    // The string opened on line 3 lacks its closing quote where the line ends (column 19).
    assert!(stderr.contains("line 3, column 19"), "{stderr}");
}

#[test]
fn plugin_problems_name_job_step_field_and_file() {
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", CSV);
    scratch.write("text.wasm", "this is not wasm");
    // The smallest valid core module: magic, then version 1.
    scratch.write("core.wasm", b"\0asm\x01\0\0\0");
    // The smallest valid component: magic, then version 0x0d, layer 1. It exports nothing.
    scratch.write("empty-component.wasm", b"\0asm\x0d\0\x01\0");
    let mut jobs = String::new();
    for (job, plugin) in [
        ("missing", "nowhere/gone.wasm"),
        ("text", "text.wasm"),
        ("core", "core.wasm"),
        ("other-world", "empty-component.wasm"),
    ] {
        jobs.push_str(&one_step_job(job, &input, plugin, "{}"));
    }
    scratch.job_file(&jobs);

    let (code, stderr) = validate(&scratch);
    assert_eq!(code, 2);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("job `")).collect();
    assert_eq!(lines.len(), 4, "one line per problem:\n{stderr}");
    let expect = [
        (
            "job `missing`, step `gone`, `plugin`",
            "gone.wasm` does not exist",
        ),
        (
            "job `text`, step `text`, `plugin`",
            "is not a WebAssembly file",
        ),
        (
            "job `core`, step `core`, `plugin`",
            "is a core WebAssembly module, not a component",
        ),
        (
            "job `other-world`, step `empty-component`, `plugin`",
            "not a component of world `runner:step/step@0.1.0`",
        ),
    ];
    for (line, (place, what)) in lines.iter().zip(expect) {
        assert!(
            line.contains(place) && line.contains(what),
            "expected {place} … {what} in:\n{line}"
        );
    }
}

#[test]
fn schedule_and_zone_problems_are_all_reported_at_once() {
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", CSV);
    let jobs = format!(
        "[[job]]\nname = \"bad-cron\"\nschedule = \"61 * * * *\"\ninput = \"{i}\"\n\
         [[job.step]]\nplugin = \"csv-filter\"\n\n\
         [[job]]\nname = \"bad-zone\"\nschedule = \"@daily\"\ntimezone = \"Mars/Olympus_Mons\"\n\
         input = \"{i}\"\n[[job.step]]\nplugin = \"csv-filter\"\n\n\
         [[job]]\nname = \"no-input\"\nschedule = \"0 0 30 2 *\"\ninput = \"absent.csv\"\n\
         [[job.step]]\nplugin = \"csv-filter\"\n",
        i = input.display()
    );
    scratch.job_file(&jobs);
    let (code, stderr) = validate(&scratch);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("job `bad-cron`, `schedule`") && stderr.contains("`61`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("job `bad-zone`, `timezone`") && stderr.contains("`Mars/Olympus_Mons`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("job `no-input`, `input`") && stderr.contains("absent.csv"),
        "{stderr}"
    );
    // 30 February never comes.
    assert!(stderr.contains("job `no-input`, `schedule`"), "{stderr}");
    assert!(stderr.contains("4 problem(s)"), "{stderr}");
}

#[test]
fn a_missing_column_fails_the_step_records_why_and_the_next_run_works() {
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", CSV);
    let jobs = one_step_job(
        "wrong-column",
        &input,
        "csv-filter",
        r#"{ column = "arr_delay", op = ">", value = 0 }"#,
    ) + &one_step_job(
        "right-column",
        &input,
        "csv-filter",
        r#"{ column = "dep_delay", op = ">", value = 0 }"#,
    );
    scratch.job_file(&jobs);

    let out = scratch.runner(&["run", "wrong-column"]);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1), "a failed run exits 1");
    let run = scratch.show(1);
    assert_eq!(run["run"]["status"], "failed");
    assert_eq!(run["run"]["failed_step"], "csv-filter");
    let error = run["run"]["error"].as_str().unwrap();
    assert!(
        error.contains("step 1 `csv-filter` ended with guest-error"),
        "{error}"
    );
    assert!(
        error.contains("no column `arr_delay`") && error.contains("carrier, dep_delay"),
        "{error}"
    );
    assert_eq!(run["steps"][0]["outcome"], "guest-error");

    let out = scratch.runner(&["run", "right-column"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Hand count: of AA 5, UA NA, AA -2 only the 5 is a delay.
    assert_eq!(scratch.show(2)["steps"][0]["rows_out"], 1);
    let runs = scratch.runs();
    assert_eq!(runs.len(), 2, "nothing recorded was lost");
}

#[test]
fn a_broken_job_file_loses_no_history() {
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", CSV);
    scratch.job_file(&one_step_job(
        "ok",
        &input,
        "csv-filter",
        r#"{ column = "dep_delay", op = "is-na" }"#,
    ));
    assert!(scratch.runner(&["run", "ok"]).status.success());

    std::fs::write(scratch.path("jobs.toml"), "[[job]\n").unwrap();
    let out = scratch.runner(&["run", "ok"]);
    assert_eq!(out.status.code(), Some(2));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(["runs", "--json", "--data-dir"])
        .arg(scratch.path("data"))
        .current_dir(scratch.dir.path())
        .output()
        .unwrap();
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "succeeded");
}

#[test]
fn an_unknown_job_and_an_unknown_run_are_bad_input() {
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", CSV);
    scratch.job_file(&one_step_job(
        "only",
        &input,
        "csv-filter",
        r#"{ column = "dep_delay", op = "is-na" }"#,
    ));
    let out = scratch.runner(&["run", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no job `nope`") && text(&out.stderr).contains("(jobs: only)")
    );
    assert!(scratch.runner(&["run", "only"]).status.success());
    let out = scratch.runner(&["show", "99"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no run with id `99`"),
        "{}",
        text(&out.stderr)
    );
}

/// One process, one sandbox: a trapping plugin is a recorded outcome, and the same runner
/// then runs a good job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_plugin_is_recorded_and_the_runner_goes_on() {
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", CSV);
    let jobs = one_step_job(
        "trap",
        &input,
        &plugin("hostile-panic").display().to_string(),
        "{}",
    ) + &one_step_job(
        "fine",
        &input,
        "csv-filter",
        r#"{ column = "dep_delay", op = "is-not-na" }"#,
    );
    let path = scratch.job_file(&jobs);
    let file = JobFile::load(&path).unwrap();
    let data = scratch.path("data");
    std::fs::create_dir_all(&data).unwrap();
    let runner = Runner {
        store: Store::open(&data.join("runner.db")).await.unwrap(),
        sandbox: Arc::new(Sandbox::new().unwrap()),
        data_dir: data,
        plugin_dir: None,
        file,
    };
    let cancel = CancellationToken::new();
    let now = chrono::Utc::now();

    let trap = runner
        .run_job(
            runner.file.job("trap").unwrap(),
            Trigger::Manual,
            now,
            &cancel,
        )
        .await;
    let trap = trap.unwrap().unwrap();
    assert_eq!(trap.status, "failed");
    let (run, steps) = runner.store.run_detail(trap.run_id).await.unwrap();
    assert_eq!(steps[0].outcome.as_deref(), Some("trap"));
    assert!(run.error.unwrap().contains("ended with trap"));
    // What the guest printed before panicking, and the panic message, are in its log.
    assert!(
        steps[0]
            .log
            .contains("hostile-panic: about to panic in run 1"),
        "{}",
        steps[0].log
    );
    assert!(
        steps[0].log.contains("hostile-panic was told to panic"),
        "{}",
        steps[0].log
    );

    let fine = runner
        .run_job(
            runner.file.job("fine").unwrap(),
            Trigger::Manual,
            now,
            &cancel,
        )
        .await;
    let fine = fine.unwrap().unwrap();
    assert_eq!(fine.status, "succeeded");
    let (_, steps) = runner.store.run_detail(fine.run_id).await.unwrap();
    // Hand count: two of the three rows have a dep_delay.
    assert_eq!((steps[0].rows_in, steps[0].rows_out), (Some(3), Some(2)));
}
