//! The validated configuration. Values here have passed every check of
//! `validate.rs`; the programs use them without re-checking.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::Problem;
pub use super::name::{ClusterName, NodeGroupName, PartitionName};

/// Where a node group's EC2 calls go: a Region and, optionally, a named
/// profile of the shared AWS configuration. Groups of one account share a client.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Account {
    pub region: String,
    pub profile: Option<String>,
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.profile {
            Some(profile) => write!(f, "{} (profile {profile})", self.region),
            None => f.write_str(&self.region),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Critical,
    Error,
    Warning,
    Info,
    Debug,
}

impl LogLevel {
    pub const NAMES: [&'static str; 5] = ["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "CRITICAL" => Self::Critical,
            "ERROR" => Self::Error,
            "WARNING" => Self::Warning,
            "INFO" => Self::Info,
            "DEBUG" => Self::Debug,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purchasing {
    Spot,
    OnDemand,
}

impl Purchasing {
    /// As the event log and the metrics name it.
    pub fn label(self) -> &'static str {
        match self {
            Purchasing::Spot => "spot",
            Purchasing::OnDemand => "on_demand",
        }
    }
}

/// Tunable behaviour, each an optional key of `config.json` with a default.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// How long resume may work before it must report to Slurm
    /// (`ResumeBudgetSeconds`; default half of `SlurmConf.ResumeTimeout`).
    pub resume_budget: Duration,
    /// Nodes per CreateFleet call (`FleetBatchSize`, default 500).
    pub fleet_batch_size: usize,
    /// Concurrent CreateTags calls (`TagConcurrency`, default 16).
    pub tag_concurrency: usize,
    /// Attempts per EC2 call, each paced and counted, within the run's budget
    /// (`Ec2MaxAttempts`, default 8).
    pub ec2_max_attempts: u32,
    /// Limit on one EC2 call, retries included (`Ec2TimeoutSeconds`, default 60).
    pub ec2_timeout: Duration,
    /// Limit on one scontrol run (`ScontrolTimeoutSeconds`, default 30).
    pub scontrol_timeout: Duration,
    /// Node groups that hit insufficient capacity stay DOWN this long
    /// (`InsufficientCapacityHoldSeconds`, default 600, 0 disables).
    pub capacity_hold: Duration,
    /// How long an instance's status checks may fail before change-state
    /// replaces its node (`ImpairedGraceSeconds`, default 300).
    pub impaired_grace: Duration,
    /// Failures to register in a row after which a node group is held DOWN
    /// (`BootFailuresBeforeHold`, default 3, 0 disables the breaker).
    pub boot_failures_before_hold: u32,
    /// The first such hold (`BootFailureHoldSeconds`, default 300); each
    /// hold in a row lasts twice the last, up to `BootFailureHoldMaxSeconds`
    /// (default 3600).
    pub boot_failure_hold: Duration,
    pub boot_failure_hold_max: Duration,
    /// The signal `slurm-ec2 watch` sends the jobs of a node whose instance
    /// EC2 will interrupt (`InterruptionSignal`, default `TERM`).
    pub interruption_signal: String,
    /// How long after the notice `slurm-ec2 watch` requeues those jobs
    /// (`InterruptionRequeueSeconds`, default 60, at most 110: EC2 gives two
    /// minutes, and a job that ignores the requeue's SIGTERM ends KillWait later).
    pub interruption_requeue: Duration,
    /// Instances younger than this are left alone by change-state
    /// (`LaunchGraceSeconds`; default `SlurmConf.ResumeTimeout`).
    pub launch_grace: Duration,
    /// Tag each instance launched for a job with its job id, user and account (`JobTags`, default true).
    pub job_tags: bool,
    /// `OnDemandHourlyPrices`: instance type to US dollars an hour, for the
    /// estimate in `slurm-ec2 status` (optional).
    pub on_demand_prices: std::collections::BTreeMap<String, f64>,
    /// Spot prices from `Prices` (`{"c5.large": {"OnDemand": 0.085, "Spot":
    /// 0.034}}`, which sets On-Demand prices too), for `slurm-ec2 cost`.
    pub spot_prices: std::collections::BTreeMap<String, f64>,
    /// What `generate-conf --from-ec2` leaves to the OS of an instance's memory.
    pub memory_headroom: MemoryHeadroom,
    /// The sizes of EC2's request buckets that the programs pace themselves
    /// to (`Ec2RateLimits`, default EC2's documented ones).
    pub rate_limits: crate::rates::RateLimits,
    /// How long slurmctld lets resume and suspend run before it kills them
    /// (since 23.02): the larger of `ResumeTimeout` and `SuspendTimeout`.
    pub slurm_limit: Duration,
    /// Where the pacing state shared by every run lives: `StateDirectory`.
    pub pace_dir: Option<PathBuf>,
}

