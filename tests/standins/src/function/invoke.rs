//! Handling one call: injected fault, authentication, body, idempotency, answer.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::{Rejection, authenticate, bearer_token, token_id};
use super::{CallOutcome, Fault, FunctionCall, Shared};
use crate::server::DropConnection;
use crate::{lock, random};

/// Easy Auth's text for both of its refusals.
const DENIED: &str = "You do not have permission to view this directory or page.";

/// `POST <path>`.
pub(super) async fn invoke(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut call = FunctionCall {
        request_id: random::uuid(),
        invocation_id: None,
        headers: recorded_headers(&headers),
        traceparent: text(&headers, "traceparent"),
        idempotency_key: text(&headers, &shared.config.idempotency_header),
        body: serde_json::from_slice(&body).ok(),
        client_application: None,
        status: None,
        outcome: CallOutcome::Delivered,
        delayed_by: None,
    };

    let fault = lock(&shared.faults).pop_front();
    if let Some(Fault::Delay(delay)) = fault {
        tokio::time::sleep(delay).await;
        call.delayed_by = Some(delay);
    }
    let mut response = shared.handle(fault, &headers, &mut call);

    if response.extensions().get::<DropConnection>().is_none() {
        call.status = Some(response.status().as_u16());
    }
    if let Ok(value) = HeaderValue::from_str(&call.request_id) {
        response.headers_mut().insert("x-ms-request-id", value);
    }
    if let Some(value) = call
        .invocation_id
        .as_deref()
        .and_then(|id| HeaderValue::from_str(id).ok())
    {
        response.headers_mut().insert("x-ms-invocation-id", value);
    }
    tracing::debug!(
        request_id = %call.request_id,
        invocation_id = call.invocation_id.as_deref(),
        traceparent = call.traceparent.as_deref(),
        outcome = ?call.outcome,
        status = call.status,
        "function call answered"
    );
    lock(&shared.calls).push(call);
    response
}

impl Shared {
    fn handle(
        &self,
        fault: Option<Fault>,
        headers: &HeaderMap,
        call: &mut FunctionCall,
    ) -> Response {
        match fault {
            Some(injected @ Fault::ServerError) => {
                call.outcome = CallOutcome::Injected(injected);
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
            Some(injected @ Fault::TooManyRequests { retry_after_secs }) => {
                call.outcome = CallOutcome::Injected(injected);
                let retry_after = [(header::RETRY_AFTER, retry_after_secs.to_string())];
                return (StatusCode::TOO_MANY_REQUESTS, retry_after).into_response();
            }
            Some(injected @ Fault::DropConnection) => {
                call.outcome = CallOutcome::Injected(injected);
                return DropConnection::response();
            }
            Some(injected @ Fault::RevokeToken) => {
                call.outcome = CallOutcome::Injected(injected);
                if let Some(uti) = bearer_token(headers).and_then(token_id) {
                    lock(&self.revoked).insert(uti);
                }
                return unauthorized("invalid_token", "The access token has been revoked");
            }
            Some(Fault::Delay(_) | Fault::DropAfterDelivery) | None => {}
        }

        let revoked = lock(&self.revoked).clone();
        let caller = match authenticate(&self.config, headers, &revoked) {
            Ok(caller) => caller,
            Err(Rejection::Unauthorized(reason)) => {
                call.outcome = CallOutcome::Unauthorized;
                return unauthorized("invalid_token", reason);
            }
            Err(Rejection::Forbidden) => {
                call.outcome = CallOutcome::Forbidden;
                return (StatusCode::FORBIDDEN, DENIED).into_response();
            }
        };
        call.client_application = Some(caller.client_application);

        let invocation_id = random::uuid();
        call.invocation_id = Some(invocation_id.clone());
        if call.body.is_none() {
            call.outcome = CallOutcome::BadRequest;
            return (StatusCode::BAD_REQUEST, "The request body must be JSON.").into_response();
        }

        let answer = json!({ "status": "accepted", "invocationId": invocation_id });
        if let Some(key) = &call.idempotency_key {
            let mut delivered = lock(&self.delivered);
            if let Some(first_answer) = delivered.get(key) {
                call.outcome = CallOutcome::Replayed;
                let replayed = [(HeaderName::from_static("x-standin-replayed"), "true")];
                return (replayed, axum::Json(first_answer.clone())).into_response();
            }
            delivered.insert(key.clone(), answer.clone());
        }

        if fault == Some(Fault::DropAfterDelivery) {
            call.outcome = CallOutcome::DeliveredThenDropped;
            return DropConnection::response();
        }
        call.outcome = CallOutcome::Delivered;
        axum::Json(answer).into_response()
    }
}

fn unauthorized(error: &str, description: &str) -> Response {
    let challenge = format!("Bearer error=\"{error}\", error_description=\"{description}\"");
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        DENIED,
    )
        .into_response()
}

fn text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// The request headers to keep, with the credential blanked out.
fn recorded_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = if name == header::AUTHORIZATION {
                "<redacted>".to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.as_str().to_owned(), value)
        })
        .collect()
}
