//! EC2 through the Rust SDK: clients, fleets, instance look-ups, tags and
//! terminations, each batched to the API's documented limits.

mod client;
mod describe;
mod fleet;
mod handle;
mod inspect;
mod pace;
mod retry;
mod state;
mod tags;
mod terminate;

pub use crate::config::Account;
pub use client::{NoCertificates, check_trust_store, https_client};
pub use describe::Instance;
pub use fleet::{FleetOutcome, LaunchRequest, fleet_request_plan, new_client_token};
pub use handle::{Clients, Ec2};
pub use inspect::{DryRun, InstanceTypeSpec, Subnet, TemplateVersion};
pub use pace::{Bucket, Rate, RateLimits};
pub use retry::{Backoff, Deadline};
pub use state::InstanceState;
pub use tags::{
    CLUSTER_TAG, NODE_GROUP_TAG, NODES_TAG, PARTITION_TAG, launch_tags, node_in_nodes_tags,
    node_list_room, node_tags, nodes_tags,
};

use std::collections::BTreeMap;
use std::sync::Mutex;

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::operation::RequestId;

/// An instance id and the tags it is to get.
pub type TagRequest = (String, Vec<(String, String)>);

/// The most filter values EC2 accepts in one DescribeInstances call.
pub const MAX_FILTER_VALUES: usize = 200;
/// The most instance ids per DescribeInstances or TerminateInstances call.
pub const MAX_IDS_PER_CALL: usize = 1000;

/// Error codes that mean "slow down and try again".
pub fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "RequestLimitExceeded"
            | "Throttling"
            | "ThrottlingException"
            | "RequestThrottled"
            | "TooManyRequestsException"
    )
}

/// Error codes that mean EC2 has no capacity for the request.
pub fn is_capacity(code: &str) -> bool {
    matches!(
        code,
        "InsufficientInstanceCapacity"
            | "InsufficientHostCapacity"
            | "InsufficientReservedInstanceCapacity"
            | "InsufficientCapacity"
            | "UnfulfillableCapacity"
            | "MaxSpotInstanceCountExceeded"
            | "SpotMaxPriceTooLow"
            | "VcpuLimitExceeded"
    )
}

/// One failed EC2 call, with what it was about, printed on one line:
/// `CreateFleet for aws-od- (2 nodes): InvalidLaunchTemplateId.NotFound: <message> (request id …)`.
#[derive(Debug, thiserror::Error)]
#[error("{action} {context}: {code}: {message}{}", request_id.as_deref().map(|id| format!(" (request id {id})")).unwrap_or_default())]
pub struct Ec2Error {
    pub action: &'static str,
    pub context: String,
    /// EC2's error code, or a code of ours (`Timeout`, `Unreachable`) when EC2 gave none.
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    /// Worth another try: throttling, a server error, a timeout or a lost connection.
    pub retryable: bool,
    /// The SDK's error, kept whole for whoever wants its details.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Error codes of server-side failures, worth another try.
fn is_server_error(code: &str) -> bool {
    matches!(
        code,
        "InternalError" | "InternalFailure" | "ServiceUnavailable" | "Unavailable" | "Unknown"
    )
}

/// An error's whole cause chain on one line, bounded.
fn one_line(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(300) {
        Some((end, _)) => format!("{}…", &flat[..end]),
        None => flat,
    }
}

/// An error and its sources as one line of their messages, each source left
/// out when the message before already says it (the SDK's own rendering,
/// `DisplayErrorContext`, ends in a `Debug` dump).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !message.is_empty() && !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    one_line(&text)
}

/// EC2's query protocol puts the request id of an error in the XML body
/// (`<RequestID>…</RequestID>`), where the SDK does not look for it.
fn request_id_in_body(response: &HttpResponse) -> Option<String> {
    let body = std::str::from_utf8(response.body().bytes()?).ok()?;
    let start = body.find("<RequestID>")? + "<RequestID>".len();
    let end = start + body[start..].find('<')?;
    let id = body[start..end].trim();
    (!id.is_empty() && id.len() <= 128).then(|| id.to_string())
}

