//! change-state: run every minute by cron. Repairs nodes stuck in bad states
//! and reconciles Slurm with EC2 (the table is in the README). Exit 0 when
//! every action succeeded (or another run holds the lock, or this host is a
//! backup controller), 1 when an action failed, 2 on bad configuration.

use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use slurm_ec2::change_state;
use slurm_ec2::ec2::{CallCounter, Clients};
use slurm_ec2::startup::{self, CommonArgs, EXIT_FAILED, Session};

#[derive(Parser)]
#[command(
    version,
    about = "Reconcile Slurm's cloud nodes with their EC2 instances (run every minute by cron)"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Print the plan (node, Slurm state, instance, EC2 state, action, reason) without acting
    #[arg(long)]
    dry_run: bool,
}

fn main() -> ExitCode {
    let started = Instant::now();
    let args = Args::parse();
    startup::run("change_state", &args.common, true, |config, _logging| {
        let _lock = match change_state::lock(config) {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                tracing::info!("Another change-state run holds the lock: nothing to do");
                if args.dry_run {
                    eprintln!(
                        "change-state: another change-state run holds the lock; no plan printed"
                    );
                }
                return ExitCode::SUCCESS;
            }
            Err(error) => {
                tracing::error!("{error}");
                return ExitCode::from(EXIT_FAILED);
            }
        };
        let Session {
            scontrol,
            cluster,
            runtime,
        } = match startup::session(config) {
            Ok(session) => session,
            Err(code) => return code,
        };
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        match scontrol.run(&["ping".into()]) {
            Ok(ping) if !change_state::should_run(&ping, hostname.trim()) => {
                tracing::info!(
                    "This host is a backup controller and the primary is up: nothing to do"
                );
                return ExitCode::SUCCESS;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!("Cannot reach slurmctld: {error}");
                return ExitCode::from(EXIT_FAILED);
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let calls = CallCounter::default();
        let failures = runtime.block_on(async {
            let clients = Clients::for_config(config).await;
            let steps =
                match change_state::make_plan(config, &scontrol, &clients, &cluster, &calls, now)
                    .await
                {
                    Ok(steps) => steps,
                    Err(error) => {
                        tracing::error!("{error}");
                        return None;
                    }
                };
            if args.dry_run {
                print!("{}", change_state::table(&steps));
                return Some(0);
            }
            Some(change_state::execute(&steps, &scontrol, &clients, &calls).await)
        });
        tracing::info!(
            "Change-state summary: failed actions {}; EC2 calls: {}; scontrol calls: {}; {:.2} s",
            failures.map_or("all".to_string(), |f| f.to_string()),
            calls.summary(),
            scontrol.runs(),
            started.elapsed().as_secs_f64()
        );
        match failures {
            Some(0) => ExitCode::SUCCESS,
            _ => ExitCode::from(EXIT_FAILED),
        }
    })
}
