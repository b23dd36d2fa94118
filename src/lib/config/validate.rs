//! One walk over both JSON documents that collects every problem, each with its
//! file and JSON path, and builds the typed [`Config`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::json::join;
use super::model::*;
use super::{ConfigError, Problem};

const CONFIG_KEYS: &[&str] = &[
    "LogLevel",
    "LogFileName",
    "SlurmBinPath",
    "SlurmConf",
    "ClusterName",
    "Environment",
    "ResumeBudgetSeconds",
    "FleetBatchSize",
    "TagConcurrency",
    "Ec2MaxAttempts",
    "Ec2TimeoutSeconds",
    "ScontrolTimeoutSeconds",
    "InsufficientCapacityHoldSeconds",
    "LaunchGraceSeconds",
];
const REQUIRED_SLURM_CONF: &[&str] = &[
    "PrivateData",
    "ResumeProgram",
    "SuspendProgram",
    "ResumeRate",
    "SuspendRate",
    "ResumeTimeout",
    "SuspendTime",
    "TreeWidth",
];
const PARTITION_KEYS: &[&str] = &["PartitionName", "NodeGroups", "PartitionOptions"];
const NODE_GROUP_KEYS: &[&str] = &[
    "NodeGroupName",
    "MaxNodes",
    "Region",
    "ProfileName",
    "SlurmSpecifications",
    "PurchasingOption",
    "OnDemandOptions",
    "SpotOptions",
    "LaunchTemplateSpecification",
    "LaunchTemplateOverrides",
    "SubnetIds",
    "Tags",
];
const LAUNCH_TEMPLATE_KEYS: &[&str] = &["LaunchTemplateId", "LaunchTemplateName", "Version"];
const OVERRIDE_KEYS: &[&str] = &[
    "InstanceType",
    "MaxPrice",
    "AvailabilityZone",
    "Priority",
    "ImageId",
    "WeightedCapacity",
    "SubnetId",
];
const ON_DEMAND_KEYS: &[&str] = &[
    "AllocationStrategy",
    "SingleInstanceType",
    "SingleAvailabilityZone",
    "MinTargetCapacity",
    "MaxTotalPrice",
    "CapacityReservationOptions",
];
const SPOT_KEYS: &[&str] = &[
    "AllocationStrategy",
    "SingleInstanceType",
    "SingleAvailabilityZone",
    "MinTargetCapacity",
    "MaxTotalPrice",
    "InstancePoolsToUseCount",
    "InstanceInterruptionBehavior",
];
/// slurm.conf keys that take YES or NO, so that a JSON boolean may stand for them.
const BOOLEAN_SLURM_CONF: &[&str] = &[
    "AllowSpecResourcesUsage",
    "DisableRootJobs",
    "EnforcePartLimits",
    "TrackWCKey",
    "UsePAM",
];
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
pub const MAX_NODES_LIMIT: i64 = 10_000;
/// EC2 allows 50 tags per instance; slurm-ec2 adds Name, cluster, partition and node group.
pub const MAX_CUSTOM_TAGS: usize = 46;

