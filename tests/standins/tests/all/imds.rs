//! The IMDSv2 stand-in: session tokens, the TTL echo and the credential document.

use standins::{Imds, ImdsConfig};

use crate::support::http;

const TTL: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN: &str = "x-aws-ec2-metadata-token";

async fn session_token(imds: &Imds) -> String {
    let response = http()
        .put(format!("{}/latest/api/token", imds.base_url()))
        .header(TTL, "21600")
        .send()
        .await
        .expect("imds answers");
    assert_eq!(response.status(), 200);
    response.text().await.expect("token text")
}

#[tokio::test]
async fn token_answer_echoes_the_requested_ttl_header() {
    let imds = Imds::start().await.unwrap();
    let response = http()
        .put(format!("{}/latest/api/token", imds.base_url()))
        .header(TTL, "120")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[TTL], "120");
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert!(!response.text().await.unwrap().is_empty());
}

#[tokio::test]
async fn token_request_without_or_beyond_the_ttl_limit_is_a_bad_request() {
    let imds = Imds::start().await.unwrap();
    let url = format!("{}/latest/api/token", imds.base_url());

    let missing = http().put(&url).send().await.unwrap();
    let too_long = http().put(&url).header(TTL, "21601").send().await.unwrap();

    assert_eq!(missing.status(), 400);
    assert_eq!(too_long.status(), 400);
    assert_eq!(imds.token_requests(), 0);
}

#[tokio::test]
async fn metadata_reads_without_a_valid_session_token_are_unauthorized() {
    let imds = Imds::start().await.unwrap();
    let url = format!(
        "{}/latest/meta-data/iam/security-credentials/",
        imds.base_url()
    );

    let without = http().get(&url).send().await.unwrap();
    let forged = http()
        .get(&url)
        .header(TOKEN, "not-a-token-imds-issued")
        .send()
        .await
        .unwrap();

    assert_eq!(without.status(), 401);
    assert_eq!(forged.status(), 401);
}

#[tokio::test]
async fn role_document_carries_the_credentials_exposed_to_tests() {
    let imds = Imds::start_with(ImdsConfig {
        role_name: "batch-host".to_owned(),
        ..ImdsConfig::default()
    })
    .await
    .unwrap();
    let token = session_token(&imds).await;
    let base = format!(
        "{}/latest/meta-data/iam/security-credentials/",
        imds.base_url()
    );

    let role = http()
        .get(&base)
        .header(TOKEN, &token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let document: serde_json::Value = http()
        .get(format!("{base}{role}"))
        .header(TOKEN, &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let credentials = imds.credentials();
    assert_eq!(role, "batch-host");
    assert_eq!(document["Code"], "Success");
    assert_eq!(document["Type"], "AWS-HMAC");
    assert_eq!(document["AccessKeyId"], credentials.access_key_id.as_str());
    assert_eq!(
        document["SecretAccessKey"],
        credentials.secret_access_key.as_str()
    );
    assert_eq!(document["Token"], credentials.session_token.as_str());
    let expiration = document["Expiration"].as_str().unwrap();
    let expiration = chrono::DateTime::parse_from_rfc3339(expiration).unwrap();
    assert_eq!(expiration.timestamp(), credentials.expiration.timestamp());
    assert!(document["LastUpdated"].as_str().unwrap().ends_with('Z'));
    assert_eq!(imds.credential_reads(), 1);
}

#[tokio::test]
async fn an_unknown_role_name_is_not_found() {
    let imds = Imds::start().await.unwrap();
    let token = session_token(&imds).await;

    let response = http()
        .get(format!(
            "{}/latest/meta-data/iam/security-credentials/someone-else",
            imds.base_url()
        ))
        .header(TOKEN, &token)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 404);
    assert_eq!(imds.credential_reads(), 0);
}

#[tokio::test]
async fn every_request_is_counted_rejected_ones_included() {
    let imds = Imds::start().await.unwrap();
    let token = session_token(&imds).await;
    let list = format!(
        "{}/latest/meta-data/iam/security-credentials/",
        imds.base_url()
    );

    http().get(&list).send().await.unwrap();
    http()
        .get(&list)
        .header(TOKEN, &token)
        .send()
        .await
        .unwrap();
    http()
        .get(format!("{}/latest/meta-data/ami-id", imds.base_url()))
        .send()
        .await
        .unwrap();

    assert_eq!(imds.request_count(), 4);
    assert_eq!(imds.token_requests(), 1);
}

#[tokio::test]
async fn each_start_hands_out_new_credentials_shaped_like_aws_ones() {
    let first = Imds::start().await.unwrap();
    let second = Imds::start().await.unwrap();

    let key_id = &first.credentials().access_key_id;
    assert!(key_id.starts_with("ASIA") && key_id.len() == 20, "{key_id}");
    assert_eq!(first.credentials().secret_access_key.len(), 40);
    assert_ne!(
        first.credentials().access_key_id,
        second.credentials().access_key_id
    );
    assert_ne!(
        first.credentials().secret_access_key,
        second.credentials().secret_access_key
    );
}

#[tokio::test]
async fn debug_output_of_credentials_hides_the_secret_and_the_session_token() {
    let imds = Imds::start().await.unwrap();
    let credentials = imds.credentials();

    let printed = format!("{credentials:?}");

    assert!(printed.contains(&credentials.access_key_id));
    assert!(!printed.contains(&credentials.secret_access_key));
    assert!(!printed.contains(&credentials.session_token));
}
