//! `slurm-ec2 watch`: on a compute node, beside slurmd, reads what EC2
//! announces to this instance (every `--interval`, 5 s as AWS advises) and
//! acts before the instance dies:
//!
//! - an interruption (a Spot notice, or a scheduled stop or retirement due
//!   soon): the node DRAIN at once (no new job lands), its jobs sent
//!   `InterruptionSignal`, and `InterruptionRequeueSeconds` after the notice
//!   (or 10 s before the instance goes, whichever is first) its jobs requeued;
//! - a rebalance recommendation: the node DRAIN, unless its node group says
//!   `"RebalanceRecommendation": "ignore"`.
//!
//! Its memory is the node's reason in Slurm: `(Code:<notice>)…` says the
//! drain was done, `; jobs sent SIG…` and `; jobs requeued` the rest, so a
//! restarted watcher does nothing twice. Nothing is said or done while EC2
//! has nothing to say.

use std::time::Duration;

use super::Outcome;
use crate::config::{Config, OnRebalance, Settings};
use crate::events::{About, EventLog, Kind};
use crate::imds::InstanceMetadata;
use crate::notices::{self, Notice};
use crate::slurm::reason::{self as reasons, local_stamp, reason_time};
use crate::slurm::{Flag, NodeInfo, Scontrol, SlurmError};

const SIGNALLED: &str = "; jobs sent SIG";
const REQUEUED: &str = "; jobs requeued";
/// Requeue no later than this long before the instance goes.
const LAST_MOMENT: i64 = 10;

/// What `slurm-ec2 watch` is asked beyond its configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// One look, then exit.
    pub once: bool,
    pub interval: Duration,
    /// How long to wait for this instance's node name at start.
    pub name_timeout: Duration,
}

impl Options {
    /// Forever (or `once`), every `interval` seconds; the node name within 5 minutes.
    pub fn new(once: bool, interval: u64) -> Options {
        Options {
            once,
            interval: Duration::from_secs(interval),
            name_timeout: Duration::from_secs(300),
        }
    }
}

/// One thing to do for a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    Drain { reason: String },
    Signal { signal: String, reason: String },
    Requeue { reason: String },
}

impl Act {
    fn name(&self) -> &'static str {
        match self {
            Act::Drain { .. } => "drain",
            Act::Signal { .. } => "signal",
            Act::Requeue { .. } => "requeue",
        }
    }
}

/// What a notice asks of a node in the state Slurm holds, at `now`.
pub fn acts(notice: &Notice, node: &NodeInfo, settings: &Settings, now: i64) -> Vec<Act> {
    let reason = node.reason.as_deref().unwrap_or_default();
    let ours = node.state.has(Flag::Drain) && reasons::code(reason) == Some(notice.code());
    let base = notice_reason(notice);
    let Notice::Interruption { at, .. } = notice else {
        return match ours {
            true => Vec::new(),
            false => vec![Act::Drain { reason: base }],
        };
    };
    let mut acts = Vec::new();
    if !ours {
        acts.push(Act::Drain {
            reason: base.clone(),
        });
    }
    let signal = &settings.interruption_signal;
    let signalled = format!("{base}{SIGNALLED}{signal}");
    if !(ours && reason.contains(SIGNALLED)) {
        acts.push(Act::Signal {
            signal: signal.clone(),
            reason: signalled.clone(),
        });
    }
    let since = reason_time(reason).filter(|_| ours).unwrap_or(now);
    let requeue_after = i64::try_from(settings.interruption_requeue.as_secs()).unwrap_or(0);
    let due = now >= since.saturating_add(requeue_after) || now >= at - LAST_MOMENT;
    if due && !(ours && reason.contains(REQUEUED)) {
        acts.push(Act::Requeue {
            reason: format!("{signalled}{REQUEUED}"),
        });
    }
    acts
}

/// The reason a notice drains a node with.
fn notice_reason(notice: &Notice) -> String {
    match notice {
        Notice::Interruption { code, action, at } => {
            format!(
                "(Code:{code})EC2 will {action} its instance at {}",
                local_stamp(*at)
            )
        }
        Notice::Rebalance { at } => format!(
            "(Code:{})EC2 recommends moving off its instance since {}",
            notices::REBALANCE,
            local_stamp(*at)
        ),
    }
}

/// Slurm, as the watcher uses it: this node, its jobs.
struct Node<'a> {
    name: String,
    scontrol: Scontrol,
    scancel: crate::slurm::SlurmCommand,
    squeue: crate::slurm::SlurmCommand,
    events: &'a EventLog,
}

