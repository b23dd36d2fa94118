//! `scontrol`: what the programs ask of slurmctld, in the form the detected
//! version supports, batched.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::runner::{SlurmCommand, SlurmError};
use super::{NodeAddress, SlurmVersion, UPDATE_BATCH};
use crate::hostlist;

/// The instance behind a node, for Slurm's InstanceId and InstanceType (23.11+).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NodeInstance {
    pub node: String,
    pub instance_id: String,
    pub instance_type: String,
}

/// `scontrol` from `SlurmBinPath`, and the Slurm version it reports.
#[derive(Debug)]
pub struct Scontrol {
    command: SlurmCommand,
    version: OnceLock<Option<SlurmVersion>>,
}

impl Scontrol {
    pub fn new(program: &Path, timeout: Duration) -> Self {
        Scontrol {
            command: SlurmCommand::new(program, timeout),
            version: OnceLock::new(),
        }
    }

    /// The same, for a run that must be over by `end`: each command's timeout
    /// is cut to what is left, and none is started or repeated after it.
    pub fn until(mut self, end: Instant) -> Self {
        self.command = self.command.until(end);
        self
    }

    /// Another of Slurm's programs (`squeue`), with the same timeout and end.
    pub fn sibling(&self, program: &Path) -> SlurmCommand {
        self.command.sibling(program)
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
        *self
            .version
            .get_or_init(|| match self.command.read_version() {
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
            })
    }

    pub fn runs(&self) -> usize {
        self.command.runs()
    }

    /// `scontrol <args>`: see [`SlurmCommand::run`].
    pub fn run(&self, args: &[String]) -> Result<String, SlurmError> {
        self.command.run(args)
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
