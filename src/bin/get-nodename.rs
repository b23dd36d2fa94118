//! get-nodename: run on a compute node (systemd ExecStartPre); prints the
//! Slurm node name of this instance from its Name tag, read over IMDSv2.
//!
//! Prints the name alone on stdout and exits 0; on failure prints nothing on
//! stdout (unless --fallback-hostname), says why on stderr and exits 1.
//! Exit 2: bad usage or an invalid configuration.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use slurm_ec2::config::{self, Config};
use slurm_ec2::get_nodename::{self, GetNameError};
use slurm_ec2::logging;
use slurm_ec2::startup::{self, CommonArgs, EXIT_CONFIG, EXIT_FAILED};

#[derive(Parser)]
#[command(
    version,
    about = "Print the Slurm node name of this EC2 instance, from its Name tag (IMDSv2)"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Give up after this many seconds without a Name tag (1 to 86400)
    #[arg(long, default_value_t = 300, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout: u64,
    /// On failure print the host name instead (the original plugin's behaviour)
    #[arg(long)]
    fallback_hostname: bool,
    /// Print SLURM_NODENAME=<name>, for a systemd environment file
    #[arg(long)]
    env: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // On a compute node the configuration is optional: with it, the name is checked.
    let dir = args.common.config_dir();
    // Only a config.json that does not exist at all means "no configuration":
    // a folder, a dangling link or a loop in its place is an error.
    let absent = std::fs::symlink_metadata(dir.join(config::CONFIG_FILE))
        .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
    let config: Option<Config> = if !absent {
        match config::load(&dir) {
            Ok(config) => Some(config),
            Err(error) => {
                eprintln!("get-nodename: {error}");
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    } else {
        None
    };
    if args.common.check {
        match &config {
            Some(config) => println!("{}", config.summary()),
            None => println!(
                "no configuration in {}: node names will not be checked",
                dir.display()
            ),
        }
        return ExitCode::SUCCESS;
    }
    // The log goes to stderr (the journal under systemd); stdout holds the name alone.
    let level = if args.common.verbose {
        config::LogLevel::Debug
    } else {
        config::LogLevel::Info
    };
    let _guard = logging::init("get_nodename", None, level, true);
    let settings = config
        .as_ref()
        .map(|c| c.settings.clone())
        .unwrap_or_default();
    let runtime = match startup::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("get-nodename: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let result: Result<String, GetNameError> = runtime.block_on(async {
        let imds = get_nodename::imds_client();
        let (name, source) =
            get_nodename::lookup(&imds, &settings, Duration::from_secs(args.timeout)).await?;
        tracing::info!("Node name {name} read from {source}");
        if let Some(config) = &config {
            get_nodename::check_name(config, "this instance", &name)?;
        }
        Ok(name)
    });
    match result {
        Ok(name) => {
            print_name(&name, args.env);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("get-nodename: {error}");
            if args.fallback_hostname
                && let Some(hostname) = hostname()
            {
                eprintln!("get-nodename: falling back to the host name {hostname}");
                print_name(&hostname, args.env);
                return ExitCode::SUCCESS;
            }
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn print_name(name: &str, env: bool) {
    if env {
        println!("SLURM_NODENAME={name}");
    } else {
        println!("{name}");
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}
