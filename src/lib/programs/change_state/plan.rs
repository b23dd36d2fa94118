//! The action table: from a node's Slurm state and its instances' EC2 state to
//! what change-state does. Plain data in, plain data out.
//!
//! | Slurm state                                   | EC2                         | action                                   |
//! |-----------------------------------------------|-----------------------------|------------------------------------------|
//! | powered down or powering down, not DOWN       | a live instance             | terminate it (a leak)                    |
//! | powered down, its group under a capacity hold | —                           | `state=DOWN reason="(Code:…)Held until <time> …"`, kept while the hold lasts |
//! | powered down, its group's breaker open (boot failures) | —                  | `state=DOWN reason="(Code:NeverRegistered)Held until <time> …"`, kept while the hold lasts |
//! | DOWN + powered down (ResumeTimeout, resume failure, a hold that ended) | — | terminate any instance; `state=RESUME`, then `state=POWER_DOWN_FORCE` (RESUME leaves it not responding) |
//! | IDLE + powered down + not responding          | —                           | `state=POWER_DOWN_FORCE` (Slurm would never power it up) |
//! | in service (idle, alloc, mixed, completing)   | no live instance            | `state=DOWN` naming the instance, then `state=POWER_DOWN_FORCE` |
//! | in service                                    | its one instance impaired (status checks) longer than the grace | `state=DOWN reason="(Code:InstanceImpaired)…"`, then `state=POWER_DOWN_FORCE` |
//! | in service, not drained                       | its one instance has an event EC2 scheduled | `state=DRAIN reason="(Code:<event>)EC2 scheduled it for <time>"` |
//! | DOWN + not responding, not powering up/down   | —                           | `state=POWER_DOWN_FORCE`                 |
//! | DRAIN + powered down                          | —                           | `state=UNDRAIN`                          |
//! | COMPLETING + DRAIN, reason older than grace   | —                           | `state=DOWN`                             |
//! | not powered down, several live instances      | —                           | keep the one whose address Slurm holds (else the oldest running), terminate the others (duplicates) |
//! | not powered down, not in the configuration    | its instance                | keep it, reported as "not in the configuration any more" |
//! | powered down, not in the configuration        | its instance                | terminate (a leak)                       |
//! | not listed by Slurm                           | ours but not a node of ours, or no Name after the grace | terminate (an orphan) |
//! | up or powering up, Slurm 23.11+, InstanceId not its one live instance | its instance | `instanceid=… instancetype=…` |
//! | any                                           | live, named only by its reservation's node list | tag its `Name` (and placeholder tags) |
//!
//! On 23.11+ an instance is first the node's whose InstanceId names it (when
//! its tags agree), else the one its Name gives, else the one its place in
//! its reservation's node list (`slurm-ec2:nodes`) gives.
//!
//! Instances younger than the launch grace are never touched, nor instances
//! without this cluster's tag (they are never read).

use std::collections::BTreeMap;

use super::jobs::JobOnNode;
use super::rules::{self, NodeView};
use super::step::young;
pub use super::step::{
    Action, Found, Hold, STATE_DOWN, STATE_POWER_DOWN_FORCE, STATE_RESUME, STATE_UNDRAIN, Step,
};
use crate::config::{Config, NodeGroup};
use crate::ec2::{self, Health, Instance, InstanceState};
use crate::names;
use crate::slurm::NodeInfo;
use crate::slurm::reason::{self as reasons, hold_end, reason_time};

pub struct Inputs<'a> {
    pub config: &'a Config,
    /// Every node Slurm lists, ours or not: a node that left the
    /// configuration keeps its instance while Slurm still has it in service.
    pub nodes: &'a [NodeInfo],
    pub instances: &'a [Found],
    /// Seconds since the epoch.
    pub now: i64,
    /// Slurm has InstanceId and InstanceType (23.11+): record them, and
    /// match nodes to instances by them first.
    pub record_instances: bool,
    /// The job each node runs, for the tags of instances resume left unnamed.
    pub jobs: &'a BTreeMap<String, JobOnNode>,
    /// EC2's view of running instances that are not healthy, by id.
    pub health: &'a BTreeMap<String, Health>,
    /// Node groups the breaker holds after boot failures, with the hold's end.
    pub boot_holds: &'a BTreeMap<String, i64>,
    /// The warm pools' claims and launch templates.
    pub pools: &'a super::pools::PoolInputs,
}

/// The capacity code and the end of the hold that this node's reason starts or carries.
fn hold_from(reason: &str, hold: i64) -> Option<(String, i64)> {
    let code = reasons::code(reason).filter(|c| ec2::is_capacity(c))?;
    if reasons::is_hold(reason) {
        return Some((code.to_string(), hold_end(reason)?));
    }
    let failed_at = reason_time(reason).filter(|_| reasons::is_resume_failure(reason))?;
    Some((code.to_string(), failed_at + hold))
}

