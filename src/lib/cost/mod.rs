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
    /// Terminated in the log, but launched neither in the log nor known to
    /// EC2 any more: its hours are unknown, and not counted.
    Unknown,
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
    /// Terminations of instances the log never launched: their time and node.
    unlaunched: BTreeMap<String, (i64, Option<String>)>,
}

impl Ledger {
    /// Whether the instance's latest time has not ended yet; None when the
    /// log never launched it.
    fn is_open(&self, instance: &str) -> Option<bool> {
        let at = *self.by_instance.get(instance)?;
        Some(self.usages[at].end_from == Source::Missing)
    }

    pub fn add(&mut self, event: &Event) {
        let (Some(instance), Some(time)) = (&event.instance, event_millis(&event.time)) else {
            return;
        };
        match event.event {
            // A launch starts the instance's time; a start from the warm pool
            // (a launch of an instance whose time ended) starts another.
            Kind::Launch if self.is_open(instance) != Some(true) => {
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
            Kind::Termination | Kind::Pooled => match self.by_instance.get(instance) {
                Some(at) => {
                    let usage = &mut self.usages[*at];
                    if usage.end_from == Source::Missing {
                        usage.end = time.max(usage.start);
                        usage.end_from = Source::EventLog;
                    }
                }
                None => {
                    let node = event.node.clone();
                    self.unlaunched
                        .entry(instance.clone())
                        .or_insert((time, node));
                }
            },
            _ => {}
        }
    }

    /// The usages, completed with EC2's view of this cluster's instances
    /// (`found`, in any state): an instance the log never launched counts
    /// from its `LaunchTime`, one the log never ended counts up to `now`
    /// (running, or missing when EC2 no longer lists it live); one the log
    /// only ended and EC2 no longer knows is listed, with no hours.
    pub fn usages(mut self, found: &[Instance], now_millis: i64) -> Vec<Usage> {
        let known: BTreeMap<&str, &Instance> = found.iter().map(|i| (i.id.as_str(), i)).collect();
        for (id, (ended, node)) in std::mem::take(&mut self.unlaunched) {
            let mut usage = match known.get(id.as_str()) {
                Some(instance) => from_ec2(instance, now_millis),
                None => Usage::unknown(id, ended),
            };
            usage.end = ended.max(usage.start);
            usage.end_from = match usage.start_from {
                Source::Unknown => Source::Unknown,
                _ => Source::EventLog,
            };
            usage.node = usage.node.or(node);
            self.by_instance
                .insert(usage.instance.clone(), self.usages.len());
            self.usages.push(usage);
        }
        let live: BTreeMap<&str, &Instance> = found
            .iter()
            .filter(|i| i.is_live())
            .map(|i| (i.id.as_str(), i))
            .collect();
        for usage in self
            .usages
            .iter_mut()
            .filter(|u| u.end_from == Source::Missing)
        {
            usage.end = now_millis.max(usage.start);
            if let Some(instance) = live.get(usage.instance.as_str()) {
                usage.end_from = Source::Running;
                usage.instance_type = usage
                    .instance_type
                    .take()
                    .or(instance.instance_type.clone());
            }
        }
        for instance in live
            .values()
            .filter(|i| !self.by_instance.contains_key(&i.id))
        {
            self.usages.push(from_ec2(instance, now_millis));
        }
        self.usages
    }
}

impl Usage {
    /// An instance whose launch nobody knows any more.
    fn unknown(instance: String, ended: i64) -> Usage {
        Usage {
            instance,
            instance_type: None,
            purchasing_option: None,
            node: None,
            job: None,
            user: None,
            account: None,
            start: ended,
            end: ended,
            start_from: Source::Unknown,
            end_from: Source::Unknown,
        }
    }
}

/// An instance the event log did not see launched: what EC2 and its tags say.
fn from_ec2(instance: &Instance, now_millis: i64) -> Usage {
    let node = instance.node_name();
    let purchasing = instance.purchasing().map(|p| p.label().to_string());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: Kind, instance: &str, time: &str) -> Event {
        let mut event: Event = serde_json::from_str(&format!(
            r#"{{"time":"{time}","program":"resume","pid":1,"event":"launch","node":"aws-a-0","instance":"{instance}","job_ids":[7],"code":null,"why":null,"detail":null,"instance_type":"c5.large","user":"alice"}}"#
        ))
        .unwrap();
        event.event = kind;
        event
    }

