//! Advisory locks between runs of our programs: a file in `StateDirectory`,
//! locked with `flock`, released when the holder exits, however it exits.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::budget::Deadline;
use crate::files::{self, Access, SharedFileError};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open the lock file: {0}")]
    Open(#[source] SharedFileError),
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Holds an exclusive lock while it lives.
#[derive(Debug)]
pub struct Held(#[allow(dead_code)] File);

/// The lock file `slurm-ec2-<name>.lock` in `state_dir`.
pub fn path_for(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(format!("slurm-ec2-{name}.lock"))
}

/// The state folder is SlurmUser's, and what root creates there is given to
/// it, so that resume (SlurmUser) and change-state (root) open the same lock.
fn open(path: &Path) -> Result<File, LockError> {
    files::open_shared(path, Access::ReadWrite, 0o644, None).map_err(LockError::Open)
}

/// Takes the lock at once, or `None` when another process holds it.
pub fn try_lock(path: &Path) -> Result<Option<Held>, LockError> {
    let file = open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(Held(file))),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(source)) => Err(LockError::Lock {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Waits for the lock until `deadline`; `None` when it is still held then.
pub async fn lock_before(path: &Path, deadline: Deadline) -> Result<Option<Held>, LockError> {
    loop {
        if let Some(held) = try_lock(path)? {
            return Ok(Some(held));
        }
        let pause = Duration::from_millis(50 + fastrand::u64(0..50));
        if deadline.remaining() <= pause {
            return Ok(None);
        }
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), "resume-aws-a");
        assert_eq!(path, dir.path().join("slurm-ec2-resume-aws-a.lock"));
        let held = try_lock(&path).unwrap().expect("free");
        assert!(try_lock(&path).unwrap().is_none(), "held by the first");
        drop(held);
        assert!(try_lock(&path).unwrap().is_some(), "free again");
    }

    #[test]
    fn a_planted_link_or_fifo_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("private");
        std::fs::write(&target, "").unwrap();
        std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let link = path_for(dir.path(), "change-state");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(try_lock(&link), Err(LockError::Open(_))));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&target).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let fifo = path_for(dir.path(), "fifo");
        crate::fixtures::mkfifo(&fifo);
        assert!(matches!(try_lock(&fifo), Err(LockError::Open(_))));
    }

    #[tokio::test]
    async fn waits_until_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        let held = try_lock(&path).unwrap().unwrap();
        let waited = lock_before(&path, Deadline::after(Duration::from_millis(200)))
            .await
            .unwrap();
        assert!(waited.is_none());
        let path2 = path.clone();
        let waiter = tokio::spawn(async move {
            lock_before(&path2, Deadline::after(Duration::from_secs(5)))
                .await
                .unwrap()
                .is_some()
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        drop(held);
        assert!(waiter.await.unwrap());
    }
}
