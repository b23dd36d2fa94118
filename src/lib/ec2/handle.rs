//! One handle per account: the SDK client and the run's call counter travel
//! together, and each method is one thing the programs ask of EC2.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use super::fleet::{self, FleetOutcome};
use super::inspect::{self, DryRun, InstanceTypeSpec, Subnet, TemplateVersion};
use super::pace::Pacer;
use super::{
    Account, CallCounter, Ec2Error, Instance, Meter, Started, client, describe, power, tags,
    terminate,
};
use crate::budget::Deadline;
use crate::config::LaunchTemplate;
use crate::config::{NodeGroup, Settings};

/// EC2 in one account, for one program run.
#[derive(Clone)]
pub struct Ec2 {
    account: Account,
    client: aws_sdk_ec2::Client,
    calls: Arc<Meter>,
}

impl Ec2 {
    /// EC2 in `account` for a run that ends its calls, their pacing and their
    /// retries by `deadline`; programs get theirs from [`Clients`].
    async fn connect(
        account: Account,
        settings: &Settings,
        calls: Arc<CallCounter>,
        deadline: Deadline,
    ) -> Ec2 {
        let client = client::connect(&account.region, account.profile.as_deref(), settings).await;
        let pacer = Pacer::new(
            settings.pace_dir.as_deref(),
            &account,
            settings.rate_limits.clone(),
        );
        Ec2 {
            account,
            client,
            calls: Arc::new(Meter::new(
                calls,
                pacer,
                deadline,
                settings.ec2_max_attempts,
            )),
        }
    }

    pub fn account(&self) -> &Account {
        &self.account
    }

    /// One instant CreateFleet of `count` instances of `group`, carrying `tags`
    /// from launch; with `all_or_nothing`, EC2 launches all of them or none.
    pub async fn launch(
        &self,
        group: &NodeGroup,
        request: fleet::LaunchRequest<'_>,
    ) -> Result<FleetOutcome, Ec2Error> {
        fleet::create_fleet(&self.client, group, request, &self.calls).await
    }

    /// The instances that carry each of `tags` exactly (compared on every
    /// result, not trusted to EC2's pattern filters), in one of `states`,
    /// and with `names`, a `Name` among them.
    pub async fn find(
        &self,
        tags: &[(&str, &str)],
        states: Option<Vec<String>>,
        names: Option<&[String]>,
    ) -> Result<Vec<Instance>, Ec2Error> {
        describe::describe_tagged(&self.client, tags, states, names, &self.calls).await
    }

    /// The instances of `ids` that EC2 knows (yet).
    pub async fn describe(&self, ids: &[String]) -> Result<Vec<Instance>, Ec2Error> {
        describe::describe_ids(&self.client, ids, &self.calls).await
    }

    /// This cluster's pending and running instances of `group`, by the
    /// cluster, partition and node-group tags every launch carries, paginated
    /// (1000 a call): for many instances of one group, fewer calls than by id.
    pub async fn find_group_live(
        &self,
        group: &NodeGroup,
        cluster: &str,
    ) -> Result<Vec<Instance>, Ec2Error> {
        let tags = [
            (super::CLUSTER_TAG, cluster),
            (super::PARTITION_TAG, group.partition.as_str()),
            (super::NODE_GROUP_TAG, group.name.as_str()),
        ];
        let live = vec![
            super::InstanceState::Pending.as_str().to_string(),
            super::InstanceState::Running.as_str().to_string(),
        ];
        self.find(&tags, Some(live), None).await
    }

    /// Tags each instance with its own tags, `concurrency` calls at a time;
    /// returns the instances that could not be tagged.
    pub async fn tag_each(
        &self,
        requests: Vec<crate::ec2::TagRequest>,
        concurrency: usize,
        deadline: Deadline,
    ) -> Vec<(String, Ec2Error)> {
        tags::create_tags_concurrently(
            &self.client,
            requests,
            concurrency,
            deadline,
            self.calls.clone(),
        )
        .await
    }

    /// Tags all of `ids` (at most 1000) with the same `tags` in one call.
    pub async fn tag_all(
        &self,
        ids: &[String],
        tags: &[(String, String)],
        deadline: Deadline,
    ) -> Result<(), Ec2Error> {
        tags::tag_resources(&self.client, ids, tags, deadline, &self.calls).await
    }

