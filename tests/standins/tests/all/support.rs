//! Helpers shared by the tests: an HTTP client, SigV4 signing with the AWS SDK's own signer,
//! XML and JWT readers, and the stand-ins started in dependency order.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use standins::{
    AppRegistration, AwsCredentials, Entra, EntraConfig, FederatedCredential, FunctionApp,
    FunctionConfig, Imds, JwkSet, Sts, StsConfig, TOKEN_EXCHANGE_AUDIENCE,
};

pub const CLIENT_ID: &str = "0c6d6f1a-2f53-4a8e-9d1b-7e3f5a9c2b40";
pub const RESOURCE: &str = "api://runner-downstream";
const FORM: &str = "application/x-www-form-urlencoded";

/// A client that never goes through a proxy.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client builds")
}

/// IMDS and STS, STS trusting IMDS's credentials.
pub struct Aws {
    pub imds: Imds,
    pub sts: Sts,
}

pub async fn aws() -> Aws {
    let imds = Imds::start().await.expect("imds starts");
    let sts = Sts::start(StsConfig::new(imds.credentials().clone()))
        .await
        .expect("sts starts");
    Aws { imds, sts }
}

impl Aws {
    pub fn credentials(&self) -> &AwsCredentials {
        self.imds.credentials()
    }

    /// A `GetWebIdentityToken` form for `audience`, RS256.
    pub fn form(audience: &str) -> Vec<(String, String)> {
        [
            ("Action", "GetWebIdentityToken"),
            ("Version", "2011-06-15"),
            ("Audience.member.1", audience),
            ("SigningAlgorithm", "RS256"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Posts `form` to STS signed with `credentials` for `region` at `time`.
    pub async fn call_signed(
        &self,
        form: &[(String, String)],
        credentials: &AwsCredentials,
        region: &str,
        time: SystemTime,
    ) -> reqwest::Response {
        let body = serde_urlencoded::to_string(form).expect("form encodes");
        let headers = sigv4_headers(self.sts.base_url(), &body, credentials, region, time);
        post_form(self.sts.base_url(), body, headers).await
    }

    /// Posts `form` signed correctly, now.
    pub async fn call(&self, form: &[(String, String)]) -> reqwest::Response {
        let region = self.sts.region().to_owned();
        self.call_signed(form, self.credentials(), &region, SystemTime::now())
            .await
    }

    /// A fresh web identity token for `audience`.
    pub async fn token(&self, audience: &str) -> String {
        let response = self.call(&Self::form(audience)).await;
        assert_eq!(response.status(), 200, "sts refused the call");
        let body = response.text().await.expect("body");
        xml_path(
            &body,
            &[
                "GetWebIdentityTokenResponse",
                "GetWebIdentityTokenResult",
                "WebIdentityToken",
            ],
        )
        .expect("token element")
        .to_owned()
    }
}

/// Posts a form body with extra headers.
pub async fn post_form(
    base_url: &str,
    body: String,
    headers: Vec<(String, String)>,
) -> reqwest::Response {
    let mut request = http()
        .post(format!("{base_url}/"))
        .header("content-type", FORM)
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.send().await.expect("sts answers")
}

/// The headers the AWS SDK's signer adds to a `POST /` with `body`.
pub fn sigv4_headers(
    base_url: &str,
    body: &str,
    credentials: &AwsCredentials,
    region: &str,
    time: SystemTime,
) -> Vec<(String, String)> {
    let identity: Identity = Credentials::new(
        &credentials.access_key_id,
        &credentials.secret_access_key,
        Some(credentials.session_token.clone()),
        None,
        "standins-tests",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let url = format!("{base_url}/");
    let host = base_url.trim_start_matches("http://");
    let signable = SignableRequest::new(
        "POST",
        &url,
        [("host", host), ("content-type", FORM)].into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .expect("signable request");
    let (instructions, _) = sign(signable, &params).expect("signs").into_parts();
    instructions
        .headers()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// The text inside nested elements, outermost first; `None` if the nesting is not there.
pub fn xml_path<'a>(xml: &'a str, path: &[&str]) -> Option<&'a str> {
    let mut inner = xml;
    for name in path {
        let open = inner.find(&format!("<{name}"))?;
        let after_open = open + inner[open..].find('>')? + 1;
        let close = inner[after_open..].find(&format!("</{name}>"))?;
        inner = &inner[after_open..after_open + close];
    }
    Some(inner.trim())
}

/// A JWT's header and claims, unverified.
pub fn jwt_parts(token: &str) -> (serde_json::Value, serde_json::Value) {
    let mut parts = token.split('.');
    let mut decode = |what| {
        let part = parts.next().expect(what);
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
    };
    (decode("header"), decode("claims"))
}

/// A JWT's claims, verified against `keys` (signature only).
pub fn verified_claims(token: &str, keys: &JwkSet) -> serde_json::Value {
    let (header, _) = jwt_parts(token);
    let kid = header["kid"].as_str().expect("kid");
    let key = keys
        .find(kid)
        .expect("kid is published")
        .decoding_key()
        .expect("usable key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
        .expect("signature verifies")
        .claims
}

/// AWS, plus Entra with one app trusting `credential`.
pub struct Federation {
    pub aws: Aws,
    pub entra: Entra,
}

pub async fn federation_with(credential: impl FnOnce(&Sts) -> FederatedCredential) -> Federation {
    let aws = aws().await;
    let app = AppRegistration::new(CLIENT_ID).with_credential(credential(&aws.sts));
    let entra = Entra::start(EntraConfig::new(vec![app]))
        .await
        .expect("entra starts");
    Federation { aws, entra }
}

/// The credential a correct setup has: STS's issuer and role, the token-exchange audience.
pub async fn federation() -> Federation {
    federation_with(|sts| FederatedCredential::new(sts.issuer(), sts.role_arn())).await
}

impl Federation {
    /// Exchanges `assertion` at Entra's token endpoint for [`RESOURCE`].
    pub async fn exchange(&self, assertion: &str) -> reqwest::Response {
        let scope = format!("{RESOURCE}/.default");
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("scope", scope.as_str()),
        ];
        http()
            .post(self.entra.token_url())
            .form(&form)
            .send()
            .await
            .expect("entra answers")
    }

    /// A fresh STS token exchanged for an access token.
    pub async fn access_token(&self) -> String {
        let assertion = self.aws.token(TOKEN_EXCHANGE_AUDIENCE).await;
        let response = self.exchange(&assertion).await;
        assert_eq!(response.status(), 200, "entra refused the exchange");
        let body: serde_json::Value = response.json().await.expect("json");
        body["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    }

    /// The AADSTS code of a failed exchange of a fresh token.
    pub async fn exchange_error_code(&self) -> (u16, u64) {
        let assertion = self.aws.token(TOKEN_EXCHANGE_AUDIENCE).await;
        let response = self.exchange(&assertion).await;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.expect("json");
        (status, body["error_codes"][0].as_u64().expect("error code"))
    }
}

/// The whole chain with a function trusting Entra for [`RESOURCE`].
pub struct Chain {
    pub federation: Federation,
    pub function: FunctionApp,
}

pub async fn chain_with(configure: impl FnOnce(FunctionConfig) -> FunctionConfig) -> Chain {
    let federation = federation().await;
    let config = configure(FunctionConfig::trusting(&federation.entra, RESOURCE));
    let function = FunctionApp::start(config).await.expect("function starts");
    Chain {
        federation,
        function,
    }
}

pub async fn chain() -> Chain {
    chain_with(|config| config).await
}

impl Chain {
    /// Posts `body` to the function with `token` and `key`.
    pub async fn call(
        &self,
        token: Option<&str>,
        key: Option<&str>,
        body: &str,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut request = http()
            .post(self.function.url())
            .header("content-type", "application/json")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await
    }
}

/// Status, `Type`, `Code` and `RequestId` of an error answer, checking the envelope.
pub async fn sts_error(response: reqwest::Response) -> (u16, String, String, String) {
    let status = response.status().as_u16();
    let header_id = response.headers()["x-amzn-requestid"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.unwrap();
    let field = |name| {
        xml_path(&body, &["ErrorResponse", "Error", name])
            .unwrap()
            .to_owned()
    };
    let request_id = xml_path(&body, &["ErrorResponse", "RequestId"])
        .unwrap()
        .to_owned();
    assert_eq!(
        request_id, header_id,
        "the header and the body name the same request"
    );
    assert!(!field("Message").is_empty());
    (status, field("Type"), field("Code"), request_id)
}
