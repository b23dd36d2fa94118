//! slurm-ec2: the administrator's view of slurm-ec2. `slurm-ec2 status`
//! shows each node of ours beside its instance and what change-state would
//! do; `slurm-ec2 validate` checks the configuration, then checks it against
//! EC2. Neither changes anything. Exit 0 when all is well, 1 when Slurm or
//! EC2 could not be read, 2 on bad usage or configuration.

mod process;

use clap::{Parser, Subcommand};
use slurm_ec2::programs::Outcome;
use slurm_ec2::programs::status::{self, Filters};

#[derive(Parser)]
#[command(version, about = "Look at slurm-ec2's nodes and instances")]
struct Args {
    #[command(flatten)]
    common: process::CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Slurm and EC2 side by side, one line per node, and what change-state would do
    Status {
        /// Only this partition's nodes
        #[arg(long)]
        partition: Option<String>,
        /// Only this node group's nodes
        #[arg(long)]
        node_group: Option<String>,
        /// Only nodes whose Slurm state has this word (idle, down, powered_down, drain, …)
        #[arg(long)]
        state: Option<String>,
        /// Only the nodes and instances that are not as they should be
        #[arg(long)]
        problems: bool,
        /// JSON for scripts: {"rows": [...], "summary": {...}}
        #[arg(long)]
        json: bool,
    },
    /// Everything --check does, then the configuration against EC2: the same as --check --aws
    Validate,
    /// Terminate every instance of this cluster, whatever Slurm says: for the end of a cluster
    Teardown,
}

fn main() -> std::process::ExitCode {
    let Args { common, command } = Args::parse();
    let (partition, node_group, state, problems, json) = match command {
        Command::Status {
            partition,
            node_group,
            state,
            problems,
            json,
        } => (partition, node_group, state, problems, json),
        Command::Teardown => {
            return process::head_node("slurm_ec2_teardown", &common, true, |context| {
                slurm_ec2::programs::teardown::run(context)
            });
        }
        Command::Validate => {
            let common = process::CommonArgs {
                check: true,
                aws: true,
                ..common
            };
            return process::head_node("slurm_ec2_validate", &common, true, |_| Outcome::Done);
        }
    };
    let filters = Filters {
        partition,
        node_group,
        state,
        problems,
    };
    process::head_node("slurm_ec2_status", &common, true, |context| {
        status::run(context, &filters, json)
    })
}
