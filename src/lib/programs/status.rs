//! `slurm-ec2 status`: Slurm and EC2 side by side, one row per node of ours
//! (and per instance of this cluster that is no node's), with what
//! change-state would do. It reads what change-state reads, one `squeue`
//! for the jobs, and changes nothing.

use std::collections::BTreeMap;

use serde::Serialize;

use super::change_state::{self, Action, Found, Inputs, Step};
use super::table::text_table;
use super::{Context, Outcome, Run};
use crate::config::Config;
use crate::ec2::{NODE_GROUP_TAG, PARTITION_TAG};
use crate::names;
use crate::slurm::{Flag, NodeInfo, Scontrol};

/// Which rows to show.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub partition: Option<String>,
    pub node_group: Option<String>,
    /// A Slurm base state (`idle`, `down`, …) or flag (`powered_down`, `drain`, …), any case.
    pub state: Option<String>,
    /// Only the nodes and instances that are not as they should be.
    pub problems: bool,
}

impl Filters {
    /// Refuses a partition or node group the configuration does not have,
    /// and a state word Slurm never prints: each would show nothing.
    pub fn check(&self, config: &Config) -> Result<(), String> {
        if let Some(partition) = &self.partition
            && !config
                .partitions
                .iter()
                .any(|p| p.name == partition.as_str())
        {
            let known: Vec<&str> = config.partitions.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "no partition {partition:?} in partitions.json (there are: {})",
                known.join(", ")
            ));
        }
        if let Some(group) = &self.node_group {
            let in_partition = |g: &&crate::config::NodeGroup| {
                self.partition
                    .as_ref()
                    .is_none_or(|p| g.partition == p.as_str())
            };
            if !config
                .node_groups()
                .filter(in_partition)
                .any(|g| g.name == group.as_str())
            {
                return Err(format!("no node group {group:?} in partitions.json"));
            }
        }
        if let Some(state) = &self.state
            && !crate::slurm::is_state_word(state)
        {
            return Err(format!(
                "{state:?} is no Slurm node state (idle, allocated, mixed, down, powered_down, drain, not_responding, …)"
            ));
        }
        Ok(())
    }

    fn any(&self) -> bool {
        self.partition.is_some()
            || self.node_group.is_some()
            || self.state.is_some()
            || self.problems
    }
}

/// One node, or one instance that is no node's.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Row {
    pub node: Option<String>,
    pub partition: Option<String>,
    pub node_group: Option<String>,
    /// sinfo's short form: `idle~`, `alloc#`, `down*`…
    pub slurm_symbol: String,
    pub slurm_state: String,
    pub reason: Option<String>,
    pub instance: Option<String>,
    pub ec2_state: Option<String>,
    pub instance_type: Option<String>,
    pub availability_zone: Option<String>,
    pub lifecycle: Option<String>,
    pub age_seconds: Option<i64>,
    pub address: Option<String>,
    pub jobs: Vec<u64>,
    /// What change-state would do, `none` when nothing.
    pub action: String,
    pub why: Option<String>,
    pub problem: bool,
}

/// The footer: instances by state and by type, and what change-state would reap.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    pub nodes: usize,
    pub instances_by_state: BTreeMap<String, usize>,
    pub live_instances_by_type: BTreeMap<String, usize>,
    pub orphans: usize,
    pub leaks: usize,
    pub problems: usize,
    /// From `OnDemandHourlyPrices`, for the live instances whose type it prices.
    pub estimated_hourly_cost: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub rows: Vec<Row>,
    pub summary: Summary,
    /// Each node group's warm pool.
    pub pools: Vec<crate::pool::report::PoolReport>,
}

