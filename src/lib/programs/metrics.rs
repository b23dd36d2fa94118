//! The metrics: gauges of what change-state observed (nodes, instances,
//! holds, what it would reap), counters read from the event log, and each
//! program's last run. change-state writes them to `MetricsFile` at the end
//! of each run; `slurm-ec2 metrics` prints them, reading what one status reads.

use std::collections::BTreeMap;

use super::change_state::{self, Observation, Step};
use super::{Context, Outcome, Run};
use crate::config::Config;
use crate::metrics::{Counters, Family, Sample, Type};
use crate::slurm::{BaseState, Flag, NodeState};

/// What the gauges are made of: what a run observed and planned, when it could.
pub struct Seen<'a> {
    pub observation: &'a Observation,
    pub steps: &'a [Step],
}

/// The program: `slurm-ec2 metrics`.
pub fn run(context: &Context) -> Outcome {
    let config = context.config;
    let budget = super::Budget::both(super::LOOKUP_BUDGET);
    let run = match Run::begin(config, context.started, budget) {
        Ok(run) => run,
        Err(error) => {
            tracing::error!("{error}");
            eprintln!("slurm-ec2 metrics: {error}");
            return Outcome::Failed;
        }
    };
    let planned = match change_state::make_plan(&run, super::epoch_seconds()) {
        Ok(planned) => planned,
        Err(error) => {
            eprintln!("slurm-ec2 metrics: {error}");
            tracing::error!("{error}");
            return Outcome::Failed;
        }
    };
    let seen = Seen {
        observation: &planned.observation,
        steps: &planned.steps,
    };
    let text = crate::metrics::render(&families(config, Some(&seen), super::epoch_seconds()));
    if let Err(error) = super::write_stdout(&text) {
        eprintln!("slurm-ec2 metrics: {error}");
        return Outcome::Failed;
    }
    tracing::info!("Metrics printed; {}", run.tally());
    Outcome::Done
}

/// Writes the metrics to `MetricsFile`, when set: a failure is logged, never fatal.
pub fn write_file(config: &Config, seen: Option<&Seen>) {
    let Some(path) = &config.metrics_file else {
        return;
    };
    let text = crate::metrics::render(&families(config, seen, super::epoch_seconds()));
    if let Err(error) = crate::metrics::write_metrics_file(path, &text) {
        tracing::error!("{error}");
    }
}

/// Every family: the gauges of `seen` (none when Slurm or EC2 could not be
/// read), the counters of the event log, and the programs' last runs.
pub fn families(config: &Config, seen: Option<&Seen>, now: i64) -> Vec<Family> {
    let mut families = vec![
        Family::new(
            "slurm_ec2_observed",
            Type::Gauge,
            "1 when Slurm and EC2 were read for these metrics, 0 when either failed.",
        )
        .with([Sample::new(&[], f64::from(u8::from(seen.is_some())))]),
    ];
    if let Some(seen) = seen {
        families.extend(observed(config, seen));
    }
    families.extend(counters(config));
    families.extend(last_runs(config, now));
    families
}

