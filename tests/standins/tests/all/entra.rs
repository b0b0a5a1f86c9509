//! The Entra stand-in: the exchange, the AADSTS code of each misconfiguration, and the
//! error document's shape.

use standins::{FederatedCredential, TOKEN_EXCHANGE_AUDIENCE, TokenSigning};

use crate::support::{CLIENT_ID, RESOURCE, federation, federation_with, http, verified_claims};

#[tokio::test]
async fn a_valid_assertion_is_exchanged_for_a_bearer_token_for_the_resource() {
    let federation = federation().await;
    let assertion = federation.aws.token(TOKEN_EXCHANGE_AUDIENCE).await;

    let response = federation.exchange(&assertion).await;

    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-ms-request-id"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    let claims = verified_claims(
        body["access_token"].as_str().unwrap(),
        &federation.entra.jwks(),
    );
    assert_eq!(claims["iss"], federation.entra.issuer());
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(claims["azp"], CLIENT_ID);
    assert_eq!(claims["appid"], CLIENT_ID);
    assert_eq!(claims["tid"], federation.entra.tenant_id());
    assert_eq!(federation.entra.token_issues(), 1);
}

#[tokio::test]
async fn the_exchange_fetches_discovery_and_jwks_from_the_issuer_over_http() {
    let federation = federation().await;

    federation.access_token().await;

    assert_eq!(federation.aws.sts.discovery_fetches(), 1);
    assert_eq!(federation.aws.sts.jwks_fetches(), 1);
}

#[tokio::test]
async fn a_credential_for_another_subject_is_aadsts700213() {
    let federation = federation_with(|sts| {
        FederatedCredential::new(sts.issuer(), "arn:aws:iam::123456789012:role/other")
    })
    .await;

    assert_eq!(federation.exchange_error_code().await, (401, 700213));
}

#[tokio::test]
async fn a_subject_differing_only_in_case_is_aadsts7002138() {
    let federation = federation_with(|sts| {
        FederatedCredential::new(
            sts.issuer(),
            sts.role_arn().replace("runner-host", "Runner-Host"),
        )
    })
    .await;

    assert_eq!(federation.exchange_error_code().await, (401, 7002138));
}

#[tokio::test]
async fn a_credential_for_another_audience_is_aadsts700212() {
    let federation = federation_with(|sts| {
        FederatedCredential::new(sts.issuer(), sts.role_arn()).with_audience("api://other-exchange")
    })
    .await;

    assert_eq!(federation.exchange_error_code().await, (401, 700212));
}

#[tokio::test]
async fn an_issuer_with_a_trailing_slash_matches_no_credential_aadsts700211() {
    let federation = federation_with(|sts| {
        FederatedCredential::new(format!("{}/", sts.issuer()), sts.role_arn())
    })
    .await;

    assert_eq!(federation.exchange_error_code().await, (401, 700211));
    assert_eq!(
        federation.aws.sts.discovery_fetches(),
        0,
        "no fetch for an untrusted issuer"
    );
}

#[tokio::test]
async fn an_expired_assertion_is_aadsts700024() {
    let federation = federation().await;
    federation.aws.sts.set_issue_expired(true);

    assert_eq!(federation.exchange_error_code().await, (401, 700024));
}

#[tokio::test]
async fn a_key_missing_from_the_issuer_jwks_is_aadsts7000272() {
    let federation = federation().await;
    federation.aws.sts.set_signing(TokenSigning::UnpublishedKey);

    assert_eq!(federation.exchange_error_code().await, (401, 7000272));
}

#[tokio::test]
async fn a_signature_by_another_key_under_the_published_kid_is_aadsts700027() {
    let federation = federation().await;
    federation
        .aws
        .sts
        .set_signing(TokenSigning::ForgedSignature);

    assert_eq!(federation.exchange_error_code().await, (401, 700027));
}

#[tokio::test]
async fn an_unreachable_issuer_discovery_is_aadsts50166() {
    let federation = federation().await;
    federation.aws.sts.set_discovery_available(false);

    assert_eq!(federation.exchange_error_code().await, (401, 50166));
}

#[tokio::test]
async fn a_propagating_credential_answers_aadsts70021_then_succeeds() {
    let federation = federation().await;
    federation.entra.set_propagation_pending(2);

    let first = federation.exchange_error_code().await;
    let second = federation.exchange_error_code().await;
    federation.access_token().await;

    assert_eq!((first, second), ((401, 70021), (401, 70021)));
    assert_eq!(federation.entra.token_issues(), 1);
}

