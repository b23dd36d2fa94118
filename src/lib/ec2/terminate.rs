use super::describe::describe_by_filters;
use super::{Ec2Error, INSTANCE_NOT_FOUND, InstanceState, MAX_IDS_PER_CALL, Meter};

/// Terminates instances, at most 1000 ids per call, each call retried as
/// every call is. One unknown id fails a whole call
/// (`InvalidInstanceID.NotFound`): the ids still live are then looked up (an
/// `instance-id` filter, which never fails on an unknown id) and only those
/// asked again. Returns the ids that could not be terminated.
pub(super) async fn terminate(
    client: &aws_sdk_ec2::Client,
    ids: &[String],
    calls: &Meter,
) -> Vec<(Vec<String>, Ec2Error)> {
    let mut failures = Vec::new();
    for batch in ids.chunks(MAX_IDS_PER_CALL) {
        let mut remaining = batch.to_vec();
        for narrowed in [false, true] {
            if remaining.is_empty() {
                break;
            }
            let what = format!("of {} instance(s)", remaining.len());
            let request = client
                .terminate_instances()
                .set_instance_ids(Some(remaining.clone()));
            let error = match calls
                .call("TerminateInstances", &what, || request.clone().send())
                .await
            {
                Ok(_) => break,
                Err(error) => error,
            };
            if error.code.is(INSTANCE_NOT_FOUND) && !narrowed {
                match still_live(client, &remaining, calls).await {
                    Ok(live) => {
                        let gone: Vec<&str> = remaining
                            .iter()
                            .filter(|id| !live.contains(id))
                            .map(String::as_str)
                            .collect();
                        tracing::info!("Instances already gone: {}", gone.join(", "));
                        remaining = live;
                        continue;
                    }
                    Err(lookup) => tracing::warn!("{lookup}"),
                }
            }
            failures.push((remaining, error));
            break;
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
