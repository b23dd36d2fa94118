use std::net::Ipv4Addr;

use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
use aws_sdk_ec2::types::Filter;

use super::{Ec2Error, InstanceState, MAX_FILTER_VALUES, Meter};

/// What slurm-ec2 needs to know of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub state: InstanceState,
    /// The private address of the primary network interface: IPv4, else IPv6.
    pub address: Option<String>,
    pub private_dns_name: Option<String>,
    pub tags: Vec<(String, String)>,
    /// Seconds since the epoch.
    pub launch_time: Option<i64>,
    pub instance_type: Option<String>,
    pub availability_zone: Option<String>,
    /// `spot` (or `scheduled`); None for On-Demand.
    pub lifecycle: Option<String>,
    /// The reservation of its launch, and its `AmiLaunchIndex` there.
    pub reservation_id: Option<String>,
    pub launch_index: Option<u32>,
    pub image_id: Option<String>,
}

impl Instance {
    /// Whether the instance's own tags allow it to be `node` of `group`: its
    /// partition and node group are the group's, and its Name, when it has
    /// one, is the node. What Slurm records (InstanceId) is trusted only then.
    pub fn may_be_node(&self, node: &str, group: &crate::config::NodeGroup) -> bool {
        self.tag(super::PARTITION_TAG) == Some(group.partition.as_str())
            && self.tag(super::NODE_GROUP_TAG) == Some(group.name.as_str())
            && self.node_name().is_none_or(|name| name == node)
    }

    /// The node this instance serves: its `Name`, else its place in the node
    /// list its reservation was tagged with at launch; none while pooled.
    pub fn node_name(&self) -> Option<String> {
        if self.is_pooled() {
            return None;
        }
        if let Some(name) = self.tag("Name").filter(|name| !name.is_empty()) {
            return Some(name.to_string());
        }
        let index = usize::try_from(self.launch_index?).ok()?;
        super::tags::node_in_nodes_tags(&self.tags, index)
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_live(&self) -> bool {
        self.state.is_live()
    }

    /// How it is paid for, from its `InstanceLifecycle`: none is On-Demand,
    /// `spot` is Spot; another (`scheduled`, `capacity-block`) is neither.
    pub fn purchasing(&self) -> Option<crate::config::Purchasing> {
        match self.lifecycle.as_deref() {
            None => Some(crate::config::Purchasing::OnDemand),
            Some("spot") => Some(crate::config::Purchasing::Spot),
            Some(_) => None,
        }
    }

    /// The first label of `PrivateDnsName`, else `ip-a-b-c-d` from the address.
    pub fn hostname(&self) -> Option<String> {
        if let Some(label) = self
            .private_dns_name
            .as_deref()
            .and_then(|dns| dns.split('.').next())
            .filter(|label| !label.is_empty())
        {
            return Some(label.to_string());
        }
        let address = self.address.as_deref()?;
        match address.parse::<Ipv4Addr>() {
            Ok(ip) => Some(format!("ip-{}", ip.to_string().replace('.', "-"))),
            Err(_) => Some(format!("i-{}", self.id.trim_start_matches("i-"))),
        }
    }

    fn from_sdk(instance: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
        let id = instance.instance_id()?.to_string();
        let primary = instance.network_interfaces().iter().find(|nic| {
            nic.attachment().and_then(|a| a.device_index()).unwrap_or(0) == 0
                && nic
                    .attachment()
                    .and_then(|a| a.network_card_index())
                    .unwrap_or(0)
                    == 0
        });
        let ipv4 = primary
            .and_then(|nic| nic.private_ip_address())
            .or(instance.private_ip_address())
            .filter(|a| !a.is_empty());
        let ipv6 = primary
            .and_then(|nic| nic.ipv6_addresses().first())
            .and_then(|a| a.ipv6_address())
            .or(instance.ipv6_address());
        Some(Instance {
            id,
            state: instance
                .state()
                .and_then(|s| s.name())
                .map_or(InstanceState::Unknown, |n| InstanceState::parse(n.as_str())),
            address: ipv4.or(ipv6).map(str::to_string),
            private_dns_name: instance
                .private_dns_name()
                .filter(|d| !d.is_empty())
                .map(str::to_string),
            tags: instance
                .tags()
                .iter()
                .filter_map(|t| {
                    Some((
                        t.key()?.to_string(),
                        t.value().unwrap_or_default().to_string(),
                    ))
                })
                .collect(),
            launch_time: instance.launch_time().map(|t| t.secs()),
            instance_type: instance.instance_type().map(|t| t.as_str().to_string()),
            availability_zone: instance
                .placement()
                .and_then(|p| p.availability_zone())
                .map(str::to_string),
            lifecycle: instance
                .instance_lifecycle()
                .map(|l| l.as_str().to_string()),
            reservation_id: None,
            launch_index: instance
                .ami_launch_index()
                .and_then(|i| u32::try_from(i).ok()),
            image_id: instance.image_id().map(str::to_string),
        })
    }
}

/// Looks up instances by id through an `instance-id` filter of at most 200
/// values a call, paginated: that stays in EC2's bucket of filtered calls
/// (100 burst, 20 a second) rather than the smaller one of calls by
/// `InstanceIds` alone (50, 10), and an id EC2 does not know yet (right after
/// a launch) is simply absent instead of failing the call.
pub(super) async fn describe_ids(
    client: &aws_sdk_ec2::Client,
    ids: &[String],
    calls: &Meter,
) -> Result<Vec<Instance>, Ec2Error> {
    let by_id = ("instance-id".to_string(), ids.to_vec());
    describe_by_filters(client, &[], Some(&by_id), calls).await
}

fn instances_of(output: &DescribeInstancesOutput) -> impl Iterator<Item = Instance> + '_ {
    output.reservations().iter().flat_map(|reservation| {
        reservation.instances().iter().filter_map(|i| {
            let mut instance = Instance::from_sdk(i)?;
            instance.reservation_id = reservation.reservation_id().map(str::to_string);
            Some(instance)
        })
    })
}

