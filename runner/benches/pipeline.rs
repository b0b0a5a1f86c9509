//! Benchmark of the spine (not a timed test: it prints figures for `docs/benchmarks.md`).
//!
//! 1. `daily-flights` end to end on the full nycflights13 table, in process, with the
//!    history recorded in SQLite.
//! 2. `group-aggregate`'s logic built natively against the same logic as a Wasm component
//!    in the sandbox, on the same input, runs interleaved so machine noise hits both. Two
//!    more Wasm variants run in the same rounds, to show what each sandbox choice costs:
//!    with a fuel budget (the metered engine), and with a directory beside the input file
//!    (which keeps file calls on tokio's blocking pool, see `sandbox/run.rs`); both
//!    together are how every step ran before either choice existed.
//! 3. The same component over the table repeated 1x and 4x: time and peak guest memory,
//!    which must not grow with the input.
//!
//! Run: `cargo plugins && cargo bench -p runner --bench pipeline` (needs `../shared/data`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runner::config::JobFile;
use runner::pipeline::Runner;
use runner::sandbox::{Limits, Sandbox, StepInput, bindings};
use runner::store::{Store, Trigger};
use tokio_util::sync::CancellationToken;

const REPEATS: usize = 7;
/// Rounds of the native-against-Wasm comparison: more than `REPEATS`, because its ratio is
/// the figure that matters and a shared machine moves single runs by 10% or more.
const ROUNDS: usize = 31;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

const AGGREGATE_CONFIG: &str = r#"{"group_by":["carrier"],"aggregates":[{"column":"dep_delay","ops":["count","mean","min","max"]}]}"#;

fn native_aggregate(input: &Path) -> (Duration, u64) {
    let start = Instant::now();
    let config = serde_json::from_str(AGGREGATE_CONFIG).unwrap();
    let mut agg = group_aggregate::Aggregator::new(config).unwrap();
    let file = std::fs::File::open(input).unwrap();
    // The same reading as the plugin's: it buffers the file itself.
    agg.feed(file, input).unwrap();
    let mut out = Vec::new();
    agg.write(&mut out, Path::new("aggregate.csv")).unwrap();
    (start.elapsed(), agg.rows_in())
}

async fn wasm_aggregate(
    sandbox: &Sandbox,
    plugin: &runner::sandbox::Plugin,
    input_dir: &Path,
    scratch: &Path,
    n: usize,
) -> (Duration, u64, u64) {
    wasm_aggregate_with(sandbox, plugin, input_dir, scratch, n, Limits::default()).await
}

