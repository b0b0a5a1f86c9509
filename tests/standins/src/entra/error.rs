//! Entra's error answer: an OAuth error name plus an `AADSTS` code, trace and correlation ids.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::response_headers;

/// One token-endpoint failure, before the ids of the request are attached.
#[derive(Debug)]
pub(crate) struct AadError {
    status: StatusCode,
    error: &'static str,
    pub(crate) code: u32,
    message: String,
}

impl AadError {
    /// `400 invalid_request`: the request itself is wrong.
    pub(crate) fn invalid_request(code: u32, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            code,
            message: message.into(),
        }
    }

    /// `401 invalid_client`: the client assertion did not authenticate the app.
    pub(crate) fn invalid_client(code: u32, message: impl Into<String>) -> Self {
        let status = StatusCode::UNAUTHORIZED;
        Self {
            status,
            error: "invalid_client",
            code,
            message: message.into(),
        }
    }

    /// A `400` with another OAuth error name (`unauthorized_client`, `invalid_scope`, ...).
    pub(crate) fn bad_request(error: &'static str, code: u32, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            code,
            message: message.into(),
        }
    }

    /// `500 server_error`: the stand-in itself failed.
    pub(crate) fn server_error(message: impl Into<String>) -> Self {
        let status = StatusCode::INTERNAL_SERVER_ERROR;
        Self {
            status,
            error: "server_error",
            code: 50000,
            message: message.into(),
        }
    }

    /// The JSON body and headers Entra answers with.
    pub(crate) fn into_response(
        self,
        base_url: &str,
        trace_id: &str,
        correlation_id: &str,
        client_request_id: Option<&str>,
    ) -> Response {
        let timestamp = Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
        let description = format!(
            "AADSTS{}: {} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}",
            self.code, self.message
        );
        let body = json!({
            "error": self.error,
            "error_description": description,
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("{base_url}/error?code={}", self.code),
        });
        (
            self.status,
            response_headers(trace_id, client_request_id),
            axum::Json(body),
        )
            .into_response()
    }
}
