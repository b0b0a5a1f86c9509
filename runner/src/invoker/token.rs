//! Entra access tokens: the AWS token exchanged as a jwt-bearer client assertion, cached per
//! (authority, tenant, client, scope) until shortly before it expires.
//!
//! Refreshing is single flight: each cache slot is a `tokio::sync::Mutex`, and whoever holds
//! it while the token is stale does the one exchange every other waiter then reuses. An AWS
//! token is never reused: each exchange asks STS for a new one. A token the function
//! refused is dropped with [`Tokens::invalidate`], which only drops that very token, so many
//! callers seeing the same 401 cause one refresh.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tracing::{info, warn};

use super::aws::{Aws, JwtFacts};
use super::failure::{Failure, entra_error};
use super::target::{Target, check_url, loopback_guard};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Refresh this long before expiry at most (a fifth of the lifetime for short tokens).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A credential value. `Debug` never shows it, and nothing else formats it.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: String) -> Secret {
        Secret(value.into())
    }

    /// The value, to put on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where an access token came from: the ids that join the AWS side to the Azure side.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// The STS request that issued the assertion.
    pub sts_request_id: Option<String>,
    /// The assertion's `sub`, `jti`, `exp`.
    pub jwt: JwtFacts,
    /// The `client-request-id` sent to Entra, echoed as its correlation id.
    pub entra_correlation_id: Option<String>,
    /// Entra's `trace_id` / `x-ms-request-id`.
    pub entra_trace_id: Option<String>,
}

/// A cached Entra access token.
#[derive(Debug)]
pub struct AccessToken {
    /// The bearer token.
    pub token: Secret,
    /// Distinguishes this token from its successors in the same slot.
    pub generation: u64,
    /// Where it came from.
    pub provenance: Provenance,
    refresh_at: Instant,
}

/// A failed exchange, with whatever ids it got before failing.
#[derive(Debug)]
pub struct TokenError {
    /// What went wrong.
    pub failure: Failure,
    /// The ids collected so far.
    pub provenance: Provenance,
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<AccessToken>>>>;

/// The token source: AWS identity, Entra exchange, cache.
pub struct Tokens {
    aws: Aws,
    http: reqwest::Client,
    slots: Mutex<HashMap<String, Slot>>,
    generation: AtomicU64,
    exchanges: AtomicUsize,
}

#[derive(Deserialize)]
struct Issued {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize, Default)]
struct Refusal {
    #[serde(default)]
    error_codes: Vec<u64>,
    error_description: Option<String>,
    trace_id: Option<String>,
    correlation_id: Option<String>,
}

impl Tokens {
    /// A token source using `aws` for the assertion and `http` for Entra.
    pub fn new(aws: Aws, http: reqwest::Client) -> Tokens {
        Tokens {
            aws,
            http,
            slots: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            exchanges: AtomicUsize::new(0),
        }
    }

    /// Exchanges made so far (each one STS call and one Entra call).
    pub fn exchanges(&self) -> usize {
        self.exchanges.load(Ordering::SeqCst)
    }

    /// A valid access token for `target`, from the cache or from one exchange.
    pub async fn get(&self, target: &Target) -> Result<Arc<AccessToken>, TokenError> {
        let slot = self.slot(target);
        let mut current = slot.lock().await;
        if let Some(token) = current.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(Arc::clone(token));
        }
        let fresh = Arc::new(self.exchange(target).await?);
        *current = Some(Arc::clone(&fresh));
        Ok(fresh)
    }

    /// Drops the cached token if it is still the one with `generation`.
    pub async fn invalidate(&self, target: &Target, generation: u64) {
        let slot = self.slot(target);
        let mut current = slot.lock().await;
        if current.as_ref().is_some_and(|t| t.generation == generation) {
            *current = None;
        }
    }

    fn slot(&self, target: &Target) -> Slot {
        let key = format!(
            "{} {} {}",
            target.token_endpoint(),
            target.client_id,
            target.scope()
        );
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(slots.entry(key).or_default())
    }

    async fn exchange(&self, target: &Target) -> Result<AccessToken, TokenError> {
        let mut provenance = Provenance::default();
        let fail = |failure: Failure, provenance: &Provenance| TokenError {
            failure,
            provenance: provenance.clone(),
        };
        let endpoint = target.token_endpoint();
        check_url(&endpoint)
            .and_then(|()| loopback_guard(&endpoint))
            .map_err(|m| fail(Failure::permanent("endpoint", m), &provenance))?;

        let assertion = self
            .aws
            .web_identity_token(target)
            .await
            .map_err(|f| fail(f, &provenance))?;
        provenance.sts_request_id = assertion.request_id.clone();
        provenance.jwt = assertion.facts.clone();
        let correlation = uuid::Uuid::new_v4().to_string();
        provenance.entra_correlation_id = Some(correlation.clone());
        self.exchanges.fetch_add(1, Ordering::SeqCst);

        let scope = target.scope();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", target.client_id.as_str()),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion.jwt.expose()),
            ("scope", scope.as_str()),
        ];
        let started = Instant::now();
        let response = self
            .http
            .post(&endpoint)
            .header("client-request-id", &correlation)
            .header("return-client-request-id", "true")
            .timeout(Duration::from_secs(target.timeout_secs))
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                let failure = Failure::transient(
                    "entra-unreachable",
                    format!("could not reach Entra: {}", without_url(&e)),
                );
                fail(failure, &provenance)
            })?;
        let status = response.status().as_u16();
        provenance.entra_trace_id = response
            .headers()
            .get("x-ms-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response.bytes().await.map_err(|e| {
            let failure = Failure::transient(
                "entra-unreachable",
                format!("Entra's answer broke off: {}", without_url(&e)),
            );
            fail(failure, &provenance)
        })?;

        if status == 200
            && let Ok(issued) = serde_json::from_slice::<Issued>(&body)
        {
            let lifetime = Duration::from_secs(issued.expires_in);
            let margin = REFRESH_MARGIN.min(lifetime / 5);
            let token = AccessToken {
                token: Secret::new(issued.access_token),
                generation: self.generation.fetch_add(1, Ordering::SeqCst) + 1,
                refresh_at: started + lifetime - margin,
                provenance,
            };
            info!(
                sts_request_id = token.provenance.sts_request_id.as_deref(),
                jwt_jti = token.provenance.jwt.jti.as_deref(),
                entra_trace_id = token.provenance.entra_trace_id.as_deref(),
                entra_correlation_id = %correlation,
                expires_in_secs = issued.expires_in,
                "exchanged the AWS token for an Entra access token"
            );
            return Ok(token);
        }

        let refusal: Refusal = serde_json::from_slice(&body).unwrap_or_default();
        if refusal.trace_id.is_some() {
            provenance.entra_trace_id = refusal.trace_id.clone();
        }
        if refusal.correlation_id.is_some() {
            provenance.entra_correlation_id = refusal.correlation_id.clone();
        }
        let failure = entra_error(
            refusal.error_codes.first().copied(),
            status,
            refusal.error_description.as_deref().unwrap_or(""),
        );
        warn!(
            code = %failure.code,
            status,
            entra_trace_id = provenance.entra_trace_id.as_deref(),
            entra_correlation_id = provenance.entra_correlation_id.as_deref(),
            "Entra refused the token exchange"
        );
        Err(fail(failure, &provenance))
    }
}

/// A reqwest error's text without its URL (which names the endpoint, never a secret, but
/// keeping the messages short reads better in the audit).
pub fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "the connection was dropped"
    };
    let mut text = kind.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}
