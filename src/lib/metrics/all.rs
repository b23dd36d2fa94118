//! Every family slurm-ec2 writes: the gauges of an observation (when there
//! is one), the counters of the event log, each program's last run; and the
//! `MetricsFile` they are written to.

use super::{Counters, Family, Gauges, Sample, Type};
use crate::config::Config;
use crate::last_run::{self, LastRun};

/// Every family: the gauges (none when Slurm or EC2 could not be read), the
/// counters of the event log, and the programs' last runs.
pub fn families(config: &Config, gauges: Option<&Gauges>, now: i64) -> Vec<Family> {
    let mut families = vec![
        Family::new(
            "slurm_ec2_observed",
            Type::Gauge,
            "1 when Slurm and EC2 were read for these metrics, 0 when either failed.",
        )
        .with([Sample::new(&[], f64::from(u8::from(gauges.is_some())))]),
    ];
    if let Some(gauges) = gauges {
        families.extend(gauges.families());
    }
    families.extend(counters(config));
    families.extend(last_runs(config, now));
    families
}

/// Writes the metrics to `MetricsFile`, when set: a failure is logged, never fatal.
pub fn write_file(config: &Config, gauges: Option<&Gauges>, now: i64) {
    let Some(path) = &config.metrics_file else {
        return;
    };
    let text = super::render(&families(config, gauges, now));
    if let Err(error) = super::write_metrics_file(path, &text) {
        tracing::error!("{error}");
    }
}

/// The counters of the event log, when there is one; none when it cannot be read.
fn counters(config: &Config) -> Vec<Family> {
    let Some(path) = &config.event_log_file else {
        return Vec::new();
    };
    let mut counters = Counters::default();
    match crate::events::read_events(path, |event| counters.add(config, &event)) {
        Ok(summary) => {
            counters.skipped_lines = summary.skipped;
            if summary.truncated {
                tracing::warn!(
                    "EventLogFile {} is longer than the metrics read: rotate it",
                    path.display()
                );
            }
            counters.families()
        }
        Err(error) => {
            tracing::warn!("{error}: no counters in the metrics");
            Vec::new()
        }
    }
}

/// Each program's last run: when, how long, whether it succeeded, and its last success.
fn last_runs(config: &Config, now: i64) -> Vec<Family> {
    let runs: Vec<(&str, LastRun)> = last_run::PROGRAMS
        .iter()
        .filter_map(|program| Some((*program, last_run::read(config, program, now)?)))
        .collect();
    let each = |value: &dyn Fn(&LastRun) -> Option<f64>| -> Vec<Sample> {
        runs.iter()
            .filter_map(|(program, run)| Some(Sample::new(&[("program", program)], value(run)?)))
            .collect()
    };
    vec![
        Family::new(
            "slurm_ec2_last_run_timestamp_seconds",
            Type::Gauge,
            "When each program's last run ended.",
        )
        .with(each(&|r| Some(r.ended as f64))),
        Family::new(
            "slurm_ec2_last_run_duration_seconds",
            Type::Gauge,
            "How long each program's last run took.",
        )
        .with(each(&|r| Some(r.duration_seconds))),
        Family::new(
            "slurm_ec2_last_run_success",
            Type::Gauge,
            "1 when each program's last run succeeded, else 0.",
        )
        .with(each(&|r| Some(f64::from(u8::from(r.succeeded))))),
        Family::new(
            "slurm_ec2_last_success_timestamp_seconds",
            Type::Gauge,
            "When a run of each program last succeeded.",
        )
        .with(each(&|r| r.last_success.map(|t| t as f64))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every family slurm-ec2 writes, whatever it observed.
    fn written_names() -> BTreeSet<&'static str> {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::fixtures::example();
        let events = dir.path().join("events.jsonl");
        std::fs::write(&events, "").unwrap();
        config.event_log_file = Some(events);
        config.state_dir = dir.path().to_path_buf();
        let gauges = Gauges::default();
        families(&config, Some(&gauges), 0)
            .iter()
            .map(|f| f.name)
            .collect()
    }

    /// The `slurm_ec2_…` names a text uses.
    fn used_names(text: &str) -> BTreeSet<String> {
        text.match_indices("slurm_ec2_")
            .map(|(at, _)| {
                text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_dashboard_the_alerts_and_the_readme_name_only_metrics_that_are_written() {
        let written = written_names();
        let files = [
            (
                "dashboard",
                include_str!("../../../deploy/monitoring/slurm-ec2-dashboard.json"),
            ),
            (
                "alerts",
                include_str!("../../../deploy/monitoring/slurm-ec2-alerts.yml"),
            ),
            (
                "alert tests",
                include_str!("../../../deploy/monitoring/slurm-ec2-alerts.test.yml"),
            ),
        ];
        for (what, text) in files {
            let used = used_names(text);
            assert!(!used.is_empty(), "{what} uses no metric");
            for name in used {
                assert!(
                    written.contains(name.as_str()),
                    "the {what} uses {name}, which is not written"
                );
            }
        }
        let readme = used_names(include_str!("../../../README.md"));
        for name in &written {
            assert!(readme.contains(*name), "the README does not list {name}");
        }
    }

    #[test]
    fn without_an_observation_the_counters_and_last_runs_are_still_written() {
        let config = crate::fixtures::example();
        let text = crate::metrics::render(&families(&config, None, 0));
        assert!(text.contains("slurm_ec2_observed 0\n"), "{text}");
        assert!(!text.contains("slurm_ec2_nodes"), "{text}");
        assert!(
            text.contains("# TYPE slurm_ec2_last_run_success gauge"),
            "{text}"
        );
    }
}