pub fn plan(inputs: &Inputs) -> Vec<Step> {
    let config = inputs.config;
    let grace = i64::try_from(config.settings.launch_grace.as_secs()).unwrap_or(i64::MAX);
    let hold = i64::try_from(config.settings.capacity_hold.as_secs()).unwrap_or(i64::MAX);
    let now = inputs.now;
    let (by_name, mut steps) = sort_instances(inputs, grace);
    let ours = ours(inputs);
    let holds = holds(&ours, hold, inputs.boot_holds, now);
    for (node, group) in ours {
        let instances = by_name.get(node.name.as_str()).cloned().unwrap_or_default();
        let live: Vec<&Found> = instances
            .iter()
            .copied()
            .filter(|f| f.instance.is_live())
            .collect();
        let view = NodeView {
            node,
            group,
            old_live: live
                .iter()
                .copied()
                .filter(|f| !young(&f.instance, now, grace))
                .collect(),
            live,
            instances,
            hold: holds.get(&group.node_prefix()),
            now,
            grace,
            record_instances: inputs.record_instances,
            job: inputs.jobs.get(node.name.as_str()),
            job_tags: config.settings.job_tags,
            health: inputs.health,
            impaired_grace: i64::try_from(config.settings.impaired_grace.as_secs())
                .unwrap_or(i64::MAX),
        };
        steps.extend(rules::steps_for(&view));
    }
    steps.extend(super::pools::steps(
        config,
        inputs.instances,
        inputs.pools,
        now,
        grace,
    ));
    steps
}

/// This cluster's instances by their node: the one whose InstanceId in Slurm
/// names it (when its tags agree), else the one its Name gives; the steps for
/// those whose Name is no node of ours (past the grace, still live).
fn sort_instances<'i>(
    inputs: &'i Inputs,
    grace: i64,
) -> (BTreeMap<String, Vec<&'i Found>>, Vec<Step>) {
    let listed: BTreeMap<&str, &NodeInfo> =
        inputs.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let by_instance_id = match inputs.record_instances {
        true => recorded_instances(inputs.nodes),
        false => BTreeMap::new(),
    };
    let mut by_name: BTreeMap<String, Vec<&Found>> = BTreeMap::new();
    let mut steps = Vec::new();
    for found in inputs.instances {
        let instance = &found.instance;
        let shutting_down = instance.state == InstanceState::ShuttingDown;
        if instance.is_pooled() {
            continue; // no node's: the pool's rows are its own
        }
        match node_of(inputs.config, instance, &by_instance_id) {
            Some(name) if names::parse(inputs.config, &name).is_ok() => {
                by_name.entry(name).or_default().push(found)
            }
            _ if !instance.is_live() && !shutting_down => {}
            _ if young(instance, inputs.now, grace) || shutting_down => {}
            name => steps.push(not_a_node_of_ours(
                found,
                name.as_deref().and_then(|n| listed.get(n).copied()),
                name.as_deref(),
            )),
        }
    }
    (by_name, steps)
}

/// The node each InstanceId in Slurm is recorded for, by that id.
pub(crate) fn recorded_instances(nodes: &[NodeInfo]) -> BTreeMap<&str, &str> {
    nodes
        .iter()
        .filter_map(|n| Some((n.instance_id.as_deref()?, n.name.as_str())))
        .collect()
}

/// The node an instance stands for: the one whose InstanceId in Slurm names
/// it, where the instance's own tags agree; else its Name; else its place in
/// its reservation's node list.
pub(crate) fn node_of(
    config: &Config,
    instance: &Instance,
    recorded: &BTreeMap<&str, &str>,
) -> Option<String> {
    recorded
        .get(instance.id.as_str())
        .copied()
        .filter(|node| recorded_for(config, instance, node))
        .map(str::to_string)
        .or_else(|| instance.node_name())
}

/// Whether Slurm's InstanceId may stand for the tags: the instance's partition
/// and node group are the node's, and its Name, when it has one, is the node.
fn recorded_for(config: &Config, instance: &Instance, node: &str) -> bool {
    names::parse(config, node).is_ok_and(|(_, group)| instance.may_be_node(node, group))
}

/// The nodes of the configuration's node groups, with their group.
fn ours<'a>(inputs: &Inputs<'a>) -> Vec<(&'a NodeInfo, &'a NodeGroup)> {
    inputs
        .nodes
        .iter()
        .filter_map(|node| {
            names::parse(inputs.config, &node.name)
                .ok()
                .map(|(_, group)| (node, group))
        })
        .collect()
}

/// The node groups held DOWN now, by their node prefix: what [`plan`] holds.
pub fn group_holds(inputs: &Inputs) -> BTreeMap<String, Hold> {
    let hold = i64::try_from(inputs.config.settings.capacity_hold.as_secs()).unwrap_or(i64::MAX);
    holds(&ours(inputs), hold, inputs.boot_holds, inputs.now)
}

