//! slurm-ec2: the administrator's view of slurm-ec2. `slurm-ec2 status`
//! shows each node of ours beside its instance and what change-state would
//! do; it changes nothing. Exit 0 when it could read Slurm and EC2, 1 when
//! not, 2 on bad usage or configuration.

mod process;

use clap::{Parser, Subcommand};
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
}

fn main() -> std::process::ExitCode {
    let Args { common, command } = Args::parse();
    let Command::Status {
        partition,
        node_group,
        state,
        problems,
        json,
    } = command;
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
