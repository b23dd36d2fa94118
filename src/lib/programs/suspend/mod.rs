//! suspend: Slurm's SuspendProgram. Finds this cluster's instances of the
//! nodes (by the InstanceId Slurm records, 23.11+, else by Name), stops
//! into their group's warm pool those that fit there, and terminates the others.

mod pool;

use std::collections::{BTreeMap, BTreeSet};

use super::{Context, Hostlist, Outcome, Run};
use crate::config::NodeGroup;
use crate::ec2::{
    Account, CLUSTER_TAG, CallCounter, Ec2, Ec2Error, Instance, InstanceState, MAX_FILTER_VALUES,
};
use crate::events::{About, EventLog, Kind, Why};
use crate::names;
use crate::slurm::{self, Flag, Scontrol};

#[derive(Debug, Default)]
pub struct SuspendReport {
    pub asked: usize,
    pub terminated: usize,
    /// Stopped into their group's warm pool.
    pub pooled: usize,
    pub without_instance: Vec<String>,
    pub failed_instances: Vec<String>,
    pub foreign: usize,
    /// Node groups whose instances could not be looked up.
    pub lookup_failures: usize,
}

impl SuspendReport {
    pub fn succeeded(&self) -> bool {
        self.failed_instances.is_empty() && self.lookup_failures == 0
    }
}

/// The program: `suspend <hostlist>`.
pub fn run(context: &Context, hostlist: &Hostlist) -> Outcome {
    let outcome = suspend_hostlist(context, hostlist);
    super::finish(context, "suspend", outcome)
}

fn suspend_hostlist(context: &Context, hostlist: &Hostlist) -> Outcome {
    let config = context.config;
    let names = match hostlist.expand() {
        Ok(names) => names,
        Err(outcome) => return outcome,
    };
    let sorted = names::sort_names(config, &names);
    if let Some(line) = sorted.foreign.summary() {
        tracing::warn!("{line}");
    }
    // Nothing of ours: no cluster look-up, no EC2 call.
    if sorted.by_group.is_empty() {
        let report = SuspendReport {
            foreign: sorted.foreign.count,
            ..Default::default()
        };
        let tally = super::tally(&CallCounter::default(), 0, context.started);
        tracing::info!("{}", summary(&report, &tally));
        return Outcome::Done;
    }
    let run = match Run::begin(config, context.started, super::Budget::power_save(config)) {
        Ok(run) => run,
        Err(error) => {
            tracing::error!("{error}");
            return Outcome::Failed;
        }
    };
    let recorded = recorded_instances(&run.scontrol, &sorted);
    let report = run.block_on(suspend(&run, &sorted, &recorded, &context.events));
    tracing::info!("{}", summary(&report, &run.tally()));
    run.record_trouble(&context.events);
    match report.succeeded() {
        true => Outcome::Done,
        false => Outcome::Failed,
    }
}

/// What Slurm says of the nodes being suspended, from one `scontrol show
/// nodes`, read only where it serves: the InstanceId it records (23.11+),
/// and which nodes may go to a warm pool.
#[derive(Debug, Default)]
pub(super) struct Recorded {
    /// The InstanceId of each node; empty before 23.11, and when the read
    /// failed (the tags then find every instance).
    pub instances: BTreeMap<String, String>,
    /// The nodes that ended well: neither DOWN (a resume that timed out:
    /// slurmctld runs the same program as its ResumeFailProgram), nor drained
    /// nor failing. Only their instances are pooled.
    pub healthy: BTreeSet<String>,
}