/// Node groups held DOWN, by their node prefix, with the hold that ends
/// last: after insufficient capacity, a node that resume failed with a
/// capacity code less than `hold` seconds ago, or a node already held, until
/// the end its reason announces; after boot failures, the breaker's holds
/// (its file is the only record: the breaker that closes releases them).
fn holds(
    ours: &[(&NodeInfo, &NodeGroup)],
    hold: i64,
    boot_holds: &BTreeMap<String, i64>,
    now: i64,
) -> BTreeMap<String, Hold> {
    let mut found: BTreeMap<String, (String, i64)> = BTreeMap::new();
    let mut keep_later = |group: String, code: String, until: i64| {
        let entry = found.entry(group).or_insert((code.clone(), until));
        if until > entry.1 {
            *entry = (code, until);
        }
    };
    for (node, group) in ours {
        let read = node.reason.as_deref().and_then(|r| hold_from(r, hold));
        if let Some((code, until)) = read
            && until > now
            && hold > 0
        {
            keep_later(group.node_prefix(), code, until);
        }
    }
    for (group, until) in boot_holds.iter().filter(|(_, until)| **until > now) {
        keep_later(group.clone(), reasons::NEVER_REGISTERED.to_string(), *until);
    }
    found
        .into_iter()
        .map(|(group, (code, until))| {
            let reason = match code.as_str() {
                reasons::NEVER_REGISTERED => reasons::boot_hold_reason(until, &group),
                _ => reasons::hold_reason(&code, until, &group),
            };
            (
                group,
                Hold {
                    code,
                    until,
                    reason,
                },
            )
        })
        .collect()
}

