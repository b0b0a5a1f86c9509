//! AWS Signature Version 4 verification, as STS performs it on every query-protocol call.
//!
//! The stand-in recomputes the signature from the request it received and the secret of the
//! one caller it trusts, so a client that signs the wrong bytes, headers, region or service is
//! caught the way the real service would catch it. Only the parts STS uses are covered: the
//! `Authorization` header form (not presigned query strings), and paths and query strings are
//! taken as sent, which is canonical for the `POST /` calls STS receives.

use axum::http::{HeaderMap, Method, Uri};
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};

use crate::AwsCredentials;

/// The only algorithm accepted.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far `x-amz-date` may be from the server's clock, as AWS allows.
const MAX_SKEW: chrono::Duration = chrono::Duration::minutes(15);

/// The parsed `Authorization` header.
#[derive(Debug)]
pub(crate) struct Authorization {
    pub(crate) access_key_id: String,
    pub(crate) date: String,
    pub(crate) region: String,
    pub(crate) service: String,
    signed_headers: Vec<String>,
    signature: String,
}

/// Why a request failed authentication: an STS error code and its message.
#[derive(Debug)]
pub(crate) struct AuthFailure {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl AuthFailure {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// What a request must be signed for.
pub(crate) struct Expected<'a> {
    pub(crate) credentials: &'a AwsCredentials,
    pub(crate) region: &'a str,
    pub(crate) service: &'a str,
}

impl Authorization {
    /// Parses `AWS4-HMAC-SHA256 Credential=<akid>/<date>/<region>/<service>/aws4_request,
    /// SignedHeaders=<a;b;c>, Signature=<hex>`.
    pub(crate) fn parse(headers: &HeaderMap) -> Result<Self, AuthFailure> {
        let Some(value) = headers.get("authorization") else {
            return Err(AuthFailure::new(
                "MissingAuthenticationToken",
                "Request is missing Authentication Token",
            ));
        };
        let incomplete =
            || AuthFailure::new("IncompleteSignature", "Authorization header is malformed");
        let value = value.to_str().map_err(|_| incomplete())?;
        let rest = value
            .strip_prefix(ALGORITHM)
            .ok_or_else(incomplete)?
            .trim_start();

        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for part in rest.split(',') {
            match part.trim().split_once('=') {
                Some(("Credential", v)) => credential = Some(v),
                Some(("SignedHeaders", v)) => signed_headers = Some(v),
                Some(("Signature", v)) => signature = Some(v),
                _ => return Err(incomplete()),
            }
        }
        let (Some(credential), Some(signed_headers), Some(signature)) =
            (credential, signed_headers, signature)
        else {
            return Err(incomplete());
        };

        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
            return Err(incomplete());
        };
        Ok(Self {
            access_key_id: access_key_id.to_owned(),
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
            signed_headers: signed_headers.split(';').map(str::to_owned).collect(),
            signature: signature.to_owned(),
        })
    }

    /// Checks the scope, the clock, the session token and finally the signature itself.
    pub(crate) fn verify(
        &self,
        expected: &Expected<'_>,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), AuthFailure> {
        let mismatch = |message: String| AuthFailure::new("SignatureDoesNotMatch", message);
        if self.access_key_id != expected.credentials.access_key_id {
            return Err(AuthFailure::new(
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            ));
        }
        if self.service != expected.service {
            return Err(mismatch(format!(
                "Credential should be scoped to correct service: '{}'.",
                expected.service
            )));
        }
        if self.region != expected.region {
            return Err(mismatch(format!(
                "Credential should be scoped to a valid region, not '{}'.",
                self.region
            )));
        }

        let amz_date = header_text(headers, "x-amz-date").ok_or_else(|| {
            AuthFailure::new(
                "IncompleteSignature",
                "Authorization requires an X-Amz-Date header.",
            )
        })?;
        let signed_at = NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
            .map_err(|_| {
                mismatch(format!(
                    "X-Amz-Date `{amz_date}` is not ISO-8601 basic format."
                ))
            })?
            .and_utc();
        if !amz_date.starts_with(&self.date) {
            return Err(mismatch(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '{}' != '{}'.",
                self.date,
                &amz_date[..8.min(amz_date.len())]
            )));
        }
        if (now - signed_at).abs() > MAX_SKEW {
            return Err(mismatch(format!(
                "Signature expired: {amz_date} is outside 15 minutes."
            )));
        }

        let session_token = header_text(headers, "x-amz-security-token");
        if session_token != Some(expected.credentials.session_token.as_str()) {
            return Err(AuthFailure::new(
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            ));
        }

        let canonical = self
            .canonical_request(method, uri, headers, body)
            .ok_or_else(|| {
                mismatch("A header named in SignedHeaders is missing from the request.".to_owned())
            })?;
        let string_to_sign = format!(
            "{ALGORITHM}\n{amz_date}\n{}/{}/{}/aws4_request\n{}",
            self.date,
            self.region,
            self.service,
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let key = signing_key(
            &expected.credentials.secret_access_key,
            &self.date,
            &self.region,
            &self.service,
        );
        let presented = hex::decode(&self.signature).unwrap_or_default();
        let mut mac = hmac_sha256(&key);
        mac.update(string_to_sign.as_bytes());
        mac.verify_slice(&presented).map_err(|_| {
            mismatch(
                "The request signature we calculated does not match the signature you provided."
                    .to_owned(),
            )
        })
    }

    /// The canonical request, or `None` if a signed header is absent.
    fn canonical_request(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<String> {
        let mut query: Vec<&str> = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .collect();
        query.sort_unstable();

        let mut canonical_headers = String::new();
        for name in &self.signed_headers {
            let values: Vec<String> = headers
                .get_all(name.as_str())
                .iter()
                .map(|value| value.to_str().map(collapse_whitespace))
                .collect::<Result<_, _>>()
                .ok()?;
            if values.is_empty() {
                return None;
            }
            canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
        }

        Some(format!(
            "{method}\n{}\n{}\n{canonical_headers}\n{}\n{}",
            uri.path(),
            query.join("&"),
            self.signed_headers.join(";"),
            hex::encode(Sha256::digest(body))
        ))
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Trims a header value and folds inner runs of spaces into one, as SigV4 canonicalises.
fn collapse_whitespace(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn hmac_sha256(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length")
}

fn hmac_bytes(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = hmac_sha256(key);
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The derived signing key: secret, then date, region, service and the terminator.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let date_key = hmac_bytes(format!("AWS4{secret}").as_bytes(), date);
    let region_key = hmac_bytes(&date_key, region);
    let service_key = hmac_bytes(&region_key, service);
    hmac_bytes(&service_key, "aws4_request")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example from the SigV4 documentation's key-derivation section (the
    /// `wJalrXUtnFEMI` example secret, 20120215, us-east-1, iam).
    #[test]
    fn signing_key_derivation_matches_the_documented_example() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn header_values_are_trimmed_and_inner_spaces_folded() {
        assert_eq!(collapse_whitespace("  a   b  c "), "a b c");
    }
}