fn recorded_instances(scontrol: &Scontrol, sorted: &names::Sorted<'_>) -> Recorded {
    let instance_ids = scontrol.version().is_some_and(|v| v.has_instance_fields());
    let pools = sorted
        .by_group
        .values()
        .any(|(group, _)| group.warm_pool.is_some());
    if !instance_ids && !pools {
        return Recorded::default();
    }
    let nodes: Vec<String> = sorted
        .by_group
        .values()
        .flat_map(|(_, nodes)| nodes.iter().map(|n| n.to_string()))
        .collect();
    let args = [
        "show".to_string(),
        "nodes".to_string(),
        crate::hostlist::compress(&nodes),
        "-o".to_string(),
    ];
    match scontrol.run(&args) {
        Ok(text) => {
            let nodes = slurm::parse_nodes(&text);
            let well = |n: &&slurm::NodeInfo| {
                !n.state.is_down() && !n.state.has(Flag::Drain) && !n.state.has(Flag::Fail)
            };
            Recorded {
                healthy: nodes.iter().filter(well).map(|n| n.name.clone()).collect(),
                instances: nodes
                    .into_iter()
                    .filter_map(|node| Some((node.name, node.instance_id?)))
                    .collect(),
            }
        }
        Err(error) => {
            tracing::warn!(
                "Cannot read the nodes from Slurm, finding instances by Name and pooling none: {error}"
            );
            Recorded::default()
        }
    }
}

/// Whether `instance` is the live instance of `node` (of `group`) in this
/// cluster, compared exactly: Slurm's InstanceId alone is not trusted.
fn is_instance_of(instance: &Instance, node: &str, group: &NodeGroup, cluster: &str) -> bool {
    instance.is_live()
        && instance.tag(CLUSTER_TAG) == Some(cluster)
        && instance.may_be_node(node, group)
}

/// Terminates the instances of our nodes in `sorted` (names that are not ours
/// were summarised by the caller): those whose InstanceId Slurm records
/// (`recorded`), described by id, and the others found by Name. Only
/// instances that carry this cluster's tag are ever touched.
async fn suspend(
    run: &Run<'_>,
    sorted: &names::Sorted<'_>,
    recorded: &Recorded,
    events: &EventLog,
) -> SuspendReport {
    let mut report = SuspendReport {
        asked: sorted.node_count(),
        foreign: sorted.foreign.count,
        ..Default::default()
    };
    let mut by_account: BTreeMap<Account, Vec<(String, &NodeGroup)>> = BTreeMap::new();
    for (group, nodes) in sorted.by_group.values() {
        by_account
            .entry(group.account())
            .or_default()
            .extend(nodes.iter().map(|n| (n.to_string(), *group)));
    }
    for (account, nodes) in by_account {
        let ec2 = run.clients.get(&account).await;
        let ours = match instances_of(&ec2, run.cluster.as_str(), &nodes, &recorded.instances).await
        {
            Ok(ours) => ours,
            Err(error) => {
                tracing::error!("Failed to describe instances to terminate in {account}: {error}");
                report.lookup_failures += 1;
                continue;
            }
        };
        for (node, _) in &nodes {
            if !ours.iter().any(|(n, _)| n == node) {
                tracing::info!("Node {node} has no instance to terminate");
                report.without_instance.push(node.clone());
            }
        }
        let ours =
            pool::pool_what_fits(run, &ec2, ours, &recorded.healthy, events, &mut report).await;
        terminate(&ec2, &ours, events, &mut report).await;
    }
    report
}

/// The live instance of each of `nodes` that has one: by the InstanceId
/// Slurm records, checked against its tags, else by Name.
async fn instances_of(
    ec2: &Ec2,
    cluster: &str,
    nodes: &[(String, &NodeGroup)],
    recorded: &BTreeMap<String, String>,
) -> Result<Vec<(String, Instance)>, Ec2Error> {
    let ids: Vec<String> = nodes
        .iter()
        .filter_map(|(node, _)| recorded.get(node).cloned())
        .collect();
    let described = if ids.is_empty() {
        Vec::new()
    } else {
        ec2.describe(&ids).await.unwrap_or_else(|error| {
            tracing::warn!(
                "Cannot describe the instances Slurm records, finding them by Name: {error}"
            );
            Vec::new()
        })
    };
    let mut ours: Vec<(String, Instance)> = Vec::new();
    let mut by_name = Vec::new();
    for (node, group) in nodes {
        let found = recorded.get(node).and_then(|id| {
            described
                .iter()
                .find(|i| &i.id == id && is_instance_of(i, node, group, cluster))
        });
        match found {
            Some(instance) => ours.push((node.clone(), instance.clone())),
            None => by_name.push((node.clone(), *group)),
        }
    }
    if !by_name.is_empty() {
        ours.extend(find_by_names(ec2, cluster, &by_name).await?);
    }
    ours.sort_by(|a, b| a.1.id.cmp(&b.1.id));
    ours.dedup_by(|a, b| a.1.id == b.1.id);
    Ok(ours)
}

