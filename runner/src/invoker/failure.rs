//! Why an attempt did not deliver, whether trying again can help, and what the code means
//! to the operator who has to fix the setup.
//!
//! The meanings follow `shared/CLOUD.md`: a permanent failure is recorded with its code and
//! one sentence saying what is wrong and where to look, so nobody has to search for an
//! `AADSTS` number at night.

use std::time::Duration;

/// Whether a failed attempt is worth repeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again after the usual backoff.
    Backoff,
    /// Try again, not before this long (a `Retry-After`).
    After(Duration),
    /// Try again after the usual backoff, but only while the trigger is younger than this:
    /// the setup may still be propagating, and past that it is simply wrong.
    Within(Duration),
    /// Never: the setup is wrong and a person has to fix it.
    Never,
}

/// A failed attempt: its code, what it means, and whether to retry.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {meaning}")]
pub struct Failure {
    /// `AADSTS700213`, `AccessDenied`, `HTTP 403`, `timeout`, ...
    pub code: String,
    /// What it means and what to check.
    pub meaning: String,
    /// Whether to try again.
    pub retry: Retry,
}

impl Failure {
    /// A failure worth retrying with backoff.
    pub fn transient(code: impl Into<String>, meaning: impl Into<String>) -> Failure {
        Failure {
            code: code.into(),
            meaning: meaning.into(),
            retry: Retry::Backoff,
        }
    }

    /// A failure no retry can fix.
    pub fn permanent(code: impl Into<String>, meaning: impl Into<String>) -> Failure {
        Failure {
            code: code.into(),
            meaning: meaning.into(),
            retry: Retry::Never,
        }
    }
}

/// How long after a run ended a trigger refused with `AADSTS70021` is still retried. A new
/// federated credential takes "a few minutes" to be honoured (`shared/CLOUD.md`); a refusal
/// still there after a quarter of an hour is a credential that does not match.
pub const PROPAGATION: Duration = Duration::from_secs(15 * 60);

/// Classifies an Entra error by its `AADSTS` code.
pub fn entra_error(code: Option<u64>, status: u16, description: &str) -> Failure {
    let Some(code) = code else {
        let first_line = description.lines().next().unwrap_or("").to_string();
        return if status >= 500 || status == 429 {
            Failure::transient(format!("HTTP {status}"), "Entra is unavailable; will retry")
        } else {
            Failure::permanent(
                format!("HTTP {status}"),
                format!("Entra refused the token request without an AADSTS code: {first_line}"),
            )
        };
    };
    let name = format!("AADSTS{code}");
    let (retry, meaning) = match code {
        70021 => (
            Retry::Within(PROPAGATION),
            "no federated identity credential on the app matches the assertion's issuer, \
             subject and audience (a credential created minutes ago may still be propagating)",
        ),
        700211 => (
            Retry::Never,
            "no federated identity credential on the app has this issuer: add one whose issuer \
             is the account's STS issuer URL exactly (no trailing slash or whitespace)",
        ),
        700212 => (
            Retry::Never,
            "audience mismatch: the token's `aud` (the target's `audience`) differs from the \
             credential's audience, normally api://AzureADTokenExchange",
        ),
        700213 => (
            Retry::Never,
            "subject mismatch: the credential's subject must be the instance role's ARN \
             (arn:aws:iam::<account>:role/<name>, not the assumed-role session ARN)",
        ),
        7002138 => (
            Retry::Never,
            "the credential's subject matches the role ARN only if case is ignored: \
             subjects are case-sensitive, copy the ARN exactly",
        ),
        700024 => (
            Retry::Never,
            "the assertion is outside its valid time range: it expired or the host's clock \
             is skewed; check time sync (chrony) on the host",
        ),
        7000272 => (
            Retry::Never,
            "the assertion's signing key is not in the issuer's JWKS: the token was not \
             signed by the account's STS issuer key",
        ),
        700027 => (
            Retry::Never,
            "the assertion's signature does not verify against the issuer's JWKS",
        ),
        // An outage between Entra and the AWS issuer, not a setting anyone can fix: retried
        // like any other outage, for up to `max_age_secs`.
        50166 => (
            Retry::Backoff,
            "Entra could not fetch the issuer's discovery document or JWKS",
        ),
        700016 => (
            Retry::Never,
            "no app with this client id in the tenant: check `client_id` and `tenant_id`",
        ),
        90002 => (Retry::Never, "the tenant does not exist: check `tenant_id`"),
        500011 | 70011 => (
            Retry::Never,
            "the scope's resource is not known in the tenant: check `resource` (the function \
             app's application id URI)",
        ),
        _ if status >= 500 => (Retry::Backoff, "Entra failed; will retry"),
        _ => (
            Retry::Never,
            "Entra refused the exchange; see the code in Microsoft's AADSTS error reference",
        ),
    };
    Failure {
        code: name,
        meaning: meaning.to_string(),
        retry,
    }
}