impl Node<'_> {
    fn read(&self) -> Result<Option<NodeInfo>, SlurmError> {
        let args = ["show", "node", &self.name, "-o"].map(String::from);
        let output = self.scontrol.run(&args)?;
        let nodes = crate::slurm::parse_nodes(&output);
        Ok(nodes.into_iter().find(|n| n.name == self.name))
    }

    fn drain(&self, reason: &str) -> Result<(), SlurmError> {
        let nodes = [self.name.clone()];
        match self.scontrol.set_state(&nodes, "DRAIN", Some(reason)).pop() {
            Some((_, error)) => Err(error),
            None => Ok(()),
        }
    }

    /// The batch scripts and every step of the jobs on this node.
    fn signal(&self, signal: &str) -> Result<(), SlurmError> {
        let args = [
            format!("--signal={signal}"),
            "--full".into(),
            format!("--nodelist={}", self.name),
        ];
        self.scancel.run(&args).map(|_| ())
    }

    /// Requeues each job on the node; a job that cannot be requeued
    /// (`--no-requeue`) is said and left to Slurm. Returns the jobs requeued.
    fn requeue(&self, code: &str) -> Result<Vec<String>, SlurmError> {
        let args = ["--noheader", "--nodelist", &self.name, "--format=%i"].map(String::from);
        let jobs: Vec<String> = self
            .squeue
            .run(&args)?
            .split_whitespace()
            .filter(|id| id.len() <= 32)
            .map(str::to_string)
            .collect();
        let mut requeued = Vec::new();
        for job in jobs {
            match self.scontrol.run(&["requeue".to_string(), job.clone()]) {
                Ok(_) => requeued.push(job),
                Err(error) => tracing::warn!(
                    "{}: job {job} not requeued ({code}): {error}; Slurm ends it when the instance goes",
                    self.name
                ),
            }
        }
        Ok(requeued)
    }

    fn act(&self, notice: &Notice, act: &Act) -> Result<(), SlurmError> {
        let code = notice.code();
        let (what, reason) = match act {
            Act::Drain { reason } => {
                self.drain(reason)?;
                ("drained".to_string(), reason)
            }
            Act::Signal { signal, reason } => {
                self.signal(signal)?;
                self.drain(reason)?;
                (format!("jobs sent SIG{signal}"), reason)
            }
            Act::Requeue { reason } => {
                let jobs = self.requeue(code)?;
                self.drain(reason)?;
                (format!("jobs requeued: {}", jobs.join(",")), reason)
            }
        };
        tracing::info!("{}: {what} ({reason})", self.name);
        let about = About {
            node: Some(&self.name),
            code: Some(code),
            detail: Some(&what),
            ..Default::default()
        };
        self.events.record(Kind::Notice, about);
        Ok(())
    }
}

/// The program: this instance's node name, then a look every interval.
pub fn run(config: Option<&Config>, options: &Options) -> Outcome {
    let settings = config.map(|c| c.settings.clone()).unwrap_or_default();
    let runtime = match crate::runtime::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("Cannot start the async runtime: {error}");
            return Outcome::Failed;
        }
    };
    let metadata = InstanceMetadata::new();
    let lookup = super::get_nodename::lookup(&metadata, &settings, options.name_timeout);
    let name = match runtime.block_on(lookup) {
        Ok((name, _)) => name,
        Err(error) => {
            tracing::error!("No node name for this instance: {error}");
            return Outcome::Failed;
        }
    };
    let on_rebalance = config
        .and_then(|c| crate::names::parse(c, &name).ok())
        .map_or(OnRebalance::Drain, |(_, group)| group.on_rebalance);
    let events = event_log(config);
    let bin = config.map_or(std::path::PathBuf::from("/usr/bin"), |c| {
        c.slurm_bin.clone()
    });
    let scontrol = Scontrol::new(&bin.join("scontrol"), settings.scontrol_timeout);
    let node = Node {
        scancel: scontrol.sibling(&bin.join("scancel")),
        squeue: scontrol.sibling(&bin.join("squeue")),
        scontrol,
        name,
        events: &events,
    };
    tracing::info!("Watching EC2's notices for node {}", node.name);
    let mut unreachable = false;
    let mut handled = None;
    loop {
        let failed = match runtime.block_on(metadata.notices()) {
            Ok(raw) => {
                if std::mem::take(&mut unreachable) {
                    tracing::info!("Instance metadata answers again");
                }
                look(&node, &raw, &settings, on_rebalance, &mut handled)
            }
            Err(error) => {
                if !std::mem::replace(&mut unreachable, true) {
                    tracing::warn!("{error}; trying again every {:?}", options.interval);
                }
                true
            }
        };
        if options.once {
            return if failed {
                Outcome::Failed
            } else {
                Outcome::Done
            };
        }
        std::thread::sleep(options.interval);
    }
}

