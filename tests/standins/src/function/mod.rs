//! An Azure Function behind App Service authentication, the far end of a federated call.
//!
//! `POST <path>` checks the bearer token as Easy Auth would (see [`auth`]), parses the JSON
//! body and records the call. Calls carrying an idempotency key that was already delivered are
//! answered `200` with the first answer's body and an `x-standin-replayed: true` header, but
//! count only once: [`FunctionApp::effective_calls`] holds the first delivery of each key (and
//! every keyless call), [`FunctionApp::all_calls`] everything that arrived. `200` rather than
//! `409` because a retry after a lost answer is a success for the caller, and an invoker should
//! not need a special case to learn that.
//!
//! Faults are queued with [`FunctionApp::inject`] and consumed one per call, in order, before
//! any other check.

mod auth;
mod invoke;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;

use crate::keys::JwkSet;
use crate::server::HttpServer;
use crate::{Entra, StartError, lock};

/// How the function app is set up.
#[derive(Clone, Debug)]
pub struct FunctionConfig {
    /// The function's path, e.g. `/api/downstream`.
    pub path: String,
    /// The token issuer Easy Auth trusts.
    pub issuer: String,
    /// The keys that may sign access tokens.
    pub keys: JwkSet,
    /// Accepted `aud` values (the app id URI or the client id of the function's app).
    pub allowed_audiences: Vec<String>,
    /// Accepted `azp`/`appid` values; empty accepts any client application.
    pub allowed_client_applications: Vec<String>,
    /// The header carrying the idempotency key.
    pub idempotency_header: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub clock_skew_seconds: u64,
}

impl FunctionConfig {
    /// Trusts `entra`'s issuer and keys for tokens whose audience is `audience`, from any
    /// client application, at `/api/downstream`, with no clock skew tolerated.
    pub fn trusting(entra: &Entra, audience: impl Into<String>) -> Self {
        Self {
            path: "/api/downstream".to_owned(),
            issuer: entra.issuer().to_owned(),
            keys: entra.jwks(),
            allowed_audiences: vec![audience.into()],
            allowed_client_applications: Vec::new(),
            idempotency_header: "Idempotency-Key".to_owned(),
            clock_skew_seconds: 0,
        }
    }

    /// Also requires the caller's client application to be `client_id`.
    pub fn allow_client_application(mut self, client_id: impl Into<String>) -> Self {
        self.allowed_client_applications.push(client_id.into());
        self
    }
}

/// A misbehaviour the function app shows on one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer `500` without running the function.
    ServerError,
    /// Answer `429` with `Retry-After: <retry_after_secs>` without running the function.
    TooManyRequests {
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
    /// Wait this long, then handle the call normally.
    Delay(Duration),
    /// Close the connection without an answer, before running the function.
    DropConnection,
    /// Run the function (the call counts as delivered), then close the connection without an
    /// answer: the case an idempotency key exists for.
    DropAfterDelivery,
    /// Answer `401` as for a revoked token; the token presented stays rejected afterwards.
    RevokeToken,
}

/// What became of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// The function ran and answered.
    Delivered,
    /// The function ran; the answer was dropped on purpose.
    DeliveredThenDropped,
    /// A repeat of a delivered idempotency key, answered without running again.
    Replayed,
    /// Rejected with `401`.
    Unauthorized,
    /// Rejected with `403`.
    Forbidden,
    /// Rejected with `400`: the body was not JSON.
    BadRequest,
    /// An injected fault answered instead of the function.
    Injected(Fault),
}

impl CallOutcome {
    /// Whether the function actually ran for this call.
    pub fn is_effective(self) -> bool {
        matches!(self, Self::Delivered | Self::DeliveredThenDropped)
    }
}

/// One call to the function app. The `Authorization` value is never kept.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionCall {
    /// The `x-ms-request-id` answered.
    pub request_id: String,
    /// The `x-ms-invocation-id` answered, when the function was reached.
    pub invocation_id: Option<String>,
    /// Request headers, names lower-case, `authorization` shown as `<redacted>`.
    pub headers: Vec<(String, String)>,
    /// The W3C `traceparent` header.
    pub traceparent: Option<String>,
    /// The idempotency key header.
    pub idempotency_key: Option<String>,
    /// The body, when it was JSON.
    pub body: Option<serde_json::Value>,
    /// The caller's client application, when its token was valid.
    pub client_application: Option<String>,
    /// The status answered; `None` when the connection was dropped instead.
    pub status: Option<u16>,
    /// What became of the call.
    pub outcome: CallOutcome,
    /// The injected delay waited before handling, if any.
    pub delayed_by: Option<Duration>,
}

/// The function app stand-in.
pub struct FunctionApp {
    server: HttpServer,
    shared: Arc<Shared>,
}

struct Shared {
    config: FunctionConfig,
    faults: Mutex<VecDeque<Fault>>,
    /// Answer bodies of delivered calls, by idempotency key.
    delivered: Mutex<HashMap<String, serde_json::Value>>,
    revoked: Mutex<HashSet<String>>,
    calls: Mutex<Vec<FunctionCall>>,
}

impl FunctionApp {
    /// Starts serving `config.path`.
    pub async fn start(config: FunctionConfig) -> Result<Self, StartError> {
        let path = config.path.clone();
        let shared = Arc::new(Shared {
            config,
            faults: Mutex::new(VecDeque::new()),
            delivered: Mutex::new(HashMap::new()),
            revoked: Mutex::new(HashSet::new()),
            calls: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .route(&path, post(invoke::invoke))
            .with_state(Arc::clone(&shared));
        let server = HttpServer::start("function", router).await?;
        Ok(Self { server, shared })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        self.server.base_url()
    }

    /// The function's full URL, base URL plus path.
    pub fn url(&self) -> String {
        format!("{}{}", self.base_url(), self.shared.config.path)
    }

    /// Queues `fault` for the next `times` calls, after any already queued.
    pub fn inject(&self, fault: Fault, times: usize) {
        lock(&self.shared.faults).extend(std::iter::repeat_n(fault, times));
    }

    /// Faults queued and not yet consumed.
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.faults).len()
    }

    /// Every call received, in arrival order.
    pub fn all_calls(&self) -> Vec<FunctionCall> {
        lock(&self.shared.calls).clone()
    }

    /// The calls for which the function ran: each idempotency key once.
    pub fn effective_calls(&self) -> Vec<FunctionCall> {
        lock(&self.shared.calls)
            .iter()
            .filter(|c| c.outcome.is_effective())
            .cloned()
            .collect()
    }
}

impl std::fmt::Debug for FunctionApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionApp")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}
