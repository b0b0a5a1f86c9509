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
use std::time::Instant;

use chrono::Utc;
use runner::config::{Job, JobFile};
use runner::pipeline::Runner;
use runner::sandbox::{
    EngineOptions, Limits, Outcome, Plugin, Sandbox, SandboxOptions, StepInput, StepReport,
    bindings,
};
use runner::store::{StepEnd, StepStart, Store, Trigger};
use tokio_util::sync::CancellationToken;

/// Passed to this very binary to make it the native no-op: it exits before doing anything.
const NOOP_CHILD: &str = "--noop-child";
const ROUNDS: usize = 7;

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
    run_step_with(sandbox, plugin, dir, config, &Limits::default()).await
}

async fn run_step_with(
    sandbox: &Sandbox,
    plugin: &Plugin,
    dir: &Path,
    config: &str,
    limits: &Limits,
) -> StepReport {
    let input = StepInput {
        context: context(config),
        input_dir: dir,
        output_dir: dir,
        limits,
    };
    let report = sandbox.run(plugin, input).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    report
}

/// A job of `STEPS` no-op steps, run by the real pipeline (`Runner::run_job`): per step it
/// creates the output directory, checks the plugin file's digest, runs the step in the
/// sandbox and records the step's end with the next step's start.
const STEPS: usize = 100;

async fn noop_runner(scratch: &Path, sandbox: Arc<Sandbox>, name: &str) -> (Runner, Job) {
    let dir = scratch.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("input.csv"), "a\n1\n").unwrap();
    let steps = "[[job.step]]\nplugin = \"noop\"\n".repeat(STEPS);
    let text = format!(
        "[runner]\ndata_dir = \"data\"\n\n[[job]]\nname = \"{name}\"\nschedule = \"@daily\"\n\
         input = \"input.csv\"\n\n{steps}"
    );
    let config = dir.join("jobs.toml");
    std::fs::write(&config, text).unwrap();
    let file = JobFile::load(&config).unwrap();
    let job = file.job(name).unwrap().clone();
    let store = Store::open(&dir.join("runner.db")).await.unwrap();
    let runner = Runner {
        file,
        store,
        sandbox,
        data_dir: dir.join("data"),
        plugin_dir: Some(plugin_dir()),
    };
    (runner, job)
}

/// Seconds per step of one run of the no-op job.
async fn pipeline_run(runner: &Runner, job: &Job) -> f64 {
    let start = Instant::now();
    let result = runner
        .run_job(job, Trigger::Manual, Utc::now(), &CancellationToken::new())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.status, "succeeded", "{:?}", result.error);
    start.elapsed().as_secs_f64() / STEPS as f64
}

/// What one step of [`step_loop`] runs.
#[derive(Clone, Copy)]
enum Step<'a> {
    /// The no-op component in the sandbox, its directories already there.
    Wasm(&'a Sandbox, &'a Plugin, &'a Path),
    /// A native program, one process per step.
    Native(&'a Path, &'a str),
    /// Nothing: the bookkeeping alone.
    Nothing,
}

/// `STEPS` steps recorded as the pipeline records them (the run's start with the first
/// step's, then each step's end with the next one's start, then the run's end); with
/// `mkdir`, each step also gets a fresh output directory first, as in the pipeline.
/// Returns seconds per step.
async fn step_loop(store: &Store, scratch: &Path, step: Step<'_>, mkdir: bool) -> f64 {
    let job = store
        .upsert_job("loop", "@daily", "UTC", "{}")
        .await
        .unwrap();
    let run_id = store
        .create_run(job, Utc::now(), Trigger::Manual)
        .await
        .unwrap()
        .unwrap();
    let native_report = StepReport::early(Outcome::Succeeded, String::new());
    let dirs: Vec<PathBuf> = (0..STEPS)
        .map(|i| scratch.join(format!("loop-{run_id}/{i}-noop")))
        .collect();
    let start_of = |idx: usize| StepStart {
        run_id,
        idx,
        attempt: 1,
        name: "noop",
        plugin: "noop",
        output_dir: &dirs[idx],
    };
    let start = Instant::now();
    store.start_run(run_id, Some(&start_of(0))).await.unwrap();
    for (idx, dir) in dirs.iter().enumerate() {
        if mkdir {
            std::fs::create_dir_all(dir).unwrap();
        }
        let report = match step {
            Step::Wasm(sandbox, plugin, dir) => run_step(sandbox, plugin, dir, "{}").await,
            Step::Native(program, arg) => {
                let status = Command::new(program).arg(arg).status().unwrap();
                assert!(status.success());
                native_report.clone()
            }
            Step::Nothing => native_report.clone(),
        };
        let end = StepEnd {
            run_id,
            idx,
            attempt: 1,
            plugin_sha256: None,
            report: &report,
            output_bytes: Some(0),
        };
        let next = (idx + 1 < STEPS).then(|| start_of(idx + 1));
        store.finish_step(&end, next.as_ref()).await.unwrap();
    }
    store
        .finish_run(run_id, "succeeded", None, None, None)
        .await
        .unwrap();
    start.elapsed().as_secs_f64() / STEPS as f64
}

