//! resume: Slurm's ResumeProgram. Launches an instance for each node that has
//! none, tags it, and tells Slurm its address; nodes it cannot serve are set
//! DOWN at once with the EC2 error code, so their jobs are requeued now.
//!
//! The flow runs one way: per node group, EC2 (look-up, launch, describe,
//! one node-list tag per reservation) → Slurm gets the addresses → failed
//! nodes DOWN → instances that serve no node terminated → the `Name` tags,
//! paced, while the budget lasts.

mod file;
pub(crate) mod jobs;
mod launch;
mod report;
mod serve;
mod warm;

pub use file::{parse_resume_file, read_resume_file};
pub use jobs::{ACCOUNT_TAG, JOB_ID_TAG, JobOwner, Jobs, ResumeFile, USER_TAG};
pub use report::ResumeReport;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;

use super::{Context, Hostlist, Outcome, Run};
use crate::budget::Deadline;
use crate::code::Ours;
use crate::config::{Config, NodeGroup};
use crate::ec2::{Account, CallCounter};
use crate::events::{About, EventLog, Kind, Why};
use crate::lock;
use crate::logging::Logging;
use crate::names::{self, NodeName};
use crate::slurm::{self, NodeAddress, NodeInstance, Scontrol};
use serve::{GroupOutcome, GroupRun, Served};

/// `SLURM_RESUME_FILE` as read at the start of the run (it vanishes with slurmctld).
pub type ResumeFileRead = Option<(OsString, Result<ResumeFile, String>)>;

/// The program: `resume <hostlist>`.
pub fn run(context: &Context, hostlist: &Hostlist, resume_file: &ResumeFileRead) -> Outcome {
    let outcome = resume_hostlist(context, hostlist, resume_file);
    super::finish(context, "resume", outcome)
}

fn resume_hostlist(
    context: &Context,
    hostlist: &Hostlist,
    resume_file: &ResumeFileRead,
) -> Outcome {
    let config = context.config;
    let none = ResumeFile::default();
    let file = match resume_file {
        Some((_, Ok(file))) => {
            tracing::info!("Resume file names job(s): {:?}", file.job_ids());
            tracing::debug!("Resume file: {}", file.text.trim());
            file
        }
        Some((path, Err(error))) => {
            let path = path.to_string_lossy();
            tracing::warn!("SLURM_RESUME_FILE {path}: {error}; serving the nodes of the hostlist");
            &none
        }
        None => &none,
    };
    let names = match hostlist.expand() {
        Ok(names) => names,
        Err(outcome) => return outcome,
    };
    // Nodes that cannot be served are failed at once, not left to ResumeTimeout.
    let refused_line = crate::logging::write_failure()
        .map(|failure| format!("the log file refuses lines ({failure})"));
    let refusal = match (
        &context.logging,
        refused_line,
        crate::ec2::check_trust_store(),
    ) {
        (Logging::Fallback { reason }, _, _) => Some((Ours::LogFileUnavailable, reason.clone())),
        (_, Some(reason), _) => Some((Ours::LogFileUnavailable, reason)),
        (_, _, Err(error)) => Some((Ours::NoCACertificates, error.to_string())),
        _ => None,
    };
    if let Some((code, reason)) = refusal {
        let scontrol = Scontrol::new(&config.scontrol(), config.settings.scontrol_timeout);
        let report = refuse(config, &scontrol, &names, code, &reason);
        let tally = super::tally(&CallCounter::default(), scontrol.runs(), context.started);
        tracing::info!("{}", report.summary(&tally));
        return Outcome::Failed;
    }
    let run = match Run::begin(config, context.started, super::Budget::power_save(config)) {
        Ok(run) => run,
        Err(error) => {
            tracing::error!("{error}");
            return Outcome::Failed;
        }
    };
    let jobs = Jobs::new(file, owners(&run, file), config.settings.job_tags);
    let report = resume(&run, &jobs, &context.events, &names);
    tracing::info!("{}", report.summary(&run.tally()));
    run.record_trouble(&context.events);
    match report.failed_count() {
        0 => Outcome::Done,
        _ => Outcome::Failed,
    }
}

/// Who runs the resume file's jobs: one `squeue` call for all of them, when
/// `JobTags` is on, within a quarter of the run's budget. A failure costs
/// the user and account tags, never a node.
fn owners(run: &Run, file: &ResumeFile) -> BTreeMap<u64, JobOwner> {
    let config = run.config;
    if !config.settings.job_tags || file.jobs.is_empty() {
        return BTreeMap::new();
    }
    let squeue = slurm::SlurmCommand::new(
        &config.slurm_bin.join("squeue"),
        config.settings.scontrol_timeout,
    )
    .until(std::time::Instant::now() + run.deadline.remaining() / 4);
    match squeue.run(&jobs::squeue_arguments(&file.job_ids())) {
        Ok(text) => jobs::parse_owners(&text),
        Err(error) => {
            tracing::warn!(
                "Cannot ask squeue who runs the jobs, so no user or account tags: {error}"
            );
            BTreeMap::new()
        }
    }
}