/// The OS's share of an instance's memory, kept out of `RealMemory`: the
/// larger of `RealMemoryHeadroomPercent` (default 5) percent and
/// `RealMemoryHeadroomMiB` (default 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryHeadroom {
    pub percent: u32,
    pub mib: u64,
}

impl MemoryHeadroom {
    /// `RealMemory` for an instance of `memory_mib`: at least 1.
    pub fn real_memory(&self, memory_mib: u64) -> u64 {
        let share = memory_mib.saturating_mul(u64::from(self.percent)) / 100;
        memory_mib.saturating_sub(share.max(self.mib)).max(1)
    }
}

impl Default for Settings {
    /// The documented defaults, for a `ResumeTimeout` of 300 s.
    fn default() -> Self {
        Settings {
            resume_budget: Duration::from_secs(150),
            slurm_limit: Duration::from_secs(300),
            fleet_batch_size: 500,
            tag_concurrency: 16,
            ec2_max_attempts: 8,
            ec2_timeout: Duration::from_secs(60),
            scontrol_timeout: Duration::from_secs(30),
            capacity_hold: Duration::from_secs(600),
            impaired_grace: Duration::from_secs(300),
            boot_failures_before_hold: 3,
            boot_failure_hold: Duration::from_secs(300),
            boot_failure_hold_max: Duration::from_secs(3600),
            interruption_signal: "TERM".to_string(),
            interruption_requeue: Duration::from_secs(60),
            launch_grace: Duration::from_secs(300),
            job_tags: true,
            on_demand_prices: Default::default(),
            spot_prices: Default::default(),
            memory_headroom: MemoryHeadroom {
                percent: 5,
                mib: 1024,
            },
            rate_limits: crate::rates::RateLimits::default(),
            pace_dir: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl Tag {
    /// Whether the value holds `{ip_address}`, `{node_name}` or `{hostname}`,
    /// which can only be filled in once the instance is known.
    pub fn has_placeholder(&self) -> bool {
        PLACEHOLDERS.iter().any(|p| self.value.contains(p))
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaunchTemplate {
    pub id: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
}

/// One `LaunchTemplateOverrides` entry; `SubnetId` and `WeightedCapacity` are
/// set by resume.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Override {
    pub instance_type: Option<String>,
    pub max_price: Option<String>,
    pub availability_zone: Option<String>,
    pub priority: Option<f64>,
    pub image_id: Option<String>,
}

/// `OnDemandOptions` or `SpotOptions` of CreateFleet, the fields slurm-ec2 passes on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetOptions {
    pub allocation_strategy: Option<String>,
    pub single_instance_type: Option<bool>,
    pub single_availability_zone: Option<bool>,
    pub min_target_capacity: Option<i32>,
    pub max_total_price: Option<String>,
    /// On-demand only: `CapacityReservationOptions.UsageStrategy`.
    pub capacity_reservation_usage: Option<String>,
    /// Spot only: `InstancePoolsToUseCount`.
    pub instance_pools_to_use_count: Option<i32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeGroup {
    pub partition: PartitionName,
    pub name: NodeGroupName,
    pub max_nodes: u32,
    pub region: String,
    pub profile: Option<String>,
    /// `SlurmSpecifications`, in file order, values as written to slurm.conf.
    pub slurm_specifications: Vec<(String, String)>,
    pub purchasing: Purchasing,
    pub on_demand_options: Option<FleetOptions>,
    pub spot_options: Option<FleetOptions>,
    pub launch_template: LaunchTemplate,
    pub overrides: Vec<Override>,
    pub subnet_ids: Vec<String>,
    pub tags: Vec<Tag>,
    pub job_level_scaling: JobLevelScaling,
    /// What `slurm-ec2 watch` does on a rebalance recommendation (`RebalanceRecommendation`).
    pub on_rebalance: OnRebalance,
    /// Stopped instances kept for the group's next nodes (`WarmPool`); none by default.
    pub warm_pool: Option<WarmPool>,
}

/// `WarmPool`: how many of a group's instances suspend stops instead of
/// terminating, for resume to start again; change-state trims the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmPool {
    pub size: u32,
    /// A pooled instance first launched longer ago than this is terminated.
    pub max_age: std::time::Duration,
    /// What one stopped instance costs an hour (its volumes), when given.
    pub volume_cost_per_hour: Option<f64>,
}

/// `RebalanceRecommendation`: `drain` (the default: running work finishes,
/// nothing new lands) or `ignore`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnRebalance {
    #[default]
    Drain,
    Ignore,
}

impl OnRebalance {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "drain" => Some(Self::Drain),
            "ignore" => Some(Self::Ignore),
            _ => None,
        }
    }
}