/// A DescribeInstances filter: `(name, values)`.
pub(super) type InstanceFilter = (String, Vec<String>);

/// Looks up instances by filters, paginated. `fixed` filters go into every
/// call; the values of `chunked` are split so that no call has more than 200
/// filter values in all, as EC2 demands.
pub(super) async fn describe_by_filters(
    client: &aws_sdk_ec2::Client,
    fixed: &[InstanceFilter],
    chunked: Option<&InstanceFilter>,
    calls: &Meter,
) -> Result<Vec<Instance>, Ec2Error> {
    let fixed_values: usize = fixed.iter().map(|(_, v)| v.len()).sum();
    let room = MAX_FILTER_VALUES.saturating_sub(fixed_values).max(1);
    let chunks: Vec<Option<InstanceFilter>> = match chunked {
        // An empty list of values matches nothing: no call is needed.
        Some((_, values)) if values.is_empty() => return Ok(Vec::new()),
        Some((name, values)) => values
            .chunks(room)
            .map(|c| Some((name.clone(), c.to_vec())))
            .collect(),
        None => vec![None],
    };
    let to_filter = |(name, values): &InstanceFilter| {
        Filter::builder()
            .name(name)
            .set_values(Some(values.clone()))
            .build()
    };
    let mut found = Vec::new();
    for chunk in chunks {
        let filters: Vec<Filter> = fixed.iter().chain(chunk.as_ref()).map(to_filter).collect();
        let mut next_token: Option<String> = None;
        loop {
            let request = client
                .describe_instances()
                .set_filters(Some(filters.clone()))
                .max_results(1000)
                .set_next_token(next_token.clone());
            let output = calls
                .call("DescribeInstances", "by filters", || request.clone().send())
                .await?;
            found.extend(instances_of(&output));
            next_token = output
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if next_token.is_none() {
                break;
            }
        }
    }
    Ok(found)
}

/// The instances that carry each of `tags` with exactly its value, in one of
/// `states` (any state when `None`), and, with `names`, a `Name` among them.
/// EC2 filter values are patterns: every result is compared again here, so
/// that nothing another cluster owns is ever acted on.
pub(super) async fn describe_tagged(
    client: &aws_sdk_ec2::Client,
    tags: &[(&str, &str)],
    states: Option<Vec<String>>,
    names: Option<&[String]>,
    calls: &Meter,
) -> Result<Vec<Instance>, Ec2Error> {
    let mut fixed: Vec<InstanceFilter> = tags
        .iter()
        .map(|(key, value)| (format!("tag:{key}"), vec![value.to_string()]))
        .collect();
    if let Some(states) = states {
        fixed.push(("instance-state-name".to_string(), states));
    }
    let by_name = names.map(|names| ("tag:Name".to_string(), names.to_vec()));
    let found = describe_by_filters(client, &fixed, by_name.as_ref(), calls).await?;
    let wanted_name = |instance: &Instance| {
        names.is_none_or(|names| {
            instance
                .tag("Name")
                .is_some_and(|name| names.iter().any(|n| n == name))
        })
    };
    Ok(found
        .into_iter()
        .filter(|instance| carries_exactly(instance, tags) && wanted_name(instance))
        .collect())
}

/// Whether the instance carries each tag with exactly that value.
fn carries_exactly(instance: &Instance, tags: &[(&str, &str)]) -> bool {
    tags.iter()
        .all(|(key, value)| instance.tag(key) == Some(*value))
}
