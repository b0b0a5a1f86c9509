//! Microsoft Entra's token endpoint for workload identity federation, and its signing keys.
//!
//! `POST /<tenant>/oauth2/v2.0/token` takes a client-credentials request whose client assertion
//! is a JWT from an external issuer. Like the real service, the stand-in looks up the app's
//! federated identity credentials, fetches the issuer's discovery document and JWKS over HTTP,
//! verifies the assertion and matches `iss`, `sub` and `aud` exactly, then issues its own
//! RS256 access token. Failures carry the `AADSTS` codes listed in `shared/CLOUD.md`. The
//! keys that sign access tokens are served at `/<tenant>/discovery/v2.0/keys` and returned by
//! [`Entra::jwks`] for the function app.

mod assertion;
mod error;
mod exchange;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::keys::{JwkSet, SigningKey};
use crate::server::{BoundListener, HttpServer};
use crate::{StartError, lock, random};

/// The audience Entra expects in an assertion exchanged for a token.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// How long Entra waits for an issuer's discovery document or JWKS.
const ISSUER_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A federated identity credential: which external tokens an app accepts as its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FederatedCredential {
    /// The credential's display name.
    pub name: String,
    /// Must equal the assertion's `iss` exactly.
    pub issuer: String,
    /// Must equal the assertion's `sub` exactly, case included.
    pub subject: String,
    /// One of these must appear in the assertion's `aud`.
    pub audiences: Vec<String>,
}

impl FederatedCredential {
    /// A credential for `issuer` and `subject` with the standard token-exchange audience.
    pub fn new(issuer: impl Into<String>, subject: impl Into<String>) -> Self {
        Self {
            name: "aws-runner".to_owned(),
            issuer: issuer.into(),
            subject: subject.into(),
            audiences: vec![TOKEN_EXCHANGE_AUDIENCE.to_owned()],
        }
    }

    /// The same credential accepting only `audience`.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences = vec![audience.into()];
        self
    }
}

/// An app registration (or user-assigned identity) that can get tokens through federation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppRegistration {
    /// The `client_id` callers name.
    pub client_id: String,
    /// Its federated identity credentials.
    pub federated_credentials: Vec<FederatedCredential>,
}

impl AppRegistration {
    /// An app with no credentials yet.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            federated_credentials: Vec::new(),
        }
    }

    /// Adds a federated identity credential.
    pub fn with_credential(mut self, credential: FederatedCredential) -> Self {
        self.federated_credentials.push(credential);
        self
    }
}

/// How the Entra stand-in is set up.
#[derive(Clone, Debug)]
pub struct EntraConfig {
    /// The tenant id in the token endpoint's path and the tokens' `tid`.
    pub tenant_id: String,
    /// The registered apps.
    pub apps: Vec<AppRegistration>,
    /// `expires_in` of issued tokens, in seconds; small values force refreshes.
    pub expires_in: u64,
    /// Clock skew tolerated on an assertion's `exp`, `nbf` and `iat`, in seconds.
    pub clock_skew_seconds: u64,
}

impl EntraConfig {
    /// A fixed tenant, one-hour tokens and five minutes of tolerated skew.
    pub fn new(apps: Vec<AppRegistration>) -> Self {
        Self {
            tenant_id: "6f1c2b7e-0d3a-4c55-9e8f-1a2b3c4d5e6f".to_owned(),
            apps,
            expires_in: 3599,
            clock_skew_seconds: 300,
        }
    }
}

/// One token request, as Entra saw it. Holds no token value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntraRequest {
    /// The `trace_id`, also sent as `x-ms-request-id`.
    pub trace_id: String,
    /// The `correlation_id`: the caller's `client-request-id` if it sent one.
    pub correlation_id: String,
    /// The `client_id` form field.
    pub client_id: Option<String>,
    /// The `scope` form field.
    pub scope: Option<String>,
    /// The assertion's `iss`, read before verification.
    pub assertion_issuer: Option<String>,
    /// The assertion's `sub`, read before verification.
    pub assertion_subject: Option<String>,
    /// The assertion header's `kid`.
    pub assertion_kid: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// The `AADSTS` code, if the request failed.
    pub error_code: Option<u32>,
    /// The issued token's `uti`, if one was issued.
    pub token_id: Option<String>,
}

