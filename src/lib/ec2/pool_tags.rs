//! The tags of a warm pool's instances: what marks an instance as pooled
//! (stopped, no node's), how old it is, and which launch indexes a
//! restarted reservation's node list names.

use super::{ACCOUNT_TAG, Instance, JOB_ID_TAG, NODES_TAG, USER_TAG};
use crate::config::NodeGroup;

/// On a pooled instance, its node group's node prefix; empty once it left the pool.
pub const POOL_TAG: &str = "slurm-ec2:pool";
/// When it entered the pool, in seconds since the epoch.
pub const POOLED_AT_TAG: &str = "slurm-ec2:pooled-at";
/// When it was first launched, in seconds since the epoch: EC2's
/// `LaunchTime` is its last start.
pub const FIRST_LAUNCH_TAG: &str = "slurm-ec2:first-launch";
/// On instances restarted from the pool: the launch indexes, in order, that
/// the node list (`slurm-ec2:nodes`) names, as ranges (`0-3,7`).
pub const INDEXES_TAG: &str = "slurm-ec2:indexes";
/// The most launch indexes one tag names (a fleet's most instances).
const MAX_INDEXES: usize = 1000;

/// The tags that pool `instance` of `group` at `now`, in one CreateTags: no
/// tag names a node or a job any more (they are emptied, which EC2 does in
/// the same call as it adds the pool's), and its first launch is kept.
pub fn pooling_tags(instance: &Instance, group: &NodeGroup, now: i64) -> Vec<(String, String)> {
    let mut tags = vec![
        ("Name".to_string(), String::new()),
        (POOL_TAG.to_string(), group.node_prefix()),
        (POOLED_AT_TAG.to_string(), now.to_string()),
        (INDEXES_TAG.to_string(), String::new()),
    ];
    if instance.tag(FIRST_LAUNCH_TAG).is_none() {
        let first = instance.launch_time.unwrap_or(now);
        tags.push((FIRST_LAUNCH_TAG.to_string(), first.to_string()));
    }
    let names_a_node = |key: &str| {
        key.starts_with(NODES_TAG)
            || [JOB_ID_TAG, USER_TAG, ACCOUNT_TAG].contains(&key)
            || group
                .tags
                .iter()
                .any(|t| t.key == key && t.has_placeholder())
    };
    tags.extend(
        instance
            .tags
            .iter()
            .filter(|(key, value)| names_a_node(key) && !value.is_empty())
            .map(|(key, _)| (key.clone(), String::new())),
    );
    tags
}

/// The tags that take an instance out of the pool, beside its node's.
pub fn unpooling_tags() -> Vec<(String, String)> {
    vec![
        (POOL_TAG.to_string(), String::new()),
        (POOLED_AT_TAG.to_string(), String::new()),
    ]
}

impl Instance {
    /// In a warm pool: stopped (or on its way to be) for its group's next node.
    pub fn is_pooled(&self) -> bool {
        self.tag(POOL_TAG).is_some_and(|prefix| !prefix.is_empty())
    }

    /// When it was first launched, from its tag (a hint: a time in the
    /// future or before 2000 is not believed), else EC2's `LaunchTime`.
    pub fn first_launch(&self, now: i64) -> Option<i64> {
        match self.tag(FIRST_LAUNCH_TAG) {
            Some(text) => plausible_time(text, now),
            None => self.launch_time,
        }
    }

    /// When it entered the pool, from its tag, if plausible.
    pub fn pooled_at(&self, now: i64) -> Option<i64> {
        plausible_time(self.tag(POOLED_AT_TAG)?, now)
    }
}

fn plausible_time(text: &str, now: i64) -> Option<i64> {
    const YEAR_2000: i64 = 946_684_800;
    text.parse::<i64>()
        .ok()
        .filter(|t| (YEAR_2000..=now.saturating_add(60)).contains(t))
}

/// `indexes` as ranges: `0-3,7` for 0, 1, 2, 3, 7 (ascending).
pub fn indexes_text(indexes: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indexes.len() {
        let start = indexes[i];
        let mut end = start;
        while i + 1 < indexes.len() && Some(indexes[i + 1]) == end.checked_add(1) {
            end = indexes[i + 1];
            i += 1;
        }
        parts.push(match start == end {
            true => start.to_string(),
            false => format!("{start}-{end}"),
        });
        i += 1;
    }
    parts.join(",")
}

