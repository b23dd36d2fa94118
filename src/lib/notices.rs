//! What EC2 announces to an instance through its metadata, read as notices
//! `slurm-ec2 watch` acts on. Each text is a hint: what does not parse, or
//! names a time that cannot be, is no notice (and is said in the log).

use serde::Deserialize;

use crate::imds::RawNotices;

/// The code of a Spot interruption, in node reasons and events.
pub const SPOT_INTERRUPTION: &str = "spot-interruption";
/// The code of a rebalance recommendation.
pub const REBALANCE: &str = "rebalance-recommendation";
/// Scheduled events that stop or terminate the instance.
const STOPPING_EVENTS: [&str; 2] = ["instance-stop", "instance-retirement"];
/// A scheduled stop this close is acted on as an interruption; one further
/// off is change-state's (a drain).
const SOON: i64 = 15 * 60;

/// What EC2 has said it will do to this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// EC2 stops or terminates the instance at `at`: a Spot interruption
    /// (`spot-interruption`), or a scheduled stop or retirement due soon.
    Interruption {
        code: String,
        action: String,
        at: i64,
    },
    /// EC2 recommends moving work off the instance (a Spot instance at
    /// elevated risk of interruption), since `at`.
    Rebalance { at: i64 },
}

impl Notice {
    pub fn code(&self) -> &str {
        match self {
            Notice::Interruption { code, .. } => code,
            Notice::Rebalance { .. } => REBALANCE,
        }
    }
}

#[derive(Deserialize)]
struct InstanceAction {
    action: String,
    time: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rebalance {
    notice_time: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduledEvent {
    code: String,
    not_before: String,
    #[serde(default)]
    state: Option<String>,
}

/// The notices in what the metadata served at `now`: an interruption first
/// (the earliest), then a rebalance recommendation. Texts that are not
/// notices are returned as problems.
pub fn read(raw: &RawNotices, now: i64) -> (Vec<Notice>, Vec<String>) {
    let mut problems = Vec::new();
    let mut interruptions = Vec::new();
    if let Some(text) = &raw.instance_action {
        match serde_json::from_str::<InstanceAction>(text) {
            Ok(a) => match rfc3339(&a.time) {
                Some(at) => interruptions.push(Notice::Interruption {
                    code: SPOT_INTERRUPTION.into(),
                    action: bounded(&a.action),
                    at,
                }),
                None => problems.push(format!("spot/instance-action time {:?}", a.time)),
            },
            Err(error) => problems.push(format!("spot/instance-action: {error}")),
        }
    }
    if let Some(text) = &raw.scheduled_events {
        match serde_json::from_str::<Vec<ScheduledEvent>>(text) {
            Ok(events) => interruptions.extend(events.iter().filter_map(|e| stopping(e, now))),
            Err(error) => problems.push(format!("events/maintenance/scheduled: {error}")),
        }
    }
    interruptions.sort_by_key(|n| match n {
        Notice::Interruption { at, .. } => *at,
        Notice::Rebalance { at } => *at,
    });
    interruptions.truncate(1);
    if let Some(text) = &raw.rebalance {
        match serde_json::from_str::<Rebalance>(text)
            .ok()
            .and_then(|r| rfc3339(&r.notice_time))
        {
            Some(at) => interruptions.push(Notice::Rebalance { at }),
            None => problems.push(format!("events/recommendations/rebalance: {text:.200}")),
        }
    }
    (interruptions, problems)
}

/// An active scheduled stop or retirement due within [`SOON`].
fn stopping(event: &ScheduledEvent, now: i64) -> Option<Notice> {
    let active = event.state.as_deref().is_none_or(|s| s == "active");
    let code = STOPPING_EVENTS.iter().find(|c| **c == event.code)?;
    let at = chrono::NaiveDateTime::parse_from_str(&event.not_before, "%d %b %Y %H:%M:%S GMT")
        .ok()?
        .and_utc()
        .timestamp();
    (active && at <= now.saturating_add(SOON)).then(|| Notice::Interruption {
        code: code.to_string(),
        action: "stop".into(),
        at,
    })
}

fn rfc3339(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp())
}

/// An action word as EC2 writes it (`terminate`, `stop`, `hibernate`); anything else shortened.
fn bounded(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(20)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_spot_notice_a_scheduled_stop_and_a_rebalance_are_read() {
        let raw = RawNotices {
            instance_action: Some(r#"{"action": "terminate", "time": "2027-01-15T08:02:00Z"}"#.into()),
            rebalance: Some(r#"{"noticeTime": "2027-01-15T08:00:00Z"}"#.into()),
            scheduled_events: Some(
                r#"[{"Code": "instance-stop", "NotBefore": "15 Jan 2027 09:00:00 GMT", "State": "active"},
                    {"Code": "system-reboot", "NotBefore": "15 Jan 2027 07:00:00 GMT", "State": "active"}]"#
                    .into(),
            ),
        };
        let now = rfc3339("2027-01-15T08:00:10Z").unwrap();
        let (notices, problems) = read(&raw, now);
        assert!(problems.is_empty(), "{problems:?}");
        let spot = Notice::Interruption {
            code: SPOT_INTERRUPTION.into(),
            action: "terminate".into(),
            at: now + 110,
        };
        let rebalance = Notice::Rebalance { at: now - 10 };
        assert_eq!(notices, [spot, rebalance]);
    }

    #[test]
    fn a_scheduled_stop_due_soon_is_an_interruption() {
        let event = |code: &str, when: &str, state: &str| RawNotices {
            scheduled_events: Some(format!(
                r#"[{{"Code": "{code}", "NotBefore": "{when}", "State": "{state}"}}]"#
            )),
            ..Default::default()
        };
        let now = rfc3339("2027-01-15T08:00:00Z").unwrap();
        let soon = read(
            &event("instance-retirement", "15 Jan 2027 08:10:00 GMT", "active"),
            now,
        )
        .0;
        assert_eq!(soon.len(), 1);
        assert_eq!(soon[0].code(), "instance-retirement");
        for (code, when, state) in [
            ("instance-retirement", "16 Jan 2027 08:00:00 GMT", "active"),
            ("instance-stop", "15 Jan 2027 08:05:00 GMT", "canceled"),
            ("system-reboot", "15 Jan 2027 08:05:00 GMT", "active"),
        ] {
            assert!(
                read(&event(code, when, state), now).0.is_empty(),
                "{code} {when} {state}"
            );
        }
    }

    #[test]
    fn what_is_not_a_notice_is_a_problem_never_a_notice() {
        let raw = RawNotices {
            instance_action: Some(r#"{"action": "terminate", "time": "soon"}"#.into()),
            rebalance: Some("<html>".into()),
            scheduled_events: Some("{}".into()),
        };
        let (notices, problems) = read(&raw, NOW);
        assert!(notices.is_empty());
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(bounded("terminate; rm -rf /"), "terminaterm-rf");
    }
}
