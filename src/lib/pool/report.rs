//! What each warm pool holds, for `slurm-ec2 status`. Plain data.

use serde::Serialize;

use crate::config::Config;
use crate::ec2::{Instance, InstanceState};

/// One node group's warm pool.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PoolReport {
    /// Its node group's node prefix (`aws-od-`).
    pub pool: String,
    pub size: u32,
    pub max_age_hours: u64,
    /// Pooled instances ready to start.
    pub stopped: usize,
    /// Pooled instances still stopping.
    pub stopping: usize,
    /// Seconds since the first launch of the oldest and the youngest.
    pub oldest_seconds: Option<i64>,
    pub youngest_seconds: Option<i64>,
    /// What the pool costs an hour in volumes (`VolumeCostPerHour`), when given.
    pub volume_cost_per_hour: Option<f64>,
}

/// Each configured pool, with this cluster's pooled instances in it.
pub fn pools<'i>(
    config: &Config,
    instances: impl Iterator<Item = &'i Instance> + Clone,
    now: i64,
) -> Vec<PoolReport> {
    let mut reports = Vec::new();
    for group in config.node_groups() {
        let Some(settings) = &group.warm_pool else {
            continue;
        };
        let prefix = group.node_prefix();
        let members: Vec<&Instance> = instances
            .clone()
            .filter(|i| i.is_pooled() && i.tag(crate::ec2::POOL_TAG) == Some(prefix.as_str()))
            .collect();
        let count = |state| members.iter().filter(|i| i.state == state).count();
        let ages: Vec<i64> = members
            .iter()
            .filter_map(|i| i.first_launch(now))
            .map(|t| now.saturating_sub(t))
            .collect();
        let stopped = count(InstanceState::Stopped);
        let stopping = count(InstanceState::Stopping);
        reports.push(PoolReport {
            pool: prefix,
            size: settings.size,
            max_age_hours: settings.max_age.as_secs() / 3600,
            stopped,
            stopping,
            oldest_seconds: ages.iter().max().copied(),
            youngest_seconds: ages.iter().min().copied(),
            volume_cost_per_hour: settings
                .volume_cost_per_hour
                .map(|price| price * (stopped + stopping) as f64),
        });
    }
    reports
}

/// `Warm pool aws-od-: 3 stopped (1 stopping) of 20, first launched 2.1 h to
/// 0.1 h ago (MaxAgeHours 24); about $0.030 an hour in volumes`
impl std::fmt::Display for PoolReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pool = self;
        let mut line = format!("Warm pool {}: {} stopped", pool.pool, pool.stopped);
        if pool.stopping > 0 {
            line.push_str(&format!(" ({} stopping)", pool.stopping));
        }
        line.push_str(&format!(" of {}", pool.size));
        if let (Some(oldest), Some(youngest)) = (pool.oldest_seconds, pool.youngest_seconds) {
            let hours = |seconds: i64| seconds as f64 / 3600.0;
            line.push_str(&format!(
                ", first launched {:.1} h to {:.1} h ago",
                hours(oldest),
                hours(youngest)
            ));
        }
        line.push_str(&format!(" (MaxAgeHours {})", pool.max_age_hours));
        if let Some(cost) = pool.volume_cost_per_hour {
            line.push_str(&format!("; about ${cost:.3} an hour in volumes"));
        }
        f.write_str(&line)
    }
}
