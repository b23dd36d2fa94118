//! When each head-node program last ran, how long it took and how it ended,
//! and when it last succeeded: one small file per program in
//! `StateDirectory` (`last-run-<program>.json`, mode 0644, owned by the
//! program's user: SlurmUser for resume and suspend, root for change-state),
//! read by the metrics. Each run replaces the file whole (a new file, then
//! a rename), so concurrent runs of one program never mix their lines: the
//! last to end stays.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The programs whose runs are recorded, as their metrics label them.
pub const PROGRAMS: [&str; 3] = ["resume", "suspend", "change_state"];

/// The most bytes a last-run file may hold.
const MAX_BYTES: u64 = 4096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastRun {
    /// When the run ended, in seconds since the epoch.
    pub ended: i64,
    pub duration_seconds: f64,
    pub succeeded: bool,
    /// When a run of this program last succeeded, this one or an earlier one.
    pub last_success: Option<i64>,
}

impl LastRun {
    /// Values from a file are hints: times in the future or a negative
    /// duration are not believed.
    fn bounded(self, now: i64) -> Option<LastRun> {
        let plausible = |t: i64| (0..=now.saturating_add(60)).contains(&t);
        let duration_ok = self.duration_seconds.is_finite() && self.duration_seconds >= 0.0;
        (plausible(self.ended) && duration_ok).then(|| LastRun {
            last_success: self.last_success.filter(|t| plausible(*t)),
            ..self
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot record the run in {}: {source}", path.display())]
pub struct LastRunError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

fn path_of(state_dir: &Path, program: &str) -> PathBuf {
    state_dir.join(format!("last-run-{program}.json"))
}

/// The last run of `program`, when one was recorded and reads as one.
pub fn read(config: &Config, program: &str, now: i64) -> Option<LastRun> {
    use std::io::Read;
    let file = crate::files::open_shared_for_reading(&path_of(&config.state_dir, program)).ok()?;
    let mut text = String::new();
    file.take(MAX_BYTES).read_to_string(&mut text).ok()?;
    serde_json::from_str::<LastRun>(&text).ok()?.bounded(now)
}

/// Records a run of `program` that ended `now` after `duration_seconds`.
pub fn record(
    config: &Config,
    program: &str,
    now: i64,
    duration_seconds: f64,
    succeeded: bool,
) -> Result<(), LastRunError> {
    let earlier = read(config, program, now).and_then(|last| last.last_success);
    let run = LastRun {
        ended: now,
        duration_seconds,
        succeeded,
        last_success: if succeeded { Some(now) } else { earlier },
    };
    let path = path_of(&config.state_dir, program);
    let text = serde_json::to_string(&run).unwrap_or_default() + "\n";
    crate::files::replace_whole(&path, &text, 0o644).map_err(|source| LastRunError { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_run_keeps_the_last_success_and_a_wild_file_is_not_believed() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::fixtures::example();
        config.state_dir = dir.path().to_path_buf();
        assert_eq!(read(&config, "resume", 1_000), None);
        record(&config, "resume", 1_000, 2.5, true).unwrap();
        record(&config, "resume", 1_060, 3.0, false).unwrap();
        let last = read(&config, "resume", 1_070).unwrap();
        assert_eq!(last.ended, 1_060);
        assert!(!last.succeeded);
        assert_eq!(last.last_success, Some(1_000));
        let path = dir.path().join("last-run-suspend.json");
        std::fs::write(
            &path,
            r#"{"ended":99999999999,"duration_seconds":1,"succeeded":true,"last_success":null}"#,
        )
        .unwrap();
        assert_eq!(read(&config, "suspend", 1_070), None);
        std::fs::write(&path, "x".repeat(10_000)).unwrap();
        assert_eq!(read(&config, "suspend", 1_070), None);
    }
}
