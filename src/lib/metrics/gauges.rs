//! What one observation of Slurm and EC2 showed, counted: the gauges. The
//! counting is change-state's (it owns the observation); this is the data
//! and its families.

use std::collections::BTreeMap;

use super::{Family, Sample, Type};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gauges {
    /// Nodes by partition, node group and state label.
    pub nodes: BTreeMap<[String; 3], u64>,
    /// Instances that are not terminated, by partition, node group, EC2
    /// state and purchasing option.
    pub instances: BTreeMap<[String; 4], u64>,
    pub orphans: usize,
    pub leaks: usize,
    /// The node groups held now (partition, node group, kind), with the end.
    pub holds: Vec<([String; 3], i64)>,
    /// Each warm pool (partition, node group): its size, and its stopped instances.
    pub pools: Vec<([String; 2], u32, usize)>,
}

impl Gauges {
    pub fn families(&self) -> Vec<Family> {
        let nodes = self.nodes.iter().map(|([p, g, s], n)| {
            Sample::new(
                &[("partition", p), ("node_group", g), ("state", s)],
                *n as f64,
            )
        });
        let instances = self.instances.iter().map(|([p, g, s, o], n)| {
            let labels = [
                ("partition", p.as_str()),
                ("node_group", g),
                ("state", s),
                ("purchasing_option", o),
            ];
            Sample::new(&labels, *n as f64)
        });
        let holds = self.holds.iter().map(|([p, g, kind], until)| {
            Sample::new(
                &[("partition", p), ("node_group", g), ("kind", kind)],
                *until as f64,
            )
        });
        vec![
            Family::new("slurm_ec2_nodes", Type::Gauge, "Nodes of the configuration that Slurm lists, by node group and state.")
                .with(nodes),
            Family::new("slurm_ec2_instances", Type::Gauge, "This cluster's instances that are not terminated, by node group, EC2 state and purchasing option.")
                .with(instances),
            Family::new("slurm_ec2_orphan_instances", Type::Gauge, "Instances of this cluster that serve no node, which change-state terminates.")
                .with([Sample::new(&[], self.orphans as f64)]),
            Family::new("slurm_ec2_leaked_instances", Type::Gauge, "Instances whose node is powered down or gone, which change-state terminates.")
                .with([Sample::new(&[], self.leaks as f64)]),
            Family::new("slurm_ec2_hold_end_timestamp_seconds", Type::Gauge, "When the hold of a node group held DOWN ends, by kind (capacity, boot_failure).")
                .with(holds),
            Family::new("slurm_ec2_warm_pool_size", Type::Gauge, "The Size of each node group's warm pool.")
                .with(self.pools.iter().map(|([p, g], size, _)| {
                    Sample::new(&[("partition", p), ("node_group", g)], f64::from(*size))
                })),
            Family::new("slurm_ec2_warm_pool_stopped_instances", Type::Gauge, "Instances stopped in each node group's warm pool, ready to start.")
                .with(self.pools.iter().map(|([p, g], _, stopped)| {
                    Sample::new(&[("partition", p), ("node_group", g)], *stopped as f64)
                })),
        ]
    }
}
