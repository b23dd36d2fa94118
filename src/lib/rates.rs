//! EC2's request buckets and their sizes, as `Ec2RateLimits` may set them:
//! read by the configuration, spent by the pacer.

use std::collections::BTreeMap;

/// One of EC2's request buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    /// CreateFleet and the other mutating calls.
    Mutating,
    /// CreateTags and DeleteTags.
    Tags,
    /// TerminateInstances requests.
    Terminate,
    /// StartInstances requests: a bucket of their own, as RunInstances has.
    Start,
    /// DescribeInstances with filters or pagination, and the other
    /// non-mutating calls.
    NonMutating,
}

impl Bucket {
    pub const ALL: [Bucket; 5] = [
        Bucket::Mutating,
        Bucket::Tags,
        Bucket::Terminate,
        Bucket::Start,
        Bucket::NonMutating,
    ];

    /// The bucket an action draws from.
    pub fn of(action: &str) -> Bucket {
        match action {
            "CreateTags" | "DeleteTags" => Bucket::Tags,
            "TerminateInstances" => Bucket::Terminate,
            "CreateFleet" | "RunInstances" | "StopInstances" => Bucket::Mutating,
            "StartInstances" => Bucket::Start,
            _ => Bucket::NonMutating,
        }
    }

    /// Its key in `Ec2RateLimits` and in the state file.
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Mutating => "CreateFleet",
            Bucket::Tags => "CreateTags",
            Bucket::Terminate => "TerminateInstances",
            Bucket::Start => "StartInstances",
            Bucket::NonMutating => "DescribeInstances",
        }
    }

    pub fn parse(name: &str) -> Option<Bucket> {
        Bucket::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// A bucket's size and refill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub burst: f64,
    pub per_second: f64,
}

/// The buckets' sizes: EC2's documented defaults, or what `Ec2RateLimits`
/// sets for an account whose limits were raised.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits(pub BTreeMap<Bucket, Rate>);

impl Default for RateLimits {
    fn default() -> Self {
        let rate = |burst, per_second| Rate { burst, per_second };
        RateLimits(BTreeMap::from([
            (Bucket::Mutating, rate(50.0, 5.0)),
            (Bucket::Tags, rate(100.0, 10.0)),
            (Bucket::Terminate, rate(100.0, 5.0)),
            (Bucket::Start, rate(5.0, 2.0)),
            (Bucket::NonMutating, rate(100.0, 20.0)),
        ]))
    }
}

impl RateLimits {
    pub fn of(&self, bucket: Bucket) -> Rate {
        self.0
            .get(&bucket)
            .copied()
            .or_else(|| RateLimits::default().0.get(&bucket).copied())
            .unwrap_or(Rate {
                burst: 1.0,
                per_second: 1.0,
            })
    }
}
