//! Advisory locks between runs of our programs: a file beside the log, locked
//! with `flock`, released when the holder exits, however it exits.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ec2::Deadline;

#[derive(Debug, thiserror::Error)]
#[error("cannot open the lock file {}: {source}", path.display())]
pub struct LockError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Holds an exclusive lock while it lives.
#[derive(Debug)]
pub struct Held(#[allow(dead_code)] File);

/// The lock file `slurm-ec2-<name>.lock` in the folder of `log_file`.
pub fn path_for(log_file: &Path, name: &str) -> PathBuf {
    log_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("/tmp"))
        .join(format!("slurm-ec2-{name}.lock"))
}

fn open(path: &Path) -> Result<File, LockError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o664)
        .open(path)
        .map_err(|source| LockError {
            path: path.to_path_buf(),
            source,
        })?;
    // resume and suspend run as SlurmUser, change-state as root: both must open it.
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o664));
    Ok(file)
}

/// Takes the lock at once, or `None` when another process holds it.
pub fn try_lock(path: &Path) -> Result<Option<Held>, LockError> {
    let file = open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(Held(file))),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(source)) => Err(LockError {
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
        let path = path_for(&dir.path().join("x.log"), "resume-aws-a");
        assert_eq!(path, dir.path().join("slurm-ec2-resume-aws-a.lock"));
        let held = try_lock(&path).unwrap().expect("free");
        assert!(try_lock(&path).unwrap().is_none(), "held by the first");
        drop(held);
        assert!(try_lock(&path).unwrap().is_some(), "free again");
        assert_eq!(
            path_for(Path::new("x.log"), "a"),
            Path::new("/tmp/slurm-ec2-a.lock")
        );
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
