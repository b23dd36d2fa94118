//! change-state: run every minute by cron. Reads this cluster's nodes from
//! Slurm and its instances from EC2, and repairs both by the table in
//! [`plan`]. Safe under cron: an exclusive lock, and nothing on a backup
//! controller while the primary is up.

pub mod breaker;
pub mod gauges;
pub mod jobs;
pub mod plan;
pub mod pools;
mod rules;
mod step;

use std::collections::BTreeMap;

use super::{Context, Outcome, Run};
use crate::code::{Code, Ours};
use crate::config::Config;
use crate::ec2::{self, Account, CLUSTER_TAG, Health, InstanceState};
use crate::events::{About, EventLog, Kind, Why};
use crate::lock;
use crate::slurm::{self, NodeInstance, Scontrol, SlurmError};
use breaker::{BreakerSettings, Breakers};
pub use plan::{Action, Found, Inputs, Step};

/// How long a run may spend recording instances in Slurm (one call per node
/// before Slurm 25.11.6); the next run goes on where it stopped.
const RECORD_TIME: std::time::Duration = std::time::Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum ChangeStateError {
    #[error("cannot read the nodes from Slurm: {0}")]
    Slurm(#[from] SlurmError),
    #[error("cannot list this cluster's instances in {account}: {source}")]
    Ec2 {
        account: Account,
        #[source]
        source: Box<ec2::Ec2Error>,
    },
}

/// Takes change-state's lock in `StateDirectory`; `None` when another run holds it.
pub fn lock(config: &Config) -> Result<Option<lock::Held>, lock::LockError> {
    lock::try_lock(&lock::path_for(&config.state_dir, "change-state"))
}

/// Whether this host should act: not when it is a backup controller while
/// the first controller that answers `scontrol ping` is another host.
pub fn should_run(ping_output: &str, hostname: &str) -> bool {
    let short = hostname.split('.').next().unwrap_or(hostname);
    let controllers: Vec<(&str, bool)> = ping_output
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("Slurmctld(")?;
            let (_, rest) = rest.split_once(") at ")?;
            let (host, status) = rest.split_once(" is ")?;
            Some((host.trim(), status.trim().starts_with("UP")))
        })
        .collect();
    let is_controller = controllers.iter().any(|(h, _)| *h == short);
    match controllers.iter().find(|(_, up)| *up) {
        Some((active, _)) if is_controller => *active == short,
        _ => true,
    }
}

/// The program: `change-state [--dry-run]`.
pub fn run(context: &Context, dry_run: bool) -> Outcome {
    let config = context.config;
    let _lock = match lock(config) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            tracing::info!("Another change-state run holds the lock: nothing to do");
            if dry_run {
                eprintln!("change-state: another change-state run holds the lock; no plan printed");
            }
            return Outcome::Done;
        }
        Err(error) => {
            tracing::error!("{error}");
            return Outcome::Failed;
        }
    };
    let budget = super::Budget::both(super::CHANGE_STATE_BUDGET);
    let run = match Run::begin(config, context.started, budget) {
        Ok(run) => run,
        Err(error) => {
            tracing::error!("{error}");
            return failed_before_reading(context, dry_run);
        }
    };
    let hostname = super::hostname().unwrap_or_default();
    match run.scontrol.run(&["ping".into()]) {
        Ok(ping) if !should_run(&ping, &hostname) => {
            tracing::info!("This host is a backup controller and the primary is up: nothing to do");
            return Outcome::Done;
        }
        Ok(_) => {}
        Err(error) => {
            tracing::error!("Cannot reach slurmctld: {error}");
            return failed_before_reading(context, dry_run);
        }
    }
    let planned = make_plan(&run, super::epoch_seconds()).inspect_err(|error| {
        tracing::error!("{error}");
    });
    let failures = match &planned {
        Ok(planned) if dry_run => {
            print!("{}", table(&planned.steps));
            for change in &planned.breakers.changes {
                println!("{change}");
            }
            Some(0)
        }
        Ok(planned) => Some(carry_out(&run, planned, &context.events)),
        Err(_) => None,
    };
    tracing::info!(
        "Change-state summary: failed actions {}; {}",
        failures.map_or("all".to_string(), |f| f.to_string()),
        run.tally()
    );
    let outcome = match failures {
        Some(0) => Outcome::Done,
        _ => Outcome::Failed,
    };
    if !dry_run {
        report(context, &run, planned.ok().as_ref(), outcome);
    }
    outcome
}

