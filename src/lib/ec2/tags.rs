use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::Tag;
use tokio::sync::Semaphore;

use super::{Backoff, CallCounter, Deadline, Ec2Error};
use crate::config::NodeGroup;

/// Tag on every instance slurm-ec2 launches: the cluster it belongs to.
pub const CLUSTER_TAG: &str = "slurm-ec2:cluster";
/// Tag on every instance slurm-ec2 launches: its partition.
pub const PARTITION_TAG: &str = "slurm-ec2:partition";
/// Tag on every instance slurm-ec2 launches: its node group.
pub const NODE_GROUP_TAG: &str = "slurm-ec2:node-group";

/// The tags every instance of `group` carries from launch: the cluster,
/// partition and node-group tags, and the custom tags without placeholders.
pub fn launch_tags(group: &NodeGroup, cluster: &str) -> Vec<(String, String)> {
    let mut tags = vec![
        (CLUSTER_TAG.to_string(), cluster.to_string()),
        (PARTITION_TAG.to_string(), group.partition.to_string()),
        (NODE_GROUP_TAG.to_string(), group.name.to_string()),
    ];
    tags.extend(
        group
            .tags
            .iter()
            .filter(|t| !t.has_placeholder())
            .map(|t| (t.key.clone(), t.value.clone())),
    );
    tags
}

/// The tags one instance gets once its node is known: `Name`, and the custom
/// tags with `{ip_address}`, `{node_name}`, `{hostname}` and the job's
/// placeholders (`{job_id}`, `{user}`, `{account}`) filled in for this
/// instance alone.
pub fn node_tags(
    group: &NodeGroup,
    node: &str,
    address: &str,
    hostname: &str,
    job_values: &[(&str, String)],
) -> Vec<(String, String)> {
    let mut tags = vec![("Name".to_string(), node.to_string())];
    tags.extend(group.tags.iter().filter(|t| t.has_placeholder()).map(|t| {
        let mut value = t
            .value
            .replace("{ip_address}", address)
            .replace("{node_name}", node)
            .replace("{hostname}", hostname);
        for (placeholder, job_value) in job_values {
            value = value.replace(placeholder, job_value);
        }
        (t.key.clone(), value)
    }));
    tags
}

/// Tags each instance with its own tags, `concurrency` calls at a time;
/// `InvalidInstanceID.NotFound` (EC2 does not know a new instance yet) and
/// throttling are retried with back-off until the deadline. Returns the
/// instances that could not be tagged.
pub(super) async fn create_tags_concurrently(
    client: &aws_sdk_ec2::Client,
    requests: Vec<(String, Vec<(String, String)>)>,
    concurrency: usize,
    deadline: Deadline,
    calls: Arc<CallCounter>,
) -> Vec<(String, Ec2Error)> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (instance_id, tags) in requests {
        let client = client.clone();
        let permits = permits.clone();
        let calls = calls.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire().await;
            let result = tag_one(&client, &instance_id, &tags, deadline, &calls).await;
            (instance_id, result)
        });
    }
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((instance_id, Err(error))) = joined {
            failures.push((instance_id, error));
        }
    }
    failures
}

async fn tag_one(
    client: &aws_sdk_ec2::Client,
    instance_id: &str,
    tags: &[(String, String)],
    deadline: Deadline,
    calls: &CallCounter,
) -> Result<(), Ec2Error> {
    let tags: Vec<Tag> = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    loop {
        calls.count("CreateTags");
        let result = client
            .create_tags()
            .resources(instance_id)
            .set_tags(Some(tags.clone()))
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(()),
            Err(e) => Ec2Error::from_sdk("CreateTags", format!("of {instance_id}"), e),
        };
        let worth_retrying = error.retryable || error.code == "InvalidInstanceID.NotFound";
        if !worth_retrying || !backoff.wait(&deadline).await {
            return Err(error);
        }
        tracing::debug!("Retrying CreateTags of {instance_id} after {}", error.code);
    }
}
