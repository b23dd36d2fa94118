//! Node names `<PartitionName>-<NodeGroupName>-<id>`, ids `0..MaxNodes`, unpadded.

use std::collections::BTreeMap;

use crate::config::{Config, NodeGroup};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{0:?} is not of the form <partition>-<nodegroup>-<id>")]
    Pattern(String),
    #[error("{name:?}: partition {partition:?} has no node group {group:?} in partitions.json")]
    UnknownGroup {
        name: String,
        partition: String,
        group: String,
    },
    #[error("{name:?}: id {id} is outside 0..{max_nodes} of its node group")]
    OutOfRange {
        name: String,
        id: String,
        max_nodes: u32,
    },
}

/// A node name of ours, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName {
    pub partition: String,
    pub group: String,
    pub id: u32,
}

impl std::fmt::Display for NodeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}", self.partition, self.group, self.id)
    }
}

/// The most characters of a node name from outside (a tag): a host name's.
const MAX_NODE_NAME: usize = 64;

/// Whether `name` can be a Slurm node name, and so is safe to write where a
/// node name goes (slurmd's environment file, a command line, a log line):
/// 1 to 64 letters, digits, `-`, `_` and `.`, not starting with `-` or `.`.
/// What a tag says is checked with this before it is used anywhere.
pub fn is_node_name(name: &str) -> bool {
    name.len() <= MAX_NODE_NAME
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn alphanumeric(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Splits `name` and checks it against the configured node groups.
pub fn parse<'c>(config: &'c Config, name: &str) -> Result<(NodeName, &'c NodeGroup), NameError> {
    let pattern = || NameError::Pattern(name.to_string());
    let mut parts = name.rsplitn(3, '-');
    let (Some(id), Some(group), Some(partition)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(pattern());
    };
    if !alphanumeric(partition)
        || !alphanumeric(group)
        || id.is_empty()
        || !id.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(pattern());
    }
    let node_group =
        config
            .node_group(partition, group)
            .ok_or_else(|| NameError::UnknownGroup {
                name: name.to_string(),
                partition: partition.to_string(),
                group: group.to_string(),
            })?;
    let out_of_range = || NameError::OutOfRange {
        name: name.to_string(),
        id: id.to_string(),
        max_nodes: node_group.max_nodes,
    };
    // Slurm declares P-G-[0-N] unpadded, so "P-G-01" names no node of ours.
    if id.len() > 1 && id.starts_with('0') {
        return Err(out_of_range());
    }
    let number: u32 = id.parse().map_err(|_| out_of_range())?;
    if number >= node_group.max_nodes {
        return Err(out_of_range());
    }
    let parsed = NodeName {
        partition: partition.to_string(),
        group: group.to_string(),
        id: number,
    };
    Ok((parsed, node_group))
}

/// Our nodes among `names`, grouped by node group and sorted by id, plus the
/// names that are not ours: counted, and the first few kept with the reason.
#[derive(Debug, Default)]
pub struct Sorted<'c> {
    pub by_group: BTreeMap<(String, String), (&'c NodeGroup, Vec<NodeName>)>,
    pub foreign: Foreign,
}

/// Names that are not nodes of ours: a hostlist may name a million of them.
#[derive(Debug, Default)]
pub struct Foreign {
    pub count: usize,
    pub first: Vec<NameError>,
}

impl Foreign {
    /// How many reasons are kept and shown.
    pub const SHOWN: usize = 5;

    fn add(&mut self, error: NameError) {
        self.count += 1;
        if self.first.len() < Self::SHOWN {
            self.first.push(error);
        }
    }

    /// One log line for all of them, or `None` when every name is ours.
    pub fn summary(&self) -> Option<String> {
        match self.first.as_slice() {
            [] => None,
            [one] if self.count == 1 => Some(format!("Skipping {one}")),
            first => {
                let reasons: Vec<String> = first.iter().map(NameError::to_string).collect();
                Some(format!(
                    "Skipping {} names that are not nodes of ours; the first {}: {}",
                    self.count,
                    first.len(),
                    reasons.join("; ")
                ))
            }
        }
    }
}

impl Sorted<'_> {
    pub fn node_count(&self) -> usize {
        self.by_group.values().map(|(_, nodes)| nodes.len()).sum()
    }
}

pub fn sort_names<'c, S: AsRef<str>>(config: &'c Config, names: &[S]) -> Sorted<'c> {
    let mut sorted = Sorted::default();
    for name in names {
        match parse(config, name.as_ref()) {
            Ok((node, group)) => {
                let key = (node.partition.clone(), node.group.clone());
                sorted
                    .by_group
                    .entry(key)
                    .or_insert_with(|| (group, Vec::new()))
                    .1
                    .push(node)
            }
            Err(error) => sorted.foreign.add(error),
        }
    }
    for (_, nodes) in sorted.by_group.values_mut() {
        nodes.sort();
        nodes.dedup();
    }
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_ours_are_counted_and_a_few_kept() {
        let config = crate::fixtures::example();
        let names: Vec<String> = (0..100_000).map(|i| format!("x{i}y")).collect();
        let mut all = names.clone();
        all.push("aws-spot-3".into());
        let sorted = sort_names(&config, &all);
        assert_eq!(sorted.node_count(), 1);
        assert_eq!(sorted.foreign.count, 100_000);
        assert_eq!(sorted.foreign.first.len(), Foreign::SHOWN);
        let line = sorted.foreign.summary().unwrap();
        assert!(
            line.starts_with(
                "Skipping 100000 names that are not nodes of ours; the first 5: \"x0y\""
            ),
            "{line}"
        );
        assert_eq!(line.lines().count(), 1);
        let one = sort_names(&config, &["linux-1"]);
        assert_eq!(
            one.foreign.summary().unwrap(),
            "Skipping \"linux-1\" is not of the form <partition>-<nodegroup>-<id>"
        );
        assert!(
            sort_names(&config, &["aws-spot-1"])
                .foreign
                .summary()
                .is_none()
        );
    }
}
