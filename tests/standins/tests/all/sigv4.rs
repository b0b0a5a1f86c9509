//! SigV4 as the STS stand-in checks it: requests signed by the AWS SDK's own signer, with one
//! thing wrong at a time.

use std::time::{Duration, SystemTime};

use standins::AwsCredentials;

use crate::support::{Aws, aws, post_form, sigv4_headers, sts_error, xml_path};

const AUDIENCE: &str = "api://AzureADTokenExchange";

#[tokio::test]
async fn unsigned_call_is_refused_as_missing_authentication_token() {
    let aws = aws().await;
    let body = serde_urlencoded::to_string(Aws::form(AUDIENCE)).unwrap();

    let response = post_form(aws.sts.base_url(), body, Vec::new()).await;

    let (status, kind, code, _) = sts_error(response).await;
    assert_eq!(
        (status, kind.as_str(), code.as_str()),
        (403, "Sender", "MissingAuthenticationToken")
    );
    assert!(aws.sts.issued_tokens().is_empty());
}

#[tokio::test]
async fn signature_over_a_different_body_does_not_match() {
    let aws = aws().await;
    let signed_body = serde_urlencoded::to_string(Aws::form(AUDIENCE)).unwrap();
    let sent_body = serde_urlencoded::to_string(Aws::form("api://somewhere-else")).unwrap();
    let headers = sigv4_headers(
        aws.sts.base_url(),
        &signed_body,
        aws.credentials(),
        "eu-west-1",
        SystemTime::now(),
    );

    let response = post_form(aws.sts.base_url(), sent_body, headers).await;

    let (status, _, code, _) = sts_error(response).await;
    assert_eq!((status, code.as_str()), (403, "SignatureDoesNotMatch"));
}

#[tokio::test]
async fn signature_scoped_to_another_region_is_refused_and_that_region_recorded() {
    let aws = aws().await;

    let response = aws
        .call_signed(
            &Aws::form(AUDIENCE),
            aws.credentials(),
            "us-east-1",
            SystemTime::now(),
        )
        .await;

    let (status, _, code, _) = sts_error(response).await;
    assert_eq!((status, code.as_str()), (403, "SignatureDoesNotMatch"));
    assert_eq!(aws.sts.requests()[0].region.as_deref(), Some("us-east-1"));
}

#[tokio::test]
async fn credentials_imds_did_not_issue_are_an_invalid_client_token() {
    let aws = aws().await;
    let stranger = AwsCredentials::random(chrono::Duration::hours(1));

    let response = aws
        .call_signed(
            &Aws::form(AUDIENCE),
            &stranger,
            "eu-west-1",
            SystemTime::now(),
        )
        .await;

    let (status, _, code, _) = sts_error(response).await;
    assert_eq!((status, code.as_str()), (403, "InvalidClientTokenId"));
}

#[tokio::test]
async fn right_key_id_with_the_wrong_secret_does_not_match() {
    let aws = aws().await;
    let mut wrong_secret = aws.credentials().clone();
    wrong_secret.secret_access_key = "x".repeat(40);

    let response = aws
        .call_signed(
            &Aws::form(AUDIENCE),
            &wrong_secret,
            "eu-west-1",
            SystemTime::now(),
        )
        .await;

    let (status, _, code, _) = sts_error(response).await;
    assert_eq!((status, code.as_str()), (403, "SignatureDoesNotMatch"));
}

#[tokio::test]
async fn signature_made_twenty_minutes_ago_has_expired() {
    let aws = aws().await;
    let then = SystemTime::now() - Duration::from_secs(20 * 60);

    let response = aws
        .call_signed(&Aws::form(AUDIENCE), aws.credentials(), "eu-west-1", then)
        .await;

    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 403);
    assert_eq!(
        xml_path(&body, &["Error", "Code"]),
        Some("SignatureDoesNotMatch")
    );
    assert!(
        xml_path(&body, &["Error", "Message"])
            .unwrap()
            .contains("expired")
    );
}
