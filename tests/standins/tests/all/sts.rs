//! The STS stand-in: parameter validation, the XML documents, the JWT, the account modes and
//! the issuer endpoints on the same server. Signature checks are in `sigv4.rs`.

use standins::{StsMode, TokenSigning};

use crate::support::{Aws, aws, http, jwt_parts, sts_error, verified_claims, xml_path};

const AUDIENCE: &str = "api://AzureADTokenExchange";

#[tokio::test]
async fn signed_call_answers_the_documented_xml_elements_and_request_id_header() {
    let aws = aws().await;

    let response = aws.call(&Aws::form(AUDIENCE)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/xml");
    let header_id = response.headers()["x-amzn-requestid"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.unwrap();
    let result = ["GetWebIdentityTokenResponse", "GetWebIdentityTokenResult"];
    let token = xml_path(&body, &[result[0], result[1], "WebIdentityToken"]).unwrap();
    let expiration = xml_path(&body, &[result[0], result[1], "Expiration"]).unwrap();
    let request_id = xml_path(&body, &[result[0], "ResponseMetadata", "RequestId"]).unwrap();
    assert_eq!(token.split('.').count(), 3);
    let expiration = chrono::DateTime::parse_from_rfc3339(expiration).unwrap();
    assert_eq!(
        Some(expiration.timestamp()),
        jwt_parts(token).1["exp"].as_i64()
    );
    assert_eq!(request_id, header_id);
    assert_eq!(aws.sts.requests()[0].request_id, header_id);
}

#[tokio::test]
async fn issued_token_names_issuer_role_audience_and_aws_context() {
    let aws = aws().await;

    let token = aws.token(AUDIENCE).await;

    let (header, _) = jwt_parts(&token);
    let claims = verified_claims(&token, &aws.sts.jwks());
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], aws.sts.jwks().keys[0].kid.as_str());
    assert_eq!(claims["iss"], aws.sts.issuer());
    assert_eq!(claims["sub"], "arn:aws:iam::123456789012:role/runner-host");
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    let context = &claims["https://sts.amazonaws.com/"];
    assert_eq!(context["aws_account"], "123456789012");
    assert_eq!(context["source_region"], "eu-west-1");
    assert!(
        context["ec2_source_instance_arn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:ec2:eu-west-1:")
    );
    assert_eq!(aws.sts.requests()[0].jti.as_deref(), claims["jti"].as_str());
}

#[tokio::test]
async fn duration_seconds_sets_the_lifetime_and_several_audiences_become_an_array() {
    let aws = aws().await;
    let mut form = Aws::form(AUDIENCE);
    form.push(("Audience.member.2".to_owned(), "second".to_owned()));
    form.push(("DurationSeconds".to_owned(), "900".to_owned()));

    let response = aws.call(&form).await;

    let body = response.text().await.unwrap();
    let token = xml_path(&body, &["GetWebIdentityTokenResult", "WebIdentityToken"]).unwrap();
    let claims = jwt_parts(token).1;
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert_eq!(claims["aud"], serde_json::json!([AUDIENCE, "second"]));
}

#[tokio::test]
async fn two_tokens_never_share_a_jti() {
    let aws = aws().await;

    let first = jwt_parts(&aws.token(AUDIENCE).await).1;
    let second = jwt_parts(&aws.token(AUDIENCE).await).1;

    assert_ne!(first["jti"], second["jti"]);
    assert_eq!(aws.sts.calls(), 2);
    assert_eq!(aws.sts.issued_tokens().len(), 2);
}

#[tokio::test]
async fn records_keep_action_audiences_algorithm_duration_region_and_key_id() {
    let aws = aws().await;
    let mut form = Aws::form(AUDIENCE);
    form.push(("DurationSeconds".to_owned(), "600".to_owned()));

    aws.call(&form).await;

    let record = &aws.sts.requests()[0];
    assert_eq!(record.action.as_deref(), Some("GetWebIdentityToken"));
    assert_eq!(record.version.as_deref(), Some("2011-06-15"));
    assert_eq!(record.audiences, [AUDIENCE]);
    assert_eq!(record.signing_algorithm.as_deref(), Some("RS256"));
    assert_eq!(record.duration_seconds.as_deref(), Some("600"));
    assert_eq!(record.region.as_deref(), Some("eu-west-1"));
    assert_eq!(
        record.access_key_id.as_deref(),
        Some(aws.credentials().access_key_id.as_str())
    );
    assert_eq!(record.status, 200);
    assert_eq!(record.error_code, None);
}

#[tokio::test]
async fn es384_is_refused_with_a_validation_error() {
    let aws = aws().await;
    let mut form = Aws::form(AUDIENCE);
    form[3].1 = "ES384".to_owned();

    let (status, kind, code, _) = sts_error(aws.call(&form).await).await;

    assert_eq!(
        (status, kind.as_str(), code.as_str()),
        (400, "Sender", "ValidationError")
    );
    assert_eq!(
        aws.sts.requests()[0].signing_algorithm.as_deref(),
        Some("ES384")
    );
}

