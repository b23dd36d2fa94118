//! Pacing our own EC2 calls to EC2's token buckets, so that a burst spends
//! its calls at the rate EC2 refills them instead of on `RequestLimitExceeded`.
//! EC2 keeps one bucket per account, Region and API; so do we, in a small
//! state file (in `StateDirectory`) that every run of every program of this
//! account takes under an exclusive lock for the moment of one withdrawal.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Account;
use crate::budget::Deadline;
use crate::files::{self, Access};
use crate::rates::{Bucket, Rate, RateLimits};

/// How far the calls' arrival at EC2 may lag their start: concurrent calls
/// that start 0.1 s apart can arrive in another order and closer together.
const ARRIVAL_JITTER_SECONDS: f64 = 0.3;

impl Rate {
    /// Tokens never spent, so that the calls' jitter on the way to EC2 cannot
    /// meet an empty bucket there: a third of a second of refill, at least
    /// one. The pace once the burst is spent stays the refill rate.
    fn reserve(&self) -> f64 {
        (self.per_second * ARRIVAL_JITTER_SECONDS)
            .ceil()
            .max(1.0)
            .min((self.burst - 1.0).max(0.0))
    }
}

/// The tokens left in each bucket and when that was so (seconds since the epoch).
type Levels = BTreeMap<Bucket, (f64, f64)>;

/// The bucket's next token comes after the run's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfTime;

/// Paces one account's calls.
pub struct Pacer {
    /// None: the state is kept in this process only.
    path: Option<PathBuf>,
    limits: RateLimits,
    local: Mutex<Levels>,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `name` with every byte that is not a letter, digit, `-` or `.` made `_`.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                true => c,
                false => '_',
            },
        )
        .collect()
}

impl Pacer {
    /// The pacer of `account`, its state in `dir` (None: in this process only).
    pub fn new(dir: Option<&Path>, account: &Account, limits: RateLimits) -> Pacer {
        let name = match &account.profile {
            Some(profile) => format!("{}-{}", account.region, profile),
            None => account.region.clone(),
        };
        Pacer {
            path: dir.map(|d| d.join(format!("slurm-ec2-pace-{}.state", file_safe(&name)))),
            limits,
            local: Mutex::new(Levels::new()),
        }
    }