    #[test]
    fn a_pooled_instance_s_time_stops_and_a_start_from_the_pool_begins_another() {
        let mut ledger = Ledger::default();
        ledger.add(&event(Kind::Launch, "i-1", "2026-12-01T10:00:00Z"));
        ledger.add(&event(Kind::Pooled, "i-1", "2026-12-01T11:00:00Z"));
        ledger.add(&event(Kind::Launch, "i-1", "2026-12-01T12:00:00Z"));
        ledger.add(&event(Kind::Termination, "i-1", "2026-12-01T12:30:00Z"));
        // A termination of the pooled instance later changes nothing.
        ledger.add(&event(Kind::Termination, "i-1", "2026-12-01T13:00:00Z"));
        let usages = ledger.usages(&[], event_millis("2026-12-01T14:00:00Z").unwrap());
        let hours: Vec<f64> = usages
            .iter()
            .map(|u| (u.end - u.start) as f64 / 3_600_000.0)
            .collect();
        assert_eq!(hours, [1.0, 0.5], "{usages:#?}");
        assert!(usages.iter().all(|u| u.end_from == Source::EventLog));
    }

    fn instance(id: &str, state: &str, launched: i64) -> Instance {
        Instance {
            id: id.into(),
            state: crate::ec2::InstanceState::parse(state),
            address: None,
            private_dns_name: None,
            tags: vec![(crate::ec2::USER_TAG.into(), "bob".into())],
            launch_time: Some(launched),
            instance_type: Some("m5.large".into()),
            availability_zone: None,
            lifecycle: Some("spot".into()),
            reservation_id: None,
            launch_index: None,
            image_id: None,
        }
    }

    #[test]
    fn every_instance_is_counted_and_says_where_its_hours_come_from() {
        let mut ledger = Ledger::default();
        let at = |minute: u32| format!("2026-12-01T00:{minute:02}:00.000Z");
        ledger.add(&event(Kind::Launch, "i-ended", &at(0)));
        ledger.add(&event(Kind::Termination, "i-ended", &at(30)));
        ledger.add(&event(Kind::Launch, "i-running", &at(10)));
        ledger.add(&event(Kind::Launch, "i-lost", &at(10)));
        ledger.add(&event(Kind::Termination, "i-reaped", &at(20)));
        ledger.add(&event(Kind::Termination, "i-forgotten", &at(20)));
        let now = event_millis(&at(50)).unwrap();
        let start = event_millis(&at(0)).unwrap() / 1000;
        let found = [
            instance("i-running", "running", start + 600),
            instance("i-planted", "running", start + 2400),
            instance("i-reaped", "terminated", start + 900),
        ];
        let usages = ledger.usages(&found, now);
        let of = |id: &str| usages.iter().find(|u| u.instance == id).unwrap();
        let minutes = |u: &Usage| (u.end - u.start) / 60_000;
        assert_eq!(
            (minutes(of("i-ended")), of("i-ended").end_from),
            (30, Source::EventLog)
        );
        assert_eq!(
            (minutes(of("i-running")), of("i-running").end_from),
            (40, Source::Running)
        );
        assert_eq!(
            (minutes(of("i-lost")), of("i-lost").end_from),
            (40, Source::Missing)
        );
        let reaped = of("i-reaped");
        assert_eq!(
            (minutes(reaped), reaped.start_from),
            (5, Source::Ec2LaunchTime)
        );
        assert_eq!(reaped.end_from, Source::EventLog);
        let planted = of("i-planted");
        assert_eq!(
            (minutes(planted), planted.start_from),
            (10, Source::Ec2LaunchTime)
        );
        assert_eq!(planted.user.as_deref(), Some("bob"));
        assert_eq!(planted.purchasing_option.as_deref(), Some("spot"));
        assert_eq!(of("i-forgotten").start_from, Source::Unknown);
        assert_eq!(usages.len(), 6);
        let config = crate::fixtures::example();
        let report = report::report(&config, &usages, By::Instance, None, now);
        assert_eq!(report.total.instances, 6, "nothing dropped: {report:#?}");
        let forgotten = report.rows.iter().find(|r| r.key == "i-forgotten").unwrap();
        assert_eq!(forgotten.instance_hours, 0.0);
        assert!(forgotten.notes[0].contains("not counted"), "{forgotten:?}");
    }
}