/// The position of launch index `index` among the ascending `text` ranges;
/// None when it is not there, or the text is not such ranges of at most
/// 1000 indexes.
pub fn position_in_indexes(text: &str, index: usize) -> Option<usize> {
    let mut count = 0usize;
    let mut last: Option<usize> = None;
    let mut position = None;
    for part in text.split(',') {
        let (start, end) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
            None => {
                let one = part.parse::<usize>().ok()?;
                (one, one)
            }
        };
        if end < start || last.is_some_and(|l| start <= l) {
            return None;
        }
        let width = end - start + 1;
        if count + width > MAX_INDEXES {
            return None;
        }
        if (start..=end).contains(&index) {
            position = Some(count + (index - start));
        }
        count += width;
        last = Some(end);
    }
    position
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_round_trip_and_give_each_its_position() {
        let indexes = [0, 1, 2, 3, 7, 9, 10];
        let text = indexes_text(&indexes);
        assert_eq!(text, "0-3,7,9-10");
        for (position, index) in indexes.iter().enumerate() {
            assert_eq!(position_in_indexes(&text, *index as usize), Some(position));
        }
        assert_eq!(position_in_indexes(&text, 5), None);
        assert_eq!(position_in_indexes(&text, 11), None);
    }

    #[test]
    fn hostile_indexes_name_nobody() {
        for text in ["", "3-1", "5,2", "0-99999", "x", "1-", "-1", "0-4,4"] {
            assert_eq!(position_in_indexes(text, 2), None, "{text:?}");
        }
    }

    #[test]
    fn pooling_names_no_node_keeps_the_first_launch_and_unpooling_leaves_the_pool() {
        let config = crate::fixtures::example();
        let group = config.node_groups().next().unwrap();
        let now = 1_800_000_000;
        let mut instance = Instance {
            id: "i-1".into(),
            state: crate::ec2::InstanceState::Running,
            address: Some("10.0.0.1".into()),
            private_dns_name: None,
            tags: vec![
                ("Name".into(), format!("{}3", group.node_prefix())),
                (NODES_TAG.into(), format!("{}[2-3]", group.node_prefix())),
                (JOB_ID_TAG.into(), "17".into()),
                ("slurm-ec2:cluster".into(), "c".into()),
            ],
            launch_time: Some(now - 7200),
            instance_type: None,
            availability_zone: None,
            lifecycle: None,
            reservation_id: None,
            launch_index: Some(1),
            image_id: None,
        };
        assert_eq!(
            instance.node_name(),
            Some(format!("{}3", group.node_prefix()))
        );
        let tags = pooling_tags(&instance, group, now);
        let value = |key: &str| tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(value("Name"), Some(""));
        assert_eq!(value(NODES_TAG), Some(""));
        assert_eq!(value(JOB_ID_TAG), Some(""));
        assert_eq!(value(POOL_TAG), Some(group.node_prefix().as_str()));
        assert_eq!(value(FIRST_LAUNCH_TAG), Some("1799992800"));
        assert_eq!(value("slurm-ec2:cluster"), None, "the cluster's tags stay");
        // Pooled: no node's, and its first launch survives a restart.
        for (key, v) in tags {
            instance.tags.retain(|(k, _)| *k != key);
            instance.tags.push((key, v));
        }
        assert!(instance.is_pooled());
        assert_eq!(instance.node_name(), None);
        instance.launch_time = Some(now);
        assert_eq!(instance.first_launch(now), Some(now - 7200));
        let again = pooling_tags(&instance, group, now);
        assert!(
            again.iter().all(|(k, _)| k != FIRST_LAUNCH_TAG),
            "kept, not rewritten"
        );
        for (key, v) in unpooling_tags() {
            instance.tags.retain(|(k, _)| *k != key);
            instance.tags.push((key, v));
        }
        assert!(!instance.is_pooled());
    }

    #[test]
    fn times_from_tags_are_hints() {
        let now = 1_800_000_000;
        assert_eq!(plausible_time("1799999000", now), Some(1_799_999_000));
        assert_eq!(plausible_time("1900000000", now), None, "the future");
        assert_eq!(plausible_time("12", now), None, "before 2000");
        assert_eq!(plausible_time("soon", now), None);
    }
}
