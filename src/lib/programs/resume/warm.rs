//! Starting a node group's pooled instances for its nodes, before any
//! launch. Under the pool's lock: the stopped pooled instances not claimed
//! lately are claimed, given their nodes in tags, then started. A restarted
//! instance keeps its reservation and launch index, so the instances of one
//! reservation are named in one CreateTags: their node list
//! (`slurm-ec2:nodes`) and the launch indexes it names (`slurm-ec2:indexes`);
//! their `Name` waits until Slurm has the addresses, as a launch's does. An
//! instance that cannot be named that way is named alone before its start.

use std::collections::BTreeMap;

use futures_util::future::join_all;

use super::serve::{GroupOutcome, GroupRun, Served};
use crate::ec2::{self, Instance, InstanceState, TagRequest};
use crate::names::NodeName;
use crate::slurm::NodeAddress;

/// A node, the pooled instance it gets, and the tags that wait until Slurm
/// has its address.
type Ready = (NodeName, Instance, Vec<(String, String)>);

/// Pooled instances given their nodes, before they are started.
struct Named {
    /// Named now, in tags.
    ready: Vec<Ready>,
    /// Nodes whose instance could not be named: launched instead.
    unnamed: Vec<NodeName>,
}

impl GroupRun<'_> {
    /// Serves what it can of `nodes` from the group's warm pool; returns
    /// the nodes still to launch.
    pub(super) async fn start_pooled(
        &self,
        nodes: Vec<NodeName>,
        outcome: &mut GroupOutcome,
    ) -> Vec<NodeName> {
        let Some(settings) = &self.group.warm_pool else {
            return nodes;
        };
        if nodes.is_empty() {
            return nodes;
        }
        let Some(held) = crate::pool::hold(self.state_dir, self.group, self.deadline).await else {
            return nodes;
        };
        let now = chrono::Utc::now().timestamp();
        let claimed = held.claimed(now);
        // One change-state is about to trim is not started for a job.
        let max_age = i64::try_from(settings.max_age.as_secs()).unwrap_or(i64::MAX);
        let young = |i: &Instance| {
            i.first_launch(now)
                .is_some_and(|first| now.saturating_sub(first) <= max_age)
        };
        let mut pooled: Vec<Instance> = match self.ec2.find_pooled(self.group, self.cluster).await {
            Ok(found) => found
                .into_iter()
                .filter(|i| i.state == InstanceState::Stopped)
                .filter(|i| i.address.is_some() && !claimed.contains(&i.id) && young(i))
                .collect(),
            Err(error) => {
                let prefix = self.group.node_prefix();
                tracing::warn!("Cannot read the warm pool of {prefix}, launching: {error}");
                return nodes;
            }
        };
        // The youngest first: the oldest age out of the pool first.
        pooled.sort_by_key(|i| std::cmp::Reverse((i.first_launch(now), i.id.clone())));
        pooled.truncate(nodes.len());
        let ids: Vec<String> = pooled.iter().map(|i| i.id.clone()).collect();
        if pooled.is_empty() || !held.claim(&ids, now) {
            return nodes;
        }
        let mut nodes = nodes;
        let mut taken: Vec<NodeName> = nodes.drain(..pooled.len()).collect();
        taken.sort();
        let named = self
            .name_pooled(taken.into_iter().zip(pooled).collect())
            .await;
        nodes.extend(named.unnamed);
        nodes.extend(self.start_named(named.ready, outcome).await);
        nodes
    }

    /// Tags each instance with its node: one CreateTags per reservation
    /// where its launch indexes allow, else one per instance.
    async fn name_pooled(&self, pairs: Vec<(NodeName, Instance)>) -> Named {
        let mut by_reservation: BTreeMap<Option<String>, Vec<(NodeName, Instance)>> =
            BTreeMap::new();
        for (node, instance) in pairs {
            let key = instance.launch_index.and(instance.reservation_id.clone());
            by_reservation
                .entry(key)
                .or_default()
                .push((node, instance));
        }
        let mut one_by_one = by_reservation.remove(&None).unwrap_or_default();
        let mut named = Named {
            ready: Vec::new(),
            unnamed: Vec::new(),
        };
        let mut calls = Vec::new();
        for mut members in by_reservation.into_values() {
            members.sort_by_key(|(_, i)| i.launch_index);
            // The nodes in the order of the instances' launch indexes.
            let mut nodes: Vec<NodeName> = members.iter().map(|(n, _)| n.clone()).collect();
            nodes.sort();
            let members: Vec<(NodeName, Instance)> = nodes
                .into_iter()
                .zip(members.into_iter().map(|(_, i)| i))
                .collect();
            match self.reservation_tags(&members) {
                Some(tags) => calls.push((members, tags)),
                None => one_by_one.extend(members),
            }
        }
        let results = join_all(calls.iter().map(|(members, tags)| {
            let ids: Vec<String> = members.iter().map(|(_, i)| i.id.clone()).collect();
            async move { self.ec2.tag_all(&ids, tags, self.deadline).await }
        }))
        .await;
        for ((members, _), result) in calls.into_iter().zip(results) {
            match result {
                Ok(()) => named.ready.extend(members.into_iter().map(|(node, i)| {
                    let later = self.node_tags(&node, &i);
                    (node, i, later)
                })),
                Err(error) => {
                    tracing::warn!("Cannot name pooled instances together ({error}): one by one");
                    one_by_one.extend(members);
                }
            }
        }
        self.name_one_by_one(one_by_one, &mut named).await;
        named
    }

    /// The tags that name a reservation's `members` (nodes in the order of
    /// their launch indexes); None when their list does not fit in tags.
    fn reservation_tags(&self, members: &[(NodeName, Instance)]) -> Option<Vec<(String, String)>> {
        let nodes: Vec<String> = members.iter().map(|(n, _)| n.to_string()).collect();
        let indexes: Vec<u32> = members
            .iter()
            .map(|(_, i)| i.launch_index)
            .collect::<Option<_>>()?;
        let mut tags = ec2::nodes_tags(&nodes, ec2::node_list_room(self.group))?;
        tags.extend(ec2::unpooling_tags());
        tags.push((ec2::INDEXES_TAG.to_string(), ec2::indexes_text(&indexes)));
        let first = self.jobs.tags_of_node(&nodes[0]);
        if nodes.iter().all(|n| self.jobs.tags_of_node(n) == first) {
            tags.extend(first);
        }
        Some(tags)
    }

    /// `Name`, the placeholder tags and the job's: for after Slurm has the address.
    fn node_tags(&self, node: &NodeName, instance: &Instance) -> Vec<(String, String)> {
        let node = node.to_string();
        let address = instance.address.clone().unwrap_or_default();
        let hostname = instance.hostname().unwrap_or_default();
        let job_values = self.jobs.placeholders(&node);
        let mut tags = ec2::node_tags(self.group, &node, &address, &hostname, &job_values);
        tags.extend(self.jobs.tags_of_node(&node));
        tags
    }

    async fn name_one_by_one(&self, pairs: Vec<(NodeName, Instance)>, named: &mut Named) {
        let requests: Vec<TagRequest> = pairs
            .iter()
            .map(|(node, instance)| {
                let mut tags = self.node_tags(node, instance);
                tags.extend(ec2::unpooling_tags());
                (instance.id.clone(), tags)
            })
            .collect();
        let concurrency = self.settings.tag_concurrency;
        let failed: BTreeMap<String, ec2::Ec2Error> = self
            .ec2
            .tag_each(requests, concurrency, self.deadline)
            .await
            .into_iter()
            .collect();
        for (node, instance) in pairs {
            match failed.get(&instance.id) {
                // Still tagged as pooled: it stays in the pool.
                Some(error) => {
                    tracing::warn!(
                        "Cannot name pooled instance {} for {node}: {error}",
                        instance.id
                    );
                    named.unnamed.push(node);
                }
                None => named.ready.push((node, instance, Vec::new())),
            }
        }
    }

    /// Starts the named instances and serves their nodes; returns the nodes
    /// whose instance did not start (it is terminated: it names them).
    async fn start_named(&self, ready: Vec<Ready>, outcome: &mut GroupOutcome) -> Vec<NodeName> {
        let ids: Vec<String> = ready.iter().map(|(_, i, _)| i.id.clone()).collect();
        let (started, failures) = self.ec2.start(&ids).await;
        for (ids, error) in &failures {
            tracing::error!(
                "Failed to start pooled instances {}: {error}",
                ids.join(", ")
            );
        }
        let mut not_started = Vec::new();
        for (node, instance, later) in ready {
            let was = started
                .iter()
                .find(|s| s.id == instance.id)
                .map(|s| s.previous);
            if was != Some(InstanceState::Stopped) {
                if let Some(state) = was {
                    tracing::error!(
                        "Pooled instance {} was {state}, not stopped: terminating it",
                        instance.id
                    );
                }
                outcome.to_terminate.push(instance.id.clone());
                not_started.push(node);
                continue;
            }
            tracing::info!("Started pooled instance {} for node {node}", instance.id);
            if !later.is_empty() {
                outcome.deferred_tags.push((instance.id.clone(), later));
            }
            outcome.from_pool += 1;
            outcome.served.push(Served {
                address: NodeAddress {
                    node: node.to_string(),
                    hostname: instance.hostname().unwrap_or_default(),
                    address: instance.address.clone().unwrap_or_default(),
                },
                node,
                instance_type: instance.instance_type.clone().unwrap_or_default(),
                instance_id: instance.id,
                launched_now: true,
                from_pool: true,
            });
        }
        not_started
    }
}
