//! A downstream target (`[[job.target]]`): its settings, the endpoints it resolves to, and
//! the checks `runner validate` makes on it, static secrets first.
//!
//! Unknown keys are collected instead of refused by serde, so a `client_secret` or a
//! function key is named and explained ("static secrets are not accepted: ...") rather than
//! reported as a bare unknown field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The audience Entra expects in an assertion exchanged for an access token.
pub const DEFAULT_AUDIENCE: &str = "api://AzureADTokenExchange";
/// Entra's public authority host.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// Overrides every target's STS endpoint (tests point it at a stand-in).
pub const ENV_STS_ENDPOINT: &str = "RUNNER_STS_ENDPOINT";
/// Overrides every target's Entra authority host.
pub const ENV_ENTRA_AUTHORITY: &str = "RUNNER_ENTRA_AUTHORITY";
/// When `1`, the invoker refuses any address that is not loopback (tests set it, so a
/// forgotten override fails instead of reaching a real cloud).
pub const ENV_LOOPBACK_ONLY: &str = "RUNNER_INVOKER_LOOPBACK_ONLY";

/// When a target is triggered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum When {
    /// After a run that succeeded.
    #[default]
    Success,
    /// After a run that failed or was interrupted.
    Failure,
    /// After every run.
    Always,
}

impl When {
    /// Whether a run that ended with `status` triggers this target.
    pub fn matches(self, status: &str) -> bool {
        match self {
            When::Success => status == "succeeded",
            When::Failure => status != "succeeded",
            When::Always => true,
        }
    }
}

/// One `[[job.target]]`: an Azure Function called when a run ends.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Target {
    /// Name in logs and the audit trail (default `target-<n>`).
    #[serde(default)]
    pub name: Option<String>,
    /// `success`, `failure` or `always`.
    #[serde(default)]
    pub when: When,
    /// The function's full URL; `https`, or `http` to a loopback host only.
    pub function_url: String,
    /// The Entra tenant id.
    pub tenant_id: String,
    /// The client id of the app registration or managed identity holding the federated
    /// credential.
    pub client_id: String,
    /// The function app's application id URI; the scope asked for is `<resource>/.default`.
    pub resource: String,
    /// `aud` of the AWS token (default `api://AzureADTokenExchange`).
    #[serde(default = "default_audience")]
    pub audience: String,
    /// The region whose STS endpoint issues the token (never the global endpoint).
    pub sts_region: String,
    /// Lifetime of the AWS token, 60-3600 seconds (default 300).
    #[serde(default = "default_lifetime")]
    pub token_lifetime_secs: u32,
    /// STS endpoint override (default `https://sts.<region>.amazonaws.com`).
    #[serde(default)]
    pub sts_endpoint: Option<String>,
    /// Entra authority host override (default `https://login.microsoftonline.com`).
    #[serde(default)]
    pub authority: Option<String>,
    /// Timeout of each HTTP call, in seconds (default 30).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Stop retrying a trigger this long after the run ended, in seconds (default a day).
    #[serde(default = "default_max_age")]
    pub max_age_secs: u64,
    /// First retry delay in milliseconds; it doubles per attempt up to a minute (default 500).
    #[serde(default = "default_retry_initial")]
    pub retry_initial_ms: u64,
    /// The header carrying the idempotency key (default `Idempotency-Key`).
    #[serde(default = "default_idempotency_header")]
    pub idempotency_header: String,
    /// Extra request headers (never a credential: `runner validate` refuses those).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Keys the schema does not know, kept so validation can say what is wrong with them.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, toml::Value>,
}

fn default_audience() -> String {
    DEFAULT_AUDIENCE.to_string()
}
fn default_lifetime() -> u32 {
    300
}
fn default_timeout() -> u64 {
    30
}
fn default_max_age() -> u64 {
    86_400
}
fn default_retry_initial() -> u64 {
    500
}
fn default_idempotency_header() -> String {
    "Idempotency-Key".to_string()
}

