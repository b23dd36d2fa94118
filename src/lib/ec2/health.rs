//! EC2's view of its running instances' health (DescribeInstanceStatus):
//! failed status checks and the events EC2 has scheduled for them.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{InstanceStatus, InstanceStatusSummary, StatusType};

use super::{Ec2Error, Meter};

/// The most instance ids DescribeInstanceStatus takes in one call.
pub const MAX_STATUS_IDS: usize = 100;

/// Something EC2 will do to the instance: `instance-retirement`,
/// `instance-stop`, `instance-reboot`, `system-reboot` or `system-maintenance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledEvent {
    pub code: String,
    /// Seconds since the epoch: the earliest the event may start.
    pub not_before: Option<i64>,
}

/// One running instance's health, as EC2 reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Since when (seconds since the epoch) its instance or system status
    /// check has failed; None while both pass (or cannot tell yet).
    pub impaired_since: Option<i64>,
    /// Events still to come: EC2 marks the done and the cancelled ones
    /// `[Completed]` and `[Canceled]`, which are left out.
    pub events: Vec<ScheduledEvent>,
}

/// The failure time of a status summary's failed checks, the earliest.
fn failed_since(summary: Option<&InstanceStatusSummary>) -> Option<i64> {
    let summary = summary?;
    summary
        .details()
        .iter()
        .filter(|d| d.status() == Some(&StatusType::Failed))
        .map(|d| d.impaired_since().map_or(i64::MAX, |t| t.secs()))
        .min()
}

fn health_of(status: &InstanceStatus) -> Health {
    let impaired_since = [
        failed_since(status.instance_status()),
        failed_since(status.system_status()),
    ]
    .into_iter()
    .flatten()
    .min();
    let events = status
        .events()
        .iter()
        .filter(|e| {
            let description = e.description().unwrap_or_default();
            !description.starts_with("[Completed]") && !description.starts_with("[Canceled]")
        })
        .filter_map(|e| {
            Some(ScheduledEvent {
                code: e.code()?.as_str().to_string(),
                not_before: e.not_before().map(|t| t.secs()),
            })
        })
        .collect();
    Health {
        impaired_since,
        events,
    }
}

/// The health of the running instances among `ids`, 100 ids a call; an
/// instance EC2 reports as healthy and without events is left out.
pub(super) async fn describe_health(
    client: &aws_sdk_ec2::Client,
    ids: &[String],
    calls: &Meter,
) -> Result<BTreeMap<String, Health>, Ec2Error> {
    let mut found = BTreeMap::new();
    for batch in ids.chunks(MAX_STATUS_IDS) {
        let request = client
            .describe_instance_status()
            .set_instance_ids(Some(batch.to_vec()));
        let what = format!("of {} instance(s)", batch.len());
        let output = calls
            .call_on_new("DescribeInstanceStatus", &what, calls.deadline(), || {
                request.clone().send()
            })
            .await?;
        for status in output.instance_statuses() {
            let health = health_of(status);
            if let Some(id) = status.instance_id()
                && health != Health::default()
            {
                found.insert(id.to_string(), health);
            }
        }
    }
    Ok(found)
}
