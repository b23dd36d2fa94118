//! slurm-ec2: the administrator's view of slurm-ec2. `slurm-ec2 status`
//! shows each node of ours beside its instance and what change-state would
//! do; `metrics` and `cost` what an administrator watches and pays;
//! `validate` checks the configuration, then against EC2; `teardown` ends a
//! cluster; `watch`, on a compute node, acts on EC2's notices to its
//! instance. Exit 0 when all is well, 1 when Slurm or EC2 could not be read,
//! 2 on bad usage or configuration.

mod process;

use clap::Parser;
use process::args::{Command, SlurmEc2Args as Args};
use slurm_ec2::programs::{Outcome, cost, metrics, status, teardown, watch};

fn main() -> std::process::ExitCode {
    let Args { common, command } = Args::parse();
    match command {
        Command::Status { filters, json } => {
            process::head_node("slurm_ec2_status", &common, true, |c| {
                status::run(c, &filters.into(), json)
            })
        }
        Command::Metrics => process::head_node("slurm_ec2_metrics", &common, true, metrics::run),
        Command::Cost(args) => process::head_node("slurm_ec2_cost", &common, true, |c| {
            cost::run(c, &args.into())
        }),
        Command::Teardown => process::head_node("slurm_ec2_teardown", &common, true, teardown::run),
        Command::Watch { once, interval } => {
            let options = watch::Options::new(once, interval);
            process::compute_node("slurm_ec2_watch", &common, |c| watch::run(c, &options))
        }
        Command::Validate => {
            process::head_node("slurm_ec2_validate", &common.validating(), true, |_| {
                Outcome::Done
            })
        }
    }
}
