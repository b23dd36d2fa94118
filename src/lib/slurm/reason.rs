//! The node reasons slurm-ec2 writes, and reads back on a later run: the EC2
//! code in front, `(Code:<code>)…`, and Slurm's own stamp at the end,
//! `[<user>@YYYY-MM-DDTHH:MM:SS]` (local time).
//!
//! - resume: `(Code:<code>)Failure when resuming nodes`
//! - change-state: `(Code:<code>)Held until <time> after insufficient capacity in <group>`,
//!   `(Code:InstanceGone)Instance <id> is <state>`,
//!   `(Code:InstanceImpaired)Instance <id> failed its status checks at <time>` and
//!   `(Code:<event code>)EC2 scheduled it for <time>` (a drain),
//!   `(Code:NeverRegistered)Held until <time> after boot failures in <group>`
//! - Slurm: `ResumeTimeout reached` (a node that did not register in time)

const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";
const RESUME_FAILURE: &str = "Failure when resuming nodes";
const HOLD_MARK: &str = "Held until ";
const RESUME_TIMEOUT: &str = "ResumeTimeout reached";
/// The code of a node group held by the breaker: its instances never registered.
pub const NEVER_REGISTERED: &str = "NeverRegistered";

/// The reason resume gives nodes it could not serve, with the EC2 error code.
pub fn resume_failure(code: &str) -> String {
    format!("(Code:{code}){RESUME_FAILURE}")
}

pub fn is_resume_failure(reason: &str) -> bool {
    reason.contains(RESUME_FAILURE)
}

/// The reason of an in-service node whose instance is gone: `(id, EC2 state)` of the last one.
pub fn instance_gone(last: Option<(&str, &str)>) -> String {
    match last {
        Some((id, state)) => format!("(Code:InstanceGone)Instance {id} is {state}"),
        None => "(Code:InstanceGone)No instance backs this node".to_string(),
    }
}

/// The reason of an in-service node whose instance has failed EC2's status
/// checks since `since` for longer than the grace.
pub fn instance_impaired(id: &str, since: i64) -> String {
    format!(
        "(Code:InstanceImpaired)Instance {id} failed its status checks at {}",
        local_stamp(since)
    )
}

/// The reason a node is drained with: EC2 scheduled `code` (instance-retirement,
/// instance-stop, …) for its instance, from `not_before`.
pub fn scheduled_event(code: &str, not_before: Option<i64>) -> String {
    match not_before {
        Some(time) => format!("(Code:{code})EC2 scheduled it for {}", local_stamp(time)),
        None => format!("(Code:{code})EC2 scheduled it"),
    }
}

/// Slurm's reason for a node that did not register within ResumeTimeout.
pub fn is_resume_timeout(reason: &str) -> bool {
    reason.starts_with(RESUME_TIMEOUT)
}

/// A time as Slurm writes its own: local, to the second.
pub fn local_stamp(time: i64) -> String {
    chrono::DateTime::from_timestamp(time, 0)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format(TIME_FORMAT)
                .to_string()
        })
        .unwrap_or_default()
}

/// The reason of nodes held DOWN after insufficient capacity in `group`.
pub fn hold_reason(code: &str, until: i64, group: &str) -> String {
    let until = local_stamp(until);
    format!("(Code:{code}){HOLD_MARK}{until} after insufficient capacity in {group}")
}

/// The reason of nodes held DOWN by their group's breaker until `until`.
pub fn boot_hold_reason(until: i64, group: &str) -> String {
    let until = local_stamp(until);
    format!("(Code:{NEVER_REGISTERED}){HOLD_MARK}{until} after boot failures in {group}")
}

pub fn is_hold(reason: &str) -> bool {
    reason.contains(HOLD_MARK)
}

/// The end of the hold a reason announces.
pub fn hold_end(reason: &str) -> Option<i64> {
    let rest = &reason[reason.find(HOLD_MARK)? + HOLD_MARK.len()..];
    local_time(rest.split_whitespace().next()?)
}

/// The EC2 code a reason starts with.
pub fn code(reason: &str) -> Option<&str> {
    reason
        .strip_prefix("(Code:")?
        .split_once(')')
        .map(|(code, _)| code)
}

/// When Slurm set the reason: the `[user@YYYY-MM-DDTHH:MM:SS]` that ends it.
pub fn reason_time(reason: &str) -> Option<i64> {
    local_time(reason.trim_end().strip_suffix(']')?.rsplit_once('@')?.1)
}

fn local_time(stamp: &str) -> Option<i64> {
    let naive = chrono::NaiveDateTime::parse_from_str(stamp, TIME_FORMAT).ok()?;
    naive
        .and_local_timezone(chrono::Local)
        .earliest()
        .map(|t| t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back() {
        let failure = resume_failure("InsufficientInstanceCapacity");
        assert_eq!(code(&failure), Some("InsufficientInstanceCapacity"));
        assert!(is_resume_failure(&failure) && !is_hold(&failure));
        let held = hold_reason("VcpuLimitExceeded", 1_800_000_000, "aws-spot-");
        assert_eq!(code(&held), Some("VcpuLimitExceeded"));
        assert_eq!(hold_end(&held), Some(1_800_000_000));
        assert!(is_hold(&held));
        assert_eq!(
            instance_gone(Some(("i-1", "terminated"))),
            "(Code:InstanceGone)Instance i-1 is terminated"
        );
        assert_eq!(code(&instance_gone(None)), Some("InstanceGone"));
        assert_eq!(code(&instance_impaired("i-1", 0)), Some("InstanceImpaired"));
        let booting = boot_hold_reason(1_800_000_000, "aws-a-");
        assert_eq!(code(&booting), Some(NEVER_REGISTERED));
        assert_eq!(hold_end(&booting), Some(1_800_000_000));
        assert!(is_resume_timeout(
            "ResumeTimeout reached [slurm@2026-12-05T21:00:00]"
        ));
        let retirement = scheduled_event("instance-retirement", Some(1_800_000_000));
        assert_eq!(code(&retirement), Some("instance-retirement"));
    }
}
