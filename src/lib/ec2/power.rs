//! Starting and stopping instances: a warm pool's moves.

use super::{Ec2Error, InstanceState, MAX_IDS_PER_CALL, Meter};

/// An instance StartInstances (or StopInstances) accepted, and the state
/// EC2 says it was in: an instance that was not `stopped` was not the
/// pool's to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub id: String,
    pub previous: InstanceState,
}

/// Which way an instance is moved.
#[derive(Debug, Clone, Copy)]
pub(super) enum Move {
    Start,
    Stop,
}

/// Starts or stops `ids`, 1000 a call, each call retried as every call is.
/// One id EC2 refuses fails its whole call: those ids come back with the error.
pub(super) async fn power(
    client: &aws_sdk_ec2::Client,
    ids: &[String],
    way: Move,
    calls: &Meter,
) -> (Vec<Started>, Vec<(Vec<String>, Ec2Error)>) {
    let mut moved = Vec::new();
    let mut failures = Vec::new();
    for batch in ids.chunks(MAX_IDS_PER_CALL) {
        let what = format!("of {} instance(s)", batch.len());
        let changes = match way {
            Move::Start => {
                let request = client
                    .start_instances()
                    .set_instance_ids(Some(batch.to_vec()));
                calls
                    .call("StartInstances", &what, || request.clone().send())
                    .await
                    .map(|out| out.starting_instances().to_vec())
            }
            Move::Stop => {
                let request = client
                    .stop_instances()
                    .set_instance_ids(Some(batch.to_vec()));
                calls
                    .call("StopInstances", &what, || request.clone().send())
                    .await
                    .map(|out| out.stopping_instances().to_vec())
            }
        };
        match changes {
            Ok(changes) => moved.extend(changes.iter().filter_map(|change| {
                Some(Started {
                    id: change.instance_id()?.to_string(),
                    previous: change
                        .previous_state()
                        .and_then(|s| s.name())
                        .map_or(InstanceState::Unknown, |n| InstanceState::parse(n.as_str())),
                })
            })),
            Err(error) => failures.push((batch.to_vec(), error)),
        }
    }
    (moved, failures)
}
