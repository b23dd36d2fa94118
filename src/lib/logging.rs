//! The shared log file, in the original plugin's line format plus the process id:
//! `2026-11-21 12:00:00,123 - resume[4242] - INFO - Launched node aws-node-0 …`.
//!
//! resume and suspend (as SlurmUser) and change-state (as root) append to one
//! file, so it is created group-writable and opened in append mode.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogLevel;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open log file {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("logging is already set up in this process")]
    AlreadySet,
}

/// Keeps the background writer alive; drop it last, so that every line is written.
pub struct LogGuard {
    _file: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Formats a line as `<local time> - <program>[<pid>] - <LEVEL> - <message>`.
pub struct LineFormat {
    program: String,
    pid: u32,
}

impl LineFormat {
    pub fn new(program: &str) -> Self {
        Self {
            program: program.to_string(),
            pid: std::process::id(),
        }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S,%3f");
        let level = level_name(event.metadata().level());
        write!(
            writer,
            "{now} - {}[{}] - {level} - ",
            self.program, self.pid
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Our own lines at the configured level; the SDK's and other libraries' lines
/// only from WARNING up, whatever the level, so that DEBUG stays readable.
pub fn targets(level: LogLevel) -> Targets {
    Targets::new()
        .with_default(level_filter(level).min(LevelFilter::WARN))
        .with_targets(OUR_TARGETS.iter().map(|t| (*t, level_filter(level))))
}

/// The crate and the binaries (whose targets are their crate names).
const OUR_TARGETS: [&str; 6] = [
    "slurm_ec2",
    "resume",
    "suspend",
    "change_state",
    "generate_conf",
    "get_nodename",
];

pub fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Critical | LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warning => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
    }
}

/// Opens (creating it group-writable if needed) the shared log file for appending.
pub fn open_log_file(path: &Path) -> Result<File, LogError> {
    let open_error = |source| LogError::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o664)
        .open(path)
        .map_err(open_error)?;
    // The umask may have cleared group write; widen it on a file we own, so that
    // programs run as another user of the group can append too.
    if let Ok(meta) = file.metadata()
        && meta.permissions().mode() & 0o020 == 0
        && meta_is_ours(&meta)
    {
        let mode = meta.permissions().mode() | 0o060;
        let _ = file.set_permissions(std::fs::Permissions::from_mode(mode));
    }
    Ok(file)
}

fn meta_is_ours(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    meta.uid() == unsafe { libc::geteuid() }
}

/// Sends log lines to `file` (when given) at `level`, and to stderr as well when
/// `verbose`. Installs the process-wide subscriber: binaries call it once.
pub fn init(
    program: &str,
    file: Option<File>,
    level: LogLevel,
    verbose: bool,
) -> Result<LogGuard, LogError> {
    let (file_layer, guard) = match file {
        Some(file) => {
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                .finish(file);
            let layer = tracing_subscriber::fmt::layer()
                .event_format(LineFormat::new(program))
                .with_writer(writer)
                .with_filter(targets(level));
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    let stderr_layer = verbose.then(|| {
        tracing_subscriber::fmt::layer()
            .event_format(LineFormat::new(program))
            .with_writer(io::stderr)
            .with_filter(targets(level))
    });
    let subscriber = tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer);
    tracing::subscriber::set_global_default(subscriber).map_err(|_| LogError::AlreadySet)?;
    Ok(LogGuard { _file: guard })
}
