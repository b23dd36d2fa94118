use std::sync::Arc;

use aws_sdk_ec2::types::Tag;
use tokio::sync::Semaphore;

use super::{Ec2Error, Meter};
use crate::budget::Deadline;
use crate::config::NodeGroup;

/// Tag on every instance slurm-ec2 launches: the cluster it belongs to.
pub const CLUSTER_TAG: &str = "slurm-ec2:cluster";
/// Tag on every instance slurm-ec2 launches: its partition.
pub const PARTITION_TAG: &str = "slurm-ec2:partition";
/// Tag on every instance slurm-ec2 launches: its node group.
pub const NODE_GROUP_TAG: &str = "slurm-ec2:node-group";
/// Tags of an instance launched for a job (`JobTags`): its job, and who runs it.
pub const JOB_ID_TAG: &str = "slurm-ec2:job-id";
pub const USER_TAG: &str = "slurm-ec2:user";
pub const ACCOUNT_TAG: &str = "slurm-ec2:account";
/// Tag on every instance of a reservation, written in one call: the nodes
/// of the reservation as a hostlist, in the order of the instances'
/// `AmiLaunchIndex`. Longer lists go on in `slurm-ec2:nodes.1`, `.2`, …
pub const NODES_TAG: &str = "slurm-ec2:nodes";
/// The most characters EC2 takes in a tag value.
const MAX_TAG_VALUE: usize = 256;
/// The most tags one reservation's node list may take.
const MAX_NODES_TAGS: usize = 8;

/// The keys of a reservation's node list, in order: `slurm-ec2:nodes`,
/// `slurm-ec2:nodes.1`, … (a long list takes several tags).
pub fn nodes_tag_keys() -> impl Iterator<Item = String> {
    (0..MAX_NODES_TAGS).map(nodes_tag_key)
}

fn nodes_tag_key(part: usize) -> String {
    match part {
        0 => NODES_TAG.to_string(),
        n => format!("{NODES_TAG}.{n}"),
    }
}

/// The tags that name `nodes` in order (the instance of launch index `i` is
/// `nodes[i]`), or None when they do not fit in the tags of one instance or
/// a hostlist cannot keep their order.
pub fn nodes_tags(nodes: &[String], max_parts: usize) -> Option<Vec<(String, String)>> {
    let max_parts = max_parts.clamp(1, MAX_NODES_TAGS);
    let mut parts: Vec<String> = Vec::new();
    let mut start = 0;
    while start < nodes.len() {
        let mut end = start + 1;
        let mut text = crate::hostlist::compress(&nodes[start..end]);
        while end < nodes.len() {
            let longer = crate::hostlist::compress(&nodes[start..=end]);
            if longer.len() > MAX_TAG_VALUE {
                break;
            }
            text = longer;
            end += 1;
        }
        if text.len() > MAX_TAG_VALUE || parts.len() == max_parts {
            return None;
        }
        parts.push(text);
        start = end;
    }
    let joined = parts.join(",");
    if crate::hostlist::expand(&joined).ok()?.as_slice() != nodes {
        return None;
    }
    Some(
        parts
            .into_iter()
            .enumerate()
            .map(|(i, text)| (nodes_tag_key(i), text))
            .collect(),
    )
}

/// The node that `nodes_tags` give the instance of launch index `index`:
/// the list's entry at that index, or, on an instance restarted from a warm
/// pool, at the index's place among the launch indexes its
/// `slurm-ec2:indexes` tag names (empty there: none).
pub fn node_in_nodes_tags(tags: &[(String, String)], index: usize) -> Option<String> {
    let value = |key: &str| tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let index = match value(super::INDEXES_TAG) {
        Some(indexes) => super::pool_tags::position_in_indexes(indexes, index)?,
        None => index,
    };
    let parts: Vec<&str> = (0..MAX_NODES_TAGS)
        // A pooled instance's list parts are emptied: the list ends there.
        .map_while(|i| value(&nodes_tag_key(i)).filter(|part| !part.is_empty()))
        .collect();
    if parts.is_empty() {
        return None;
    }
    // One reservation names at most a fleet's nodes: a tag that says more
    // is nobody's, and is not expanded.
    crate::hostlist::expand_at_most(&parts.join(","), MAX_FLEET_NODES)
        .ok()?
        .into_iter()
        .nth(index)
        .filter(|name| crate::names::is_node_name(name))
}

