//! What every head-node program does before its own work: find and validate the
//! configuration, apply its `Environment`, open the log. Binaries call
//! [`run`] from `main`, before any thread exists.
//!
//! Exit codes: 0 done, 1 the work failed (see the log), 2 bad usage or configuration.

use std::ffi::CStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{self, Config, ConfigError};
use crate::logging;

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_CONFIG: u8 = 2;

/// Options every program accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Folder holding config.json and partitions.json [default: $SLURM_EC2_CONFIG_DIR,
    /// else the executable's folder when it holds a config.json, else /etc/slurm-ec2]
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// Validate the configuration, print a one-line summary, and exit
    #[arg(long)]
    pub check: bool,
    /// Also log to stderr
    #[arg(long, short)]
    pub verbose: bool,
}

impl CommonArgs {
    pub fn config_dir(&self) -> PathBuf {
        config::find_config_dir(
            self.config_dir.as_deref(),
            std::env::var("SLURM_EC2_CONFIG_DIR").ok().as_deref(),
            std::env::current_exe().ok().as_deref(),
        )
    }
}

/// The arguments slurmctld passes to ResumeProgram and SuspendProgram.
#[derive(Debug, Clone, clap::Args)]
pub struct HostlistArgs {
    /// The nodes, as a Slurm hostlist expression (aws-node-[0-3])
    #[arg(required_unless_present = "check")]
    pub hostlist: Option<String>,
    /// Further arguments Slurm may pass (a feature string); ignored
    #[arg(hide = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub ignored: Vec<String>,
}

/// Where this run's log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Logging {
    File,
    /// The log file could not be opened: stderr and syslog instead.
    Fallback {
        reason: String,
    },
}