#[tokio::test]
async fn durations_outside_60_to_3600_seconds_are_validation_errors() {
    let aws = aws().await;
    for duration in ["59", "3601", "soon"] {
        let mut form = Aws::form(AUDIENCE);
        form.push(("DurationSeconds".to_owned(), duration.to_owned()));

        let (status, _, code, _) = sts_error(aws.call(&form).await).await;

        assert_eq!(
            (status, code.as_str()),
            (400, "ValidationError"),
            "duration {duration}"
        );
    }
}

#[tokio::test]
async fn a_call_without_audience_or_with_another_action_is_refused() {
    let aws = aws().await;
    let no_audience: Vec<_> = Aws::form(AUDIENCE)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("Audience"))
        .collect();
    let mut other_action = Aws::form(AUDIENCE);
    other_action[0].1 = "AssumeRole".to_owned();

    let (audience_status, _, audience_code, _) = sts_error(aws.call(&no_audience).await).await;
    let (action_status, _, action_code, _) = sts_error(aws.call(&other_action).await).await;

    assert_eq!(
        (audience_status, audience_code.as_str()),
        (400, "ValidationError")
    );
    assert_eq!(
        (action_status, action_code.as_str()),
        (400, "InvalidAction")
    );
}

#[tokio::test]
async fn account_modes_answer_their_error_codes_in_the_sts_envelope() {
    let aws = aws().await;
    let cases = [
        (
            StsMode::FederationDisabled,
            403,
            "OutboundWebIdentityFederationDisabledException",
        ),
        (StsMode::AccessDenied, 403, "AccessDenied"),
        (
            StsMode::SessionDurationEscalation,
            403,
            "SessionDurationEscalationException",
        ),
        (
            StsMode::PayloadTooLarge,
            400,
            "JWTPayloadSizeExceededException",
        ),
    ];
    for (mode, expected_status, expected_code) in cases {
        aws.sts.set_mode(mode);

        let (status, kind, code, _) = sts_error(aws.call(&Aws::form(AUDIENCE)).await).await;

        assert_eq!(
            (status, kind.as_str(), code.as_str()),
            (expected_status, "Sender", expected_code)
        );
    }
    aws.sts.set_mode(StsMode::Normal);
    assert_eq!(aws.call(&Aws::form(AUDIENCE)).await.status(), 200);
    let codes: Vec<_> = aws
        .sts
        .requests()
        .into_iter()
        .map(|r| r.error_code)
        .collect();
    assert_eq!(codes.len(), 5);
    assert_eq!(
        codes[0].as_deref(),
        Some("OutboundWebIdentityFederationDisabledException")
    );
    assert_eq!(codes[4], None);
}

#[tokio::test]
async fn discovery_document_points_at_the_jwks_that_verifies_tokens() {
    let aws = aws().await;
    let token = aws.token(AUDIENCE).await;

    let discovery: serde_json::Value = http()
        .get(format!(
            "{}/.well-known/openid-configuration",
            aws.sts.issuer()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwks_uri = discovery["jwks_uri"].as_str().unwrap();
    let keys: standins::JwkSet = http()
        .get(jwks_uri)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(discovery["issuer"], aws.sts.issuer());
    let key = &keys.keys[0];
    assert_eq!(
        (key.kty.as_str(), key.alg.as_str(), key.key_use.as_str()),
        ("RSA", "RS256", "sig")
    );
    assert_eq!(key.e, "AQAB");
    assert_eq!(verified_claims(&token, &keys)["sub"], aws.sts.role_arn());
    assert_eq!(
        (aws.sts.discovery_fetches(), aws.sts.jwks_fetches()),
        (1, 1)
    );
}

#[tokio::test]
async fn unavailable_discovery_answers_503_on_both_documents() {
    let aws = aws().await;
    aws.sts.set_discovery_available(false);

    let discovery = http().get(format!(
        "{}/.well-known/openid-configuration",
        aws.sts.issuer()
    ));
    let jwks = http().get(format!("{}/.well-known/jwks.json", aws.sts.issuer()));

    assert_eq!(discovery.send().await.unwrap().status(), 503);
    assert_eq!(jwks.send().await.unwrap().status(), 503);
}

#[tokio::test]
async fn unpublished_key_signing_names_a_kid_the_jwks_does_not_list() {
    let aws = aws().await;
    aws.sts.set_signing(TokenSigning::UnpublishedKey);

    let (header, _) = jwt_parts(&aws.token(AUDIENCE).await);

    assert!(
        aws.sts
            .jwks()
            .find(header["kid"].as_str().unwrap())
            .is_none()
    );
}

#[tokio::test]
async fn expired_option_issues_tokens_whose_exp_has_passed() {
    let aws = aws().await;
    aws.sts.set_issue_expired(true);

    let (_, claims) = jwt_parts(&aws.token(AUDIENCE).await);

    assert!(claims["exp"].as_i64().unwrap() < chrono::Utc::now().timestamp());
}
