//! The real AWS SDK against the IMDS and STS stand-ins: the credential chain's IMDSv2 calls,
//! the SDK's SigV4 signature and its XML parsing all have to agree with the stand-ins.

use aws_config::BehaviorVersion;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_sdk_sts::config::Region;
use standins::{StsMode, TOKEN_EXCHANGE_AUDIENCE};

use crate::support::{Aws, aws, verified_claims};

async fn sdk_client(aws: &Aws) -> aws_sdk_sts::Client {
    let imds_client = aws_config::imds::Client::builder()
        .endpoint(aws.imds.base_url())
        .expect("endpoint parses")
        .build();
    let credentials = ImdsCredentialsProvider::builder()
        .imds_client(imds_client)
        .build();
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(aws.sts.region().to_owned()))
        .credentials_provider(credentials)
        .endpoint_url(aws.sts.base_url())
        .load()
        .await;
    aws_sdk_sts::Client::new(&config)
}

#[tokio::test]
async fn the_sdk_gets_imds_credentials_and_a_web_identity_token_from_sts() {
    let aws = aws().await;
    let client = sdk_client(&aws).await;

    let output = client
        .get_web_identity_token()
        .audience(TOKEN_EXCHANGE_AUDIENCE)
        .signing_algorithm("RS256")
        .duration_seconds(300)
        .send()
        .await
        .expect("the SDK accepts the stand-ins' answers");

    let token = output.web_identity_token().expect("token");
    let claims = verified_claims(token, &aws.sts.jwks());
    assert_eq!(claims["sub"], aws.sts.role_arn());
    let expiration = output.expiration().expect("expiration");
    assert_eq!(Some(expiration.secs()), claims["exp"].as_i64());
    let record = &aws.sts.requests()[0];
    assert_eq!(
        record.access_key_id.as_deref(),
        Some(aws.imds.credentials().access_key_id.as_str())
    );
    assert_eq!(record.region.as_deref(), Some("eu-west-1"));
    assert!(aws.imds.token_requests() >= 1);
    assert_eq!(aws.imds.credential_reads(), 1);
}

#[tokio::test]
async fn the_sdk_maps_federation_disabled_to_its_modeled_exception() {
    let aws = aws().await;
    aws.sts.set_mode(StsMode::FederationDisabled);
    let client = sdk_client(&aws).await;

    let error = client
        .get_web_identity_token()
        .audience(TOKEN_EXCHANGE_AUDIENCE)
        .signing_algorithm("RS256")
        .send()
        .await
        .expect_err("federation is disabled");

    let service_error = error.into_service_error();
    assert!(
        service_error.is_outbound_web_identity_federation_disabled_exception(),
        "{service_error:?}"
    );
}

#[tokio::test]
async fn the_sdk_maps_access_denied_to_a_generic_error_with_its_code() {
    let aws = aws().await;
    aws.sts.set_mode(StsMode::AccessDenied);
    let client = sdk_client(&aws).await;

    let error = client
        .get_web_identity_token()
        .audience(TOKEN_EXCHANGE_AUDIENCE)
        .signing_algorithm("RS256")
        .send()
        .await
        .expect_err("access is denied");

    use aws_sdk_sts::error::ProvideErrorMetadata as _;
    assert_eq!(error.code(), Some("AccessDenied"));
}