/// A run that could not start reading Slurm and EC2: recorded as failed,
/// and the metrics say so (`slurm_ec2_observed 0`).
fn failed_before_reading(context: &Context, dry_run: bool) -> Outcome {
    if !dry_run {
        super::finish(context, "change_state", Outcome::Failed);
        crate::metrics::write_file(context.config, None, super::epoch_seconds());
    }
    Outcome::Failed
}

/// What a run leaves for the administrator besides its log: its EC2
/// trouble in the event log, its last run, and the metrics.
fn report(context: &Context, run: &Run, planned: Option<&Planned>, outcome: Outcome) {
    run.record_trouble(&context.events);
    super::finish(context, "change_state", outcome);
    let gauges = planned.map(|p| gauges::gauges(run.config, &p.observation, &p.steps));
    crate::metrics::write_file(run.config, gauges.as_ref(), super::epoch_seconds());
}

/// A run's plan, and the breakers as they will be once it is carried out.
pub struct Planned {
    pub steps: Vec<Step>,
    pub breakers: Observed,
    pub observation: Observation,
}

/// The breakers as read, and as this run's nodes leave them.
pub struct Observed {
    /// As the last run left them: written again only when they change.
    pub read: Breakers,
    pub now: Breakers,
    /// What this run changes in them.
    pub changes: Vec<breaker::Change>,
}

/// Carries out the plan and keeps the breakers; returns how many actions failed.
fn carry_out(run: &Run, planned: &Planned, events: &EventLog) -> usize {
    let breakers = &planned.breakers;
    for change in &breakers.changes {
        tracing::warn!("{change}");
    }
    let mut failures = execute(run, &planned.steps, events);
    let observed = &planned.observation;
    let instances = observed.instances.iter().map(|f| &f.instance);
    for pool in crate::pool::report::pools(run.config, instances, observed.now) {
        tracing::info!("{pool}");
    }
    if breakers.now != breakers.read
        && let Err(error) = breaker::save(run.config, &breakers.now)
    {
        tracing::error!("{error}");
        failures += 1;
    }
    failures
}

/// The breakers as the last run left them, told what this run's nodes say;
/// a file that cannot be read is said in a warning and starts afresh.
pub fn breakers(
    config: &Config,
    nodes: &[slurm::NodeInfo],
    instances: &[Found],
    now: i64,
) -> Observed {
    let read = breaker::load(config, now).unwrap_or_else(|error| {
        tracing::warn!("{error}: the node groups' breakers start afresh");
        Breakers::default()
    });
    let ours: Vec<_> = nodes
        .iter()
        .filter_map(|node| Some((node, crate::names::parse(config, &node.name).ok()?.1)))
        .collect();
    let signs = breaker::signs(&ours, instances);
    let mut breakers = read.clone();
    let changes = breakers.observe(&signs, BreakerSettings::of(config), now);
    Observed {
        read,
        now: breakers,
        changes,
    }
}

/// What a run read from Slurm and EC2, from which its plan was made.
pub struct Observation {
    pub nodes: Vec<slurm::NodeInfo>,
    pub instances: Vec<Found>,
    pub jobs: BTreeMap<String, jobs::JobOnNode>,
    pub health: BTreeMap<String, Health>,
    pub boot_holds: BTreeMap<String, i64>,
    pub record_instances: bool,
    pub now: i64,
    pub pools: pools::PoolInputs,
}

impl Observation {
    pub fn inputs<'a>(&'a self, config: &'a Config) -> Inputs<'a> {
        Inputs {
            config,
            nodes: &self.nodes,
            instances: &self.instances,
            now: self.now,
            record_instances: self.record_instances,
            jobs: &self.jobs,
            health: &self.health,
            boot_holds: &self.boot_holds,
            pools: &self.pools,
        }
    }
}