impl Target {
    /// The target's name, defaulted by position (`idx` from 0).
    pub fn display_name(&self, idx: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("target-{}", idx + 1))
    }

    /// The scope asked of Entra.
    pub fn scope(&self) -> String {
        format!("{}/.default", self.resource.trim_end_matches('/'))
    }

    /// The regional STS endpoint: `RUNNER_STS_ENDPOINT`, else the config, else
    /// `https://sts.<region>.amazonaws.com`.
    pub fn sts_endpoint(&self) -> String {
        env_override(ENV_STS_ENDPOINT)
            .or_else(|| self.sts_endpoint.clone())
            .unwrap_or_else(|| format!("https://sts.{}.amazonaws.com", self.sts_region))
    }

    /// The Entra token endpoint of the tenant.
    pub fn token_endpoint(&self) -> String {
        let authority = env_override(ENV_ENTRA_AUTHORITY)
            .or_else(|| self.authority.clone())
            .unwrap_or_else(|| DEFAULT_AUTHORITY.to_string());
        format!(
            "{}/{}/oauth2/v2.0/token",
            authority.trim_end_matches('/'),
            self.tenant_id
        )
    }

    /// Every problem with this target, as `(field, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push = |field: &str, message: String| out.push((field.to_string(), message));

        for (key, value) in &self.unknown {
            match secret_kind(key) {
                Some(kind) => push(key, format!("{kind}: {NO_SECRETS}")),
                None => push(key, format!("unknown field `{key}` = {value}")),
            }
        }
        for (name, value) in &self.headers {
            if let Some(kind) = secret_kind(name) {
                push(&format!("headers.{name}"), format!("{kind}: {NO_SECRETS}"));
            } else if looks_like_aws_key(value) {
                push(
                    &format!("headers.{name}"),
                    format!("an AWS access key id: {NO_SECRETS}"),
                );
            }
        }
        for (field, url) in [
            ("function_url", Some(self.function_url.as_str())),
            ("sts_endpoint", self.sts_endpoint.as_deref()),
            ("authority", self.authority.as_deref()),
        ] {
            let Some(url) = url else { continue };
            if let Err(message) = check_url(url) {
                push(field, message);
            }
        }
        for (field, value) in [
            ("tenant_id", &self.tenant_id),
            ("client_id", &self.client_id),
            ("resource", &self.resource),
            ("audience", &self.audience),
            ("sts_region", &self.sts_region),
        ] {
            if value.trim().is_empty() || value.trim() != value {
                push(
                    field,
                    format!("`{value}` must be non-empty, without spaces around it"),
                );
            } else if looks_like_aws_key(value) {
                push(field, format!("an AWS access key id: {NO_SECRETS}"));
            }
        }
        if !self
            .sts_region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            push(
                "sts_region",
                format!(
                    "`{}` is not a region name such as `eu-west-1`",
                    self.sts_region
                ),
            );
        }
        if !(60..=3600).contains(&self.token_lifetime_secs) {
            push(
                "token_lifetime_secs",
                format!(
                    "{} is outside what STS allows (60-3600 seconds)",
                    self.token_lifetime_secs
                ),
            );
        }
        if self.timeout_secs == 0 || self.max_age_secs == 0 || self.retry_initial_ms == 0 {
            push(
                "timeout_secs",
                "timeout_secs, max_age_secs and retry_initial_ms must be above zero".to_string(),
            );
        }
        out
    }
}

const NO_SECRETS: &str = "static secrets are not accepted; the runner authenticates with its \
     EC2 instance role through AWS-to-Entra federation (see docs/invoker.md)";

/// What kind of static secret a key or header name stands for, if it does.
fn secret_kind(name: &str) -> Option<&'static str> {
    let n = name.to_ascii_lowercase().replace('-', "_");
    if n.contains("client_secret") || n == "secret" || n.contains("password") {
        Some("a client secret")
    } else if n.contains("aws_access_key")
        || n.contains("aws_secret")
        || n.contains("session_token")
    {
        Some("AWS keys")
    } else if n == "x_functions_key" || n == "code" || n.contains("function_key") {
        Some("an Azure Functions key")
    } else if n == "authorization" || n.contains("access_token") || n == "token" {
        Some("a fixed bearer token")
    } else {
        None
    }
}