/// Collects problems and warnings for one file.
struct Walker<'a> {
    file: PathBuf,
    problems: &'a mut Vec<Problem>,
    warnings: &'a mut Vec<Problem>,
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Walker<'_> {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn warning(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(Problem {
            file: self.file.clone(),
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Warns about every key of `map` that is not in `known`, naming the nearest known key.
    fn unknown_keys(&mut self, map: &Map<String, Value>, path: &str, known: &[&str], what: &str) {
        for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
            let nearest = known
                .iter()
                .map(|k| {
                    (
                        strsim::levenshtein(&key.to_lowercase(), &k.to_lowercase()),
                        *k,
                    )
                })
                .min()
                .filter(|(distance, k)| *distance <= 2.max(k.len() / 3));
            let hint = match nearest {
                Some((_, k)) => format!("; did you mean \"{k}\"?"),
                None => String::new(),
            };
            self.warning(&join(path, key), format!("unknown key, {what}{hint}"));
        }
    }

    fn object<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            other => {
                self.problem(path, format!("must be an object, got {}", describe(other)));
                None
            }
        }
    }

    fn array<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v Vec<Value>> {
        match value {
            Value::Array(items) => Some(items),
            other => {
                self.problem(path, format!("must be an array, got {}", describe(other)));
                None
            }
        }
    }

    fn required<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<&'v Value> {
        let value = map.get(key);
        if value.is_none() {
            self.problem(&join(path, key), "required key is missing");
        }
        value
    }

    fn string(&mut self, value: &Value, path: &str) -> Option<String> {
        match value {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::String(_) => {
                self.problem(path, "must not be empty");
                None
            }
            other => {
                self.problem(path, format!("must be a string, got {}", describe(other)));
                None
            }
        }
    }

    /// A file system path: a non-empty string without a NUL byte.
    fn path(&mut self, value: &Value, path: &str) -> Option<PathBuf> {
        let text = self.string(value, path)?;
        if text.contains('\0') {
            self.problem(path, "holds a NUL byte, which no file name can hold");
            return None;
        }
        Some(PathBuf::from(text))
    }

    fn required_string(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<String> {
        let value = self.required(map, path, key)?;
        self.string(value, &join(path, key))
    }

    fn optional_string(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<String> {
        map.get(key).and_then(|v| self.string(v, &join(path, key)))
    }

    fn name(&mut self, map: &Map<String, Value>, path: &str, key: &str) -> Option<String> {
        let name = self.required_string(map, path, key)?;
        if is_name(&name) {
            Some(name)
        } else {
            self.problem(
                &join(path, key),
                format!("must match ^[a-zA-Z0-9]+$ (letters and digits only), got {name:?}"),
            );
            None
        }
    }

    /// A whole number in `range`; booleans and fractions are refused.
    fn integer(&mut self, value: &Value, path: &str, low: i64, high: i64) -> Option<i64> {
        match value.as_i64() {
            Some(n) if value.is_number() && (low..=high).contains(&n) => Some(n),
            _ => {
                let got = describe(value);
                self.problem(
                    path,
                    format!("must be a whole number from {low} to {high}, got {got}"),
                );
                None
            }
        }
    }

    fn optional_integer(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        low: i64,
        high: i64,
    ) -> Option<i64> {
        map.get(key).and_then(|v| self.integer(v, key, low, high))
    }

    fn boolean(&mut self, map: &Map<String, Value>, path: &str, key: &str) -> Option<bool> {
        let value = map.get(key)?;
        match value {
            Value::Bool(b) => Some(*b),
            other => {
                self.problem(
                    &join(path, key),
                    format!("must be true or false, got {}", describe(other)),
                );
                None
            }
        }
    }

    /// An object of Slurm `Key=Value` settings, in file order, values rendered
    /// for slurm.conf. Keys must be Slurm words, values one non-empty line;
    /// booleans only for the keys in `booleans` (rendered YES or NO).
    fn slurm_pairs(
        &mut self,
        value: &Value,
        path: &str,
        booleans: &[&str],
    ) -> Vec<(String, String)> {
        let Some(map) = self.object(value, path) else {
            return Vec::new();
        };
        let mut pairs = Vec::new();
        for (key, value) in map {
            let key_path = join(path, key);
            if !is_slurm_word(key) {
                self.problem(
                    &key_path,
                    "is not a Slurm parameter name (a letter, then letters, digits or _)",
                );
                continue;
            }
            let takes_boolean = booleans.iter().any(|k| k.eq_ignore_ascii_case(key));
            let rendered = match value {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) if takes_boolean => Some(if *b { "YES" } else { "NO" }.to_string()),
                Value::Bool(_) => {
                    self.problem(
                        &key_path,
                        "takes no boolean in slurm.conf; write the value Slurm expects as a string",
                    );
                    None
                }
                other => {
                    let got = describe(other);
                    self.problem(
                        &key_path,
                        format!("must be a string, number or boolean, got {got}"),
                    );
                    None
                }
            };
            let Some(rendered) = rendered else { continue };
            if rendered.trim().is_empty() {
                self.problem(&key_path, "must not be empty");
            } else if rendered.contains(char::is_control) {
                self.problem(
                    &key_path,
                    "holds a control character (a newline, a tab, …): slurm.conf takes one line per setting",
                );
            } else {
                if rendered.contains(' ') && !rendered.starts_with('"') {
                    self.warning(&key_path, "holds whitespace; slurm.conf needs it quoted");
                }
                pairs.push((key.clone(), rendered));
            }
        }
        pairs
    }
}

