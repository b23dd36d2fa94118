//! suspend's warm pools: while a node group's pool is below its `Size`, the
//! instance of a node that powers down is stopped into it instead of
//! terminated: first tagged as pooled (no node named any more, in one
//! CreateTags), then stopped. An instance tagged but not stopped is
//! terminated with the others; one left running with the pool's tag is
//! terminated by change-state. The instance of a node Slurm holds DOWN (a
//! resume that timed out), drained or failing is never pooled.

use std::collections::{BTreeMap, BTreeSet};

use super::SuspendReport;
use crate::config::{Config, NodeGroup, Purchasing};
use crate::ec2::{Ec2, Instance, InstanceState};
use crate::events::{About, EventLog, Kind};
use crate::programs::Run;

/// Nodes and their instances.
type Candidates = Vec<(String, Instance)>;

/// Stops into their groups' pools those of `ours` that fit there, and
/// returns the others, to be terminated.
pub(super) async fn pool_what_fits(
    run: &Run<'_>,
    ec2: &Ec2,
    ours: Candidates,
    healthy: &BTreeSet<String>,
    events: &EventLog,
    report: &mut SuspendReport,
) -> Candidates {
    let mut by_group: BTreeMap<String, (&NodeGroup, Candidates)> = BTreeMap::new();
    let mut rest = Vec::new();
    for (node, instance) in ours {
        let group =
            poolable_group(run.config, &node, &instance).filter(|_| healthy.contains(&node));
        match group {
            Some(group) => by_group
                .entry(group.node_prefix())
                .or_insert_with(|| (group, Vec::new()))
                .1
                .push((node, instance)),
            None => rest.push((node, instance)),
        }
    }
    for (group, candidates) in by_group.into_values() {
        rest.extend(pool_group(run, ec2, group, candidates, events, report).await);
    }
    rest
}

/// The node's group when its instance may go to that group's pool: the
/// group has one, and the instance is a running On-Demand one.
fn poolable_group<'c>(
    config: &'c Config,
    node: &str,
    instance: &Instance,
) -> Option<&'c NodeGroup> {
    let (_, group) = crate::names::parse(config, node).ok()?;
    let fits = group.warm_pool.is_some()
        && group.purchasing == Purchasing::OnDemand
        && instance.purchasing() == Some(Purchasing::OnDemand)
        && instance.state == InstanceState::Running;
    fits.then_some(group)
}

/// Pools as many of `candidates` as the group's pool has room for, under
/// its lock; returns the others.
async fn pool_group(
    run: &Run<'_>,
    ec2: &Ec2,
    group: &NodeGroup,
    mut candidates: Candidates,
    events: &EventLog,
    report: &mut SuspendReport,
) -> Candidates {
    let Some(size) = group.warm_pool.as_ref().map(|p| p.size as usize) else {
        return candidates;
    };
    let Some(held) = crate::pool::hold(&run.config.state_dir, group, run.deadline).await else {
        return candidates;
    };
    let now = chrono::Utc::now().timestamp();
    let claimed = held.claimed(now);
    let pooled = match ec2.find_pooled(group, run.cluster.as_str()).await {
        Ok(found) => found
            .iter()
            .filter(|i| !claimed.contains(&i.id) && !candidates.iter().any(|(_, c)| c.id == i.id))
            .count(),
        Err(error) => {
            tracing::warn!(
                "Cannot count the warm pool of {}: terminating instead ({error})",
                group.node_prefix()
            );
            return candidates;
        }
    };
    let room = size.saturating_sub(pooled);
    let rest = candidates.split_off(room.min(candidates.len()));
    let mut not_pooled = rest;
    let untagged = tag_as_pooled(run, ec2, group, &candidates, now).await;
    let (tagged, failed): (Vec<_>, Vec<_>) = candidates
        .into_iter()
        .partition(|(_, i)| !untagged.contains_key(&i.id));
    for (node, instance) in &failed {
        let error = &untagged[&instance.id];
        tracing::warn!(
            "Cannot pool instance {node} {}: {error}; terminating it",
            instance.id
        );
    }
    not_pooled.extend(failed);
    let stopped = stop(ec2, tagged, &mut not_pooled).await;
    let stopped_ids: Vec<String> = stopped.iter().map(|(_, i)| i.id.clone()).collect();
    held.release(&stopped_ids, now);
    record(group, &stopped, events);
    report.pooled += stopped.len();
    not_pooled
}

/// Tags `candidates` as pooled, one CreateTags for all the instances whose
/// tags are alike (a fleet's share its first launch, to the second); returns
/// those that could not be tagged, with the error's text.
async fn tag_as_pooled(
    run: &Run<'_>,
    ec2: &Ec2,
    group: &NodeGroup,
    candidates: &Candidates,
    now: i64,
) -> BTreeMap<String, String> {
    let mut alike: BTreeMap<Vec<(String, String)>, Vec<String>> = BTreeMap::new();
    for (_, instance) in candidates {
        let tags = crate::ec2::pooling_tags(instance, group, now);
        alike.entry(tags).or_default().push(instance.id.clone());
    }
    let calls = alike.iter().flat_map(|(tags, ids)| {
        ids.chunks(crate::ec2::MAX_IDS_PER_CALL)
            .map(move |chunk| async move { (chunk, ec2.tag_all(chunk, tags, run.deadline).await) })
    });
    let mut untagged = BTreeMap::new();
    for (ids, result) in futures_util::future::join_all(calls).await {
        if let Err(error) = result {
            let error = error.to_string();
            untagged.extend(ids.iter().map(|id| (id.clone(), error.clone())));
        }
    }
    untagged
}

/// Stops the instances tagged as pooled; returns those stopped, and adds
/// the others to `not_pooled`.
async fn stop(ec2: &Ec2, tagged: Candidates, not_pooled: &mut Candidates) -> Candidates {
    let ids: Vec<String> = tagged.iter().map(|(_, i)| i.id.clone()).collect();
    let unstopped: Vec<String> = ec2
        .stop(&ids)
        .await
        .into_iter()
        .flat_map(|(ids, error)| {
            tracing::warn!("Cannot stop {}: {error}; terminating them", ids.join(", "));
            ids
        })
        .collect();
    let (stopped, running): (Vec<_>, Vec<_>) = tagged
        .into_iter()
        .partition(|(_, i)| !unstopped.contains(&i.id));
    not_pooled.extend(running);
    stopped
}

/// One line and one `pooled` event per instance stopped into the pool.
fn record(group: &NodeGroup, stopped: &Candidates, events: &EventLog) {
    let prefix = group.node_prefix();
    for (node, instance) in stopped {
        tracing::info!(
            "Pooled instance {node} {} (stopped into the warm pool of {prefix})",
            instance.id
        );
        let detail = format!("stopped into the warm pool of {prefix}");
        let about = About {
            node: Some(node),
            instance: Some(&instance.id),
            detail: Some(&detail),
            ..Default::default()
        };
        events.record(Kind::Pooled, about);
    }
}
