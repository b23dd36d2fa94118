//! The rows of the action table, one function each, for one node of ours.
//! Two rows add steps and let the others be read (duplicates, leaks); of the
//! rest, the first that applies decides.

use super::jobs::JobOnNode;
use super::step::{
    Action, Found, Hold, STATE_DOWN, STATE_DRAIN, STATE_POWER_DOWN_FORCE, STATE_RESUME,
    STATE_UNDRAIN, Step, young,
};
use std::collections::BTreeMap;

use crate::config::NodeGroup;
use crate::ec2::{Health, InstanceState};
use crate::slurm::reason::{self as reasons, hold_end, reason_time};
use crate::slurm::{BaseState, Flag, NodeInfo};

/// One node of ours as the rules see it.
pub(super) struct NodeView<'a> {
    pub node: &'a NodeInfo,
    pub group: &'a NodeGroup,
    /// Every instance named for the node, live or not.
    pub instances: Vec<&'a Found>,
    pub live: Vec<&'a Found>,
    /// Live and past the launch grace.
    pub old_live: Vec<&'a Found>,
    /// The group's hold (insufficient capacity, or its breaker).
    pub hold: Option<&'a Hold>,
    pub now: i64,
    pub grace: i64,
    /// Slurm has InstanceId and InstanceType (23.11+).
    pub record_instances: bool,
    /// The job the node runs, when squeue named one.
    pub job: Option<&'a JobOnNode>,
    /// `JobTags`: instances launched for a job carry its id, user and account.
    pub job_tags: bool,
    /// EC2's view of running instances that are not healthy, by id.
    pub health: &'a BTreeMap<String, Health>,
    /// `ImpairedGraceSeconds`: how long failed status checks are borne.
    pub impaired_grace: i64,
}

impl NodeView<'_> {
    fn step(&self, action: Action, why: String, found: Option<&Found>) -> Step {
        Step {
            node: Some(self.node.name.clone()),
            slurm_state: self.node.state_text.clone(),
            instance: found.map(|f| f.instance.id.clone()),
            ec2_state: found.map_or("none".to_string(), |f| f.instance.state.to_string()),
            account: found.map(|f| f.account.clone()),
            action,
            why,
        }
    }

    fn set(&self, state: &'static str, reason: Option<String>, why: String) -> Step {
        self.step(Action::SetState { state, reason }, why, None)
    }

    fn reason(&self) -> &str {
        self.node.reason.as_deref().unwrap_or_default()
    }
}

/// A rule that applies gives its steps (perhaps none) and ends the reading.
type Rule = fn(&NodeView) -> Option<Vec<Step>>;

const DECIDING_RULES: [Rule; 8] = [
    powered_down,
    drained_while_powered_down,
    powering_down,
    instance_gone,
    instance_impaired,
    event_scheduled,
    down_and_not_responding,
    stuck_completing,
];

pub(super) fn steps_for(view: &NodeView) -> Vec<Step> {
    let mut steps = duplicates(view);
    steps.extend(leak(view));
    steps.extend(unrecorded_instance(view));
    steps.extend(unnamed_instances(view));
    if let Some(decided) = DECIDING_RULES.iter().find_map(|rule| rule(view)) {
        steps.extend(decided);
    }
    steps
}

/// Up or on its way up with one live instance that Slurm's InstanceId does
/// not name (resume ran out of time, or an older Slurm set it): record it.
fn unrecorded_instance(view: &NodeView) -> Option<Step> {
    let state = &view.node.state;
    let settled = !state.powered_down() && !state.powering_down() && !state.is_down();
    let [found] = view.live.as_slice() else {
        return None;
    };
    let recorded = view.node.instance_id.as_deref() == Some(found.instance.id.as_str());
    (view.record_instances && settled && !recorded).then(|| {
        let action = Action::RecordInstance {
            instance_type: found.instance.instance_type.clone().unwrap_or_default(),
        };
        view.step(
            action,
            "Slurm's InstanceId does not name it".into(),
            Some(found),
        )
    })
}