impl Ec2Error {
    pub fn from_sdk<E>(
        action: &'static str,
        context: impl Into<String>,
        error: SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let (code, message, request_id, retryable) = match &error {
            SdkError::ServiceError(service) => {
                let err = service.err();
                let code = err.code().unwrap_or("Unknown").to_string();
                let message = one_line(err.message().unwrap_or("no message"));
                let request_id = err
                    .meta()
                    .request_id()
                    .map(str::to_string)
                    .or_else(|| request_id_in_body(service.raw()));
                let retryable = is_throttling(&code) || is_server_error(&code);
                (code, message, request_id, retryable)
            }
            other => {
                let (code, retryable) = match other {
                    SdkError::TimeoutError(_) => ("Timeout", true),
                    SdkError::DispatchFailure(_) => ("Unreachable", true),
                    SdkError::ResponseError(_) => ("InvalidResponse", true),
                    _ => ("Unknown", false),
                };
                let message = error_chain(other);
                (code.to_string(), message, None, retryable)
            }
        };
        Ec2Error {
            action,
            context: context.into(),
            code,
            message,
            request_id,
            retryable,
            source: Some(Box::new(error)),
        }
    }
}

/// EC2 requests made by one program run, by action, for the summary line.
#[derive(Debug, Default)]
pub struct CallCounter(Mutex<BTreeMap<&'static str, usize>>);

impl CallCounter {
    pub fn count(&self, action: &'static str) {
        if let Ok(mut map) = self.0.lock() {
            *map.entry(action).or_default() += 1;
        }
    }

    /// `CreateFleet=1 CreateTags=2 …`, or `none`.
    pub fn summary(&self) -> String {
        let map = self.0.lock().map(|m| m.clone()).unwrap_or_default();
        if map.is_empty() {
            return "none".to_string();
        }
        map.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Ec2Error {
    /// Our own code for a call not made because the run's budget would end
    /// before its turn.
    pub const OUT_OF_TIME: &'static str = "OutOfTime";

    pub(crate) fn out_of_time(action: &'static str, context: impl Into<String>) -> Ec2Error {
        Ec2Error {
            action,
            context: context.into(),
            code: Ec2Error::OUT_OF_TIME.to_string(),
            message: "the run's budget ends before the call's turn".to_string(),
            request_id: None,
            retryable: false,
            source: None,
        }
    }
}

/// One account's calls: paced to its buckets, then counted for the run's
/// summary, and never started once the run's budget is spent.
pub(crate) struct Meter {
    calls: std::sync::Arc<CallCounter>,
    pacer: pace::Pacer,
    deadline: Deadline,
}

impl Meter {
    /// Waits for a token of `action`'s bucket, and counts the call; refuses
    /// when the token would come after the run's deadline.
    pub(crate) async fn start(&self, action: &'static str, context: &str) -> Result<(), Ec2Error> {
        self.pacer
            .take(pace::Bucket::of(action), &self.deadline)
            .await
            .map_err(|_| Ec2Error::out_of_time(action, context))?;
        self.calls.count(action);
        Ok(())
    }

    /// The run's deadline, which bounds retries too.
    pub(crate) fn deadline(&self) -> Deadline {
        self.deadline
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::config::http::HttpResponse as Response;
    use aws_sdk_ec2::error::SdkError;
    use aws_sdk_ec2::operation::describe_instances::DescribeInstancesError;

    use super::Ec2Error;

    #[test]
    fn a_timeout_is_one_readable_line_without_a_debug_dump() {
        let cause = std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "operation timeout (all attempts including retries) occurred after 60s",
        );
        let error: SdkError<DescribeInstancesError, Response> = SdkError::timeout_error(cause);
        let ours = Ec2Error::from_sdk("DescribeInstances", "by filters", error);
        assert_eq!(ours.code, "Timeout");
        assert!(ours.retryable);
        assert_eq!(
            ours.message,
            "request has timed out: operation timeout (all attempts including retries) occurred after 60s"
        );
    }
}
