//! The schema of `partitions.json`.

use std::collections::HashSet;

use serde_json::Value;

use super::json::join;
use super::model::*;
use super::walker::{Walker, describe};

const BOOLEAN_PARTITION_OPTIONS: &[&str] = &[
    "Default",
    "DisableRootJobs",
    "ExclusiveTopo",
    "ExclusiveUser",
    "Hidden",
    "LLN",
    "OverSubscribe",
    "PowerDownOnIdle",
    "ReqResv",
    "RootOnly",
];
const UNSUPPORTED: &str = "not supported by slurm-ec2 and ignored";
pub const MAX_NODES_LIMIT: i64 = 10_000;
/// EC2 allows 50 tags per instance; slurm-ec2 adds up to 8: Name, cluster,
/// partition, node group, the reservation's node list, and a job's id, user
/// and account.
pub const MAX_CUSTOM_TAGS: usize = 42;
/// The tags a warm pool adds to its instances: the pool, when pooled, the
/// first launch, and the launch indexes a restarted reservation's node list names.
pub const WARM_POOL_TAGS: usize = 4;
/// EC2's limit on a tag value.
const MAX_TAG_VALUE: usize = 256;
/// The longest text each placeholder may stand for: an IPv6 address, a
/// node or host name, a job id, a login name, a Slurm account.
const PLACEHOLDER_WIDTHS: [(&str, usize); 6] = [
    ("{ip_address}", 39),
    ("{node_name}", 64),
    ("{hostname}", 64),
    ("{job_id}", 10),
    ("{user}", 32),
    ("{account}", 64),
];

/// A value's longest length once its placeholders are filled in.
pub fn longest_filled_in(value: &str) -> usize {
    PLACEHOLDER_WIDTHS
        .iter()
        .fold(value.len(), |length, (placeholder, width)| {
            let count = value.matches(placeholder).count();
            length - count * placeholder.len() + count * width
        })
}

pub(super) fn partitions_file(w: &mut Walker, json: &Value) -> Vec<Partition> {
    let Some(root) = w.object(json, "") else {
        return Vec::new();
    };
    let list = w
        .required(root, "", "Partitions")
        .and_then(|v| w.array(v, "Partitions"));
    w.unread_keys(root, "", "ignored");
    let Some(list) = list else {
        return Vec::new();
    };
    if list.is_empty() {
        w.problem("Partitions", "must hold at least one partition");
    }
    let mut seen = HashSet::new();
    let mut partitions = Vec::new();
    for (i, value) in list.iter().enumerate() {
        let path = format!("Partitions[{i}]");
        if let Some(partition) = partition(w, value, &path) {
            if seen.insert(partition.name.clone()) {
                partitions.push(partition);
            } else {
                let name = partition.name.as_str();
                w.problem(
                    &join(&path, "PartitionName"),
                    format!("{name:?} is already used by another partition"),
                );
            }
        }
    }
    partitions
}

fn partition(w: &mut Walker, value: &Value, path: &str) -> Option<Partition> {
    let map = w.object(value, path)?;
    let name = w.name(map, path, "PartitionName", PartitionName::parse);
    let groups_path = join(path, "NodeGroups");
    let list = w
        .required(map, path, "NodeGroups")
        .and_then(|v| w.array(v, &groups_path));
    let mut groups: Vec<NodeGroup> = Vec::new();
    if let Some(list) = list {
        if list.is_empty() {
            w.problem(&groups_path, "must hold at least one node group");
        }
        for (j, value) in list.iter().enumerate() {
            let group_path = format!("{groups_path}[{j}]");
            let Some(group) = node_group(w, value, &group_path, name.as_ref()) else {
                continue;
            };
            if groups.iter().any(|g| g.name == group.name) {
                let message = format!(
                    "{:?} is already used in this partition",
                    group.name.as_str()
                );
                w.problem(&join(&group_path, "NodeGroupName"), message);
            } else {
                groups.push(group);
            }
        }
    }
    let options_path = join(path, "PartitionOptions");
    let options = w
        .get(map, path, "PartitionOptions")
        .map(|v| w.slurm_pairs(v, &options_path, BOOLEAN_PARTITION_OPTIONS))
        .unwrap_or_default();
    w.unread_keys(map, path, "ignored");
    Some(Partition {
        name: name?,
        node_groups: groups,
        options,
    })
}