    /// Waits until `bucket` holds a token, and takes it; refuses at once when
    /// the token would come after `deadline`.
    pub async fn take(&self, bucket: Bucket, deadline: &Deadline) -> Result<(), OutOfTime> {
        loop {
            // The state file's lock is a blocking wait, however short.
            let wait = crate::runtime::blocking(|| self.try_take(bucket, now()));
            if wait.is_zero() {
                return Ok(());
            }
            if wait >= deadline.remaining() {
                return Err(OutOfTime);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes a token at `at` and returns zero, or returns how long until
    /// one is there. A state file that cannot be used is paced in-process.
    fn try_take(&self, bucket: Bucket, at: f64) -> Duration {
        let rate = self.limits.of(bucket);
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let shared = self
            .path
            .as_deref()
            .and_then(|path| match open_locked(path) {
                Ok(file) => Some(file),
                Err(error) => {
                    tracing::debug!("Pacing in this process only: {error}");
                    None
                }
            });
        let mut levels = match &shared {
            Some(file) => read_levels(file),
            None => local.clone(),
        };
        let (tokens, since) = levels.get(&bucket).copied().unwrap_or((rate.burst, at));
        let (tokens, since) = plausible(tokens, since, rate, at);
        let elapsed = at - since;
        let tokens = (tokens + elapsed * rate.per_second).min(rate.burst);
        let needed = 1.0 + rate.reserve();
        if tokens < needed {
            // Nothing taken, nothing written: a waiting call must not move the
            // bucket's clock. At most the time to fill the whole bucket.
            let seconds = ((needed - tokens) / rate.per_second.max(0.001)).clamp(0.001, 86_400.0);
            return Duration::try_from_secs_f64(seconds).unwrap_or(Duration::from_secs(1));
        }
        levels.insert(bucket, (tokens - 1.0, at));
        match shared {
            Some(file) => write_levels(file, &levels),
            None => *local = levels,
        }
        Duration::ZERO
    }
}

/// A level read from the shared file is a hint: whatever another run (or a
/// clock stepped back, or a hand) wrote, the bucket holds from none to all of
/// its tokens, and its time is not after now.
fn plausible(tokens: f64, since: f64, rate: Rate, now: f64) -> (f64, f64) {
    (tokens.clamp(0.0, rate.burst), since.min(now))
}

/// The state file in `StateDirectory`, created if need be, under an
/// exclusive lock released when the file is closed.
fn open_locked(path: &Path) -> Result<File, String> {
    let file =
        files::open_shared(path, Access::ReadWrite, 0o644, None).map_err(|e| e.to_string())?;
    file.lock()
        .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
    Ok(file)
}

/// `<bucket> <tokens> <seconds>` lines; anything else is ignored (a bucket
/// not listed is full).
fn read_levels(file: &File) -> Levels {
    let mut text = String::new();
    if file.take(4096).read_to_string(&mut text).is_err() {
        return Levels::new();
    }
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let bucket = Bucket::parse(words.next()?)?;
            let tokens: f64 = words.next()?.parse().ok()?;
            let at: f64 = words.next()?.parse().ok()?;
            (tokens.is_finite() && at.is_finite()).then_some((bucket, (tokens, at)))
        })
        .collect()
}

fn write_levels(mut file: File, levels: &Levels) {
    let text: String = levels
        .iter()
        // Written exactly (shortest round-trip form): rounding the time would
        // add a little refill at every withdrawal.
        .map(|(bucket, (tokens, at))| format!("{} {tokens} {at}\n", bucket.name()))
        .collect();
    let written = file
        .rewind()
        .and_then(|_| file.set_len(0))
        .and_then(|_| file.write_all(text.as_bytes()));
    if let Err(error) = written {
        tracing::debug!("Cannot write the pacing state: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            region: "us-east-1".into(),
            profile: Some("hpc/admin".into()),
        }
    }

    #[test]
    fn a_burst_then_the_refill_rate() {
        let pacer = Pacer::new(None, &account(), RateLimits::default());
        let start = 1000.0;
        // 100 tokens, of which 3 (0.3 s of refill at 10 a second) stay in reserve.
        for _ in 0..97 {
            assert_eq!(pacer.try_take(Bucket::Tags, start), Duration::ZERO);
        }
        let wait = pacer.try_take(Bucket::Tags, start);
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        // A tenth of a second later, one token is back: the pace is the refill rate.
        assert_eq!(pacer.try_take(Bucket::Tags, start + 0.1), Duration::ZERO);
        assert!(!pacer.try_take(Bucket::Tags, start + 0.1).is_zero());
        assert_eq!(pacer.try_take(Bucket::Tags, start + 0.2), Duration::ZERO);
        // The other buckets are untouched.
        assert_eq!(pacer.try_take(Bucket::Mutating, start), Duration::ZERO);
    }

    #[test]
    fn two_pacers_of_one_account_share_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let limits = RateLimits(BTreeMap::from([(
            Bucket::Mutating,
            Rate {
                burst: 4.0,
                per_second: 1.0,
            },
        )]));
        let one = Pacer::new(Some(dir.path()), &account(), limits.clone());
        let two = Pacer::new(Some(dir.path()), &account(), limits);
        let at = 50.0;
        // Four tokens, one in reserve: three calls between the two pacers.
        assert!(one.try_take(Bucket::Mutating, at).is_zero());
        assert!(two.try_take(Bucket::Mutating, at).is_zero());
        assert!(one.try_take(Bucket::Mutating, at).is_zero());
        let wait = two.try_take(Bucket::Mutating, at);
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6, "{wait:?}");
        let file = dir.path().join("slurm-ec2-pace-us-east-1-hpc_admin.state");
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.starts_with("CreateFleet 1 50\n"), "{text}");
        // Another account has buckets of its own.
        let other = Account {
            region: "eu-west-1".into(),
            profile: None,
        };
        let three = Pacer::new(Some(dir.path()), &other, RateLimits::default());
        assert!(three.try_take(Bucket::Mutating, at).is_zero());
    }

    #[test]
    fn a_broken_state_file_is_a_full_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let pacer = Pacer::new(Some(dir.path()), &account(), RateLimits::default());
        let file = dir.path().join("slurm-ec2-pace-us-east-1-hpc_admin.state");
        std::fs::write(&file, "CreateTags NaN x\ngarbage\n").unwrap();
        assert!(pacer.try_take(Bucket::Tags, 10.0).is_zero());
        assert!(
            std::fs::read_to_string(&file)
                .unwrap()
                .starts_with("CreateTags 99 10\n")
        );
    }

    #[test]
    fn a_state_that_lies_is_clamped_to_what_the_bucket_can_hold() {
        let dir = tempfile::tempdir().unwrap();
        let pacer = Pacer::new(Some(dir.path()), &account(), RateLimits::default());
        let file = dir.path().join("slurm-ec2-pace-us-east-1-hpc_admin.state");
        // A huge debt once overflowed a Duration and panicked.
        std::fs::write(&file, "CreateTags -1e300 10\n").unwrap();
        let wait = pacer.try_take(Bucket::Tags, 10.0);
        assert!(wait <= Duration::from_secs_f64(0.41), "{wait:?}");
        // A time far in the future (a clock stepped back) once meant hours of waiting.
        std::fs::write(&file, "CreateTags 0 1e12\n").unwrap();
        let wait = pacer.try_take(Bucket::Tags, 10.0);
        assert!(wait <= Duration::from_secs_f64(0.41), "{wait:?}");
        // More tokens than the bucket holds are the bucket's size.
        std::fs::write(&file, "CreateTags 1e9 10\n").unwrap();
        for _ in 0..97 {
            assert!(pacer.try_take(Bucket::Tags, 10.0).is_zero());
        }
        assert!(!pacer.try_take(Bucket::Tags, 10.0).is_zero());
    }

    #[tokio::test]
    async fn a_token_after_the_deadline_is_refused_at_once() {
        let limits = RateLimits(BTreeMap::from([(
            Bucket::Mutating,
            Rate {
                burst: 2.0,
                per_second: 0.01,
            },
        )]));
        let pacer = Pacer::new(None, &account(), limits);
        let deadline = Deadline::after(Duration::from_secs(5));
        assert_eq!(pacer.take(Bucket::Mutating, &deadline).await, Ok(()));
        let started = std::time::Instant::now();
        assert_eq!(
            pacer.take(Bucket::Mutating, &deadline).await,
            Err(OutOfTime)
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_planted_link_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me").unwrap();
        let file = dir.path().join("slurm-ec2-pace-us-east-1-hpc_admin.state");
        std::os::unix::fs::symlink(&target, &file).unwrap();
        let pacer = Pacer::new(Some(dir.path()), &account(), RateLimits::default());
        assert!(pacer.try_take(Bucket::Tags, 10.0).is_zero());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    }

    #[test]
    fn every_action_has_its_bucket() {
        assert_eq!(Bucket::of("DeleteTags"), Bucket::Tags);
        assert_eq!(Bucket::of("CreateFleet"), Bucket::Mutating);
        assert_eq!(Bucket::of("DescribeSubnets"), Bucket::NonMutating);
        for bucket in Bucket::ALL {
            assert_eq!(Bucket::parse(bucket.name()), Some(bucket));
        }
    }
}
