use super::describe::describe_by_filters;
use std::time::Duration;

use super::{Backoff, Ec2Error, InstanceState, MAX_IDS_PER_CALL, Meter};

/// Terminates instances, at most 1000 ids per call. One unknown id fails a
/// whole call (`InvalidInstanceID.NotFound`): the ids still live are then
/// looked up (an `instance-id` filter, which never fails on an unknown id)
/// and only those retried. Returns the ids that could not be terminated.
pub(super) async fn terminate(
    client: &aws_sdk_ec2::Client,
    ids: &[String],
    calls: &Meter,
) -> Vec<(Vec<String>, Ec2Error)> {
    let mut failures = Vec::new();
    for batch in ids.chunks(MAX_IDS_PER_CALL) {
        let mut remaining = batch.to_vec();
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
        let deadline = calls.deadline();
        for attempt in 0..3 {
            // A throttled or unanswered call waits before it is tried again.
            if attempt > 0 && !backoff.wait(&deadline).await {
                break;
            }
            if remaining.is_empty() {
                break;
            }
            let what = format!("of {} instance(s)", remaining.len());
            if let Err(error) = calls.start("TerminateInstances", &what).await {
                failures.push((std::mem::take(&mut remaining), error));
                break;
            }
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
            if error.code == "InvalidInstanceID.NotFound" {
                match still_live(client, &remaining, calls).await {
                    Ok(live) => {
                        let gone: Vec<&String> =
                            remaining.iter().filter(|id| !live.contains(id)).collect();
                        let gone: Vec<&str> = gone.iter().map(|id| id.as_str()).collect();
                        tracing::info!("Instances already gone: {}", gone.join(", "));
                        remaining = live;
                        continue;
                    }
                    Err(lookup) => tracing::warn!("{lookup}"),
                }
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
                source: None,
            };
            failures.push((remaining, error));
        }
    }
    failures
}

/// Which of `ids` EC2 still lists as live, in the order given.
async fn still_live(
    client: &aws_sdk_ec2::Client,
    ids: &[String],
    calls: &Meter,
) -> Result<Vec<String>, Ec2Error> {
    let by_id = ("instance-id".to_string(), ids.to_vec());
    let fixed = [("instance-state-name".to_string(), InstanceState::live())];
    let found = describe_by_filters(client, &fixed, Some(&by_id), calls).await?;
    Ok(ids
        .iter()
        .filter(|id| found.iter().any(|i| &i.id == *id))
        .cloned()
        .collect())
}