/// Resumes the nodes named in `names`: launches, tags, updates Slurm, and
/// reports failures to Slurm. Names that are not ours are summarised and skipped.
pub fn resume(run: &Run, jobs: &Jobs, events: &EventLog, names: &[String]) -> ResumeReport {
    let sorted = names::sort_names(run.config, names);
    if let Some(line) = sorted.foreign.summary() {
        tracing::warn!("{line}");
    }
    let mut report = ResumeReport {
        asked: sorted.node_count(),
        foreign: sorted.foreign.count,
        ..Default::default()
    };
    let Gathered {
        served,
        mut to_terminate,
        deferred_tags,
    } = run.block_on(serve_groups(run, jobs, &sorted, &mut report));
    let from_pool: BTreeSet<String> = served
        .iter()
        .filter(|(_, s)| s.from_pool)
        .map(|(_, s)| s.instance_id.clone())
        .collect();
    let (refused, placed) = tell_slurm(&run.scontrol, served, &mut report);
    record_launches(run.config, events, jobs, &placed, &from_pool);
    for (account, id) in refused {
        to_terminate.entry(account).or_default().push(id);
    }
    // Jobs are requeued now; terminations may take their retries afterwards.
    report_failures_to_slurm(&run.scontrol, &report);
    record_failures(events, jobs, &report);
    run.block_on(terminate_unserved(run, events, &to_terminate));
    let concurrency = run.config.settings.tag_concurrency;
    record_instances(&run.scontrol, &placed, run.deadline, concurrency);
    let placed_ids: BTreeSet<&str> = placed.iter().map(|p| p.instance_id.as_str()).collect();
    run.block_on(async {
        for (account, mut requests) in deferred_tags {
            requests.retain(|(id, _)| placed_ids.contains(id.as_str()));
            let ec2 = run.clients.get(&account).await;
            name_after_slurm(&ec2, requests, concurrency, run.deadline).await;
        }
    });
    report
}

/// Serves every node group at once, each in a task of its own under the
/// group's lock, and gathers what they gave.
async fn serve_groups(
    run: &Run<'_>,
    jobs: &Jobs,
    sorted: &names::Sorted<'_>,
    report: &mut ResumeReport,
) -> Gathered {
    let mut tasks = tokio::task::JoinSet::new();
    let mut nodes_of_task = BTreeMap::new();
    for (group, nodes) in sorted.by_group.values() {
        let ec2 = run.clients.get(&group.account()).await;
        let (group, nodes) = ((*group).clone(), nodes.clone());
        let cluster = run.cluster.to_string();
        let (settings, jobs, deadline) = (run.config.settings.clone(), jobs.clone(), run.deadline);
        let lock_path = lock::path_for(
            &run.config.state_dir,
            &format!("resume-{}-{}", group.partition, group.name),
        );
        let names: Vec<String> = nodes.iter().map(NodeName::to_string).collect();
        let state_dir = run.config.state_dir.clone();
        let task = tasks.spawn(async move {
            // Another resume of this group (Slurm runs several) must not look
            // up, launch and tag the same nodes at the same time.
            let _held = hold_group_lock(&lock_path, &group, deadline).await;
            let group_run = GroupRun {
                ec2: &ec2,
                group: &group,
                cluster: &cluster,
                settings: &settings,
                jobs: &jobs,
                deadline,
                state_dir: &state_dir,
            };
            (ec2.account().clone(), group_run.serve(&nodes).await)
        });
        nodes_of_task.insert(task.id(), names);
    }
    gather(tasks, nodes_of_task, report).await
}

/// One `launch` event per node that got its instance: what it is, how it
/// is paid for and for whom, for `slurm-ec2 cost`; one started from a warm
/// pool says so.
fn record_launches(
    config: &Config,
    events: &EventLog,
    jobs: &Jobs,
    placed: &[NodeInstance],
    from_pool: &BTreeSet<String>,
) {
    for one in placed {
        let job_id = jobs.job_of(&one.node);
        let owner = job_id.and_then(|id| jobs.owners.get(&id));
        let purchasing = names::parse(config, &one.node)
            .ok()
            .map(|(_, group)| group.purchasing.label());
        let job_ids: Vec<u64> = job_id.into_iter().collect();
        let about = About {
            node: Some(&one.node),
            instance: Some(&one.instance_id),
            job_ids: &job_ids,
            instance_type: Some(one.instance_type.as_str()).filter(|t| !t.is_empty()),
            purchasing_option: purchasing,
            user: owner.map(|o| o.user.as_str()).filter(|u| !u.is_empty()),
            account: owner.map(|o| o.account.as_str()).filter(|a| !a.is_empty()),
            detail: from_pool
                .contains(&one.instance_id)
                .then_some("started from the warm pool"),
            ..Default::default()
        };
        events.record(Kind::Launch, about);
    }
}

