//! The AWS side: the host's credentials from the default chain (IMDSv2 on EC2) and a fresh
//! web identity token from the target's regional STS endpoint for every exchange.
//!
//! The SDK configuration, with its credentials cache, is loaded once per process; STS clients
//! are kept per (region, endpoint). The global endpoint is never used: it does not serve
//! `GetWebIdentityToken`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sts::config::Region;
use aws_sdk_sts::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::RequestId;
use base64::Engine;
use tokio::sync::OnceCell;

use super::failure::{Failure, sts_error};
use super::target::{Target, loopback_guard};
use super::token::Secret;

/// The claims of the AWS token that the audit trail keeps (never the token itself).
#[derive(Debug, Clone, Default)]
pub struct JwtFacts {
    /// `sub`: the role ARN.
    pub sub: Option<String>,
    /// `jti`: the token's id.
    pub jti: Option<String>,
    /// `exp`, as RFC 3339.
    pub exp: Option<String>,
}

/// A web identity token and what the audit keeps of it.
#[derive(Debug)]
pub struct AwsToken {
    /// The JWT, for the Entra exchange only.
    pub jwt: Secret,
    /// STS's request id.
    pub request_id: Option<String>,
    /// Its claims.
    pub facts: JwtFacts,
}

/// The host's AWS identity: one SDK configuration, STS clients per endpoint.
#[derive(Default)]
pub struct Aws {
    config: OnceCell<SdkConfig>,
    clients: Mutex<HashMap<(String, String), aws_sdk_sts::Client>>,
}

impl Aws {
    /// Uses `config` (its credentials provider, above all) instead of the default chain.
    pub fn with_config(config: SdkConfig) -> Aws {
        Aws {
            config: OnceCell::new_with(Some(config)),
            clients: Mutex::default(),
        }
    }

    /// Asks STS for a token for `target`: its audience, RS256, its lifetime.
    pub async fn web_identity_token(&self, target: &Target) -> Result<AwsToken, Failure> {
        let client = self.client(target).await?;
        let result = client
            .get_web_identity_token()
            .audience(&target.audience)
            .signing_algorithm("RS256")
            .duration_seconds(target.token_lifetime_secs as i32)
            .send()
            .await;
        match result {
            Ok(output) => {
                let request_id = output.request_id().map(str::to_string);
                let jwt = output.web_identity_token().ok_or_else(|| {
                    Failure::transient("sts-empty", "STS answered without a token")
                })?;
                Ok(AwsToken {
                    facts: jwt_facts(jwt),
                    jwt: Secret::new(jwt.to_string()),
                    request_id,
                })
            }
            Err(SdkError::ServiceError(context)) => {
                let err = context.err();
                let code = err.code().unwrap_or("unknown");
                let mut failure = sts_error(code, err.message().unwrap_or(""));
                if let Some(id) = err.request_id() {
                    failure.meaning = format!("{} (STS request id {id})", failure.meaning);
                }
                Err(failure)
            }
            Err(other) => Err(Failure::transient(
                "sts-unreachable",
                format!(
                    "could not complete the STS call: {}",
                    DisplayErrorContext(&other)
                ),
            )),
        }
    }

    async fn client(&self, target: &Target) -> Result<aws_sdk_sts::Client, Failure> {
        let endpoint = target.sts_endpoint();
        loopback_guard(&endpoint).map_err(|m| Failure::permanent("loopback-only", m))?;
        if let Ok(imds) = std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT") {
            loopback_guard(&imds).map_err(|m| Failure::permanent("loopback-only", m))?;
        } else {
            loopback_guard("http://169.254.169.254")
                .map_err(|m| Failure::permanent("loopback-only", m))?;
        }
        let key = (target.sts_region.clone(), endpoint.clone());
        if let Some(client) = lock(&self.clients).get(&key) {
            return Ok(client.clone());
        }
        let region = target.sts_region.clone();
        let shared = self
            .config
            .get_or_init(|| async move {
                aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new(region))
                    .load()
                    .await
            })
            .await;
        let timeouts = aws_sdk_sts::config::timeout::TimeoutConfig::builder()
            .operation_timeout(Duration::from_secs(target.timeout_secs))
            .build();
        let config = aws_sdk_sts::config::Builder::from(shared)
            .region(Region::new(target.sts_region.clone()))
            .endpoint_url(endpoint)
            .timeout_config(timeouts)
            .build();
        let client = aws_sdk_sts::Client::from_conf(config);
        lock(&self.clients).insert(key, client.clone());
        Ok(client)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads `sub`, `jti` and `exp` from a JWT's payload, unverified: they are for the audit
/// trail, and Entra is the party that verifies the token.
pub fn jwt_facts(jwt: &str) -> JwtFacts {
    let claims = jwt
        .split('.')
        .nth(1)
        .and_then(|part| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part.trim_end_matches('='))
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .unwrap_or_default();
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    JwtFacts {
        sub: text("sub"),
        jti: text("jti"),
        exp: claims
            .get("exp")
            .and_then(|v| v.as_i64())
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
            .map(crate::store::time_text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_facts_are_read_from_the_payload() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"arn:aws:iam::1:role/r","jti":"j-1","exp":1700000000}"#);
        let facts = jwt_facts(&format!("e30.{payload}.sig"));
        assert_eq!(facts.sub.as_deref(), Some("arn:aws:iam::1:role/r"));
        assert_eq!(facts.jti.as_deref(), Some("j-1"));
        assert_eq!(facts.exp.as_deref(), Some("2023-11-14T22:13:20.000Z"));
        assert!(jwt_facts("not a jwt").sub.is_none());
    }
}