/// `AKIA...`/`ASIA...` followed by 16 upper-case letters or digits, anywhere in `text`.
pub fn looks_like_aws_key(text: &str) -> bool {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(19)).any(|i| {
        (b[i..].starts_with(b"AKIA") || b[i..].starts_with(b"ASIA"))
            && b[i + 4..i + 20]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    })
}

/// A URL the invoker may call: `https`, or `http` to a loopback host; no credentials in it.
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("a user or password in the URL: {NO_SECRETS}"));
    }
    if parsed
        .query_pairs()
        .any(|(k, _)| k.eq_ignore_ascii_case("code") || k.eq_ignore_ascii_case("sig"))
    {
        return Err(format!(
            "a function key in the URL's `code=` query: {NO_SECRETS}"
        ));
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" => Err(format!(
            "`{url}` uses plain http; only https is allowed, except to a loopback host \
             (127.0.0.1, ::1, localhost) for local testing"
        )),
        other => Err(format!("`{url}` has scheme `{other}`; use https")),
    }
}

/// Whether a URL's host is a loopback address or `localhost`.
pub fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// In loopback-only mode, refuses `url` unless it is loopback.
pub fn loopback_guard(url: &str) -> Result<(), String> {
    if std::env::var(ENV_LOOPBACK_ONLY).as_deref() != Ok("1") {
        return Ok(());
    }
    match reqwest::Url::parse(url) {
        Ok(parsed) if is_loopback(&parsed) => Ok(()),
        _ => Err(format!(
            "`{url}` is not a loopback address and {ENV_LOOPBACK_ONLY}=1 allows no other"
        )),
    }
}

fn env_override(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(extra: &str) -> Target {
        let text = format!(
            "function_url = \"https://fn.example.net/api/x\"\ntenant_id = \"t\"\n\
             client_id = \"c\"\nresource = \"api://fn\"\nsts_region = \"eu-west-1\"\n{extra}"
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn a_plain_target_has_no_problems_and_takes_the_defaults() {
        let t = target("");
        assert!(t.problems().is_empty(), "{:?}", t.problems());
        assert_eq!(t.audience, "api://AzureADTokenExchange");
        assert_eq!(t.token_lifetime_secs, 300);
        assert_eq!(t.scope(), "api://fn/.default");
        assert_eq!(t.when, When::Success);
    }

    #[test]
    fn static_secrets_are_refused_with_the_reason() {
        for extra in [
            "client_secret = \"abc\"",
            "aws_secret_access_key = \"abc\"",
            "headers = { x-functions-key = \"abc\" }",
            "function_key = \"abc\"",
        ] {
            let problems = target(extra).problems();
            assert_eq!(problems.len(), 1, "{extra}: {problems:?}");
            assert!(
                problems[0].1.contains("static secrets are not accepted"),
                "{extra}: {problems:?}"
            );
        }
        let t = target("").function_url.replace("/x", "/x?code=abc");
        assert!(check_url(&t).unwrap_err().contains("`code=`"));
        let keyed = target("headers = { x-trace = \"AKIAABCDEFGHIJKLMNOP\" }");
        assert!(keyed.problems()[0].1.contains("AWS access key id"));
    }

    #[test]
    fn plain_http_is_allowed_only_to_loopback_hosts() {
        assert!(check_url("http://127.0.0.1:8080/api/x").is_ok());
        assert!(check_url("http://localhost/api/x").is_ok());
        assert!(check_url("http://[::1]:9/api/x").is_ok());
        assert!(check_url("http://fn.example.net/api/x").is_err());
        assert!(check_url("http://10.0.0.1/api/x").is_err());
    }

    #[test]
    fn the_sts_endpoint_defaults_to_the_regional_one() {
        let mut t = target("");
        t.sts_region = "ap-south-2".to_string();
        if std::env::var(ENV_STS_ENDPOINT).is_err() {
            assert_eq!(t.sts_endpoint(), "https://sts.ap-south-2.amazonaws.com");
        }
    }

    #[test]
    fn when_matches_run_statuses() {
        assert!(When::Success.matches("succeeded"));
        assert!(!When::Success.matches("failed"));
        assert!(When::Failure.matches("interrupted"));
        assert!(When::Always.matches("failed"));
    }
}
