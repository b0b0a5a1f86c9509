//! `serve` in-process on a ManualClock with the real store: after a restart it resumes from
//! its last recorded slot and never reruns one, and it reads the pause switch at each fire.

use std::sync::Arc;
use std::time::{Duration, Instant};

use runner::config::JobFile;
use runner::pipeline::Runner;
use runner::sandbox::Sandbox;
use runner::schedule::{Clock, ManualClock};
use runner::store::Store;
use tokio_util::sync::CancellationToken;

use crate::schedule::filter_job;
use crate::support::{Scratch, text};

async fn runner_for(scratch: &Scratch) -> Arc<Runner> {
    let file = JobFile::load(&scratch.path("jobs.toml")).unwrap();
    let data = scratch.path("data");
    std::fs::create_dir_all(&data).unwrap();
    Arc::new(Runner {
        store: Store::open(&data.join("runner.db")).await.unwrap(),
        sandbox: Arc::new(Sandbox::new().unwrap()),
        data_dir: data,
        plugin_dir: None,
        file,
    })
}

/// Waits (bounded, in real time) until `n` runs have ended.
async fn wait_for_ended_runs(runner: &Runner, n: usize) {
    let start = Instant::now();
    loop {
        let runs = runner.store.list_runs(None, 1000).await.unwrap();
        let ended = runs
            .iter()
            .filter(|r| r.id > 0 && r.finished_at.is_some())
            .count();
        if ended >= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{ended} of {n} runs ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_resumes_from_its_last_recorded_slot_after_a_restart_and_never_reruns_one() {
    let scratch = Scratch::new();
    scratch.job_file(&filter_job(&scratch, "0 * * * *", "UTC", ""));

    // First process: up from 00:30, fires 01:00 and 02:00, stops.
    let runner = runner_for(&scratch).await;
    let clock = Arc::new(ManualClock::new(at("2024-01-01T00:30:00Z")));
    let cancel = CancellationToken::new();
    let serve = tokio::spawn(runner::serve::serve(
        runner.clone(),
        clock.clone() as Arc<dyn Clock>,
        cancel.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    clock.set(at("2024-01-01T01:00:00Z"));
    wait_for_ended_runs(&runner, 1).await;
    clock.set(at("2024-01-01T02:00:00Z"));
    wait_for_ended_runs(&runner, 2).await;
    cancel.cancel();
    serve.await.unwrap().unwrap();

    // Second process, up at 05:10: 02:00 is recorded, so it resumes with 03:00 and 04:00
    // (missed, one record) and runs 05:00 once (missed = latest, the default).
    let runner = runner_for(&scratch).await;
    let clock = Arc::new(ManualClock::new(at("2024-01-01T05:10:00Z")));
    let cancel = CancellationToken::new();
    let serve = tokio::spawn(runner::serve::serve(
        runner.clone(),
        clock.clone() as Arc<dyn Clock>,
        cancel.clone(),
    ));
    wait_for_ended_runs(&runner, 3).await;
    cancel.cancel();
    serve.await.unwrap().unwrap();

    let history = runner.store.list_runs(None, 100).await.unwrap();
    let mut ran: Vec<&str> = history
        .iter()
        .filter(|r| r.id > 0)
        .map(|r| {
            assert_eq!(
                (r.trigger.as_str(), r.status.as_str()),
                ("schedule", "succeeded")
            );
            r.logical_time.as_str()
        })
        .collect();
    ran.sort();
    assert_eq!(
        ran,
        [
            "2024-01-01T01:00:00.000Z",
            "2024-01-01T02:00:00.000Z",
            "2024-01-01T05:00:00.000Z"
        ]
    );
    let missed: Vec<(&str, &str, &str)> = history
        .iter()
        .filter(|r| r.id == 0)
        .map(|r| {
            (
                r.logical_time.as_str(),
                r.status.as_str(),
                r.error.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        missed,
        [(
            "2024-01-01T03:00:00.000Z",
            "missed",
            "2 slots from 2024-01-01T03:00:00.000Z to 2024-01-01T04:00:00.000Z: a newer slot \
             was taken instead (missed = latest)"
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reads_the_pause_switch_at_each_fire_and_records_paused_slots_as_skipped() {
    let scratch = Scratch::new();
    scratch.job_file(&filter_job(&scratch, "0 * * * *", "UTC", ""));
    let out = scratch.runner(&["pause", "a"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let runner = runner_for(&scratch).await;
    let clock = Arc::new(ManualClock::new(at("2024-01-01T00:30:00Z")));
    let cancel = CancellationToken::new();
    let serve = tokio::spawn(runner::serve::serve(
        runner.clone(),
        clock.clone() as Arc<dyn Clock>,
        cancel.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    clock.set(at("2024-01-01T01:00:00Z"));
    let start = Instant::now();
    while !runner
        .store
        .list_runs(None, 10)
        .await
        .unwrap()
        .iter()
        .any(|r| r.status == "skipped")
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "01:00 was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = scratch.runner(&["resume", "a"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    clock.set(at("2024-01-01T02:00:00Z"));
    wait_for_ended_runs(&runner, 1).await;
    cancel.cancel();
    serve.await.unwrap().unwrap();

    let history = runner.store.list_runs(None, 100).await.unwrap();
    let rows: Vec<(i64, &str, &str)> = history
        .iter()
        .map(|r| (r.id.min(1), r.logical_time.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            (1, "2024-01-01T02:00:00.000Z", "succeeded"),
            (0, "2024-01-01T01:00:00.000Z", "skipped")
        ]
    );
    assert_eq!(history[1].error.as_deref(), Some("the job is paused"));
}
