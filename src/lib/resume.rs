//! resume: Slurm's ResumeProgram. Launches an instance for each node that has
//! none, tags it, and tells Slurm its address; nodes it cannot serve are set
//! DOWN at once with the EC2 error code, so their jobs are requeued now.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{CLUSTER_TAG, Config, NODE_GROUP_TAG, NodeGroup, PARTITION_TAG, Settings};
use crate::ec2::{self, Backoff, CallCounter, Clients, Deadline, Ec2Error, Instance};
use crate::lock;
use crate::names::{self, NodeName};
use crate::slurm::{self, NodeAddress, Scontrol};

/// Our own codes, for failures that carry no EC2 error code.
pub const CODE_NO_ADDRESS: &str = "InstanceAddressUnavailable";
pub const CODE_UNFULFILLED: &str = "UnfulfilledCapacity";
pub const CODE_NO_CLIENT: &str = "NoEc2Client";
pub const CODE_SLURM_UPDATE: &str = "SlurmUpdateFailed";
pub const CODE_NO_LOG: &str = "LogFileUnavailable";

#[derive(Debug, Default)]
pub struct ResumeReport {
    pub asked: usize,
    pub launched: usize,
    pub reused: usize,
    /// Nodes that got no instance, by error code.
    pub failed: BTreeMap<String, Vec<String>>,
    /// Nodes that kept the instance an earlier run gave them, but whose
    /// address Slurm refused this time: neither failed nor terminated.
    pub not_updated: Vec<String>,
    pub foreign: usize,
}

impl ResumeReport {
    pub fn failed_count(&self) -> usize {
        self.failed.values().map(Vec::len).sum::<usize>() + self.not_updated.len()
    }

    fn fail(&mut self, code: &str, nodes: impl IntoIterator<Item = String>) {
        self.failed
            .entry(code.to_string())
            .or_default()
            .extend(nodes);
    }
}

/// A node with the instance that serves it.
#[derive(Debug)]
struct Served {
    address: NodeAddress,
    instance_id: String,
    /// Launched by this run (else found running from an earlier one).
    launched_now: bool,
}

/// What serving one node group gave.
#[derive(Debug, Default)]
struct GroupOutcome {
    served: Vec<Served>,
    launched: usize,
    reused: usize,
    failed: Vec<(String, String)>,
    to_terminate: Vec<String>,
}

