//! AWS STS `GetWebIdentityToken` and the OIDC issuer that publishes its signing key.
//!
//! One HTTP server plays both parts: `POST /` is the regional STS endpoint, and
//! `/.well-known/openid-configuration` and `/.well-known/jwks.json` are the account's issuer.
//! The issuer URL, the tokens' `iss`, is therefore [`Sts::base_url`]. Sharing a server keeps the
//! setup to one port; tests that need the issuer unreachable switch discovery off with
//! [`Sts::set_discovery_available`] instead of stopping a second server.

mod issue;
mod sigv4;
mod wire;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::OnceCell;

use crate::keys::{JwkSet, SigningKey};
use crate::server::{BoundListener, HttpServer};
use crate::{AwsCredentials, StartError, lock};

/// How the STS stand-in is set up.
#[derive(Clone, Debug)]
pub struct StsConfig {
    /// The one caller STS trusts: requests must be SigV4-signed with these credentials.
    pub credentials: AwsCredentials,
    /// The region of this regional endpoint; the signature's scope must name it.
    pub region: String,
    /// The caller's IAM role, the tokens' `sub`.
    pub role_arn: String,
    /// The EC2 instance id reported in the tokens' AWS context claim.
    pub instance_id: String,
}

impl StsConfig {
    /// Trusts `credentials` (usually [`crate::Imds::credentials`]) in `eu-west-1` for the role
    /// `arn:aws:iam::123456789012:role/runner-host`.
    pub fn new(credentials: AwsCredentials) -> Self {
        Self {
            credentials,
            region: "eu-west-1".to_owned(),
            role_arn: "arn:aws:iam::123456789012:role/runner-host".to_owned(),
            instance_id: "i-0a1b2c3d4e5f60718".to_owned(),
        }
    }
}

/// An account-level condition that makes every `GetWebIdentityToken` call fail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StsMode {
    /// Calls succeed.
    #[default]
    Normal,
    /// 403 `OutboundWebIdentityFederationDisabledException`: the account has not enabled it.
    FederationDisabled,
    /// 403 `AccessDenied`: a policy condition (audience, duration, algorithm) refused the call.
    AccessDenied,
    /// 403 `SessionDurationEscalationException`: the token would outlive the caller's session.
    SessionDurationEscalation,
    /// 400 `JWTPayloadSizeExceededException`: the token would be too large.
    PayloadTooLarge,
}

/// Which key signs the issued tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenSigning {
    /// The published key, under its own `kid`: verifiable through the JWKS.
    #[default]
    Published,
    /// A second key whose `kid` the JWKS does not list.
    UnpublishedKey,
    /// A second key under the published key's `kid`: the signature does not verify.
    ForgedSignature,
}

/// One call to `POST /`, as STS saw it. Holds no token value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StsRequest {
    /// The id returned in `x-amzn-RequestId` and the XML body.
    pub request_id: String,
    /// The `Action` parameter.
    pub action: Option<String>,
    /// The `Version` parameter.
    pub version: Option<String>,
    /// The `Audience.member.N` values, in index order.
    pub audiences: Vec<String>,
    /// The `SigningAlgorithm` parameter.
    pub signing_algorithm: Option<String>,
    /// The `DurationSeconds` parameter as sent, if it was.
    pub duration_seconds: Option<String>,
    /// The region named in the signature's credential scope.
    pub region: Option<String>,
    /// The access key id named in the signature's credential scope.
    pub access_key_id: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// The error `Code`, if the call failed.
    pub error_code: Option<String>,
    /// The issued token's `jti`, if one was issued.
    pub jti: Option<String>,
}

/// The STS and issuer stand-in.
pub struct Sts {
    server: HttpServer,
    shared: Arc<Shared>,
}

struct Shared {
    config: StsConfig,
    issuer: String,
    key: SigningKey,
    /// Generated on first use: most tests never need a second key.
    other_key: OnceCell<SigningKey>,
    switches: Mutex<Switches>,
    requests: Mutex<Vec<StsRequest>>,
    issued_tokens: Mutex<Vec<String>>,
    calls: AtomicUsize,
    discovery_fetches: AtomicUsize,
    jwks_fetches: AtomicUsize,
}

#[derive(Clone, Copy, Debug)]
struct Switches {
    mode: StsMode,
    signing: TokenSigning,
    issue_expired: bool,
    discovery_available: bool,
}

impl Sts {
    /// Generates the issuer's signing key and starts serving.
    pub async fn start(config: StsConfig) -> Result<Self, StartError> {
        let listener = BoundListener::bind("sts").await?;
        let shared = Arc::new(Shared {
            config,
            issuer: listener.base_url().to_owned(),
            key: SigningKey::generate().await?,
            other_key: OnceCell::new(),
            switches: Mutex::new(Switches {
                mode: StsMode::Normal,
                signing: TokenSigning::Published,
                issue_expired: false,
                discovery_available: true,
            }),
            requests: Mutex::new(Vec::new()),
            issued_tokens: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
            jwks_fetches: AtomicUsize::new(0),
        });
        let router = Router::new()
            .route("/", post(issue::get_web_identity_token))
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/.well-known/jwks.json", get(jwks))
            .with_state(Arc::clone(&shared));
        Ok(Self {
            server: listener.serve(router),
            shared,
        })
    }

    /// `http://127.0.0.1:<port>`: the STS endpoint to configure in the SDK.
    pub fn base_url(&self) -> &str {
        self.server.base_url()
    }

    /// The issuer URL, the tokens' `iss`; the same as [`Sts::base_url`].
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The role ARN put in `sub`.
    pub fn role_arn(&self) -> &str {
        &self.shared.config.role_arn
    }

    /// The region the signature scope must name.
    pub fn region(&self) -> &str {
        &self.shared.config.region
    }

    /// The published key set, as `/.well-known/jwks.json` serves it.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.shared.key.jwk().clone()],
        }
    }

    /// Makes every following call fail (or succeed again) as `mode` says.
    pub fn set_mode(&self, mode: StsMode) {
        lock(&self.shared.switches).mode = mode;
    }

    /// Chooses the key that signs the following tokens.
    pub fn set_signing(&self, signing: TokenSigning) {
        lock(&self.shared.switches).signing = signing;
    }

    /// Issues the following tokens already expired (`exp` ten minutes ago) when `expired`.
    pub fn set_issue_expired(&self, expired: bool) {
        lock(&self.shared.switches).issue_expired = expired;
    }

    /// Makes the issuer's discovery and JWKS endpoints answer 503 while `available` is false.
    pub fn set_discovery_available(&self, available: bool) {
        lock(&self.shared.switches).discovery_available = available;
    }

    /// Calls to `POST /`, failed ones included.
    pub fn calls(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// Every call to `POST /`, in arrival order.
    pub fn requests(&self) -> Vec<StsRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Every token issued, in order, so tests can check none leaked into logs or storage.
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.shared.issued_tokens).clone()
    }

    /// Requests to `/.well-known/openid-configuration`.
    pub fn discovery_fetches(&self) -> usize {
        self.shared.discovery_fetches.load(Ordering::SeqCst)
    }

    /// Requests to `/.well-known/jwks.json`.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for Sts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sts")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    shared.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    if !lock(&shared.switches).discovery_available {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    axum::Json(json!({
        "issuer": shared.issuer,
        "jwks_uri": format!("{}/.well-known/jwks.json", shared.issuer),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if !lock(&shared.switches).discovery_available {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    axum::Json(JwkSet {
        keys: vec![shared.key.jwk().clone()],
    })
    .into_response()
}
