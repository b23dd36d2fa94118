//! The instances resume took from a pool lately, in `StateDirectory`
//! (`pool-claims-<partition>-<group>.json`, mode 0644): written by resume
//! and suspend (SlurmUser's), read by change-state (root) too. EC2 is eventually consistent: for a while after
//! resume started an instance and gave it a node, DescribeInstances may
//! still list it stopped and pooled. Nobody takes or trims a claimed
//! instance until its claim is old or suspend pools it again. Read and
//! written only under the pool's lock.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::files::{self, SharedFileError};

/// How long a claim stands: far longer than EC2 takes to agree with itself.
pub const CLAIM_SECONDS: i64 = 900;
/// The most claims a file holds (each pool is at most 10,000 instances).
const MAX_CLAIMS: usize = 10_000;
/// The most bytes a claims file may hold.
const MAX_BYTES: u64 = 64 * MAX_CLAIMS as u64;

/// Instance ids and when each was claimed, in seconds since the epoch.
pub type Claims = BTreeMap<String, i64>;

/// The claims of the file at `path` that still stand at `now`; none when
/// the file is missing or is not claims. What it says is a hint: ids that
/// are not instance ids and times not within the last `CLAIM_SECONDS` are
/// dropped.
pub fn read(path: &Path, now: i64) -> Claims {
    let Ok(file) = files::open_shared_for_reading(path) else {
        return Claims::new();
    };
    let mut text = String::new();
    if file.take(MAX_BYTES).read_to_string(&mut text).is_err() {
        return Claims::new();
    }
    let Ok(claims) = serde_json::from_str::<Claims>(&text) else {
        tracing::warn!("{} is not a list of claims: ignored", path.display());
        return Claims::new();
    };
    claims
        .into_iter()
        .filter(|(id, at)| is_instance_id(id) && standing(*at, now))
        .take(MAX_CLAIMS)
        .collect()
}

/// Replaces the file's claims with `claims`.
pub fn write(path: &Path, claims: &Claims) -> Result<(), SharedFileError> {
    let text = serde_json::to_string(claims).unwrap_or_else(|_| "{}".to_string());
    files::write_file(path, &text, 0o644)
}

fn standing(at: i64, now: i64) -> bool {
    at <= now.saturating_add(60) && now.saturating_sub(at) < CLAIM_SECONDS
}

fn is_instance_id(id: &str) -> bool {
    id.len() <= 32
        && id
            .strip_prefix("i-")
            .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn claims_round_trip_and_old_or_forged_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool-claims-aws-a.json");
        assert!(read(&path, NOW).is_empty(), "no file: no claims");
        let claims = Claims::from([
            ("i-0abc".to_string(), NOW - 10),
            ("i-0def".to_string(), NOW - CLAIM_SECONDS - 1),
            ("i-0fff".to_string(), NOW + 3600),
            ("../etc".to_string(), NOW),
        ]);
        write(&path, &claims).unwrap();
        assert_eq!(
            read(&path, NOW),
            Claims::from([("i-0abc".to_string(), NOW - 10)])
        );
        std::fs::write(&path, "not json").unwrap();
        assert!(read(&path, NOW).is_empty());
    }

    #[test]
    fn a_planted_link_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, r#"{"i-0abc": 1800000000}"#).unwrap();
        let path = dir.path().join("pool-claims-aws-a.json");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(read(&path, NOW).is_empty());
        assert!(write(&path, &Claims::new()).is_err());
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            r#"{"i-0abc": 1800000000}"#
        );
    }
}
