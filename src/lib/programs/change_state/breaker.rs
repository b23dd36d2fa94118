//! The breaker of node groups whose instances never boot. Each failure to
//! register (a node DOWN and powered down with Slurm's `ResumeTimeout
//! reached`: ResumeFailProgram took its instance) costs an instance's boot
//! and delays the jobs. After `BootFailuresBeforeHold` such failures in a
//! row in one node group, the group is held DOWN for
//! `BootFailureHoldSeconds`, twice as long at each hold in a row up to
//! `BootFailureHoldMaxSeconds`; once a hold ends, the next failure holds it
//! again. A node of the group that registers on an instance launched after
//! the last failure closes the breaker. Only that group stops.
//!
//! What the breaker remembers between runs lives in `StateDirectory`, in
//! `slurm-ec2-breakers.json`, which only change-state writes (SlurmUser's,
//! mode 0644, under change-state's lock). Its values are hints: bounded on
//! reading, and a file that cannot be read is a breaker that starts afresh.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::step::Found;
use crate::config::{Config, NodeGroup};
use crate::files::{self, ReadError};
use crate::slurm::NodeInfo;
use crate::slurm::reason::{is_resume_timeout, reason_time};

const FILE_NAME: &str = "slurm-ec2-breakers.json";
const MAX_BYTES: u64 = 256 * 1024;
/// The failures remembered per group, so that each is counted once.
const COUNTED_KEPT: usize = 64;
/// Holds in a row beyond which the hold no longer grows (2^16 times the first).
const MOST_HOLDS: u32 = 16;

/// What the breaker remembers of one node group.
#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq)]
#[serde(default)]
pub struct GroupBreaker {
    /// Failures to register since the last hold or registration.
    pub failures: u32,
    /// Holds in a row since the group's last registration.
    pub holds: u32,
    /// When the current or last hold ends (seconds since the epoch).
    pub held_until: Option<i64>,
    /// When the last counted failure happened.
    pub last_failure: Option<i64>,
    /// The failures counted, as (node, when), newest last.
    pub counted: Vec<(String, i64)>,
}

/// Every node group's breaker, by the group's node prefix.
#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq)]
pub struct Breakers {
    pub groups: BTreeMap<String, GroupBreaker>,
}

/// `BootFailuresBeforeHold` (0: no breaker), `BootFailureHoldSeconds` and
/// `BootFailureHoldMaxSeconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    pub failures_before_hold: u32,
    pub first_hold: i64,
    pub longest_hold: i64,
}

impl BreakerSettings {
    pub fn of(config: &Config) -> BreakerSettings {
        let seconds = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let settings = &config.settings;
        BreakerSettings {
            failures_before_hold: settings.boot_failures_before_hold,
            first_hold: seconds(settings.boot_failure_hold),
            longest_hold: seconds(settings.boot_failure_hold_max),
        }
    }

    /// The length of the `nth` hold in a row (from 1).
    pub fn hold_length(&self, nth: u32) -> i64 {
        let doublings = nth.saturating_sub(1).min(MOST_HOLDS);
        let longest = self.longest_hold.max(self.first_hold);
        self.first_hold
            .saturating_mul(1_i64 << doublings)
            .min(longest)
    }
}

/// What one node tells its group's breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sign {
    /// It missed ResumeTimeout, at that time.
    NeverRegistered { node: String, at: i64 },
    /// It is in service and responds, on an instance launched at that time.
    Registered { node: String, launched: i64 },
}

/// What a run changed in a breaker, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Held {
        group: String,
        failures: u32,
        nth: u32,
        until: i64,
    },
    Closed {
        group: String,
        node: String,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Held {
                group,
                failures,
                nth,
                until,
            } => write!(
                f,
                "Node group {group}: {failures} instance(s) in a row never registered; held DOWN until {} (hold {nth} in a row)",
                crate::slurm::reason::local_stamp(*until)
            ),
            Change::Closed { group, node } => write!(
                f,
                "Node group {group}: {node} registered; its boot failures are forgotten"
            ),
        }
    }
}

