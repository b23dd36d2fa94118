//! `slurm-ec2 teardown`: terminates every live instance of this cluster, in
//! every account of the configuration, whatever Slurm says of its node. For
//! the end of a cluster (the sample deployment's head node runs it when it
//! powers off for good, so that deleting the stack leaves nothing running);
//! never for a cluster that goes on.

use std::sync::Arc;

use super::{Budget, Context, LOOKUP_BUDGET, Outcome, Session};
use crate::ec2::{CLUSTER_TAG, CallCounter, Clients, InstanceState};
use crate::events::{About, Kind, Why};

/// The program: `slurm-ec2 teardown`.
pub fn run(context: &Context) -> Outcome {
    let config = context.config;
    let Session {
        cluster,
        deadline,
        runtime,
        ..
    } = match super::session(config, context.started, Budget::both(LOOKUP_BUDGET)) {
        Ok(session) => session,
        Err(outcome) => return outcome,
    };
    let calls = Arc::new(CallCounter::default());
    let clients = Clients::new(&config.settings, calls.clone(), deadline);
    let (terminated, failed) = runtime.block_on(async {
        let (mut terminated, mut failed) = (0, 0);
        for account in config.accounts() {
            let ec2 = clients.get(&account).await;
            let live = Some(InstanceState::live());
            let found = match ec2
                .find(&[(CLUSTER_TAG, cluster.as_str())], live, None)
                .await
            {
                Ok(found) => found,
                Err(error) => {
                    tracing::error!("Cannot list the instances of {cluster} in {account}: {error}");
                    failed += 1;
                    continue;
                }
            };
            let ids: Vec<String> = found.iter().map(|i| i.id.clone()).collect();
            if ids.is_empty() {
                continue;
            }
            tracing::info!("Tearing down {cluster} in {account}: {}", ids.join(", "));
            let failures = ec2.terminate(&ids).await;
            for (batch, error) in &failures {
                tracing::error!("Failed to terminate {}: {error}", batch.join(", "));
                failed += batch.len();
            }
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
                context.events.record(Kind::Termination, about);
                terminated += 1;
            }
        }
        (terminated, failed)
    });
    let line = format!(
        "Teardown of {cluster}: terminated {terminated}, failed {failed}; EC2 calls: {}",
        calls.summary()
    );
    tracing::info!("{line}");
    eprintln!("slurm-ec2 teardown: {line}");
    match failed {
        0 => Outcome::Done,
        _ => Outcome::Failed,
    }
}
