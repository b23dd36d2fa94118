//! EC2 through the Rust SDK: clients, fleets, instance look-ups, tags and
//! terminations, each batched to the API's documented limits.

mod client;
mod describe;
mod fleet;
mod retry;
mod tags;
mod terminate;

pub use client::{Clients, connect};
pub use describe::{
    Instance, InstanceFilter, carries_exactly, describe_by_filters, describe_ids, describe_tagged,
    live_states,
};
pub use fleet::{FleetOutcome, create_fleet, fleet_request_plan};
pub use retry::{Backoff, Deadline};
pub use tags::{create_tags_concurrently, launch_tags, node_tags};
pub use terminate::terminate;

use std::collections::BTreeMap;
use std::sync::Mutex;

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// The most filter values EC2 accepts in one DescribeInstances call.
pub const MAX_FILTER_VALUES: usize = 200;
/// The most instance ids per DescribeInstances or TerminateInstances call.
pub const MAX_IDS_PER_CALL: usize = 1000;

/// Refuses a value that EC2 would read as a pattern in a filter: `*` and `?`
/// are wildcards there and `\\` escapes them, so `prod*` would also match `prod2`.
pub fn check_filter_literal(value: &str) -> Result<(), String> {
    match value.chars().find(|c| matches!(c, '*' | '?' | '\\')) {
        Some(c) => Err(format!(
            "must not hold {c:?}: EC2 filters read it as a wildcard or an escape, so the value would match other clusters' instances"
        )),
        None if value.contains(char::is_control) => {
            Err("must not hold control characters".to_string())
        }
        None => Ok(()),
    }
}

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

/// One failed EC2 call, with what it was about.
#[derive(Debug, thiserror::Error)]
#[error("{action} {context}: {message}")]
pub struct Ec2Error {
    pub action: &'static str,
    pub context: String,
    /// EC2's error code, or a code of ours (`Timeout`, `Unreachable`) when EC2 gave none.
    pub code: String,
    pub message: String,
    /// Worth another try: throttling, a server error, a timeout or a lost connection.
    pub retryable: bool,
}

impl Ec2Error {
    pub fn from_sdk<E, R>(
        action: &'static str,
        context: impl Into<String>,
        error: SdkError<E, R>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let message = DisplayErrorContext(&error).to_string();
        let (code, retryable) = match &error {
            SdkError::TimeoutError(_) => ("Timeout".to_string(), true),
            SdkError::DispatchFailure(_) => ("Unreachable".to_string(), true),
            SdkError::ResponseError(_) => ("InvalidResponse".to_string(), true),
            SdkError::ServiceError(service) => {
                let code = service.err().code().unwrap_or("Unknown").to_string();
                let server = matches!(
                    code.as_str(),
                    "InternalError"
                        | "InternalFailure"
                        | "ServiceUnavailable"
                        | "Unavailable"
                        | "Unknown"
                );
                let retryable = is_throttling(&code) || server;
                (code, retryable)
            }
            _ => ("Unknown".to_string(), false),
        };
        Ec2Error {
            action,
            context: context.into(),
            code,
            message,
            retryable,
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

    pub fn get(&self, action: &str) -> usize {
        self.0
            .lock()
            .map(|m| m.get(action).copied().unwrap_or(0))
            .unwrap_or(0)
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
