//! get-nodename (systemd ExecStartPre on a compute node): prints this instance's node name from its
//! Name tag (IMDSv2), exit 0; else says why on stderr, exit 1 (2: bad usage).

mod process;

use clap::Parser;
use slurm_ec2::programs::get_nodename::{self, Options};

#[derive(Parser)]
#[command(
    version,
    about = "Print the Slurm node name of this EC2 instance, from its Name tag (IMDSv2)"
)]
struct Args {
    #[command(flatten)]
    common: process::CommonArgs,
    /// Give up after this many seconds without a Name tag (1 to 86400)
    #[arg(long, default_value_t = 300, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout: u64,
    /// On failure print the host name instead (the original plugin's behaviour)
    #[arg(long)]
    fallback_hostname: bool,
    /// Print SLURM_NODENAME=<name> and SLURM_EC2_SLURMD_ARGS (the instance's
    /// id and type for a slurmd of 23.11 or later), for a systemd environment file
    #[arg(long)]
    env: bool,
    /// The local slurmd, whose version --env asks
    #[arg(long, value_name = "PATH", default_value = "/usr/sbin/slurmd")]
    slurmd: std::path::PathBuf,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let timeout = std::time::Duration::from_secs(args.timeout);
    let options = Options {
        timeout,
        fallback_hostname: args.fallback_hostname,
        env: args.env,
        slurmd: args.slurmd,
    };
    process::compute_node("get_nodename", &args.common, |config| {
        get_nodename::run(config, &options)
    })
}