/// How the nodes of one job in a node group are launched (`JobLevelScaling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobLevelScaling {
    /// Many jobs' nodes in one fleet; each node served as capacity allows.
    #[default]
    BestEffort,
    /// Each job's nodes in one fleet with `MinTargetCapacity` equal to their
    /// count: EC2 launches all of them or none.
    AllOrNothing,
}

impl JobLevelScaling {
    pub const NAMES: [&'static str; 2] = ["best-effort", "all-or-nothing"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "best-effort" => Some(Self::BestEffort),
            "all-or-nothing" => Some(Self::AllOrNothing),
            _ => None,
        }
    }
}

/// The placeholders a custom tag value may hold, filled in per instance.
pub const PLACEHOLDERS: [&str; 6] = [
    "{ip_address}",
    "{node_name}",
    "{hostname}",
    "{job_id}",
    "{user}",
    "{account}",
];

impl NodeGroup {
    /// `<partition>-<group>-`, the prefix of every node name of the group.
    pub fn node_prefix(&self) -> String {
        format!("{}-{}-", self.partition, self.name)
    }

    pub fn node_name(&self, id: u32) -> String {
        format!("{}{id}", self.node_prefix())
    }

    /// The group's nodes as a hostlist: `P-G-[0-9]`, or `P-G-0` for one node.
    pub fn node_range(&self) -> String {
        if self.max_nodes == 1 {
            self.node_name(0)
        } else {
            format!("{}[0-{}]", self.node_prefix(), self.max_nodes - 1)
        }
    }

    /// The `(Region, ProfileName)` pair whose EC2 client serves this group.
    pub fn account(&self) -> Account {
        Account {
            region: self.region.clone(),
            profile: self.profile.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    pub name: PartitionName,
    pub node_groups: Vec<NodeGroup>,
    /// `PartitionOptions`, in file order, values as written to slurm.conf.
    pub options: Vec<(String, String)>,
}

/// Proof that a [`Config`] was made by the configuration's validation: its
/// field is private to `config`, so no struct literal elsewhere compiles.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated(());

impl Validated {
    pub(in crate::config) fn by_validation() -> Validated {
        Validated(())
    }
}

/// The validated configuration: only [`crate::config::load`] (and
/// `load_texts`) make one.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub dir: PathBuf,
    pub log_level: LogLevel,
    pub log_file: PathBuf,
    /// `EventLogFile`: JSON lines of launches, failures, terminations, repairs.
    pub event_log_file: Option<PathBuf>,
    /// `MetricsFile`: where change-state writes the metrics at the end of
    /// each run, for node_exporter's textfile collector (off when unset).
    pub metrics_file: Option<PathBuf>,
    /// `StateDirectory` (default: the log's folder): the locks and the pacing
    /// state, in a folder that only SlurmUser and root may write.
    pub state_dir: PathBuf,
    pub slurm_bin: PathBuf,
    /// `SlurmConf`, in file order, values as written to slurm.conf.
    pub slurm_conf: Vec<(String, String)>,
    pub cluster_name: Option<ClusterName>,
    /// `Environment`, applied to the process at start.
    pub environment: Vec<(String, String)>,
    pub settings: Settings,
    pub partitions: Vec<Partition>,
    /// Unknown keys and other things worth a look that do not stop the programs.
    pub warnings: Vec<Problem>,
    pub(in crate::config) validated: Validated,
}

impl Config {
    pub fn node_groups(&self) -> impl Iterator<Item = &NodeGroup> {
        self.partitions.iter().flat_map(|p| p.node_groups.iter())
    }

    pub fn node_group(&self, partition: &str, group: &str) -> Option<&NodeGroup> {
        self.node_groups()
            .find(|g| g.partition == partition && g.name == group)
    }

    /// Every account the node groups use.
    pub fn accounts(&self) -> BTreeSet<Account> {
        self.node_groups().map(NodeGroup::account).collect()
    }

    pub fn node_count(&self) -> u64 {
        self.node_groups().map(|g| u64::from(g.max_nodes)).sum()
    }

    pub fn slurm_conf_value(&self, key: &str) -> Option<&str> {
        self.slurm_conf
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    pub fn scontrol(&self) -> PathBuf {
        self.slurm_bin.join("scontrol")
    }

    /// The programs' user (SlurmUser): the owner of `StateDirectory`, when
    /// that folder is one only its owner and root can write.
    pub fn program_user(&self) -> Option<u32> {
        crate::files::state_dir_owner(&self.state_dir).ok()
    }

    /// The one-line summary `--check` prints.
    pub fn summary(&self) -> String {
        format!(
            "configuration in {} is valid: {} partition(s), {} node group(s), {} node(s)",
            self.dir.display(),
            self.partitions.len(),
            self.node_groups().count(),
            self.node_count()
        )
    }
}