/// Resumes the nodes named in `names`: launches, tags, updates Slurm, and
/// reports failures to Slurm. Names that are not ours are logged and skipped.
pub async fn resume(
    config: &Config,
    scontrol: &Scontrol,
    clients: &Clients,
    cluster: &str,
    names: &[String],
    calls: Arc<CallCounter>,
) -> ResumeReport {
    let deadline = Deadline::after(config.settings.resume_budget);
    let sorted = names::sort_names(config, names);
    if let Some(line) = sorted.foreign.summary() {
        tracing::warn!("{line}");
    }
    let mut report = ResumeReport {
        asked: sorted.node_count(),
        foreign: sorted.foreign.count,
        ..Default::default()
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (group, nodes) in sorted.by_group.values() {
        let account = group.account_key();
        let Some(client) = clients.get(&account).cloned() else {
            report.fail(CODE_NO_CLIENT, nodes.iter().map(NodeName::to_string));
            continue;
        };
        let (group, nodes, cluster) = ((*group).clone(), nodes.clone(), cluster.to_string());
        let (settings, calls) = (config.settings.clone(), calls.clone());
        let lock_path = lock::path_for(
            &config.log_file,
            &format!("resume-{}-{}", group.partition, group.name),
        );
        tasks.spawn(async move {
            // Another resume of this group (Slurm runs several) must not look
            // up, launch and tag the same nodes at the same time.
            let _held = hold_group_lock(&lock_path, &group, deadline).await;
            let outcome = serve_group(
                &client, &group, &nodes, &cluster, &settings, deadline, calls,
            )
            .await;
            (account, outcome)
        });
    }
    let mut served: Vec<Served> = Vec::new();
    // Instances to terminate, by (Region, ProfileName), so that each account gets one call per 1000.
    let mut to_terminate: BTreeMap<(String, Option<String>), Vec<String>> = BTreeMap::new();
    let mut account_of = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let Ok((account, outcome)) = joined else {
            tracing::error!("A node-group task ended abnormally");
            continue;
        };
        report.launched += outcome.launched;
        report.reused += outcome.reused;
        for (node, code) in outcome.failed {
            report.fail(&code, [node]);
        }
        for one in outcome.served {
            account_of.insert(one.address.node.clone(), account.clone());
            served.push(one);
        }
        to_terminate
            .entry(account)
            .or_default()
            .extend(outcome.to_terminate);
    }

    let addresses: Vec<NodeAddress> = served.iter().map(|s| s.address.clone()).collect();
    let mut refused = BTreeSet::new();
    for (batch, error) in scontrol.update_addresses(&addresses) {
        tracing::error!("Failed to update node information in Slurm: {error}");
        refused.extend(batch.into_iter().map(|a| a.node));
    }
    for one in served {
        let node = one.address.node.clone();
        if !refused.contains(&node) {
            tracing::info!(
                "Launched node {node} {} {}",
                one.instance_id,
                one.address.address
            );
        } else if one.launched_now {
            if let Some(account) = account_of.get(&node) {
                to_terminate
                    .entry(account.clone())
                    .or_default()
                    .push(one.instance_id);
            }
            report.fail(CODE_SLURM_UPDATE, [node]);
        } else {
            // An earlier run's instance may serve a job: only Slurm or suspend may end it.
            tracing::error!(
                "Node {node} keeps its instance {} from an earlier run, but Slurm refused its address",
                one.instance_id
            );
            report.not_updated.push(node);
        }
    }
    // Jobs are requeued now; terminations may take their retries afterwards.
    report_failures_to_slurm(scontrol, &report);
    for (account, ids) in to_terminate.iter().filter(|(_, ids)| !ids.is_empty()) {
        let Some(client) = clients.get(account) else {
            continue;
        };
        tracing::info!(
            "Terminating instances that serve no node: {}",
            ids.join(", ")
        );
        for (ids, error) in ec2::terminate(client, ids, &calls).await {
            tracing::error!("Failed to terminate {}: {error}", ids.join(", "));
        }
    }
    report
}

/// The node group's resume lock, waited for during half of what is left of
/// the budget; without it (held too long, or no lock file) resume goes on,
/// and the look-up of the next run or change-state reaps any duplicate.
async fn hold_group_lock(
    path: &std::path::Path,
    group: &NodeGroup,
    deadline: Deadline,
) -> Option<lock::Held> {
    let wait = Deadline::after(deadline.remaining() / 2);
    match lock::lock_before(path, wait).await {
        Ok(Some(held)) => Some(held),
        Ok(None) => {
            tracing::warn!(
                "Another resume of {} held {} too long: going on without it",
                group.node_prefix(),
                path.display()
            );
            None
        }
        Err(error) => {
            tracing::warn!("{error}: going on without the lock");
            None
        }
    }
}

/// Without a log file nobody could tell what a launch did: launches nothing
/// and fails our nodes with `(Code:LogFileUnavailable)`, so that their jobs
/// are requeued now.
pub fn refuse_without_log(
    config: &Config,
    scontrol: &Scontrol,
    names: &[String],
    reason: &str,
) -> ResumeReport {
    let sorted = names::sort_names(config, names);
    let mut report = ResumeReport {
        asked: sorted.node_count(),
        foreign: sorted.foreign.count,
        ..Default::default()
    };
    let nodes = sorted
        .by_group
        .values()
        .flat_map(|(_, nodes)| nodes.iter().map(NodeName::to_string));
    report.fail(CODE_NO_LOG, nodes);
    tracing::error!("Launching nothing: {reason}");
    report_failures_to_slurm(scontrol, &report);
    report
}

