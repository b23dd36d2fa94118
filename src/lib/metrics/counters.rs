//! The counters, read from the event log: they survive restarts and count
//! what every program did, whichever ran it. A rotated log starts them
//! again from zero, which Prometheus' `rate()` and `increase()` allow for.

use std::collections::{BTreeMap, BTreeSet};

use super::{Family, Sample, Type};
use crate::config::Config;
use crate::events::{Event, Kind};

/// A node group's labels: its partition and its name; `unknown` for a node
/// the configuration no longer has.
type Group = (String, String);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    pub launches: BTreeMap<Group, u64>,
    /// Instances suspend put in a warm pool instead of terminating them.
    pub pooled: BTreeMap<Group, u64>,
    /// By group and EC2 error code (or slurm-ec2's own code).
    pub failures: BTreeMap<(Group, String), u64>,
    /// By why: suspend, orphan, leak, duplicate, unserved, teardown.
    pub terminations: BTreeMap<String, u64>,
    /// By the state set.
    pub repairs: BTreeMap<String, u64>,
    /// Distinct holds (one per group and end, however many nodes it set
    /// down), by group and kind: capacity, boot_failure.
    holds: BTreeSet<(Group, &'static str, String)>,
    /// By the notice's code.
    pub notices: BTreeMap<String, u64>,
    /// By EC2 action: attempts throttled, and retries.
    pub throttled: BTreeMap<String, u64>,
    pub retried: BTreeMap<String, u64>,
    /// Lines of the log that are not events.
    pub skipped_lines: u64,
}

impl Counters {
    pub fn add(&mut self, config: &Config, event: &Event) {
        let group = || group_of(config, event.node.as_deref());
        let code = || event.code.clone().unwrap_or_else(|| "unknown".to_string());
        match event.event {
            Kind::Launch => *self.launches.entry(group()).or_default() += 1,
            Kind::Pooled => *self.pooled.entry(group()).or_default() += 1,
            Kind::Failure => *self.failures.entry((group(), code())).or_default() += 1,
            Kind::Termination => {
                let why = event.why.map_or("unknown", crate::events::Why::name);
                *self.terminations.entry(why.to_string()).or_default() += 1;
            }
            Kind::StateRepair => *self.repairs.entry(code()).or_default() += 1,
            Kind::CapacityHold | Kind::BootFailureHold => {
                let kind = match event.event {
                    Kind::CapacityHold => "capacity",
                    _ => "boot_failure",
                };
                let detail = event.detail.clone().unwrap_or_default();
                self.holds.insert((group(), kind, detail));
            }
            Kind::Notice => *self.notices.entry(code()).or_default() += 1,
            Kind::Retries => {
                let add = |map: &mut BTreeMap<String, u64>, n: Option<u64>| {
                    let entry = map.entry(code()).or_default();
                    *entry = entry.saturating_add(n.unwrap_or(0));
                };
                add(&mut self.throttled, event.throttled);
                add(&mut self.retried, event.retried);
            }
        }
    }

    pub fn holds(&self) -> BTreeMap<(Group, &'static str), u64> {
        let mut holds = BTreeMap::new();
        for (group, kind, _) in &self.holds {
            *holds.entry((group.clone(), *kind)).or_default() += 1;
        }
        holds
    }

