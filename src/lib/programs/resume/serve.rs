//! Serving one node group: look-up, launch, addresses, tags. Returns the
//! nodes served with their instances and the nodes failed with a code.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;

use super::jobs::Jobs;
use super::launch::Launched;
use super::launch::{launch_batch, wait_for_addresses};
use crate::budget::Deadline;
use crate::code::{Code, Ours};
use crate::config::{JobLevelScaling, NodeGroup, Settings};
use crate::ec2::{self, Ec2, Ec2Error, Instance, InstanceState};
use crate::names::NodeName;
use crate::slurm::NodeAddress;

/// A node with the instance that serves it.
#[derive(Debug)]
pub(super) struct Served {
    pub node: NodeName,
    /// The node's name, address and host name, as Slurm is told them.
    pub address: NodeAddress,
    pub instance_id: String,
    pub instance_type: String,
    /// Launched or started by this run (else found running from an earlier one).
    pub launched_now: bool,
    /// Started from the group's warm pool.
    pub from_pool: bool,
}

/// A node that got no instance, with the code that says why.
#[derive(Debug)]
pub(super) struct Failed {
    pub node: NodeName,
    pub code: Code,
}

/// What serving one node group gave.
#[derive(Debug, Default)]
pub(super) struct GroupOutcome {
    pub served: Vec<Served>,
    pub failed: Vec<Failed>,
    /// Instances that serve no node: duplicates, surplus, unaddressed, untagged.
    pub to_terminate: Vec<String>,
    /// Tags for after Slurm has the addresses (`Name`, the custom tags with
    /// placeholders, a node's job): instances that the tag of their
    /// reservation already names.
    pub deferred_tags: Vec<crate::ec2::TagRequest>,
    pub launched: usize,
    pub reused: usize,
    /// Nodes served by an instance started from the warm pool.
    pub from_pool: usize,
}

impl GroupOutcome {
    fn fail(&mut self, nodes: impl IntoIterator<Item = NodeName>, code: impl Into<Code>) {
        let code = code.into();
        self.failed.extend(nodes.into_iter().map(|node| Failed {
            node,
            code: code.clone(),
        }));
    }
}

/// The most nodes EC2 launches all-or-nothing in one fleet (`MinTargetCapacity`).
const MAX_ALL_OR_NOTHING: usize = 1000;

/// The nodes of one CreateFleet and the instances it gave them.
struct Batch {
    nodes: Vec<NodeName>,
    ids: Vec<String>,
}

/// A node and the instance it gets, described with its address.
struct Assignment {
    node: NodeName,
    instance: Instance,
    launched_now: bool,
    /// Its tags already tell its node (an earlier run's instance, or one its
    /// reservation's `slurm-ec2:nodes` tag names): other tags can wait.
    identified: bool,
}

/// Serving one node group in one run: what every step needs.
pub(super) struct GroupRun<'a> {
    pub ec2: &'a Ec2,
    pub group: &'a NodeGroup,
    pub cluster: &'a str,
    pub settings: &'a Settings,
    pub jobs: &'a Jobs,
    pub deadline: Deadline,
    /// Where the warm pool's lock and claims are (`StateDirectory`).
    pub state_dir: &'a std::path::Path,
}

/// The nodes of one all-or-nothing job in this group.
struct JobSet {
    job_id: u64,
    nodes: Vec<NodeName>,
}

