//! The five programs' logic. Each `run` takes the run's [`Context`] and its
//! arguments and returns an [`Outcome`]; the binaries turn that into an exit
//! code, and own everything process-wide (environment, logging set-up).

pub mod change_state;
pub mod generate_conf;
pub mod get_nodename;
pub mod resume;
pub mod status;
pub mod suspend;
mod table;
pub mod validate;

use std::time::Instant;

use crate::cluster;
use crate::config::{self, Config};
use crate::events::EventLog;
use crate::logging::{self, Logging};
use crate::slurm::Scontrol;

/// How a program run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked was done.
    Done,
    /// Some of the work failed; the log says what.
    Failed,
    /// Bad usage, input or configuration: nothing was done.
    BadInput,
}

/// What a head-node program runs with: its validated configuration, where
/// its log and its events go, and when it started (for the summary line).
pub struct Context<'a> {
    pub config: &'a Config,
    pub logging: Logging,
    pub events: EventLog,
    pub started: Instant,
}

impl<'a> Context<'a> {
    pub fn new(config: &'a Config, logging: Logging, events: EventLog) -> Self {
        Context {
            config,
            logging,
            events,
            started: Instant::now(),
        }
    }
}

/// The hostlist slurmctld passes to resume and suspend, and whatever follows it.
#[derive(Debug, Clone, Default)]
pub struct Hostlist {
    pub expression: String,
    pub extra: Vec<String>,
}

impl Hostlist {
    /// Logs the hostlist and expands it, or logs why it cannot. Slurm passes
    /// one hostlist: anything after it is named in a warning.
    pub fn expand(&self) -> Result<Vec<String>, Outcome> {
        if !self.extra.is_empty() {
            tracing::warn!(
                "Ignoring {} argument(s) after the hostlist: {}",
                self.extra.len(),
                self.extra.join(" ")
            );
        }
        tracing::info!("Hostlist: {}", self.expression);
        crate::hostlist::expand(&self.expression).map_err(|error| {
            tracing::error!("{error}");
            Outcome::BadInput
        })
    }
}

/// `--check`: the configuration's warnings, then what the JSON alone cannot
/// show (a log file that cannot be opened for appending, an `scontrol` that
/// is not there, when `uses_slurm`), on stderr; the summary on stdout.
pub fn check(program: &str, config: &Config, uses_slurm: bool) -> Outcome {
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    let file = config.dir.join(config::CONFIG_FILE);
    let mut problems = Vec::new();
    if let Err(error) = logging::open_log_file(&config.log_file) {
        problems.push(format!("{}: LogFileName: {error}", file.display()));
    }
    if uses_slurm {
        use std::os::unix::fs::PermissionsExt;
        let scontrol = config.scontrol();
        let executable = std::fs::metadata(&scontrol)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        if !executable {
            problems.push(format!(
                "{}: SlurmBinPath: {} is not an executable file",
                file.display(),
                scontrol.display()
            ));
        }
    }
    for problem in &problems {
        eprintln!("{program}: {problem}");
    }
    if !problems.is_empty() {
        return Outcome::BadInput;
    }
    println!("{}", config.summary());
    Outcome::Done
}

/// What resume, suspend and change-state share once configured: `scontrol`,
/// the cluster name that scopes every EC2 search, and an async runtime.
pub(crate) struct Session {
    pub scontrol: Scontrol,
    pub cluster: String,
    pub runtime: tokio::runtime::Runtime,
}

/// Builds the [`Session`], or logs why it cannot.
pub(crate) fn session(config: &Config) -> Result<Session, Outcome> {
    crate::ec2::check_trust_store().map_err(|error| {
        tracing::error!("{error}");
        Outcome::Failed
    })?;
    let scontrol = Scontrol::new(&config.scontrol(), config.settings.scontrol_timeout);
    let cluster = cluster::cluster_name(config, &scontrol).map_err(|error| {
        tracing::error!("{error}");
        Outcome::Failed
    })?;
    let runtime = runtime().map_err(|error| {
        tracing::error!("Cannot start the async runtime: {error}");
        Outcome::Failed
    })?;
    Ok(Session {
        scontrol,
        cluster,
        runtime,
    })
}

/// Seconds since the epoch, now.
pub(crate) fn epoch_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// This host's name, from the kernel.
pub(crate) fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// A Tokio runtime for the EC2 work of one program run.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}
