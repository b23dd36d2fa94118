//! One account's calls: each attempt paced to EC2's buckets and counted,
//! failed attempts tried again under the one back-off policy, and nothing
//! started once the run's budget is spent.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

use super::{Ec2Error, INSTANCE_NOT_FOUND, pace};
use crate::budget::{Backoff, Deadline};

/// EC2 requests made by one program run, by action, for the summary line;
/// and those EC2 throttled or that were tried again, for the event log.
#[derive(Debug, Default)]
pub struct CallCounter {
    attempts: Mutex<BTreeMap<&'static str, usize>>,
    trouble: Mutex<BTreeMap<&'static str, Trouble>>,
}

/// One action's attempts that EC2 throttled, and its retries, in one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trouble {
    pub throttled: u64,
    pub retried: u64,
}

impl CallCounter {
    pub fn count(&self, action: &'static str) {
        if let Ok(mut map) = self.attempts.lock() {
            *map.entry(action).or_default() += 1;
        }
    }

    /// An attempt failed: throttled or not, and tried again or not.
    pub fn failed(&self, action: &'static str, throttled: bool, retried: bool) {
        if let Ok(mut map) = self.trouble.lock() {
            let trouble = map.entry(action).or_default();
            trouble.throttled += u64::from(throttled);
            trouble.retried += u64::from(retried);
        }
    }

    /// The actions with throttled or retried attempts in this run.
    pub fn trouble(&self) -> BTreeMap<&'static str, Trouble> {
        let mut map = self.trouble.lock().map(|m| m.clone()).unwrap_or_default();
        map.retain(|_, t| *t != Trouble::default());
        map
    }

    /// `CreateFleet=1 CreateTags=2 …`, or `none`.
    pub fn summary(&self) -> String {
        let map = self.attempts.lock().map(|m| m.clone()).unwrap_or_default();
        if map.is_empty() {
            return "none".to_string();
        }
        map.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One account's calls: paced to its buckets, counted for the run's summary,
/// retried, and never started once the run's budget is spent.
pub(crate) struct Meter {
    calls: std::sync::Arc<CallCounter>,
    pacer: pace::Pacer,
    deadline: Deadline,
    max_attempts: u32,
}

impl Meter {
    pub(super) fn new(
        calls: std::sync::Arc<CallCounter>,
        pacer: pace::Pacer,
        deadline: Deadline,
        max_attempts: u32,
    ) -> Meter {
        Meter {
            calls,
            pacer,
            deadline,
            max_attempts: max_attempts.max(1),
        }
    }

    /// Waits for a token of `action`'s bucket, and counts the attempt;
    /// refuses when the token would come after `deadline`.
    async fn start(
        &self,
        action: &'static str,
        context: &str,
        deadline: Deadline,
    ) -> Result<(), Ec2Error> {
        self.pacer
            .take(crate::rates::Bucket::of(action), &deadline)
            .await
            .map_err(|_| Ec2Error::out_of_time(action, context))?;
        self.calls.count(action);
        Ok(())
    }

    /// Sends one request with `send`: the run's only retry of EC2 calls (the
    /// SDK's own is off). Each attempt waits for its token and is counted; a
    /// `retryable` failure is tried again after the back-off, until
    /// `Ec2MaxAttempts` attempts or the run's deadline.
    pub(crate) async fn call<T, E, F, Fut>(
        &self,
        action: &'static str,
        context: &str,
        send: F,
    ) -> Result<T, Ec2Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.call_with(action, context, self.deadline, |_| false, send)
            .await
    }

    /// As [`Meter::call`], for a call about instances just launched, ending
    /// by `deadline` if that comes before the run's: EC2 not knowing one of
    /// them yet (`InvalidInstanceID.NotFound`, eventual consistency) is
    /// tried again too.
    pub(crate) async fn call_on_new<T, E, F, Fut>(
        &self,
        action: &'static str,
        context: &str,
        deadline: Deadline,
        send: F,
    ) -> Result<T, Ec2Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let not_yet = |error: &Ec2Error| error.code.is(INSTANCE_NOT_FOUND);
        let deadline = deadline.earlier(self.deadline);
        self.call_with(action, context, deadline, not_yet, send)
            .await
    }

    /// The run's deadline.
    pub(crate) fn deadline(&self) -> Deadline {
        self.deadline
    }

    async fn call_with<T, E, F, Fut>(
        &self,
        action: &'static str,
        context: &str,
        deadline: Deadline,
        not_yet: fn(&Ec2Error) -> bool,
        mut send: F,
    ) -> Result<T, Ec2Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut backoff = Backoff::new();
        let mut attempt = 1;
        loop {
            self.start(action, context, deadline).await?;
            let error = match send().await {
                Ok(answer) => return Ok(answer),
                Err(error) => Ec2Error::from_sdk(action, context, error),
            };
            let again = error.retryable || not_yet(&error);
            let throttled = super::is_throttling(error.code.as_str());
            if !again || attempt >= self.max_attempts || !backoff.wait(&deadline).await {
                self.calls.failed(action, throttled, false);
                return Err(error);
            }
            self.calls.failed(action, throttled, true);
            tracing::info!("Retrying {action} {context} after {}", error.code);
            attempt += 1;
        }
    }
}