/// Live instances that only their reservation's node list names (resume
/// ran out of budget for their `Name` tags): write them, whatever the state.
fn unnamed_instances(view: &NodeView) -> Vec<Step> {
    let node = view.node.name.as_str();
    view.live
        .iter()
        .filter(|f| {
            f.instance.tag("Name").is_none() && f.instance.node_name().as_deref() == Some(node)
        })
        .map(|found| {
            let instance = &found.instance;
            let address = instance.address.clone().unwrap_or_default();
            let hostname = instance.hostname().unwrap_or_default();
            // As resume would have: the job's values in the placeholders (empty
            // without a job), and the job's tags.
            let job_values = match view.job {
                Some(job) => job.placeholders(),
                None => ["{job_id}", "{user}", "{account}"].map(|p| (p, String::new())),
            };
            let mut tags =
                crate::ec2::node_tags(view.group, node, &address, &hostname, &job_values);
            if let Some(job) = view.job.filter(|_| view.job_tags) {
                tags.extend(job.tags());
            }
            tags.retain(|(k, v)| instance.tag(k) != Some(v.as_str()));
            view.step(
                Action::NameInstance { tags },
                "named only by its reservation's node list".into(),
                Some(found),
            )
        })
        .collect()
}

/// Not powered down, several live instances: keep the one at the address
/// Slurm holds (else running before pending, then the oldest, as resume
/// picks), terminate the others past the grace.
fn duplicates(view: &NodeView) -> Vec<Step> {
    let state = &view.node.state;
    if state.powered_down() || state.powering_down() || view.live.len() < 2 {
        return Vec::new();
    }
    let mut ranked = view.live.clone();
    ranked.sort_by_key(|f| {
        let i = &f.instance;
        (
            view.node.address.is_none() || i.address != view.node.address,
            i.state != InstanceState::Running,
            i.launch_time.unwrap_or(i64::MAX),
            i.id.clone(),
        )
    });
    let kept = &ranked[0].instance.id;
    ranked[1..]
        .iter()
        .filter(|f| !young(&f.instance, view.now, view.grace))
        .map(|found| {
            let why = format!(
                "duplicate: the node's instance is {kept} (the address Slurm holds, or else the oldest)"
            );
            view.step(Action::Terminate, why, Some(found))
        })
        .collect()
}

/// Powered down or powering down, with a live instance past the grace.
fn leak(view: &NodeView) -> Vec<Step> {
    let state = &view.node.state;
    if !(state.powered_down() || state.powering_down()) {
        return Vec::new();
    }
    let why = "powered down but its instance still runs (a leak)";
    view.old_live
        .iter()
        .map(|found| view.step(Action::Terminate, why.into(), Some(found)))
        .collect()
}

/// Powered down, not drained: held DOWN while its group's hold (capacity,
/// breaker) lasts; back to power saving when DOWN otherwise, or when not
/// responding.
fn powered_down(view: &NodeView) -> Option<Vec<Step>> {
    let state = &view.node.state;
    if !state.powered_down() || state.has(Flag::Drain) {
        return None;
    }
    if let Some(hold) = view.hold {
        let held_already = state.is_down()
            && hold_end(view.reason()) == Some(hold.until)
            && reasons::code(view.reason()) == Some(hold.code.as_str());
        if held_already {
            return Some(Vec::new());
        }
        let held = hold.reason.clone();
        return Some(vec![view.set(STATE_DOWN, Some(held.clone()), held)]);
    }
    if !state.is_down() {
        return Some(not_responding_while_powered_down(view));
    }
    let after = match view.reason() {
        "" => "DOWN",
        reason => reason,
    };
    let why = format!("back to power saving after: {after}");
    let again = "then powered down again: RESUME leaves it not responding (22.05 keeps the flag, 24.11 sets it), and Slurm would never power it up";
    Some(vec![
        view.set(STATE_RESUME, None, why),
        view.set(STATE_POWER_DOWN_FORCE, None, again.into()),
    ])
}

/// Slurm never powers up a node it lists as not responding, and never pings
/// a powered-down one: `IDLE+CLOUD+POWERED_DOWN+NOT_RESPONDING` waits
/// forever, its jobs pending, until a forced power-down clears the flag. A
/// node allocated to a job that waits for its power-up is left to Slurm.
fn not_responding_while_powered_down(view: &NodeView) -> Vec<Step> {
    let state = &view.node.state;
    if state.base != BaseState::Idle || !state.has(Flag::NotResponding) {
        return Vec::new();
    }
    let why = "idle, powered down and not responding: Slurm would never power it up";
    vec![view.set(STATE_POWER_DOWN_FORCE, None, why.into())]
}

