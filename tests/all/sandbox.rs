//! How the sandbox places a guest: fuel is metered only for steps with a budget, and a
//! guest that runs on a thread of its own (its input is regular files of at least
//! `INLINE_IO_MIN_BYTES`) still stops at its deadline and when the runner gives up on it.

use std::path::Path;

use runner::sandbox::{
    EngineOptions, INLINE_IO_MIN_BYTES, Limits, Outcome, Plugin, Sandbox, SandboxOptions,
    StepInput, StepReport, bindings,
};

use crate::support::plugin;

fn context(config: &str) -> bindings::RunContext {
    bindings::RunContext {
        job: "sandbox".into(),
        run_id: 1,
        logical_time: "2026-01-01T00:00:00.000Z".into(),
        attempt: 1,
        step: "step".into(),
        config: config.into(),
        input_dir: String::new(),
        output_dir: String::new(),
        inputs: Vec::new(),
    }
}

/// Runs `plugin` with `config` and `limits` over an input directory holding one small
/// regular file, into a fresh output directory.
async fn run(sandbox: &Sandbox, plugin: &Plugin, config: &str, limits: &Limits) -> StepReport {
    run_over(sandbox, plugin, config, limits, b"x\n1\n").await
}

/// The same over an input file large enough for the guest to get a thread of its own.
async fn run_on_thread(
    sandbox: &Sandbox,
    plugin: &Plugin,
    config: &str,
    limits: &Limits,
) -> StepReport {
    let big = "x\n1\n".repeat(INLINE_IO_MIN_BYTES as usize / 4 + 1);
    run_over(sandbox, plugin, config, limits, big.as_bytes()).await
}

async fn run_over(
    sandbox: &Sandbox,
    plugin: &Plugin,
    config: &str,
    limits: &Limits,
    data: &[u8],
) -> StepReport {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::create_dir_all(&input).unwrap();
    std::fs::create_dir_all(&output).unwrap();
    std::fs::write(input.join("data.csv"), data).unwrap();
    sandbox
        .run(plugin, step(config, &input, &output, limits))
        .await
}

fn step<'a>(config: &str, input: &'a Path, output: &'a Path, limits: &'a Limits) -> StepInput<'a> {
    StepInput {
        context: context(config),
        input_dir: input,
        output_dir: output,
        limits,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_step_with_a_fuel_budget_is_metered_and_it_still_runs_out() {
    let sandbox = Sandbox::new().unwrap();
    let spin = sandbox.load(&plugin("hostile-loop"), None).await.unwrap();
    let bounded = r#"{"iterations": 100000}"#;
    let unlimited = Limits::default();
    let budget = |fuel| Limits {
        fuel: Some(fuel),
        ..Limits::default()
    };

    let free = run(&sandbox, &spin, bounded, &unlimited).await;
    assert_eq!(free.outcome, Outcome::Succeeded, "{:?}", free.error);
    assert_eq!(free.fuel_consumed, None);
    // Loading compiled it once, for the default (unmetered) engine.
    assert_eq!(sandbox.load_counts(), (1, 0), "(compiled, cache hits)");

    let metered = run(&sandbox, &spin, bounded, &budget(100_000_000)).await;
    assert_eq!(metered.outcome, Outcome::Succeeded, "{:?}", metered.error);
    let burned = metered.fuel_consumed.unwrap();
    // Each round is three shifts and three xors at the least: 600,000 operators.
    assert!((600_000..100_000_000).contains(&burned), "burned {burned}");
    // The budget needed the plugin compiled for the metered engine too.
    assert_eq!(sandbox.load_counts(), (2, 0), "(compiled, cache hits)");

    let endless = run(&sandbox, &spin, "{}", &budget(5_000_000)).await;
    assert_eq!(
        endless.outcome,
        Outcome::FuelExhausted,
        "{:?}",
        endless.error
    );
    assert_eq!(endless.fuel_consumed, Some(5_000_000));
    // The metered compile is kept and reused.
    assert_eq!(sandbox.load_counts(), (2, 0), "(compiled, cache hits)");

    // A later step without a budget is unmetered again.
    let free = run(&sandbox, &spin, bounded, &unlimited).await;
    assert_eq!(free.outcome, Outcome::Succeeded, "{:?}", free.error);
    assert_eq!(free.fuel_consumed, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_running_step_stops_its_guest_on_its_thread_and_frees_its_slot() {
    // One instance slot: while the dropped guest still ran, no other step could start.
    let sandbox = Sandbox::with_options(SandboxOptions {
        engine: EngineOptions {
            concurrent_steps: 1,
            ..EngineOptions::default()
        },
        cache_dir: None,
    })
    .unwrap();
    let spin = sandbox.load(&plugin("hostile-loop"), None).await.unwrap();
    let noop = sandbox.load(&plugin("noop"), None).await.unwrap();
    let an_hour = Limits {
        timeout_secs: Some(3600.0),
        ..Limits::default()
    };

    // The runner stopping drops the step's future, as this timeout does.
    let dropped = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        run_on_thread(&sandbox, &spin, "{}", &an_hour),
    )
    .await;
    assert!(dropped.is_err(), "an endless loop returned: {dropped:?}");

    // The guest notices at its next epoch tick; give it up to five seconds, far below
    // the hour it was allowed.
    let mut last = None;
    for _ in 0..250 {
        let report = run(&sandbox, &noop, "{}", &Limits::default()).await;
        if report.outcome == Outcome::Succeeded {
            return;
        }
        last = Some(report);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the dropped guest still holds the only slot: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_on_its_own_thread_is_stopped_at_its_deadline_in_a_sleep_and_in_a_loop() {
    let sandbox = Sandbox::new().unwrap();
    let short = Limits {
        timeout_secs: Some(0.3),
        ..Limits::default()
    };
    let sleeper = sandbox.load(&plugin("hostile-sleep"), None).await.unwrap();
    let spin = sandbox.load(&plugin("hostile-loop"), None).await.unwrap();
    for (what, plugin, config) in [
        ("sleep", &sleeper, r#"{"seconds": 3600}"#),
        ("loop", &spin, "{}"),
    ] {
        let report = run_on_thread(&sandbox, plugin, config, &short).await;
        assert_eq!(
            report.outcome,
            Outcome::Timeout,
            "{what}: {:?}",
            report.error
        );
        assert_eq!(report.error.as_deref(), Some("deadline of 0.300 s passed"));
        // Ended by the deadline, not by the hour passing or the loop ending.
        assert!(
            report.duration.as_secs() < 60,
            "{what}: {:?}",
            report.duration
        );
    }
}
