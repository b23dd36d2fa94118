//! change-state: run every minute by cron. Repairs nodes stuck in bad states
//! and reconciles Slurm with EC2 (the table is in the README). Exit 0 when
//! every action succeeded (or another run holds the lock, or this host is a
//! backup controller), 1 when an action failed, 2 on bad configuration.

mod process;

use clap::Parser;
use slurm_ec2::programs::change_state;

#[derive(Parser)]
#[command(
    version,
    about = "Reconcile Slurm's cloud nodes with their EC2 instances (run every minute by cron)"
)]
struct Args {
    #[command(flatten)]
    common: process::CommonArgs,
    /// Print the plan (node, Slurm state, instance, EC2 state, action, reason) without acting
    #[arg(long)]
    dry_run: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    process::head_node("change_state", &args.common, true, |context| {
        change_state::run(context, args.dry_run)
    })
}
