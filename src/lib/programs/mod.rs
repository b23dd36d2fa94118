//! The five programs' logic. Each `run` takes the run's [`Context`] and its
//! arguments and returns an [`Outcome`]; the binaries turn that into an exit
//! code, and own everything process-wide (environment, logging set-up).

pub mod change_state;
pub mod cost;
pub mod generate_conf;
pub mod get_nodename;
pub mod metrics;
pub mod resume;
mod run;
pub mod status;
pub mod suspend;
mod table;
pub mod teardown;
pub mod validate;
pub mod watch;

pub use run::{Run, RunError, tally};

use std::time::{Duration, Instant};

use crate::config::{self, Config};
use crate::events::EventLog;
use crate::logging::{self, Logging};

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

/// Records how a run of `program` ended, for the metrics' last runs (a
/// failure to is a warning), and returns `outcome`.
pub fn finish(context: &Context, program: &str, outcome: Outcome) -> Outcome {
    let seconds = context.started.elapsed().as_secs_f64();
    let succeeded = outcome == Outcome::Done;
    if let Err(error) =
        crate::last_run::record(context.config, program, epoch_seconds(), seconds, succeeded)
    {
        tracing::warn!("{error}");
    }
    outcome
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
    if let Err(error) = crate::files::state_dir_owner(&config.state_dir) {
        problems.push(format!("{}: StateDirectory: {error}", file.display()));
    }
    let program_user = config.program_user();
    if let Err(error) = logging::open_log_file(&config.log_file, program_user) {
        problems.push(format!("{}: LogFileName: {error}", file.display()));
    }
    if let Some(path) = &config.event_log_file
        && let Err(error) = EventLog::open(path, program, program_user)
    {
        problems.push(format!("{}: EventLogFile: {error}", file.display()));
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

/// How long change-state may work: it runs every minute, and a run that
/// lasts longer only makes the next one find its lock held.
pub const CHANGE_STATE_BUDGET: Duration = Duration::from_secs(50);
/// How long an administrator's look-up (status, validate, `--from-ec2`) may
/// wait on EC2, pacing and retries included.
pub const LOOKUP_BUDGET: Duration = Duration::from_secs(300);
/// What resume and suspend keep in hand before slurmctld would kill them.
const SLURM_KILL_MARGIN: Duration = Duration::from_secs(5);

/// How long a run may wait: on EC2 (pacing, retries) and on Slurm's commands.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub ec2: Duration,
    pub slurm: Duration,
}

impl Budget {
    /// resume and suspend: EC2 work within `ResumeBudgetSeconds`; Slurm's
    /// commands (the failures must still reach Slurm) until shortly before
    /// slurmctld would kill the program.
    pub fn power_save(config: &Config) -> Budget {
        let slurm = config
            .settings
            .slurm_limit
            .saturating_sub(SLURM_KILL_MARGIN);
        Budget {
            ec2: config.settings.resume_budget,
            slurm: slurm.max(config.settings.resume_budget),
        }
    }

    /// One limit for both.
    pub fn both(limit: Duration) -> Budget {
        Budget {
            ec2: limit,
            slurm: limit,
        }
    }
}

/// Why a program's result did not reach stdout.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write the result: stdout is closed")]
    Closed,
    #[error("cannot write the result to stdout: {0}")]
    Write(#[from] std::io::Error),
}

/// Writes a program's result to stdout and flushes it. A closed stdout (which
/// Rust's own printing ignores) or a failed write (a full disk) is an error,
/// so that the program exits non-zero instead of losing its result.
pub fn write_stdout(text: &str) -> Result<(), OutputError> {
    use std::io::Write;
    if stdout_was_closed() {
        return Err(OutputError::Closed);
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Rust's runtime opens `/dev/null` (read and write) in the place of a
/// standard descriptor that was closed when the program started; a shell's
/// `> /dev/null` opens it for writing only. So `/dev/null` open for both
/// means that nobody was there to read the result.
fn stdout_was_closed() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() else {
        return true;
    };
    let Ok(meta) = std::fs::File::from(fd).metadata() else {
        return true;
    };
    const DEV_NULL: u64 = (1 << 8) | 3;
    if !meta.file_type().is_char_device() || meta.rdev() != DEV_NULL {
        return false;
    }
    // SAFETY: F_GETFL on a descriptor number only reads its flags.
    let flags = unsafe { libc::fcntl(libc::STDOUT_FILENO, libc::F_GETFL) };
    flags != -1 && flags & libc::O_ACCMODE == libc::O_RDWR
}

/// Seconds since the epoch, now.
pub(crate) fn epoch_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// This host's name, from the kernel.
pub(crate) fn hostname() -> Option<String> {
    crate::files::read_bounded(std::path::Path::new("/proc/sys/kernel/hostname"), 256)
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}