/// `scontrol update nodename=<list> state=DOWN reason="(Code:…)…"`, one call
/// per code, so that their jobs are requeued now; then `state=POWER_DOWN_FORCE`,
/// so that they do not sit powering up with no address until ResumeTimeout
/// (the reason stays, and change-state reads the code from it).
fn report_failures_to_slurm(scontrol: &Scontrol, report: &ResumeReport) {
    for (code, nodes) in &report.failed {
        let reason = slurm::reason::resume_failure(code);
        let names = crate::hostlist::compress(nodes);
        tracing::error!("Failed to resume {} node(s) ({code}): {names}", nodes.len());
        for (batch, error) in scontrol.set_state(nodes, "DOWN", Some(&reason)) {
            tracing::error!(
                "Failed to set {} DOWN: {error}",
                crate::hostlist::compress(&batch)
            );
        }
    }
    let all: Vec<String> = report.failed.values().flatten().cloned().collect();
    for (batch, error) in scontrol.set_state(&all, "POWER_DOWN_FORCE", None) {
        tracing::error!(
            "Failed to power down {}: {error}",
            crate::hostlist::compress(&batch)
        );
    }
}

async fn serve_group(
    client: &aws_sdk_ec2::Client,
    group: &NodeGroup,
    nodes: &[NodeName],
    cluster: &str,
    settings: &Settings,
    deadline: Deadline,
    calls: Arc<CallCounter>,
) -> GroupOutcome {
    let mut outcome = GroupOutcome::default();
    let wanted: BTreeSet<String> = nodes.iter().map(NodeName::to_string).collect();
    let existing = match find_live_instances(client, group, cluster, &calls).await {
        Ok(instances) => instances,
        Err(error) => {
            tracing::error!(
                "Cannot look for existing instances of {}: {error}",
                group.node_prefix()
            );
            outcome.failed = wanted
                .into_iter()
                .map(|n| (n, error.code.clone()))
                .collect();
            return outcome;
        }
    };
    let (reused, duplicates) = pick_existing(&wanted, existing);
    outcome.to_terminate.extend(duplicates);
    let mut pending_address: Vec<(String, String)> = Vec::new();
    for (node, instance) in &reused {
        tracing::info!(
            "Node {node} already has instance {} ({}): not launching another",
            instance.id,
            instance.state
        );
        outcome.reused += 1;
        pending_address.push((node.clone(), instance.id.clone()));
    }
    let to_launch: Vec<String> = nodes
        .iter()
        .map(NodeName::to_string)
        .filter(|n| !reused.contains_key(n))
        .collect();

    let launch_tags = ec2::launch_tags(group, cluster);
    // Each batch's instances go to that batch's nodes: (nodes served, instance ids).
    let mut batches: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    let mut queue = to_launch.as_slice();
    for size in ec2::fleet_request_plan(to_launch.len(), settings.fleet_batch_size) {
        let (batch, rest) = queue.split_at(size);
        queue = rest;
        let mut tags = launch_tags.clone();
        // A one-node batch can carry its Name from launch: its node is known.
        if let [only] = batch {
            tags.push(("Name".to_string(), only.clone()));
        }
        let (ids, shortfall_code) =
            launch_batch(client, group, size, &tags, deadline, &calls).await;
        // Nodes are served in id order; the tail of the batch waits for capacity.
        let served = ids.len().min(size);
        if let Some(code) = shortfall_code {
            outcome
                .failed
                .extend(batch[served..].iter().map(|n| (n.clone(), code.clone())));
        }
        outcome.to_terminate.extend(ids.iter().skip(size).cloned());
        batches.push((
            batch[..served].to_vec(),
            ids.into_iter().take(size).collect(),
        ));
    }

    let mut all_ids: Vec<String> = batches
        .iter()
        .flat_map(|(_, ids)| ids.iter().cloned())
        .collect();
    all_ids.extend(pending_address.iter().map(|(_, id)| id.clone()));
    let described = wait_for_addresses(client, &all_ids, deadline, &calls).await;

    // Reused instances keep their node; new ones are handed out in a stable order.
    let mut assignments: Vec<(String, Instance, bool)> = Vec::new();
    for (node, id) in pending_address {
        match described.get(&id) {
            Some(instance) => assignments.push((node, instance.clone(), false)),
            None => outcome.failed.push((node, CODE_NO_ADDRESS.to_string())),
        }
    }
    for (nodes, ids) in batches {
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
                assignments.push((node, instance.clone(), true));
            }
        }
        outcome
            .failed
            .extend(nodes.map(|n| (n, CODE_NO_ADDRESS.to_string())));
    }

    // Only instances that lack some of their tags need a CreateTags.
    let requests: Vec<(String, Vec<(String, String)>)> = assignments
        .iter()
        .filter_map(|(node, instance, _)| {
            let address = instance.address.clone().unwrap_or_default();
            let hostname = instance.hostname().unwrap_or_default();
            let tags = ec2::node_tags(group, node, &address, &hostname);
            let missing = tags
                .iter()
                .any(|(k, v)| instance.tag(k) != Some(v.as_str()));
            missing.then(|| (instance.id.clone(), tags))
        })
        .collect();
    let failures = ec2::create_tags_concurrently(
        client,
        requests,
        settings.tag_concurrency,
        deadline,
        calls.clone(),
    )
    .await;
    let untagged: BTreeMap<String, Ec2Error> = failures.into_iter().collect();
    for (node, instance, is_new) in assignments {
        if let Some(error) = untagged.get(&instance.id) {
            tracing::error!("Failed to tag node {node} ({}): {error}", instance.id);
            outcome.to_terminate.push(instance.id.clone());
            outcome.failed.push((node, error.code.clone()));
            continue;
        }
        if is_new {
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
            launched_now: is_new,
        });
    }
    outcome
}

