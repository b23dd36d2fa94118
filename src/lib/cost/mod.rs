//! What the instances cost, and for whom: each instance's time from its
//! launch to its termination in the event log, with what the launch event
//! says of it (type, purchasing option, node, job, user, account). An
//! instance the log does not account for is taken from EC2 and said to be.

pub mod report;

use std::collections::BTreeMap;

use crate::ec2::Instance;
use crate::events::{Event, Kind};

pub use report::{By, Report, Row, render_csv, report};

/// Where a start or an end of an instance's time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    EventLog,
    /// EC2's `LaunchTime`: the launch is not in the event log.
    Ec2LaunchTime,
    /// Still running: counted up to now.
    Running,
    /// Neither terminated in the log nor running in EC2: counted up to now.
    Missing,
}

/// One instance's time, and whom it served.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    pub instance: String,
    pub instance_type: Option<String>,
    /// `on_demand` or `spot`.
    pub purchasing_option: Option<String>,
    pub node: Option<String>,
    pub job: Option<u64>,
    pub user: Option<String>,
    pub account: Option<String>,
    /// Milliseconds since the epoch.
    pub start: i64,
    pub end: i64,
    pub start_from: Source,
    pub end_from: Source,
}

/// Seconds since the epoch in milliseconds, from an event's RFC 3339 time.
pub fn event_millis(time: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(time)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// What the event log says of each instance, in the order launched: the
/// first launch names it, the first termination after that ends it.
#[derive(Debug, Default)]
pub struct Ledger {
    usages: Vec<Usage>,
    by_instance: BTreeMap<String, usize>,
}

impl Ledger {
    pub fn add(&mut self, event: &Event) {
        let (Some(instance), Some(time)) = (&event.instance, event_millis(&event.time)) else {
            return;
        };
        match event.event {
            Kind::Launch if !self.by_instance.contains_key(instance) => {
                self.by_instance.insert(instance.clone(), self.usages.len());
                self.usages.push(Usage {
                    instance: instance.clone(),
                    instance_type: event.instance_type.clone(),
                    purchasing_option: event.purchasing_option.clone(),
                    node: event.node.clone(),
                    job: event.job_ids.first().copied(),
                    user: event.user.clone(),
                    account: event.account.clone(),
                    start: time,
                    end: i64::MAX,
                    start_from: Source::EventLog,
                    end_from: Source::Missing,
                });
            }
            Kind::Termination => {
                if let Some(usage) = self.by_instance.get(instance).map(|i| &mut self.usages[*i])
                    && usage.end_from == Source::Missing
                {
                    usage.end = time.max(usage.start);
                    usage.end_from = Source::EventLog;
                }
            }
            _ => {}
        }
    }

    /// The usages, completed with EC2's view: a live instance the log never
    /// launched counts from its `LaunchTime`, one the log never ended counts
    /// up to `now` (running, or missing when EC2 no longer lists it live).
    pub fn usages(mut self, live: &[Instance], now_millis: i64) -> Vec<Usage> {
        let live_ids: BTreeMap<&str, &Instance> = live.iter().map(|i| (i.id.as_str(), i)).collect();
        for usage in self
            .usages
            .iter_mut()
            .filter(|u| u.end_from == Source::Missing)
        {
            usage.end = now_millis.max(usage.start);
            if let Some(instance) = live_ids.get(usage.instance.as_str()) {
                usage.end_from = Source::Running;
                usage.instance_type = usage
                    .instance_type
                    .take()
                    .or(instance.instance_type.clone());
            }
        }
        for instance in live
            .iter()
            .filter(|i| !self.by_instance.contains_key(&i.id))
        {
            self.usages.push(from_ec2(instance, now_millis));
        }
        self.usages
    }
}

/// A live instance the event log does not have: what its tags say.
fn from_ec2(instance: &Instance, now_millis: i64) -> Usage {
    let node = instance.node_name();
    let purchasing = match instance.lifecycle.as_deref() {
        Some("spot") => Some("spot".to_string()),
        Some(_) => None,
        None => Some("on_demand".to_string()),
    };
    let tag = |key: &str| instance.tag(key).map(str::to_string);
    let start = instance
        .launch_time
        .map_or(now_millis, |t| t.saturating_mul(1000))
        .min(now_millis);
    Usage {
        instance: instance.id.clone(),
        instance_type: instance.instance_type.clone(),
        purchasing_option: purchasing,
        node,
        job: tag(crate::ec2::JOB_ID_TAG).and_then(|id| id.parse().ok()),
        user: tag(crate::ec2::USER_TAG),
        account: tag(crate::ec2::ACCOUNT_TAG),
        start,
        end: now_millis,
        start_from: Source::Ec2LaunchTime,
        end_from: Source::Running,
    }
}
