//! Launching a batch of nodes and waiting for their addresses, with back-off
//! within the run's budget.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::CODE_UNFULFILLED;
use crate::config::NodeGroup;
use crate::ec2::{
    Backoff, Deadline, Ec2, Instance, LaunchRequest, MAX_FILTER_VALUES, is_throttling,
    new_client_token,
};

/// Launches up to `count` instances, retrying a shortfall caused by throttling
/// (an HTTP error or an `Errors` entry) with back-off until the deadline.
/// Returns the instance ids and, when fewer than `count` launched, the code
/// that explains it. With `all_or_nothing` a shortfall is never topped up:
/// the caller terminates what came and fails every node.
pub(super) async fn launch_batch(
    ec2: &Ec2,
    group: &NodeGroup,
    count: usize,
    tags: &[(String, String)],
    all_or_nothing: bool,
    deadline: Deadline,
) -> (Vec<String>, Option<String>) {
    let mut ids: Vec<String> = Vec::new();
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    // Kept while a call's fate is unknown, so that its retry cannot launch twice.
    let mut client_token = new_client_token();
    loop {
        let wanted = count - ids.len().min(count);
        let request = LaunchRequest {
            count: wanted,
            tags,
            all_or_nothing,
            client_token: &client_token,
        };
        let code = match ec2.launch(group, request).await {
            Ok(outcome) => {
                client_token = new_client_token();
                for (code, message) in &outcome.errors {
                    tracing::warn!(
                        "EC2 Fleet error for {} - {code}: {message}",
                        group.node_prefix()
                    );
                }
                let got = outcome.instance_ids.len();
                // Said before anything else is done with them: should this
                // run be killed now, the log still tells what it launched
                // (change-state reaps them by their tags).
                if got > 0 {
                    tracing::info!(
                        "CreateFleet launched {got} instance(s) for {}: {}",
                        group.node_prefix(),
                        outcome.instance_ids.join(", ")
                    );
                }
                ids.extend(outcome.instance_ids);
                if got >= wanted {
                    return (ids, None);
                }
                let codes: Vec<&String> = outcome.errors.iter().map(|(c, _)| c).collect();
                let unfulfilled = || CODE_UNFULFILLED.to_string();
                if all_or_nothing && !ids.is_empty() {
                    return (
                        ids,
                        Some(codes.first().map_or_else(unfulfilled, |c| (*c).clone())),
                    );
                }
                match codes.iter().find(|c| !is_throttling(c)) {
                    Some(code) => return (ids, Some((*code).clone())),
                    None if codes.is_empty() => return (ids, Some(CODE_UNFULFILLED.to_string())),
                    None => "RequestLimitExceeded".to_string(),
                }
            }
            Err(error) if error.retryable => {
                tracing::warn!("{error}");
                error.code
            }
            Err(error) => {
                tracing::error!(
                    "Failed to launch nodes for {}: {error}",
                    group.node_prefix()
                );
                return (ids, Some(error.code));
            }
        };
        if !backoff.wait(&deadline).await {
            return (ids, Some(code));
        }
        tracing::info!(
            "Retrying CreateFleet for {} node(s) of {} after {code}",
            count - ids.len(),
            group.node_prefix()
        );
    }
}

/// Describes the instances until each has its private address, with
/// back-off, until the deadline. Returns the instances that have one. While
/// more than 200 are missing they are read from the group's instances (one
/// paginated call a thousand), else by an `instance-id` filter.
pub(super) async fn wait_for_addresses(
    ec2: &Ec2,
    group: &NodeGroup,
    cluster: &str,
    ids: &[String],
    deadline: Deadline,
) -> BTreeMap<String, Instance> {
    let mut ready = BTreeMap::new();
    let mut backoff = Backoff::new(Duration::from_millis(300), Duration::from_secs(3));
    let mut missing: Vec<String> = ids.to_vec();
    while !missing.is_empty() {
        let described = match missing.len() > MAX_FILTER_VALUES {
            true => ec2.find_group_live(group, cluster).await,
            false => ec2.describe(&missing).await,
        };
        match described {
            Ok(instances) => {
                let wanted: BTreeSet<&String> = missing.iter().collect();
                for instance in instances
                    .into_iter()
                    .filter(|i| i.address.is_some() && i.is_live() && wanted.contains(&i.id))
                {
                    ready.insert(instance.id.clone(), instance);
                }
                missing.retain(|id| !ready.contains_key(id));
            }
            Err(error) => tracing::warn!("{error}"),
        }
        if missing.is_empty() || !backoff.wait(&deadline).await {
            break;
        }
    }
    ready
}
