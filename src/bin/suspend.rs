//! suspend <hostlist>: Slurm's SuspendProgram. Terminates this cluster's
//! instances of the nodes. Exit 0 when nothing failed, 1 when a look-up or a
//! termination failed (ids in the log), 2 on bad usage or configuration.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use slurm_ec2::ec2::{CallCounter, Clients};
use slurm_ec2::startup::{self, CommonArgs, EXIT_FAILED, HostlistArgs, Session};
use slurm_ec2::suspend;

#[derive(Parser)]
#[command(
    version,
    about = "Slurm SuspendProgram: terminate the EC2 instances of the nodes of a hostlist"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    nodes: HostlistArgs,
}

fn main() -> ExitCode {
    let started = Instant::now();
    let args = Args::parse();
    startup::run("suspend", &args.common, true, |config, _logging| {
        let names = match args.nodes.expand() {
            Ok(names) => names,
            Err(code) => return code,
        };
        let sorted = slurm_ec2::names::sort_names(config, &names);
        if let Some(line) = sorted.foreign.summary() {
            tracing::warn!("{line}");
        }
        // Nothing of ours: no cluster look-up, no EC2 call.
        if sorted.by_group.is_empty() {
            let report = suspend::SuspendReport {
                foreign: sorted.foreign.count,
                ..Default::default()
            };
            tracing::info!(
                "{}",
                suspend::summary(&report, &CallCounter::default(), 0, started)
            );
            return ExitCode::SUCCESS;
        }
        let Session {
            scontrol,
            cluster,
            runtime,
        } = match startup::session(config) {
            Ok(session) => session,
            Err(code) => return code,
        };
        let calls = CallCounter::default();
        let report = runtime.block_on(async {
            let clients = Clients::for_config(config).await;
            suspend::suspend(&clients, &cluster, &sorted, &calls).await
        });
        let runs = scontrol.runs();
        tracing::info!("{}", suspend::summary(&report, &calls, runs, started));
        if report.succeeded() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_FAILED)
        }
    })
}