/// A slurm.conf parameter name.
fn is_slurm_word(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Seconds from a number or a string of digits (the original accepts both).
fn seconds(value: Option<&String>) -> Option<u64> {
    value.and_then(|v| v.trim().parse::<u64>().ok())
}

pub(super) fn validate(
    dir: &Path,
    (config_path, config_json): (&Path, &Value),
    (partitions_path, partitions_json): (&Path, &Value),
) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut walker = Walker {
        file: config_path.to_path_buf(),
        problems: &mut problems,
        warnings: &mut warnings,
    };
    let config = config_file(&mut walker, dir, config_json);
    walker.file = partitions_path.to_path_buf();
    let partitions = partitions_file(&mut walker, partitions_json);
    match config {
        Some(mut config) if problems.is_empty() => {
            config.partitions = partitions;
            config.warnings = warnings;
            Ok(config)
        }
        _ => Err(ConfigError::Invalid { problems }),
    }
}

fn config_file(w: &mut Walker, dir: &Path, json: &Value) -> Option<Config> {
    let root = w.object(json, "")?;
    w.unknown_keys(root, "", CONFIG_KEYS, "ignored");

    let log_level = match root.get("LogLevel") {
        None => Some(LogLevel::Debug),
        Some(value) => w.string(value, "LogLevel").and_then(|name| {
            let level = LogLevel::parse(&name);
            if level.is_none() {
                let names = LogLevel::NAMES.join(", ");
                w.problem("LogLevel", format!("must be one of {names}, got {name:?}"));
            }
            level
        }),
    };
    let log_file = match root.get("LogFileName") {
        None => Some(dir.join("aws_plugin.log")),
        Some(value) => w.path(value, "LogFileName"),
    };
    let slurm_bin = w
        .required(root, "", "SlurmBinPath")
        .and_then(|value| w.path(value, "SlurmBinPath"));
    let slurm_conf = match w.required(root, "", "SlurmConf") {
        Some(value) => {
            if let Some(map) = value.as_object() {
                for key in REQUIRED_SLURM_CONF
                    .iter()
                    .filter(|k| !map.contains_key(**k))
                {
                    w.problem(&join("SlurmConf", key), "required key is missing");
                }
            }
            w.slurm_pairs(value, "SlurmConf", BOOLEAN_SLURM_CONF)
        }
        None => Vec::new(),
    };
    let cluster_name = w.optional_string(root, "", "ClusterName");
    if let Some(name) = &cluster_name {
        if name.len() > 255 || name.contains(char::is_whitespace) {
            w.problem(
                "ClusterName",
                "must be at most 255 characters without whitespace",
            );
        } else if let Err(why) = crate::ec2::check_filter_literal(name) {
            w.problem("ClusterName", why);
        }
    }
    let environment = root
        .get("Environment")
        .and_then(|value| w.object(value, "Environment"))
        .map(|map| environment(w, map))
        .unwrap_or_default();

    let conf_value = |key: &str| slurm_conf.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let resume_timeout = seconds(conf_value("ResumeTimeout"));
    if resume_timeout.is_none() && conf_value("ResumeTimeout").is_some() {
        w.warning(
            "SlurmConf.ResumeTimeout",
            "is not a number of seconds; resume works to a budget of 150 s",
        );
    }
    let defaults = Settings::default();
    let resume_timeout = resume_timeout.map_or(defaults.launch_grace, Duration::from_secs);
    let day = 86_400;
    let mut seconds_or = |key: &str, low: i64, default: Duration| {
        w.optional_integer(root, key, low, day)
            .map_or(default, |n| Duration::from_secs(n as u64))
    };
    let resume_budget = seconds_or(
        "ResumeBudgetSeconds",
        1,
        (resume_timeout / 2).max(Duration::from_secs(1)),
    );
    let ec2_timeout = seconds_or("Ec2TimeoutSeconds", 1, defaults.ec2_timeout);
    let scontrol_timeout = seconds_or("ScontrolTimeoutSeconds", 1, defaults.scontrol_timeout);
    let capacity_hold = seconds_or("InsufficientCapacityHoldSeconds", 0, defaults.capacity_hold);
    let launch_grace = seconds_or("LaunchGraceSeconds", 0, resume_timeout);
    let mut count_or = |key: &str, high: i64, default: usize| {
        w.optional_integer(root, key, 1, high)
            .map_or(default, |n| n as usize)
    };
    let settings = Settings {
        resume_budget,
        fleet_batch_size: count_or("FleetBatchSize", 1000, defaults.fleet_batch_size),
        tag_concurrency: count_or("TagConcurrency", 256, defaults.tag_concurrency),
        ec2_max_attempts: count_or("Ec2MaxAttempts", 10, defaults.ec2_max_attempts as usize) as u32,
        ec2_timeout,
        scontrol_timeout,
        capacity_hold,
        launch_grace,
    };
    Some(Config {
        dir: dir.to_path_buf(),
        log_level: log_level?,
        log_file: log_file?,
        slurm_bin: slurm_bin?,
        slurm_conf,
        cluster_name,
        environment,
        settings,
        partitions: Vec::new(),
        warnings: Vec::new(),
    })
}