/// This cluster's pending or running instances of `group`, found by the
/// cluster, partition and node-group tags (names are matched locally).
async fn find_live_instances(
    client: &aws_sdk_ec2::Client,
    group: &NodeGroup,
    cluster: &str,
    calls: &CallCounter,
) -> Result<Vec<Instance>, Ec2Error> {
    let tags = [
        (CLUSTER_TAG, cluster),
        (PARTITION_TAG, group.partition.as_str()),
        (NODE_GROUP_TAG, group.name.as_str()),
    ];
    let live = vec!["pending".to_string(), "running".to_string()];
    ec2::describe_tagged(client, &tags, Some(live), None, calls).await
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
                i.state != "running",
                i.launch_time.unwrap_or(i64::MAX),
                i.id.clone(),
            )
        });
        let mut list = list.into_iter();
        if let Some(first) = list.next() {
            keep.insert(node.clone(), first);
        }
        for duplicate in list {
            tracing::warn!(
                "Node {node} has a second instance {}: terminating it",
                duplicate.id
            );
            extra.push(duplicate.id);
        }
    }
    (keep, extra)
}

/// Launches up to `count` instances, retrying a shortfall caused by throttling
/// (an HTTP error or an `Errors` entry) with back-off until the deadline.
/// Returns the instance ids and, when fewer than `count` launched, the code
/// that explains it.
async fn launch_batch(
    client: &aws_sdk_ec2::Client,
    group: &NodeGroup,
    count: usize,
    tags: &[(String, String)],
    deadline: Deadline,
    calls: &CallCounter,
) -> (Vec<String>, Option<String>) {
    let mut ids: Vec<String> = Vec::new();
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    loop {
        let wanted = count - ids.len().min(count);
        let code = match ec2::create_fleet(client, group, wanted, tags, calls).await {
            Ok(outcome) => {
                for (code, message) in &outcome.errors {
                    tracing::warn!(
                        "EC2 Fleet error for {} - {code}: {message}",
                        group.node_prefix()
                    );
                }
                let got = outcome.instance_ids.len();
                ids.extend(outcome.instance_ids);
                if got >= wanted {
                    return (ids, None);
                }
                let codes: Vec<&String> = outcome.errors.iter().map(|(c, _)| c).collect();
                match codes.iter().find(|c| !ec2::is_throttling(c)) {
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
/// back-off, until the deadline. Returns the instances that have one.
async fn wait_for_addresses(
    client: &aws_sdk_ec2::Client,
    ids: &[String],
    deadline: Deadline,
    calls: &CallCounter,
) -> BTreeMap<String, Instance> {
    let mut ready = BTreeMap::new();
    let mut backoff = Backoff::new(Duration::from_millis(300), Duration::from_secs(3));
    let mut missing: Vec<String> = ids.to_vec();
    while !missing.is_empty() {
        match ec2::describe_ids(client, &missing, calls).await {
            Ok(instances) => {
                for instance in instances
                    .into_iter()
                    .filter(|i| i.address.is_some() && i.is_live())
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

/// Reads `SLURM_RESUME_FILE` (it disappears with slurmctld) and returns the job
/// ids it names, for the log.
pub fn read_resume_file(path: &std::path::Path) -> Result<Vec<u64>, String> {
    let text = crate::files::read_bounded(path, crate::files::MAX_CONFIG_BYTES)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_resume_file(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

/// The job ids of a resume file's text.
pub fn parse_resume_file(text: &str) -> Result<Vec<u64>, serde_json::Error> {
    let json: serde_json::Value = serde_json::from_str(text)?;
    Ok(json
        .get("jobs")
        .and_then(|jobs| jobs.as_array())
        .map(|jobs| {
            jobs.iter()
                .filter_map(|j| j.get("job_id")?.as_u64())
                .collect()
        })
        .unwrap_or_default())
}

/// The one summary line of a run.
pub fn summary(
    report: &ResumeReport,
    calls: &CallCounter,
    scontrol: &Scontrol,
    started: Instant,
) -> String {
    let failed = if report.failed_count() == 0 {
        "0".to_string()
    } else {
        let codes: Vec<String> = report
            .failed
            .iter()
            .map(|(c, n)| format!("{c}: {}", n.len()))
            .collect();
        let mut codes = codes;
        if !report.not_updated.is_empty() {
            codes.push(format!(
                "address refused, instance kept: {}",
                report.not_updated.len()
            ));
        }
        format!("{} ({})", report.failed_count(), codes.join(", "))
    };
    format!(
        "Resume summary: asked {}, launched {}, reused {}, failed {failed}, not ours {}; EC2 calls: {}; scontrol calls: {}; {:.2} s",
        report.asked,
        report.launched,
        report.reused,
        report.foreign,
        calls.summary(),
        scontrol.runs(),
        started.elapsed().as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, name: &str, state: &str, launch: i64) -> Instance {
        Instance {
            id: id.into(),
            state: state.into(),
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

    proptest::proptest! {
        #[test]
        fn any_resume_file_is_read_or_refused_with_its_path(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("resume.json");
            std::fs::write(&path, &bytes).unwrap();
            if let Err(message) = read_resume_file(&path) {
                proptest::prop_assert!(message.contains("resume.json"), "{}", message);
            }
        }
    }

    #[test]
    fn reads_job_ids_of_both_resume_file_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resume.json");
        std::fs::write(&path, r#"{"jobs":[{"job_id":1,"nodes":"aws-node-[0-1]"},{"job_id":7,"nodes_resume":"x"}],"all_nodes":"aws-node-[0-1]"}"#).unwrap();
        assert_eq!(read_resume_file(&path).unwrap(), vec![1, 7]);
        assert!(
            read_resume_file(&dir.path().join("gone"))
                .unwrap_err()
                .contains("cannot read")
        );
    }
}