#[tokio::test]
async fn an_error_answer_has_entras_json_shape_and_ids() {
    let federation =
        federation_with(|sts| FederatedCredential::new(sts.issuer(), "wrong-subject")).await;
    let assertion = federation.aws.token(TOKEN_EXCHANGE_AUDIENCE).await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion.as_str()),
        ("scope", "api://runner-downstream/.default"),
    ];

    let response = http()
        .post(federation.entra.token_url())
        .header("client-request-id", "5a0c1b9e-3d2f-4e6a-8b7c-9d0e1f2a3b4c")
        .form(&form)
        .send()
        .await
        .unwrap();

    let request_id = response.headers()["x-ms-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        response.headers()["client-request-id"],
        "5a0c1b9e-3d2f-4e6a-8b7c-9d0e1f2a3b4c"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS700213: ")
    );
    assert_eq!(body["error_codes"], serde_json::json!([700213]));
    assert_eq!(body["trace_id"], request_id.as_str());
    assert_eq!(
        body["correlation_id"],
        "5a0c1b9e-3d2f-4e6a-8b7c-9d0e1f2a3b4c"
    );
    assert!(
        chrono::NaiveDateTime::parse_from_str(
            body["timestamp"].as_str().unwrap(),
            "%Y-%m-%d %H:%M:%SZ"
        )
        .is_ok()
    );
    let record = &federation.entra.requests()[0];
    assert_eq!(record.error_code, Some(700213));
    assert_eq!(
        record.assertion_subject.as_deref(),
        Some(federation.aws.sts.role_arn())
    );
}

#[tokio::test]
async fn form_mistakes_get_their_own_codes() {
    let federation = federation().await;
    let assertion = federation.aws.token(TOKEN_EXCHANGE_AUDIENCE).await;
    let jwt_bearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    let cases: [(&str, &str, &str, &str, u16, u64); 4] = [
        (
            "client_credentials",
            "ffffffff-0000-0000-0000-000000000000",
            jwt_bearer,
            "api://r/.default",
            400,
            700016,
        ),
        (
            "client_credentials",
            CLIENT_ID,
            jwt_bearer,
            "api://r/read",
            400,
            1002012,
        ),
        (
            "client_credentials",
            CLIENT_ID,
            "client_secret",
            "api://r/.default",
            401,
            7000216,
        ),
        (
            "password",
            CLIENT_ID,
            jwt_bearer,
            "api://r/.default",
            400,
            70003,
        ),
    ];
    for (grant_type, client_id, assertion_type, scope, expected_status, expected_code) in cases {
        let form = [
            ("grant_type", grant_type),
            ("client_id", client_id),
            ("client_assertion_type", assertion_type),
            ("client_assertion", assertion.as_str()),
            ("scope", scope),
        ];

        let response = http()
            .post(federation.entra.token_url())
            .form(&form)
            .send()
            .await
            .unwrap();

        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            (status, body["error_codes"][0].as_u64()),
            (expected_status, Some(expected_code))
        );
    }
    assert_eq!(federation.entra.token_issues(), 0);
}

#[tokio::test]
async fn expires_in_can_be_shortened_to_force_refreshes() {
    let federation = federation().await;
    federation.entra.set_expires_in(5);
    let assertion = federation.aws.token(TOKEN_EXCHANGE_AUDIENCE).await;

    let body: serde_json::Value = federation.exchange(&assertion).await.json().await.unwrap();

    assert_eq!(body["expires_in"], 5);
    let claims = verified_claims(
        body["access_token"].as_str().unwrap(),
        &federation.entra.jwks(),
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        5
    );
}

#[tokio::test]
async fn entra_publishes_the_key_that_signs_its_access_tokens() {
    let federation = federation().await;
    let base = format!(
        "{}/{}",
        federation.entra.base_url(),
        federation.entra.tenant_id()
    );

    let discovery: serde_json::Value = http()
        .get(format!("{base}/v2.0/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys: standins::JwkSet = http()
        .get(discovery["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(discovery["issuer"], federation.entra.issuer());
    assert_eq!(discovery["token_endpoint"], federation.entra.token_url());
    assert_eq!(keys, federation.entra.jwks());
}