/// The most nodes one CreateFleet serves (`FleetBatchSize` is at most 1000).
const MAX_FLEET_NODES: usize = 1000;

/// EC2's limit of tags on one instance.
const MAX_INSTANCE_TAGS: usize = 50;
/// The tags slurm-ec2 adds besides the node list: Name, cluster, partition,
/// node group, and a job's id, user and account.
const ADDED_TAGS: usize = 7;

/// How many `slurm-ec2:nodes` tags an instance of `group` has room for,
/// within EC2's 50, beside its custom tags and the others slurm-ec2 adds.
pub fn node_list_room(group: &NodeGroup) -> usize {
    let pool = match group.warm_pool {
        Some(_) => crate::config::WARM_POOL_TAGS,
        None => 0,
    };
    MAX_INSTANCE_TAGS
        .saturating_sub(ADDED_TAGS + pool + group.tags.len())
        .clamp(1, MAX_NODES_TAGS)
}

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
        (t.key.clone(), clip(value))
    }));
    tags
}

/// A value within EC2's 256 characters: a job's user or account comes from
/// Slurm and may be longer than the configuration allowed for.
fn clip(mut value: String) -> String {
    if value.chars().count() > MAX_TAG_VALUE {
        let end = value
            .char_indices()
            .nth(MAX_TAG_VALUE)
            .map_or(value.len(), |(i, _)| i);
        value.truncate(end);
    }
    value
}

