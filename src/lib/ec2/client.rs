use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use crate::config::Settings;

/// Builds the EC2 client of one (Region, ProfileName) pair: the standard
/// credential chain and endpoint overrides (`AWS_ENDPOINT_URL_EC2`), explicit
/// timeouts (an endpoint that never answers must not hang the run), and no
/// retries: each attempt is paced, counted and retried by the run's meter.
pub(super) async fn connect(
    region: &str,
    profile: Option<&str>,
    settings: &Settings,
) -> aws_sdk_ec2::Client {
    let attempt_timeout = settings.ec2_timeout;
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5).min(attempt_timeout))
        .read_timeout(attempt_timeout)
        .operation_attempt_timeout(attempt_timeout)
        .operation_timeout(settings.ec2_timeout)
        .build();
    // Pinned, so that an SDK upgrade cannot change retry or timeout defaults unseen.
    let mut loader = aws_config::defaults(BehaviorVersion::v2026_01_12())
        .region(Region::new(region.to_string()))
        .http_client(https_client())
        .timeout_config(timeouts)
        .retry_config(RetryConfig::disabled());
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    aws_sdk_ec2::Client::new(&loader.load().await)
}

/// The certificate authorities on this host were not found: the SDK would
/// panic building its HTTPS client.
#[derive(Debug, thiserror::Error)]
#[error(
    "no CA certificates found on this host (SSL_CERT_FILE, SSL_CERT_DIR or the system store{}): install the ca-certificates package; no AWS call can be made without them",
    first_error.as_deref().map(|e| format!("; {e}")).unwrap_or_default()
)]
pub struct NoCertificates {
    pub first_error: Option<String>,
}

/// Checks that the HTTPS client can be built: the host's store holds at
/// least one certificate authority.
pub fn check_trust_store() -> Result<(), NoCertificates> {
    let found = rustls_native_certs::load_native_certs();
    if found.certs.is_empty() {
        return Err(NoCertificates {
            first_error: found.errors.first().map(|e| e.to_string()),
        });
    }
    Ok(())
}

/// The HTTPS client of every AWS call: rustls with the ring provider.
pub fn https_client() -> aws_sdk_ec2::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}
