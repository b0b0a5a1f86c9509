//! The STS query protocol on the wire: form parameters in, XML documents out.

use std::collections::BTreeMap;

use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The XML namespace of the 2011-06-15 STS API.
const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The form-encoded parameters of one call, in the order sent.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// Parses an `application/x-www-form-urlencoded` body.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, serde_urlencoded::de::Error> {
        serde_urlencoded::from_bytes(body).map(Self)
    }

    /// The value of `name`, if sent.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The members of a list parameter (`<prefix>.member.<n>`), ordered by `n`.
    pub(crate) fn members(&self, prefix: &str) -> Vec<String> {
        let marker = format!("{prefix}.member.");
        let mut numbered: Vec<(u32, &str)> = self
            .0
            .iter()
            .filter_map(|(key, value)| {
                let index = key.strip_prefix(&marker)?.parse().ok()?;
                Some((index, value.as_str()))
            })
            .collect();
        numbered.sort_by_key(|(index, _)| *index);
        numbered
            .into_iter()
            .map(|(_, value)| value.to_owned())
            .collect()
    }

    /// The `Tags.member.<n>.Key` / `.Value` pairs.
    pub(crate) fn tags(&self) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::new();
        for (key, value) in &self.0 {
            let Some(index) = key
                .strip_prefix("Tags.member.")
                .and_then(|rest| rest.strip_suffix(".Key"))
            else {
                continue;
            };
            if let Some(tag_value) = self.get(&format!("Tags.member.{index}.Value")) {
                tags.insert(value.clone(), tag_value.to_owned());
            }
        }
        tags
    }
}

/// Who is at fault, the `Type` element of an error.
#[derive(Clone, Copy, Debug)]
pub(crate) enum FaultType {
    Sender,
    Receiver,
}

/// An STS error: HTTP status, `Code` and `Message`.
#[derive(Debug)]
pub(crate) struct StsError {
    pub(crate) status: StatusCode,
    pub(crate) fault: FaultType,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl StsError {
    /// A client error with the given status.
    pub(crate) fn sender(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            fault: FaultType::Sender,
            code,
            message: message.into(),
        }
    }

    /// A `400 ValidationError`, the answer to parameters outside their constraints.
    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::sender(StatusCode::BAD_REQUEST, "ValidationError", message)
    }

    /// A server-side failure.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        let status = StatusCode::INTERNAL_SERVER_ERROR;
        Self {
            status,
            fault: FaultType::Receiver,
            code: "InternalFailure",
            message: message.into(),
        }
    }

    /// The `ErrorResponse` document.
    pub(crate) fn into_response(self, request_id: &str) -> Response {
        let kind = match self.fault {
            FaultType::Sender => "Sender",
            FaultType::Receiver => "Receiver",
        };
        let body = format!(
            "<ErrorResponse xmlns=\"{NAMESPACE}\">\n  <Error>\n    <Type>{kind}</Type>\n    \
             <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  \
             <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
            self.code,
            escape(&self.message)
        );
        xml_response(self.status, request_id, body)
    }
}

/// The `GetWebIdentityTokenResponse` document.
pub(crate) fn token_response(token: &str, expiration: &str, request_id: &str) -> Response {
    let body = format!(
        "<GetWebIdentityTokenResponse xmlns=\"{NAMESPACE}\">\n  <GetWebIdentityTokenResult>\n    \
         <WebIdentityToken>{}</WebIdentityToken>\n    <Expiration>{expiration}</Expiration>\n  \
         </GetWebIdentityTokenResult>\n  <ResponseMetadata>\n    \
         <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n\
         </GetWebIdentityTokenResponse>\n",
        escape(token)
    );
    xml_response(StatusCode::OK, request_id, body)
}

fn xml_response(status: StatusCode, request_id: &str, body: String) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/xml".to_owned()),
        (
            HeaderName::from_static("x-amzn-requestid"),
            request_id.to_owned(),
        ),
    ];
    (status, headers, body).into_response()
}

/// Escapes text for an XML element.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_members_come_back_in_index_order_not_send_order() {
        let params =
            Params::parse(b"Audience.member.2=second&Action=X&Audience.member.1=first").unwrap();
        assert_eq!(params.members("Audience"), ["first", "second"]);
    }

    #[test]
    fn tags_pair_each_key_with_its_own_value() {
        let params = Params::parse(
            b"Tags.member.1.Key=job&Tags.member.2.Value=b&Tags.member.2.Key=run&Tags.member.1.Value=a",
        )
        .unwrap();
        let tags = params.tags();
        assert_eq!(tags.get("job").map(String::as_str), Some("a"));
        assert_eq!(tags.get("run").map(String::as_str), Some("b"));
    }

    #[test]
    fn error_messages_are_xml_escaped() {
        assert_eq!(escape("a<b & 'c'"), "a&lt;b &amp; &apos;c&apos;");
    }
}