fn environment(w: &mut Walker, map: &Map<String, Value>) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for (key, value) in map {
        let path = join("Environment", key);
        if key.is_empty() || key.contains(['=', '\0']) {
            w.problem(&path, "is not a valid environment variable name");
            continue;
        }
        match value {
            Value::String(s) if !s.contains('\0') => pairs.push((key.clone(), s.clone())),
            other => w.problem(&path, format!("must be a string, got {}", describe(other))),
        }
    }
    pairs
}

fn partitions_file(w: &mut Walker, json: &Value) -> Vec<Partition> {
    let Some(root) = w.object(json, "") else {
        return Vec::new();
    };
    w.unknown_keys(root, "", &["Partitions"], "ignored");
    let Some(list) = w
        .required(root, "", "Partitions")
        .and_then(|v| w.array(v, "Partitions"))
    else {
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
                let name = &partition.name;
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
    w.unknown_keys(map, path, PARTITION_KEYS, "ignored");
    let name = w.name(map, path, "PartitionName");
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
            if let Some(group) = node_group(w, value, &group_path, name.as_deref().unwrap_or("")) {
                if groups.iter().any(|g| g.name == group.name) {
                    let message = format!("{:?} is already used in this partition", group.name);
                    w.problem(&join(&group_path, "NodeGroupName"), message);
                } else {
                    groups.push(group);
                }
            }
        }
    }
    let options = map
        .get("PartitionOptions")
        .map(|v| {
            w.slurm_pairs(
                v,
                &join(path, "PartitionOptions"),
                BOOLEAN_PARTITION_OPTIONS,
            )
        })
        .unwrap_or_default();
    Some(Partition {
        name: name?,
        node_groups: groups,
        options,
    })
}

