//! slurm-ec2: the administrator's view of slurm-ec2. `slurm-ec2 status`
//! shows each node of ours beside its instance and what change-state would
//! do; `slurm-ec2 validate` checks the configuration, then checks it against
//! EC2; `slurm-ec2 teardown` ends a cluster; `slurm-ec2 watch`, on a compute
//! node, acts on EC2's notices to its instance. Exit 0 when all is well, 1 when
//! Slurm or EC2 could not be read, 2 on bad usage or configuration.

mod process;

use clap::Parser;
use process::args::{Command, SlurmEc2Args as Args};
use slurm_ec2::programs::{Outcome, status, teardown, watch};

fn main() -> std::process::ExitCode {
    let Args { common, command } = Args::parse();
    match command {
        Command::Status { filters, json } => {
            process::head_node("slurm_ec2_status", &common, true, |context| {
                status::run(context, &filters.into(), json)
            })
        }
        Command::Teardown => process::head_node("slurm_ec2_teardown", &common, true, teardown::run),
        Command::Watch { once, interval } => {
            let options = watch::Options::new(once, interval);
            process::compute_node("slurm_ec2_watch", &common, |c| watch::run(c, &options))
        }
        Command::Validate => {
            let common = process::CommonArgs {
                check: true,
                aws: true,
                ..common
            };
            process::head_node("slurm_ec2_validate", &common, true, |_| Outcome::Done)
        }
    }
}