async fn wasm_aggregate_with(
    sandbox: &Sandbox,
    plugin: &runner::sandbox::Plugin,
    input_dir: &Path,
    scratch: &Path,
    n: usize,
    limits: Limits,
) -> (Duration, u64, u64) {
    let output = scratch.join(format!("out-{n}"));
    std::fs::create_dir_all(&output).unwrap();
    let context = bindings::RunContext {
        job: "bench".into(),
        run_id: n as u64,
        logical_time: "2013-01-01T00:00:00Z".into(),
        attempt: 1,
        step: "group-aggregate".into(),
        config: AGGREGATE_CONFIG.into(),
        input_dir: String::new(),
        output_dir: String::new(),
        inputs: Vec::new(),
    };
    let start = Instant::now();
    let report = sandbox
        .run(
            plugin,
            StepInput {
                context,
                input_dir,
                output_dir: &output,
                limits: &limits,
            },
        )
        .await;
    let took = start.elapsed();
    assert!(report.outcome.is_success(), "{:?}", report.error);
    (
        took,
        report.summary.unwrap().rows_in,
        report.memory_peak_bytes,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let flights = repo().join("../shared/data/nycflights13/flights.csv");
    assert!(flights.exists(), "needs {}", flights.display());
    let plugin_dir = repo().join("target/wasm32-wasip2/plugin");
    let scratch = tempfile::tempdir().unwrap();
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().unwrap(),
        common::cpu()
    );

    // 1. daily-flights end to end.
    let example =
        std::fs::read_to_string(repo().join("runner/examples/daily-flights.toml")).unwrap();
    let example = example
        .replace(
            "input = \"data/flights-2013-01.csv\"",
            &format!("input = \"{}\"", flights.display()),
        )
        .replace(
            "plugin_dir = \"../../target/wasm32-wasip2/plugin\"",
            &format!("plugin_dir = \"{}\"", plugin_dir.display()),
        );
    let job_path = scratch.path().join("jobs.toml");
    std::fs::write(&job_path, example).unwrap();
    let data = scratch.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let runner = Runner {
        file: JobFile::load(&job_path).unwrap(),
        store: Store::open(&data.join("runner.db")).await.unwrap(),
        sandbox: Arc::new(Sandbox::new().unwrap()),
        data_dir: data,
        plugin_dir: None,
    };
    let job = runner.file.job("daily-flights").unwrap().clone();
    let cancel = CancellationToken::new();
    let mut first = None;
    let mut times = Vec::new();
    for i in 0..=REPEATS {
        let start = Instant::now();
        let result = runner
            .run_job(&job, Trigger::Manual, chrono::Utc::now(), &cancel)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(result.status, "succeeded", "{:?}", result.error);
        if i == 0 {
            first = Some(start.elapsed());
        } else {
            times.push(start.elapsed());
        }
    }
    let warm = median(times);
    println!(
        "daily-flights, full table (336,776 rows, 3 steps): first run (compiles the 3 components) {:.0} ms; warm median of {REPEATS} {:.0} ms = {:.2} M input rows/s",
        ms(first.unwrap()),
        ms(warm),
        336_776.0 / warm.as_secs_f64() / 1e6
    );

    // 2. group-aggregate native vs Wasm, interleaved.
    let input_dir = scratch.path().join("in1");
    std::fs::create_dir_all(&input_dir).unwrap();
    std::fs::copy(&flights, input_dir.join("flights.csv")).unwrap();
    let sandbox = Sandbox::new().unwrap();
    let plugin = sandbox
        .load(&plugin_dir.join("group_aggregate.wasm"), None)
        .await
        .unwrap();
    // The same file beside an empty directory: the sandbox then keeps file calls on the
    // blocking pool (a directory could hold a FIFO).
    let mixed_dir = scratch.path().join("in1-mixed");
    std::fs::create_dir_all(mixed_dir.join("empty")).unwrap();
    std::fs::copy(&flights, mixed_dir.join("flights.csv")).unwrap();
    let budget = Limits {
        fuel: Some(u64::MAX),
        ..Limits::default()
    };
    let (mut native, mut wasm, mut metered, mut pooled, mut before) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut peak1 = 0;
    for n in 0..=ROUNDS {
        let (nt, nrows) = native_aggregate(&input_dir.join("flights.csv"));
        let (wt, wrows, peak) =
            wasm_aggregate(&sandbox, &plugin, &input_dir, scratch.path(), n).await;
        let s = scratch.path();
        let (mt, mrows, _) =
            wasm_aggregate_with(&sandbox, &plugin, &input_dir, s, 200 + n, budget.clone()).await;
        let (pt, prows, _) =
            wasm_aggregate_with(&sandbox, &plugin, &mixed_dir, s, 300 + n, Limits::default()).await;
        let (bt, brows, _) =
            wasm_aggregate_with(&sandbox, &plugin, &mixed_dir, s, 400 + n, budget.clone()).await;
        assert!([wrows, mrows, prows, brows].iter().all(|&r| r == nrows));
        peak1 = peak;
        if n > 0 {
            native.push(nt);
            wasm.push(wt);
            metered.push(mt);
            pooled.push(pt);
            before.push(bt);
        }
    }
    // Each round's own ratio, too: the two runs of a round are milliseconds apart, so a
    // load change between rounds moves both.
    let mut paired: Vec<f64> = native
        .iter()
        .zip(&wasm)
        .map(|(n, w)| w.as_secs_f64() / n.as_secs_f64())
        .collect();
    paired.sort_by(f64::total_cmp);
    let native = median(native);
    let ratio = |d: Duration| d.as_secs_f64() / native.as_secs_f64();
    let wasm = median(wasm);
    println!(
        "group-aggregate on flights.csv (31 MB), {ROUNDS} rounds: native median {:.1} ms, wasm median {:.1} ms, ratio wasm/native {:.2}x (median of the rounds' own ratios {:.2}x)",
        ms(native),
        ms(wasm),
        ratio(wasm),
        paired[paired.len() / 2]
    );
    for (what, times) in [
        ("with a fuel budget (metered engine)", metered),
        ("file calls on the blocking pool", pooled),
        ("both (every step before these choices)", before),
    ] {
        let t = median(times);
        println!(
            "  wasm {what}: median {:.1} ms, {:.2}x native",
            ms(t),
            ratio(t)
        );
    }

    // 3. Memory does not grow with input: 4x the table.
    let input4 = scratch.path().join("in4");
    std::fs::create_dir_all(&input4).unwrap();
    {
        use std::io::Write;
        let text = std::fs::read_to_string(&flights).unwrap();
        let (header, body) = text.split_once('\n').unwrap();
        let mut f =
            std::io::BufWriter::new(std::fs::File::create(input4.join("flights.csv")).unwrap());
        writeln!(f, "{header}").unwrap();
        for _ in 0..4 {
            f.write_all(body.as_bytes()).unwrap();
        }
    }
    let (t4, rows4, peak4) = wasm_aggregate(&sandbox, &plugin, &input4, scratch.path(), 100).await;
    println!(
        "group-aggregate wasm, 1x table: {:.1} ms, peak linear memory {:.2} MiB; 4x table ({rows4} rows, 124 MB): {:.1} ms, peak linear memory {:.2} MiB",
        ms(wasm),
        peak1 as f64 / 1048576.0,
        ms(t4),
        peak4 as f64 / 1048576.0
    );
}