fn node_group(w: &mut Walker, value: &Value, path: &str, partition: &str) -> Option<NodeGroup> {
    let map = w.object(value, path)?;
    w.unknown_keys(map, path, NODE_GROUP_KEYS, "ignored");
    let name = w.name(map, path, "NodeGroupName");
    let max_nodes = w
        .required(map, path, "MaxNodes")
        .and_then(|v| w.integer(v, &join(path, "MaxNodes"), 1, MAX_NODES_LIMIT));
    let region = w.required_string(map, path, "Region");
    if let Some(region) = &region
        && !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        w.problem(
            &join(path, "Region"),
            format!("{region:?} is not a region name such as us-east-1"),
        );
    }
    let profile = w.optional_string(map, path, "ProfileName");
    let slurm_specifications = w
        .required(map, path, "SlurmSpecifications")
        .map(|v| w.slurm_pairs(v, &join(path, "SlurmSpecifications"), &[]))
        .unwrap_or_default();
    for (key, value) in slurm_specifications
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("gres"))
    {
        if let Err(reason) = crate::gres::parse(value) {
            w.problem(&join(&join(path, "SlurmSpecifications"), key), reason);
        }
    }
    let purchasing = w
        .required_string(map, path, "PurchasingOption")
        .and_then(|p| match p.as_str() {
            "spot" => Some(Purchasing::Spot),
            "on-demand" => Some(Purchasing::OnDemand),
            other => {
                w.problem(
                    &join(path, "PurchasingOption"),
                    format!("must be \"spot\" or \"on-demand\", got {other:?}"),
                );
                None
            }
        });
    let on_demand_options = map
        .get("OnDemandOptions")
        .and_then(|v| fleet_options(w, v, &join(path, "OnDemandOptions"), ON_DEMAND_KEYS));
    let spot_options = map
        .get("SpotOptions")
        .and_then(|v| fleet_options(w, v, &join(path, "SpotOptions"), SPOT_KEYS));
    match purchasing {
        Some(Purchasing::OnDemand) if spot_options.is_some() => w.warning(
            &join(path, "SpotOptions"),
            "ignored: PurchasingOption is on-demand",
        ),
        Some(Purchasing::Spot) if on_demand_options.is_some() => w.warning(
            &join(path, "OnDemandOptions"),
            "ignored: PurchasingOption is spot",
        ),
        _ => {}
    }
    let launch_template = w
        .required(map, path, "LaunchTemplateSpecification")
        .and_then(|v| launch_template(w, v, &join(path, "LaunchTemplateSpecification")));
    let overrides = w
        .required(map, path, "LaunchTemplateOverrides")
        .and_then(|v| overrides(w, v, &join(path, "LaunchTemplateOverrides")));
    let subnet_ids = w
        .required(map, path, "SubnetIds")
        .and_then(|v| subnet_ids(w, v, &join(path, "SubnetIds")));
    let tags = map
        .get("Tags")
        .map(|v| tags(w, v, &join(path, "Tags")))
        .unwrap_or(Some(Vec::new()));
    Some(NodeGroup {
        partition: partition.to_string(),
        name: name?,
        max_nodes: u32::try_from(max_nodes?).ok()?,
        region: region?,
        profile,
        slurm_specifications,
        purchasing: purchasing?,
        on_demand_options: on_demand_options.filter(|_| purchasing == Some(Purchasing::OnDemand)),
        spot_options: spot_options.filter(|_| purchasing == Some(Purchasing::Spot)),
        launch_template: launch_template?,
        overrides: overrides?,
        subnet_ids: subnet_ids?,
        tags: tags?,
    })
}