/// Terminates `ours` and records each instance that went.
async fn terminate(
    ec2: &Ec2,
    ours: &[(String, Instance)],
    events: &EventLog,
    report: &mut SuspendReport,
) {
    let ids: Vec<String> = ours.iter().map(|(_, i)| i.id.clone()).collect();
    let failures = ec2.terminate(&ids).await;
    let failed: Vec<String> = failures
        .iter()
        .flat_map(|(ids, _)| ids.iter().cloned())
        .collect();
    for (ids, error) in &failures {
        tracing::error!("Failed to terminate instances {}: {error}", ids.join(", "));
    }
    for (node, instance) in ours.iter().filter(|(_, i)| !failed.contains(&i.id)) {
        tracing::info!("Terminated instance {node} {}", instance.id);
        let about = About {
            node: Some(node),
            instance: Some(&instance.id),
            why: Some(Why::Suspend),
            ..Default::default()
        };
        events.record(Kind::Termination, about);
        report.terminated += 1;
    }
    report.failed_instances.extend(failed);
}

/// The live instances of `nodes`, by the cheaper look-up for their number:
/// a node group with more than 200 of them is read whole by its tags (1000
/// instances a call); the others by `Name`, 200 names a call; and the
/// groups of nodes no `Name` matched are read whole too, since right after
/// a burst an instance may be known only by its reservation's node list.
async fn find_by_names(
    ec2: &Ec2,
    cluster: &str,
    nodes: &[(String, &NodeGroup)],
) -> Result<Vec<(String, Instance)>, Ec2Error> {
    let mut per_group: BTreeMap<String, (&NodeGroup, BTreeSet<&str>)> = BTreeMap::new();
    for (node, group) in nodes {
        per_group
            .entry(group.node_prefix())
            .or_insert_with(|| (*group, BTreeSet::new()))
            .1
            .insert(node.as_str());
    }
    let mut found: Vec<(String, Instance)> = Vec::new();
    let mut read_whole: Vec<&NodeGroup> = Vec::new();
    let mut by_name: Vec<String> = Vec::new();
    for (group, wanted) in per_group.values() {
        match wanted.len() > MAX_FILTER_VALUES {
            true => read_whole.push(group),
            false => by_name.extend(wanted.iter().map(|n| n.to_string())),
        }
    }
    let matching = |instances: Vec<Instance>, found: &mut Vec<(String, Instance)>| {
        for instance in instances {
            let Some(node) = instance.node_name() else {
                continue;
            };
            let Some((group, _)) = per_group.values().find(|(_, w)| w.contains(node.as_str()))
            else {
                continue;
            };
            if is_instance_of(&instance, &node, group, cluster) {
                found.push((node, instance));
            }
        }
    };
    if !by_name.is_empty() {
        let tags = [(CLUSTER_TAG, cluster)];
        let named = ec2
            .find(&tags, Some(InstanceState::live()), Some(&by_name))
            .await?;
        matching(named, &mut found);
        for (group, wanted) in per_group.values() {
            let all_found = wanted.iter().all(|n| found.iter().any(|(f, _)| f == n));
            if wanted.len() <= MAX_FILTER_VALUES && !all_found {
                read_whole.push(group);
            }
        }
    }
    for group in read_whole {
        let instances = ec2.find_group_live(group, cluster).await?;
        matching(instances, &mut found);
    }
    Ok(found)
}

/// The one summary line of a run, ending in its `tally`.
pub fn summary(report: &SuspendReport, tally: &str) -> String {
    format!(
        "Suspend summary: asked {}, terminated {}, pooled {}, without instance {}, failed {}, not ours {}; {tally}",
        report.asked,
        report.terminated,
        report.pooled,
        report.without_instance.len(),
        report.failed_instances.len() + report.lookup_failures,
        report.foreign,
    )
}
