//! Benchmark of the sandbox's speed machinery (not a timed test: it prints figures for
//! `docs/benchmarks.md`). Each comparison is measured side by side, interleaved, in one run.
//!
//! a. A no-op step (instantiate, call, record the step in SQLite) against the same no-op
//!    as a native process per step (spawn, wait, record the same way).
//! b. Start-up with 20 plugins: compile every one against load from the disk cache.
//! c. What the deadline mechanism (epoch interruption) and fuel cost a CPU-bound step.
//!
//! Run: `cargo plugins && cargo bench -p runner --bench sandbox`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use runner::sandbox::{
    EngineOptions, Limits, Outcome, Plugin, Sandbox, SandboxOptions, StepInput, StepReport,
    bindings,
};
use runner::store::{Store, Trigger};

/// Passed to this very binary to make it the native no-op: it exits before doing anything.
const NOOP_CHILD: &str = "--noop-child";
const ROUNDS: usize = 5;

fn plugin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/plugin")
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn context(config: &str) -> bindings::RunContext {
    bindings::RunContext {
        job: "bench".into(),
        run_id: 1,
        logical_time: "2026-01-01T00:00:00.000Z".into(),
        attempt: 1,
        step: "bench".into(),
        config: config.into(),
        input_dir: String::new(),
        output_dir: String::new(),
        inputs: Vec::new(),
    }
}

async fn run_step(sandbox: &Sandbox, plugin: &Plugin, dir: &Path, config: &str) -> StepReport {
    let input = StepInput {
        context: context(config),
        input_dir: dir,
        output_dir: dir,
        limits: &Limits::default(),
    };
    let report = sandbox.run(plugin, input).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    report
}

/// The step history the benchmark writes to, as the runner would.
struct History {
    store: Store,
    run_id: i64,
    next_idx: AtomicUsize,
}

impl History {
    async fn open(dir: &Path) -> History {
        let store = Store::open(&dir.join("runner.db")).await.unwrap();
        let job = store
            .upsert_job("bench", "@daily", "UTC", "{}")
            .await
            .unwrap();
        let run_id = store
            .create_run(job, chrono::Utc::now(), Trigger::Manual)
            .await
            .unwrap()
            .unwrap();
        History {
            store,
            run_id,
            next_idx: AtomicUsize::new(0),
        }
    }

    async fn record(&self, dir: &Path, report: &StepReport) {
        let idx = self.next_idx.fetch_add(1, Ordering::Relaxed);
        let id = self
            .store
            .start_step(self.run_id, idx, 1, "noop", "noop", dir)
            .await
            .unwrap();
        self.store
            .finish_step(id, Some("bench"), report, None)
            .await
            .unwrap();
    }
}