/// The Entra stand-in.
pub struct Entra {
    server: HttpServer,
    shared: Arc<Shared>,
}

struct Shared {
    config: EntraConfig,
    base_url: String,
    issuer: String,
    key: SigningKey,
    /// The object id of each app's service principal, parallel to `config.apps`.
    object_ids: Vec<String>,
    http: reqwest::Client,
    switches: Mutex<Switches>,
    requests: Mutex<Vec<EntraRequest>>,
    issued_tokens: Mutex<Vec<String>>,
    token_issues: AtomicUsize,
}

#[derive(Debug)]
struct Switches {
    expires_in: u64,
    propagation_pending: usize,
}

impl Entra {
    /// Generates the token-signing key and starts serving.
    pub async fn start(config: EntraConfig) -> Result<Self, StartError> {
        let listener = BoundListener::bind("entra").await?;
        let base_url = listener.base_url().to_owned();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(ISSUER_FETCH_TIMEOUT)
            .build()
            .map_err(StartError::HttpClient)?;
        let shared = Arc::new(Shared {
            issuer: format!("{base_url}/{}/v2.0", config.tenant_id),
            object_ids: config.apps.iter().map(|_| random::uuid()).collect(),
            switches: Mutex::new(Switches {
                expires_in: config.expires_in,
                propagation_pending: 0,
            }),
            config,
            base_url,
            key: SigningKey::generate().await?,
            http,
            requests: Mutex::new(Vec::new()),
            issued_tokens: Mutex::new(Vec::new()),
            token_issues: AtomicUsize::new(0),
        });
        let router = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(exchange::token))
            .route("/{tenant}/discovery/v2.0/keys", get(keys))
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                get(discovery),
            )
            .with_state(Arc::clone(&shared));
        Ok(Self {
            server: listener.serve(router),
            shared,
        })
    }

    /// `http://127.0.0.1:<port>`, the authority host.
    pub fn base_url(&self) -> &str {
        self.server.base_url()
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> &str {
        &self.shared.config.tenant_id
    }

    /// `<base>/<tenant>/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.base_url(), self.tenant_id())
    }

    /// `<base>/<tenant>/v2.0`, the `iss` of issued access tokens.
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The keys that sign access tokens.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.shared.key.jwk().clone()],
        }
    }

    /// Changes `expires_in` for the tokens issued from now on.
    pub fn set_expires_in(&self, seconds: u64) {
        lock(&self.shared.switches).expires_in = seconds;
    }

    /// Answers the next `requests` otherwise successful exchanges with `AADSTS70021`, as Entra
    /// does while a newly created credential propagates.
    pub fn set_propagation_pending(&self, requests: usize) {
        lock(&self.shared.switches).propagation_pending = requests;
    }

    /// Access tokens issued.
    pub fn token_issues(&self) -> usize {
        self.shared.token_issues.load(Ordering::SeqCst)
    }

    /// Every token request, in arrival order.
    pub fn requests(&self) -> Vec<EntraRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Every access token issued, in order, so tests can check none leaked.
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.shared.issued_tokens).clone()
    }
}

impl std::fmt::Debug for Entra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entra")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

/// The headers Entra puts on every token-endpoint answer.
fn response_headers(trace_id: &str, client_request_id: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    headers.insert("x-ms-ests-server", HeaderValue::from_static("standin"));
    if let Ok(value) = HeaderValue::from_str(trace_id) {
        headers.insert("x-ms-request-id", value);
    }
    if let Some(value) = client_request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        headers.insert("client-request-id", value);
    }
    headers
}

async fn keys(State(shared): State<Arc<Shared>>, Path(tenant): Path<String>) -> Response {
    if tenant != shared.config.tenant_id {
        return StatusCode::NOT_FOUND.into_response();
    }
    axum::Json(JwkSet {
        keys: vec![shared.key.jwk().clone()],
    })
    .into_response()
}

async fn discovery(State(shared): State<Arc<Shared>>, Path(tenant): Path<String>) -> Response {
    if tenant != shared.config.tenant_id {
        return StatusCode::NOT_FOUND.into_response();
    }
    let base = format!("{}/{tenant}", shared.base_url);
    axum::Json(json!({
        "issuer": shared.issuer,
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "jwks_uri": format!("{base}/discovery/v2.0/keys"),
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
    }))
    .into_response()
}