/// (a) Steps per second: in the sandbox, and as native processes (this binary, and
/// `/bin/true` as the floor of any process); the step as the aim defines it (instantiate,
/// call, record) and within the whole pipeline.
async fn noop_steps(scratch: &Path) {
    let sandbox = Arc::new(Sandbox::new().unwrap());
    println!("allocator: {:?}", sandbox.allocator());
    let (runner, job) = noop_runner(scratch, sandbox.clone(), "noop-a").await;
    let store = &runner.store;
    let me = std::env::current_exe().unwrap();
    let noop = sandbox
        .load(&plugin_dir().join("noop.wasm"), None)
        .await
        .unwrap();
    let dir = scratch.join("noop");
    std::fs::create_dir_all(&dir).unwrap();
    let wasm = Step::Wasm(&sandbox, &noop, &dir);
    let native = Step::Native(&me, NOOP_CHILD);
    let truth = Step::Native(Path::new("/bin/true"), "");

    // Interleaved: each round measures every variant once.
    let mut figures: [Vec<f64>; 7] = Default::default();
    for round in 0..=ROUNDS {
        let mut pipeline = Vec::new();
        for _ in 0..5 {
            pipeline.push(pipeline_run(&runner, &job).await);
        }
        let round_figures = [
            step_loop(store, scratch, wasm, false).await,
            step_loop(store, scratch, native, false).await,
            step_loop(store, scratch, truth, false).await,
            median(pipeline),
            step_loop(store, scratch, native, true).await,
            step_loop(store, scratch, Step::Nothing, false).await,
            step_loop(store, scratch, Step::Nothing, true).await,
        ];
        // Round 0 warms caches and the database file.
        if round > 0 {
            for (all, f) in figures.iter_mut().zip(round_figures) {
                all.push(f);
            }
        }
    }
    // Means too: the history's checkpoint (a few ms, every 1,024 writes) lands in whichever
    // loop makes that write, so a median of rounds can leave it out; over all rounds each
    // loop carries its share.
    let mean = |xs: &Vec<f64>| xs.iter().sum::<f64>() / xs.len() as f64;
    let (w_mean, n_mean) = (mean(&figures[0]), mean(&figures[1]));
    let [w, n, t, p, pn, rec, rec_mkdir] = figures.map(median);

    let n_alone = 2000;
    let start = Instant::now();
    for _ in 0..n_alone {
        run_step(&sandbox, &noop, &dir, "{}").await;
    }
    let run_only = start.elapsed().as_secs_f64() / n_alone as f64;

    // Two jobs at a time, as `serve` runs them: the machine has two cores.
    let (runner_b, job_b) = noop_runner(scratch, sandbox.clone(), "noop-b").await;
    let rounds = 5;
    let start = Instant::now();
    let a = async {
        for _ in 0..rounds {
            pipeline_run(&runner, &job).await;
        }
    };
    let b = async {
        for _ in 0..rounds {
            pipeline_run(&runner_b, &job_b).await;
        }
    };
    tokio::join!(a, b);
    let two_at_once = start.elapsed().as_secs_f64() / (2 * rounds * STEPS) as f64;
    let line = |name: &str, x: f64| {
        format!(
            "{name:<44} {:>8.1} us/step = {:>6.0} steps/s",
            x * 1e6,
            1.0 / x
        )
    };
    println!(
        "(a) no-op steps, runs of {STEPS} steps, median of {ROUNDS} interleaved rounds\n  \
         instantiate + call + record (the aim's step):\n    {}\n    {}\n    {}\n    \
         wasm is {:.1}x faster than the native process, {:.1}x faster than /bin/true\n    \
         means of the rounds: wasm {:.1} us/step = {:.0} steps/s, native {:.1} us/step: {:.1}x\n  \
         the whole pipeline (output directory, plugin digest check, output walk):\n    {}\n    {}\n    \
         wasm is {:.1}x faster\n  \
         parts: sandbox run alone {:.1} us; history write alone {:.1} us; with mkdir {:.1} us\n  \
         two pipeline jobs at a time: {:.0} steps/s",
        line("wasm (Sandbox::run)", w),
        line("native (this binary re-executed)", n),
        line("/bin/true", t),
        n / w,
        t / w,
        w_mean * 1e6,
        1.0 / w_mean,
        n_mean * 1e6,
        n_mean / w_mean,
        line("wasm (Runner::run_job)", p),
        line("native (mkdir + process + record)", pn),
        pn / p,
        run_only * 1e6,
        rec * 1e6,
        rec_mkdir * 1e6,
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

/// (c) A CPU-bound step with and without epoch interruption (the deadline) and fuel (only
/// a step with a budget is metered).
async fn deadline_cost(scratch: &Path) {
    let dir = scratch.join("spin");
    std::fs::create_dir_all(&dir).unwrap();
    let budget = Limits {
        fuel: Some(1_000_000_000_000),
        ..Limits::default()
    };
    let variants = [
        ("epochs + a fuel budget", true, &budget),
        ("epochs, no budget (default)", true, &Limits::default()),
        ("neither", false, &Limits::default()),
    ];
    let mut sandboxes = Vec::new();
    for (name, epoch_interruption, limits) in variants {
        let sandbox = Sandbox::with_options(SandboxOptions {
            engine: EngineOptions {
                epoch_interruption,
                fuel: epoch_interruption,
                ..EngineOptions::default()
            },
            cache_dir: None,
        })
        .unwrap();
        let plugin = sandbox
            .load(&plugin_dir().join("hostile_loop.wasm"), None)
            .await
            .unwrap();
        sandboxes.push((name, sandbox, plugin, limits, Vec::new()));
    }
    let config = r#"{"iterations": 200000000}"#;
    for round in 0..=ROUNDS {
        for (_, sandbox, plugin, limits, times) in sandboxes.iter_mut() {
            let report = run_step_with(sandbox, plugin, &dir, config, limits).await;
            if round > 0 {
                times.push(report.duration.as_secs_f64());
            }
        }
    }
    let base = median(sandboxes[2].4.clone());
    println!("(c) CPU-bound step (hostile-loop, 2e8 xorshift rounds), median of {ROUNDS}:");
    for (name, _, _, _, times) in sandboxes {
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
