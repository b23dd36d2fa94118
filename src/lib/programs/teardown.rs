//! `slurm-ec2 teardown`: terminates every live instance of this cluster, in
//! every account of the configuration, whatever Slurm says of its node. For
//! the end of a cluster (the sample deployment's head node runs it when it
//! powers off for good, so that deleting the stack leaves nothing running);
//! never for a cluster that goes on.

use super::{Budget, Context, LOOKUP_BUDGET, Outcome, Run};
use crate::ec2::{Account, CLUSTER_TAG, InstanceState};
use crate::events::{About, EventLog, Kind, Why};

/// The program: `slurm-ec2 teardown`.
pub fn run(context: &Context) -> Outcome {
    let run = match Run::begin(context.config, context.started, Budget::both(LOOKUP_BUDGET)) {
        Ok(run) => run,
        Err(error) => {
            tracing::error!("{error}");
            return Outcome::Failed;
        }
    };
    let (mut terminated, mut failed) = (0, 0);
    for account in context.config.accounts() {
        let (here, failed_here) = run.block_on(tear_down(&run, &account, &context.events));
        terminated += here;
        failed += failed_here;
    }
    let cluster = &run.cluster;
    let line = format!(
        "Teardown of {cluster}: terminated {terminated}, failed {failed}; {}",
        run.tally()
    );
    tracing::info!("{line}");
    eprintln!("slurm-ec2 teardown: {line}");
    match failed {
        0 => Outcome::Done,
        _ => Outcome::Failed,
    }
}

/// Terminates the cluster's live instances in `account`; returns how many
/// went and how many did not (a failed look-up counts one).
async fn tear_down(run: &Run<'_>, account: &Account, events: &EventLog) -> (usize, usize) {
    let cluster = run.cluster.as_str();
    let ec2 = run.clients.get(account).await;
    let live = Some(InstanceState::live());
    let found = match ec2.find(&[(CLUSTER_TAG, cluster)], live, None).await {
        Ok(found) => found,
        Err(error) => {
            tracing::error!("Cannot list the instances of {cluster} in {account}: {error}");
            return (0, 1);
        }
    };
    let ids: Vec<String> = found.iter().map(|i| i.id.clone()).collect();
    if ids.is_empty() {
        return (0, 0);
    }
    tracing::info!("Tearing down {cluster} in {account}: {}", ids.join(", "));
    let failures = ec2.terminate(&ids).await;
    let mut failed = 0;
    for (batch, error) in &failures {
        tracing::error!("Failed to terminate {}: {error}", batch.join(", "));
        failed += batch.len();
    }
    let mut terminated = 0;
    for instance in found
        .iter()
        .filter(|i| !failures.iter().any(|(b, _)| b.contains(&i.id)))
    {
        let node = instance.node_name();
        let about = About {
            node: node.as_deref(),
            instance: Some(&instance.id),
            why: Some(Why::Teardown),
            ..Default::default()
        };
        events.record(Kind::Termination, about);
        terminated += 1;
    }
    (terminated, failed)
}