/// Tags each instance with its own tags, `concurrency` calls at a time;
/// `InvalidInstanceID.NotFound` (EC2 does not know a new instance yet) and
/// throttling are retried with back-off until the deadline. Returns the
/// instances that could not be tagged.
pub(super) async fn create_tags_concurrently(
    client: &aws_sdk_ec2::Client,
    requests: Vec<crate::ec2::TagRequest>,
    concurrency: usize,
    deadline: Deadline,
    calls: Arc<Meter>,
) -> Vec<(String, Ec2Error)> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (instance_id, tags) in requests {
        let client = client.clone();
        let permits = permits.clone();
        let calls = calls.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire().await;
            let resources = std::slice::from_ref(&instance_id);
            let result = tag_resources(&client, resources, &tags, deadline, &calls).await;
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

/// Tags `resources` (at most 1000) with `tags` in one call, retrying
/// `InvalidInstanceID.NotFound` (EC2 does not know a new instance yet) and
/// throttling with back-off until `deadline` (or the run's, if earlier).
pub(super) async fn tag_resources(
    client: &aws_sdk_ec2::Client,
    resources: &[String],
    tags: &[(String, String)],
    deadline: Deadline,
    calls: &Meter,
) -> Result<(), Ec2Error> {
    let tags: Vec<Tag> = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    let what = match resources {
        [one] => format!("of {one}"),
        many => format!("of {} instance(s)", many.len()),
    };
    let request = client
        .create_tags()
        .set_resources(Some(resources.to_vec()))
        .set_tags(Some(tags));
    calls
        .call_on_new("CreateTags", &what, deadline, || request.clone().send())
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expression: &str) -> Vec<String> {
        crate::hostlist::expand(expression).unwrap()
    }

    #[test]
    fn a_range_is_one_tag_and_each_index_finds_its_node() {
        let nodes = names("aws-od-[0-999]");
        let tags = nodes_tags(&nodes, MAX_NODES_TAGS).unwrap();
        assert_eq!(
            tags,
            vec![(NODES_TAG.to_string(), "aws-od-[0-999]".to_string())]
        );
        assert_eq!(node_in_nodes_tags(&tags, 0).as_deref(), Some("aws-od-0"));
        assert_eq!(
            node_in_nodes_tags(&tags, 999).as_deref(),
            Some("aws-od-999")
        );
        assert_eq!(node_in_nodes_tags(&tags, 1000), None);
    }

    #[test]
    fn a_scattered_list_goes_on_in_more_tags_of_at_most_256_characters() {
        let nodes: Vec<String> = (0..300).map(|i| format!("aws-od-{}", i * 2)).collect();
        let tags = nodes_tags(&nodes, MAX_NODES_TAGS).unwrap();
        assert!(tags.len() > 1 && tags.len() <= MAX_NODES_TAGS, "{tags:?}");
        assert!(tags.iter().all(|(_, v)| v.len() <= MAX_TAG_VALUE));
        assert_eq!(tags[1].0, "slurm-ec2:nodes.1");
        for (i, node) in nodes.iter().enumerate() {
            assert_eq!(node_in_nodes_tags(&tags, i).as_ref(), Some(node));
        }
    }

    #[test]
    fn lists_that_do_not_fit_or_lose_their_order_get_no_tags() {
        let many: Vec<String> = (0..2000).map(|i| format!("aws-od-{}", i * 2)).collect();
        assert_eq!(nodes_tags(&many, MAX_NODES_TAGS), None);
        let unordered = vec!["aws-od-2".to_string(), "aws-od-1".to_string()];
        assert_eq!(nodes_tags(&unordered, MAX_NODES_TAGS), None);
        assert_eq!(node_in_nodes_tags(&[], 0), None);
    }

    #[test]
    fn an_instance_never_carries_more_than_fifty_tags() {
        let mut partitions: serde_json::Value =
            serde_json::from_str(include_str!("../../../config/partitions.json")).unwrap();
        let custom: Vec<serde_json::Value> = (0..crate::config::MAX_CUSTOM_TAGS)
            .map(|i| match i % 2 {
                0 => serde_json::json!({"Key": format!("k{i}"), "Value": "plain"}),
                _ => serde_json::json!({"Key": format!("k{i}"), "Value": "{node_name} {user}"}),
            })
            .collect();
        partitions["Partitions"][0]["NodeGroups"][0]["Tags"] = serde_json::Value::Array(custom);
        let config = crate::config::load_texts(
            std::path::Path::new("/etc/slurm-ec2"),
            include_str!("../../../config/config.json"),
            &partitions.to_string(),
        )
        .expect("valid");
        let group = config.node_groups().next().unwrap();
        let prefix = group.node_prefix();
        let scattered: Vec<String> = (0..300).map(|i| format!("{prefix}{}", i * 2)).collect();
        let node_list = nodes_tags(&scattered, node_list_room(group)).unwrap_or_default();
        let range: Vec<String> = (0..300).map(|i| format!("{prefix}{i}")).collect();
        assert_eq!(
            nodes_tags(&range, node_list_room(group)).map(|t| t.len()),
            Some(1)
        );
        let job = [
            ("{job_id}", "17".to_string()),
            ("{user}", "u".repeat(300)),
            ("{account}", "a".to_string()),
        ];
        let per_node = node_tags(group, &scattered[0], "10.0.0.1", "ip-10-0-0-1", &job);
        assert!(
            per_node
                .iter()
                .all(|(_, v)| v.chars().count() <= MAX_TAG_VALUE)
        );
        let job_tags = 3;
        let total = launch_tags(group, "c").len() + node_list.len() + per_node.len() + job_tags;
        assert!(total <= MAX_INSTANCE_TAGS, "{total} tags");
    }

    #[test]
    fn a_restarted_instance_s_list_ends_at_the_parts_pooling_emptied() {
        let tags = vec![
            (NODES_TAG.to_string(), "aws-od-[7-9]".to_string()),
            ("slurm-ec2:nodes.1".to_string(), String::new()),
            (super::super::INDEXES_TAG.to_string(), "0,2,5".to_string()),
        ];
        assert_eq!(node_in_nodes_tags(&tags, 5).as_deref(), Some("aws-od-9"));
        assert_eq!(
            node_in_nodes_tags(&tags, 1),
            None,
            "not restarted for a node"
        );
        let pooled = vec![
            (NODES_TAG.to_string(), String::new()),
            (super::super::INDEXES_TAG.to_string(), String::new()),
        ];
        assert_eq!(node_in_nodes_tags(&pooled, 0), None);
    }

    #[test]
    fn a_hostile_node_list_is_not_expanded() {
        // 17 characters that name a million hosts.
        let tags = vec![(NODES_TAG.to_string(), "a[0-999][0-999]x".to_string())];
        let started = std::time::Instant::now();
        for index in [0, 5, 999_999] {
            assert_eq!(node_in_nodes_tags(&tags, index), None);
        }
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
        let named = vec![(NODES_TAG.to_string(), "aws-od-[0-1]\\".to_string())];
        assert_eq!(
            node_in_nodes_tags(&named, 1),
            None,
            "no node name ends in a backslash"
        );
    }
}
