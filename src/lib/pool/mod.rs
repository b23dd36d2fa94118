//! Warm pools: a node group's stopped instances, kept for its next nodes.
//! suspend stops an instance into its group's pool while the pool is below
//! its `Size`; resume starts pooled instances before it launches; change-state
//! trims what should not be kept. All three move a group's pool only under
//! its lock, and read and write the group's claims there.

mod claims;
pub mod report;
pub mod trim;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::budget::Deadline;
use crate::config::NodeGroup;
use crate::lock;
pub use claims::{CLAIM_SECONDS, Claims};

/// The longest any program waits for a pool's lock: its holders hold it
/// for a few EC2 calls.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// A group's pool, held: its claims may be read and changed.
pub struct Held {
    _lock: lock::Held,
    claims_path: PathBuf,
}

fn key(group: &NodeGroup) -> String {
    format!("{}-{}", group.partition, group.name)
}

fn claims_path(state_dir: &Path, group: &NodeGroup) -> PathBuf {
    state_dir.join(format!("pool-claims-{}.json", key(group)))
}

/// Takes `group`'s pool lock, waiting at most 10 s and never past
/// `deadline`; None when another program holds it that long (the caller
/// then leaves the pool alone) or the lock file cannot be opened.
pub async fn hold(state_dir: &Path, group: &NodeGroup, deadline: Deadline) -> Option<Held> {
    let path = lock::path_for(state_dir, &format!("pool-{}", key(group)));
    let wait = Deadline::after(deadline.remaining().min(LOCK_WAIT));
    match lock::lock_before(&path, wait).await {
        Ok(Some(held)) => Some(Held {
            _lock: held,
            claims_path: claims_path(state_dir, group),
        }),
        Ok(None) => {
            tracing::warn!(
                "The warm pool of {} is busy (lock {}): left alone this run",
                group.node_prefix(),
                path.display()
            );
            None
        }
        Err(error) => {
            tracing::warn!(
                "{error}: the warm pool of {} is left alone",
                group.node_prefix()
            );
            None
        }
    }
}

/// The instances claimed from `group`'s pool, read without its lock: for a
/// plan, which [`Held::claimed`] checks again before anything is done.
pub fn claimed_now(state_dir: &Path, group: &NodeGroup, now: i64) -> BTreeSet<String> {
    claims::read(&claims_path(state_dir, group), now)
        .into_keys()
        .collect()
}

impl Held {
    /// The instances claimed from this pool that nobody may take or trim.
    pub fn claimed(&self, now: i64) -> BTreeSet<String> {
        claims::read(&self.claims_path, now).into_keys().collect()
    }

    /// Records that `ids` leave the pool at `now` (resume gives them nodes);
    /// false when that cannot be written, and they must not be taken.
    pub fn claim(&self, ids: &[String], now: i64) -> bool {
        let mut claims = claims::read(&self.claims_path, now);
        claims.extend(ids.iter().map(|id| (id.clone(), now)));
        self.save(&claims)
    }

    /// Forgets the claims on `ids`: suspend pooled them again.
    pub fn release(&self, ids: &[String], now: i64) {
        let mut claims = claims::read(&self.claims_path, now);
        let before = claims.len();
        claims.retain(|id, _| !ids.contains(id));
        if claims.len() != before {
            self.save(&claims);
        }
    }

    fn save(&self, claims: &Claims) -> bool {
        match claims::write(&self.claims_path, claims) {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!("Cannot record the warm pool's claims: {error}");
                false
            }
        }
    }
}