impl GroupRun<'_> {
    pub(super) async fn serve(&self, nodes: &[NodeName]) -> GroupOutcome {
        let mut outcome = GroupOutcome::default();
        let wanted: BTreeSet<NodeName> = nodes.iter().cloned().collect();
        let existing = match self.ec2.find_group_live(self.group, self.cluster).await {
            Ok(instances) => instances,
            Err(error) => {
                let prefix = self.group.node_prefix();
                tracing::error!("Cannot look for existing instances of {prefix}: {error}");
                outcome.fail(wanted, error.code);
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
        let mut to_launch: Vec<NodeName> = nodes
            .iter()
            .filter(|n| !reused.contains_key(*n))
            .cloned()
            .collect();
        // When capacity runs short, the tail of the queue waits: the nodes of
        // the jobs Slurm ranks highest (26.05 says) go first.
        to_launch.sort_by_key(|node| std::cmp::Reverse(self.jobs.priority_of(&node.to_string())));
        let order: BTreeMap<NodeName, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (node.clone(), i))
            .collect();
        let to_launch = self.start_pooled(to_launch, &mut outcome).await;
        let (job_sets, rest) = self.split_by_job(to_launch);
        let mut batches = self.launch(&rest, &order, &mut outcome).await;
        batches.extend(self.launch_jobs(&job_sets, &mut outcome).await);
        let mut assignments = self.assign(reused, batches, &mut outcome).await;
        self.name_reservations(&mut assignments).await;
        self.tag_and_serve(assignments, &mut outcome).await;
        all_or_nothing(&job_sets, &mut outcome);
        outcome
    }

    /// Under all-or-nothing, the nodes each job needs here, apart from the
    /// nodes no job names (launched best-effort, as a manual power-up is).
    fn split_by_job(&self, to_launch: Vec<NodeName>) -> (Vec<JobSet>, Vec<NodeName>) {
        if self.group.job_level_scaling != JobLevelScaling::AllOrNothing {
            return (Vec::new(), to_launch);
        }
        let mut by_job: BTreeMap<u64, Vec<NodeName>> = BTreeMap::new();
        let mut rest = Vec::new();
        for node in to_launch {
            match self.jobs.job_of(&node.to_string()) {
                Some(job_id) => by_job.entry(job_id).or_default().push(node),
                None => rest.push(node),
            }
        }
        let sets = by_job
            .into_iter()
            .map(|(job_id, nodes)| JobSet { job_id, nodes })
            .collect();
        (sets, rest)
    }

    /// Launches `to_launch` in batches of `FleetBatchSize`; a batch's shortfall
    /// fails the tail of its nodes, and a surplus is marked for termination.
    async fn launch(
        &self,
        to_launch: &[NodeName],
        order: &BTreeMap<NodeName, usize>,
        outcome: &mut GroupOutcome,
    ) -> Vec<Batch> {
        let launch_tags = ec2::launch_tags(self.group, self.cluster);
        let mut batches = Vec::new();
        let mut queue = to_launch;
        for size in ec2::fleet_request_plan(to_launch.len(), self.settings.fleet_batch_size) {
            let (batch, rest) = queue.split_at(size);
            queue = rest;
            let mut tags = launch_tags.clone();
            // A one-node batch can carry its Name, its one-node list (and
            // job) from launch: its node is known.
            if let [only] = batch {
                let only = only.to_string();
                tags.push(("Name".to_string(), only.clone()));
                tags.push((ec2::NODES_TAG.to_string(), only.clone()));
                tags.extend(self.jobs.tags_of_node(&only));
            }
            let Launched { ids, shortfall } =
                launch_batch(self.ec2, self.group, size, &tags, false, self.deadline).await;
            // Nodes are served in id order; the tail of the batch waits for capacity.
            let served = ids.len().min(size);
            if let Some(code) = shortfall {
                outcome.fail(batch[served..].iter().cloned(), code);
            }
            outcome.to_terminate.extend(ids.iter().skip(size).cloned());
            // The served nodes back in the order Slurm named them, which the
            // reservation's node list keeps.
            let mut nodes = batch[..served].to_vec();
            nodes.sort_by_key(|node| order.get(node).copied());
            batches.push(Batch {
                nodes,
                ids: ids.into_iter().take(size).collect(),
            });
        }
        batches
    }

    /// One fleet per all-or-nothing job, launched concurrently, its job's tags
    /// on the instances from launch: all of a job's nodes, or none and the
    /// EC2 code on each.
    async fn launch_jobs(&self, sets: &[JobSet], outcome: &mut GroupOutcome) -> Vec<Batch> {
        let launches = sets.iter().map(|set| async move {
            if set.nodes.len() > MAX_ALL_OR_NOTHING {
                let shortfall = Some(Code::from(Ours::AllOrNothingOver1000Nodes));
                return (set, Launched::none(shortfall));
            }
            let mut tags = ec2::launch_tags(self.group, self.cluster);
            tags.extend(self.jobs.tags_of_job(set.job_id));
            if let [only] = set.nodes.as_slice() {
                tags.push(("Name".to_string(), only.to_string()));
                tags.push((ec2::NODES_TAG.to_string(), only.to_string()));
            }
            let count = set.nodes.len();
            let launched =
                launch_batch(self.ec2, self.group, count, &tags, true, self.deadline).await;
            (set, launched)
        });
        let mut batches = Vec::new();
        for (set, Launched { ids, shortfall }) in join_all(launches).await {
            if ids.len() >= set.nodes.len() {
                outcome
                    .to_terminate
                    .extend(ids.iter().skip(set.nodes.len()).cloned());
                let ids = ids.into_iter().take(set.nodes.len()).collect();
                batches.push(Batch {
                    nodes: set.nodes.clone(),
                    ids,
                });
                continue;
            }
            let code = shortfall.unwrap_or(Code::Ours(Ours::UnfulfilledCapacity));
            tracing::error!(
                "Job {}: EC2 cannot launch all {} node(s) of {} at once ({code}): none is kept",
                set.job_id,
                set.nodes.len(),
                self.group.node_prefix()
            );
            outcome.to_terminate.extend(ids);
            outcome.fail(set.nodes.iter().cloned(), code);
        }
        batches
    }

    /// Describes every instance until it has an address, then gives each node
    /// its instance: reused ones keep their node, new ones go in a stable order.
    async fn assign(
        &self,
        reused: BTreeMap<NodeName, Instance>,
        batches: Vec<Batch>,
        outcome: &mut GroupOutcome,
    ) -> Vec<Assignment> {
        let mut all_ids: Vec<String> = batches.iter().flat_map(|b| b.ids.iter().cloned()).collect();
        all_ids.extend(reused.values().map(|i| i.id.clone()));
        let described =
            wait_for_addresses(self.ec2, self.group, self.cluster, &all_ids, self.deadline).await;
        let mut assignments = Vec::new();
        for (node, instance) in reused {
            match described.get(&instance.id) {
                Some(instance) => assignments.push(Assignment {
                    node,
                    instance: instance.clone(),
                    launched_now: false,
                    identified: true,
                }),
                None => outcome.fail([node], Ours::InstanceAddressUnavailable),
            }
        }
        for Batch { nodes, ids } in batches {
            let mut ready: Vec<&Instance> = ids.iter().filter_map(|id| described.get(id)).collect();
            // In launch order, so that a reservation's nodes are a hostlist
            // its instances can find themselves in by their launch index.
            ready.sort_by(|a, b| {
                (&a.reservation_id, a.launch_index, &a.id).cmp(&(
                    &b.reservation_id,
                    b.launch_index,
                    &b.id,
                ))
            });
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
                        identified: false,
                    });
                }
            }
            outcome.fail(nodes, Ours::InstanceAddressUnavailable);
        }
        assignments
    }

    /// One CreateTags per reservation of this run's launches: the node list
    /// in launch order (`slurm-ec2:nodes`), and the job's tags when all its
    /// nodes have the same, on all its instances at once. A booting node,
    /// suspend and change-state find the node of each instance from it, so
    /// the `Name` tags, one call each, can wait until Slurm has the addresses.
    /// A reservation whose launch indexes are not 0, 1, 2… of the instances
    /// served, or whose tag cannot be written, keeps per-instance naming.
    async fn name_reservations(&self, assignments: &mut [Assignment]) {
        let mut by_reservation: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, a) in assignments.iter().enumerate() {
            // A one-node batch carries its Name from launch.
            if a.launched_now
                && a.instance.tag("Name").is_none()
                && let (Some(reservation), Some(_)) =
                    (&a.instance.reservation_id, a.instance.launch_index)
            {
                by_reservation
                    .entry(reservation.clone())
                    .or_default()
                    .push(i);
            }
        }
        let mut calls = Vec::new();
        for (reservation, mut members) in by_reservation {
            members.sort_by_key(|&i| assignments[i].instance.launch_index);
            let in_order = members.iter().enumerate().all(|(position, &i)| {
                assignments[i].instance.launch_index == u32::try_from(position).ok()
            });
            let nodes: Vec<String> = members
                .iter()
                .map(|&i| assignments[i].node.to_string())
                .collect();
            let Some(mut tags) = in_order
                .then(|| ec2::nodes_tags(&nodes, ec2::node_list_room(self.group)))
                .flatten()
            else {
                tracing::info!("Reservation {reservation}: its instances are named one by one");
                continue;
            };
            let first = self.jobs.tags_of_node(&nodes[0]);
            if nodes.iter().all(|n| self.jobs.tags_of_node(n) == first) {
                tags.extend(first);
            }
            let ids: Vec<String> = members
                .iter()
                .map(|&i| assignments[i].instance.id.clone())
                .collect();
            calls.push((reservation, members, ids, tags));
        }
        let results = join_all(
            calls
                .iter()
                .map(|(_, _, ids, tags)| self.ec2.tag_all(ids, tags, self.deadline)),
        )
        .await;
        for ((reservation, members, ids, tags), result) in calls.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    tracing::info!(
                        "Reservation {reservation}: {} instance(s) named {} in one CreateTags",
                        ids.len(),
                        tags[0].1
                    );
                    for i in members {
                        let assignment = &mut assignments[i];
                        assignment.identified = true;
                        assignment.instance.tags.extend(tags.iter().cloned());
                    }
                }
                Err(error) => tracing::warn!(
                    "Reservation {reservation}: cannot tag its node list ({error}); naming its instances one by one"
                ),
            }
        }
    }

    /// Tags the instances that lack some of their tags (`Name` and the
    /// substituted custom tags). Those whose tags already tell their node
    /// wait until Slurm has the addresses; the others are tagged now, and
    /// one that cannot be tagged fails its node.
    async fn tag_and_serve(&self, assignments: Vec<Assignment>, outcome: &mut GroupOutcome) {
        let mut now = Vec::new();
        for a in &assignments {
            let address = a.instance.address.clone().unwrap_or_default();
            let hostname = a.instance.hostname().unwrap_or_default();
            let node = a.node.to_string();
            let job_values = self.jobs.placeholders(&node);
            let mut tags = ec2::node_tags(self.group, &node, &address, &hostname, &job_values);
            tags.extend(self.jobs.tags_of_node(&node));
            tags.retain(|(k, v)| a.instance.tag(k) != Some(v.as_str()));
            if tags.is_empty() {
                continue;
            }
            match a.identified {
                true => outcome.deferred_tags.push((a.instance.id.clone(), tags)),
                false => now.push((a.instance.id.clone(), tags)),
            }
        }
        let concurrency = self.settings.tag_concurrency;
        let failures = self.ec2.tag_each(now, concurrency, self.deadline).await;
        let untagged: BTreeMap<String, Ec2Error> = failures.into_iter().collect();
        for Assignment {
            node,
            instance,
            launched_now,
            ..
        } in assignments
        {
            if let Some(error) = untagged.get(&instance.id) {
                tracing::error!("Failed to tag node {node} ({}): {error}", instance.id);
                outcome.to_terminate.push(instance.id.clone());
                outcome.fail([node], error.code.clone());
                continue;
            }
            if launched_now {
                outcome.launched += 1;
            }
            let address = NodeAddress {
                node: node.to_string(),
                hostname: instance.hostname().unwrap_or_default(),
                address: instance.address.clone().unwrap_or_default(),
            };
            outcome.served.push(Served {
                node,
                address,
                instance_type: instance.instance_type.clone().unwrap_or_default(),
                instance_id: instance.id,
                launched_now,
                from_pool: false,
            });
        }
    }
}