/// One `failure` event per node that got none, with its code.
fn record_failures(events: &EventLog, jobs: &Jobs, report: &ResumeReport) {
    for (code, nodes) in &report.failed {
        for node in nodes {
            let job_ids: Vec<u64> = jobs.job_of(node).into_iter().collect();
            let about = About {
                node: Some(node),
                job_ids: &job_ids,
                code: Some(code.as_str()),
                ..Default::default()
            };
            events.record(Kind::Failure, about);
        }
    }
}

/// Terminates the instances that serve no node (duplicates, surplus, those
/// Slurm refused), each account's in batches, and records each.
async fn terminate_unserved(
    run: &Run<'_>,
    events: &EventLog,
    to_terminate: &BTreeMap<Account, Vec<String>>,
) {
    for (account, ids) in to_terminate.iter().filter(|(_, ids)| !ids.is_empty()) {
        let ec2 = run.clients.get(account).await;
        tracing::info!(
            "Terminating instances that serve no node: {}",
            ids.join(", ")
        );
        for (ids, error) in ec2.terminate(ids).await {
            tracing::error!("Failed to terminate {}: {error}", ids.join(", "));
        }
        for id in ids {
            let about = About {
                instance: Some(id),
                why: Some(Why::Unserved),
                ..Default::default()
            };
            events.record(Kind::Termination, about);
        }
    }
}

/// The `Name` (and placeholder and job) tags of instances their
/// reservation's tag already names, once Slurm has every address: paced to
/// the CreateTags bucket while the budget lasts. What is left, change-state
/// writes; nothing fails a node here.
async fn name_after_slurm(
    ec2: &crate::ec2::Ec2,
    requests: Vec<crate::ec2::TagRequest>,
    concurrency: usize,
    deadline: Deadline,
) {
    if requests.is_empty() {
        return;
    }
    let count = requests.len();
    let failures = ec2.tag_each(requests, concurrency, deadline).await;
    match failures.first() {
        None => tracing::info!("Name tags written on {count} instance(s)"),
        Some((_, error)) => tracing::warn!(
            "Name tags of {} of {count} instance(s) not written ({error}): change-state writes them",
            failures.len()
        ),
    }
}

/// At most this many nodes get their InstanceId from resume on Slurm before
/// 25.11.6, one `scontrol update` each: slurmctld 24.11.5 answered 500 of
/// them, four at a time, in 92 s (about 185 ms each, one after another).
const PER_NODE_RECORDS: usize = 25;

/// Slurm's InstanceId and InstanceType of the served nodes (23.11+), once
/// every address is told, while the budget lasts: in batches from 25.11.6;
/// before, one call per node, so only for small bursts. For the others slurmd
/// reports them when it registers (get-nodename's `SLURM_EC2_SLURMD_ARGS`),
/// and change-state records what is still missing; tags find the instances
/// meanwhile.
fn record_instances(
    scontrol: &Scontrol,
    placed: &[NodeInstance],
    deadline: Deadline,
    concurrency: usize,
) {
    if placed.is_empty() {
        return;
    }
    let batched = scontrol.version().is_some_and(|v| v.batches_instance_ids());
    if !batched && placed.len() > PER_NODE_RECORDS {
        tracing::info!(
            "InstanceId of {} node(s) left to slurmd's registration and change-state (one scontrol call per node before Slurm 25.11.6)",
            placed.len()
        );
        return;
    }
    let until = std::time::Instant::now() + deadline.remaining();
    let failures = scontrol.set_instances(placed, concurrency.min(4), until);
    if let Some((_, error)) = failures.first() {
        let nodes: Vec<String> = failures.iter().flat_map(|(n, _)| n.clone()).collect();
        tracing::warn!(
            "InstanceId not set in Slurm for {} node(s): {} (first error: {error}); change-state sets it",
            nodes.len(),
            crate::hostlist::compress(&nodes)
        );
    }
}

/// What the node groups' tasks gave, by account.
#[derive(Default)]
struct Gathered {
    served: Vec<(Account, Served)>,
    to_terminate: BTreeMap<Account, Vec<String>>,
    deferred_tags: BTreeMap<Account, Vec<crate::ec2::TagRequest>>,
}

