//! One run of a program that works with Slurm and EC2, set up in one place:
//! `scontrol` bounded by the run's Slurm budget, the cluster name that scopes
//! every EC2 search, the deadline of its EC2 work, the EC2 handles with the
//! run's call counter, and the async runtime that EC2's calls run on.
//!
//! Slurm commands run outside the async EC2 work, between its `block_on`s.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use super::Budget;
use crate::budget::Deadline;
use crate::cluster::{self, ClusterError};
use crate::config::{ClusterName, Config};
use crate::ec2::{CallCounter, Clients, NoCertificates};
use crate::slurm::Scontrol;

/// Why a run could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    NoCertificates(#[from] NoCertificates),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

pub struct Run<'a> {
    pub config: &'a Config,
    /// When the program started, for the summary line.
    pub started: Instant,
    pub scontrol: Scontrol,
    pub cluster: ClusterName,
    /// The end of the run's EC2 work: pacing, calls and retries.
    pub deadline: Deadline,
    pub calls: Arc<CallCounter>,
    pub clients: Clients,
    runtime: tokio::runtime::Runtime,
}

impl<'a> Run<'a> {
    /// The run of a program that started at `started`, within `budget`.
    pub fn begin(
        config: &'a Config,
        started: Instant,
        budget: Budget,
    ) -> Result<Run<'a>, RunError> {
        let deadline = Deadline::after(budget.ec2.saturating_sub(started.elapsed()));
        crate::ec2::check_trust_store()?;
        let scontrol = Scontrol::new(&config.scontrol(), config.settings.scontrol_timeout)
            .until(started + budget.slurm);
        let cluster = cluster::cluster_name(config, &scontrol)?;
        let runtime = crate::runtime::runtime().map_err(RunError::Runtime)?;
        let calls = Arc::new(CallCounter::default());
        let clients = Clients::new(&config.settings, calls.clone(), deadline);
        Ok(Run {
            config,
            started,
            scontrol,
            cluster,
            deadline,
            calls,
            clients,
            runtime,
        })
    }

    /// Runs the run's EC2 work to its end.
    pub fn block_on<F: Future>(&self, work: F) -> F::Output {
        self.runtime.block_on(work)
    }

    /// `EC2 calls: …; scontrol calls: …; 1.23 s`, the end of every summary line.
    pub fn tally(&self) -> String {
        tally(&self.calls, self.scontrol.runs(), self.started)
    }

    /// One `retries` event per EC2 action that EC2 throttled or that was
    /// tried again in this run: the metrics' counters of both.
    pub fn record_trouble(&self, events: &crate::events::EventLog) {
        for (action, trouble) in self.calls.trouble() {
            let about = crate::events::About {
                code: Some(action),
                throttled: Some(trouble.throttled),
                retried: Some(trouble.retried),
                ..Default::default()
            };
            events.record(crate::events::Kind::Retries, about);
        }
    }
}

/// The end of a summary line: EC2 calls by action, scontrol calls, seconds.
pub fn tally(calls: &CallCounter, scontrol_runs: usize, started: Instant) -> String {
    format!(
        "EC2 calls: {}; scontrol calls: {scontrol_runs}; {:.2} s",
        calls.summary(),
        started.elapsed().as_secs_f64()
    )
}
