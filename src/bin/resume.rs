//! resume <hostlist> [ignored…]: Slurm's ResumeProgram. Launches EC2 instances
//! for the nodes and tells Slurm their addresses. Exit 0 when every node is
//! served, 1 when some are not (they are set DOWN with a coded reason), 2 on
//! bad usage or configuration.

mod process;

use clap::Parser;
use slurm_ec2::programs::resume;

#[derive(Parser)]
#[command(
    version,
    about = "Slurm ResumeProgram: launch EC2 instances for the nodes of a hostlist"
)]
struct Args {
    #[command(flatten)]
    common: process::CommonArgs,
    #[command(flatten)]
    nodes: process::HostlistArgs,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // The resume file is a descriptor of slurmctld's: read it before anything else.
    let resume_file = std::env::var_os("SLURM_RESUME_FILE")
        .map(|p| (p.clone(), resume::read_resume_file(p.as_ref())));
    process::head_node("resume", &args.common, true, |context| {
        resume::run(context, &args.nodes.nodes(), &resume_file)
    })
}
