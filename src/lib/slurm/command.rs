use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{NodeAddress, UPDATE_BATCH};
use crate::hostlist;

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
    runs: std::sync::atomic::AtomicUsize,
}

impl Scontrol {
    pub fn new(program: &Path, timeout: Duration) -> Self {
        Self {
            program: program.to_path_buf(),
            timeout,
            runs: Default::default(),
        }
    }

    pub fn runs(&self) -> usize {
        self.runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `scontrol <args>` and returns its stdout; a non-zero exit, a
    /// timeout or an error line on stderr of a failed run is an error.
    pub fn run(&self, args: &[String]) -> Result<String, SlurmError> {
        self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let command = format!("{} {}", self.program.display(), args.join(" "));
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
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(SlurmError::Timeout {
                        command,
                        timeout: self.timeout,
                    });
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

    /// Slurm's `ClusterName`, from `scontrol show config`.
    pub fn cluster_name(&self) -> Result<Option<String>, SlurmError> {
        let text = self.run(&["show".to_string(), "config".to_string()])?;
        Ok(text.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "ClusterName").then(|| value.trim().to_string())
        }))
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
