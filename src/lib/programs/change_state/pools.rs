//! change-state's warm pools: the rows of the plan that trim them (by
//! [`crate::pool::trim`]), and their termination under each pool's lock,
//! where the claims of resume are read again: an instance resume took while
//! this run was reading is never terminated.

use std::collections::{BTreeMap, BTreeSet};

use super::Run;
use super::step::{Action, Found, Step};
use crate::config::{Config, NodeGroup};
use crate::pool::trim::{self, Current};

/// What the plan needs to know of the pools besides the instances.
#[derive(Debug, Default)]
pub struct PoolInputs {
    /// By pool (its group's node prefix): the instances resume took lately.
    pub claimed: BTreeMap<String, BTreeSet<String>>,
    /// By pool: what its group launches now.
    pub current: BTreeMap<String, Current>,
}

/// The group whose pool `prefix` names, when it is this instance's own.
fn group_of<'c>(config: &'c Config, prefix: &str, found: &Found) -> Option<&'c NodeGroup> {
    config.node_groups().find(|g| {
        g.node_prefix() == prefix
            && found.instance.tag(crate::ec2::PARTITION_TAG) == Some(g.partition.as_str())
            && found.instance.tag(crate::ec2::NODE_GROUP_TAG) == Some(g.name.as_str())
    })
}

/// This cluster's pooled instances, by the pool they name.
fn pooled(instances: &[Found]) -> BTreeMap<String, Vec<&Found>> {
    let mut pools: BTreeMap<String, Vec<&Found>> = BTreeMap::new();
    for found in instances.iter().filter(|f| f.instance.is_pooled()) {
        let prefix = found.instance.tag(crate::ec2::POOL_TAG).unwrap_or_default();
        pools.entry(prefix.to_string()).or_default().push(found);
    }
    pools
}

/// The plan's rows for the pooled instances among `instances` to terminate.
pub fn steps(
    config: &Config,
    instances: &[Found],
    pools: &PoolInputs,
    now: i64,
    grace: i64,
) -> Vec<Step> {
    let none = BTreeSet::new();
    let mut steps = Vec::new();
    for (prefix, members) in pooled(instances) {
        let group = members.first().and_then(|f| group_of(config, &prefix, f));
        let pool = trim::Pool {
            settings: group.and_then(|g| g.warm_pool.as_ref()),
            instances: members.iter().map(|f| &f.instance).collect(),
            current: pools.current.get(&prefix),
            claimed: pools.claimed.get(&prefix).unwrap_or(&none),
            now,
            grace,
        };
        for (instance, why) in trim::trims(&pool) {
            let found = members.iter().find(|f| f.instance.id == instance.id);
            steps.push(Step {
                node: None,
                slurm_state: "-".into(),
                instance: Some(instance.id.clone()),
                ec2_state: instance.state.to_string(),
                account: found.map(|f| f.account.clone()),
                action: Action::TrimPool {
                    pool: prefix.clone(),
                },
                why,
            });
        }
    }
    steps
}

/// What the plan needs of the pools: each group's claims (read without its
/// lock: [`hold_trims`] reads them again under it) and, for groups with
/// pooled instances, what their launch template resolves to now.
pub fn observe(run: &Run, instances: &[Found], now: i64) -> PoolInputs {
    let mut inputs = PoolInputs::default();
    for (prefix, members) in pooled(instances) {
        let Some(group) = members
            .first()
            .and_then(|f| group_of(run.config, &prefix, f))
        else {
            continue;
        };
        if group.warm_pool.is_none() {
            continue;
        }
        inputs.claimed.insert(
            prefix.clone(),
            crate::pool::claimed_now(&run.config.state_dir, group, now),
        );
        let version = run.block_on(async {
            let ec2 = run.clients.get(&group.account()).await;
            ec2.template_version(&group.launch_template).await
        });
        match version {
            Ok(Some(version)) => {
                let current = Current {
                    version: Some(version.version_number),
                    image: version.image_id,
                };
                inputs.current.insert(prefix, current);
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!("No launch template version for the warm pool of {prefix}: {error}")
            }
        }
    }
    inputs
}

/// The plan's steps with the pools' trims that may go ahead: each pool's
/// lock is taken (a pool that is busy is trimmed by a later run) and its
/// claims read again. The locks are held until the returned value is dropped.
pub fn hold_trims(run: &Run, steps: &[Step], now: i64) -> (Vec<Step>, Vec<crate::pool::Held>) {
    let mut held = Vec::new();
    let mut pools: BTreeMap<String, Trimmable> = BTreeMap::new();
    let mut kept = Vec::new();
    for step in steps {
        let Action::TrimPool { pool } = &step.action else {
            kept.push(step.clone());
            continue;
        };
        let trimmable = pools.entry(pool.clone()).or_insert_with(|| {
            let Some(group) = run.config.node_groups().find(|g| &g.node_prefix() == pool) else {
                return Trimmable::All;
            };
            let hold = crate::pool::hold(&run.config.state_dir, group, run.deadline);
            match run.block_on(hold) {
                Some(lock) => {
                    let claimed = lock.claimed(now);
                    held.push(lock);
                    Trimmable::Unclaimed(claimed)
                }
                None => Trimmable::Nothing,
            }
        });
        let free = match trimmable {
            Trimmable::All => true,
            Trimmable::Unclaimed(claimed) => step
                .instance
                .as_ref()
                .is_some_and(|id| !claimed.contains(id)),
            Trimmable::Nothing => false,
        };
        if free {
            kept.push(step.clone());
        }
    }
    (kept, held)
}

/// What a run may trim of one pool.
enum Trimmable {
    /// Its group left the configuration: no resume takes from it.
    All,
    /// Under its lock: all but what resume claimed.
    Unclaimed(BTreeSet<String>),
    /// Its lock is busy: a later run trims it.
    Nothing,
}