/// The nodes, instances, holds and reaps of one observation.
fn observed(config: &Config, seen: &Seen) -> Vec<Family> {
    let observation = seen.observation;
    let mut nodes: BTreeMap<[String; 3], u64> = BTreeMap::new();
    for node in &observation.nodes {
        if let Ok((_, group)) = crate::names::parse(config, &node.name) {
            let key = [
                group.partition.to_string(),
                group.name.to_string(),
                state_label(&node.state).to_string(),
            ];
            *nodes.entry(key).or_default() += 1;
        }
    }
    let mut instances: BTreeMap<[String; 4], u64> = BTreeMap::new();
    for found in observation
        .instances
        .iter()
        .filter(|f| f.instance.state != crate::ec2::InstanceState::Terminated)
    {
        let instance = &found.instance;
        let tag = |key| instance.tag(key).unwrap_or("unknown").to_string();
        let option = match instance.lifecycle.as_deref() {
            Some("spot") => "spot",
            Some(_) => "other",
            None => "on_demand",
        };
        let key = [
            tag(crate::ec2::PARTITION_TAG),
            tag(crate::ec2::NODE_GROUP_TAG),
            instance.state.to_string(),
            option.to_string(),
        ];
        *instances.entry(key).or_default() += 1;
    }
    let (orphans, leaks) = super::status::reaped(seen.steps);
    let holds = change_state::plan::group_holds(&observation.inputs(config));
    let hold_samples = config.node_groups().filter_map(|group| {
        let hold = holds.get(&group.node_prefix())?;
        let kind = match hold.code.as_str() {
            crate::slurm::reason::NEVER_REGISTERED => "boot_failure",
            _ => "capacity",
        };
        let labels = [
            ("partition", group.partition.as_str()),
            ("node_group", group.name.as_str()),
            ("kind", kind),
        ];
        Some(Sample::new(&labels, hold.until as f64))
    });
    vec![
        Family::new("slurm_ec2_nodes", Type::Gauge, "Nodes of the configuration that Slurm lists, by node group and state.")
            .with(nodes.into_iter().map(|([p, g, s], n)| {
                Sample::new(&[("partition", &p), ("node_group", &g), ("state", &s)], n as f64)
            })),
        Family::new("slurm_ec2_instances", Type::Gauge, "This cluster's instances that are not terminated, by node group, EC2 state and purchasing option.")
            .with(instances.into_iter().map(|([p, g, s, o], n)| {
                let labels = [("partition", p.as_str()), ("node_group", &g), ("state", &s), ("purchasing_option", &o)];
                Sample::new(&labels, n as f64)
            })),
        Family::new("slurm_ec2_orphan_instances", Type::Gauge, "Instances of this cluster that serve no node, which change-state terminates.")
            .with([Sample::new(&[], orphans as f64)]),
        Family::new("slurm_ec2_leaked_instances", Type::Gauge, "Instances whose node is powered down or gone, which change-state terminates.")
            .with([Sample::new(&[], leaks as f64)]),
        Family::new("slurm_ec2_hold_end_timestamp_seconds", Type::Gauge, "When the hold of a node group held DOWN ends, by kind (capacity, boot_failure).")
            .with(hold_samples),
    ]
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

/// The counters of the event log, when there is one; none when it cannot be read.
fn counters(config: &Config) -> Vec<Family> {
    let Some(path) = &config.event_log_file else {
        return Vec::new();
    };
    let mut counters = Counters::default();
    match crate::events::read_events(path, |event| counters.add(config, &event)) {
        Ok(summary) => {
            counters.skipped_lines = summary.skipped;
            if summary.truncated {
                tracing::warn!(
                    "EventLogFile {} is longer than the metrics read: rotate it",
                    path.display()
                );
            }
            counters.families()
        }
        Err(error) => {
            tracing::warn!("{error}: no counters in the metrics");
            Vec::new()
        }
    }
}

/// Each program's last run: when, how long, whether it succeeded, and its last success.
fn last_runs(config: &Config, now: i64) -> Vec<Family> {
    let runs: Vec<(&str, crate::last_run::LastRun)> = crate::last_run::PROGRAMS
        .iter()
        .filter_map(|program| Some((*program, crate::last_run::read(config, program, now)?)))
        .collect();
    let each = |value: &dyn Fn(&crate::last_run::LastRun) -> Option<f64>| -> Vec<Sample> {
        runs.iter()
            .filter_map(|(program, run)| Some(Sample::new(&[("program", program)], value(run)?)))
            .collect()
    };
    vec![
        Family::new(
            "slurm_ec2_last_run_timestamp_seconds",
            Type::Gauge,
            "When each program's last run ended.",
        )
        .with(each(&|r| Some(r.ended as f64))),
        Family::new(
            "slurm_ec2_last_run_duration_seconds",
            Type::Gauge,
            "How long each program's last run took.",
        )
        .with(each(&|r| Some(r.duration_seconds))),
        Family::new(
            "slurm_ec2_last_run_success",
            Type::Gauge,
            "1 when each program's last run succeeded, else 0.",
        )
        .with(each(&|r| Some(f64::from(u8::from(r.succeeded))))),
        Family::new(
            "slurm_ec2_last_success_timestamp_seconds",
            Type::Gauge,
            "When a run of each program last succeeded.",
        )
        .with(each(&|r| r.last_success.map(|t| t as f64))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every family slurm-ec2 writes, whatever it observed.
    fn written_names() -> BTreeSet<&'static str> {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::fixtures::example();
        let events = dir.path().join("events.jsonl");
        std::fs::write(&events, "").unwrap();
        config.event_log_file = Some(events);
        config.state_dir = dir.path().to_path_buf();
        let observation = Observation {
            nodes: Vec::new(),
            instances: Vec::new(),
            jobs: BTreeMap::new(),
            health: BTreeMap::new(),
            boot_holds: BTreeMap::new(),
            record_instances: false,
            now: 0,
        };
        let seen = Seen {
            observation: &observation,
            steps: &[],
        };
        families(&config, Some(&seen), 0)
            .iter()
            .map(|f| f.name)
            .collect()
    }

    /// The `slurm_ec2_…` names a text uses.
    fn used_names(text: &str) -> BTreeSet<String> {
        text.match_indices("slurm_ec2_")
            .map(|(at, _)| {
                text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_dashboard_the_alerts_and_the_readme_name_only_metrics_that_are_written() {
        let written = written_names();
        let files = [
            (
                "dashboard",
                include_str!("../../../deploy/monitoring/slurm-ec2-dashboard.json"),
            ),
            (
                "alerts",
                include_str!("../../../deploy/monitoring/slurm-ec2-alerts.yml"),
            ),
            (
                "alert tests",
                include_str!("../../../deploy/monitoring/slurm-ec2-alerts.test.yml"),
            ),
        ];
        for (what, text) in files {
            let used = used_names(text);
            assert!(!used.is_empty(), "{what} uses no metric");
            for name in used {
                assert!(
                    written.contains(name.as_str()),
                    "the {what} uses {name}, which is not written"
                );
            }
        }
        let readme = used_names(include_str!("../../../README.md"));
        for name in &written {
            assert!(readme.contains(*name), "the README does not list {name}");
        }
    }

    #[test]
    fn without_an_observation_the_counters_and_last_runs_are_still_written() {
        let config = crate::fixtures::example();
        let text = crate::metrics::render(&families(&config, None, 0));
        assert!(text.contains("slurm_ec2_observed 0\n"), "{text}");
        assert!(!text.contains("slurm_ec2_nodes"), "{text}");
        assert!(
            text.contains("# TYPE slurm_ec2_last_run_success gauge"),
            "{text}"
        );
    }
}