/// Classifies an STS error code (as the SDK reports it).
pub fn sts_error(code: &str, message: &str) -> Failure {
    let meaning = match code {
        "OutboundWebIdentityFederationDisabledException" => {
            "outbound web identity federation is not enabled in this AWS account: an \
             administrator enables it in the IAM account settings (docs/invoker.md, step 1)"
        }
        "AccessDenied" | "AccessDeniedException" => {
            "the instance role may not call sts:GetWebIdentityToken with this audience, \
             lifetime or algorithm: check its IAM policy conditions (sts:IdentityTokenAudience, \
             sts:DurationSeconds, sts:SigningAlgorithm)"
        }
        "SessionDurationEscalationException" => {
            "the token would outlive the role session: lower `token_lifetime_secs`"
        }
        "JWTPayloadSizeExceededException" => {
            "the token would be too large: the role has too many principal tags"
        }
        "ValidationError" | "InvalidParameterValue" => {
            "STS refused the request's parameters (audience, lifetime or algorithm)"
        }
        "InvalidClientTokenId" | "SignatureDoesNotMatch" | "UnrecognizedClientException" => {
            "STS does not accept the host's credentials: check the instance profile"
        }
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "InternalFailure"
        | "ServiceUnavailable" => {
            return Failure::transient(code, format!("STS is busy or failing: {message}"));
        }
        _ => {
            return Failure::permanent(code, format!("STS refused the request: {message}"));
        }
    };
    Failure::permanent(code, meaning)
}

/// Classifies the function's answer status (not 2xx).
pub fn function_status(status: u16, retry_after: Option<Duration>) -> Failure {
    match status {
        429 => Failure {
            code: "HTTP 429".to_string(),
            meaning: "the function app is busy".to_string(),
            retry: retry_after.map_or(Retry::Backoff, Retry::After),
        },
        408 => Failure::transient("HTTP 408", "the function app timed out reading the request"),
        500..=599 => Failure::transient(
            format!("HTTP {status}"),
            "the function app failed; will retry",
        ),
        401 => Failure::permanent(
            "HTTP 401",
            "the function app rejects the access token even when fresh: check App Service \
             authentication's issuer (the tenant) and allowed audiences (the `resource`)",
        ),
        403 => Failure::permanent(
            "HTTP 403",
            "the token is valid but the caller is not allowed: add the client id to App \
             Service authentication's allowed client applications",
        ),
        404 => Failure::permanent("HTTP 404", "no function at `function_url`"),
        _ => Failure::permanent(
            format!("HTTP {status}"),
            "the function refused the call; it will not be repeated",
        ),
    }
}

/// Reads a `Retry-After` given in seconds (the HTTP-date form falls back to backoff).
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_errors_of_entra_are_permanent_and_explained() {
        let f = entra_error(Some(700213), 401, "");
        assert_eq!(f.code, "AADSTS700213");
        assert_eq!(f.retry, Retry::Never);
        assert!(f.meaning.contains("role's ARN"));
        assert_eq!(
            entra_error(Some(70021), 400, "").retry,
            Retry::Within(PROPAGATION)
        );
        assert_eq!(entra_error(Some(50166), 401, "").retry, Retry::Backoff);
        assert_eq!(entra_error(None, 503, "").retry, Retry::Backoff);
    }

    #[test]
    fn function_answers_are_classified_by_status() {
        let busy = function_status(429, retry_after(Some("3")));
        assert_eq!(busy.retry, Retry::After(Duration::from_secs(3)));
        assert_eq!(function_status(502, None).retry, Retry::Backoff);
        assert_eq!(function_status(403, None).retry, Retry::Never);
        assert_eq!(function_status(400, None).code, "HTTP 400");
    }

    #[test]
    fn sts_access_denied_and_disabled_federation_are_permanent() {
        assert_eq!(sts_error("AccessDenied", "").retry, Retry::Never);
        let disabled = sts_error("OutboundWebIdentityFederationDisabledException", "");
        assert!(disabled.meaning.contains("not enabled"));
        assert_eq!(sts_error("Throttling", "slow").retry, Retry::Backoff);
    }
}
