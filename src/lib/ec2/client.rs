use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use crate::config::{Config, Settings};

/// Builds the EC2 client of one (Region, ProfileName) pair: the standard
/// credential chain and endpoint overrides (`AWS_ENDPOINT_URL_EC2`), explicit
/// timeouts (an endpoint that never answers must not hang the run) and
/// standard retries.
pub async fn connect(
    region: &str,
    profile: Option<&str>,
    settings: &Settings,
) -> aws_sdk_ec2::Client {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let attempt_timeout =
        (settings.ec2_timeout / settings.ec2_max_attempts.max(1)).max(Duration::from_secs(1));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5).min(attempt_timeout))
        .read_timeout(attempt_timeout)
        .operation_attempt_timeout(attempt_timeout)
        .operation_timeout(settings.ec2_timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .http_client(http_client)
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(settings.ec2_max_attempts));
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    aws_sdk_ec2::Client::new(&loader.load().await)
}

/// One client per (Region, ProfileName) pair that the configuration uses.
pub struct Clients(BTreeMap<(String, Option<String>), aws_sdk_ec2::Client>);

impl Clients {
    pub async fn for_config(config: &Config) -> Clients {
        let mut clients = BTreeMap::new();
        for group in config.node_groups() {
            let key = group.account_key();
            if let std::collections::btree_map::Entry::Vacant(slot) = clients.entry(key) {
                let (region, profile) = slot.key();
                let client = connect(region, profile.as_deref(), &config.settings).await;
                slot.insert(client);
            }
        }
        Clients(clients)
    }

    pub fn get(&self, key: &(String, Option<String>)) -> Option<&aws_sdk_ec2::Client> {
        self.0.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&(String, Option<String>), &aws_sdk_ec2::Client)> {
        self.0.iter()
    }
}
