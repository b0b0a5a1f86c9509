//! Speed machinery that must not change behaviour: the on-disk compile cache and the
//! fallback from the pooling allocator; and the runner binary wiring both up.

use std::path::Path;

use runner::sandbox::{
    Allocator, EngineOptions, Limits, Outcome, Sandbox, SandboxOptions, StepInput, bindings,
};

use crate::support::{Scratch, plugin, text};

fn cached(dir: &Path) -> Sandbox {
    Sandbox::with_options(SandboxOptions {
        cache_dir: Some(dir.to_path_buf()),
        ..SandboxOptions::default()
    })
    .unwrap()
}

fn context() -> bindings::RunContext {
    bindings::RunContext {
        job: "noop".into(),
        run_id: 1,
        logical_time: "2026-01-01T00:00:00.000Z".into(),
        attempt: 1,
        step: "noop".into(),
        config: "{}".into(),
        input_dir: String::new(),
        output_dir: String::new(),
        inputs: Vec::new(),
    }
}

/// Runs the no-op plugin once and returns how it ended.
async fn run_noop(sandbox: &Sandbox) -> Outcome {
    let noop = sandbox.load(&plugin("noop"), None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = StepInput {
        context: context(),
        input_dir: dir.path(),
        output_dir: dir.path(),
        limits: &Limits::default(),
    };
    sandbox.run(&noop, input).await.outcome
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loads_a_plugin_from_the_cache_instead_of_compiling_it() {
    let cache = tempfile::tempdir().unwrap();
    let first = cached(cache.path());
    assert_eq!(run_noop(&first).await, Outcome::Succeeded);
    assert_eq!(first.load_counts(), (1, 0), "(compiled, cache hits)");
    let stored = entries(cache.path());
    assert_eq!(stored.len(), 1, "{stored:?}");
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(std::fs::read(plugin("noop")).unwrap()));
    assert!(
        stored[0].starts_with(&digest),
        "{stored:?} not keyed by {digest}"
    );
    drop(first);

    let restarted = cached(cache.path());
    assert_eq!(run_noop(&restarted).await, Outcome::Succeeded);
    assert_eq!(restarted.load_counts(), (0, 1), "(compiled, cache hits)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_cache_entry_is_replaced_by_a_fresh_compile() {
    let cache = tempfile::tempdir().unwrap();
    assert_eq!(run_noop(&cached(cache.path())).await, Outcome::Succeeded);
    let entry = cache.path().join(&entries(cache.path())[0]);
    std::fs::write(&entry, b"not a compiled component").unwrap();

    let restarted = cached(cache.path());
    assert_eq!(run_noop(&restarted).await, Outcome::Succeeded);
    assert_eq!(restarted.load_counts(), (1, 0), "(compiled, cache hits)");
    // The fresh compile was written back in place of the corrupt one.
    assert!(std::fs::metadata(&entry).unwrap().len() > 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_too_large_to_reserve_falls_back_to_on_demand_allocation() {
    // 2,000,000 concurrent steps ask for 8,000,000 memory slots of 4 GiB: far past the
    // 128 TiB a 64-bit Linux process can address, so the reservation must fail.
    let sandbox = Sandbox::with_options(SandboxOptions {
        engine: EngineOptions {
            concurrent_steps: 2_000_000,
            ..EngineOptions::default()
        },
        cache_dir: None,
    })
    .unwrap();
    assert_eq!(sandbox.allocator(), Allocator::OnDemand);
    assert_eq!(run_noop(&sandbox).await, Outcome::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_beyond_the_pool_size_is_a_load_error_and_the_pool_recovers() {
    let sandbox = Sandbox::with_options(SandboxOptions {
        engine: EngineOptions {
            concurrent_steps: 1,
            ..EngineOptions::default()
        },
        cache_dir: None,
    })
    .unwrap();
    assert_eq!(sandbox.allocator(), Allocator::Pooling);
    let sleeper = sandbox.load(&plugin("hostile-sleep"), None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        timeout_secs: Some(1.0),
        ..Limits::default()
    };
    let sleeping = sandbox.run(
        &sleeper,
        StepInput {
            context: bindings::RunContext {
                config: r#"{"seconds": 3600}"#.into(),
                ..context()
            },
            input_dir: dir.path(),
            output_dir: dir.path(),
            limits: &limits,
        },
    );
    // The sleeper takes the only slot first (join polls in order); the no-op finds none.
    let (slept, crowded) = tokio::join!(sleeping, run_noop(&sandbox));
    assert_eq!(slept.outcome, Outcome::Timeout);
    assert_eq!(crowded, Outcome::LoadError);
    // With the sleeper gone, its slot serves the next step.
    assert_eq!(run_noop(&sandbox).await, Outcome::Succeeded);
}

#[test]
fn the_runner_caches_under_its_data_dir_and_shows_sandbox_outcomes() {
    let scratch = Scratch::new();
    std::fs::create_dir_all(scratch.path("input")).unwrap();
    scratch.job_file(&crate::host::job(
        "spin",
        "hostile-loop",
        "{}",
        "{ fuel = 2_000_000 }",
    ));

    let out = scratch.runner(&["run", "spin"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // Two entries for the one plugin: the runner loads it into the default engine, and the
    // fuel budget runs it on the metered engine, whose code differs.
    let cache = scratch.path("data/cache/components");
    let names = entries(&cache);
    assert_eq!(names.len(), 2, "{}", cache.display());
    let digest = |name: &str| name.split('-').next().unwrap().to_string();
    assert_eq!(digest(&names[0]), digest(&names[1]), "{names:?}");

    let out = scratch.runner(&["show", "1"]);
    let shown = text(&out.stdout);
    assert!(shown.contains("attempt 1 fuel-exhausted"), "{shown}");
    assert!(shown.contains("  fuel:    2000000 units burned"), "{shown}");
    assert!(
        shown.contains("error:   CPU budget of 2000000 fuel units used up"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_entry_that_cannot_be_written_leaves_no_temporary_file() {
    // Reported: on a full disk every start left a `.<digest>.<pid>.tmp` behind. Here the
    // entry's name is taken by a directory, so the final rename fails the same way.
    let first = tempfile::tempdir().unwrap();
    assert_eq!(run_noop(&cached(first.path())).await, Outcome::Succeeded);
    let name = entries(first.path()).remove(0);

    let blocked = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(blocked.path().join(&name).join("occupied")).unwrap();
    let sandbox = cached(blocked.path());
    assert_eq!(run_noop(&sandbox).await, Outcome::Succeeded);
    assert_eq!(sandbox.load_counts(), (1, 0), "(compiled, cache hits)");
    assert_eq!(entries(blocked.path()), [name]);
}