/// One look: the notices, and what they ask of the node. `handled` is the
/// notice this process has done all it asks for: Slurm is not asked again
/// while it stays the notice. True when something failed.
fn look(
    node: &Node,
    raw: &crate::imds::RawNotices,
    settings: &Settings,
    on_rebalance: OnRebalance,
    handled: &mut Option<Notice>,
) -> bool {
    let now = super::epoch_seconds();
    let (found, problems) = notices::read(raw, now);
    for problem in problems {
        tracing::warn!("Not a notice: {problem}");
    }
    let found: Vec<Notice> = found
        .into_iter()
        .filter(|n| !matches!(n, Notice::Rebalance { .. }) || on_rebalance == OnRebalance::Drain)
        .collect();
    let Some(notice) = found.first().filter(|n| handled.as_ref() != Some(*n)) else {
        return false;
    };
    let info = match node.read() {
        Ok(Some(info)) => info,
        Ok(None) => {
            tracing::error!("Slurm does not list node {}", node.name);
            return true;
        }
        Err(error) => {
            tracing::error!("Cannot read node {} from Slurm: {error}", node.name);
            return true;
        }
    };
    let acts = acts(notice, &info, settings, now);
    let reason = info.reason.as_deref().unwrap_or_default();
    let last = match notice {
        Notice::Rebalance { .. } => acts.is_empty() || matches!(acts[..], [Act::Drain { .. }]),
        Notice::Interruption { .. } => {
            (acts.is_empty() && reason.contains(REQUEUED))
                || matches!(acts.last(), Some(Act::Requeue { .. }))
        }
    };
    for act in &acts {
        if let Err(error) = node.act(notice, act) {
            tracing::error!("{}: the {} failed: {error}", node.name, act.name());
            return true;
        }
    }
    if last {
        *handled = Some(notice.clone());
    }
    false
}

/// `EventLogFile` where this node has it; none (said once) where it cannot be opened.
fn event_log(config: Option<&Config>) -> EventLog {
    let Some(path) = config.and_then(|c| c.event_log_file.as_ref()) else {
        return EventLog::disabled();
    };
    EventLog::open(path, "watch", None).unwrap_or_else(|error| {
        tracing::warn!("{error}: no events from this node");
        EventLog::disabled()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::NodeState;

    const NOW: i64 = 1_800_000_000;

    fn node(state: &str, reason: Option<String>) -> NodeInfo {
        NodeInfo {
            name: "aws-spot-0".into(),
            state: NodeState::parse(state),
            state_text: state.into(),
            address: None,
            reason,
            instance_id: None,
            instance_type: None,
        }
    }

    fn spot(at: i64) -> Notice {
        Notice::Interruption {
            code: notices::SPOT_INTERRUPTION.into(),
            action: "terminate".into(),
            at,
        }
    }

    fn stamped(reason: &str, seconds_ago: i64) -> Option<String> {
        let stamp = local_stamp(NOW - seconds_ago);
        Some(format!("{reason} [root@{stamp}]"))
    }

    #[test]
    fn a_spot_notice_drains_signals_then_requeues_once_each() {
        let settings = Settings::default();
        let notice = spot(NOW + 120);
        let first = acts(&notice, &node("ALLOCATED+CLOUD", None), &settings, NOW);
        let base = notice_reason(&notice);
        let signalled = format!("{base}; jobs sent SIGTERM");
        assert_eq!(
            first,
            [
                Act::Drain {
                    reason: base.clone()
                },
                Act::Signal {
                    signal: "TERM".into(),
                    reason: signalled.clone()
                }
            ]
        );
        // A restarted watcher finds it drained and signalled: nothing until the requeue.
        let drained = node("ALLOCATED+CLOUD+DRAIN", stamped(&signalled, 30));
        assert!(acts(&notice, &drained, &settings, NOW).is_empty());
        let due = node("ALLOCATED+CLOUD+DRAIN", stamped(&signalled, 60));
        let requeued = format!("{signalled}; jobs requeued");
        assert_eq!(
            acts(&notice, &due, &settings, NOW),
            [Act::Requeue {
                reason: requeued.clone()
            }]
        );
        let done = node("IDLE+CLOUD+DRAIN", stamped(&requeued, 100));
        assert!(acts(&notice, &done, &settings, NOW).is_empty());
    }

    #[test]
    fn the_requeue_comes_before_the_instance_goes_whatever_the_setting() {
        let settings = Settings {
            interruption_requeue: Duration::from_secs(110),
            ..Settings::default()
        };
        let notice = spot(NOW + 5);
        let signalled = format!("{}; jobs sent SIGTERM", notice_reason(&notice));
        let drained = node("ALLOCATED+CLOUD+DRAIN", stamped(&signalled, 20));
        assert!(matches!(
            acts(&notice, &drained, &settings, NOW).as_slice(),
            [Act::Requeue { .. }]
        ));
    }

    #[test]
    fn a_rebalance_drains_once_and_another_reason_is_not_ours() {
        let settings = Settings::default();
        let notice = Notice::Rebalance { at: NOW - 5 };
        let idle = node("IDLE+CLOUD", None);
        assert!(matches!(
            acts(&notice, &idle, &settings, NOW).as_slice(),
            [Act::Drain { .. }]
        ));
        let ours = node("IDLE+CLOUD+DRAIN", stamped(&notice_reason(&notice), 5));
        assert!(acts(&notice, &ours, &settings, NOW).is_empty());
        // Drained by an administrator for something else: the notice still drains (its reason).
        let other = node("IDLE+CLOUD+DRAIN", stamped("disk check", 5));
        assert_eq!(acts(&notice, &other, &settings, NOW).len(), 1);
    }
}