fn drained_while_powered_down(view: &NodeView) -> Option<Vec<Step>> {
    let state = &view.node.state;
    (state.powered_down() && state.has(Flag::Drain)).then(|| {
        let why = "drained while powered down".to_string();
        vec![view.set(STATE_UNDRAIN, None, why)]
    })
}

/// Slurm is powering it down: suspend is at work.
fn powering_down(view: &NodeView) -> Option<Vec<Step>> {
    view.node.state.powering_down().then(Vec::new)
}

/// In service with no live instance (terminated, a Spot interruption): DOWN
/// with a reason naming the last instance (its jobs are requeued), then
/// powered down.
fn instance_gone(view: &NodeView) -> Option<Vec<Step>> {
    let state = &view.node.state;
    if !state.in_service() || !view.live.is_empty() || state.has(Flag::Drain) {
        return None;
    }
    let last = view
        .instances
        .iter()
        .max_by_key(|f| f.instance.launch_time.unwrap_or(0))
        .copied();
    let reason =
        reasons::instance_gone(last.map(|f| (f.instance.id.as_str(), f.instance.state.as_str())));
    let action = Action::DownThenPowerDown {
        reason: reason.clone(),
    };
    Some(vec![view.step(action, reason, last)])
}

/// In service on the one instance it has, and EC2's status checks of that
/// instance have failed for longer than the grace: DOWN (its jobs are
/// requeued now), then powered down; the next run terminates the instance
/// as for any DOWN node.
fn instance_impaired(view: &NodeView) -> Option<Vec<Step>> {
    let state = &view.node.state;
    let [found] = view.old_live.as_slice() else {
        return None;
    };
    let since = view.health.get(&found.instance.id)?.impaired_since?;
    let borne = view.now.saturating_sub(since) >= view.impaired_grace;
    if !state.in_service() || !borne {
        return None;
    }
    let reason = reasons::instance_impaired(&found.instance.id, since);
    let action = Action::DownThenPowerDown {
        reason: reason.clone(),
    };
    Some(vec![view.step(action, reason, Some(found))])
}

/// In service, not yet drained, on an instance EC2 has scheduled an event
/// for (retirement, stop, reboot, maintenance): DRAIN, so that it takes no
/// new job, empties, and powers down before the date.
fn event_scheduled(view: &NodeView) -> Option<Vec<Step>> {
    let state = &view.node.state;
    let [found] = view.old_live.as_slice() else {
        return None;
    };
    let event = view.health.get(&found.instance.id)?.events.first()?;
    if !state.in_service() || state.has(Flag::Drain) {
        return None;
    }
    let reason = reasons::scheduled_event(&event.code, event.not_before);
    let action = Action::SetState {
        state: STATE_DRAIN,
        reason: Some(reason.clone()),
    };
    Some(vec![view.step(action, reason, Some(found))])
}

/// DOWN and not responding, neither powering up nor with a power-down Slurm
/// already has pending (24.11 powers a node resume failed down in steps:
/// forcing it then would clear the capacity code its group's hold is read
/// from): powered down.
fn down_and_not_responding(view: &NodeView) -> Option<Vec<Step>> {
    let state = &view.node.state;
    let applies = state.is_down()
        && state.has(Flag::NotResponding)
        && !state.powering_up()
        && !state.has(Flag::PowerDown);
    applies.then(|| {
        let action = Action::SetState {
            state: STATE_POWER_DOWN_FORCE,
            reason: None,
        };
        let why = "down and not responding".to_string();
        vec![view.step(action, why, view.live.first().copied())]
    })
}

/// Completing and drained for longer than the grace: a job that will not end.
fn stuck_completing(view: &NodeView) -> Option<Vec<Step>> {
    let state = &view.node.state;
    if !(state.has(Flag::Completing) && state.has(Flag::Drain)) {
        return None;
    }
    let since = view.node.reason.as_deref().and_then(reason_time);
    if since.is_some_and(|t| view.now - t <= view.grace) {
        return Some(Vec::new());
    }
    let reason = "completing and drained for too long".to_string();
    Some(vec![view.set(STATE_DOWN, Some(reason.clone()), reason)])
}