/// The program: `slurm-ec2 status [filters] [--json]`.
pub fn run(context: &Context, filters: &Filters, json: bool) -> Outcome {
    let config = context.config;
    if let Err(problem) = filters.check(config) {
        eprintln!("slurm-ec2 status: {problem}");
        return Outcome::BadInput;
    }
    let budget = super::Budget::both(super::LOOKUP_BUDGET);
    let run = match Run::begin(config, context.started, budget) {
        Ok(run) => run,
        Err(error) => {
            tracing::error!("{error}");
            return Outcome::Failed;
        }
    };
    let scontrol = &run.scontrol;
    let (nodes, instances) = match change_state::observe(&run) {
        Ok(observed) => observed,
        Err(error) => {
            eprintln!("slurm-ec2 status: {error}");
            tracing::error!("{error}");
            return Outcome::Failed;
        }
    };
    let jobs = running_jobs(config, scontrol, &nodes);
    let now = super::epoch_seconds();
    let record_instances = scontrol.version().is_some_and(|v| v.has_instance_fields());
    let breakers = change_state::breakers(config, &nodes, &instances, now).now;
    let inputs = Inputs {
        config,
        nodes: &nodes,
        instances: &instances,
        now,
        record_instances,
        jobs: &BTreeMap::new(),
        health: &change_state::health(&run, &instances),
        boot_holds: &breakers.holds(now),
        pools: &change_state::pools::observe(&run, &instances, now),
    };
    let status = status(&inputs, &change_state::plan::plan(&inputs), &jobs, filters);
    if status.rows.is_empty() && filters.any() {
        eprintln!("slurm-ec2 status: no node or instance matches the filters");
    }
    let text = match json {
        true => match serde_json::to_string_pretty(&status) {
            Ok(text) => text + "\n",
            Err(error) => {
                eprintln!("slurm-ec2 status: {error}");
                return Outcome::Failed;
            }
        },
        false => render(&status),
    };
    if let Err(error) = super::write_stdout(&text) {
        eprintln!("slurm-ec2 status: {error}");
        return Outcome::Failed;
    }
    tracing::info!("Status: {} row(s); {}", status.rows.len(), run.tally());
    Outcome::Done
}

/// The jobs on each node, from one `squeue` within the run's budget (as
/// `scontrol`'s); none when it fails (said on stderr).
fn running_jobs(
    config: &Config,
    scontrol: &Scontrol,
    nodes: &[NodeInfo],
) -> BTreeMap<String, Vec<u64>> {
    if nodes.is_empty() {
        return BTreeMap::new();
    }
    let squeue = scontrol.sibling(&config.slurm_bin.join("squeue"));
    let args = [
        "--noheader",
        change_state::jobs::HOLDING_STATES,
        "--format=%A|%N",
    ]
    .map(str::to_string);
    match squeue.run(&args) {
        Ok(text) => parse_jobs(&text),
        Err(error) => {
            eprintln!("slurm-ec2 status: no job ids: {error}");
            BTreeMap::new()
        }
    }
}