/// Under all-or-nothing a job is served whole or not at all: when any of its
/// nodes failed (no address, no tags), all of them fail with that code and
/// the instances launched for them are terminated.
fn all_or_nothing(sets: &[JobSet], outcome: &mut GroupOutcome) {
    for set in sets {
        let Some(code) = outcome
            .failed
            .iter()
            .find(|f| set.nodes.contains(&f.node))
            .map(|f| f.code.clone())
        else {
            continue;
        };
        let (partial, kept): (Vec<Served>, Vec<Served>) = std::mem::take(&mut outcome.served)
            .into_iter()
            .partition(|s| set.nodes.contains(&s.node));
        outcome.served = kept;
        if partial.is_empty() {
            continue; // the launch failed whole, and said so
        }
        for served in partial {
            match served.from_pool {
                true => outcome.from_pool -= 1,
                false => outcome.launched -= usize::from(served.launched_now),
            }
            outcome.to_terminate.push(served.instance_id);
            outcome.fail([served.node], code.clone());
        }
        tracing::error!(
            "Job {}: not every node could be served ({code}): none is kept",
            set.job_id
        );
    }
}

/// For each wanted node, the live instance already named for it (running
/// before pending, then the oldest), and every other instance with the same
/// name, to be terminated.
fn pick_existing(
    wanted: &BTreeSet<NodeName>,
    instances: Vec<Instance>,
) -> (BTreeMap<NodeName, Instance>, Vec<String>) {
    let by_text: BTreeMap<String, &NodeName> = wanted.iter().map(|n| (n.to_string(), n)).collect();
    let mut by_node: BTreeMap<NodeName, Vec<Instance>> = BTreeMap::new();
    for instance in instances {
        if let Some(node) = instance.node_name().and_then(|n| by_text.get(&n).copied()) {
            by_node.entry(node.clone()).or_default().push(instance);
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
            instance_type: None,
            availability_zone: None,
            lifecycle: None,
            reservation_id: None,
            launch_index: None,
            image_id: None,
        }
    }

    #[test]
    fn keeps_one_instance_per_node_and_terminates_the_rest() {
        let node = |id| NodeName {
            partition: "aws".into(),
            group: "a".into(),
            id,
        };
        let wanted: BTreeSet<NodeName> = [node(0), node(1)].into_iter().collect();
        let instances = vec![
            instance("i-2", "aws-a-0", "pending", 5),
            instance("i-1", "aws-a-0", "running", 9),
            instance("i-3", "aws-a-0", "running", 7),
            instance("i-4", "aws-a-7", "running", 1),
        ];
        let (keep, extra) = pick_existing(&wanted, instances);
        assert_eq!(keep.len(), 1);
        assert_eq!(keep[&node(0)].id, "i-3");
        assert_eq!(extra, vec!["i-1", "i-2"]);
    }
}
