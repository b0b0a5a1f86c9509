//! IMDSv2, the EC2 instance metadata service, as far as the AWS SDK's credential chain uses it.
//!
//! A session token comes from `PUT /latest/api/token` and must accompany every metadata read;
//! the role name and the role's temporary credentials are the only metadata served. Point the
//! SDK here with `AWS_EC2_METADATA_SERVICE_ENDPOINT` set to [`Imds::base_url`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::server::HttpServer;
use crate::{StartError, lock, random};

/// Header carrying the requested session-token lifetime, echoed on the answer.
const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
/// Header carrying the session token on metadata reads.
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// The longest session token lifetime IMDS grants, six hours.
const MAX_TTL_SECONDS: u64 = 21_600;

/// Temporary AWS credentials, as the instance role hands them out.
///
/// `Debug` shows only the access key id; the secret and the session token never reach a log.
#[derive(Clone)]
pub struct AwsCredentials {
    /// Access key id, `ASIA` followed by 16 characters.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token; STS requires it as `x-amz-security-token`.
    pub session_token: String,
    /// When the credentials stop being valid.
    pub expiration: DateTime<Utc>,
}

impl AwsCredentials {
    /// Fresh random credentials valid for `lifetime`.
    pub fn random(lifetime: chrono::Duration) -> Self {
        Self {
            access_key_id: format!("ASIA{}", random::upper_alnum(16)),
            secret_access_key: random::alnum(40),
            session_token: random::base64_bytes(300),
            expiration: Utc::now() + lifetime,
        }
    }
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &"<redacted>")
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// How the IMDS stand-in is set up.
#[derive(Clone, Debug)]
pub struct ImdsConfig {
    /// Name of the instance role, listed under `security-credentials/`.
    pub role_name: String,
    /// How long the handed-out credentials claim to be valid.
    pub credential_lifetime: chrono::Duration,
}

impl Default for ImdsConfig {
    fn default() -> Self {
        Self {
            role_name: "runner-host".to_owned(),
            credential_lifetime: chrono::Duration::hours(6),
        }
    }
}

/// The IMDSv2 stand-in: serves one role's random credentials to token-holding callers.
pub struct Imds {
    server: HttpServer,
    shared: Arc<Shared>,
}

struct Shared {
    config: ImdsConfig,
    credentials: AwsCredentials,
    last_updated: DateTime<Utc>,
    session_tokens: Mutex<HashMap<String, Instant>>,
    requests: AtomicUsize,
    token_requests: AtomicUsize,
    credential_reads: AtomicUsize,
}

impl Imds {
    /// Starts with the default role name and fresh random credentials.
    pub async fn start() -> Result<Self, StartError> {
        Self::start_with(ImdsConfig::default()).await
    }

    /// Starts with `config` and fresh random credentials.
    pub async fn start_with(config: ImdsConfig) -> Result<Self, StartError> {
        let shared = Arc::new(Shared {
            credentials: AwsCredentials::random(config.credential_lifetime),
            config,
            last_updated: Utc::now(),
            session_tokens: Mutex::new(HashMap::new()),
            requests: AtomicUsize::new(0),
            token_requests: AtomicUsize::new(0),
            credential_reads: AtomicUsize::new(0),
        });
        let router = Router::new()
            .route("/latest/api/token", put(issue_session_token))
            .route(
                "/latest/meta-data/iam/security-credentials/",
                get(list_roles),
            )
            .route(
                "/latest/meta-data/iam/security-credentials/{role}",
                get(role_credentials),
            )
            .fallback(not_found)
            .with_state(Arc::clone(&shared));
        let server = HttpServer::start("imds", router).await?;
        Ok(Self { server, shared })
    }

    /// `http://127.0.0.1:<port>`: the value for `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    pub fn base_url(&self) -> &str {
        self.server.base_url()
    }

    /// The credentials this instance hands out, to trust in STS or to search logs for.
    pub fn credentials(&self) -> &AwsCredentials {
        &self.shared.credentials
    }

    /// The instance role's name.
    pub fn role_name(&self) -> &str {
        &self.shared.config.role_name
    }

    /// Every request received, rejected ones included.
    pub fn request_count(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Session tokens issued.
    pub fn token_requests(&self) -> usize {
        self.shared.token_requests.load(Ordering::SeqCst)
    }

    /// Successful reads of the role's credential document.
    pub fn credential_reads(&self) -> usize {
        self.shared.credential_reads.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for Imds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Session tokens stay out of debug output, like every other credential here.
        f.debug_struct("Imds")
            .field("base_url", &self.base_url())
            .field("role_name", &self.role_name())
            .field("credentials", self.credentials())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Counts the request and checks its session token; `Err` carries the status to answer.
    fn admit(&self, headers: &HeaderMap) -> Result<(), StatusCode> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let presented = headers
            .get(TOKEN_HEADER)
            .and_then(|value| value.to_str().ok());
        let valid = presented.is_some_and(|token| {
            lock(&self.session_tokens)
                .get(token)
                .is_some_and(|expiry| *expiry > Instant::now())
        });
        if valid {
            Ok(())
        } else {
            Err(StatusCode::UNAUTHORIZED)
        }
    }
}

async fn issue_session_token(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let ttl = headers
        .get(TTL_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .filter(|seconds| (1..=MAX_TTL_SECONDS).contains(seconds));
    let Some(ttl) = ttl else {
        return StatusCode::BAD_REQUEST.into_response();
    };

    let token = random::alnum(56);
    lock(&shared.session_tokens).insert(token.clone(), Instant::now() + Duration::from_secs(ttl));
    shared.token_requests.fetch_add(1, Ordering::SeqCst);
    tracing::debug!(ttl, "imds session token issued");
    let headers = [
        (header::CONTENT_TYPE, "text/plain".to_owned()),
        (HeaderName::from_static(TTL_HEADER), ttl.to_string()),
    ];
    (headers, token).into_response()
}

async fn list_roles(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(status) = shared.admit(&headers) {
        return status.into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain")],
        shared.config.role_name.clone(),
    )
        .into_response()
}

/// The credential document, field names as IMDS spells them.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CredentialDocument<'a> {
    code: &'a str,
    last_updated: String,
    #[serde(rename = "Type")]
    kind: &'a str,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    token: &'a str,
    expiration: String,
}

async fn role_credentials(
    State(shared): State<Arc<Shared>>,
    Path(role): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(status) = shared.admit(&headers) {
        return status.into_response();
    }
    if role != shared.config.role_name {
        return StatusCode::NOT_FOUND.into_response();
    }

    let credentials = &shared.credentials;
    let document = CredentialDocument {
        code: "Success",
        last_updated: shared
            .last_updated
            .to_rfc3339_opts(SecondsFormat::Secs, true),
        kind: "AWS-HMAC",
        access_key_id: &credentials.access_key_id,
        secret_access_key: &credentials.secret_access_key,
        token: &credentials.session_token,
        expiration: credentials
            .expiration
            .to_rfc3339_opts(SecondsFormat::Secs, true),
    };
    shared.credential_reads.fetch_add(1, Ordering::SeqCst);
    tracing::debug!(access_key_id = %credentials.access_key_id, "imds credentials served");
    axum::Json(document).into_response()
}

async fn not_found(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    StatusCode::NOT_FOUND
}