/// `<job id>|<hostlist>` lines to the job ids on each node.
pub fn parse_jobs(text: &str) -> BTreeMap<String, Vec<u64>> {
    let mut jobs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for line in text.lines() {
        let Some((id, hosts)) = line.trim().split_once('|') else {
            continue;
        };
        let (Ok(id), Ok(hosts)) = (
            id.trim().parse::<u64>(),
            crate::hostlist::expand_at_most(hosts.trim(), change_state::jobs::MAX_NODES_OF_A_JOB),
        ) else {
            continue;
        };
        for host in hosts {
            let ids = jobs.entry(host).or_default();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    jobs
}

/// The rows and the footer, from what was read and the plan; plain data.
pub fn status(
    inputs: &Inputs,
    steps: &[Step],
    jobs: &BTreeMap<String, Vec<u64>>,
    filters: &Filters,
) -> Status {
    let config = inputs.config;
    let recorded = change_state::plan::recorded_instances(inputs.nodes);
    let listed: std::collections::BTreeSet<&str> =
        inputs.nodes.iter().map(|n| n.name.as_str()).collect();
    let mut by_node: BTreeMap<String, Vec<&Found>> = BTreeMap::new();
    let mut nobody: Vec<&Found> = Vec::new();
    for found in inputs.instances {
        match change_state::plan::node_of(config, &found.instance, &recorded) {
            Some(node) if listed.contains(node.as_str()) => {
                by_node.entry(node).or_default().push(found)
            }
            _ => nobody.push(found),
        }
    }
    let mut rows = Vec::new();
    for node in inputs.nodes {
        let Ok((_, group)) = names::parse(config, &node.name) else {
            if !by_node.contains_key(node.name.as_str()) {
                continue;
            }
            // A node that left the configuration but still has an instance.
            for found in &by_node[node.name.as_str()] {
                rows.push(row(Some(node), Some(found), steps, jobs, inputs.now));
            }
            continue;
        };
        let mut found: Vec<&Found> = by_node.get(node.name.as_str()).cloned().unwrap_or_default();
        found.retain(|f| f.instance.is_live() || node_steps(steps, &node.name).next().is_some());
        found.sort_by_key(|f| !f.instance.is_live());
        let mut node_row = row(Some(node), found.first().copied(), steps, jobs, inputs.now);
        node_row.partition = Some(group.partition.to_string());
        node_row.node_group = Some(group.name.to_string());
        rows.push(node_row);
        for extra in found.iter().skip(1).filter(|f| f.instance.is_live()) {
            rows.push(row(Some(node), Some(extra), steps, jobs, inputs.now));
        }
    }
    // A pooled instance is the pool's: a row only when change-state would trim it.
    let acted_on = |f: &Found| {
        steps
            .iter()
            .any(|s| s.instance.as_ref() == Some(&f.instance.id))
    };
    for found in nobody
        .into_iter()
        .filter(|f| f.instance.is_live() && (!f.instance.is_pooled() || acted_on(f)))
    {
        rows.push(row(None, Some(found), steps, jobs, inputs.now));
    }
    let summary = summarise(config, inputs.instances, &rows, steps);
    rows.retain(|r| shown(r, filters));
    let pools = crate::pool::report::pools(
        config,
        inputs.instances.iter().map(|f| &f.instance),
        inputs.now,
    );
    Status {
        rows,
        summary,
        pools,
    }
}

fn node_steps<'s>(steps: &'s [Step], node: &'s str) -> impl Iterator<Item = &'s Step> + 's {
    steps
        .iter()
        .filter(move |s| s.node.as_deref() == Some(node))
}

fn row(
    node: Option<&NodeInfo>,
    found: Option<&Found>,
    steps: &[Step],
    jobs: &BTreeMap<String, Vec<u64>>,
    now: i64,
) -> Row {
    let instance = found.map(|f| &f.instance);
    let relevant: Vec<&Step> = steps
        .iter()
        .filter(|s| match (instance, node) {
            (Some(i), _) if s.instance.as_deref() == Some(i.id.as_str()) => true,
            (_, Some(n)) => s.node.as_deref() == Some(n.name.as_str()) && s.instance.is_none(),
            _ => false,
        })
        .collect();
    let action = if relevant.is_empty() {
        "none".to_string()
    } else {
        relevant
            .iter()
            .map(|s| change_state::describe(&s.action))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let why = (!relevant.is_empty()).then(|| {
        relevant
            .iter()
            .map(|s| s.why.clone())
            .collect::<Vec<_>>()
            .join("; ")
    });
    let problem = is_problem(node, &relevant);
    Row {
        node: node.map(|n| n.name.clone()),
        partition: instance
            .and_then(|i| i.tag(PARTITION_TAG))
            .map(str::to_string),
        node_group: instance
            .and_then(|i| i.tag(NODE_GROUP_TAG))
            .map(str::to_string),
        slurm_symbol: node.map_or("-".to_string(), |n| n.state.symbol()),
        slurm_state: node.map_or("-".to_string(), |n| n.state_text.clone()),
        reason: node.and_then(|n| n.reason.clone()),
        instance: instance.map(|i| i.id.clone()),
        ec2_state: instance.map(|i| i.state.to_string()),
        instance_type: instance.and_then(|i| i.instance_type.clone()),
        availability_zone: instance.and_then(|i| i.availability_zone.clone()),
        lifecycle: instance.map(|i| i.lifecycle.clone().unwrap_or("on-demand".into())),
        age_seconds: instance
            .and_then(|i| i.launch_time)
            .map(|t| now.saturating_sub(t)),
        address: instance
            .and_then(|i| i.address.clone())
            .or(node.and_then(|n| n.address.clone())),
        jobs: node
            .and_then(|n| jobs.get(&n.name).cloned())
            .unwrap_or_default(),
        action,
        why,
        problem,
    }
}

/// Not as it should be: change-state would act on it (recording an
/// InstanceId aside), or Slurm holds it down, drained, failed or silent.
fn is_problem(node: Option<&NodeInfo>, steps: &[&Step]) -> bool {
    let acted_on = steps.iter().any(|s| {
        !matches!(
            s.action,
            Action::RecordInstance { .. } | Action::NameInstance { .. }
        )
    });
    // A powered-down node is not expected to answer (24.11 marks it so after a RESUME).
    let unwell = node.is_some_and(|n| {
        let silent =
            n.state.has(Flag::NotResponding) && !n.state.powering_up() && !n.state.powered_down();
        n.state.is_down() || n.state.has(Flag::Drain) || n.state.has(Flag::Fail) || silent
    });
    acted_on || unwell
}

fn shown(row: &Row, filters: &Filters) -> bool {
    let matches = |wanted: &Option<String>, value: &Option<String>| {
        wanted
            .as_ref()
            .is_none_or(|w| value.as_deref() == Some(w.as_str()))
    };
    let state = filters.state.as_ref().is_none_or(|wanted| {
        let wanted = wanted.to_ascii_uppercase();
        row.slurm_state.split('+').any(|word| word == wanted)
    });
    matches(&filters.partition, &row.partition)
        && matches(&filters.node_group, &row.node_group)
        && state
        && (!filters.problems || row.problem)
}

fn summarise(config: &Config, instances: &[Found], rows: &[Row], steps: &[Step]) -> Summary {
    let mut summary = Summary {
        nodes: rows.iter().filter(|r| r.node.is_some()).count(),
        problems: rows.iter().filter(|r| r.problem).count(),
        ..Default::default()
    };
    let mut cost = None;
    for found in instances {
        let instance = &found.instance;
        *summary
            .instances_by_state
            .entry(instance.state.to_string())
            .or_default() += 1;
        if instance.is_live() {
            let kind = instance.instance_type.clone().unwrap_or("unknown".into());
            let computing = matches!(
                instance.state,
                crate::ec2::InstanceState::Pending | crate::ec2::InstanceState::Running
            );
            if let Some(price) = config
                .settings
                .on_demand_prices
                .get(&kind)
                .filter(|_| computing)
            {
                cost = Some(cost.unwrap_or(0.0) + price);
            }
            *summary.live_instances_by_type.entry(kind).or_default() += 1;
        }
    }
    summary.estimated_hourly_cost = cost;
    (summary.orphans, summary.leaks) = change_state::gauges::reaped(steps);
    summary
}

/// The rows as a table, then the footer.
pub fn render(status: &Status) -> String {
    let mut rows = vec![
        [
            "NODE",
            "STATE",
            "REASON",
            "INSTANCE",
            "EC2",
            "TYPE",
            "ZONE",
            "LIFECYCLE",
            "AGE",
            "ADDRESS",
            "JOBS",
            "CHANGE-STATE WOULD",
        ]
        .map(str::to_string)
        .to_vec(),
    ];
    let dash = |v: &Option<String>| v.clone().unwrap_or("-".into());
    for row in &status.rows {
        rows.push(vec![
            dash(&row.node),
            format!("{} {}", row.slurm_symbol, row.slurm_state),
            dash(&row.reason),
            dash(&row.instance),
            dash(&row.ec2_state),
            dash(&row.instance_type),
            dash(&row.availability_zone),
            dash(&row.lifecycle),
            row.age_seconds.map_or("-".into(), age),
            dash(&row.address),
            if row.jobs.is_empty() {
                "-".into()
            } else {
                row.jobs
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            },
            match &row.why {
                Some(why) => format!("{} ({why})", row.action),
                None => row.action.clone(),
            },
        ]);
    }
    let mut out = text_table(&rows);
    let s = &status.summary;
    let counts = |map: &BTreeMap<String, usize>| {
        if map.is_empty() {
            "none".to_string()
        } else {
            map.iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    out.push_str(&format!(
        "\n{} node(s), {} with a problem; instances: {}; live by type: {}; orphans {}, leaks {}",
        s.nodes,
        s.problems,
        counts(&s.instances_by_state),
        counts(&s.live_instances_by_type),
        s.orphans,
        s.leaks
    ));
    if let Some(cost) = s.estimated_hourly_cost {
        out.push_str(&format!("; about ${cost:.2} an hour On-Demand"));
    }
    out.push('\n');
    for pool in &status.pools {
        out.push_str(&format!("{pool}\n"));
    }
    out
}

/// `3d4h`, `2h05m`, `4m10s`, `12s`.
fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_by_node_from_squeue() {
        let jobs = parse_jobs("17|aws-od-[0-1]\n18|aws-od-1\nnot a line\n19|bad[\n");
        assert_eq!(jobs["aws-od-0"], vec![17]);
        assert_eq!(jobs["aws-od-1"], vec![17, 18]);
        assert_eq!(jobs.len(), 2);
    }

    #[test]
    fn a_pool_reads_in_one_line() {
        let pool = crate::pool::report::PoolReport {
            pool: "aws-od-".into(),
            size: 20,
            max_age_hours: 24,
            stopped: 3,
            stopping: 1,
            oldest_seconds: Some(7500),
            youngest_seconds: Some(250),
            volume_cost_per_hour: Some(0.0088),
        };
        assert_eq!(
            format!("{pool}\n"),
            "Warm pool aws-od-: 3 stopped (1 stopping) of 20, first launched 2.1 h to 0.1 h ago (MaxAgeHours 24); about $0.009 an hour in volumes\n"
        );
        let empty = crate::pool::report::PoolReport {
            stopped: 0,
            stopping: 0,
            oldest_seconds: None,
            youngest_seconds: None,
            volume_cost_per_hour: None,
            ..pool
        };
        assert_eq!(
            format!("{empty}\n"),
            "Warm pool aws-od-: 0 stopped of 20 (MaxAgeHours 24)\n"
        );
    }

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(age(12), "12s");
        assert_eq!(age(250), "4m10s");
        assert_eq!(age(7500), "2h05m");
        assert_eq!(age(273_600), "3d4h");
        assert_eq!(age(-5), "0s");
    }
}
