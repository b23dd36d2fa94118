//! Each binary's own arguments, beyond [`super::CommonArgs`]: kept here so
//! that a `main` is its parsing and one call.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use slurm_ec2::slurm::SlurmVersion;

use super::CommonArgs;

#[derive(Parser)]
#[command(
    version,
    about = "Print the slurm.conf fragment for the configured partitions"
)]
pub struct GenerateConfArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Print the gres.conf fragment instead
    #[arg(long)]
    pub gres: bool,
    /// Write slurm.conf.aws and gres.conf.aws into this folder instead of printing
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// The Slurm version the fragment is for (default: what `scontrol --version` says)
    #[arg(long, value_name = "VERSION", value_parser = parse_version)]
    pub slurm_version: Option<SlurmVersion>,
    /// Add cloud_dns to SlurmctldParameters: slurmctld then resolves the node
    /// names (in DNS) instead of using the addresses resume sets
    #[arg(long)]
    pub cloud_dns: bool,
    /// Fill in the CPUs, RealMemory and Gres that a node group's
    /// SlurmSpecifications omit from EC2's data of its instance types (the smallest)
    #[arg(long)]
    pub from_ec2: bool,
}

pub fn parse_version(text: &str) -> Result<SlurmVersion, String> {
    SlurmVersion::parse(text).map_err(|error| error.to_string())
}

#[derive(Parser)]
#[command(
    version,
    about = "Print the Slurm node name of this EC2 instance, from its Name tag (IMDSv2)"
)]
pub struct GetNodenameArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Give up after this many seconds without a Name tag (1 to 86400)
    #[arg(long, default_value_t = 300, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
    /// On failure print the host name instead (the original plugin's behaviour)
    #[arg(long)]
    pub fallback_hostname: bool,
    /// Print SLURM_NODENAME=<name> and SLURM_EC2_SLURMD_ARGS (the instance's
    /// id and type for a slurmd of 23.11 or later), for a systemd environment file
    #[arg(long)]
    pub env: bool,
    /// The local slurmd, whose version --env asks
    #[arg(long, value_name = "PATH", default_value = "/usr/sbin/slurmd")]
    pub slurmd: PathBuf,
}

#[derive(Parser)]
#[command(version, about = "Look at slurm-ec2's nodes and instances")]
pub struct SlurmEc2Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Slurm and EC2 side by side, one line per node, and what change-state would do
    Status {
        #[command(flatten)]
        filters: StatusFilters,
        /// JSON for scripts: {"rows": [...], "summary": {...}}
        #[arg(long)]
        json: bool,
    },
    /// The metrics change-state writes to MetricsFile, in Prometheus' text format
    Metrics,
    /// Instance-hours and their estimated cost by job, user, account or node group, from EventLogFile
    Cost(CostArgs),
    /// Everything --check does, then the configuration against EC2: the same as --check --aws
    Validate,
    /// Terminate every instance of this cluster, whatever Slurm says: for the end of a cluster
    Teardown,
    /// On a compute node: act on EC2's notices to this instance (Spot interruption,
    /// scheduled stop, rebalance recommendation) before it goes
    Watch {
        /// Look once, then exit
        #[arg(long)]
        once: bool,
        /// Seconds between looks (1 to 60; AWS advises 5)
        #[arg(long, default_value_t = 5, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=60))]
        interval: u64,
    },
}

/// What `slurm-ec2 cost` reports.
#[derive(Debug, Clone, clap::Args)]
pub struct CostArgs {
    /// From this time: 2026-12-01 (00:00 UTC) or 2026-12-01T08:00:00Z [default: the log's start]
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// Up to this time [default: now]
    #[arg(long, value_name = "DATE")]
    until: Option<String>,
    /// One row per job, user, account, node group or instance
    #[arg(long, default_value = "job", value_parser = clap::builder::PossibleValuesParser::new(slurm_ec2::cost::By::NAMES))]
    by: String,
    /// JSON for scripts: {"rows": [...], "total": {...}, ...}
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// CSV, with a header line
    #[arg(long)]
    csv: bool,
}

impl From<CostArgs> for slurm_ec2::programs::cost::Options {
    fn from(given: CostArgs) -> Self {
        use slurm_ec2::programs::cost::Format;
        let format = match (given.json, given.csv) {
            (true, _) => Format::Json,
            (_, true) => Format::Csv,
            _ => Format::Table,
        };
        slurm_ec2::programs::cost::Options {
            since: given.since,
            until: given.until,
            by: given.by,
            format,
        }
    }
}

/// Which rows `slurm-ec2 status` shows.
#[derive(clap::Args)]
pub struct StatusFilters {
    /// Only this partition's nodes
    #[arg(long)]
    pub partition: Option<String>,
    /// Only this node group's nodes
    #[arg(long)]
    pub node_group: Option<String>,
    /// Only nodes whose Slurm state has this word (idle, down, powered_down, drain, …)
    #[arg(long)]
    pub state: Option<String>,
    /// Only the nodes and instances that are not as they should be
    #[arg(long)]
    pub problems: bool,
}

impl From<StatusFilters> for slurm_ec2::programs::status::Filters {
    fn from(given: StatusFilters) -> Self {
        slurm_ec2::programs::status::Filters {
            partition: given.partition,
            node_group: given.node_group,
            state: given.state,
            problems: given.problems,
        }
    }
}