    /// The counters' families.
    pub fn families(&self) -> Vec<Family> {
        let by_group = |map: &BTreeMap<Group, u64>| -> Vec<Sample> {
            map.iter()
                .map(|((p, g), n)| Sample::new(&[("partition", p), ("node_group", g)], *n as f64))
                .collect()
        };
        let by = |label: &'static str, map: &BTreeMap<String, u64>| -> Vec<Sample> {
            map.iter()
                .map(|(key, n)| Sample::new(&[(label, key)], *n as f64))
                .collect()
        };
        let failures = self.failures.iter().map(|(((p, g), code), n)| {
            Sample::new(
                &[("partition", p), ("node_group", g), ("code", code)],
                *n as f64,
            )
        });
        let holds = self.holds().into_iter().map(|(((p, g), kind), n)| {
            Sample::new(
                &[("partition", &p), ("node_group", &g), ("kind", kind)],
                n as f64,
            )
        });
        vec![
            Family::new("slurm_ec2_launches_total", Type::Counter, "Nodes resume gave an instance to.")
                .with(by_group(&self.launches)),
            Family::new("slurm_ec2_pooled_total", Type::Counter, "Instances suspend stopped into their group's warm pool instead of terminating them.")
                .with(by_group(&self.pooled)),
            Family::new("slurm_ec2_launch_failures_total", Type::Counter, "Nodes resume could not give an instance to, by error code.")
                .with(failures),
            Family::new("slurm_ec2_terminations_total", Type::Counter, "Instances terminated, by why (suspend, orphan, leak, duplicate, unserved, teardown, pool).")
                .with(by("why", &self.terminations)),
            Family::new("slurm_ec2_repairs_total", Type::Counter, "Node states change-state set in Slurm, by the state set.")
                .with(by("state", &self.repairs)),
            Family::new("slurm_ec2_holds_total", Type::Counter, "Node groups held DOWN, by kind (capacity, boot_failure).")
                .with(holds),
            Family::new("slurm_ec2_notices_total", Type::Counter, "Actions of slurm-ec2 watch on EC2's notices, by the notice's code.")
                .with(by("code", &self.notices)),
            Family::new("slurm_ec2_api_throttled_total", Type::Counter, "EC2 calls EC2 throttled, by API action.")
                .with(by("api", &self.throttled)),
            Family::new("slurm_ec2_api_retries_total", Type::Counter, "EC2 calls tried again, by API action.")
                .with(by("api", &self.retried)),
            Family::new("slurm_ec2_event_log_skipped_lines", Type::Gauge, "Lines of EventLogFile that are not events.")
                .with([Sample::new(&[], self.skipped_lines as f64)]),
        ]
    }
}

fn group_of(config: &Config, node: Option<&str>) -> Group {
    node.and_then(|node| crate::names::parse(config, node).ok())
        .map(|(_, group)| (group.partition.to_string(), group.name.to_string()))
        .unwrap_or_else(|| ("unknown".to_string(), "unknown".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Why;

    fn event(kind: Kind, node: Option<&str>, code: Option<&str>) -> Event {
        Event {
            time: "2026-12-01T00:00:00.000Z".into(),
            program: "resume".into(),
            pid: 1,
            event: kind,
            node: node.map(Into::into),
            instance: None,
            job_ids: vec![],
            code: code.map(Into::into),
            why: None,
            detail: None,
            instance_type: None,
            purchasing_option: None,
            user: None,
            account: None,
            throttled: None,
            retried: None,
        }
    }

    #[test]
    fn counts_by_group_code_and_why_and_one_hold_however_many_nodes() {
        let config = crate::fixtures::example();
        let group = config.node_groups().next().unwrap();
        let node = format!("{}0", group.node_prefix());
        let mut counters = Counters::default();
        for _ in 0..2 {
            counters.add(&config, &event(Kind::Launch, Some(&node), None));
        }
        counters.add(&config, &event(Kind::Launch, Some("other-0"), None));
        let failure = event(
            Kind::Failure,
            Some(&node),
            Some("InsufficientInstanceCapacity"),
        );
        counters.add(&config, &failure);
        let mut termination = event(Kind::Termination, None, None);
        termination.why = Some(Why::Orphan);
        counters.add(&config, &termination);
        for n in 0..3 {
            let mut hold = event(
                Kind::CapacityHold,
                Some(&format!("{}{n}", group.node_prefix())),
                Some("DOWN"),
            );
            hold.detail = Some("held until 12:00".into());
            counters.add(&config, &hold);
        }
        let mut retries = event(Kind::Retries, None, Some("CreateFleet"));
        retries.throttled = Some(2);
        retries.retried = Some(3);
        counters.add(&config, &retries);
        counters.add(&config, &retries);
        let ours = (group.partition.to_string(), group.name.to_string());
        assert_eq!(counters.launches[&ours], 2);
        assert_eq!(counters.launches[&("unknown".into(), "unknown".into())], 1);
        assert_eq!(
            counters.failures[&(ours.clone(), "InsufficientInstanceCapacity".into())],
            1
        );
        assert_eq!(counters.terminations["orphan"], 1);
        assert_eq!(counters.holds()[&(ours, "capacity")], 1);
        assert_eq!(counters.throttled["CreateFleet"], 4);
        assert_eq!(counters.retried["CreateFleet"], 6);
        let text = super::super::render(&counters.families());
        assert!(
            text.contains("slurm_ec2_terminations_total{why=\"orphan\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("slurm_ec2_api_retries_total{api=\"CreateFleet\"} 6\n"),
            "{text}"
        );
    }
}
