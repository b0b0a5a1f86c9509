//! The step path's writes, made on the calling thread.
//!
//! sqlx runs each SQLite connection on a thread of its own, so every query is a hand-off to
//! that thread and back. On the 2-core VM the benchmarks run on, the two hand-offs took about
//! 50 of the 75 us a step's history write cost through sqlx, while SQLite's own work was
//! about 25 us; with a no-op step at 30 us, they were most of a step. The writes a run makes
//! once per step (a step's end with the next step's start, a run's start with its first
//! step, a retry's start) therefore go through one more connection, opened with rusqlite on
//! the same SQLite library, and are made where the caller runs.
//!
//! A write first tries to take SQLite's write lock without waiting (`BEGIN IMMEDIATE` with
//! no busy timeout). When another connection holds that lock, or another task is using this
//! connection, the same write moves to tokio's blocking pool and waits there, up to the busy
//! timeout every other connection of the history has. So the calling thread never sleeps on
//! a lock; it only does SQLite's work of the write.
//!
//! SQLite's automatic checkpoint is off on this connection: it copies the write-ahead log
//! into the database file and syncs it at the end of whichever commit crosses 1,000 pages,
//! milliseconds that would stall the calling thread. Instead every [`CHECKPOINT_EVERY`]th
//! write goes to the blocking pool and checkpoints there after its commit, still holding the
//! connection so that the log can start over at the next write (which syncs the log's new
//! header, so it is made on the blocking pool as well). (A checkpoint made beside
//! the writes, from another connection, never catches up with them, and the log grows.)

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior, params_from_iter};

use super::StoreError;

/// Journal writes between two checkpoints. A step's write adds about two pages to the log
/// (2.2 measured), so the log stays near 2,300 pages (9 MiB). A checkpoint costs a few
/// milliseconds whatever its size on the machines measured (its syncs dominate: the same
/// few pages are rewritten step after step), and the step that makes it waits for it:
/// every 256 writes that was 20 us a step on average, and up to 30 us more in a 100-step
/// run that happened to hold one.
const CHECKPOINT_EVERY: u64 = 1024;

/// Frames (pages) in the log above which a checkpoint waits for the other connections so
/// that the log can start over: 4,096 frames are about 16 MiB.
const RESTART_ABOVE_FRAMES: i64 = 4096;

/// How long such a checkpoint waits for the other connections' transactions to end.
const RESTART_WAIT: Duration = Duration::from_millis(500);

/// The log file is cut back to this size when it starts over.
const LOG_SIZE_LIMIT: u64 = 32 << 20;

/// One transaction: its statements, run in order, and the values of their numbered
/// parameters (`?1` is `values[0]`; each statement takes as many as its highest number).
#[derive(Debug, Clone)]
pub(crate) struct Write {
    pub statements: &'static [&'static str],
    pub values: Vec<Value>,
}

/// The connection behind the step path's writes; `None` once the store is closed.
#[derive(Debug, Clone)]
pub(crate) struct Journal {
    conn: Arc<Mutex<Option<Connection>>>,
    writes: Arc<AtomicU64>,
    busy_timeout: Duration,
}

impl Journal {
    /// Opens the journal's connection to an existing, migrated history.
    pub fn open(path: &Path, busy_timeout: Duration) -> rusqlite::Result<Journal> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch(&format!(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
             PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {LOG_SIZE_LIMIT};"
        ))?;
        Ok(Journal {
            conn: Arc::new(Mutex::new(Some(conn))),
            writes: Arc::new(AtomicU64::new(0)),
            busy_timeout,
        })
    }

    /// Commits `write`: on the calling thread when the lock is free, else on the blocking
    /// pool (see the module's documentation). Either all of it is recorded or none.
    pub async fn write(&self, write: Write) -> Result<(), StoreError> {
        let nth = self.writes.fetch_add(1, Ordering::Relaxed) % CHECKPOINT_EVERY;
        let checkpoint = nth == CHECKPOINT_EVERY - 1;
        // The write after a checkpoint starts the log over, and SQLite syncs the log's new
        // header then: that one goes to the blocking pool too.
        let inline = !checkpoint && nth != 0;
        if inline && let Ok(mut guard) = self.conn.try_lock() {
            let conn = guard.as_mut().ok_or(StoreError::Closed)?;
            conn.busy_timeout(Duration::ZERO)?;
            match apply(conn, &write) {
                Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {}
                done => return Ok(done?),
            }
        }
        let (conn, busy_timeout) = (self.conn.clone(), self.busy_timeout);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
            let conn = guard.as_mut().ok_or(StoreError::Closed)?;
            conn.busy_timeout(busy_timeout)?;
            apply(conn, &write)?;
            if checkpoint && let Err(e) = fold_log(conn) {
                tracing::debug!(error = %e, "checkpoint of the run history failed");
            }
            Ok(())
        })
        .await
        .map_err(StoreError::Abandoned)?
    }

    /// Closes the connection; later writes fail with [`StoreError::Closed`].
    pub fn close(&self) {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(conn);
    }
}

/// Checkpoints the log: passively (without waiting for anyone), then, when the log has
/// grown past [`RESTART_ABOVE_FRAMES`], waiting up to [`RESTART_WAIT`] for the other
/// connections so that it can start over. Called holding the journal connection, so no
/// write of this process lands meanwhile.
///
/// A passive checkpoint alone does not bound the log when other processes write at the
/// same time: it copies what was there when it began while they append, so the log never
/// empties and is never started over (three `runner run` processes of 3,000 steps each
/// grew it to 116 MB).
fn fold_log(conn: &Connection) -> rusqlite::Result<()> {
    let frames = |mode: &str| {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
            row.get::<_, i64>(1)
        })
    };
    if frames("PASSIVE")? > RESTART_ABOVE_FRAMES {
        conn.busy_timeout(RESTART_WAIT)?;
        frames("RESTART")?;
    }
    Ok(())
}

/// Runs the write's statements in one transaction that takes the write lock at its start,
/// so a busy database is found before anything is done. A failed statement rolls it back.
fn apply(conn: &mut Connection, write: &Write) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for sql in write.statements {
        let mut statement = tx.prepare_cached(sql)?;
        let count = statement.parameter_count();
        statement.execute(params_from_iter(write.values.iter().take(count)))?;
    }
    tx.commit()
}
