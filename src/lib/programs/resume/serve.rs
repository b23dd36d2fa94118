//! Serving one node group: look-up, launch, addresses, tags. Returns the
//! nodes served with their instances and the nodes failed with a code.

use std::collections::{BTreeMap, BTreeSet};

use super::CODE_NO_ADDRESS;
use super::launch::{launch_batch, wait_for_addresses};
use crate::config::{NodeGroup, Settings};
use crate::ec2::{
    self, CLUSTER_TAG, Deadline, Ec2, Ec2Error, Instance, InstanceState, NODE_GROUP_TAG,
    PARTITION_TAG,
};
use crate::names::NodeName;
use crate::slurm::NodeAddress;

/// A node with the instance that serves it.
#[derive(Debug)]
pub(super) struct Served {
    pub address: NodeAddress,
    pub instance_id: String,
    /// Launched by this run (else found running from an earlier one).
    pub launched_now: bool,
}

/// A node that got no instance, with the code that says why.
#[derive(Debug)]
pub(super) struct Failed {
    pub node: String,
    pub code: String,
}

/// What serving one node group gave.
#[derive(Debug, Default)]
pub(super) struct GroupOutcome {
    pub served: Vec<Served>,
    pub failed: Vec<Failed>,
    /// Instances that serve no node: duplicates, surplus, unaddressed, untagged.
    pub to_terminate: Vec<String>,
    pub launched: usize,
    pub reused: usize,
}

impl GroupOutcome {
    fn fail(&mut self, nodes: impl IntoIterator<Item = String>, code: &str) {
        self.failed.extend(nodes.into_iter().map(|node| Failed {
            node,
            code: code.to_string(),
        }));
    }
}

/// The nodes of one CreateFleet and the instances it gave them.
struct Batch {
    nodes: Vec<String>,
    ids: Vec<String>,
}

/// A node and the instance it gets, described with its address.
struct Assignment {
    node: String,
    instance: Instance,
    launched_now: bool,
}

pub(super) async fn serve_group(
    ec2: &Ec2,
    group: &NodeGroup,
    nodes: &[NodeName],
    cluster: &str,
    settings: &Settings,
    deadline: Deadline,
) -> GroupOutcome {
    let mut outcome = GroupOutcome::default();
    let wanted: BTreeSet<String> = nodes.iter().map(NodeName::to_string).collect();
    let existing = match find_live_instances(ec2, group, cluster).await {
        Ok(instances) => instances,
        Err(error) => {
            let prefix = group.node_prefix();
            tracing::error!("Cannot look for existing instances of {prefix}: {error}");
            outcome.fail(wanted, &error.code);
            return outcome;
        }
    };
    let (reused, duplicates) = pick_existing(&wanted, existing);
    outcome.to_terminate.extend(duplicates);
    for (node, instance) in &reused {
        tracing::info!(
            "Node {node} already has instance {} ({}): not launching another",
            instance.id,
            instance.state
        );
    }
    outcome.reused = reused.len();
    let to_launch: Vec<String> = nodes
        .iter()
        .map(NodeName::to_string)
        .filter(|n| !reused.contains_key(n))
        .collect();
    let batches = launch(
        ec2,
        group,
        &to_launch,
        cluster,
        settings,
        deadline,
        &mut outcome,
    )
    .await;
    let assignments = assign(ec2, reused, batches, deadline, &mut outcome).await;
    tag_and_serve(ec2, group, assignments, settings, deadline, &mut outcome).await;
    outcome
}

/// Launches `to_launch` in batches of `FleetBatchSize`; a batch's shortfall
/// fails the tail of its nodes, and a surplus is marked for termination.
async fn launch(
    ec2: &Ec2,
    group: &NodeGroup,
    to_launch: &[String],
    cluster: &str,
    settings: &Settings,
    deadline: Deadline,
    outcome: &mut GroupOutcome,
) -> Vec<Batch> {
    let launch_tags = ec2::launch_tags(group, cluster);
    let mut batches = Vec::new();
    let mut queue = to_launch;
    for size in ec2::fleet_request_plan(to_launch.len(), settings.fleet_batch_size) {
        let (batch, rest) = queue.split_at(size);
        queue = rest;
        let mut tags = launch_tags.clone();
        // A one-node batch can carry its Name from launch: its node is known.
        if let [only] = batch {
            tags.push(("Name".to_string(), only.clone()));
        }
        let (ids, shortfall_code) = launch_batch(ec2, group, size, &tags, deadline).await;
        // Nodes are served in id order; the tail of the batch waits for capacity.
        let served = ids.len().min(size);
        if let Some(code) = shortfall_code {
            outcome.fail(batch[served..].iter().cloned(), &code);
        }
        outcome.to_terminate.extend(ids.iter().skip(size).cloned());
        batches.push(Batch {
            nodes: batch[..served].to_vec(),
            ids: ids.into_iter().take(size).collect(),
        });
    }
    batches
}

