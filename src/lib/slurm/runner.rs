//! One Slurm command (`scontrol`, `squeue`, `slurmd --version`) run without a
//! shell: an argument vector, a timeout cut to the run's end, its exit status
//! and stderr checked, a run that slurmctld did not answer in time repeated.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::SlurmVersion;

/// What stderr says when slurmctld did not answer in time: it may be busy
/// (24.11 spends about 15 s resolving a powered-down node's name), so the
/// call is worth repeating.
const TRANSIENT: [&str; 4] = [
    "Socket timed out",
    "Unable to contact slurm controller",
    "Zero Bytes were transmitted or received",
    "Slurm backup controller in standby mode",
];

/// Attempts of one command, and the pause before each repeat.
const ATTEMPTS: usize = 3;
const PAUSES: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(3)];

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("cannot run {}: {source}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {} s and was killed", timeout.as_secs())]
    Timeout { command: String, timeout: Duration },
    #[error("`{command}` not run: the run's time is spent")]
    OutOfTime { command: String },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
}

/// Runs one of Slurm's programs, and counts its runs.
#[derive(Debug)]
pub struct SlurmCommand {
    program: PathBuf,
    timeout: Duration,
    /// No run lasts past this, and none starts after it.
    end: Option<Instant>,
    runs: std::sync::atomic::AtomicUsize,
}

impl SlurmCommand {
    pub fn new(program: &Path, timeout: Duration) -> Self {
        SlurmCommand {
            program: program.to_path_buf(),
            timeout,
            end: None,
            runs: Default::default(),
        }
    }

    /// The same, for a run that must be over by `end`: each command's timeout
    /// is cut to what is left, and none is started or repeated after it.
    pub fn until(mut self, end: Instant) -> Self {
        self.end = Some(end);
        self
    }

    /// Another of Slurm's programs (`squeue`), with the same timeout and end.
    pub fn sibling(&self, program: &Path) -> SlurmCommand {
        SlurmCommand {
            end: self.end,
            ..SlurmCommand::new(program, self.timeout)
        }
    }

    /// What is left before `end`, or the timeout of one command.
    fn time_left(&self) -> Duration {
        match self.end {
            Some(end) => self
                .timeout
                .min(end.saturating_duration_since(Instant::now())),
            None => self.timeout,
        }
    }

    pub fn runs(&self) -> usize {
        self.runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The version `<program> --version` prints, asked once.
    pub fn read_version(&self) -> Result<SlurmVersion, String> {
        let text = self
            .run_once(&["--version".to_string()])
            .map_err(|error| error.to_string())?;
        SlurmVersion::from_scontrol_output(&text).map_err(|error| error.to_string())
    }

    /// Runs `<program> <args>` and returns its stdout; a non-zero exit, a
    /// timeout or an error line on stderr of a failed run is an error. A run
    /// that slurmctld did not answer in time is repeated, twice at most.
    pub fn run(&self, args: &[String]) -> Result<String, SlurmError> {
        let mut attempt = 1;
        loop {
            match self.run_once(args) {
                Err(error)
                    if attempt < ATTEMPTS
                        && error.is_transient()
                        && self.time_left() > PAUSES[attempt - 1] =>
                {
                    let pause = PAUSES[attempt - 1];
                    tracing::warn!(
                        "{error}; slurmctld may be busy, trying again in {} s",
                        pause.as_secs()
                    );
                    std::thread::sleep(pause);
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn run_once(&self, args: &[String]) -> Result<String, SlurmError> {
        let command = format!("{} {}", self.program.display(), args.join(" "));
        let timeout = self.time_left();
        if timeout.is_zero() {
            return Err(SlurmError::OutOfTime { command });
        }
        self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = self
            .program
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        tracing::debug!("Command {name}: {command}");
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| SlurmError::Spawn {
                program: self.program.clone(),
                source,
            })?;
        let stdout = reader(child.stdout.take());
        let stderr = reader(child.stderr.take());
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(SlurmError::Timeout { command, timeout });
                }
            }
        };
        let out = stdout.join().unwrap_or_default();
        let err = stderr.join().unwrap_or_default();
        if !status.success() {
            return Err(SlurmError::Failed {
                command,
                status: status.to_string(),
                stderr: err.trim().to_string(),
            });
        }
        if !err.trim().is_empty() {
            tracing::warn!("`{command}` wrote to stderr: {}", err.trim());
        }
        Ok(out)
    }
}

impl SlurmError {
    /// slurmctld did not answer in time; the same command may well succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SlurmError::Timeout { .. } => true,
            SlurmError::Failed { stderr, .. } => TRANSIENT.iter().any(|text| stderr.contains(text)),
            SlurmError::Spawn { .. } | SlurmError::OutOfTime { .. } => false,
        }
    }
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for scontrol that takes `seconds` to answer.
    fn slow_scontrol(dir: &Path, seconds: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("scontrol");
        std::fs::write(&path, format!("#!/bin/sh\nsleep {seconds}\necho done\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn no_command_lasts_past_the_runs_end_nor_starts_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let program = slow_scontrol(dir.path(), 10);
        let end = Instant::now() + Duration::from_secs(1);
        let scontrol = SlurmCommand::new(&program, Duration::from_secs(30)).until(end);
        let started = Instant::now();
        let error = scontrol.run(&["ping".to_string()]).unwrap_err();
        assert!(matches!(error, SlurmError::Timeout { .. }), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        let error = scontrol.run(&["ping".to_string()]).unwrap_err();
        assert!(matches!(error, SlurmError::OutOfTime { .. }), "{error}");
        assert_eq!(scontrol.runs(), 1, "nothing started after the end");
        let squeue = scontrol.sibling(&program);
        assert!(matches!(
            squeue.run(&[]).unwrap_err(),
            SlurmError::OutOfTime { .. }
        ));
    }
}