/// A node group; its problems are reported even when its partition's name is not valid.
fn node_group(
    w: &mut Walker,
    value: &Value,
    path: &str,
    partition: Option<&PartitionName>,
) -> Option<NodeGroup> {
    let map = w.object(value, path)?;
    let name = w.name(map, path, "NodeGroupName", NodeGroupName::parse);
    let max_nodes = w
        .required(map, path, "MaxNodes")
        .and_then(|v| w.integer(v, &join(path, "MaxNodes"), 1, MAX_NODES_LIMIT));
    let region = w.required_string(map, path, "Region");
    if let Some(region) = &region
        && !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        let why = format!("{region:?} is not a region name such as us-east-1");
        w.problem(&join(path, "Region"), why);
    }
    let profile = w.optional_string(map, path, "ProfileName");
    let slurm_specifications = slurm_specifications(w, map, path);
    let (purchasing, on_demand_options, spot_options) = purchasing(w, map, path);
    let launch_template = w
        .required(map, path, "LaunchTemplateSpecification")
        .and_then(|v| launch_template(w, v, &join(path, "LaunchTemplateSpecification")));
    let overrides = w
        .required(map, path, "LaunchTemplateOverrides")
        .and_then(|v| overrides(w, v, &join(path, "LaunchTemplateOverrides")));
    let subnet_ids = w
        .required(map, path, "SubnetIds")
        .and_then(|v| subnet_ids(w, v, &join(path, "SubnetIds")));
    let tags = w
        .get(map, path, "Tags")
        .map(|v| tags(w, v, &join(path, "Tags")))
        .unwrap_or(Some(Vec::new()));
    let job_level_scaling = job_level_scaling(
        w,
        map,
        path,
        on_demand_options.as_ref().or(spot_options.as_ref()),
    );
    let on_rebalance = on_rebalance(w, map, path);
    let warm_pool = match w.get(map, path, "WarmPool") {
        None => Some(None),
        Some(value) => {
            let pooled = PoolOf {
                purchasing,
                max_nodes,
                custom_tags: tags.as_ref().map_or(0, Vec::len),
            };
            warm_pool(w, value, &join(path, "WarmPool"), pooled).map(Some)
        }
    };
    w.unread_keys(map, path, "ignored");
    Some(NodeGroup {
        partition: partition?.clone(),
        name: name?,
        max_nodes: u32::try_from(max_nodes?).ok()?,
        region: region?,
        profile,
        slurm_specifications,
        purchasing: purchasing?,
        on_demand_options,
        spot_options,
        launch_template: launch_template?,
        overrides: overrides?,
        subnet_ids: subnet_ids?,
        tags: tags?,
        job_level_scaling: job_level_scaling?,
        on_rebalance: on_rebalance?,
        warm_pool: warm_pool?,
    })
}

/// What a warm pool depends on in its node group.
struct PoolOf {
    purchasing: Option<Purchasing>,
    max_nodes: Option<i64>,
    custom_tags: usize,
}

/// The most hours a pooled instance may be kept (a year).
const MAX_POOL_AGE_HOURS: i64 = 8760;
/// The hours a pooled instance is kept when `MaxAgeHours` is not given.
const DEFAULT_POOL_AGE_HOURS: i64 = 24;

/// `WarmPool`: `{"Size": n, "MaxAgeHours": h, "VolumeCostPerHour": d}`. An
/// instant fleet's Spot instance cannot be stopped, so Spot groups have none.
fn warm_pool(w: &mut Walker, value: &Value, path: &str, of: PoolOf) -> Option<WarmPool> {
    let map = w.object(value, path)?;
    let most = of.max_nodes.unwrap_or(MAX_NODES_LIMIT);
    let size = w
        .required(map, path, "Size")
        .and_then(|v| w.integer(v, &join(path, "Size"), 1, most));
    let hours = w
        .optional_integer(map, path, "MaxAgeHours", (1, MAX_POOL_AGE_HOURS))
        .or_else(|| {
            w.get(map, path, "MaxAgeHours")
                .is_none()
                .then_some(DEFAULT_POOL_AGE_HOURS)
        });
    let volume_cost_per_hour = match w.get(map, path, "VolumeCostPerHour") {
        None => Some(None),
        Some(v) => super::config_file::price(w, &join(path, "VolumeCostPerHour"), v).map(Some),
    };
    w.unread_keys(map, path, "ignored");
    if of.purchasing == Some(Purchasing::Spot) {
        w.problem(
            path,
            "a Spot group cannot have a warm pool: an instant fleet's Spot instance cannot be stopped",
        );
        return None;
    }
    let room = MAX_CUSTOM_TAGS - WARM_POOL_TAGS;
    if of.custom_tags > room {
        w.problem(
            path,
            format!("a warm pool's instances carry 4 more tags of slurm-ec2's: at most {room} custom tags in its group, got {}", of.custom_tags),
        );
        return None;
    }
    let hours = u64::try_from(hours?).ok()?;
    Some(WarmPool {
        size: u32::try_from(size?).ok()?,
        max_age: std::time::Duration::from_secs(hours.checked_mul(3600)?),
        volume_cost_per_hour: volume_cost_per_hour?,
    })
}

