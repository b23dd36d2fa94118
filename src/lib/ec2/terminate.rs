use super::{CallCounter, Ec2Error, MAX_IDS_PER_CALL};

/// Terminates instances, at most 1000 ids per call. One unknown id fails a
/// whole call (`InvalidInstanceID.NotFound`): the ids EC2 names are dropped
/// and the rest retried. Returns the ids that could not be terminated.
pub(super) async fn terminate(
    client: &aws_sdk_ec2::Client,
    ids: &[String],
    calls: &CallCounter,
) -> Vec<(Vec<String>, Ec2Error)> {
    let mut failures = Vec::new();
    for batch in ids.chunks(MAX_IDS_PER_CALL) {
        let mut remaining = batch.to_vec();
        for _ in 0..3 {
            if remaining.is_empty() {
                break;
            }
            calls.count("TerminateInstances");
            let result = client
                .terminate_instances()
                .set_instance_ids(Some(remaining.clone()))
                .send()
                .await;
            let error = match result {
                Ok(_) => {
                    remaining.clear();
                    break;
                }
                Err(e) => Ec2Error::from_sdk(
                    "TerminateInstances",
                    format!("of {} instance(s)", remaining.len()),
                    e,
                ),
            };
            let unknown = unknown_ids(&error.message);
            if error.code == "InvalidInstanceID.NotFound" && !unknown.is_empty() {
                tracing::info!("Instances already gone: {}", unknown.join(", "));
                remaining.retain(|id| !unknown.contains(id));
                continue;
            }
            if !error.retryable {
                failures.push((std::mem::take(&mut remaining), error));
                break;
            }
            tracing::warn!("TerminateInstances failed, retrying: {error}");
        }
        if !remaining.is_empty() {
            let error = Ec2Error {
                action: "TerminateInstances",
                context: format!("of {} instance(s)", remaining.len()),
                code: "RetriesExhausted".to_string(),
                message: "gave up after 3 attempts".to_string(),
                request_id: None,
                retryable: false,
            };
            failures.push((remaining, error));
        }
    }
    failures
}

/// The instance ids an EC2 error message names (`The instance IDs 'i-1, i-2' do not exist`).
fn unknown_ids(message: &str) -> Vec<String> {
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|word| {
            word.starts_with("i-")
                && word.len() > 2
                && word[2..].bytes().all(|b| b.is_ascii_hexdigit())
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_ids_in_not_found_messages() {
        let message =
            "InvalidInstanceID.NotFound: The instance IDs 'i-0abc123, i-0def456' do not exist";
        assert_eq!(super::unknown_ids(message), vec!["i-0abc123", "i-0def456"]);
        assert!(super::unknown_ids("The instance ID 'i-xyz' is malformed").is_empty());
    }
}
