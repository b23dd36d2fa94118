//! One failed EC2 call, as one line an administrator can read, and which
//! failures are worth another try.

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::operation::RequestId;

use crate::code::{Code, Ours};

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
    /// EC2's error code, or one of ours (`Timeout`, `Unreachable`) when EC2 gave none.
    pub code: Code,
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
                let code = match err.code() {
                    Some(code) => Code::Ec2(code.to_string()),
                    None => Code::from(Ours::Unknown),
                };
                let message = one_line(err.message().unwrap_or("no message"));
                let request_id = err
                    .meta()
                    .request_id()
                    .map(str::to_string)
                    .or_else(|| request_id_in_body(service.raw()));
                let retryable = is_throttling(code.as_str()) || is_server_error(code.as_str());
                (code, message, request_id, retryable)
            }
            other => {
                let (code, retryable) = match other {
                    SdkError::TimeoutError(_) => (Ours::Timeout, true),
                    SdkError::DispatchFailure(_) => (Ours::Unreachable, true),
                    SdkError::ResponseError(_) => (Ours::InvalidResponse, true),
                    _ => (Ours::Unknown, false),
                };
                let message = error_chain(other);
                (Code::from(code), message, None, retryable)
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

impl Ec2Error {
    /// A call not made because the run's budget would end before its turn.
    pub(crate) fn out_of_time(action: &'static str, context: impl Into<String>) -> Ec2Error {
        Ec2Error {
            action,
            context: context.into(),
            code: Code::from(Ours::OutOfTime),
            message: "the run's budget ends before the call's turn".to_string(),
            request_id: None,
            retryable: false,
            source: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::config::http::HttpResponse as Response;
    use aws_sdk_ec2::error::SdkError;
    use aws_sdk_ec2::operation::describe_instances::DescribeInstancesError;

    use super::Ec2Error;
    use crate::code::{Code, Ours};

    #[test]
    fn a_timeout_is_one_readable_line_without_a_debug_dump() {
        let cause = std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "operation timeout (all attempts including retries) occurred after 60s",
        );
        let error: SdkError<DescribeInstancesError, Response> = SdkError::timeout_error(cause);
        let ours = Ec2Error::from_sdk("DescribeInstances", "by filters", error);
        assert_eq!(ours.code, Code::from(Ours::Timeout));
        assert!(ours.retryable);
        assert_eq!(
            ours.message,
            "request has timed out: operation timeout (all attempts including retries) occurred after 60s"
        );
    }
}
