//! `EventLogFile`: one JSON object a line for each thing the programs do to
//! a node or an instance, for a log pipeline or a dashboard. The text log
//! stays as it is; this one has stable field names (README, "Events").
//! [`read`] gives them back, for `slurm-ec2 metrics` and `slurm-ec2 cost`.

mod read;

pub use read::{MAX_EVENT_LOG_BYTES, ReadEventsError, ReadSummary, read_events};

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// What happened. The names are part of the file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// resume served a node: its instance and address are in Slurm.
    Launch,
    /// resume could not serve a node; `code` says why.
    Failure,
    /// An instance was terminated; `why` says which reason.
    Termination,
    /// change-state set a node's state in Slurm.
    StateRepair,
    /// change-state holds a node group after insufficient capacity.
    CapacityHold,
    /// change-state holds a node group whose instances never registered.
    BootFailureHold,
    /// `slurm-ec2 watch` acted on EC2's notice to its instance (`code`):
    /// drained the node, signalled or requeued its jobs (`detail`).
    Notice,
    /// One run's EC2 calls of one action (`code`) that EC2 throttled
    /// (`throttled`) or that were tried again (`retried`); written at the
    /// run's end, only when either is not zero.
    Retries,
    /// suspend stopped a node's instance and put it in its group's warm
    /// pool instead of terminating it; its time in the cost report ends.
    Pooled,
}

/// Why an instance was terminated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// Slurm powered the node down (SuspendProgram, ResumeFailProgram).
    Suspend,
    /// Ours, but no node's: its Name is no node of this cluster, or it has none.
    Orphan,
    /// Its node is powered down, or no node of the configuration.
    Leak,
    /// Another instance serves its node.
    Duplicate,
    /// Launched by a resume that could not give it to a node.
    Unserved,
    /// `slurm-ec2 teardown`: the cluster ends.
    Teardown,
    /// change-state trimmed a warm pool: too old, from an older launch
    /// template or image, beyond the pool's size, or running without a node.
    Pool,
}

impl Why {
    /// As the file writes it (the metrics' `why` label too).
    pub fn name(self) -> &'static str {
        match self {
            Why::Suspend => "suspend",
            Why::Orphan => "orphan",
            Why::Leak => "leak",
            Why::Duplicate => "duplicate",
            Why::Unserved => "unserved",
            Why::Teardown => "teardown",
            Why::Pool => "pool",
        }
    }
}

/// One line of the file. The fields after `detail` are written only when
/// they are known (a launch: what was launched and for whom).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub program: String,
    pub pid: u32,
    pub event: Kind,
    pub node: Option<String>,
    pub instance: Option<String>,
    pub job_ids: Vec<u64>,
    /// The EC2 error code of a failure, or the state set by a repair.
    pub code: Option<String>,
    pub why: Option<Why>,
    /// Free text: what was done, or the reason given to Slurm.
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// `on_demand` or `spot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchasing_option: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retried: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot open EventLogFile {0}")]
pub struct EventLogError(#[source] crate::files::SharedFileError);

/// Where the events of one program run go: a file opened for appending, or
/// nowhere when `EventLogFile` is not set.
#[derive(Debug)]
pub struct EventLog {
    file: Option<Mutex<std::fs::File>>,
    program: String,
    pid: u32,
}

/// What an event is about; the rest of [`Event`] is filled in by the log.
#[derive(Debug, Clone, Default)]
pub struct About<'a> {
    pub node: Option<&'a str>,
    pub instance: Option<&'a str>,
    pub job_ids: &'a [u64],
    pub code: Option<&'a str>,
    pub why: Option<Why>,
    pub detail: Option<&'a str>,
    pub instance_type: Option<&'a str>,
    pub purchasing_option: Option<&'a str>,
    pub user: Option<&'a str>,
    pub account: Option<&'a str>,
    pub throttled: Option<u64>,
    pub retried: Option<u64>,
}

impl EventLog {
    /// No file: events are dropped.
    pub fn disabled() -> EventLog {
        EventLog {
            file: None,
            program: String::new(),
            pid: 0,
        }
    }

    /// Appends to `path`, created group-writable (mode 0660: resume and
    /// suspend as SlurmUser and change-state as root all write it) when
    /// missing, through [`crate::files::open_shared`].
    pub fn open(
        path: &Path,
        program: &str,
        program_user: Option<u32>,
    ) -> Result<EventLog, EventLogError> {
        let file =
            crate::files::open_shared(path, crate::files::Access::Append, 0o660, program_user)
                .map_err(EventLogError)?;
        Ok(EventLog {
            file: Some(Mutex::new(file)),
            program: program.to_string(),
            pid: std::process::id(),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.file.is_some()
    }

    /// Writes one event as one line, in one `write` (lines of concurrent
    /// runs never interleave). A failure to write is logged, never fatal.
    pub fn record(&self, event: Kind, about: About) {
        let Some(file) = &self.file else { return };
        let line = Event {
            time: chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string(),
            program: self.program.clone(),
            pid: self.pid,
            event,
            node: about.node.map(str::to_string),
            instance: about.instance.map(str::to_string),
            job_ids: about.job_ids.to_vec(),
            code: about.code.map(str::to_string),
            why: about.why,
            detail: about.detail.map(str::to_string),
            instance_type: about.instance_type.map(str::to_string),
            purchasing_option: about.purchasing_option.map(str::to_string),
            user: about.user.map(str::to_string),
            account: about.account.map(str::to_string),
            throttled: about.throttled,
            retried: about.retried,
        };
        let mut text = match serde_json::to_string(&line) {
            Ok(text) => text,
            Err(error) => {
                tracing::warn!("Cannot write an event: {error}");
                return;
            }
        };
        text.push('\n');
        let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Err(error) = file.write_all(text.as_bytes()) {
            tracing::warn!("Cannot write to EventLogFile: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_json_object_a_line_with_stable_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let log = EventLog::open(&path, "resume", None).unwrap();
        log.record(
            Kind::Launch,
            About {
                node: Some("aws-a-0"),
                instance: Some("i-1"),
                job_ids: &[7],
                ..Default::default()
            },
        );
        log.record(
            Kind::Termination,
            About {
                instance: Some("i-2"),
                why: Some(Why::Orphan),
                ..Default::default()
            },
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "launch");
        assert_eq!(lines[0]["program"], "resume");
        assert_eq!(lines[0]["node"], "aws-a-0");
        assert_eq!(lines[0]["job_ids"], serde_json::json!([7]));
        assert_eq!(lines[1]["event"], "termination");
        assert_eq!(lines[1]["why"], "orphan");
        assert_eq!(lines[1]["node"], serde_json::Value::Null);
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[0]["pid"], std::process::id());
    }

    #[test]
    fn a_why_is_named_as_the_file_writes_it() {
        let all = [
            Why::Suspend,
            Why::Orphan,
            Why::Leak,
            Why::Duplicate,
            Why::Unserved,
            Why::Teardown,
        ];
        for why in all {
            assert_eq!(serde_json::to_value(why).unwrap(), why.name());
        }
    }

    #[test]
    fn refuses_what_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(EventLog::open(dir.path(), "resume", None).is_err());
        assert!(!EventLog::disabled().is_enabled());
    }
}
