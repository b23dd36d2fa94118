//! Launching a batch of nodes and waiting for their addresses, with back-off
//! within the run's budget.

use std::collections::{BTreeMap, BTreeSet};

use crate::budget::{Backoff, Deadline};
use crate::code::{Code, Ours};
use crate::config::NodeGroup;
use crate::ec2::{
    Ec2, Instance, LaunchRequest, MAX_FILTER_VALUES, is_throttling, new_client_token,
};

/// What [`launch_batch`] launched, and why not all of it when it fell short.
#[derive(Debug, Default)]
pub(super) struct Launched {
    pub ids: Vec<String>,
    pub shortfall: Option<Code>,
}

impl Launched {
    pub fn none(shortfall: Option<Code>) -> Launched {
        Launched {
            ids: Vec::new(),
            shortfall,
        }
    }
}

/// Launches up to `count` instances. A failed call was already retried by
/// the EC2 handle; what is topped up here is a fleet that came back short
/// with only throttling in its `Errors`, after the back-off and until the
/// deadline. With `all_or_nothing` a shortfall is never topped up: the
/// caller terminates what came and fails every node.
pub(super) async fn launch_batch(
    ec2: &Ec2,
    group: &NodeGroup,
    count: usize,
    tags: &[(String, String)],
    all_or_nothing: bool,
    deadline: Deadline,
) -> Launched {
    let mut launched = Launched::default();
    let mut backoff = Backoff::new();
    loop {
        let wanted = count - launched.ids.len().min(count);
        // One token for all of one call's attempts, so that a retry after a
        // lost answer cannot launch twice.
        let client_token = new_client_token();
        let request = LaunchRequest {
            count: wanted,
            tags,
            all_or_nothing,
            client_token: &client_token,
        };
        let outcome = match ec2.launch(group, request).await {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::error!(
                    "Failed to launch nodes for {}: {error}",
                    group.node_prefix()
                );
                launched.shortfall = Some(error.code);
                return launched;
            }
        };
        for (code, message) in &outcome.errors {
            tracing::warn!(
                "EC2 Fleet error for {} - {code}: {message}",
                group.node_prefix()
            );
        }
        let got = outcome.instance_ids.len();
        // Said before anything else is done with them: should this run be
        // killed now, the log still tells what it launched (change-state
        // reaps them by their tags).
        if got > 0 {
            tracing::info!(
                "CreateFleet launched {got} instance(s) for {}: {}",
                group.node_prefix(),
                outcome.instance_ids.join(", ")
            );
        }
        launched.ids.extend(outcome.instance_ids);
        if got >= wanted {
            return launched;
        }
        let codes: Vec<&String> = outcome.errors.iter().map(|(c, _)| c).collect();
        let shortfall = match codes.iter().find(|c| !is_throttling(c)).or(codes.first()) {
            Some(code) => Code::Ec2((*code).clone()),
            None => Code::from(Ours::UnfulfilledCapacity),
        };
        let throttled_only = !codes.is_empty() && codes.iter().all(|c| is_throttling(c));
        // An all-or-nothing fleet that launched some came back whole or not at all.
        let partial_all_or_nothing = all_or_nothing && !launched.ids.is_empty();
        let top_up = throttled_only && !partial_all_or_nothing;
        if !top_up || !backoff.wait(&deadline).await {
            launched.shortfall = Some(shortfall);
            return launched;
        }
        tracing::info!(
            "Launching {} more node(s) of {} after {shortfall}",
            count - launched.ids.len(),
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
    let mut backoff = Backoff::new();
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