/// The signs of this cluster's nodes, by their group's node prefix.
pub fn signs<'a>(
    ours: &[(&'a NodeInfo, &'a NodeGroup)],
    instances: &[Found],
) -> Vec<(String, Sign)> {
    let mut launched: BTreeMap<String, i64> = BTreeMap::new();
    for found in instances.iter().filter(|f| f.instance.is_live()) {
        if let (Some(node), Some(time)) = (found.instance.node_name(), found.instance.launch_time) {
            let latest = launched.entry(node).or_insert(time);
            *latest = (*latest).max(time);
        }
    }
    ours.iter()
        .filter_map(|(node, group)| {
            sign_of(node, launched.get(&node.name).copied()).map(|s| (group.node_prefix(), s))
        })
        .collect()
}

fn sign_of(node: &NodeInfo, launched: Option<i64>) -> Option<Sign> {
    let state = &node.state;
    let reason = node.reason.as_deref().unwrap_or_default();
    if state.is_down() && state.powered_down() && is_resume_timeout(reason) {
        let at = reason_time(reason)?;
        return Some(Sign::NeverRegistered {
            node: node.name.clone(),
            at,
        });
    }
    let responds = state.in_service() && !state.has(crate::slurm::Flag::NotResponding);
    responds.then_some(Sign::Registered {
        node: node.name.clone(),
        launched: launched?,
    })
}

impl Breakers {
    /// Counts the new failures, closes the breakers of groups with a node
    /// that registered since their last failure, and holds the groups that
    /// failed too often.
    pub fn observe(
        &mut self,
        signs: &[(String, Sign)],
        settings: BreakerSettings,
        now: i64,
    ) -> Vec<Change> {
        if settings.failures_before_hold == 0 {
            self.groups.clear();
            return Vec::new();
        }
        let mut changes = Vec::new();
        for (group, sign) in signs {
            let breaker = self.groups.entry(group.clone()).or_default();
            if let Sign::Registered { node, launched } = sign
                && breaker.last_failure.is_some_and(|at| *launched > at)
            {
                *breaker = GroupBreaker::default();
                changes.push(Change::Closed {
                    group: group.clone(),
                    node: node.clone(),
                });
            }
        }
        for (group, sign) in signs {
            let breaker = self.groups.entry(group.clone()).or_default();
            if let Sign::NeverRegistered { node, at } = sign {
                breaker.count(node, *at, now);
            }
        }
        for (group, breaker) in &mut self.groups {
            let threshold = match breaker.holds {
                0 => settings.failures_before_hold,
                _ => 1,
            };
            let holding = breaker.held_until.is_some_and(|until| until > now);
            if holding || breaker.failures < threshold {
                continue;
            }
            breaker.holds = breaker.holds.saturating_add(1).min(MOST_HOLDS);
            let until = now.saturating_add(settings.hold_length(breaker.holds));
            breaker.held_until = Some(until);
            changes.push(Change::Held {
                group: group.clone(),
                failures: std::mem::take(&mut breaker.failures),
                nth: breaker.holds,
                until,
            });
        }
        self.groups.retain(|_, b| *b != GroupBreaker::default());
        changes
    }

    /// The groups held now, with the end of their hold.
    pub fn holds(&self, now: i64) -> BTreeMap<String, i64> {
        self.groups
            .iter()
            .filter_map(|(group, b)| Some((group.clone(), b.held_until.filter(|t| *t > now)?)))
            .collect()
    }

    /// The values read from the file, bounded: groups of the configuration
    /// only, no hold beyond the longest from now, counts within their limits.
    fn bounded(mut self, config: &Config, settings: BreakerSettings, now: i64) -> Breakers {
        let known: Vec<String> = config.node_groups().map(|g| g.node_prefix()).collect();
        self.groups.retain(|group, _| known.contains(group));
        let latest_end = now.saturating_add(settings.longest_hold.max(settings.first_hold));
        for breaker in self.groups.values_mut() {
            breaker.failures = breaker.failures.min(settings.failures_before_hold.max(1));
            breaker.holds = breaker.holds.min(MOST_HOLDS);
            breaker.held_until = breaker.held_until.map(|t| t.min(latest_end));
            breaker.last_failure = breaker.last_failure.map(|t| t.min(now));
            let excess = breaker.counted.len().saturating_sub(COUNTED_KEPT);
            breaker.counted.drain(..excess);
        }
        self
    }
}

