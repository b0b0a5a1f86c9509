//! The hostile plugin suite: each `hostile-*` plugin misbehaves in one way, and each test
//! asserts the exact outcome recorded for it and that the same runner then still runs a
//! good job to the right result. `hostile-fill`, which has many ways to fill its output
//! directory, is tested in `quota.rs`.

use std::path::Path;

use serde_json::json;

use crate::host::{Host, job};

/// Runs `hostile` in a fresh host, checks it ended with `outcome`, checks the host still
/// serves a good job, and returns the hostile step's record as `runner show --json` has it.
async fn run_hostile(host: &Host, outcome: &str) -> serde_json::Value {
    let step = host.run_one("hostile").await;
    assert_eq!(step["outcome"], outcome, "{step:#}");
    host.assert_still_serves().await;
    step
}

async fn hostile(plugin: &str, config: &str, limits: &str) -> Host {
    Host::new(&job("hostile", plugin, config, limits)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_is_stopped_at_its_deadline_as_timeout() {
    let host = hostile("hostile-loop", "{}", "{ timeout_secs = 0.3 }").await;
    let step = run_hostile(&host, "timeout").await;
    assert_eq!(step["error"], "deadline of 0.300 s passed");
    assert_eq!(step["limits"]["timeout_secs"], 0.3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_with_a_fuel_budget_is_stopped_as_fuel_exhausted() {
    let host = hostile("hostile-loop", "{}", "{ fuel = 5_000_000 }").await;
    let step = run_hostile(&host, "fuel-exhausted").await;
    assert_eq!(step["error"], "CPU budget of 5000000 fuel units used up");
    // Out of fuel means every unit of the budget was burned.
    assert_eq!(step["fuel_consumed"], 5_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_long_sleep_inside_wasi_is_stopped_at_its_deadline() {
    let host = hostile(
        "hostile-sleep",
        "{ seconds = 3600 }",
        "{ timeout_secs = 0.3 }",
    )
    .await;
    let step = run_hostile(&host, "timeout").await;
    assert_eq!(step["error"], "deadline of 0.300 s passed");
    // Ended by the deadline, not by the hour passing.
    assert!(step["duration_ms"].as_f64().unwrap() < 60_000.0, "{step:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_from_a_fifo_nobody_writes_is_stopped_at_its_deadline() {
    let host = Host::new(&job(
        "hostile",
        "hostile-sleep",
        r#"{ read = "pipe" }"#,
        "{ timeout_secs = 0.3 }",
    ))
    .await;
    let pipe = host.input_dir().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&pipe)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo failed");

    let step = run_hostile(&host, "timeout").await;
    assert_eq!(step["error"], "deadline of 0.300 s passed");
    release_fifo(&pipe);
}

/// Opens the FIFO for writing without blocking and closes it, so the blocking-pool thread
/// still waiting to open it for the dropped guest sees an end of file and is freed.
fn release_fifo(pipe: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK on Linux: fails at once instead of waiting when no reader is left.
    const O_NONBLOCK: i32 = 0o4000;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(O_NONBLOCK)
        .open(pipe);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocating_until_refused_is_stopped_at_the_memory_cap() {
    let host = hostile("hostile-alloc", "{}", "{ memory_mib = 16 }").await;
    let step = run_hostile(&host, "memory-limit").await;
    let error = step["error"].as_str().unwrap();
    assert!(
        error.starts_with("linear memory cap of 16 MiB refused a grow"),
        "{error}"
    );
    let peak = step["memory_peak_bytes"].as_i64().unwrap();
    assert!(peak <= 16 << 20, "peak {peak} is over the 16 MiB cap");
    // It held at least a few of its 1 MiB blocks before it was refused.
    assert!(peak > 4 << 20, "peak {peak}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_is_stopped_at_the_stack_cap() {
    let host = hostile("hostile-recurse", "{}", "{}").await;
    let step = run_hostile(&host, "stack-overflow").await;
    assert_eq!(step["error"], "wasm stack overflow (cap 512 KiB)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabytes_on_stdout_are_cut_at_the_log_cap_and_the_step_still_succeeds() {
    let host = hostile("hostile-spew", "{ mib = 8 }", "{ log_kib = 64 }").await;
    let step = run_hostile(&host, "succeeded").await;
    assert_eq!(step["log_truncated"], true);
    let log = step["log"].as_str().unwrap();
    // 8 MiB printed, 64 KiB kept: 8 * 1048576 - 65536 = 8323072 bytes dropped.
    assert!(
        log.ends_with(
            "[runner] log truncated: 8323072 more bytes were dropped (cap 65536 bytes)\n"
        ),
        "{}",
        &log[log.len() - 200..]
    );
    assert_eq!(log.lines().filter(|l| l.starts_with("xxx")).count(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_dot_absolute_paths_and_planted_symlinks_do_not_lead_out() {
    let host = Host::new("").await;
    let outside = host.scratch.write("secret.txt", "TOP-SECRET");
    let input = host.input_dir();
    std::os::unix::fs::symlink(&outside, input.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", input.join("rel-link")).unwrap();
    let escape_target = host.scratch.path("escaped.txt");
    let config = json!({
        "reads": [
            "/input/../secret.txt",
            "../secret.txt",
            outside.display().to_string(),
            "/input/abs-link",
            "/input/rel-link",
            "/etc/passwd",
        ],
        "writes": [
            "/output/../escaped.txt",
            escape_target.display().to_string(),
            "/input/planted.txt",
            "/input/rel-link",
        ],
    });
    let host = host
        .with_jobs(&job(
            "hostile",
            "hostile-escape",
            &toml_inline(&config),
            "{}",
        ))
        .await;
    let step = run_hostile(&host, "succeeded").await;
    assert_eq!(step["metrics"]["reads-through"], 0.0, "{}", step["log"]);
    assert_eq!(step["metrics"]["writes-through"], 0.0, "{}", step["log"]);
    let log = step["log"].as_str().unwrap();
    assert!(!log.contains("TOP-SECRET"), "{log}");
    assert_eq!(log.matches("refused").count(), 11, "{log}");
    // Both planted links are refused by the host's path resolution (`not-permitted`), not
    // merely missing in the guest's view.
    for link in ["abs-link", "rel-link"] {
        let line = format!("read `/input/{link}`: refused: Operation not permitted");
        assert!(log.contains(&line), "{log}");
    }
    assert!(!escape_target.exists());
    assert!(!input.join("planted.txt").exists());
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "TOP-SECRET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_sees_no_environment_variables_or_arguments() {
    let host = hostile("hostile-env", "{}", "{}").await;
    let step = run_hostile(&host, "succeeded").await;
    assert_eq!(step["metrics"]["env-vars"], 0.0, "{}", step["log"]);
    assert_eq!(step["metrics"]["args"], 0.0, "{}", step["log"]);
    assert!(
        step["log"]
            .as_str()
            .unwrap()
            .contains("HOME: Err(NotPresent)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_udp_to_a_local_listener_do_not_get_through() {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let config = format!(
        "{{ tcp_port = {}, udp_port = {} }}",
        tcp.local_addr().unwrap().port(),
        udp.local_addr().unwrap().port()
    );
    let host = hostile("hostile-net", &config, "{}").await;
    let step = run_hostile(&host, "succeeded").await;
    assert_eq!(step["metrics"]["tcp-through"], 0.0, "{}", step["log"]);
    assert_eq!(step["metrics"]["udp-through"], 0.0, "{}", step["log"]);
    // The host's socket check refused both (wasi `access-denied`), not a missing feature.
    assert_eq!(
        step["log"],
        "tcp connect: refused: Permission denied (os error 2)\n\
         udp send: refused: Permission denied (os error 2)\n"
    );
    // The listeners saw nothing either: the step has ended, so anything sent has arrived.
    let would_block = std::io::ErrorKind::WouldBlock;
    assert_eq!(tcp.accept().unwrap_err().kind(), would_block);
    assert_eq!(udp.recv_from(&mut [0; 64]).unwrap_err().kind(), would_block);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_recorded_as_a_trap_with_its_message() {
    let host = hostile("hostile-panic", "{}", "{}").await;
    let step = run_hostile(&host, "trap").await;
    assert!(
        step["log"]
            .as_str()
            .unwrap()
            .contains("hostile-panic was told to panic"),
        "{step:#}"
    );
    assert!(
        step["error"].as_str().unwrap().contains("unreachable"),
        "{step:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nan_metric_is_refused_as_a_guest_error() {
    let host = hostile("hostile-summary", "{}", "{}").await;
    let step = run_hostile(&host, "guest-error").await;
    assert_eq!(step["error"], "malformed summary: metric `ratio` is `NaN`");
    assert_eq!(step["metrics"], serde_json::Value::Null);
}

/// A JSON object as a TOML inline table (strings and arrays of strings suffice here).
fn toml_inline(value: &serde_json::Value) -> String {
    let fields: Vec<String> = value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    format!("{{ {} }}", fields.join(", "))
}