fn fleet_options(
    w: &mut Walker,
    value: &Value,
    path: &str,
    known: &[&str],
) -> Option<FleetOptions> {
    let map = w.object(value, path)?;
    w.unknown_keys(map, path, known, "not supported by slurm-ec2 and ignored");
    let count = |w: &mut Walker, key: &str| {
        map.get(key)
            .and_then(|v| w.integer(v, &join(path, key), 1, 10_000))
            .map(|n| n as i32)
    };
    if let Some(behaviour) = map.get("InstanceInterruptionBehavior")
        && behaviour.as_str() != Some("terminate")
    {
        w.warning(
            &join(path, "InstanceInterruptionBehavior"),
            "slurm-ec2 always uses \"terminate\": a stopped or hibernated node cannot come back as itself",
        );
    }
    let reservation = match map.get("CapacityReservationOptions") {
        Some(v) => {
            let sub = join(path, "CapacityReservationOptions");
            let inner = w.object(v, &sub)?;
            w.unknown_keys(
                inner,
                &sub,
                &["UsageStrategy"],
                "not supported by slurm-ec2 and ignored",
            );
            w.optional_string(inner, &sub, "UsageStrategy")
        }
        None => None,
    };
    Some(FleetOptions {
        allocation_strategy: w.optional_string(map, path, "AllocationStrategy"),
        single_instance_type: w.boolean(map, path, "SingleInstanceType"),
        single_availability_zone: w.boolean(map, path, "SingleAvailabilityZone"),
        min_target_capacity: count(w, "MinTargetCapacity"),
        max_total_price: w.optional_string(map, path, "MaxTotalPrice"),
        capacity_reservation_usage: reservation,
        instance_pools_to_use_count: count(w, "InstancePoolsToUseCount"),
    })
}

fn launch_template(w: &mut Walker, value: &Value, path: &str) -> Option<LaunchTemplate> {
    let map = w.object(value, path)?;
    w.unknown_keys(
        map,
        path,
        LAUNCH_TEMPLATE_KEYS,
        "not supported by slurm-ec2 and ignored",
    );
    let id = w.optional_string(map, path, "LaunchTemplateId");
    let name = w.optional_string(map, path, "LaunchTemplateName");
    if id.is_some() == name.is_some() {
        w.problem(
            path,
            "must give exactly one of LaunchTemplateId and LaunchTemplateName",
        );
        return None;
    }
    let version_path = join(path, "Version");
    let version = match map.get("Version") {
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
        w.unknown_keys(
            map,
            &item_path,
            OVERRIDE_KEYS,
            "not supported by slurm-ec2 and ignored",
        );
        if map.contains_key("SubnetId") {
            w.problem(
                &join(&item_path, "SubnetId"),
                "must not be set here: list subnets in the node group's SubnetIds",
            );
        }
        if map.contains_key("WeightedCapacity") {
            w.warning(
                &join(&item_path, "WeightedCapacity"),
                "ignored: every instance is one node (weight 1)",
            );
        }
        let priority = map.get("Priority").and_then(|v| match v.as_f64() {
            Some(p) if v.is_number() => Some(p),
            _ => {
                w.problem(
                    &join(&item_path, "Priority"),
                    format!("must be a number, got {}", describe(v)),
                );
                None
            }
        });
        let max_price = match map.get("MaxPrice") {
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(v) => w.string(v, &join(&item_path, "MaxPrice")),
            None => None,
        };
        result.push(Override {
            instance_type: w.optional_string(map, &item_path, "InstanceType"),
            max_price,
            availability_zone: w.optional_string(map, &item_path, "AvailabilityZone"),
            priority,
            image_id: w.optional_string(map, &item_path, "ImageId"),
        });
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
                "at most {MAX_CUSTOM_TAGS} tags (EC2 allows 50 per instance and slurm-ec2 adds 4), got {}",
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
        w.unknown_keys(map, &item_path, &["Key", "Value"], "ignored");
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
            && v.len() > 256
        {
            w.problem(&join(&item_path, "Value"), "must be at most 256 characters");
        }
        if let (Some(key), Some(value)) = (key, tag_value) {
            result.push(Tag { key, value });
        }
    }
    Some(result)
}
