//! The commands a user types: `validate`, `run`, `runs` and `show`, their output and exit
//! codes.

use crate::support::{Scratch, one_step_job, text};

const CSV: &str = "carrier,dep_delay\nAA,5\nUA,NA\nAA,-2\nB6,12\n";
const DELAYED: &str = r#"{ column = "dep_delay", op = ">", value = 0 }"#;

/// A scratch directory whose job file holds one job, `name`, keeping the delayed flights.
fn delays_job(name: &str) -> Scratch {
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", CSV);
    scratch.job_file(&one_step_job(name, &input, "csv-filter", DELAYED));
    scratch
}

#[test]
fn validate_accepts_a_good_file_and_says_what_it_found() {
    let scratch = delays_job("a");
    let out = scratch.runner(&["validate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 job(s), 1 step(s), no problems"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn run_prints_the_steps_and_where_the_output_is_then_runs_and_show_list_it() {
    let scratch = delays_job("delays");

    let out = scratch.runner(&["run", "delays"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("run 1 of `delays`: succeeded\n"),
        "{stdout}"
    );
    // Hand count: 5 and 12 are delays; NA and -2 are not.
    assert!(stdout.contains("4 -> 2 rows"), "{stdout}");
    let output = stdout
        .lines()
        .find_map(|l| l.strip_prefix("output: "))
        .expect("output line");
    let filtered = std::fs::read_to_string(std::path::Path::new(output).join("in.csv")).unwrap();
    assert_eq!(filtered, "carrier,dep_delay\nAA,5\nB6,12\n");

    assert!(scratch.runner(&["run", "delays"]).status.success());
    let out = scratch.runner(&["runs"]);
    let listing = text(&out.stdout);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "header and two runs:\n{listing}");
    assert!(
        lines[1].trim_start().starts_with("2  delays") && lines[1].contains("manual"),
        "{listing}"
    );
    assert!(
        lines[2].trim_start().starts_with("1  delays") && lines[2].contains("succeeded"),
        "{listing}"
    );

    let runs = scratch.runs();
    assert_eq!(
        runs.iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [2, 1]
    );
    // A job nobody knows is a bad name (exit 2), not an empty history.
    let out = scratch.runner(&["runs", "--job", "other", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no job named `other` in the run history or the job file"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "");

    let out = scratch.runner(&["show", "1"]);
    let shown = text(&out.stdout);
    for expected in [
        "run 1 of `delays`",
        "status:       succeeded",
        "trigger:      manual",
        "step 1 csv-filter",
        "[info] in.csv: kept 2 of 4 rows",
        "sha256 ",
    ] {
        assert!(
            shown.contains(expected),
            "missing {expected:?} in:\n{shown}"
        );
    }
    let json = scratch.show(1);
    let step = &json["steps"][0];
    assert_eq!(step["plugin_sha256"].as_str().unwrap().len(), 64);
    assert!(step["duration_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(
        step["output_bytes"],
        "carrier,dep_delay\nAA,5\nB6,12\n".len()
    );
}

#[test]
fn a_pinned_digest_that_does_not_match_is_refused() {
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", CSV);
    let job = one_step_job(
        "pinned",
        &input,
        "csv-filter",
        r#"{ column = "dep_delay", op = "is-na" }"#,
    )
    .replace(
        "plugin = \"csv-filter\"",
        &format!("plugin = \"csv-filter\"\nsha256 = \"{}\"", "ab".repeat(32)),
    );
    scratch.job_file(&job);
    let out = scratch.runner(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("`sha256`") && stderr.contains("but the job pins"),
        "{stderr}"
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    // Reported: `runner next JOB -n 100000 | head -3` panicked with "failed printing to
    // stdout: Broken pipe" and exited 101.
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let scratch = Scratch::new();
    let input = scratch.write("in.csv", CSV);
    let path = scratch.job_file(&one_step_job("a", &input, "csv-filter", DELAYED));
    let mut child = Command::new(env!("CARGO_BIN_EXE_runner"))
        .arg("--config")
        .arg(&path)
        .args(["next", "a", "-n", "100000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        assert!(lines.next().unwrap().is_ok());
    }
    drop(lines);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn runs_of_a_job_known_only_to_the_file_or_only_to_the_history_list_what_there_is() {
    let scratch = delays_job("old");
    assert!(scratch.runner(&["run", "old"]).status.success());
    // The job file now names another job, never run; `old` is only in the history.
    scratch.job_file(&one_step_job(
        "fresh",
        &scratch.path("in.csv"),
        "csv-filter",
        DELAYED,
    ));
    let out = scratch.runner(&["runs", "--job", "fresh", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "[]");
    let out = scratch.runner(&["runs", "--job", "old", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["job"], "old");
}

#[test]
fn an_unknown_job_name_is_echoed_with_its_control_characters_spelled_out() {
    // Reported: `runner run "$(printf 'x\e[31m\a')"` sent ESC and BEL to the terminal.
    let scratch = delays_job("a");
    for command in ["run", "trigger", "pause"] {
        let out = scratch.runner(&[command, "x\u{1b}[31m\u{7}"]);
        assert_eq!(out.status.code(), Some(2), "{command}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("no job `x\\u{1b}[31m\\u{7}`"),
            "{command}: {stderr}"
        );
        assert!(
            !stderr.contains('\u{1b}') && !stderr.contains('\u{7}'),
            "{command}: {stderr:?}"
        );
    }
}

#[test]
fn a_data_dir_that_is_a_file_is_named_as_such() {
    // Reported: `runs --data-dir FILE` said "no run history in FILE (... run a job first)".
    let scratch = delays_job("a");
    let file = scratch.write("not-a-dir", "x");
    for command in [&["runs"][..], &["show", "1"]] {
        let mut args = command.to_vec();
        args.extend(["--data-dir", file.to_str().unwrap()]);
        let out = scratch.runner(&args);
        assert_eq!(out.status.code(), Some(2), "{command:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "data directory `{}` is not a directory",
                file.display()
            )),
            "{command:?}: {stderr}"
        );
    }
}
