//! What only a program's `main` does, shared by the binaries: the arguments
//! every program takes, the process-wide effects (the configuration's
//! `Environment`, the user's home, the log subscriber) and the exit code.
//! The library knows none of this.
//!
//! Exit codes: 0 done, 1 the work failed (see the log), 2 bad usage or configuration.

#![allow(dead_code)] // each binary uses its own part

pub mod args;

use std::ffi::CStr;
use std::path::PathBuf;
use std::process::ExitCode;

use slurm_ec2::config::{self, Config};
use slurm_ec2::logging::{self, LogGuard, Logging};
use slurm_ec2::programs::{self, Outcome};

/// Options every program accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Folder holding config.json and partitions.json [default: $SLURM_EC2_CONFIG_DIR,
    /// else the executable's folder when it holds a config.json, else /etc/slurm-ec2]
    #[arg(long, value_name = "DIR", global = true)]
    pub config_dir: Option<PathBuf>,
    /// Validate the configuration, print a one-line summary, and exit
    #[arg(long, global = true)]
    pub check: bool,
    /// With --check: also check the configuration against EC2 (launch
    /// templates, subnets, zones, instance type offerings, permissions by dry runs)
    #[arg(long, global = true, requires = "check")]
    pub aws: bool,
    /// Also log to stderr
    #[arg(long, short, global = true)]
    pub verbose: bool,
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

impl HostlistArgs {
    pub fn nodes(&self) -> programs::Hostlist {
        programs::Hostlist {
            expression: self.hostlist.clone().unwrap_or_default(),
            extra: self.ignored.clone(),
        }
    }
}

impl CommonArgs {
    /// `--check --aws`: what `slurm-ec2 validate` does.
    pub fn validating(self) -> CommonArgs {
        CommonArgs {
            check: true,
            aws: true,
            ..self
        }
    }

    pub fn config_dir(&self) -> PathBuf {
        config::find_config_dir(
            self.config_dir.as_deref(),
            std::env::var("SLURM_EC2_CONFIG_DIR").ok().as_deref(),
            std::env::current_exe().ok().as_deref(),
        )
    }
}

pub fn exit_code(outcome: Outcome) -> ExitCode {
    ExitCode::from(match outcome {
        Outcome::Done => 0,
        Outcome::Failed => 1,
        Outcome::BadInput => 2,
    })
}

/// A head-node program: loads the configuration; with `--check` validates it
/// (`uses_slurm`: `scontrol` must be there too) and stops; else applies it to
/// the process, sets up logging and runs `work`.
pub fn head_node(
    program: &str,
    args: &CommonArgs,
    uses_slurm: bool,
    work: impl FnOnce(&programs::Context) -> Outcome,
) -> ExitCode {
    let dir = args.config_dir();
    let config = match config::load(&dir) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{program}: {error}");
            if !args.check {
                logging::record_config_error(program, &error);
            }
            return exit_code(Outcome::BadInput);
        }
    };
    if args.check {
        let outcome = programs::check(program, &config, uses_slurm);
        if outcome != Outcome::Done || !args.aws {
            return exit_code(outcome);
        }
        apply_environment(&config);
        return exit_code(programs::validate::check_aws(program, &config));
    }
    apply_environment(&config);
    let Some((logging, _guard)) = start_logging(program, &config, args.verbose) else {
        return exit_code(Outcome::BadInput);
    };
    for warning in &config.warnings {
        tracing::warn!("Configuration: {warning}");
    }
    let events = match &config.event_log_file {
        Some(path) => slurm_ec2::events::EventLog::open(path, program, config.program_user())
            .unwrap_or_else(|error| {
                tracing::error!("{error}: no events are written");
                slurm_ec2::events::EventLog::disabled()
            }),
        None => slurm_ec2::events::EventLog::disabled(),
    };
    let context = programs::Context::new(&config, logging, events);
    exit_code(work(&context))
}

/// get-nodename on a compute node: the configuration is optional, and the
/// log goes to stderr (the journal under systemd); stdout holds the name alone.
pub fn compute_node(
    program: &str,
    args: &CommonArgs,
    work: impl FnOnce(Option<&Config>) -> Outcome,
) -> ExitCode {
    use slurm_ec2::programs::get_nodename;
    let dir = args.config_dir();
    let config = match get_nodename::optional_config(&dir) {
        Ok(config) => config,
        Err(outcome) => return exit_code(outcome),
    };
    if args.aws {
        eprintln!(
            "{program}: --aws checks the head node's configuration against EC2: run slurm-ec2 validate there"
        );
        return exit_code(Outcome::BadInput);
    }
    if args.check {
        return exit_code(get_nodename::check(&dir, config.as_ref()));
    }
    let level = if args.verbose {
        config::LogLevel::Debug
    } else {
        config::LogLevel::Info
    };
    let _guard = logging::init(program, None, level, true);
    exit_code(work(config.as_ref()))
}

/// The log file, or stderr and syslog when it cannot be opened.
fn start_logging(program: &str, config: &Config, verbose: bool) -> Option<(Logging, LogGuard)> {
    match logging::open_log_file(&config.log_file, config.program_user()) {
        Ok(file) => match logging::init(program, Some(file), config.log_level, verbose) {
            Ok(guard) => Some((Logging::File, guard)),
            Err(error) => {
                eprintln!("{program}: {error}");
                None
            }
        },
        Err(error) => {
            eprintln!("{program}: {error}; logging to stderr and syslog instead");
            let guard = logging::init_fallback(program, config.log_level).ok()?;
            tracing::error!(
                "{error}: logging to stderr and syslog; fix LogFileName in config.json"
            );
            let reason = error.to_string();
            Some((Logging::Fallback { reason }, guard))
        }
    }
}

/// Applies `Environment` and, when `HOME` is unset (slurmctld passes almost no
/// environment), the running user's home from the password database so that
/// `~/.aws` is found.
fn apply_environment(config: &Config) {
    for (key, value) in &config.environment {
        // SAFETY: called from `main`, before the program starts any thread.
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
    // SAFETY: passwd is plain old data; getpwuid_r fills it.
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