/// Describes every instance until it has an address, then gives each node
/// its instance: reused ones keep their node, new ones go in a stable order.
async fn assign(
    ec2: &Ec2,
    reused: BTreeMap<String, Instance>,
    batches: Vec<Batch>,
    deadline: Deadline,
    outcome: &mut GroupOutcome,
) -> Vec<Assignment> {
    let mut all_ids: Vec<String> = batches.iter().flat_map(|b| b.ids.iter().cloned()).collect();
    all_ids.extend(reused.values().map(|i| i.id.clone()));
    let described = wait_for_addresses(ec2, &all_ids, deadline).await;
    let mut assignments = Vec::new();
    for (node, instance) in reused {
        match described.get(&instance.id) {
            Some(instance) => assignments.push(Assignment {
                node,
                instance: instance.clone(),
                launched_now: false,
            }),
            None => outcome.fail([node], CODE_NO_ADDRESS),
        }
    }
    for Batch { nodes, ids } in batches {
        let mut ready: Vec<&Instance> = ids.iter().filter_map(|id| described.get(id)).collect();
        ready.sort_by(|a, b| a.id.cmp(&b.id));
        for id in ids.iter().filter(|id| !described.contains_key(*id)) {
            tracing::error!(
                "Instance {id} has no private address within the budget: terminating it"
            );
            outcome.to_terminate.push(id.clone());
        }
        let mut nodes = nodes.into_iter();
        for instance in ready {
            if let Some(node) = nodes.next() {
                let instance = instance.clone();
                assignments.push(Assignment {
                    node,
                    instance,
                    launched_now: true,
                });
            }
        }
        outcome.fail(nodes, CODE_NO_ADDRESS);
    }
    assignments
}

/// Tags the instances that lack some of their tags (`Name` and the
/// substituted custom tags); an instance that cannot be tagged fails its node.
async fn tag_and_serve(
    ec2: &Ec2,
    group: &NodeGroup,
    assignments: Vec<Assignment>,
    settings: &Settings,
    deadline: Deadline,
    outcome: &mut GroupOutcome,
) {
    let requests: Vec<(String, Vec<(String, String)>)> = assignments
        .iter()
        .filter_map(|a| {
            let address = a.instance.address.clone().unwrap_or_default();
            let hostname = a.instance.hostname().unwrap_or_default();
            let tags = ec2::node_tags(group, &a.node, &address, &hostname);
            let missing = tags
                .iter()
                .any(|(k, v)| a.instance.tag(k) != Some(v.as_str()));
            missing.then(|| (a.instance.id.clone(), tags))
        })
        .collect();
    let failures = ec2
        .tag_each(requests, settings.tag_concurrency, deadline)
        .await;
    let untagged: BTreeMap<String, Ec2Error> = failures.into_iter().collect();
    for Assignment {
        node,
        instance,
        launched_now,
    } in assignments
    {
        if let Some(error) = untagged.get(&instance.id) {
            tracing::error!("Failed to tag node {node} ({}): {error}", instance.id);
            outcome.to_terminate.push(instance.id.clone());
            outcome.fail([node], &error.code);
            continue;
        }
        if launched_now {
            outcome.launched += 1;
        }
        let address = NodeAddress {
            node,
            hostname: instance.hostname().unwrap_or_default(),
            address: instance.address.clone().unwrap_or_default(),
        };
        outcome.served.push(Served {
            address,
            instance_id: instance.id,
            launched_now,
        });
    }
}

/// This cluster's pending or running instances of `group`, found by the
/// cluster, partition and node-group tags (names are matched locally).
async fn find_live_instances(
    ec2: &Ec2,
    group: &NodeGroup,
    cluster: &str,
) -> Result<Vec<Instance>, Ec2Error> {
    let tags = [
        (CLUSTER_TAG, cluster),
        (PARTITION_TAG, group.partition.as_str()),
        (NODE_GROUP_TAG, group.name.as_str()),
    ];
    let live = vec![
        InstanceState::Pending.as_str().to_string(),
        InstanceState::Running.as_str().to_string(),
    ];
    ec2.find(&tags, Some(live), None).await
}

/// For each wanted node, the live instance already named for it (running
/// before pending, then the oldest), and every other instance with the same
/// name, to be terminated.
fn pick_existing(
    wanted: &BTreeSet<String>,
    instances: Vec<Instance>,
) -> (BTreeMap<String, Instance>, Vec<String>) {
    let mut by_node: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
    for instance in instances {
        if let Some(name) = instance.tag("Name").filter(|n| wanted.contains(*n)) {
            by_node.entry(name.to_string()).or_default().push(instance);
        }
    }
    let mut keep = BTreeMap::new();
    let mut extra = Vec::new();
    for (node, mut list) in by_node {
        list.sort_by_key(|i| {
            (
                i.state != InstanceState::Running,
                i.launch_time.unwrap_or(i64::MAX),
                i.id.clone(),
            )
        });
        let mut list = list.into_iter();
        if let Some(first) = list.next() {
            keep.insert(node.clone(), first);
        }
        for duplicate in list {
            let id = &duplicate.id;
            tracing::warn!("Node {node} has a second instance {id}: terminating it");
            extra.push(duplicate.id);
        }
    }
    (keep, extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, name: &str, state: &str, launch: i64) -> Instance {
        Instance {
            id: id.into(),
            state: InstanceState::parse(state),
            address: Some("10.0.0.1".into()),
            private_dns_name: None,
            tags: vec![("Name".into(), name.into())],
            launch_time: Some(launch),
        }
    }

    #[test]
    fn keeps_one_instance_per_node_and_terminates_the_rest() {
        let wanted: BTreeSet<String> = ["aws-a-0", "aws-a-1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let instances = vec![
            instance("i-2", "aws-a-0", "pending", 5),
            instance("i-1", "aws-a-0", "running", 9),
            instance("i-3", "aws-a-0", "running", 7),
            instance("i-4", "aws-a-7", "running", 1),
        ];
        let (keep, extra) = pick_existing(&wanted, instances);
        assert_eq!(keep.len(), 1);
        assert_eq!(keep["aws-a-0"].id, "i-3");
        assert_eq!(extra, vec!["i-1", "i-2"]);
    }
}
