//! The metrics' gauges of one observation: the nodes and instances by
//! group and state, what this run reaps, and the groups held.

use std::collections::BTreeMap;

use super::{Action, Observation, Step};
use crate::config::Config;
use crate::ec2::{InstanceState, NODE_GROUP_TAG, PARTITION_TAG};
use crate::metrics::Gauges;
use crate::slurm::{BaseState, Flag, NodeState};

pub fn gauges(config: &Config, observation: &Observation, steps: &[Step]) -> Gauges {
    let mut nodes: BTreeMap<[String; 3], u64> = BTreeMap::new();
    for node in &observation.nodes {
        if let Ok((_, group)) = crate::names::parse(config, &node.name) {
            let state = state_label(&node.state).to_string();
            let key = [group.partition.to_string(), group.name.to_string(), state];
            *nodes.entry(key).or_default() += 1;
        }
    }
    let mut instances: BTreeMap<[String; 4], u64> = BTreeMap::new();
    let unterminated = observation.instances.iter().map(|f| &f.instance);
    for instance in unterminated.filter(|i| i.state != InstanceState::Terminated) {
        let tag = |key| instance.tag(key).unwrap_or("unknown").to_string();
        let option = instance.purchasing().map_or("other", |p| p.label());
        let state = instance.state.to_string();
        let key = [
            tag(PARTITION_TAG),
            tag(NODE_GROUP_TAG),
            state,
            option.to_string(),
        ];
        *instances.entry(key).or_default() += 1;
    }
    let (orphans, leaks) = reaped(steps);
    let held = super::plan::group_holds(&observation.inputs(config));
    let holds = config
        .node_groups()
        .filter_map(|group| {
            let hold = held.get(&group.node_prefix())?;
            let kind = match hold.code.as_str() {
                crate::slurm::reason::NEVER_REGISTERED => "boot_failure",
                _ => "capacity",
            };
            let labels = [
                group.partition.to_string(),
                group.name.to_string(),
                kind.to_string(),
            ];
            Some((labels, hold.until))
        })
        .collect();
    let reports = crate::pool::report::pools(
        config,
        observation.instances.iter().map(|f| &f.instance),
        observation.now,
    );
    let pools = config
        .node_groups()
        .filter_map(|group| {
            let report = reports.iter().find(|r| r.pool == group.node_prefix())?;
            let labels = [group.partition.to_string(), group.name.to_string()];
            Some((labels, report.size, report.stopped))
        })
        .collect();
    Gauges {
        nodes,
        instances,
        orphans,
        leaks,
        holds,
        pools,
    }
}

/// The orphans and the leaks the plan terminates.
pub fn reaped(steps: &[Step]) -> (usize, usize) {
    let terminated = steps
        .iter()
        .filter(|s| matches!(s.action, Action::Terminate | Action::TrimPool { .. }));
    let (orphans, rest): (Vec<&Step>, Vec<&Step>) =
        terminated.partition(|s| s.why.contains("orphan"));
    let leaks = rest.iter().filter(|s| s.why.contains("leak")).count();
    (orphans.len(), leaks)
}

/// One label for a node's state: its power state first, then down, drain,
/// then its base state.
pub fn state_label(state: &NodeState) -> &'static str {
    if state.powering_up() {
        "powering_up"
    } else if state.powering_down() {
        "powering_down"
    } else if state.powered_down() {
        "powered_down"
    } else if state.is_down() {
        "down"
    } else if state.has(Flag::Drain) {
        "drain"
    } else {
        match state.base {
            BaseState::Idle => "idle",
            BaseState::Allocated => "allocated",
            BaseState::Mixed => "mixed",
            BaseState::Completing => "completing",
            BaseState::Future => "future",
            BaseState::Unknown => "unknown",
            BaseState::Down => "down",
            BaseState::Other(_) => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_label_a_node_power_first() {
        let label = |text: &str| state_label(&NodeState::parse(text));
        assert_eq!(label("IDLE+CLOUD+POWERED_DOWN"), "powered_down");
        assert_eq!(
            label("DOWN+CLOUD+POWERED_DOWN+NOT_RESPONDING"),
            "powered_down"
        );
        assert_eq!(label("ALLOCATED+CLOUD+POWERING_UP"), "powering_up");
        assert_eq!(label("IDLE+CLOUD+POWERING_DOWN"), "powering_down");
        assert_eq!(label("DOWN+CLOUD"), "down");
        assert_eq!(label("IDLE+CLOUD+DRAIN"), "drain");
        assert_eq!(label("MIXED+CLOUD"), "mixed");
    }
}