/// `RebalanceRecommendation`: what `slurm-ec2 watch` does when EC2 recommends
/// moving off an instance of the group.
fn on_rebalance(
    w: &mut Walker,
    map: &serde_json::Map<String, Value>,
    path: &str,
) -> Option<OnRebalance> {
    let Some(name) = w.optional_string(map, path, "RebalanceRecommendation") else {
        return w
            .get(map, path, "RebalanceRecommendation")
            .is_none()
            .then_some(OnRebalance::Drain);
    };
    let parsed = OnRebalance::parse(&name);
    if parsed.is_none() {
        let why = format!("must be \"drain\" or \"ignore\", got {name:?}");
        w.problem(&join(path, "RebalanceRecommendation"), why);
    }
    parsed
}

/// `JobLevelScaling`; all-or-nothing needs EC2's `SingleAvailabilityZone` (sent
/// unless the options ask for `SingleInstanceType`), so the options may not refuse both.
fn job_level_scaling(
    w: &mut Walker,
    map: &serde_json::Map<String, Value>,
    path: &str,
    options: Option<&FleetOptions>,
) -> Option<JobLevelScaling> {
    let key_path = join(path, "JobLevelScaling");
    let Some(name) = w.optional_string(map, path, "JobLevelScaling") else {
        return w
            .get(map, path, "JobLevelScaling")
            .is_none()
            .then_some(JobLevelScaling::BestEffort);
    };
    let Some(scaling) = JobLevelScaling::parse(&name) else {
        let names = JobLevelScaling::NAMES.join("\" or \"");
        w.problem(&key_path, format!("must be \"{names}\", got {name:?}"));
        return None;
    };
    let refuses_both = options.is_some_and(|o| {
        o.single_availability_zone == Some(false) && o.single_instance_type != Some(true)
    });
    if scaling == JobLevelScaling::AllOrNothing && refuses_both {
        w.problem(
            &key_path,
            "all-or-nothing needs SingleAvailabilityZone or SingleInstanceType in the fleet options (EC2 requires one for MinTargetCapacity); drop SingleAvailabilityZone=false",
        );
        return None;
    }
    Some(scaling)
}

fn slurm_specifications(
    w: &mut Walker,
    map: &serde_json::Map<String, Value>,
    path: &str,
) -> Vec<(String, String)> {
    let specs_path = join(path, "SlurmSpecifications");
    let specifications = w
        .required(map, path, "SlurmSpecifications")
        .map(|v| w.slurm_pairs(v, &specs_path, &[]))
        .unwrap_or_default();
    for (key, value) in specifications
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("gres"))
    {
        if let Err(reason) = crate::gres::parse(value) {
            w.problem(&join(&specs_path, key), reason);
        }
    }
    specifications
}

