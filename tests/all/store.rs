//! The history's once-per-step writes: a step's end and the next step's start go to SQLite
//! as one transaction, through the journal connection (`runner/src/store/journal.rs`). They
//! must be all or nothing; a failed one must not leave a transaction open (which would hide
//! every later write from other readers and block other writers); a write that finds another
//! connection holding the write lock must wait for it, as sqlx's connections do, not fail;
//! and the write-ahead log must still be checkpointed.

use std::path::Path;

use runner::sandbox::{Outcome, StepReport};
use runner::store::{StepEnd, StepStart, Store, Trigger};

fn start(run_id: i64, idx: usize, attempt: u32) -> StepStart<'static> {
    StepStart {
        run_id,
        idx,
        attempt,
        name: "s",
        plugin: "noop",
        output_dir: Path::new("/nowhere"),
    }
}

fn end(run_id: i64, idx: usize, report: &StepReport) -> StepEnd<'_> {
    StepEnd {
        run_id,
        idx,
        attempt: 1,
        plugin_sha256: Some("abc"),
        report,
        output_bytes: Some(7),
    }
}

async fn statuses(store: &Store, run_id: i64) -> Vec<(i64, i64, String)> {
    let (_, steps) = store.run_detail(run_id).await.unwrap();
    steps
        .into_iter()
        .map(|s| (s.idx, s.attempt, s.status))
        .collect()
}

/// A new history at `db` with one run started, its step 0 running; returns the run id.
async fn started_run(db: &Path) -> (Store, i64) {
    let store = Store::open(db).await.unwrap();
    let job = store.upsert_job("j", "@daily", "UTC", "{}").await.unwrap();
    let run = store
        .create_run(job, chrono::Utc::now(), Trigger::Manual)
        .await
        .unwrap()
        .unwrap();
    store.start_run(run, Some(&start(run, 0, 1))).await.unwrap();
    (store, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_end_and_the_next_start_are_recorded_together() {
    let dir = tempfile::tempdir().unwrap();
    let (store, run) = started_run(&dir.path().join("runner.db")).await;
    let (record, _) = store.run_detail(run).await.unwrap();
    assert_eq!(record.status, "running");
    assert_eq!(statuses(&store, run).await, [(0, 1, "running".into())]);

    let ok = StepReport::early(Outcome::Succeeded, String::new());
    store
        .finish_step(&end(run, 0, &ok), Some(&start(run, 1, 1)))
        .await
        .unwrap();
    assert_eq!(
        statuses(&store, run).await,
        [(0, 1, "succeeded".into()), (1, 1, "running".into())]
    );
    let (_, steps) = store.run_detail(run).await.unwrap();
    assert_eq!(steps[0].output_bytes, Some(7));
    assert_eq!(steps[0].plugin_sha256.as_deref(), Some("abc"));
    assert_eq!(steps[1].output_dir.as_deref(), Some("/nowhere"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_joined_write_records_neither_half_and_leaves_no_transaction_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runner.db");
    let (store, run) = started_run(&db).await;

    // The "next" attempt already exists, so the joined INSERT breaks the unique key after
    // the UPDATE of step 0 has run inside the same transaction.
    let ok = StepReport::early(Outcome::Succeeded, String::new());
    let err = store
        .finish_step(&end(run, 0, &ok), Some(&start(run, 0, 1)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UNIQUE"), "{err}");
    assert_eq!(statuses(&store, run).await, [(0, 1, "running".into())]);

    // More writes than the pool has connections, each seen by a second, separate store:
    // a transaction left open on any connection would hide the writes made through it.
    for idx in 1..=8 {
        store.start_step(&start(run, idx, 1)).await.unwrap();
    }
    let other = Store::open(&db).await.unwrap();
    assert_eq!(statuses(&other, run).await.len(), 9);
    other
        .finish_step(&end(run, 0, &ok), None)
        .await
        .expect("no transaction of the first store holds the write lock");
    assert_eq!(statuses(&store, run).await[0].2, "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_write_waits_for_another_writer_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runner.db");
    let (store, run) = started_run(&db).await;

    // Another process's connection (here: a second store's) holds SQLite's write lock.
    let other = Store::open(&db).await.unwrap();
    let mut blocker = other.pool().begin().await.unwrap();
    sqlx::query("UPDATE jobs SET updated_at = 'x'")
        .execute(&mut *blocker)
        .await
        .unwrap();

    let ok = StepReport::early(Outcome::Succeeded, String::new());
    let write = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .finish_step(&end(run, 0, &ok), Some(&start(run, 1, 1)))
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!write.is_finished(), "the write did not wait for the lock");
    blocker.commit().await.unwrap();
    write
        .await
        .unwrap()
        .expect("the write goes through once the lock is free");
    assert_eq!(
        statuses(&other, run).await,
        [(0, 1, "succeeded".into()), (1, 1, "running".into())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_step_writes_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let (store, run) = started_run(&dir.path().join("runner.db")).await;
    // Tasks on both worker threads contend for the one journal connection; the ones that
    // find it taken go to the blocking pool.
    let writes: Vec<_> = (1..=64)
        .map(|idx| {
            let store = store.clone();
            tokio::spawn(async move { store.start_step(&start(run, idx, 1)).await })
        })
        .collect();
    for write in writes {
        write.await.unwrap().unwrap();
    }
    let got = statuses(&store, run).await;
    assert_eq!(got.len(), 65);
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, s)| s.0 == i as i64 && s.2 == "running")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_checkpointed_while_a_long_run_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runner.db");
    let (store, run) = started_run(&db).await;
    let ok = StepReport::early(Outcome::Succeeded, String::new());
    let steps = 4000;
    for idx in 0..steps {
        store
            .finish_step(&end(run, idx, &ok), Some(&start(run, idx + 1, 1)))
            .await
            .unwrap();
    }
    // Each write appends its pages to the log: without checkpoints, these 4,000 writes left
    // a log of 35.9 MB (2.2 pages a write); with one every 1,024 writes, 9.2 MB.
    let wal = std::fs::metadata(db.with_extension("db-wal"))
        .unwrap()
        .len();
    assert!(wal < 16 << 20, "the write-ahead log grew to {wal} bytes");
    assert_eq!(statuses(&store, run).await.len(), steps + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_after_close_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (store, run) = started_run(&dir.path().join("runner.db")).await;
    store.close().await;
    let err = store.start_step(&start(run, 1, 1)).await.unwrap_err();
    assert_eq!(err.to_string(), "run history: the store is closed");
}