/// The step for a live instance of this cluster whose Name is no node of the
/// configuration: kept while Slurm lists that node and has not powered it
/// down (a job may run on it), terminated otherwise.
fn not_a_node_of_ours(found: &Found, listed: Option<&NodeInfo>, name: Option<&str>) -> Step {
    let instance = &found.instance;
    let (node, slurm_state, action, why) = match (listed, name) {
        (Some(node), _) if !node.state.powered_down() && !node.state.powering_down() => (
            Some(node.name.clone()),
            node.state_text.clone(),
            Action::Keep,
            "not in the configuration any more: kept while Slurm has the node in service".into(),
        ),
        (Some(node), _) => (
            Some(node.name.clone()),
            node.state_text.clone(),
            Action::Terminate,
            "not in the configuration any more and powered down (a leak)".into(),
        ),
        (None, Some(name)) => (
            None,
            "-".into(),
            Action::Terminate,
            format!("orphan: Name {name:?} is not a node of this cluster"),
        ),
        (None, None) => (
            None,
            "-".into(),
            Action::Terminate,
            "orphan: no Name tag after the launch grace".into(),
        ),
    };
    Step {
        node,
        slurm_state,
        instance: Some(instance.id.clone()),
        ec2_state: instance.state.to_string(),
        account: Some(found.account.clone()),
        action,
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::super::step::STATE_DRAIN;
    use super::*;
    use crate::ec2::{Account, ScheduledEvent};
    use crate::fixtures;
    use crate::slurm::reason::hold_reason;
    use crate::slurm::{NodeState, parse_nodes};

    const NOW: i64 = 1_800_000_000;
    const OLD: i64 = NOW - 3600;

    fn node(name: &str, state: &str, reason: Option<&str>) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            state: NodeState::parse(state),
            state_text: state.into(),
            address: None,
            reason: reason.map(str::to_string),
            instance_id: None,
            instance_type: None,
        }
    }

    fn found(id: &str, name: Option<&str>, state: &str, launched: i64) -> Found {
        let mut tags = vec![("slurm-ec2:cluster".to_string(), "c".to_string())];
        if let Some(name) = name {
            tags.push(("Name".into(), name.into()));
        }
        Found {
            account: Account {
                region: "us-east-1".into(),
                profile: None,
            },
            instance: Instance {
                id: id.into(),
                state: InstanceState::parse(state),
                address: Some("10.0.0.1".into()),
                private_dns_name: None,
                tags,
                launch_time: Some(launched),
                instance_type: None,
                availability_zone: None,
                lifecycle: None,
                reservation_id: None,
                launch_index: None,
                image_id: None,
            },
        }
    }

    /// The plan of the example configuration at `NOW`, without jobs.
    fn plan_of(
        nodes: &[NodeInfo],
        instances: &[Found],
        health: &BTreeMap<String, Health>,
        record_instances: bool,
    ) -> Vec<Step> {
        plan(&Inputs {
            config: &fixtures::example(),
            nodes,
            instances,
            now: NOW,
            jobs: &BTreeMap::new(),
            health,
            record_instances,
            boot_holds: &BTreeMap::new(),
            pools: &Default::default(),
        })
    }

    fn run(
        nodes: &[NodeInfo],
        instances: &[Found],
    ) -> Vec<(Option<String>, Option<String>, Action)> {
        plan_of(nodes, instances, &BTreeMap::new(), false)
            .into_iter()
            .map(|s| (s.node, s.instance, s.action))
            .collect()
    }

    fn run_recording(nodes: &[NodeInfo], instances: &[Found]) -> Vec<Step> {
        plan_of(nodes, instances, &BTreeMap::new(), true)
    }

    fn group_tags(found: &mut Found) {
        found.instance.tags.extend([
            ("slurm-ec2:partition".to_string(), "aws".to_string()),
            ("slurm-ec2:node-group".to_string(), "ondemand".to_string()),
        ]);
    }

    #[test]
    fn an_instance_without_a_name_is_the_node_slurm_records_it_for() {
        let mut recorded = node("aws-ondemand-3", "ALLOCATED+CLOUD", None);
        recorded.instance_id = Some("i-3".into());
        let mut nameless = found("i-3", None, "running", OLD);
        group_tags(&mut nameless);
        // Without the record it would be an orphan; with it, the node's instance.
        let steps = run_recording(
            std::slice::from_ref(&recorded),
            std::slice::from_ref(&nameless),
        );
        assert!(steps.is_empty(), "{steps:?}");
        let steps = run(&[recorded.clone()], std::slice::from_ref(&nameless));
        assert!(steps.iter().any(|s| s.2 == Action::Terminate), "{steps:?}");
        // A record whose tags disagree stands for nothing: the tags decide.
        let mut other_group = found("i-3", None, "running", OLD);
        other_group
            .instance
            .tags
            .push(("slurm-ec2:partition".into(), "gpu".into()));
        let steps = run_recording(&[recorded.clone()], &[other_group]);
        assert!(
            steps.iter().any(|s| s.action == Action::Terminate),
            "{steps:?}"
        );
        let mut named_otherwise = found("i-3", Some("aws-ondemand-4"), "running", OLD);
        group_tags(&mut named_otherwise);
        let steps = run_recording(&[recorded], &[named_otherwise]);
        assert!(
            steps
                .iter()
                .any(|s| s.node.as_deref() == Some("aws-ondemand-3")
                    && matches!(s.action, Action::DownThenPowerDown { .. })),
            "{steps:?}"
        );
    }

    #[test]
    fn records_the_instance_of_a_node_in_service_once() {
        let mut instance = found("i-7", Some("aws-ondemand-7"), "running", OLD);
        instance.instance.instance_type = Some("c5.large".into());
        let unrecorded = node("aws-ondemand-7", "IDLE+CLOUD", None);
        let steps = run_recording(
            std::slice::from_ref(&unrecorded),
            std::slice::from_ref(&instance),
        );
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert_eq!(steps[0].instance.as_deref(), Some("i-7"));
        assert_eq!(
            steps[0].action,
            Action::RecordInstance {
                instance_type: "c5.large".into()
            }
        );
        let mut recorded = unrecorded.clone();
        recorded.instance_id = Some("i-7".into());
        assert!(run_recording(&[recorded], std::slice::from_ref(&instance)).is_empty());
        // Older Slurm has no such field.
        assert!(run(&[unrecorded], &[instance]).is_empty());
    }

    #[test]
    fn resume_timeout_is_repaired_in_both_forms() {
        // 22.05 keeps NOT_RESPONDING, 23.02.5 and later clear it; RESUME
        // keeps it (22.05) or sets it (24.11): a forced power-down follows.
        for state in [
            "DOWN+CLOUD+POWERED_DOWN+NOT_RESPONDING",
            "DOWN+CLOUD+POWERED_DOWN",
        ] {
            let timed_out = node("aws-ondemand-5", state, Some("ResumeTimeout reached"));
            let instance = found("i-5", Some("aws-ondemand-5"), "running", OLD);
            let steps = run(&[timed_out], &[instance]);
            let actions: Vec<&Action> = steps.iter().map(|s| &s.2).collect();
            assert!(actions.contains(&&Action::Terminate), "{state}: {steps:?}");
            let repairs: Vec<&Action> = actions[1..].to_vec();
            assert_eq!(
                repairs,
                [&set(STATE_RESUME), &set(STATE_POWER_DOWN_FORCE)],
                "{state}: {steps:?}"
            );
        }
    }

    #[test]
    fn a_failed_node_slurm_is_about_to_power_down_keeps_its_capacity_code() {
        let failed = format!(
            "(Code:InsufficientInstanceCapacity)Failure when resuming nodes {}",
            stamp(1)
        );
        let pending = node(
            "aws-spot-1",
            "DOWN+CLOUD+NOT_RESPONDING+POWER_DOWN",
            Some(&failed),
        );
        assert!(run(&[pending], &[]).is_empty());
        let unattended = node("aws-spot-1", "DOWN+CLOUD+NOT_RESPONDING", Some(&failed));
        assert_eq!(
            run(&[unattended], &[]),
            [(Some("aws-spot-1".into()), None, set(STATE_POWER_DOWN_FORCE))]
        );
    }

    #[test]
    fn a_powered_down_node_that_does_not_respond_is_powered_down_again() {
        let stuck = node("aws-spot-3", "IDLE+CLOUD+POWERED_DOWN+NOT_RESPONDING", None);
        assert_eq!(
            run(&[stuck], &[]),
            [(Some("aws-spot-3".into()), None, set(STATE_POWER_DOWN_FORCE))]
        );
        // Allocated to a job that waits for its power-up: Slurm's.
        let waiting = node(
            "aws-spot-3",
            "MIXED+CLOUD+POWERED_DOWN+NOT_RESPONDING",
            None,
        );
        assert!(run(&[waiting], &[]).is_empty());
    }

    fn stamp(seconds_ago: i64) -> String {
        let t = chrono::DateTime::from_timestamp(NOW - seconds_ago, 0)
            .unwrap()
            .with_timezone(&chrono::Local);
        t.format("[slurm@%Y-%m-%dT%H:%M:%S]").to_string()
    }

    fn set(state: &'static str) -> Action {
        Action::SetState {
            state,
            reason: None,
        }
    }

    #[test]
    fn powered_down_node_with_a_live_instance_is_a_leak() {
        let steps = run(
            &[node("aws-spot-1", "IDLE+CLOUD+POWERED_DOWN", None)],
            &[found("i-1", Some("aws-spot-1"), "running", OLD)],
        );
        assert_eq!(
            steps,
            vec![(
                Some("aws-spot-1".into()),
                Some("i-1".into()),
                Action::Terminate
            )]
        );
        let steps = run(
            &[node("aws-spot-1", "IDLE+CLOUD+POWERING_DOWN", None)],
            &[found("i-1", Some("aws-spot-1"), "running", OLD)],
        );
        assert_eq!(steps[0].2, Action::Terminate);
        // 20.02 strings too.
        let steps = run(
            &[node("aws-spot-1", "IDLE~+CLOUD+POWER", None)],
            &[found("i-1", Some("aws-spot-1"), "running", OLD)],
        );
        assert_eq!(steps[0].2, Action::Terminate);
        // A young instance is resume's business.
        assert!(
            run(
                &[node("aws-spot-1", "IDLE+CLOUD+POWERED_DOWN", None)],
                &[found("i-1", Some("aws-spot-1"), "running", NOW - 10)]
            )
            .is_empty()
        );
    }

    #[test]
    fn resume_timeout_victims_lose_their_instance_and_return_to_power_saving() {
        let reason = format!("ResumeTimeout reached {}", stamp(100));
        let nodes = [node(
            "aws-spot-2",
            "DOWN+CLOUD+POWERED_DOWN+NOT_RESPONDING",
            Some(&reason),
        )];
        let steps = run(&nodes, &[found("i-2", Some("aws-spot-2"), "running", OLD)]);
        assert_eq!(
            steps,
            vec![
                (
                    Some("aws-spot-2".into()),
                    Some("i-2".into()),
                    Action::Terminate
                ),
                (Some("aws-spot-2".into()), None, set(STATE_RESUME)),
                (Some("aws-spot-2".into()), None, set(STATE_POWER_DOWN_FORCE)),
            ]
        );
    }

    #[test]
    fn insufficient_capacity_holds_the_group_down_until_the_hold_ends() {
        // resume failed aws-spot-1 a minute ago, and powered it down.
        let failed = format!(
            "(Code:InsufficientInstanceCapacity)Failure when resuming nodes {}",
            stamp(60)
        );
        let nodes = [
            node("aws-spot-1", "IDLE+CLOUD+POWERED_DOWN", Some(&failed)),
            node("aws-spot-5", "IDLE+CLOUD+POWERED_DOWN", None),
            node("aws-ondemand-5", "IDLE+CLOUD+POWERED_DOWN", None),
        ];
        let until = NOW - 60 + 600;
        let held = hold_reason("InsufficientInstanceCapacity", until, "aws-spot-");
        assert_eq!(hold_end(&held), Some(until));
        let expected = Action::SetState {
            state: STATE_DOWN,
            reason: Some(held.clone()),
        };
        let steps = run(&nodes, &[]);
        assert_eq!(
            steps,
            vec![
                (Some("aws-spot-1".into()), None, expected.clone()),
                (Some("aws-spot-5".into()), None, expected.clone())
            ]
        );

        // Held already: nothing more, and a node that comes back to idle~ is held too.
        let stamped = format!("{held} {}", stamp(30));
        let nodes = [
            node("aws-spot-1", "DOWN+CLOUD+POWERED_DOWN", Some(&stamped)),
            node("aws-spot-6", "IDLE+CLOUD+POWERED_DOWN", None),
        ];
        assert_eq!(
            run(&nodes, &[]),
            vec![(Some("aws-spot-6".into()), None, expected)]
        );

        // The hold is over: back to power saving.
        let ended = format!(
            "{} {}",
            hold_reason("InsufficientInstanceCapacity", NOW - 5, "aws-spot-"),
            stamp(600)
        );
        let nodes = [
            node("aws-spot-1", "DOWN+CLOUD+POWERED_DOWN", Some(&ended)),
            node("aws-spot-5", "DOWN+CLOUD+POWERED_DOWN", Some(&ended)),
        ];
        let steps = run(&nodes, &[]);
        assert_eq!(
            steps.iter().filter(|s| s.2 == set(STATE_RESUME)).count(),
            2,
            "{steps:?}"
        );
    }

    #[test]
    fn the_breakers_hold_keeps_the_group_down_and_its_end_brings_it_back() {
        let config = fixtures::example();
        let timed_out = format!("ResumeTimeout reached {}", stamp(60));
        let nodes = [
            node("aws-spot-1", "DOWN+CLOUD+POWERED_DOWN", Some(&timed_out)),
            node("aws-spot-5", "IDLE+CLOUD+POWERED_DOWN", None),
            node("aws-ondemand-5", "IDLE+CLOUD+POWERED_DOWN", None),
        ];
        let until = NOW + 300;
        let plan_with = |nodes: &[NodeInfo], boot_holds: &BTreeMap<String, i64>| {
            plan(&Inputs {
                config: &config,
                nodes,
                instances: &[],
                now: NOW,
                jobs: &BTreeMap::new(),
                health: &BTreeMap::new(),
                record_instances: false,
                boot_holds,
                pools: &Default::default(),
            })
            .into_iter()
            .map(|s| (s.node.unwrap_or_default(), s.action))
            .collect::<Vec<_>>()
        };
        let held_group = BTreeMap::from([("aws-spot-".to_string(), until)]);
        let held = reasons::boot_hold_reason(until, "aws-spot-");
        let down = Action::SetState {
            state: STATE_DOWN,
            reason: Some(held.clone()),
        };
        assert_eq!(
            plan_with(&nodes, &held_group),
            [
                ("aws-spot-1".into(), down.clone()),
                ("aws-spot-5".into(), down)
            ]
        );
        // Held already: nothing to do; the breaker closed (or its file lost): back to idle~.
        let stamped = format!("{held} {}", stamp(30));
        let nodes = [node(
            "aws-spot-1",
            "DOWN+CLOUD+POWERED_DOWN",
            Some(&stamped),
        )];
        assert!(plan_with(&nodes, &held_group).is_empty());
        assert_eq!(
            plan_with(&nodes, &BTreeMap::new()),
            [
                ("aws-spot-1".into(), set(STATE_RESUME)),
                ("aws-spot-1".into(), set(STATE_POWER_DOWN_FORCE))
            ]
        );
    }

    #[test]
    fn a_zero_hold_disables_the_hold() {
        let mut config = fixtures::example();
        config.settings.capacity_hold = std::time::Duration::ZERO;
        let failed = format!(
            "(Code:InsufficientInstanceCapacity)Failure when resuming nodes {}",
            stamp(60)
        );
        let nodes = [
            node("aws-spot-1", "IDLE+CLOUD+POWERED_DOWN", Some(&failed)),
            node("aws-spot-5", "IDLE+CLOUD+POWERED_DOWN", None),
        ];
        assert!(
            plan(&Inputs {
                config: &config,
                nodes: &nodes,
                instances: &[],
                now: NOW,
                jobs: &BTreeMap::new(),
                health: &BTreeMap::new(),
                record_instances: false,
                boot_holds: &BTreeMap::new(),
                pools: &Default::default(),
            })
            .is_empty()
        );
    }

    #[test]
    fn an_in_service_node_whose_instance_is_gone_goes_down_then_powers_down() {
        let steps = run(
            &[node("aws-spot-3", "ALLOCATED+CLOUD", None)],
            &[found("i-3", Some("aws-spot-3"), "terminated", OLD)],
        );
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].1.as_deref(), Some("i-3"));
        assert!(
            matches!(&steps[0].2, Action::DownThenPowerDown { reason } if reason.contains("i-3") && reason.contains("terminated"))
        );
        // Still there: nothing to do.
        assert!(
            run(
                &[node("aws-spot-3", "ALLOCATED+CLOUD", None)],
                &[found("i-3", Some("aws-spot-3"), "running", OLD)]
            )
            .is_empty()
        );
    }

    #[test]
    fn down_and_not_responding_is_powered_down_undrain_and_stuck_completing() {
        let steps = run(
            &[node("aws-spot-4", "DOWN+CLOUD+NOT_RESPONDING", None)],
            &[],
        );
        assert_eq!(steps[0].2, set(STATE_POWER_DOWN_FORCE));
        let steps = run(&[node("aws-spot-4", "DOWN*+CLOUD", None)], &[]);
        assert_eq!(steps[0].2, set(STATE_POWER_DOWN_FORCE));
        // Not while it is powering up.
        assert!(
            run(
                &[node(
                    "aws-spot-4",
                    "DOWN+CLOUD+NOT_RESPONDING+POWERING_UP",
                    None
                )],
                &[]
            )
            .is_empty()
        );
        let steps = run(
            &[node("aws-spot-6", "IDLE+CLOUD+DRAIN+POWERED_DOWN", None)],
            &[],
        );
        assert_eq!(steps[0].2, set(STATE_UNDRAIN));
        let old = format!("Kill task failed {}", stamp(1000));
        let steps = run(
            &[node(
                "aws-spot-7",
                "IDLE+CLOUD+COMPLETING+DRAIN",
                Some(&old),
            )],
            &[found("i-7", Some("aws-spot-7"), "running", OLD)],
        );
        assert!(matches!(
            &steps[0].2,
            Action::SetState {
                state: STATE_DOWN,
                ..
            }
        ));
        let recent = format!("Kill task failed {}", stamp(10));
        assert!(
            run(
                &[node(
                    "aws-spot-7",
                    "IDLE+CLOUD+COMPLETING+DRAIN",
                    Some(&recent)
                )],
                &[found("i-7", Some("aws-spot-7"), "running", OLD)]
            )
            .is_empty()
        );
    }

    #[test]
    fn orphans_are_terminated_after_the_grace() {
        let instances = [
            found("i-a", Some("aws-spot-999"), "running", OLD),
            found("i-b", None, "running", OLD),
            found("i-c", None, "running", NOW - 5),
            found("i-d", Some("linux-1"), "terminated", OLD),
        ];
        let steps = run(&[], &instances);
        let ids: Vec<_> = steps.iter().map(|s| s.1.clone().unwrap()).collect();
        assert_eq!(ids, vec!["i-a", "i-b"]);
        assert!(
            steps
                .iter()
                .all(|s| s.0.is_none() && s.2 == Action::Terminate)
        );
    }

    fn with_address(mut found: Found, address: &str) -> Found {
        found.instance.address = Some(address.into());
        found
    }

    #[test]
    fn a_node_that_left_the_configuration_keeps_its_instance_while_in_service() {
        // MaxNodes of aws-ondemand is 10: aws-ondemand-12 is no node of ours any more.
        let instance = found("i-12", Some("aws-ondemand-12"), "running", OLD);
        for state in [
            "ALLOCATED+CLOUD",
            "MIXED+CLOUD",
            "IDLE+CLOUD",
            "IDLE+CLOUD+COMPLETING",
            "ALLOCATED+CLOUD+POWERING_UP",
        ] {
            let steps = plan(&Inputs {
                config: &fixtures::example(),
                nodes: &[node("aws-ondemand-12", state, None)],
                instances: std::slice::from_ref(&instance),
                now: NOW,
                jobs: &BTreeMap::new(),
                health: &BTreeMap::new(),
                record_instances: false,
                boot_holds: &BTreeMap::new(),
                pools: &Default::default(),
            });
            assert_eq!(steps.len(), 1, "{state}");
            assert_eq!(steps[0].action, Action::Keep, "{state}");
            assert_eq!(steps[0].node.as_deref(), Some("aws-ondemand-12"));
            assert!(steps[0].why.contains("not in the configuration any more"));
        }
        // Powered down (or powering down) in Slurm, or not listed at all: reaped.
        for state in ["IDLE+CLOUD+POWERED_DOWN", "IDLE+CLOUD+POWERING_DOWN"] {
            let steps = run(
                &[node("aws-ondemand-12", state, None)],
                std::slice::from_ref(&instance),
            );
            assert_eq!(steps[0].2, Action::Terminate, "{state}");
        }
        let steps = run(&[], std::slice::from_ref(&instance));
        assert_eq!(steps[0].2, Action::Terminate);
    }

    #[test]
    fn extra_instances_of_a_node_are_reaped_keeping_the_one_slurm_reaches() {
        let mut allocated = node("aws-spot-3", "ALLOCATED+CLOUD", None);
        allocated.address = Some("10.0.0.9".into());
        let instances = [
            with_address(
                found("i-a", Some("aws-spot-3"), "running", OLD - 100),
                "10.0.0.8",
            ),
            with_address(found("i-b", Some("aws-spot-3"), "running", OLD), "10.0.0.9"),
            with_address(
                found("i-c", Some("aws-spot-3"), "pending", NOW - 2),
                "10.0.0.7",
            ),
        ];
        let steps = run(std::slice::from_ref(&allocated), &instances);
        assert_eq!(
            steps,
            vec![(
                Some("aws-spot-3".into()),
                Some("i-a".into()),
                Action::Terminate
            )],
            "the one at Slurm's address stays, the young one is resume's business"
        );
        // No address in Slurm yet: the oldest running instance stays.
        let steps = run(&[node("aws-spot-3", "IDLE+CLOUD", None)], &instances[..2]);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].1.as_deref(), Some("i-b"));
    }

    #[test]
    fn the_states_of_20_02_and_power_up_requests_are_repaired() {
        let steps = run(&[node("aws-spot-4", "MAINT+CLOUD", None)], &[]);
        assert!(
            matches!(steps[0].2, Action::DownThenPowerDown { .. }),
            "{steps:?}"
        );
        let steps = run(
            &[node(
                "aws-spot-4",
                "DOWN+CLOUD+NOT_RESPONDING+POWER_UP",
                None,
            )],
            &[],
        );
        assert_eq!(steps[0].2, set(STATE_POWER_DOWN_FORCE));
    }

    #[test]
    fn healthy_nodes_need_nothing() {
        let text = "NodeName=aws-spot-8 State=IDLE+CLOUD+POWERED_DOWN\nNodeName=aws-spot-9 State=MIXED+CLOUD Reason=(null)\nNodeName=aws-spot-10 State=ALLOCATED+CLOUD+POWERING_UP\nNodeName=compute-1 State=DOWN";
        let nodes = parse_nodes(text);
        assert!(
            run(
                &nodes,
                &[
                    found("i-9", Some("aws-spot-9"), "running", OLD),
                    found("i-10", Some("aws-spot-10"), "pending", NOW - 5)
                ]
            )
            .is_empty()
        );
    }

    #[test]
    fn reasons_give_their_code_and_time() {
        assert_eq!(
            reasons::code("(Code:InsufficientInstanceCapacity)Failure when resuming nodes"),
            Some("InsufficientInstanceCapacity")
        );
        assert_eq!(reasons::code("ResumeTimeout reached"), None);
        let stamped = format!("x {}", stamp(42));
        assert_eq!(reason_time(&stamped), Some(NOW - 42));
        assert_eq!(reason_time("no stamp"), None);
    }

    #[test]
    fn an_unnamed_instance_gets_its_jobs_values_and_tags_not_the_placeholders() {
        let partitions = fixtures::EXAMPLE_1.replace(
            r#""Value": "ondemand""#,
            r#""Value": "job-{job_id} user-{user} {node_name}""#,
        );
        let config = fixtures::load(fixtures::CONFIG_JSON, &partitions).unwrap();
        let mut instance = found("i-1", None, "running", OLD);
        group_tags(&mut instance);
        instance
            .instance
            .tags
            .push((ec2::NODES_TAG.to_string(), "aws-ondemand-[0-1]".to_string()));
        instance.instance.launch_index = Some(1);
        let node_state = node("aws-ondemand-1", "ALLOCATED+CLOUD", None);
        let jobs = BTreeMap::from([(
            "aws-ondemand-1".to_string(),
            JobOnNode {
                job_id: 17,
                user: "alice".into(),
                account: "physics".into(),
            },
        )]);
        for (jobs, want) in [
            (jobs.clone(), "job-17 user-alice aws-ondemand-1"),
            (BTreeMap::new(), "job- user- aws-ondemand-1"),
        ] {
            let steps = plan(&Inputs {
                config: &config,
                nodes: std::slice::from_ref(&node_state),
                instances: std::slice::from_ref(&instance),
                now: NOW,
                jobs: &jobs,
                health: &BTreeMap::new(),
                record_instances: false,
                boot_holds: &BTreeMap::new(),
                pools: &Default::default(),
            });
            let tags = steps
                .iter()
                .find_map(|s| match &s.action {
                    Action::NameInstance { tags } => Some(tags.clone()),
                    _ => None,
                })
                .expect("the instance is named");
            let value = |key: &str| tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
            assert_eq!(value("Name"), Some("aws-ondemand-1"));
            assert_eq!(value("NodeGroup"), Some(want), "{tags:?}");
            let with_job = !jobs.is_empty();
            assert_eq!(value("slurm-ec2:job-id").is_some(), with_job, "{tags:?}");
            assert_eq!(value("slurm-ec2:account"), with_job.then_some("physics"));
        }
    }

    fn run_with_health(
        nodes: &[NodeInfo],
        instances: &[Found],
        health: &BTreeMap<String, Health>,
    ) -> Vec<Action> {
        plan_of(nodes, instances, health, false)
            .into_iter()
            .map(|s| s.action)
            .collect()
    }

    #[test]
    fn an_instance_impaired_past_the_grace_takes_its_node_down() {
        let nodes = [node("aws-spot-1", "ALLOCATED+CLOUD", None)];
        let instances = [found("i-1", Some("aws-spot-1"), "running", OLD)];
        let impaired = |since| {
            let health = Health {
                impaired_since: Some(since),
                events: Vec::new(),
            };
            BTreeMap::from([("i-1".to_string(), health)])
        };
        let steps = run_with_health(&nodes, &instances, &impaired(NOW - 301));
        assert!(
            matches!(&steps[..], [Action::DownThenPowerDown { reason }]
                if reason.starts_with("(Code:InstanceImpaired)Instance i-1 ")),
            "{steps:?}"
        );
        // Within the grace (300 s), or already down: nothing yet.
        assert!(run_with_health(&nodes, &instances, &impaired(NOW - 60)).is_empty());
        let down = [node(
            "aws-spot-1",
            "DOWN+CLOUD",
            Some("(Code:InstanceImpaired)x"),
        )];
        let steps = run_with_health(&down, &instances, &impaired(NOW - 3600));
        assert!(
            !steps
                .iter()
                .any(|a| matches!(a, Action::DownThenPowerDown { .. })),
            "{steps:?}"
        );
    }

    #[test]
    fn a_scheduled_event_drains_its_node_once() {
        let instances = [found("i-2", Some("aws-spot-2"), "running", OLD)];
        let event = ScheduledEvent {
            code: "instance-retirement".into(),
            not_before: Some(NOW + 86_400),
        };
        let health = BTreeMap::from([(
            "i-2".to_string(),
            Health {
                impaired_since: None,
                events: vec![event],
            },
        )]);
        let idle = [node("aws-spot-2", "IDLE+CLOUD", None)];
        let steps = run_with_health(&idle, &instances, &health);
        assert!(
            matches!(&steps[..], [Action::SetState { state: STATE_DRAIN, reason: Some(reason) }]
                if reason.starts_with("(Code:instance-retirement)EC2 scheduled it for ")),
            "{steps:?}"
        );
        let drained = [node(
            "aws-spot-2",
            "IDLE+CLOUD+DRAIN",
            Some("(Code:instance-retirement)x"),
        )];
        assert!(run_with_health(&drained, &instances, &health).is_empty());
    }
}
