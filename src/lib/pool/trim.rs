//! Which pooled instances change-state terminates. Plain data in, plain data out.

use std::collections::BTreeSet;

use crate::config::WarmPool;
use crate::ec2::{Instance, InstanceState};

/// The tag EC2 puts on an instance launched from a launch template: the
/// template's version it was launched from.
pub const TEMPLATE_VERSION_TAG: &str = "aws:ec2launchtemplate:version";

/// What the group launches now: its launch template's version and image,
/// when DescribeLaunchTemplateVersions said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    pub version: Option<i64>,
    pub image: Option<String>,
}

/// One pool's instances, as change-state sees them.
pub struct Pool<'a> {
    /// The group's pool; None when the group has none any more, or is gone.
    pub settings: Option<&'a WarmPool>,
    pub instances: Vec<&'a Instance>,
    pub current: Option<&'a Current>,
    /// Instances resume took lately, which EC2 may still list as pooled.
    pub claimed: &'a BTreeSet<String>,
    pub now: i64,
    /// Seconds after pooling that a running pooled instance is left to stop.
    pub grace: i64,
}

/// The instances to terminate, each with why; the others stay pooled.
pub fn trims<'a>(pool: &Pool<'a>) -> Vec<(&'a Instance, String)> {
    let mut trimmed = Vec::new();
    let mut kept: Vec<&Instance> = Vec::new();
    for instance in pool.instances.iter().copied() {
        if pool.claimed.contains(&instance.id) || !instance.is_live() {
            continue;
        }
        match why_not_kept(pool, instance) {
            Some(why) => trimmed.push((instance, why)),
            None => kept.push(instance),
        }
    }
    if let Some(settings) = pool.settings {
        // The newest stay: the oldest would be the first to age out.
        kept.sort_by_key(|i| std::cmp::Reverse((i.first_launch(pool.now), i.id.clone())));
        let size = usize::try_from(settings.size).unwrap_or(usize::MAX);
        for instance in kept.into_iter().skip(size) {
            let why = format!("warm pool beyond its size of {size}");
            trimmed.push((instance, why));
        }
    }
    trimmed
}

fn why_not_kept(pool: &Pool, instance: &Instance) -> Option<String> {
    let Some(settings) = pool.settings else {
        return Some("warm pool: its node group has no warm pool any more".into());
    };
    let now = pool.now;
    if matches!(
        instance.state,
        InstanceState::Running | InstanceState::Pending
    ) {
        let stopping_late = instance
            .pooled_at(now)
            .is_none_or(|at| now.saturating_sub(at) >= pool.grace);
        return stopping_late.then(|| "warm pool: running without a node".into());
    }
    let max_age = i64::try_from(settings.max_age.as_secs()).unwrap_or(i64::MAX);
    match instance.first_launch(now) {
        Some(first) if now.saturating_sub(first) <= max_age => {}
        Some(first) => {
            let hours = now.saturating_sub(first) / 3600;
            return Some(format!(
                "warm pool: first launched {hours} h ago, more than MaxAgeHours {}",
                max_age / 3600
            ));
        }
        None => return Some("warm pool: its first launch is unknown".into()),
    }
    let current = pool.current?;
    let version = instance.tag(TEMPLATE_VERSION_TAG);
    if let Some(now_version) = current.version
        && version.is_some_and(|v| v != now_version.to_string())
    {
        return Some(format!(
            "warm pool: launched from launch template version {}, the group's is now {now_version}",
            version.unwrap_or_default()
        ));
    }
    if let (Some(image), Some(own)) = (&current.image, &instance.image_id)
        && image != own
    {
        return Some(format!(
            "warm pool: its image {own} is not the group's {image} any more"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ec2::{FIRST_LAUNCH_TAG, POOL_TAG, POOLED_AT_TAG};

    const NOW: i64 = 1_800_000_000;
    const HOUR: i64 = 3600;

    fn pooled(id: &str, state: &str, first: i64, version: &str) -> Instance {
        Instance {
            id: id.into(),
            state: InstanceState::parse(state),
            address: Some("10.0.0.1".into()),
            private_dns_name: None,
            tags: vec![
                (POOL_TAG.into(), "aws-a".into()),
                (POOLED_AT_TAG.into(), (NOW - 600).to_string()),
                (FIRST_LAUNCH_TAG.into(), first.to_string()),
                (TEMPLATE_VERSION_TAG.into(), version.into()),
            ],
            launch_time: Some(NOW - 700),
            instance_type: Some("t3.micro".into()),
            availability_zone: None,
            lifecycle: None,
            reservation_id: None,
            launch_index: None,
            image_id: Some("ami-1".into()),
        }
    }

    fn settings(size: u32) -> WarmPool {
        WarmPool {
            size,
            max_age: std::time::Duration::from_secs(24 * 3600),
            volume_cost_per_hour: None,
        }
    }

    /// What the group launches now: version 2 of its template, image ami-1.
    fn current() -> Current {
        Current {
            version: Some(2),
            image: Some("ami-1".into()),
        }
    }

    fn pool<'a>(
        settings: &'a WarmPool,
        instances: &'a [Instance],
        current: &'a Current,
        claimed: &'a BTreeSet<String>,
    ) -> Pool<'a> {
        Pool {
            settings: Some(settings),
            instances: instances.iter().collect(),
            current: Some(current),
            claimed,
            now: NOW,
            grace: 300,
        }
    }

    fn trimmed(pool: &Pool) -> Vec<(String, String)> {
        let mut ids: Vec<(String, String)> = trims(pool)
            .into_iter()
            .map(|(i, why)| (i.id.clone(), why))
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn old_outdated_running_and_surplus_instances_go_and_claimed_ones_stay() {
        let instances = [
            pooled("i-old", "stopped", NOW - 25 * HOUR, "2"),
            pooled("i-v1", "stopped", NOW - HOUR, "1"),
            pooled("i-run", "running", NOW - HOUR, "2"),
            pooled("i-new", "stopped", NOW - HOUR, "2"),
            pooled("i-newer", "stopped", NOW - 60, "2"),
            pooled("i-claimed", "stopped", NOW - 30 * HOUR, "1"),
        ];
        let claimed = BTreeSet::from(["i-claimed".to_string()]);
        let (current, settings) = (current(), settings(1));
        let pool = pool(&settings, &instances, &current, &claimed);
        let got = trimmed(&pool);
        let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["i-new", "i-old", "i-run", "i-v1"], "{got:?}");
        assert!(got[0].1.contains("beyond its size of 1"));
        assert!(got[1].1.contains("more than MaxAgeHours 24"));
        assert!(got[2].1.contains("running without a node"));
        assert!(got[3].1.contains("version 1, the group's is now 2"));
    }

    #[test]
    fn a_new_image_a_gone_pool_and_a_just_pooled_running_instance() {
        let mut moved = pooled("i-ami", "stopped", NOW - HOUR, "2");
        moved.image_id = Some("ami-0".into());
        let mut stopping = pooled("i-stopping", "running", NOW - HOUR, "2");
        stopping.tags[1].1 = (NOW - 5).to_string();
        let instances = [moved, stopping];
        let claimed = BTreeSet::new();
        let (current, settings) = (current(), settings(5));
        let mut pool = pool(&settings, &instances, &current, &claimed);
        let got = trimmed(&pool);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].1.contains("image ami-0"), "{got:?}");
        pool.settings = None;
        assert_eq!(trimmed(&pool).len(), 2, "no pool any more: all go");
    }
}