/// `PurchasingOption` and the fleet options of that kind (the other kind's are a warning).
fn purchasing(
    w: &mut Walker,
    map: &serde_json::Map<String, Value>,
    path: &str,
) -> (
    Option<Purchasing>,
    Option<FleetOptions>,
    Option<FleetOptions>,
) {
    let purchasing = w
        .required_string(map, path, "PurchasingOption")
        .and_then(|p| match p.as_str() {
            "spot" => Some(Purchasing::Spot),
            "on-demand" => Some(Purchasing::OnDemand),
            other => {
                let why = format!("must be \"spot\" or \"on-demand\", got {other:?}");
                w.problem(&join(path, "PurchasingOption"), why);
                None
            }
        });
    let on_demand = w
        .get(map, path, "OnDemandOptions")
        .and_then(|v| fleet_options(w, v, &join(path, "OnDemandOptions"), false));
    let spot = w
        .get(map, path, "SpotOptions")
        .and_then(|v| fleet_options(w, v, &join(path, "SpotOptions"), true));
    match purchasing {
        Some(Purchasing::OnDemand) if spot.is_some() => w.warning(
            &join(path, "SpotOptions"),
            "ignored: PurchasingOption is on-demand",
        ),
        Some(Purchasing::Spot) if on_demand.is_some() => w.warning(
            &join(path, "OnDemandOptions"),
            "ignored: PurchasingOption is spot",
        ),
        _ => {}
    }
    let on_demand = on_demand.filter(|_| purchasing == Some(Purchasing::OnDemand));
    let spot = spot.filter(|_| purchasing == Some(Purchasing::Spot));
    (purchasing, on_demand, spot)
}

/// `OnDemandOptions` or `SpotOptions`: each reads only the keys of its kind.
fn fleet_options(w: &mut Walker, value: &Value, path: &str, spot: bool) -> Option<FleetOptions> {
    let map = w.object(value, path)?;
    let count = |w: &mut Walker, key: &'static str| {
        w.optional_integer(map, path, key, (1, 10_000))
            .and_then(|n| i32::try_from(n).ok())
    };
    let mut options = FleetOptions {
        allocation_strategy: w.optional_string(map, path, "AllocationStrategy"),
        single_instance_type: w.boolean(map, path, "SingleInstanceType"),
        single_availability_zone: w.boolean(map, path, "SingleAvailabilityZone"),
        min_target_capacity: count(w, "MinTargetCapacity"),
        max_total_price: w.optional_string(map, path, "MaxTotalPrice"),
        capacity_reservation_usage: None,
        instance_pools_to_use_count: None,
    };
    if spot {
        options.instance_pools_to_use_count = count(w, "InstancePoolsToUseCount");
        if let Some(behaviour) = w.get(map, path, "InstanceInterruptionBehavior")
            && behaviour.as_str() != Some("terminate")
        {
            w.warning(
                &join(path, "InstanceInterruptionBehavior"),
                "slurm-ec2 always uses \"terminate\": a stopped or hibernated node cannot come back as itself",
            );
        }
    } else if let Some(v) = w.get(map, path, "CapacityReservationOptions") {
        let sub = join(path, "CapacityReservationOptions");
        let inner = w.object(v, &sub)?;
        options.capacity_reservation_usage = w.optional_string(inner, &sub, "UsageStrategy");
        w.unread_keys(inner, &sub, UNSUPPORTED);
    }
    w.unread_keys(map, path, UNSUPPORTED);
    Some(options)
}

fn launch_template(w: &mut Walker, value: &Value, path: &str) -> Option<LaunchTemplate> {
    let map = w.object(value, path)?;
    let id = w.optional_string(map, path, "LaunchTemplateId");
    let name = w.optional_string(map, path, "LaunchTemplateName");
    let version_value = w.get(map, path, "Version");
    w.unread_keys(map, path, UNSUPPORTED);
    if id.is_some() == name.is_some() {
        w.problem(
            path,
            "must give exactly one of LaunchTemplateId and LaunchTemplateName",
        );
        return None;
    }
    let version_path = join(path, "Version");
    let version = match version_value {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(v) => w.string(v, &version_path),
        None => None,
    };
    let valid_version =
        |v: &str| v == "$Latest" || v == "$Default" || v.parse::<u64>().is_ok_and(|n| n > 0);
    if let Some(v) = version.as_deref().filter(|v| !valid_version(v)) {
        w.problem(
            &version_path,
            format!("must be a version number from 1, \"$Latest\" or \"$Default\", got {v:?}"),
        );
        return None;
    }
    Some(LaunchTemplate { id, name, version })
}

