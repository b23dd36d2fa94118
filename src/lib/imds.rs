//! This instance's metadata over IMDSv2: the paths get-nodename (and any
//! program on a compute node) reads, owned in one place. The endpoint
//! override `AWS_EC2_METADATA_SERVICE_ENDPOINT` applies.

use std::time::Duration;

use aws_config::imds::client::error::ImdsError;
use aws_config::provider_config::ProviderConfig;

const INSTANCE_ID: &str = "/latest/meta-data/instance-id";
const INSTANCE_TYPE: &str = "/latest/meta-data/instance-type";
const REGION: &str = "/latest/meta-data/placement/region";
const LAUNCH_INDEX: &str = "/latest/meta-data/ami-launch-index";
/// The instance's tags, one path per key, when its launch template exposes them.
const TAGS: &str = "/latest/meta-data/tags/instance";
/// A Spot interruption notice: `{"action": "terminate", "time": "…Z"}`, two minutes ahead.
const SPOT_INSTANCE_ACTION: &str = "/latest/meta-data/spot/instance-action";
/// A rebalance recommendation: `{"noticeTime": "…Z"}`.
const REBALANCE: &str = "/latest/meta-data/events/recommendations/rebalance";
/// Scheduled events: `[{"Code": "instance-stop", "NotBefore": "21 Jan 2019 09:00:43 GMT", "State": "active", …}]`.
const SCHEDULED_EVENTS: &str = "/latest/meta-data/events/maintenance/scheduled";
/// The most a notice may hold: more is not a notice.
const MAX_NOTICE_BYTES: usize = 64 * 1024;

/// What the metadata says of EC2's plans for this instance, as served:
/// each path's text, None where EC2 has nothing (404).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawNotices {
    pub instance_action: Option<String>,
    pub rebalance: Option<String>,
    pub scheduled_events: Option<String>,
}

/// A metadata path that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path} from instance metadata (IMDSv2): {message}")]
pub struct MetadataError {
    pub path: String,
    pub message: String,
}

/// The instance metadata service of the instance this runs on.
pub struct InstanceMetadata {
    client: aws_config::imds::Client,
}

impl Default for InstanceMetadata {
    fn default() -> Self {
        InstanceMetadata::new()
    }
}

impl InstanceMetadata {
    /// An IMDSv2-only client with short timeouts and no retries of its own:
    /// its callers retry, under the run's deadline.
    pub fn new() -> InstanceMetadata {
        let client = aws_config::imds::Client::builder()
            .configure(&ProviderConfig::default().with_http_client(crate::ec2::https_client()))
            .connect_timeout(Duration::from_secs(1))
            .read_timeout(Duration::from_secs(2))
            .max_attempts(1)
            .build();
        InstanceMetadata { client }
    }

    pub async fn instance_id(&self) -> Result<String, MetadataError> {
        self.get(INSTANCE_ID).await
    }

    pub async fn instance_type(&self) -> Result<String, MetadataError> {
        self.get(INSTANCE_TYPE).await
    }

    pub async fn region(&self) -> Result<String, MetadataError> {
        self.get(REGION).await
    }

    /// The instance's place in its reservation (`ami-launch-index`).
    pub async fn launch_index(&self) -> Result<usize, MetadataError> {
        let text = self.get(LAUNCH_INDEX).await?;
        text.parse().map_err(|_| MetadataError {
            path: LAUNCH_INDEX.to_string(),
            message: format!("{text:?} is not a number"),
        })
    }

    /// Whether the launch template exposes tags in metadata.
    pub async fn tags_exposed(&self) -> Result<bool, MetadataError> {
        match self.client.get(TAGS).await {
            Ok(_) => Ok(true),
            Err(error) if is_not_found(&error) => Ok(false),
            Err(error) => Err(MetadataError::of(TAGS, &error)),
        }
    }

    /// The value of the tag `key`, trimmed; None when the instance has no such tag.
    pub async fn tag(&self, key: &str) -> Result<Option<String>, MetadataError> {
        let path = format!("{TAGS}/{key}");
        match self.client.get(&path).await {
            Ok(value) => Ok(Some(value.as_ref().trim().to_string())),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(MetadataError::of(&path, &error)),
        }
    }

    /// The three notice paths.
    pub async fn notices(&self) -> Result<RawNotices, MetadataError> {
        Ok(RawNotices {
            instance_action: self.optional(SPOT_INSTANCE_ACTION).await?,
            rebalance: self.optional(REBALANCE).await?,
            scheduled_events: self.optional(SCHEDULED_EVENTS).await?,
        })
    }

    /// A path's text, None on 404; a text beyond the notice limit is an error.
    async fn optional(&self, path: &str) -> Result<Option<String>, MetadataError> {
        match self.client.get(path).await {
            Ok(value) if value.as_ref().len() > MAX_NOTICE_BYTES => Err(MetadataError {
                path: path.to_string(),
                message: format!("more than {MAX_NOTICE_BYTES} bytes"),
            }),
            Ok(value) => Ok(Some(value.as_ref().trim().to_string())),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(MetadataError::of(path, &error)),
        }
    }

    async fn get(&self, path: &str) -> Result<String, MetadataError> {
        self.client
            .get(path)
            .await
            .map(|value| value.as_ref().trim().to_string())
            .map_err(|error| MetadataError::of(path, &error))
    }
}

impl MetadataError {
    fn of(path: &str, error: &ImdsError) -> MetadataError {
        let message = match error {
            ImdsError::ErrorResponse(response) => {
                format!("HTTP {}", response.response().status().as_u16())
            }
            other => crate::ec2::error_chain(other),
        };
        MetadataError {
            path: path.to_string(),
            message,
        }
    }
}

fn is_not_found(error: &ImdsError) -> bool {
    matches!(error, ImdsError::ErrorResponse(r) if r.response().status().as_u16() == 404)
}