/// The groups' outcomes. A node-group task that panicked or was cancelled:
/// its nodes fail (`InternalError`) like any other failure, so that Slurm
/// hears of them now.
async fn gather(
    mut tasks: tokio::task::JoinSet<(Account, GroupOutcome)>,
    mut nodes_of_task: BTreeMap<tokio::task::Id, Vec<String>>,
    report: &mut ResumeReport,
) -> Gathered {
    let mut gathered = Gathered::default();
    while let Some(joined) = tasks.join_next_with_id().await {
        let (account, outcome) = match joined {
            Ok((_, result)) => result,
            Err(error) => {
                let nodes = nodes_of_task.remove(&error.id()).unwrap_or_default();
                tracing::error!(
                    "The task of {} node(s) ended abnormally ({error}); failing them: {}",
                    nodes.len(),
                    crate::hostlist::compress(&nodes)
                );
                report.fail(Ours::InternalError, nodes);
                continue;
            }
        };
        report.launched += outcome.launched;
        report.reused += outcome.reused;
        report.from_pool += outcome.from_pool;
        for failure in outcome.failed {
            report.fail(failure.code, [failure.node.to_string()]);
        }
        let served = outcome.served.into_iter().map(|s| (account.clone(), s));
        gathered.served.extend(served);
        gathered
            .to_terminate
            .entry(account.clone())
            .or_default()
            .extend(outcome.to_terminate);
        gathered
            .deferred_tags
            .entry(account.clone())
            .or_default()
            .extend(outcome.deferred_tags);
    }
    gathered
}

/// Gives Slurm every served node's address. When Slurm refuses a batch, the
/// instances this run launched for it are returned to be terminated (their
/// nodes failed); an earlier run's instance is kept, since it may serve a job.
fn tell_slurm(
    scontrol: &Scontrol,
    served: Vec<(Account, Served)>,
    report: &mut ResumeReport,
) -> (Vec<(Account, String)>, Vec<NodeInstance>) {
    let addresses: Vec<NodeAddress> = served.iter().map(|(_, s)| s.address.clone()).collect();
    let mut refused = BTreeSet::new();
    for (batch, error) in scontrol.update_addresses(&addresses) {
        tracing::error!("Failed to update node information in Slurm: {error}");
        refused.extend(batch.into_iter().map(|a| a.node));
    }
    let mut to_terminate = Vec::new();
    let mut placed = Vec::new();
    for (account, one) in served {
        let node = one.address.node.clone();
        if !refused.contains(&node) {
            let how = match one.from_pool {
                true => "Started pooled node",
                false => "Launched node",
            };
            tracing::info!("{how} {node} {} {}", one.instance_id, one.address.address);
            placed.push(NodeInstance {
                node,
                instance_id: one.instance_id,
                instance_type: one.instance_type,
            });
        } else if one.launched_now {
            to_terminate.push((account, one.instance_id));
            report.fail(Ours::SlurmUpdateFailed, [node]);
        } else {
            tracing::error!(
                "Node {node} keeps its instance {} from an earlier run, but Slurm refused its address",
                one.instance_id
            );
            report.not_updated.push(node);
        }
    }
    (to_terminate, placed)
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

/// Launches nothing and fails our nodes with `code`, so that their jobs are
/// requeued now: without a log file nobody could tell what a launch did
/// (`LogFileUnavailable`), without CA certificates no AWS call can be made
/// (`NoCACertificates`).
pub fn refuse(
    config: &Config,
    scontrol: &Scontrol,
    names: &[String],
    code: Ours,
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
    report.fail(code, nodes);
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
        let reason = slurm::reason::resume_failure(code.as_str());
        let names = crate::hostlist::compress(nodes);
        tracing::error!("Failed to resume {} node(s) ({code}): {names}", nodes.len());
        for (batch, error) in scontrol.set_state(nodes, "DOWN", Some(&reason)) {
            let batch = crate::hostlist::compress(&batch);
            tracing::error!("Failed to set {batch} DOWN: {error}");
        }
    }
    let all: Vec<String> = report.failed.values().flatten().cloned().collect();
    for (batch, error) in scontrol.power_down_force(&all) {
        let batch = crate::hostlist::compress(&batch);
        tracing::error!("Failed to power down {batch}: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::Code;

    #[tokio::test]
    async fn a_node_group_task_that_panics_fails_its_nodes() {
        let mut tasks: tokio::task::JoinSet<(Account, GroupOutcome)> = tokio::task::JoinSet::new();
        let task = tasks.spawn(async { panic!("a bug in a node group's task") });
        let nodes = vec!["aws-od-0".to_string(), "aws-od-1".to_string()];
        let nodes_of_task = BTreeMap::from([(task.id(), nodes.clone())]);
        let mut report = ResumeReport::default();
        let gathered = gather(tasks, nodes_of_task, &mut report).await;
        assert!(gathered.served.is_empty());
        let internal = Code::from(Ours::InternalError);
        assert_eq!(report.failed.get(&internal), Some(&nodes));
        assert_eq!(report.failed_count(), 2);
    }
}