impl GroupBreaker {
    /// Counts a failure once; those that happen during a hold come from
    /// launches before it, and are not held against the group again.
    fn count(&mut self, node: &str, at: i64, now: i64) {
        if self.counted.iter().any(|(n, t)| n == node && *t == at) {
            return;
        }
        self.counted.push((node.to_string(), at));
        let excess = self.counted.len().saturating_sub(COUNTED_KEPT);
        self.counted.drain(..excess);
        self.last_failure = Some(self.last_failure.map_or(at, |t| t.max(at)).min(now));
        if self.held_until.is_none_or(|until| until <= now) {
            self.failures = self.failures.saturating_add(1);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BreakerFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: ReadError,
    },
    #[error("{} is not a breaker state file: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: files::SharedFileError,
    },
    #[error("cannot replace {}: {source}", path.display())]
    Rename {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub fn path(config: &Config) -> PathBuf {
    config.state_dir.join(FILE_NAME)
}

/// The breakers as the last change-state left them; none when it never wrote them.
pub fn load(config: &Config, now: i64) -> Result<Breakers, BreakerFileError> {
    let path = path(config);
    let text = match files::read_bounded(&path, MAX_BYTES) {
        Ok(text) => text,
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Breakers::default());
        }
        Err(source) => return Err(BreakerFileError::Read { path, source }),
    };
    let breakers: Breakers =
        serde_json::from_str(&text).map_err(|source| BreakerFileError::Parse { path, source })?;
    Ok(breakers.bounded(config, BreakerSettings::of(config), now))
}

/// Replaces the file at once: written beside it, then renamed over it.
pub fn save(config: &Config, breakers: &Breakers) -> Result<(), BreakerFileError> {
    let path = path(config);
    let staged = staged_path(&path);
    let text = serde_json::to_string_pretty(breakers).unwrap_or_default() + "\n";
    files::write_file(&staged, &text, 0o644).map_err(|source| BreakerFileError::Write {
        path: staged.clone(),
        source,
    })?;
    std::fs::rename(&staged, &path).map_err(|source| BreakerFileError::Rename { path, source })
}