/// (a) Steps per second: in the sandbox, and as native processes (this binary, and
/// `/bin/true` as the floor of any process).
async fn noop_steps(scratch: &Path) {
    let sandbox = Arc::new(Sandbox::new().unwrap());
    println!("allocator: {:?}", sandbox.allocator());
    let noop = sandbox
        .load(&plugin_dir().join("noop.wasm"), None)
        .await
        .unwrap();
    let dir = scratch.join("noop");
    std::fs::create_dir_all(&dir).unwrap();
    let history = Arc::new(History::open(scratch).await);
    let me = std::env::current_exe().unwrap();
    let native_report = StepReport::early(Outcome::Succeeded, String::new());

    let (wasm_n, native_n) = (2000, 200);
    let (mut wasm, mut native, mut truth) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..=ROUNDS {
        let start = Instant::now();
        for _ in 0..wasm_n {
            let report = run_step(&sandbox, &noop, &dir, "{}").await;
            history.record(&dir, &report).await;
        }
        let w = start.elapsed().as_secs_f64() / wasm_n as f64;

        let start = Instant::now();
        for _ in 0..native_n {
            let status = Command::new(&me).arg(NOOP_CHILD).status().unwrap();
            assert!(status.success());
            history.record(&dir, &native_report).await;
        }
        let n = start.elapsed().as_secs_f64() / native_n as f64;

        let start = Instant::now();
        for _ in 0..native_n {
            assert!(Command::new("/bin/true").status().unwrap().success());
            history.record(&dir, &native_report).await;
        }
        let t = start.elapsed().as_secs_f64() / native_n as f64;
        // Round 0 warms caches and the database file.
        if round > 0 {
            wasm.push(w);
            native.push(n);
            truth.push(t);
        }
    }
    let (w, n, t) = (median(wasm), median(native), median(truth));

    // Where a wasm step's time goes: the sandbox alone, and the two history writes alone.
    let start = Instant::now();
    for _ in 0..wasm_n {
        run_step(&sandbox, &noop, &dir, "{}").await;
    }
    let run_only = start.elapsed().as_secs_f64() / wasm_n as f64;
    let start = Instant::now();
    for _ in 0..wasm_n {
        history.record(&dir, &native_report).await;
    }
    let record_only = start.elapsed().as_secs_f64() / wasm_n as f64;

    // Two steps at a time, as `serve` runs jobs: the machine has two cores.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (sandbox, noop, history, dir) =
            (sandbox.clone(), noop.clone(), history.clone(), dir.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..wasm_n / 2 {
                let report = run_step(&sandbox, &noop, &dir, "{}").await;
                history.record(&dir, &report).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let two_at_once = start.elapsed().as_secs_f64() / wasm_n as f64;
    println!(
        "(a) no-op step, instantiate + call + record in SQLite, median of {ROUNDS} rounds:\n    \
         wasm    {:>8.1} us/step = {:>7.0} steps/s ({wasm_n} steps a round)\n    \
         native  {:>8.1} us/step = {:>7.0} steps/s (this binary re-executed; {native_n} a round)\n    \
         /bin/true {:>6.1} us/step = {:>7.0} steps/s\n    \
         wasm is {:.1}x faster than the native process, {:.1}x faster than /bin/true\n    \
         of a wasm step: sandbox run alone {:.1} us, the two SQLite writes alone {:.1} us\n    \
         two wasm steps at a time: {:.0} steps/s",
        w * 1e6,
        1.0 / w,
        n * 1e6,
        1.0 / n,
        t * 1e6,
        1.0 / t,
        n / w,
        t / w,
        run_only * 1e6,
        record_only * 1e6,
        1.0 / two_at_once
    );
}

/// Twenty distinct components: the built plugins, with copies told apart by a custom
/// section appended (valid at the end of a component, and it changes the digest).
fn twenty_plugins(scratch: &Path) -> Vec<PathBuf> {
    let mut built: Vec<PathBuf> = std::fs::read_dir(plugin_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    built.sort();
    let dir = scratch.join("twenty");
    std::fs::create_dir_all(&dir).unwrap();
    (0..20)
        .map(|i| {
            let mut bytes = std::fs::read(&built[i % built.len()]).unwrap();
            let name = format!("bench-copy-{i}");
            let payload_len = 1 + name.len();
            // Custom section: id 0, size, then a name (length-prefixed) and no payload.
            bytes.extend_from_slice(&[0, payload_len as u8, name.len() as u8]);
            bytes.extend_from_slice(name.as_bytes());
            let path = dir.join(format!("p{i}.wasm"));
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect()
}

/// (b) Sandbox start plus loading 20 plugins: empty cache (compile) against warm cache.
async fn startup(scratch: &Path) {
    let plugins = twenty_plugins(scratch);
    let start_with = |cache: PathBuf| {
        let plugins = plugins.clone();
        async move {
            let start = Instant::now();
            let sandbox = Sandbox::with_options(SandboxOptions {
                cache_dir: Some(cache),
                ..SandboxOptions::default()
            })
            .unwrap();
            for p in &plugins {
                sandbox.load(p, None).await.unwrap();
            }
            (start.elapsed().as_secs_f64(), sandbox.load_counts())
        }
    };
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let cache = scratch.join(format!("cache-{round}"));
        let (c, counts) = start_with(cache.clone()).await;
        assert_eq!(counts, (20, 0));
        let (w, counts) = start_with(cache).await;
        assert_eq!(counts, (0, 20));
        cold.push(c);
        warm.push(w);
    }
    let (c, w) = (median(cold), median(warm));
    println!(
        "(b) start-up with 20 plugins, median of 3: compile {:.0} ms, cache hit {:.1} ms: {:.0}x faster",
        c * 1e3,
        w * 1e3,
        c / w
    );
}

/// (c) A CPU-bound step with and without epoch interruption (the deadline) and fuel.
async fn deadline_cost(scratch: &Path) {
    let dir = scratch.join("spin");
    std::fs::create_dir_all(&dir).unwrap();
    let variants = [
        ("epochs + fuel (the default)", true, true),
        ("epochs only", true, false),
        ("neither", false, false),
    ];
    let mut sandboxes = Vec::new();
    for (name, epoch_interruption, fuel) in variants {
        let sandbox = Sandbox::with_options(SandboxOptions {
            engine: EngineOptions {
                epoch_interruption,
                fuel,
                ..EngineOptions::default()
            },
            cache_dir: None,
        })
        .unwrap();
        let plugin = sandbox
            .load(&plugin_dir().join("hostile_loop.wasm"), None)
            .await
            .unwrap();
        sandboxes.push((name, sandbox, plugin, Vec::new()));
    }
    let config = r#"{"iterations": 200000000}"#;
    for round in 0..=ROUNDS {
        for (_, sandbox, plugin, times) in sandboxes.iter_mut() {
            let report = run_step(sandbox, plugin, &dir, config).await;
            if round > 0 {
                times.push(report.duration.as_secs_f64());
            }
        }
    }
    let base = median(sandboxes[2].3.clone());
    println!("(c) CPU-bound step (hostile-loop, 2e8 xorshift rounds), median of {ROUNDS}:");
    for (name, _, _, times) in sandboxes {
        let t = median(times);
        println!(
            "    {name:<28} {:>7.1} ms  ({:+.1}% against neither)",
            t * 1e3,
            (t / base - 1.0) * 100.0
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == NOOP_CHILD) {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().unwrap(),
        common::cpu()
    );
    runtime.block_on(async {
        noop_steps(scratch.path()).await;
        startup(scratch.path()).await;
        deadline_cost(scratch.path()).await;
    });
}
