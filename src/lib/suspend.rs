//! suspend: Slurm's SuspendProgram. Finds this cluster's instances named for
//! the nodes and terminates them.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::config::CLUSTER_TAG;
use crate::ec2::{self, CallCounter, Clients};
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

/// Terminates the instances of our nodes in `sorted` (names that are not ours
/// were logged by the caller). Only instances that carry this cluster's tag
/// are ever touched.
pub async fn suspend(
    clients: &Clients,
    cluster: &str,
    sorted: &names::Sorted<'_>,
    calls: &CallCounter,
) -> SuspendReport {
    let mut report = SuspendReport {
        asked: sorted.node_count(),
        foreign: sorted.foreign.count,
        ..Default::default()
    };
    let mut by_account: BTreeMap<(String, Option<String>), Vec<String>> = BTreeMap::new();
    for (group, nodes) in sorted.by_group.values() {
        by_account
            .entry(group.account_key())
            .or_default()
            .extend(nodes.iter().map(|n| n.to_string()));
    }
    for (account, nodes) in by_account {
        let Some(client) = clients.get(&account) else {
            report.lookup_failures += 1;
            continue;
        };
        let tags = [(CLUSTER_TAG, cluster)];
        let found =
            ec2::describe_tagged(client, &tags, Some(ec2::live_states()), Some(&nodes), calls)
                .await;
        let ours = match found {
            Ok(instances) => instances,
            Err(error) => {
                tracing::error!(
                    "Failed to describe instances to terminate in {}: {error}",
                    account.0
                );
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
        let failures = ec2::terminate(client, &ids, calls).await;
        let failed: Vec<String> = failures
            .iter()
            .flat_map(|(ids, _)| ids.iter().cloned())
            .collect();
        for (ids, error) in &failures {
            tracing::error!("Failed to terminate instances {}: {error}", ids.join(", "));
        }
        for instance in ours.iter().filter(|i| !failed.contains(&i.id)) {
            tracing::info!(
                "Terminated instance {} {}",
                instance.tag("Name").unwrap_or_default(),
                instance.id
            );
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
