//! The `GetWebIdentityToken` call: authenticate, validate, then mint the JWT.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use chrono::{SecondsFormat, Utc};
use serde::Serialize;

use super::sigv4::{Authorization, Expected};
use super::wire::{Params, StsError, token_response};
use super::{Shared, StsMode, StsRequest, TokenSigning};
use crate::keys::SigningKey;
use crate::{lock, random};

const ACTION: &str = "GetWebIdentityToken";
const VERSION: &str = "2011-06-15";
const DEFAULT_DURATION: i64 = 300;
const MAX_AUDIENCES: usize = 10;
const MAX_AUDIENCE_LEN: usize = 1000;

/// The claims of an issued token.
#[derive(Serialize)]
struct WebIdentityClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    /// A single audience is a string, several are an array, as JWTs usually carry them.
    aud: serde_json::Value,
    iat: i64,
    exp: i64,
    jti: &'a str,
    #[serde(rename = "https://sts.amazonaws.com/")]
    aws: AwsContext<'a>,
}

#[derive(Serialize)]
struct AwsContext<'a> {
    aws_account: &'a str,
    source_region: &'a str,
    ec2_source_instance_arn: String,
    principal_tags: BTreeMap<String, String>,
    request_tags: BTreeMap<String, String>,
}

/// `POST /`: records the call, then answers the XML document or the error envelope.
pub(super) async fn get_web_identity_token(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.calls.fetch_add(1, Ordering::SeqCst);
    let mut record = StsRequest {
        request_id: random::uuid(),
        ..StsRequest::default()
    };

    let outcome = shared
        .process(&method, &uri, &headers, &body, &mut record)
        .await;
    let response = match outcome {
        Ok((token, expiration)) => {
            let response = token_response(&token, &expiration, &record.request_id);
            lock(&shared.issued_tokens).push(token);
            response
        }
        Err(error) => {
            record.error_code = Some(error.code.to_owned());
            error.into_response(&record.request_id)
        }
    };
    record.status = response.status().as_u16();
    tracing::debug!(
        request_id = %record.request_id,
        status = record.status,
        error_code = record.error_code.as_deref(),
        jti = record.jti.as_deref(),
        "sts call answered"
    );
    lock(&shared.requests).push(record);
    response
}

impl Shared {
    /// Runs one call, filling `record` as facts become known; returns the token and its
    /// ISO-8601 expiration.
    async fn process(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        record: &mut StsRequest,
    ) -> Result<(String, String), StsError> {
        let params = Params::parse(body).map_err(|_| {
            StsError::sender(
                StatusCode::BAD_REQUEST,
                "MalformedInput",
                "The body is not form-encoded.",
            )
        })?;
        record.action = params.get("Action").map(str::to_owned);
        record.version = params.get("Version").map(str::to_owned);
        record.audiences = params.members("Audience");
        record.signing_algorithm = params.get("SigningAlgorithm").map(str::to_owned);
        record.duration_seconds = params.get("DurationSeconds").map(str::to_owned);

        let auth_error = |failure: super::sigv4::AuthFailure| {
            StsError::sender(StatusCode::FORBIDDEN, failure.code, failure.message)
        };
        let authorization = Authorization::parse(headers).map_err(auth_error)?;
        record.region = Some(authorization.region.clone());
        record.access_key_id = Some(authorization.access_key_id.clone());
        let expected = Expected {
            credentials: &self.config.credentials,
            region: &self.config.region,
            service: "sts",
        };
        authorization
            .verify(&expected, method, uri, headers, body, Utc::now())
            .map_err(auth_error)?;

        if record.action.as_deref() != Some(ACTION) || record.version.as_deref() != Some(VERSION) {
            return Err(StsError::sender(
                StatusCode::BAD_REQUEST,
                "InvalidAction",
                format!(
                    "Could not find operation {} for version {}",
                    record.action.as_deref().unwrap_or("<none>"),
                    record.version.as_deref().unwrap_or("<none>")
                ),
            ));
        }
        let duration = validate(record)?;

        let switches = *lock(&self.switches);
        if let Some(error) = mode_error(switches.mode) {
            return Err(error);
        }

        let jti = random::uuid();
        let now = Utc::now().timestamp();
        let (iat, exp) = if switches.issue_expired {
            (now - duration - 600, now - 600)
        } else {
            (now, now + duration)
        };
        let claims = WebIdentityClaims {
            iss: &self.issuer,
            sub: &self.config.role_arn,
            aud: match record.audiences.as_slice() {
                [single] => single.clone().into(),
                several => several.to_vec().into(),
            },
            iat,
            exp,
            jti: &jti,
            aws: AwsContext {
                aws_account: self.account_id(),
                source_region: &self.config.region,
                ec2_source_instance_arn: format!(
                    "arn:aws:ec2:{}:{}:instance/{}",
                    self.config.region,
                    self.account_id(),
                    self.config.instance_id
                ),
                principal_tags: BTreeMap::new(),
                request_tags: params.tags(),
            },
        };
        let token = self.sign(switches.signing, &claims).await?;
        record.jti = Some(jti);

        let expiration = chrono::DateTime::from_timestamp(exp, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Secs, true);
        Ok((token, expiration))
    }

