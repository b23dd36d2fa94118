use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{NodeAddress, SlurmVersion, UPDATE_BATCH};
use crate::hostlist;

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

/// The instance behind a node, for Slurm's InstanceId and InstanceType (23.11+).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NodeInstance {
    pub node: String,
    pub instance_id: String,
    pub instance_type: String,
}

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

/// Runs `scontrol` from `SlurmBinPath`, and counts its runs.
#[derive(Debug)]
pub struct Scontrol {
    program: PathBuf,
    timeout: Duration,
    /// No run lasts past this, and none starts after it.
    end: Option<Instant>,
    runs: std::sync::atomic::AtomicUsize,
    version: OnceLock<Option<SlurmVersion>>,
}

impl Scontrol {
    pub fn new(program: &Path, timeout: Duration) -> Self {
        Self {
            program: program.to_path_buf(),
            timeout,
            end: None,
            runs: Default::default(),
            version: OnceLock::new(),
        }
    }

    /// The same, for a run that must be over by `end`: each command's timeout
    /// is cut to what is left, and none is started or repeated after it.
    pub fn until(mut self, end: Instant) -> Self {
        self.end = Some(end);
        self
    }

    /// Another Slurm command (`squeue`) run with the same timeout and end.
    pub fn sibling(&self, program: &Path) -> Scontrol {
        Scontrol {
            end: self.end,
            ..Scontrol::new(program, self.timeout)
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

    /// The same, for a Slurm whose version is already known (tests, and
    /// programs that were told it).
    pub fn with_version(program: &Path, timeout: Duration, version: SlurmVersion) -> Self {
        let scontrol = Self::new(program, timeout);
        let _ = scontrol.version.set(Some(version));
        scontrol
    }

    /// Slurm's version, from `scontrol --version` on first use; None (logged
    /// once) when it cannot be read, and the programs then use the forms of
    /// commands that every version accepts.
    pub fn version(&self) -> Option<SlurmVersion> {
        *self.version.get_or_init(|| {
            let detected = self
                .run_once(&["--version".to_string()])
                .map_err(|error| error.to_string())
                .and_then(|text| {
                    SlurmVersion::from_scontrol_output(&text).map_err(|error| error.to_string())
                });
            match detected {
                Ok(version) => {
                    tracing::debug!("Slurm version {version}");
                    Some(version)
                }
                Err(error) => {
                    tracing::warn!(
                        "Cannot tell Slurm's version ({error}): using the commands every version accepts"
                    );
                    None
                }
            }
        })
    }

    pub fn runs(&self) -> usize {
        self.runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `scontrol <args>` and returns its stdout; a non-zero exit, a
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
        tracing::debug!("Command scontrol: {command}");
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

    /// Tells Slurm where nodes are: one `scontrol update` per 100 nodes, names
    /// sorted and the address lists aligned with them.
    pub fn update_addresses(&self, nodes: &[NodeAddress]) -> Vec<(Vec<NodeAddress>, SlurmError)> {
        let mut sorted = nodes.to_vec();
        sorted.sort();
        let mut failures = Vec::new();
        for batch in sorted.chunks(UPDATE_BATCH) {
            let join =
                |f: fn(&NodeAddress) -> &str| batch.iter().map(f).collect::<Vec<_>>().join(",");
            let args = vec![
                "update".to_string(),
                format!("nodename={}", join(|n| &n.node)),
                format!("nodeaddr={}", join(|n| &n.address)),
                format!("nodehostname={}", join(|n| &n.hostname)),
            ];
            if let Err(error) = self.run(&args) {
                failures.push((batch.to_vec(), error));
            }
        }
        failures
    }

    /// Sets the state (and reason) of nodes, one call per 100 nodes. Returns the
    /// nodes of the calls that failed.
    pub fn set_state(
        &self,
        nodes: &[String],
        state: &str,
        reason: Option<&str>,
    ) -> Vec<(Vec<String>, SlurmError)> {
        let mut sorted = nodes.to_vec();
        sorted.sort();
        sorted.dedup();
        let mut failures = Vec::new();
        for batch in sorted.chunks(UPDATE_BATCH) {
            let mut args = vec![
                "update".to_string(),
                format!("nodename={}", hostlist::compress(batch)),
                format!("state={state}"),
            ];
            if let Some(reason) = reason {
                args.push(format!("reason={reason}"));
            }
            if let Err(error) = self.run(&args) {
                failures.push((batch.to_vec(), error));
            }
        }
        failures
    }

    /// Powers nodes down at once, whatever runs on them: `scontrol power down
    /// force` on 24.05 and later, `state=POWER_DOWN_FORCE` before.
    pub fn power_down_force(&self, nodes: &[String]) -> Vec<(Vec<String>, SlurmError)> {
        if !self.version().is_some_and(|v| v.has_power_command()) {
            return self.set_state(nodes, "POWER_DOWN_FORCE", None);
        }
        let mut sorted = nodes.to_vec();
        sorted.sort();
        sorted.dedup();
        let mut failures = Vec::new();
        for batch in sorted.chunks(UPDATE_BATCH) {
            let args = ["power", "down", "force"]
                .iter()
                .map(|word| word.to_string())
                .chain([hostlist::compress(batch)])
                .collect::<Vec<_>>();
            if let Err(error) = self.run(&args) {
                failures.push((batch.to_vec(), error));
            }
        }
        failures
    }

    /// Sets InstanceId and InstanceType of nodes (Slurm 23.11+; nothing to do
    /// before). From 25.11.6 one call per 100 nodes; before, one `update`
    /// sets the same id on every node it names, so one call per node, up to
    /// `concurrency` at a time, until `deadline`. Returns the nodes not set.
    pub fn set_instances(
        &self,
        nodes: &[NodeInstance],
        concurrency: usize,
        deadline: Instant,
    ) -> Vec<(Vec<String>, SlurmError)> {
        let Some(version) = self.version().filter(|v| v.has_instance_fields()) else {
            return Vec::new();
        };
        let mut sorted = nodes.to_vec();
        sorted.sort();
        let size = if version.batches_instance_ids() {
            UPDATE_BATCH
        } else {
            1
        };
        let batches: Vec<&[NodeInstance]> = sorted.chunks(size).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failures = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..concurrency.clamp(1, 16) {
                scope.spawn(|| {
                    loop {
                        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(batch) = batches.get(index) else {
                            break;
                        };
                        let names = || batch.iter().map(|n| n.node.clone()).collect::<Vec<_>>();
                        let result = if Instant::now() >= deadline {
                            Err(SlurmError::OutOfTime {
                                command: "scontrol update instanceid=…".to_string(),
                            })
                        } else {
                            self.run(&instance_arguments(batch))
                        };
                        if let Err(error) = result {
                            failures
                                .lock()
                                .unwrap_or_else(|poisoned| poisoned.into_inner())
                                .push((names(), error));
                        }
                    }
                });
            }
        });
        failures
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Slurm's `ClusterName`, from `scontrol show config`.
    pub fn cluster_name(&self) -> Result<Option<String>, SlurmError> {
        let text = self.run(&["show".to_string(), "config".to_string()])?;
        Ok(text.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "ClusterName").then(|| value.trim().to_string())
        }))
    }
}

fn instance_arguments(batch: &[NodeInstance]) -> Vec<String> {
    let join = |f: fn(&NodeInstance) -> &str| batch.iter().map(f).collect::<Vec<_>>().join(",");
    let mut args = vec![
        "update".to_string(),
        format!("nodename={}", join(|n| &n.node)),
        format!("instanceid={}", join(|n| &n.instance_id)),
    ];
    if batch.iter().all(|n| !n.instance_type.is_empty()) {
        args.push(format!("instancetype={}", join(|n| &n.instance_type)));
    }
    args
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
        let scontrol = Scontrol::new(&program, Duration::from_secs(30)).until(end);
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
