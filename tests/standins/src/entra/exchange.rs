//! The token endpoint: form checks, the assertion check, and the issued access token.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::assertion::read_unverified;
use super::error::AadError;
use super::{EntraRequest, Shared, response_headers};
use crate::{lock, random};

const GRANT_TYPE: &str = "client_credentials";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The form fields of a client-credentials request. The assertion is never logged.
#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    scope: Option<String>,
}

/// The claims of an issued access token, v2.0 shape plus the v1 `appid` Easy Auth also reads.
#[derive(Serialize)]
struct AccessClaims<'a> {
    aud: &'a str,
    iss: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    azp: &'a str,
    azpacr: &'a str,
    appid: &'a str,
    idtyp: &'a str,
    oid: &'a str,
    sub: &'a str,
    tid: &'a str,
    uti: &'a str,
    ver: &'a str,
}

/// `POST /<tenant>/oauth2/v2.0/token`.
pub(super) async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client_request_id = headers
        .get("client-request-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut record = EntraRequest {
        trace_id: random::uuid(),
        correlation_id: client_request_id.clone().unwrap_or_else(random::uuid),
        ..EntraRequest::default()
    };

    let response = match shared.exchange(&tenant, &body, &mut record).await {
        Ok(issued) => {
            let headers = response_headers(&record.trace_id, client_request_id.as_deref());
            (headers, axum::Json(issued)).into_response()
        }
        Err(error) => {
            record.error_code = Some(error.code);
            error.into_response(
                &shared.base_url,
                &record.trace_id,
                &record.correlation_id,
                client_request_id.as_deref(),
            )
        }
    };
    record.status = response.status().as_u16();
    tracing::debug!(
        trace_id = %record.trace_id,
        client_id = record.client_id.as_deref(),
        status = record.status,
        error_code = record.error_code,
        "entra token request answered"
    );
    lock(&shared.requests).push(record);
    response
}

impl Shared {
    /// Runs one token request, filling `record`; returns the success body.
    async fn exchange(
        &self,
        tenant: &str,
        body: &[u8],
        record: &mut EntraRequest,
    ) -> Result<serde_json::Value, AadError> {
        if tenant != self.config.tenant_id {
            return Err(AadError::invalid_request(
                90002,
                format!("Tenant '{tenant}' not found. Check the tenant id and the authority."),
            ));
        }
        let form: TokenForm = serde_urlencoded::from_bytes(body).map_err(|_| {
            AadError::invalid_request(900144, "The request body is not form-encoded.")
        })?;
        record.client_id.clone_from(&form.client_id);
        record.scope.clone_from(&form.scope);

        let grant_type = required(form.grant_type.as_deref(), "grant_type")?;
        if grant_type != GRANT_TYPE {
            return Err(AadError::bad_request(
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{grant_type}'."),
            ));
        }
        let client_id = required(form.client_id.as_deref(), "client_id")?;
        let resource = resource_of(required(form.scope.as_deref(), "scope")?)?;
        let (index, app) = self
            .config
            .apps
            .iter()
            .enumerate()
            .find(|(_, app)| app.client_id == client_id)
            .ok_or_else(|| {
                AadError::bad_request(
                    "unauthorized_client",
                    700016,
                    format!(
                        "Application with identifier '{client_id}' was not found in the directory \
                         '{}'.",
                        self.config.tenant_id
                    ),
                )
            })?;

        let assertion = match (
            form.client_assertion_type.as_deref(),
            form.client_assertion.as_deref(),
        ) {
            (Some(ASSERTION_TYPE), Some(assertion)) if !assertion.is_empty() => assertion,
            _ => {
                return Err(AadError::invalid_client(
                    7000216,
                    "A jwt-bearer 'client_assertion' is required for the 'client_credentials' \
                     grant type.",
                ));
            }
        };
        let unverified = read_unverified(assertion)?;
        record.assertion_issuer.clone_from(&unverified.claims.iss);
        record.assertion_subject.clone_from(&unverified.claims.sub);
        record.assertion_kid.clone_from(&unverified.kid);
        self.check_assertion(app, assertion, &unverified).await?;

        let expires_in = {
            let mut switches = lock(&self.switches);
            if switches.propagation_pending > 0 {
                switches.propagation_pending -= 1;
                return Err(AadError::invalid_client(
                    70021,
                    "No matching federated identity record found for presented assertion.",
                ));
            }
            switches.expires_in
        };
        self.issue(index, resource, expires_in, record)
    }

    fn issue(
        &self,
        app_index: usize,
        resource: &str,
        expires_in: u64,
        record: &mut EntraRequest,
    ) -> Result<serde_json::Value, AadError> {
        let client_id = &self.config.apps[app_index].client_id;
        let object_id = &self.object_ids[app_index];
        let now = chrono::Utc::now().timestamp();
        let uti = random::uuid();
        let claims = AccessClaims {
            aud: resource,
            iss: &self.issuer,
            iat: now,
            nbf: now,
            exp: now + i64::try_from(expires_in).unwrap_or(i64::MAX / 2),
            azp: client_id,
            azpacr: "2",
            appid: client_id,
            idtyp: "app",
            oid: object_id,
            sub: object_id,
            tid: &self.config.tenant_id,
            uti: &uti,
            ver: "2.0",
        };
        let access_token = self.key.sign(&claims).map_err(|error| {
            AadError::server_error(format!("There was an error issuing a token: {error}"))
        })?;

        lock(&self.issued_tokens).push(access_token.clone());
        self.token_issues.fetch_add(1, Ordering::SeqCst);
        record.token_id = Some(uti);
        Ok(json!({
            "token_type": "Bearer",
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": access_token,
        }))
    }
}

fn required<'a>(value: Option<&'a str>, name: &str) -> Result<&'a str, AadError> {
    value.filter(|v| !v.is_empty()).ok_or_else(|| {
        AadError::invalid_request(
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    })
}

/// The resource of a client-credentials scope, which must be exactly `<resource>/.default`.
fn resource_of(scope: &str) -> Result<&str, AadError> {
    match scope.strip_suffix("/.default") {
        Some(resource) if !resource.is_empty() && !scope.contains(' ') => Ok(resource),
        _ => Err(AadError::bad_request(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must \
                 have a scope value with /.default suffixed to the resource identifier."
            ),
        )),
    }
}