fn overrides(w: &mut Walker, value: &Value, path: &str) -> Option<Vec<Override>> {
    let list = w.array(value, path)?;
    if list.is_empty() {
        w.problem(
            path,
            "must hold at least one override (for example {\"InstanceType\": \"c5.xlarge\"})",
        );
        return None;
    }
    let mut result = Vec::new();
    for (i, value) in list.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let Some(map) = w.object(value, &item_path) else {
            continue;
        };
        if w.get(map, &item_path, "SubnetId").is_some() {
            w.problem(
                &join(&item_path, "SubnetId"),
                "must not be set here: list subnets in the node group's SubnetIds",
            );
        }
        if w.get(map, &item_path, "WeightedCapacity").is_some() {
            w.warning(
                &join(&item_path, "WeightedCapacity"),
                "ignored: every instance is one node (weight 1)",
            );
        }
        let priority = w.get(map, &item_path, "Priority");
        let priority = priority.and_then(|v| match v.as_f64() {
            Some(p) if v.is_number() => Some(p),
            _ => {
                w.problem(
                    &join(&item_path, "Priority"),
                    format!("must be a number, got {}", describe(v)),
                );
                None
            }
        });
        let max_price = match w.get(map, &item_path, "MaxPrice") {
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(v) => w.string(v, &join(&item_path, "MaxPrice")),
            None => None,
        };
        let item = Override {
            instance_type: w.optional_string(map, &item_path, "InstanceType"),
            max_price,
            availability_zone: w.optional_string(map, &item_path, "AvailabilityZone"),
            priority,
            image_id: w.optional_string(map, &item_path, "ImageId"),
        };
        w.unread_keys(map, &item_path, UNSUPPORTED);
        result.push(item);
    }
    Some(result)
}

fn subnet_ids(w: &mut Walker, value: &Value, path: &str) -> Option<Vec<String>> {
    let list = w.array(value, path)?;
    if list.is_empty() {
        w.problem(path, "must hold at least one subnet id");
        return None;
    }
    let mut ids: Vec<String> = Vec::new();
    for (i, value) in list.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        if let Some(id) = w.string(value, &item_path) {
            if ids.contains(&id) {
                w.problem(&item_path, format!("{id:?} is listed twice"));
            } else {
                ids.push(id);
            }
        }
    }
    Some(ids)
}

fn tags(w: &mut Walker, value: &Value, path: &str) -> Option<Vec<Tag>> {
    let list = w.array(value, path)?;
    if list.len() > MAX_CUSTOM_TAGS {
        w.problem(
            path,
            format!(
                "at most {MAX_CUSTOM_TAGS} tags (EC2 allows 50 per instance and slurm-ec2 adds up to 8: Name, cluster, partition, node group, node list, job id, user, account), got {}",
                list.len()
            ),
        );
    }
    let mut result = Vec::new();
    for (i, value) in list.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let Some(map) = w.object(value, &item_path) else {
            continue;
        };
        let key = w.required_string(map, &item_path, "Key");
        let tag_value = match w.required(map, &item_path, "Value") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                let got = describe(other);
                w.problem(
                    &join(&item_path, "Value"),
                    format!("must be a string, got {got}"),
                );
                None
            }
            None => None,
        };
        if let Some(key) = &key {
            let key_path = join(&item_path, "Key");
            if key == "Name" {
                w.problem(
                    &key_path,
                    "\"Name\" is set by slurm-ec2 to the node name and cannot be overridden",
                );
            } else if key.starts_with("aws:") || key.starts_with("slurm-ec2:") {
                w.problem(
                    &key_path,
                    format!("{key:?} uses a reserved prefix (aws: or slurm-ec2:)"),
                );
            } else if key.len() > 128 {
                w.problem(&key_path, "must be at most 128 characters");
            }
        }
        if let Some(v) = &tag_value
            && v.len() > MAX_TAG_VALUE
        {
            w.problem(&join(&item_path, "Value"), "must be at most 256 characters");
        } else if let Some(v) = &tag_value
            && longest_filled_in(v) > MAX_TAG_VALUE
        {
            w.problem(
                &join(&item_path, "Value"),
                format!(
                    "may reach {} characters once its placeholders are filled in (an address 39, a node or host name 64, a job id 10, a user 32, an account 64), more than EC2's 256",
                    longest_filled_in(v)
                ),
            );
        }
        w.unread_keys(map, &item_path, "ignored");
        if let (Some(key), Some(value)) = (key, tag_value) {
            result.push(Tag { key, value });
        }
    }
    Some(result)
}