/// Loads the configuration, applies it to the process and sets up logging, then
/// calls `work`. With `--check`, validates (opening the log file as a run
/// would, and, when `uses_slurm`, finding `scontrol`) and reports instead.
pub fn run(
    program: &str,
    args: &CommonArgs,
    uses_slurm: bool,
    work: impl FnOnce(&Config, &Logging) -> ExitCode,
) -> ExitCode {
    let dir = args.config_dir();
    let config = match config::load(&dir) {
        Ok(config) => config,
        Err(error) => {
            report_config_error(program, &dir, &error, args.check);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if args.check {
        for warning in &config.warnings {
            eprintln!("warning: {warning}");
        }
        let problems = runtime_problems(&config, uses_slurm);
        for problem in &problems {
            eprintln!("{program}: {problem}");
        }
        if !problems.is_empty() {
            return ExitCode::from(EXIT_CONFIG);
        }
        println!("{}", config.summary());
        return ExitCode::SUCCESS;
    }
    apply_environment(&config);
    let (logging, _guard) = match logging::open_log_file(&config.log_file) {
        Ok(file) => match logging::init(program, Some(file), config.log_level, args.verbose) {
            Ok(guard) => (Logging::File, guard),
            Err(error) => {
                eprintln!("{program}: {error}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        Err(error) => {
            eprintln!("{program}: {error}; logging to stderr and syslog instead");
            let Ok(guard) = logging::init_fallback(program, config.log_level) else {
                return ExitCode::from(EXIT_CONFIG);
            };
            tracing::error!(
                "{error}: logging to stderr and syslog; fix LogFileName in config.json"
            );
            let reason = error.to_string();
            (Logging::Fallback { reason }, guard)
        }
    };
    for warning in &config.warnings {
        tracing::warn!("Configuration: {warning}");
    }
    work(&config, &logging)
}

/// What `--check` finds that the JSON alone cannot show: a log file that
/// cannot be opened for appending, an `scontrol` that is not there.
fn runtime_problems(config: &Config, uses_slurm: bool) -> Vec<String> {
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
    problems
}

/// Says what is wrong on stderr and, since slurmctld discards stderr, also in
/// the log file the configuration names (or the default one beside it).
fn report_config_error(program: &str, dir: &Path, error: &ConfigError, check: bool) {
    eprintln!("{program}: {error}");
    if check {
        return;
    }
    let log_path = fallback_log_path(dir);
    if let Ok(mut file) = logging::open_log_file(&log_path) {
        let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S,%3f");
        let pid = std::process::id();
        for line in error.to_string().lines() {
            let _ = writeln!(
                file,
                "{now} - {program}[{pid}] - CRITICAL - {}",
                line.trim_start()
            );
        }
    }
}

fn fallback_log_path(dir: &Path) -> PathBuf {
    crate::files::read_bounded(
        &dir.join(config::CONFIG_FILE),
        crate::files::MAX_CONFIG_BYTES,
    )
    .ok()
    .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
    .and_then(|json| json.get("LogFileName")?.as_str().map(PathBuf::from))
    .unwrap_or_else(|| dir.join("aws_plugin.log"))
}

/// Applies `Environment` and, when `HOME` is unset (slurmctld passes almost no
/// environment), the running user's home from the password database so that
/// `~/.aws` is found.
fn apply_environment(config: &Config) {
    for (key, value) in &config.environment {
        // SAFETY: called from `run`, before the program starts any thread.
        unsafe { std::env::set_var(key, value) };
    }
    if std::env::var_os("HOME").is_none()
        && let Some(home) = home_of_current_user()
    {
        // SAFETY: as above.
        unsafe { std::env::set_var("HOME", home) };
    }
}

fn home_of_current_user() -> Option<PathBuf> {
    let mut buffer = vec![0u8; 4096];
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to live, correctly sized storage owned here.
    let status = unsafe {
        libc::getpwuid_r(
            libc::getuid(),
            &mut entry,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            &mut result,
        )
    };
    if status != 0 || result.is_null() || entry.pw_dir.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_dir points at a NUL-terminated string in `buffer`.
    let dir = unsafe { CStr::from_ptr(entry.pw_dir) };
    Some(PathBuf::from(dir.to_string_lossy().into_owned()))
}

/// A Tokio runtime for the EC2 work of one program run.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// What resume, suspend and change-state share once configured: `scontrol`,
/// the cluster name that scopes every EC2 search, and an async runtime.
pub struct Session {
    pub scontrol: crate::slurm::Scontrol,
    pub cluster: String,
    pub runtime: tokio::runtime::Runtime,
}

/// Builds the [`Session`], or logs why it cannot and gives the exit code.
pub fn session(config: &Config) -> Result<Session, ExitCode> {
    let scontrol =
        crate::slurm::Scontrol::new(&config.scontrol(), config.settings.scontrol_timeout);
    let cluster = crate::cluster::cluster_name(config, &scontrol).map_err(|error| {
        tracing::error!("{error}");
        ExitCode::from(EXIT_FAILED)
    })?;
    let runtime = runtime().map_err(|error| {
        tracing::error!("Cannot start the async runtime: {error}");
        ExitCode::from(EXIT_FAILED)
    })?;
    Ok(Session {
        scontrol,
        cluster,
        runtime,
    })
}

impl HostlistArgs {
    /// Logs the hostlist Slurm passed and expands it, or logs why it cannot.
    /// Slurm passes one hostlist: anything after it is named in a warning.
    pub fn expand(&self) -> Result<Vec<String>, ExitCode> {
        if !self.ignored.is_empty() {
            tracing::warn!(
                "Ignoring {} argument(s) after the hostlist: {}",
                self.ignored.len(),
                self.ignored.join(" ")
            );
        }
        expand_hostlist(self.hostlist.as_deref().unwrap_or_default())
    }
}

/// Logs the hostlist Slurm passed and expands it, or logs why it cannot.
pub fn expand_hostlist(expression: &str) -> Result<Vec<String>, ExitCode> {
    tracing::info!("Hostlist: {expression}");
    crate::hostlist::expand(expression).map_err(|error| {
        tracing::error!("{error}");
        ExitCode::from(EXIT_CONFIG)
    })
}