/// Reads Slurm and EC2 and returns the plan.
pub fn make_plan(run: &Run, now: i64) -> Result<Planned, ChangeStateError> {
    let (nodes, instances) = observe(run)?;
    let observed = breakers(run.config, &nodes, &instances, now);
    let unnamed = instances
        .iter()
        .any(|f| f.instance.is_live() && f.instance.tag("Name").is_none());
    let jobs = match unnamed {
        true => jobs::running_jobs(run.config, &run.scontrol),
        false => BTreeMap::new(),
    };
    let observation = Observation {
        health: health(run, &instances),
        boot_holds: observed.now.holds(now),
        pools: pools::observe(run, &instances, now),
        record_instances: run
            .scontrol
            .version()
            .is_some_and(|v| v.has_instance_fields()),
        nodes,
        instances,
        jobs,
        now,
    };
    Ok(Planned {
        steps: plan::plan(&observation.inputs(run.config)),
        breakers: observed,
        observation,
    })
}

/// EC2's view of the health of this cluster's running instances, in each
/// account. A look-up that fails (an older IAM policy without
/// `ec2:DescribeInstanceStatus`) costs only this run's health rows, said in
/// a warning.
pub fn health(run: &Run, instances: &[Found]) -> BTreeMap<String, Health> {
    let mut running: BTreeMap<&Account, Vec<String>> = BTreeMap::new();
    for found in instances {
        if found.instance.state == InstanceState::Running {
            running
                .entry(&found.account)
                .or_default()
                .push(found.instance.id.clone());
        }
    }
    run.block_on(async {
        let mut health = BTreeMap::new();
        for (account, ids) in running {
            let ec2 = run.clients.get(account).await;
            match ec2.health(&ids).await {
                Ok(found) => health.extend(found),
                Err(error) => tracing::warn!("No health of the instances in {account}: {error}"),
            }
        }
        health
    })
}

/// Every node Slurm lists, and every instance of this cluster in every
/// account of the configuration.
pub fn observe(run: &Run) -> Result<(Vec<slurm::NodeInfo>, Vec<Found>), ChangeStateError> {
    let output = run
        .scontrol
        .run(&["show".into(), "nodes".into(), "-o".into()])?;
    let nodes = slurm::parse_nodes(&output);
    Ok((nodes, instances(run)?))
}

/// Every instance of this cluster, in every account of the configuration.
pub fn instances(run: &Run) -> Result<Vec<Found>, ChangeStateError> {
    run.block_on(async {
        let mut instances = Vec::new();
        for account in run.config.accounts() {
            let ec2 = run.clients.get(&account).await;
            let found = ec2
                .find(&[(CLUSTER_TAG, run.cluster.as_str())], None, None)
                .await
                .map_err(|source| ChangeStateError::Ec2 {
                    account: account.clone(),
                    source: Box::new(source),
                })?;
            instances.extend(found.into_iter().map(|instance| Found {
                account: account.clone(),
                instance,
            }));
        }
        Ok::<_, ChangeStateError>(instances)
    })
}

/// The plan's actions, batched: by account, by (state, reason).
#[derive(Default)]
struct Batches {
    terminations: BTreeMap<Account, Vec<String>>,
    updates: BTreeMap<(&'static str, Option<String>), Vec<String>>,
    power_downs: Vec<String>,
    records: Vec<NodeInstance>,
    names: BTreeMap<Account, Vec<crate::ec2::TagRequest>>,
}

impl Batches {
    fn of(steps: &[Step]) -> Batches {
        let mut batches = Batches::default();
        for step in steps {
            tracing::info!(
                "{}: {} ({}; instance {} {})",
                step.node.as_deref().unwrap_or("-"),
                describe(&step.action),
                step.why,
                step.instance.as_deref().unwrap_or("-"),
                step.ec2_state
            );
            batches.add(step);
        }
        batches
    }

