//! get-nodename (systemd ExecStartPre on a compute node): prints this instance's node name from its
//! Name tag (IMDSv2), exit 0; else says why on stderr, exit 1 (2: bad usage).

mod process;

use clap::Parser;
use process::args::GetNodenameArgs as Args;
use slurm_ec2::programs::get_nodename::{self, Options};

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let options = Options {
        timeout: std::time::Duration::from_secs(args.timeout),
        fallback_hostname: args.fallback_hostname,
        env: args.env,
        slurmd: args.slurmd,
    };
    process::compute_node("get_nodename", &args.common, |config| {
        get_nodename::run(config, &options)
    })
}
