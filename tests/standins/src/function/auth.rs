//! Bearer-token checks the way App Service authentication ("Easy Auth") makes them in front of
//! a function: a bad or missing token is 401, a good token from a caller outside the allow-list
//! is 403.

use std::collections::HashSet;

use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::FunctionConfig;

/// Why a call did not get past authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// 401: no token, or one that is not valid for this app.
    Unauthorized(&'static str),
    /// 403: a valid token whose client application is not allowed.
    Forbidden,
}

/// Who made an authenticated call.
#[derive(Debug)]
pub(crate) struct Caller {
    /// `azp` (v2 tokens) or `appid` (v1 tokens).
    pub(crate) client_application: String,
}

#[derive(Deserialize)]
struct AccessClaims {
    aud: serde_json::Value,
    azp: Option<String>,
    appid: Option<String>,
    uti: Option<String>,
}

/// The bearer token of a request, if it carries one.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// The `uti` of a token, read without verifying it: enough to remember a revoked token.
pub(crate) fn token_id(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Uti {
        uti: Option<String>,
    }
    jsonwebtoken::dangerous::insecure_decode_claims::<Uti>(token)
        .ok()?
        .uti
}

/// Validates the request's bearer token against `config`; `revoked` lists rejected `uti`s.
pub(crate) fn authenticate(
    config: &FunctionConfig,
    headers: &HeaderMap,
    revoked: &HashSet<String>,
) -> Result<Caller, Rejection> {
    let token = bearer_token(headers).ok_or(Rejection::Unauthorized("missing bearer token"))?;
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| Rejection::Unauthorized("malformed token"))?;
    let jwk = header
        .kid
        .as_deref()
        .and_then(|kid| config.keys.find(kid))
        .ok_or(Rejection::Unauthorized("unknown signing key"))?;
    let key = jwk
        .decoding_key()
        .map_err(|_| Rejection::Unauthorized("unusable signing key"))?;

    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[&config.issuer]);
    validation.validate_aud = false;
    validation.validate_nbf = true;
    validation.leeway = config.clock_skew_seconds;
    let claims = jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
        .map_err(|_| Rejection::Unauthorized("invalid signature, issuer or lifetime"))?
        .claims;

    let audience_allowed = match &claims.aud {
        serde_json::Value::String(aud) => config.allowed_audiences.contains(aud),
        _ => false,
    };
    if !audience_allowed {
        return Err(Rejection::Unauthorized("audience not allowed"));
    }
    if claims.uti.as_ref().is_some_and(|uti| revoked.contains(uti)) {
        return Err(Rejection::Unauthorized("token revoked"));
    }

    let client_application = claims.azp.or(claims.appid).unwrap_or_default();
    let allowed = &config.allowed_client_applications;
    if !allowed.is_empty() && !allowed.contains(&client_application) {
        return Err(Rejection::Forbidden);
    }
    Ok(Caller { client_application })
}