    /// The health of the running instances among `ids`: failed status checks
    /// and events EC2 has scheduled; the healthy ones are left out.
    pub async fn health(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, super::Health>, Ec2Error> {
        super::health::describe_health(&self.client, ids, &self.calls).await
    }

    /// Starts the stopped `ids`, 1000 a call: those EC2 accepted, with the
    /// state each was in, and the calls that failed.
    pub async fn start(&self, ids: &[String]) -> (Vec<Started>, Vec<(Vec<String>, Ec2Error)>) {
        power::power(&self.client, ids, power::Move::Start, &self.calls).await
    }

    /// Stops `ids`, 1000 a call; returns the calls that failed.
    pub async fn stop(&self, ids: &[String]) -> Vec<(Vec<String>, Ec2Error)> {
        power::power(&self.client, ids, power::Move::Stop, &self.calls)
            .await
            .1
    }

    /// This cluster's instances in the warm pool of `group`, any state but
    /// terminated, compared exactly on the cluster, group and pool tags.
    pub async fn find_pooled(
        &self,
        group: &NodeGroup,
        cluster: &str,
    ) -> Result<Vec<Instance>, Ec2Error> {
        let prefix = group.node_prefix();
        let tags = [
            (super::CLUSTER_TAG, cluster),
            (super::PARTITION_TAG, group.partition.as_str()),
            (super::NODE_GROUP_TAG, group.name.as_str()),
            (super::POOL_TAG, prefix.as_str()),
        ];
        self.find(&tags, Some(super::InstanceState::live()), None)
            .await
    }

    /// Terminates `ids`, 1000 a call; returns what could not be terminated.
    pub async fn terminate(&self, ids: &[String]) -> Vec<(Vec<String>, Ec2Error)> {
        terminate::terminate(&self.client, ids, &self.calls).await
    }

    /// The Region's availability zones: proves the credentials and Region answer.
    pub async fn availability_zones(&self) -> Result<Vec<String>, Ec2Error> {
        inspect::availability_zones(&self.client, &self.calls).await
    }

    /// The version `template` resolves to, or None when EC2 lists none.
    pub async fn template_version(
        &self,
        template: &LaunchTemplate,
    ) -> Result<Option<TemplateVersion>, Ec2Error> {
        inspect::template_version(&self.client, template, &self.calls).await
    }

    /// The subnets of `ids` that exist.
    pub async fn subnets(&self, ids: &[String]) -> Result<Vec<Subnet>, Ec2Error> {
        inspect::subnets(&self.client, ids, &self.calls).await
    }

    /// The `(instance type, zone)` pairs of `types` × `zones` that EC2 offers.
    pub async fn offerings(
        &self,
        types: &[String],
        zones: &[String],
    ) -> Result<std::collections::BTreeSet<(String, String)>, Ec2Error> {
        inspect::offerings(&self.client, types, zones, &self.calls).await
    }

    /// CPUs, memory and GPUs of `types`.
    pub async fn instance_types(
        &self,
        types: &[String],
    ) -> Result<Vec<InstanceTypeSpec>, Ec2Error> {
        inspect::instance_types(&self.client, types, &self.calls).await
    }

    /// Whether this caller may launch `group` (a CreateFleet with DryRun).
    pub async fn may_launch(&self, group: &NodeGroup, tags: &[(String, String)]) -> DryRun {
        fleet::dry_run_create_fleet(&self.client, group, tags, &self.calls).await
    }

    /// Whether this caller may terminate instances (a dry run).
    pub async fn may_terminate(&self) -> DryRun {
        inspect::dry_run_terminate(&self.client, &self.calls).await
    }

    /// Whether this caller may tag instances with `tags` (a dry run).
    pub async fn may_tag(&self, tags: &[(String, String)]) -> DryRun {
        inspect::dry_run_create_tags(&self.client, tags, &self.calls).await
    }
}

/// The EC2 handles of one run, one per account, each connected when first asked for.
pub struct Clients {
    settings: Settings,
    calls: Arc<CallCounter>,
    deadline: Deadline,
    handles: Mutex<BTreeMap<Account, Ec2>>,
}

impl Clients {
    pub fn new(settings: &Settings, calls: Arc<CallCounter>, deadline: Deadline) -> Clients {
        Clients {
            settings: settings.clone(),
            calls,
            deadline,
            handles: Mutex::new(BTreeMap::new()),
        }
    }

    pub async fn get(&self, account: &Account) -> Ec2 {
        let mut handles = self.handles.lock().await;
        if let Some(handle) = handles.get(account) {
            return handle.clone();
        }
        let handle = Ec2::connect(
            account.clone(),
            &self.settings,
            self.calls.clone(),
            self.deadline,
        )
        .await;
        handles.insert(account.clone(), handle.clone());
        handle
    }
}
