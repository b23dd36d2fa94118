//! suspend <hostlist>: Slurm's SuspendProgram. Terminates this cluster's
//! instances of the nodes. Exit 0 when nothing failed, 1 when a look-up or a
//! termination failed (ids in the log), 2 on bad usage or configuration.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use slurm_ec2::ec2::{CallCounter, Clients};
use slurm_ec2::slurm::Scontrol;
use slurm_ec2::startup::{self, CommonArgs, EXIT_CONFIG, EXIT_FAILED};
use slurm_ec2::{cluster, hostlist, suspend};

#[derive(Parser)]
#[command(
    version,
    about = "Slurm SuspendProgram: terminate the EC2 instances of the nodes of a hostlist"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Nodes to suspend, as a Slurm hostlist expression (aws-node-[0-3])
    #[arg(required_unless_present = "check")]
    hostlist: Option<String>,
    /// Further arguments; ignored
    #[arg(hide = true, trailing_var_arg = true, allow_hyphen_values = true)]
    ignored: Vec<String>,
}

fn main() -> ExitCode {
    let started = Instant::now();
    let args = Args::parse();
    startup::run("suspend", &args.common, |config| {
        let expression = args.hostlist.clone().unwrap_or_default();
        tracing::info!("Hostlist: {expression}");
        let names = match hostlist::expand(&expression) {
            Ok(names) => names,
            Err(error) => {
                tracing::error!("{error}");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        let scontrol = Scontrol::new(&config.scontrol(), config.settings.scontrol_timeout);
        let names_ours = slurm_ec2::names::sort_names(config, &names);
        if names_ours.by_group.is_empty() {
            for foreign in &names_ours.foreign {
                tracing::warn!("Skipping {foreign}");
            }
            return ExitCode::SUCCESS;
        }
        let cluster = match cluster::cluster_name(config, &scontrol) {
            Ok(name) => name,
            Err(error) => {
                tracing::error!("{error}");
                return ExitCode::from(EXIT_FAILED);
            }
        };
        let runtime = match startup::runtime() {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!("Cannot start the async runtime: {error}");
                return ExitCode::from(EXIT_FAILED);
            }
        };
        let calls = CallCounter::default();
        let report = runtime.block_on(async {
            let clients = Clients::for_config(config).await;
            suspend::suspend(config, &clients, &cluster, &names, &calls).await
        });
        tracing::info!("{}", suspend::summary(&report, &calls, &scontrol, started));
        if report.succeeded() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_FAILED)
        }
    })
}