    fn add(&mut self, step: &Step) {
        let node = step.node.clone();
        let in_account = step.account.clone().zip(step.instance.clone());
        match &step.action {
            Action::Keep => {}
            Action::Terminate | Action::TrimPool { .. } => {
                if let Some((account, id)) = in_account {
                    self.terminations.entry(account).or_default().push(id);
                }
            }
            Action::SetState {
                state: plan::STATE_POWER_DOWN_FORCE,
                reason: None,
            } => self.power_downs.extend(node),
            Action::SetState { state, reason } => {
                if let Some(node) = node {
                    let key = (*state, reason.clone());
                    self.updates.entry(key).or_default().push(node);
                }
            }
            Action::NameInstance { tags } => {
                if let Some((account, id)) = in_account {
                    let request = (id, tags.clone());
                    self.names.entry(account).or_default().push(request);
                }
            }
            Action::RecordInstance { instance_type } => {
                if let (Some(node), Some(id)) = (node, &step.instance) {
                    self.records.push(NodeInstance {
                        node,
                        instance_id: id.clone(),
                        instance_type: instance_type.clone(),
                    });
                }
            }
            Action::DownThenPowerDown { reason } => {
                if let Some(node) = node {
                    let key = (plan::STATE_DOWN, Some(reason.clone()));
                    self.updates.entry(key).or_default().push(node.clone());
                    self.power_downs.push(node);
                }
            }
        }
    }
}

/// Carries out the plan: one TerminateInstances per account per 1000 ids, one
/// scontrol call per (state, reason) per 100 nodes. Returns how many actions failed.
pub fn execute(run: &Run, steps: &[Step], events: &EventLog) -> usize {
    let (steps, pools) = pools::hold_trims(run, steps, super::epoch_seconds());
    let steps = steps.as_slice();
    let batches = Batches::of(steps);
    let not_terminated = run.block_on(terminate(run, &batches.terminations));
    drop(pools);
    record_events(steps, &not_terminated, events);
    let mut failures = not_terminated.len();
    failures += set_states(&run.scontrol, &batches.updates, &batches.power_downs);
    failures += run.block_on(name(run, batches.names));
    failures += record_instances(&run.scontrol, &batches.records);
    failures
}

/// Terminates each account's instances; returns those that were not.
async fn terminate(run: &Run<'_>, terminations: &BTreeMap<Account, Vec<String>>) -> Vec<String> {
    let mut not_terminated = Vec::new();
    for (account, ids) in terminations {
        let ec2 = run.clients.get(account).await;
        for (ids, error) in ec2.terminate(ids).await {
            tracing::error!("Failed to terminate {}: {error}", ids.join(", "));
            not_terminated.extend(ids);
        }
    }
    not_terminated
}

/// The state changes, then the power-downs; returns how many nodes failed.
fn set_states(
    scontrol: &Scontrol,
    updates: &BTreeMap<(&'static str, Option<String>), Vec<String>>,
    power_downs: &[String],
) -> usize {
    let mut failures = 0;
    for ((state, reason), nodes) in updates {
        for (nodes, error) in scontrol.set_state(nodes, state, reason.as_deref()) {
            tracing::error!(
                "Failed to set node(s) {} to state {state}: {error}",
                nodes.join(",")
            );
            failures += nodes.len();
        }
    }
    if !power_downs.is_empty() {
        for (nodes, error) in scontrol.power_down_force(power_downs) {
            tracing::error!("Failed to power down {}: {error}", nodes.join(","));
            failures += nodes.len();
        }
    }
    failures
}

/// The `Name` tags resume had no time for, within `RECORD_TIME`; what is
/// left is the next run's. Returns how many failed.
async fn name(run: &Run<'_>, names: BTreeMap<Account, Vec<crate::ec2::TagRequest>>) -> usize {
    let mut failures = 0;
    for (account, requests) in names {
        let ec2 = run.clients.get(&account).await;
        let count = requests.len();
        let deadline = crate::budget::Deadline::after(RECORD_TIME);
        let failures_here = ec2.tag_each(requests, 4, deadline).await;
        let (late, failed): (Vec<_>, Vec<_>) = failures_here
            .iter()
            .partition(|(_, e)| e.code == Code::from(Ours::OutOfTime));
        for (id, error) in &failed {
            tracing::error!("Failed to name instance {id}: {error}");
        }
        failures += failed.len();
        if !late.is_empty() {
            tracing::info!(
                "Name of {} of {count} instance(s) left for the next run",
                late.len()
            );
        }
    }
    failures
}

/// Slurm's InstanceId of nodes that lack it, within `RECORD_TIME`; what is
/// left is the next run's. Returns how many failed.
fn record_instances(scontrol: &Scontrol, records: &[NodeInstance]) -> usize {
    let until = std::time::Instant::now() + RECORD_TIME;
    let mut failures = 0;
    let mut left = Vec::new();
    for (nodes, error) in scontrol.set_instances(records, 4, until) {
        if matches!(error, SlurmError::OutOfTime { .. }) {
            left.extend(nodes);
            continue;
        }
        tracing::error!(
            "Failed to record the instance of {}: {error}",
            nodes.join(",")
        );
        failures += nodes.len();
    }
    if !left.is_empty() {
        tracing::info!(
            "InstanceId of {} node(s) left for the next run: {}",
            left.len(),
            crate::hostlist::compress(&left)
        );
    }
    failures
}

/// The events of the plan's terminations (but those that failed) and state
/// changes; a `state=DOWN` that starts or keeps a hold is a capacity hold
/// or, for the breaker's, a boot failure hold.
fn record_events(steps: &[Step], not_terminated: &[String], events: &EventLog) {
    for step in steps {
        let about = |why, code, detail| About {
            node: step.node.as_deref(),
            instance: step.instance.as_deref(),
            why,
            code,
            detail,
            ..Default::default()
        };
        match &step.action {
            Action::Terminate | Action::TrimPool { .. } => {
                if step
                    .instance
                    .as_ref()
                    .is_some_and(|id| not_terminated.contains(id))
                {
                    continue;
                }
                let why = if matches!(step.action, Action::TrimPool { .. }) {
                    Why::Pool
                } else if step.why.starts_with("duplicate") {
                    Why::Duplicate
                } else if step.why.starts_with("orphan") {
                    Why::Orphan
                } else {
                    Why::Leak
                };
                events.record(Kind::Termination, about(Some(why), None, Some(&step.why)));
            }
            Action::SetState { state, reason } => {
                let kind = match reason.as_deref() {
                    Some(r) if !slurm::reason::is_hold(r) => Kind::StateRepair,
                    Some(r) if reasons_code(r) == Some(slurm::reason::NEVER_REGISTERED) => {
                        Kind::BootFailureHold
                    }
                    Some(_) => Kind::CapacityHold,
                    None => Kind::StateRepair,
                };
                let detail = reason.as_deref().unwrap_or(&step.why);
                events.record(kind, about(None, Some(state), Some(detail)));
            }
            Action::DownThenPowerDown { reason } => {
                events.record(Kind::StateRepair, about(None, Some("DOWN"), Some(reason)));
            }
            Action::Keep | Action::RecordInstance { .. } | Action::NameInstance { .. } => {}
        }
    }
}

use slurm::reason::code as reasons_code;

pub(crate) fn describe(action: &Action) -> String {
    match action {
        Action::Terminate => "terminate instance".into(),
        Action::TrimPool { pool } => format!("terminate pooled instance of {pool}"),
        Action::Keep => "keep instance".into(),
        Action::SetState {
            state,
            reason: None,
        } => format!("state={state}"),
        Action::SetState {
            state,
            reason: Some(reason),
        } => format!("state={state} reason={reason}"),
        Action::DownThenPowerDown { reason } => {
            format!("state=DOWN reason={reason}, then state=POWER_DOWN_FORCE")
        }
        Action::RecordInstance { instance_type } => {
            format!("instanceid=<instance> instancetype={instance_type}")
        }
        Action::NameInstance { tags } => {
            let tags: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("tag {}", tags.join(" "))
        }
    }
}

/// The plan as a table, for `--dry-run`.
pub fn table(steps: &[Step]) -> String {
    let mut rows = vec![[
        "NODE".to_string(),
        "SLURM STATE".to_string(),
        "INSTANCE".to_string(),
        "EC2 STATE".to_string(),
        "ACTION".to_string(),
        "REASON".to_string(),
    ]];
    for step in steps {
        rows.push([
            step.node.clone().unwrap_or("-".into()),
            step.slurm_state.clone(),
            step.instance.clone().unwrap_or("-".into()),
            step.ec2_state.clone(),
            describe(&step.action),
            step.why.clone(),
        ]);
    }
    let rows: Vec<Vec<String>> = rows.into_iter().map(|r| r.to_vec()).collect();
    let mut out = super::table::text_table(&rows);
    if steps.is_empty() {
        out.push_str("(nothing to do)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::should_run;

    #[test]
    fn only_the_active_controller_runs() {
        let both_up = "Slurmctld(primary) at head1 is UP\nSlurmctld(backup) at head2 is UP\n";
        assert!(should_run(both_up, "head1"));
        assert!(should_run(both_up, "head1.cluster.local"));
        assert!(!should_run(both_up, "head2"));
        let primary_down =
            "Slurmctld(primary) at head1 is DOWN\nSlurmctld(backup) at head2 is UP\n";
        assert!(should_run(primary_down, "head2"));
        assert!(should_run(
            "Slurmctld(primary) at head1 is UP\n",
            "elsewhere"
        ));
    }
}
