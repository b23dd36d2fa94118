//! resume <hostlist> [ignored…]: Slurm's ResumeProgram. Launches EC2 instances
//! for the nodes and tells Slurm their addresses. Exit 0 when every node is
//! served, 1 when some are not (they are set DOWN with a coded reason), 2 on
//! bad usage or configuration.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use slurm_ec2::ec2::{CallCounter, Clients};
use slurm_ec2::resume;
use slurm_ec2::slurm::Scontrol;
use slurm_ec2::startup::{self, CommonArgs, EXIT_FAILED, HostlistArgs, Logging, Session};

#[derive(Parser)]
#[command(
    version,
    about = "Slurm ResumeProgram: launch EC2 instances for the nodes of a hostlist"
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
    // The resume file is a descriptor of slurmctld's: read it before anything else.
    let resume_file = std::env::var_os("SLURM_RESUME_FILE")
        .map(|p| (p.clone(), resume::read_resume_file(p.as_ref())));
    startup::run("resume", &args.common, true, |config, logging| {
        match &resume_file {
            Some((_, Ok(jobs))) => tracing::info!("Resume file names job(s): {jobs:?}"),
            Some((path, Err(error))) => {
                tracing::warn!("SLURM_RESUME_FILE {}: {error}", path.to_string_lossy())
            }
            None => {}
        }
        let names = match args.nodes.expand() {
            Ok(names) => names,
            Err(code) => return code,
        };
        if let Logging::Fallback { reason } = logging {
            // Nobody could tell what a launch did: fail the nodes so that their jobs are requeued.
            let scontrol = Scontrol::new(&config.scontrol(), config.settings.scontrol_timeout);
            let report = resume::refuse_without_log(config, &scontrol, &names, reason);
            tracing::info!(
                "{}",
                resume::summary(&report, &CallCounter::default(), &scontrol, started)
            );
            return ExitCode::from(EXIT_FAILED);
        }
        let Session {
            scontrol,
            cluster,
            runtime,
        } = match startup::session(config) {
            Ok(session) => session,
            Err(code) => return code,
        };
        let calls = Arc::new(CallCounter::default());
        let report = runtime.block_on(async {
            let clients = Clients::for_config(config).await;
            resume::resume(config, &scontrol, &clients, &cluster, &names, calls.clone()).await
        });
        tracing::info!("{}", resume::summary(&report, &calls, &scontrol, started));
        if report.failed_count() == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_FAILED)
        }
    })
}
