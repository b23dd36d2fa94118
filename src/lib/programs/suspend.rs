//! suspend: Slurm's SuspendProgram. Finds this cluster's instances named for
//! the nodes and terminates them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::{Context, Hostlist, Outcome, Session};
use crate::ec2::{Account, CLUSTER_TAG, CallCounter, Clients, InstanceState};
use crate::names;

#[derive(Debug, Default)]
pub struct SuspendReport {
    pub asked: usize,
    pub terminated: usize,
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
        let line = summary(&report, &CallCounter::default(), 0, context.started);
        tracing::info!("{line}");
        return Outcome::Done;
    }
    let Session {
        scontrol,
        cluster,
        runtime,
    } = match super::session(config) {
        Ok(session) => session,
        Err(outcome) => return outcome,
    };
    let calls = Arc::new(CallCounter::default());
    let clients = Clients::new(&config.settings, calls.clone());
    let report = runtime.block_on(suspend(&clients, &cluster, &sorted));
    let line = summary(&report, &calls, scontrol.runs(), context.started);
    tracing::info!("{line}");
    if report.succeeded() {
        Outcome::Done
    } else {
        Outcome::Failed
    }
}

/// Terminates the instances of our nodes in `sorted` (names that are not ours
/// were summarised by the caller). Only instances that carry this cluster's
/// tag are ever touched.
pub async fn suspend(
    clients: &Clients,
    cluster: &str,
    sorted: &names::Sorted<'_>,
) -> SuspendReport {
    let mut report = SuspendReport {
        asked: sorted.node_count(),
        foreign: sorted.foreign.count,
        ..Default::default()
    };
    let mut by_account: BTreeMap<Account, Vec<String>> = BTreeMap::new();
    for (group, nodes) in sorted.by_group.values() {
        by_account
            .entry(group.account())
            .or_default()
            .extend(nodes.iter().map(|n| n.to_string()));
    }
    for (account, nodes) in by_account {
        let ec2 = clients.get(&account).await;
        let tags = [(CLUSTER_TAG, cluster)];
        let ours = match ec2
            .find(&tags, Some(InstanceState::live()), Some(&nodes))
            .await
        {
            Ok(instances) => instances,
            Err(error) => {
                tracing::error!("Failed to describe instances to terminate in {account}: {error}");
                report.lookup_failures += 1;
                continue;
            }
        };
        for node in &nodes {
            if !ours.iter().any(|i| i.tag("Name") == Some(node.as_str())) {
                tracing::info!("Node {node} has no instance to terminate");
                report.without_instance.push(node.clone());
            }
        }
        let ids: Vec<String> = ours.iter().map(|i| i.id.clone()).collect();
        let failures = ec2.terminate(&ids).await;
        let failed: Vec<String> = failures
            .iter()
            .flat_map(|(ids, _)| ids.iter().cloned())
            .collect();
        for (ids, error) in &failures {
            tracing::error!("Failed to terminate instances {}: {error}", ids.join(", "));
        }
        for instance in ours.iter().filter(|i| !failed.contains(&i.id)) {
            let name = instance.tag("Name").unwrap_or_default();
            tracing::info!("Terminated instance {name} {}", instance.id);
            report.terminated += 1;
        }
        report.failed_instances.extend(failed);
    }
    report
}

pub fn summary(
    report: &SuspendReport,
    calls: &CallCounter,
    scontrol_runs: usize,
    started: Instant,
) -> String {
    format!(
        "Suspend summary: asked {}, terminated {}, without instance {}, failed {}, not ours {}; EC2 calls: {}; scontrol calls: {}; {:.2} s",
        report.asked,
        report.terminated,
        report.without_instance.len(),
        report.failed_instances.len() + report.lookup_failures,
        report.foreign,
        calls.summary(),
        scontrol_runs,
        started.elapsed().as_secs_f64()
    )
}
