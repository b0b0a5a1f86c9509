//! Checking a client assertion against an app's federated identity credentials.
//!
//! The order follows what the error codes imply about Entra: it finds credentials for the
//! assertion's issuer first (it cannot know which keys to trust otherwise), fetches that
//! issuer's keys, verifies the signature and the time window, and only then compares subject
//! and audience, so each misconfiguration surfaces as its own code.

use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::error::AadError;
use super::{AppRegistration, FederatedCredential, Shared};
use crate::keys::JwkSet;

/// The claims Entra reads from an assertion before and after verifying it.
#[derive(Debug, Deserialize)]
pub(crate) struct AssertionClaims {
    pub(crate) iss: Option<String>,
    pub(crate) sub: Option<String>,
    #[serde(default)]
    aud: Option<serde_json::Value>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
}

impl AssertionClaims {
    /// `aud` as a list, whether the token carried a string or an array.
    fn audiences(&self) -> Vec<&str> {
        match &self.aud {
            Some(serde_json::Value::String(one)) => vec![one.as_str()],
            Some(serde_json::Value::Array(many)) => {
                many.iter().filter_map(|v| v.as_str()).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// The parts of an assertion readable without verifying it.
pub(crate) struct Unverified {
    pub(crate) kid: Option<String>,
    pub(crate) claims: AssertionClaims,
}

/// Reads the header and claims; a token that does not even parse is `AADSTS50027`.
pub(crate) fn read_unverified(assertion: &str) -> Result<Unverified, AadError> {
    let malformed = |_| AadError::invalid_request(50027, "JWT token is invalid or malformed.");
    let header = jsonwebtoken::decode_header(assertion).map_err(malformed)?;
    let claims = jsonwebtoken::dangerous::insecure_decode_claims(assertion).map_err(malformed)?;
    if header.alg != Algorithm::RS256 {
        return Err(AadError::invalid_client(
            700027,
            format!(
                "Client assertion uses {:?}; only RS256 is supported for external issuers.",
                header.alg
            ),
        ));
    }
    Ok(Unverified {
        kid: header.kid,
        claims,
    })
}

impl Shared {
    /// Accepts the assertion for `app` or says which `AADSTS` check failed.
    pub(crate) async fn check_assertion(
        &self,
        app: &AppRegistration,
        assertion: &str,
        unverified: &Unverified,
    ) -> Result<(), AadError> {
        let claims = &unverified.claims;
        let issuer = claims.iss.as_deref().unwrap_or_default();
        let for_issuer: Vec<&FederatedCredential> = app
            .federated_credentials
            .iter()
            .filter(|c| c.issuer == issuer)
            .collect();
        if for_issuer.is_empty() {
            return Err(AadError::invalid_client(
                700211,
                format!(
                    "No federated identity credential of this app names the assertion issuer '{issuer}'."
                ),
            ));
        }

        let keys = self.fetch_issuer_keys(issuer).await?;
        let kid = unverified.kid.as_deref().unwrap_or_default();
        let Some(jwk) = keys.find(kid) else {
            return Err(AadError::invalid_client(
                7000272,
                format!("The key '{kid}' that signed the assertion is not in the issuer's JWKS."),
            ));
        };
        verify_signature(assertion, jwk)?;
        self.check_time_window(claims)?;

        let subject = claims.sub.as_deref().unwrap_or_default();
        let for_subject: Vec<&FederatedCredential> = for_issuer
            .iter()
            .copied()
            .filter(|c| c.subject == subject)
            .collect();
        if for_subject.is_empty() {
            let differs_only_in_case = for_issuer
                .iter()
                .any(|c| c.subject.eq_ignore_ascii_case(subject));
            let code = if differs_only_in_case {
                7002138
            } else {
                700213
            };
            return Err(AadError::invalid_client(
                code,
                format!(
                    "No federated identity credential matches the assertion subject '{subject}'. \
                     Subjects are compared case-sensitively."
                ),
            ));
        }

        let audiences = claims.audiences();
        let audience_matches = for_subject
            .iter()
            .any(|c| c.audiences.iter().any(|a| audiences.contains(&a.as_str())));
        if !audience_matches {
            return Err(AadError::invalid_client(
                700212,
                format!(
                    "No federated identity credential matches the assertion audience '{}'.",
                    audiences.join(",")
                ),
            ));
        }
        Ok(())
    }

    /// Fetches the issuer's discovery document, then its JWKS; any failure is `AADSTS50166`.
    async fn fetch_issuer_keys(&self, issuer: &str) -> Result<JwkSet, AadError> {
        let unreachable = |detail: String| {
            AadError::invalid_client(
                50166,
                format!("Request to External OIDC endpoint failed: {detail}"),
            )
        };
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        if !is_loopback(&discovery_url) {
            // The stand-ins never send traffic beyond this machine.
            return Err(unreachable(format!("`{issuer}` is not a loopback issuer")));
        }

        #[derive(Deserialize)]
        struct Discovery {
            jwks_uri: String,
        }
        let discovery: Discovery = self.get_json(&discovery_url).await.map_err(unreachable)?;
        if !is_loopback(&discovery.jwks_uri) {
            return Err(unreachable(format!(
                "`{}` is not a loopback URL",
                discovery.jwks_uri
            )));
        }
        self.get_json(&discovery.jwks_uri)
            .await
            .map_err(unreachable)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {url} answered {status}"));
        }
        response.json().await.map_err(|e| format!("GET {url}: {e}"))
    }

    fn check_time_window(&self, claims: &AssertionClaims) -> Result<(), AadError> {
        let now = chrono::Utc::now().timestamp();
        let skew = i64::try_from(self.config.clock_skew_seconds).unwrap_or(i64::MAX / 2);
        let expired = claims.exp.is_none_or(|exp| now > exp.saturating_add(skew));
        let not_yet_valid = [claims.nbf, claims.iat]
            .into_iter()
            .flatten()
            .any(|t| t > now.saturating_add(skew));
        if expired || not_yet_valid {
            return Err(AadError::invalid_client(
                700024,
                "Client assertion is not within its valid time range.",
            ));
        }
        Ok(())
    }
}

fn verify_signature(assertion: &str, jwk: &crate::Jwk) -> Result<(), AadError> {
    let invalid =
        |_| AadError::invalid_client(700027, "Client assertion failed signature validation.");
    let key = jwk.decoding_key().map_err(invalid)?;

    // Only the signature is checked here; the claims get their own codes elsewhere.
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &validation).map_err(invalid)?;
    Ok(())
}

/// Whether `url` is plain HTTP(S) to 127.0.0.1, `localhost` or `[::1]`.
fn is_loopback(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_fetched() {
        assert!(is_loopback(
            "http://127.0.0.1:4321/.well-known/openid-configuration"
        ));
        assert!(is_loopback("http://[::1]:80/x"));
        assert!(!is_loopback(
            "https://abc.tokens.sts.global.api.aws/.well-known/jwks.json"
        ));
        assert!(!is_loopback("http://127.0.0.1.example.com/x"));
        assert!(!is_loopback("http://10.0.0.1:80/x"));
    }
}
