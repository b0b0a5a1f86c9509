//! The federated invoker: when a run ends, trigger the Azure Functions its job names, with
//! no static secret anywhere, exactly once as the function sees it, and audit every attempt.
//!
//! The path: the host's AWS credentials (default chain, IMDSv2 on EC2) sign a
//! `GetWebIdentityToken` call to the regional STS endpoint ([`aws`]); the JWT it returns is
//! exchanged at Entra for an access token, cached and refreshed single flight ([`token`]);
//! the access token calls the function with a `traceparent` and an idempotency key
//! ([`deliver`]). Triggers are written to an outbox in the transaction that records the
//! run's end and sent by a worker that survives crashes ([`outbox`]); failures are
//! classified and explained ([`failure`]), and every attempt is audited ([`audit`]).
//! Targets are configured per job ([`target`]).
//!
//! This module lives in the host only: no WIT import reaches it, and plugins have no
//! network. See `docs/invoker.md` for the cloud-side setup.

pub mod audit;
pub mod aws;
pub mod deliver;
pub mod failure;
pub mod outbox;
pub mod target;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

pub use audit::{Delivery, deliveries, show_lines};
pub use outbox::Attempt;
pub use target::{Target, When};

use crate::store::Store;

/// How many triggers one worker sends at the same time.
const CONCURRENCY: i64 = 32;
/// How often an idle worker looks for new triggers.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How long a settled trigger may wait for others to be recorded with it.
const RECORD_WITHIN: Duration = Duration::from_millis(200);

/// The delivery worker's shared state: the store, the HTTP client and the token cache.
pub struct Invoker {
    store: Store,
    http: reqwest::Client,
    tokens: token::Tokens,
}

/// What one pass over the due triggers did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Triggers attempted (an attempt may be two calls, after a refused token).
    pub attempted: usize,
    /// Of those, the ones given up for good (recorded `failed`).
    pub failed: usize,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Triggers still pending (waiting for a retry) when it stopped.
    pub pending: i64,
    /// Triggers this drain gave up on for good.
    pub failed: usize,
}

impl Invoker {
    /// A worker over `store`'s outbox, with AWS credentials from the default chain.
    pub fn new(store: Store) -> anyhow::Result<Arc<Invoker>> {
        Invoker::with_aws(store, aws::Aws::default())
    }

    /// A worker whose AWS side is `aws` (tests and benchmarks give it their own credentials
    /// provider instead of the process's environment).
    pub fn with_aws(store: Store, aws: aws::Aws) -> anyhow::Result<Arc<Invoker>> {
        // No redirects: a redirected call would carry the bearer token to another host.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(CONCURRENCY as usize)
            .user_agent(concat!("runner/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Arc::new(Invoker {
            store,
            tokens: token::Tokens::new(aws, http.clone()),
            http,
        }))
    }

    /// Entra exchanges (each with one STS call) made by this worker so far.
    pub fn exchanges(&self) -> usize {
        self.tokens.exchanges()
    }

    /// Sends the triggers due now (of `run_id`, or all), at most [`CONCURRENCY`] at a time;
    /// returns how many triggers were attempted and how many of them failed for good.
    ///
    /// Outcomes are recorded in groups, one transaction each: whatever has settled when the
    /// first unrecorded outcome is [`RECORD_WITHIN`] old, or the whole batch once its last
    /// call returns. A transaction per trigger cost more than the call itself.
    pub async fn deliver_due(self: &Arc<Self>, run_id: Option<i64>) -> anyhow::Result<Sent> {
        let lease = chrono::Duration::seconds(300);
        let mut sent = Sent::default();
        loop {
            let batch = outbox::claim(self.store.pool(), CONCURRENCY, lease, run_id).await?;
            if batch.is_empty() {
                return Ok(sent);
            }
            sent.attempted += batch.len();
            let mut tasks = JoinSet::new();
            for claimed in batch {
                let me = Arc::clone(self);
                tasks.spawn(async move {
                    let (attempts, settle) = deliver::attempt(&me, &claimed).await;
                    outbox::Settled {
                        claimed,
                        attempts,
                        settle,
                    }
                });
            }
            while let Some(first) = tasks.join_next().await {
                let mut group = Vec::new();
                let mut broken = None;
                let mut take = |done: Result<outbox::Settled, tokio::task::JoinError>| match done {
                    Ok(settled) => group.push(settled),
                    Err(e) => broken = Some(e),
                };
                take(first);
                let deadline = tokio::time::Instant::now() + RECORD_WITHIN;
                while let Ok(Some(done)) =
                    tokio::time::timeout_at(deadline, tasks.join_next()).await
                {
                    take(done);
                }
                sent.failed += group
                    .iter()
                    .filter(|s| matches!(s.settle, outbox::Settle::Failed(..)))
                    .count();
                // What settled is recorded even when a sibling task broke, so it is not sent
                // again after the lease.
                outbox::record(self.store.pool(), &group).await?;
                if let Some(e) = broken {
                    return Err(e.into());
                }
            }
        }
    }

    /// Delivers until nothing (of `run_id`, or at all) is pending, waiting for retries, for at
    /// most `wait` or until `cancel`.
    pub async fn drain(
        self: &Arc<Self>,
        run_id: Option<i64>,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> anyhow::Result<Drained> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut failed = 0;
        loop {
            failed += self.deliver_due(run_id).await?.failed;
            let (pending, next) = outbox::pending(self.store.pool(), run_id).await?;
            if pending == 0 || tokio::time::Instant::now() >= deadline {
                return Ok(Drained { pending, failed });
            }
            let pause = until(next.as_deref()).min(IDLE_POLL * 4);
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = tokio::time::sleep_until(deadline) => {}
                () = cancel.cancelled() => return Ok(Drained { pending, failed }),
            }
        }
    }

    /// Delivers continuously until `cancel`; a failure is logged and the loop goes on.
    pub async fn serve(self: Arc<Self>, cancel: CancellationToken) {
        info!("delivery worker started");
        loop {
            if let Err(e) = self.deliver_due(None).await {
                error!(error = %format!("{e:#}"), "delivery worker: cannot read or write the outbox");
            }
            let next = outbox::pending(self.store.pool(), None)
                .await
                .ok()
                .and_then(|(_, next)| next);
            let pause = until(next.as_deref()).min(IDLE_POLL);
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = cancel.cancelled() => break,
            }
        }
        info!("delivery worker stopped");
    }
}

/// Time until an RFC 3339 instant (zero if past or unreadable; the idle poll if none).
fn until(at: Option<&str>) -> Duration {
    let Some(at) = at else { return IDLE_POLL };
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .and_then(|t| {
            (t.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .ok()
        })
        .unwrap_or(Duration::ZERO)
        .max(Duration::from_millis(5))
}
