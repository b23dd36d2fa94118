//! change-state: run every minute by cron. Reads this cluster's nodes from
//! Slurm and its instances from EC2, and repairs both by the table in
//! [`plan`]. Safe under cron: an exclusive lock, and nothing on a backup
//! controller while the primary is up.

pub mod plan;

use std::collections::BTreeMap;

use crate::config::{CLUSTER_TAG, Config};
use crate::ec2::{self, CallCounter, Clients};
use crate::lock;
use crate::slurm::{self, Scontrol, SlurmError};
use plan::{Action, Found, Inputs, Step};

#[derive(Debug, thiserror::Error)]
pub enum ChangeStateError {
    #[error("cannot read the nodes from Slurm: {0}")]
    Slurm(#[from] SlurmError),
    #[error("cannot list this cluster's instances in {region}: {source}")]
    Ec2 {
        region: String,
        #[source]
        source: ec2::Ec2Error,
    },
}

/// Takes change-state's lock beside the log file; `None` when another run holds it.
pub fn lock(config: &Config) -> Result<Option<lock::Held>, lock::LockError> {
    lock::try_lock(&lock::path_for(&config.log_file, "change-state"))
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

/// Reads Slurm and EC2 and returns the plan.
pub async fn make_plan(
    config: &Config,
    scontrol: &Scontrol,
    clients: &Clients,
    cluster: &str,
    calls: &CallCounter,
    now: i64,
) -> Result<Vec<Step>, ChangeStateError> {
    let output = scontrol.run(&["show".into(), "nodes".into(), "-o".into()])?;
    let nodes = slurm::parse_nodes(&output);
    let mut instances = Vec::new();
    for (account, client) in clients.iter() {
        let found = ec2::describe_tagged(client, &[(CLUSTER_TAG, cluster)], None, None, calls)
            .await
            .map_err(|source| ChangeStateError::Ec2 {
                region: account.0.clone(),
                source,
            })?;
        instances.extend(found.into_iter().map(|instance| Found {
            account: account.clone(),
            instance,
        }));
    }
    Ok(plan::plan(&Inputs {
        config,
        nodes: &nodes,
        instances: &instances,
        now,
    }))
}

/// Carries out the plan: one TerminateInstances per account per 1000 ids, one
/// scontrol call per (state, reason) per 100 nodes. Returns how many actions failed.
pub async fn execute(
    steps: &[Step],
    scontrol: &Scontrol,
    clients: &Clients,
    calls: &CallCounter,
) -> usize {
    let mut failures = 0;
    let mut terminations: BTreeMap<(String, Option<String>), Vec<String>> = BTreeMap::new();
    let mut updates: BTreeMap<(&'static str, Option<String>), Vec<String>> = BTreeMap::new();
    let mut power_downs = Vec::new();
    for step in steps {
        tracing::info!(
            "{}: {} ({}; instance {} {})",
            step.node.as_deref().unwrap_or("-"),
            describe(&step.action),
            step.why,
            step.instance.as_deref().unwrap_or("-"),
            step.ec2_state
        );
        match &step.action {
            Action::Keep => {}
            Action::Terminate => {
                if let (Some(account), Some(id)) = (&step.account, &step.instance) {
                    terminations
                        .entry(account.clone())
                        .or_default()
                        .push(id.clone());
                }
            }
            Action::SetState { state, reason } => {
                if let Some(node) = &step.node {
                    updates
                        .entry((state, reason.clone()))
                        .or_default()
                        .push(node.clone());
                }
            }
            Action::DownThenPowerDown { reason } => {
                if let Some(node) = &step.node {
                    updates
                        .entry((plan::STATE_DOWN, Some(reason.clone())))
                        .or_default()
                        .push(node.clone());
                    power_downs.push(node.clone());
                }
            }
        }
    }
    for (account, ids) in terminations {
        let Some(client) = clients.get(&account) else {
            continue;
        };
        for (ids, error) in ec2::terminate(client, &ids, calls).await {
            tracing::error!("Failed to terminate {}: {error}", ids.join(", "));
            failures += ids.len();
        }
    }
    for ((state, reason), nodes) in updates {
        for (nodes, error) in scontrol.set_state(&nodes, state, reason.as_deref()) {
            tracing::error!(
                "Failed to set node(s) {} to state {state}: {error}",
                nodes.join(",")
            );
            failures += nodes.len();
        }
    }
    if !power_downs.is_empty() {
        for (nodes, error) in scontrol.set_state(&power_downs, plan::STATE_POWER_DOWN_FORCE, None) {
            tracing::error!("Failed to power down {}: {error}", nodes.join(","));
            failures += nodes.len();
        }
    }
    failures
}

fn describe(action: &Action) -> String {
    match action {
        Action::Terminate => "terminate instance".into(),
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
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
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
