//! Benchmark of the schedule loop alone (not a timed test: it prints figures for
//! `docs/benchmarks.md`).
//!
//! 10,000 jobs with assorted schedules run on the real clock through [`run_loop`] with a
//! no-op backend: a fire records how late it is and starts nothing, so the figures are the
//! scheduler's (heap, catch-up check, overlap check, task spawn), not a plugin's.
//!
//! 1. Busy: 9,000 jobs firing every 5, 15 or 60 seconds (about 700 fires a second) plus
//!    1,000 hourly and daily jobs in several zones, for 30 seconds: fire lateness p50, p99 and
//!    max (from the slot to the moment the loop hands the run to the backend), and CPU.
//! 2. Idle: 10,000 hourly and daily jobs none of which is due for the next 20 seconds: CPU
//!    time used while the loop waits.
//!
//! Run: `cargo bench -p runner --bench scheduler`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use runner::schedule::{MissedPolicy, Schedule, SystemClock};
use runner::serve::policy::{Overlap, Policies, Retry};
use runner::serve::scheduler::{Backend, JobPlan, Launch, Stop, run_loop};
use runner::serve::state::SlotRecord;
use tokio_util::sync::CancellationToken;

const JOBS: usize = 10_000;
const ZONES: [&str; 5] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
];

/// Records lateness in microseconds; runs nothing.
#[derive(Default)]
struct Noop {
    late_us: Mutex<Vec<i64>>,
    recorded: Mutex<usize>,
}

impl Backend for Noop {
    async fn paused(&self, _job: usize) -> bool {
        false
    }

    async fn record(&self, _job: usize, _record: SlotRecord) {
        *self.recorded.lock().unwrap() += 1;
    }

    fn run(
        &self,
        _job: usize,
        launch: Launch,
        _stop: Stop,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let late = (Utc::now() - launch.slot)
            .num_microseconds()
            .unwrap_or(i64::MAX);
        self.late_us.lock().unwrap().push(late);
        async {}
    }
}

fn plan(i: usize, expr: String, zone: &str) -> JobPlan {
    JobPlan {
        name: format!("job-{i}"),
        schedule: Schedule::parse(&expr, zone).expect("a valid schedule"),
        policies: Policies {
            missed: MissedPolicy::Latest,
            starting_deadline: None,
            overlap: [Overlap::Allow, Overlap::Forbid, Overlap::QueueOne][i % 3],
            timeout: None,
            retry: Retry::from_spec(None, &[]),
        },
        handled: None,
    }
}

/// Hourly or daily jobs at minutes at least `gap` minutes away from now.
fn quiet(i: usize, gap: u32) -> JobPlan {
    let minute = (Utc::now().minute() + gap + (i as u32 % (60 - 2 * gap))) % 60;
    let expr = if i.is_multiple_of(2) {
        format!("{minute} * * * *")
    } else {
        format!("{minute} {} * * *", i % 24)
    };
    plan(i, expr, ZONES[i % ZONES.len()])
}

fn busy_plans() -> Vec<JobPlan> {
    (0..JOBS)
        .map(|i| match i % 10 {
            0..=3 => plan(i, format!("{}-59/15 * * * * *", i % 15), "UTC"),
            4..=6 => plan(i, format!("{} * * * * *", i % 60), ZONES[i % 5]),
            7 | 8 => plan(i, format!("{}-59/5 * * * * *", i % 5), "Europe/Berlin"),
            _ => quiet(i, 2),
        })
        .collect()
}

/// User plus system CPU time of this process, from /proc (Linux).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<u64> = rest
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // utime and stime are fields 14 and 15 of the line; here 11 and 12 (state is not a number).
    let ticks = fields.get(10).copied().unwrap_or(0) + fields.get(11).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux.
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn measure(plans: Vec<JobPlan>, window: Duration) -> (Arc<Noop>, Duration, Duration) {
    let backend = Arc::new(Noop::default());
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(run_loop(
        backend.clone(),
        plans,
        Vec::new(),
        Arc::new(SystemClock),
        cancel.clone(),
    ));
    // Let start-up (parsing is done; this is the heap build) pass before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let setup = started.elapsed();
    backend.late_us.lock().unwrap().clear();
    let cpu_before = cpu_time();
    tokio::time::sleep(window).await;
    let cpu = cpu_time() - cpu_before;
    cancel.cancel();
    task.await.unwrap();
    (backend, cpu, setup)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let t = Instant::now();
        let plans = busy_plans();
        println!(
            "parsed {JOBS} schedules in {:.0} ms",
            t.elapsed().as_secs_f64() * 1000.0
        );
        let t = Instant::now();
        let now = Utc::now();
        let steps: usize = plans
            .iter()
            .map(|p| p.schedule.iter_after(now).take(10).count())
            .sum();
        println!(
            "next fire time: {:.2} us per step ({steps} steps over all the jobs)",
            t.elapsed().as_secs_f64() * 1e6 / steps as f64
        );

        let window = Duration::from_secs(30);
        let (backend, cpu, _) = measure(plans, window).await;
        let mut late = backend.late_us.lock().unwrap().clone();
        late.sort_unstable();
        println!(
            "busy, {JOBS} jobs, {} s: {} fires ({:.0}/s), lateness p50 {:.2} ms, p99 {:.2} ms, \
             max {:.2} ms; CPU {:.2} s ({:.1}% of one core); {} slots recorded as skipped/missed",
            window.as_secs(),
            late.len(),
            late.len() as f64 / window.as_secs_f64(),
            percentile(&late, 0.5),
            percentile(&late, 0.99),
            percentile(&late, 1.0),
            cpu.as_secs_f64(),
            100.0 * cpu.as_secs_f64() / window.as_secs_f64(),
            backend.recorded.lock().unwrap(),
        );

        let idle: Vec<JobPlan> = (0..JOBS).map(|i| quiet(i, 2)).collect();
        let now = Utc::now();
        let earliest = idle
            .iter()
            .filter_map(|p| p.schedule.next_after(now))
            .min()
            .unwrap();
        let window = Duration::from_secs(20);
        let (backend, cpu, _) = measure(idle, window).await;
        println!(
            "idle, {JOBS} jobs, {} s (earliest fire {:.0} s away): {} fires; CPU {:.3} s \
             ({:.2}% of one core)",
            window.as_secs(),
            (earliest - now).num_milliseconds() as f64 / 1000.0,
            backend.late_us.lock().unwrap().len(),
            cpu.as_secs_f64(),
            100.0 * cpu.as_secs_f64() / window.as_secs_f64(),
        );
    });
}
