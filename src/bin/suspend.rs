//! suspend <hostlist>: Slurm's SuspendProgram. Terminates this cluster's
//! instances of the nodes. Exit 0 when nothing failed, 1 when a look-up or a
//! termination failed (ids in the log), 2 on bad usage or configuration.

mod process;

use clap::Parser;
use slurm_ec2::programs::suspend;

#[derive(Parser)]
#[command(
    version,
    about = "Slurm SuspendProgram: terminate the EC2 instances of the nodes of a hostlist"
)]
struct Args {
    #[command(flatten)]
    common: process::CommonArgs,
    #[command(flatten)]
    nodes: process::HostlistArgs,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    process::head_node("suspend", &args.common, true, |context| {
        suspend::run(context, &args.nodes.nodes())
    })
}