fn staged_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: BreakerSettings = BreakerSettings {
        failures_before_hold: 3,
        first_hold: 300,
        longest_hold: 3600,
    };
    const GROUP: &str = "aws-a-";

    fn failed(node: &str, at: i64) -> (String, Sign) {
        let node = node.to_string();
        (GROUP.into(), Sign::NeverRegistered { node, at })
    }

    fn registered(node: &str, launched: i64) -> (String, Sign) {
        let node = node.to_string();
        (GROUP.into(), Sign::Registered { node, launched })
    }

    #[test]
    fn holds_grow_from_the_first_to_the_longest() {
        let lengths: Vec<i64> = (1..=6).map(|n| SETTINGS.hold_length(n)).collect();
        assert_eq!(lengths, [300, 600, 1200, 2400, 3600, 3600]);
        assert_eq!(SETTINGS.hold_length(u32::MAX), 3600);
    }

    #[test]
    fn three_failures_hold_the_group_and_each_is_counted_once() {
        let mut breakers = Breakers::default();
        let two = [failed("aws-a-0", 100), failed("aws-a-1", 101)];
        assert!(breakers.observe(&two, SETTINGS, 110).is_empty());
        // The same two again (a RESUME that did not land), then a third.
        assert!(breakers.observe(&two, SETTINGS, 170).is_empty());
        let changes = breakers.observe(&[failed("aws-a-0", 200)], SETTINGS, 230);
        assert_eq!(
            changes,
            [Change::Held {
                group: GROUP.into(),
                failures: 3,
                nth: 1,
                until: 530
            }]
        );
        assert_eq!(breakers.holds(231), BTreeMap::from([(GROUP.into(), 530)]));
        assert!(breakers.holds(530).is_empty());
    }

    #[test]
    fn after_a_hold_one_failure_holds_again_twice_as_long() {
        let mut breakers = Breakers::default();
        let three = [failed("a-0", 1), failed("a-1", 2), failed("a-2", 3)];
        breakers.observe(&three, SETTINGS, 10);
        // A failure during the hold came from an earlier launch: not counted.
        assert!(
            breakers
                .observe(&[failed("a-0", 100)], SETTINGS, 100)
                .is_empty()
        );
        let changes = breakers.observe(&[failed("a-1", 400)], SETTINGS, 400);
        assert_eq!(
            changes,
            [Change::Held {
                group: GROUP.into(),
                failures: 1,
                nth: 2,
                until: 1000
            }]
        );
    }

    #[test]
    fn a_node_that_registers_after_the_failures_closes_the_breaker() {
        let mut breakers = Breakers::default();
        let three = [failed("a-0", 1), failed("a-1", 2), failed("a-2", 3)];
        breakers.observe(&three, SETTINGS, 10);
        // A node up on an instance launched before the failures says nothing.
        assert!(
            breakers
                .observe(&[registered("a-3", 2)], SETTINGS, 20)
                .is_empty()
        );
        assert!(!breakers.holds(20).is_empty());
        let changes = breakers.observe(&[registered("a-3", 350)], SETTINGS, 400);
        let closed = Change::Closed {
            group: GROUP.into(),
            node: "a-3".into(),
        };
        assert_eq!(changes, [closed]);
        assert!(breakers.holds(400).is_empty() && breakers.groups.is_empty());
    }

    #[test]
    fn no_breaker_when_the_setting_is_zero() {
        let mut breakers = Breakers::default();
        let off = BreakerSettings {
            failures_before_hold: 0,
            ..SETTINGS
        };
        let many: Vec<_> = (0..10).map(|i| failed(&format!("a-{i}"), i)).collect();
        assert!(breakers.observe(&many, off, 20).is_empty());
        assert!(breakers.holds(20).is_empty());
    }

    #[test]
    fn the_file_round_trips_and_what_is_not_one_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::fixtures::example();
        config.state_dir = dir.path().to_path_buf();
        assert_eq!(load(&config, 0).unwrap(), Breakers::default());
        let mut breakers = Breakers::default();
        let group = config.node_groups().next().unwrap().node_prefix();
        let three: Vec<_> = (0..3)
            .map(|i| {
                (
                    group.clone(),
                    Sign::NeverRegistered {
                        node: format!("{group}{i}"),
                        at: i,
                    },
                )
            })
            .collect();
        breakers.observe(&three, BreakerSettings::of(&config), 10);
        save(&config, &breakers).unwrap();
        assert_eq!(load(&config, 10).unwrap(), breakers);
        std::fs::write(path(&config), "not json").unwrap();
        assert!(matches!(
            load(&config, 10),
            Err(BreakerFileError::Parse { .. })
        ));
        std::fs::remove_file(path(&config)).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(path(&config))
            .status()
            .unwrap();
        assert!(made.success());
        assert!(matches!(
            load(&config, 10),
            Err(BreakerFileError::Read { .. })
        ));
    }

    #[test]
    fn values_read_back_are_bounded() {
        let config = crate::fixtures::example();
        let group = config.node_groups().next().unwrap().node_prefix();
        let mut read = Breakers::default();
        read.groups.insert(
            group.clone(),
            GroupBreaker {
                failures: u32::MAX,
                holds: u32::MAX,
                held_until: Some(i64::MAX),
                last_failure: Some(i64::MAX),
                counted: (0..1000).map(|i| ("n".to_string(), i)).collect(),
            },
        );
        read.groups
            .insert("no-such-group-".into(), GroupBreaker::default());
        let settings = BreakerSettings::of(&config);
        let bounded = read.bounded(&config, settings, 1000);
        let breaker = &bounded.groups[&group];
        assert_eq!(bounded.groups.len(), 1);
        assert_eq!(breaker.failures, settings.failures_before_hold);
        assert_eq!(breaker.held_until, Some(1000 + settings.longest_hold));
        assert_eq!(breaker.last_failure, Some(1000));
        assert_eq!(breaker.counted.len(), COUNTED_KEPT);
        assert_eq!(breaker.holds, MOST_HOLDS);
    }
}