    /// The account id, the fifth field of the role ARN.
    fn account_id(&self) -> &str {
        self.config.role_arn.split(':').nth(4).unwrap_or_default()
    }

    async fn sign(
        &self,
        signing: TokenSigning,
        claims: &WebIdentityClaims<'_>,
    ) -> Result<String, StsError> {
        let signed = match signing {
            TokenSigning::Published => self.key.sign(claims),
            TokenSigning::UnpublishedKey => self.other_key().await?.sign(claims),
            TokenSigning::ForgedSignature => {
                self.other_key().await?.sign_as(&self.key.jwk().kid, claims)
            }
        };
        signed.map_err(|error| StsError::internal(format!("signing failed: {error}")))
    }

    async fn other_key(&self) -> Result<&SigningKey, StsError> {
        self.other_key
            .get_or_try_init(SigningKey::generate)
            .await
            .map_err(|error| StsError::internal(error.to_string()))
    }
}

/// Checks the parameters against the API's constraints; returns the token lifetime.
fn validate(record: &StsRequest) -> Result<i64, StsError> {
    let audiences = &record.audiences;
    if audiences.is_empty() || audiences.len() > MAX_AUDIENCES {
        return Err(StsError::validation(format!(
            "Value at 'audience' failed to satisfy constraint: Member must have between 1 and \
             {MAX_AUDIENCES} items, got {}",
            audiences.len()
        )));
    }
    if audiences
        .iter()
        .any(|audience| audience.is_empty() || audience.len() > MAX_AUDIENCE_LEN)
    {
        return Err(StsError::validation(format!(
            "Value at 'audience' failed to satisfy constraint: each member must have length \
             between 1 and {MAX_AUDIENCE_LEN}"
        )));
    }

    match record.signing_algorithm.as_deref() {
        Some("RS256") => {}
        Some("ES384") => {
            // The real service signs ES384 too, but Entra accepts only RS256 from external
            // issuers, so the stand-in refuses it to surface the mistake early.
            return Err(StsError::validation(
                "SigningAlgorithm ES384 is not supported by this stand-in: request RS256",
            ));
        }
        Some(other) => {
            return Err(StsError::validation(format!(
                "Value '{other}' at 'signingAlgorithm' failed to satisfy constraint: Member must \
                 satisfy enum value set: [RS256, ES384]"
            )));
        }
        None => {
            return Err(StsError::validation(
                "Value null at 'signingAlgorithm' failed to satisfy constraint: Member must not \
                 be null",
            ));
        }
    }

    let Some(duration) = record.duration_seconds.as_deref() else {
        return Ok(DEFAULT_DURATION);
    };
    match duration.parse::<i64>() {
        Ok(seconds) if (60..=3600).contains(&seconds) => Ok(seconds),
        _ => Err(StsError::validation(format!(
            "Value '{duration}' at 'durationSeconds' failed to satisfy constraint: Member must \
             have value between 60 and 3600"
        ))),
    }
}

fn mode_error(mode: StsMode) -> Option<StsError> {
    let forbidden = StatusCode::FORBIDDEN;
    let error = match mode {
        StsMode::Normal => return None,
        StsMode::FederationDisabled => StsError::sender(
            forbidden,
            "OutboundWebIdentityFederationDisabledException",
            "Outbound web identity federation is not enabled for this account.",
        ),
        StsMode::AccessDenied => StsError::sender(
            forbidden,
            "AccessDenied",
            "User is not authorized to perform: sts:GetWebIdentityToken",
        ),
        StsMode::SessionDurationEscalation => StsError::sender(
            forbidden,
            "SessionDurationEscalationException",
            "The requested token duration exceeds the remaining duration of the caller's session.",
        ),
        StsMode::PayloadTooLarge => StsError::sender(
            StatusCode::BAD_REQUEST,
            "JWTPayloadSizeExceededException",
            "The token payload exceeds the maximum size.",
        ),
    };
    Some(error)
}
