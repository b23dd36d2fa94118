//! What change-state may do about one node or instance: the steps of its plan.

use crate::ec2::{Account, Instance};

pub const STATE_RESUME: &str = "RESUME";
pub const STATE_DOWN: &str = "DOWN";
pub const STATE_POWER_DOWN_FORCE: &str = "POWER_DOWN_FORCE";
pub const STATE_UNDRAIN: &str = "UNDRAIN";
pub const STATE_DRAIN: &str = "DRAIN";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Terminate,
    /// Nothing is done; the step is reported (an instance kept on purpose).
    Keep,
    SetState {
        state: &'static str,
        reason: Option<String>,
    },
    /// `state=DOWN reason=…` (requeues the jobs), then `state=POWER_DOWN_FORCE`.
    DownThenPowerDown {
        reason: String,
    },
    /// `instanceid=<the step's instance> instancetype=…` (Slurm 23.11+).
    RecordInstance {
        instance_type: String,
    },
    /// Terminate a pooled instance of the pool of this node prefix, under the pool's lock.
    TrimPool {
        pool: String,
    },
    /// CreateTags of the `Name` (and placeholder tags) that resume had no
    /// time for: the instance is known by its reservation's node list.
    NameInstance {
        tags: Vec<(String, String)>,
    },
}

/// One row of the plan (and of `--dry-run`'s table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub node: Option<String>,
    pub slurm_state: String,
    pub instance: Option<String>,
    pub ec2_state: String,
    /// The instance's account, for terminations.
    pub account: Option<Account>,
    pub action: Action,
    pub why: String,
}

/// An instance with the account it was found in.
#[derive(Debug, Clone)]
pub struct Found {
    pub account: Account,
    pub instance: Instance,
}

/// Launched less than `grace` seconds before `now`: never touched.
pub(super) fn young(instance: &Instance, now: i64, grace: i64) -> bool {
    instance.launch_time.is_some_and(|t| now - t < grace)
}

/// A node group held DOWN: why (the code), until when, and the reason its
/// powered-down nodes carry meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub code: String,
    pub until: i64,
    pub reason: String,
}
