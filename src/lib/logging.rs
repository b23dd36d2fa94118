//! The shared log file, in the original plugin's line format plus the process id:
//! `2026-11-21 12:00:00,123 - resume[4242] - INFO - Launched node aws-node-0 …`.
//!
//! resume and suspend (as SlurmUser) and change-state (as root) append to one
//! file, so it is created group-writable and opened in append mode, through
//! [`crate::files::open_shared`]. Each line is one `write`; a line the file
//! refuses (a full disk) goes to stderr and syslog instead, and the log counts
//! as unavailable from then on ([`write_failure`]).

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

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
    #[error("cannot open log file {0}")]
    Open(#[source] crate::files::SharedFileError),
    #[error("logging is already set up in this process")]
    AlreadySet,
}

/// Where a run's log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Logging {
    File,
    /// The log file could not be opened: stderr and syslog instead.
    Fallback {
        reason: String,
    },
}

/// Held by `main` while the program logs.
pub struct LogGuard {
    _private: (),
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

/// `<local time> - <program>[<pid>] - <LEVEL> - `: the start of every line.
fn line_prefix(program: &str, pid: u32, level: &str) -> String {
    let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S,%3f");
    format!("{now} - {program}[{pid}] - {level} - ")
}

/// Writes a refused configuration's error to the log file it names (or the
/// default one beside it), since slurmctld discards the programs' stderr.
pub fn record_config_error(program: &str, refused: &crate::config::Refused) {
    let Some(log_path) = &refused.log_file else {
        return;
    };
    if let Ok(mut file) = open_log_file(log_path, None) {
        for line in refused.error.to_string().lines() {
            let prefix = line_prefix(program, std::process::id(), "CRITICAL");
            let _ = writeln!(file, "{prefix}{}", line.trim_start());
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
        let level = level_name(event.metadata().level());
        write!(writer, "{}", line_prefix(&self.program, self.pid, level))?;
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

/// Opens (creating it group-writable if needed) the shared log file for
/// appending. `program_user` is SlurmUser, whose files root trusts too.
pub fn open_log_file(path: &Path, program_user: Option<u32>) -> Result<File, LogError> {
    crate::files::open_shared(path, crate::files::Access::Append, 0o664, program_user)
        .map_err(LogError::Open)
}

/// Why the log file refused a line, once one was refused.
static WRITE_FAILURE: OnceLock<String> = OnceLock::new();

/// Set when a line could not be written to the log file (a full disk, a
/// quota, a file system gone read-only): the lines since went to stderr and
/// syslog, and resume launches nothing that nobody could trace.
pub fn write_failure() -> Option<&'static str> {
    WRITE_FAILURE.get().map(String::as_str)
}

/// Writes each formatted line to the log file in one `write`; a line the
/// file refuses goes to stderr and syslog, with why.
#[derive(Clone)]
struct FileWriter {
    file: Arc<Mutex<File>>,
    syslog: Arc<Syslog>,
}

/// One line on its way to the log file.
struct FileLine<'a> {
    writer: &'a FileWriter,
    severity: u8,
    line: Vec<u8>,
}

impl io::Write for FileLine<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for FileLine<'_> {
    fn drop(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let mut file = self.writer.file.lock().unwrap_or_else(|p| p.into_inner());
        let Err(error) = file.write_all(&self.line) else {
            return;
        };
        drop(file);
        let first = WRITE_FAILURE.set(error.to_string()).is_ok();
        let text = String::from_utf8_lossy(&self.line);
        let mut stderr = io::stderr().lock();
        if first {
            let notice =
                format!("the log file refused a line ({error}): lines go to stderr and syslog");
            let _ = writeln!(stderr, "{notice}");
            self.writer.syslog.send(3, &notice);
        }
        let _ = stderr.write_all(text.as_bytes());
        self.writer.syslog.send(self.severity, text.trim_end());
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for FileWriter {
    type Writer = FileLine<'a>;

    fn make_writer(&'a self) -> FileLine<'a> {
        FileLine {
            writer: self,
            severity: 6,
            line: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> FileLine<'a> {
        FileLine {
            writer: self,
            severity: severity(meta.level()),
            line: Vec::new(),
        }
    }
}

/// Sends log lines to `file` (when given) at `level`, and to stderr as well when
/// `verbose`. Installs the process-wide subscriber: binaries call it once.
pub fn init(
    program: &str,
    file: Option<File>,
    level: LogLevel,
    verbose: bool,
) -> Result<LogGuard, LogError> {
    let file_layer = file.map(|file| {
        let writer = FileWriter {
            file: Arc::new(Mutex::new(file)),
            syslog: Arc::new(Syslog::new(program)),
        };
        tracing_subscriber::fmt::layer()
            .event_format(LineFormat::new(program))
            .with_writer(writer)
            .with_filter(targets(level))
    });
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
    Ok(LogGuard { _private: () })
}

/// When the log file cannot be opened: lines go to stderr and to the local
/// syslog (`/dev/log`, where there is one), so that a run under slurmctld or
/// cron, whose stderr nobody reads, still leaves a trace.
pub fn init_fallback(program: &str, level: LogLevel) -> Result<LogGuard, LogError> {
    let syslog_layer = tracing_subscriber::fmt::layer()
        .event_format(SyslogFormat)
        .with_writer(Syslog::new(program))
        .with_filter(targets(level));
    let stderr_layer = tracing_subscriber::fmt::layer()
        .event_format(LineFormat::new(program))
        .with_writer(io::stderr)
        .with_filter(targets(level));
    let subscriber = tracing_subscriber::registry()
        .with(syslog_layer)
        .with(stderr_layer);
    tracing::subscriber::set_global_default(subscriber).map_err(|_| LogError::AlreadySet)?;
    Ok(LogGuard { _private: () })
}

/// The message alone: syslog adds the time, the tag and the severity.
struct SyslogFormat;

impl<S, N> FormatEvent<S, N> for SyslogFormat
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
        write!(writer, "{} - ", level_name(event.metadata().level()))?;
        ctx.field_format().format_fields(writer.by_ref(), event)
    }
}

struct Syslog {
    tag: String,
}

/// One syslog datagram, sent when the line is complete (the writer is dropped).
pub struct SyslogLine {
    header: String,
    line: Vec<u8>,
}

impl io::Write for SyslogLine {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let message = format!("{}{}", self.header, text.trim_end());
        send_to_syslog(&message);
    }
}

fn send_to_syslog(message: &str) {
    if let Ok(socket) = std::os::unix::net::UnixDatagram::unbound() {
        let _ = socket.send_to(message.as_bytes(), "/dev/log");
    }
}

/// Facility user (1); severities err, warning, info, debug.
fn severity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Syslog {
    type Writer = SyslogLine;

    fn make_writer(&'a self) -> SyslogLine {
        self.line(6)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> SyslogLine {
        self.line(severity(meta.level()))
    }
}

impl Syslog {
    fn new(program: &str) -> Syslog {
        Syslog {
            tag: format!("{program}[{}]", std::process::id()),
        }
    }

    /// One message, sent at once.
    fn send(&self, severity: u8, text: &str) {
        send_to_syslog(&format!("<{}>{}: {text}", 8 + severity, self.tag));
    }

    fn line(&self, severity: u8) -> SyslogLine {
        SyslogLine {
            header: format!("<{}>{}: ", 8 + severity, self.tag),
            line: Vec::new(),
        }
    }
}
