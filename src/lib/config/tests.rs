use serde_json::{Value, json};

use crate::config::{ConfigError, JobLevelScaling, LogLevel, Purchasing};
use crate::fixtures;

fn example_partitions() -> Value {
    serde_json::from_str(fixtures::EXAMPLE_1).unwrap()
}

fn example_config() -> Value {
    serde_json::from_str(fixtures::CONFIG_JSON).unwrap()
}

/// The problems reported for these documents, as `path: message` lines.
fn problems(config: &Value, partitions: &Value) -> Vec<String> {
    match fixtures::load(&config.to_string(), &partitions.to_string()) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { problems }) => problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect(),
        Err(other) => vec![other.to_string()],
    }
}

fn assert_problem(config: &Value, partitions: &Value, expected: &str) {
    assert_problems(config, partitions, &[expected]);
}

/// Each of `expected` is among the problems of one load of these documents.
fn assert_problems(config: &Value, partitions: &Value, expected: &[&str]) {
    let found = problems(config, partitions);
    for expected in expected {
        assert!(
            found.iter().any(|p| p == expected),
            "expected {expected:?} among {found:#?}"
        );
    }
}

fn group_mut(partitions: &mut Value, p: usize, g: usize) -> &mut serde_json::Map<String, Value> {
    partitions["Partitions"][p]["NodeGroups"][g]
        .as_object_mut()
        .unwrap()
}

#[test]
fn the_examples_of_the_original_readme_are_valid() {
    for partitions in [
        fixtures::EXAMPLE_1,
        include_str!("../../../config/examples/partitions-example-2.json"),
        include_str!("../../../config/examples/partitions-example-3.json"),
        include_str!("../../../config/partitions.json"),
    ] {
        let config = fixtures::load(fixtures::CONFIG_JSON, partitions).unwrap();
        assert_eq!(config.log_level, LogLevel::Info);
        assert!(config.node_count() > 0);
    }
    let config = fixtures::example();
    assert_eq!(config.node_count(), 110);
    let spot = config.node_group("aws", "spot").unwrap();
    assert_eq!(spot.purchasing, Purchasing::Spot);
    // Example 1 gives a spot group OnDemandOptions: kept as a warning, not sent.
    assert!(spot.on_demand_options.is_none());
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.path.ends_with("NodeGroups[1].OnDemandOptions"))
    );
    assert_eq!(config.settings.resume_budget.as_secs(), 150);
    assert_eq!(
        config.partitions[0].options,
        vec![
            ("Default".to_string(), "yes".to_string()),
            ("TRESBillingWeights".to_string(), "cpu=4".to_string())
        ]
    );
}

#[test]
fn every_problem_is_reported_in_one_run_with_file_and_path() {
    let mut partitions = example_partitions();
    group_mut(&mut partitions, 0, 1).insert("MaxNodes".into(), json!(-3));
    group_mut(&mut partitions, 0, 0).remove("Region");
    let mut config = example_config();
    config["LogLevel"] = json!("LOUD");
    let error = fixtures::load(&config.to_string(), &partitions.to_string()).unwrap_err();
    let ConfigError::Invalid { problems } = &error else {
        panic!("{error}")
    };
    assert_eq!(problems.len(), 3, "{error}");
    let text = error.to_string();
    assert!(text.contains("partitions.json: Partitions[0].NodeGroups[1].MaxNodes: must be a whole number from 1 to 10000, got the number -3"), "{text}");
    assert!(
        text.contains(
            "partitions.json: Partitions[0].NodeGroups[0].Region: required key is missing"
        ),
        "{text}"
    );
    assert!(text.contains("config.json: LogLevel: must be one of CRITICAL, ERROR, WARNING, INFO, DEBUG, got \"LOUD\""), "{text}");
}

#[test]
fn config_json_messages() {
    let partitions = example_partitions();
    let mut config = example_config();
    config.as_object_mut().unwrap().remove("SlurmBinPath");
    assert_problem(
        &config,
        &partitions,
        "SlurmBinPath: required key is missing",
    );

    let mut config = example_config();
    config["SlurmConf"]
        .as_object_mut()
        .unwrap()
        .remove("TreeWidth");
    assert_problem(
        &config,
        &partitions,
        "SlurmConf.TreeWidth: required key is missing",
    );

    let mut config = example_config();
    config["SlurmConf"] = json!([]);
    assert_problem(
        &config,
        &partitions,
        "SlurmConf: must be an object, got an array",
    );

    let mut config = example_config();
    config["SlurmConf"]["GresTypes"] = json!(["gpu"]);
    assert_problem(
        &config,
        &partitions,
        "SlurmConf.GresTypes: must be a string, number or boolean, got an array",
    );

    let mut config = example_config();
    config["Environment"] = json!({"AWS_ENDPOINT_URL_EC2": 5, "A=B": "x"});
    assert_problem(
        &config,
        &partitions,
        "Environment.AWS_ENDPOINT_URL_EC2: must be a string, got the number 5",
    );
    assert_problem(
        &config,
        &partitions,
        "Environment.A=B: is not a valid environment variable name",
    );
}

#[test]
fn config_json_number_and_name_messages() {
    let partitions = example_partitions();
    let mut config = example_config();
    config["TagConcurrency"] = json!(0);
    config["FleetBatchSize"] = json!(true);
    assert_problem(
        &config,
        &partitions,
        "TagConcurrency: must be a whole number from 1 to 256, got the number 0",
    );
    assert_problem(
        &config,
        &partitions,
        "FleetBatchSize: must be a whole number from 1 to 1000, got the boolean true",
    );

    let mut config = example_config();
    config["RealMemoryHeadroomPercent"] = json!(95);
    assert_problem(
        &config,
        &partitions,
        "RealMemoryHeadroomPercent: must be a whole number from 0 to 90, got the number 95",
    );
    config["RealMemoryHeadroomPercent"] = json!(10);
    config["RealMemoryHeadroomMiB"] = json!(512);
    let loaded = crate::config::load_texts(
        std::path::Path::new("/etc/slurm-ec2"),
        &config.to_string(),
        &partitions.to_string(),
    )
    .expect("valid");
    assert_eq!(
        loaded.settings.memory_headroom.real_memory(8192),
        8192 - 819
    );

    let mut config = example_config();
    config["ClusterName"] = json!("my cluster");
    assert_problem(
        &config,
        &partitions,
        "ClusterName: must be at most 255 characters without whitespace",
    );
}

#[test]
fn ec2_rate_limits_override_only_the_buckets_named() {
    use crate::rates::{Bucket, Rate, RateLimits};
    let partitions = example_partitions();
    let mut config = example_config();
    config["Ec2RateLimits"] = json!({"CreateTags": {"Burst": 200, "PerSecond": 20}});
    let loaded = crate::config::load_texts(
        std::path::Path::new("/etc/slurm-ec2"),
        &config.to_string(),
        &partitions.to_string(),
    )
    .expect("valid");
    let limits = &loaded.settings.rate_limits;
    assert_eq!(
        limits.of(Bucket::Tags),
        Rate {
            burst: 200.0,
            per_second: 20.0
        }
    );
    assert_eq!(
        limits.of(Bucket::Terminate),
        RateLimits::default().of(Bucket::Terminate)
    );

    config["Ec2RateLimits"] = json!({
        "CreateTag": {"Burst": 1, "PerSecond": 1},
        "CreateFleet": {"Burst": 0, "PerSecond": "fast"},
        "CreateTags": {"Burst": 1, "PerSecond": 0.01},
        "TerminateInstances": {"Burst": 10},
        "DescribeInstances": 5,
    });
    assert_problems(
        &config,
        &partitions,
        &[
            "Ec2RateLimits.CreateTag: is not a bucket: one of CreateFleet, CreateTags, TerminateInstances, StartInstances, DescribeInstances",
            "Ec2RateLimits.CreateFleet.Burst: must be a number from 2 to 1000000 (a smaller bucket cannot serve a run's calls within its budget), got the number 0",
            "Ec2RateLimits.CreateFleet.PerSecond: must be a number from 1 to 1000000 (a smaller bucket cannot serve a run's calls within its budget), got the string \"fast\"",
            "Ec2RateLimits.CreateTags.Burst: must be a number from 2 to 1000000 (a smaller bucket cannot serve a run's calls within its budget), got the number 1",
            "Ec2RateLimits.CreateTags.PerSecond: must be a number from 1 to 1000000 (a smaller bucket cannot serve a run's calls within its budget), got the number 0.01",
            "Ec2RateLimits.TerminateInstances.PerSecond: required key is missing",
            "Ec2RateLimits.DescribeInstances: must be an object, got the number 5",
        ],
    );
}

#[test]
fn missing_log_level_defaults_to_debug_and_booleans_render_for_slurm() {
    let mut config = example_config();
    config.as_object_mut().unwrap().remove("LogLevel");
    config.as_object_mut().unwrap().remove("LogFileName");
    // A boolean only where slurm.conf takes YES or NO.
    config["SlurmConf"]["TrackWCKey"] = json!(true);
    let loaded = fixtures::load(&config.to_string(), fixtures::EXAMPLE_1).unwrap();
    assert_eq!(loaded.log_level, LogLevel::Debug);
    assert_eq!(loaded.log_file, loaded.dir.join("aws_plugin.log"));
    assert_eq!(loaded.slurm_conf_value("TrackWCKey"), Some("YES"));
}

/// A change to the example partitions and the problem it must give.
type Change = Box<dyn Fn(&mut Value)>;

/// partitions.json messages: the partitions, their names and options.
fn partition_cases() -> Vec<(Change, &'static str)> {
    vec![
        (
            Box::new(|p| {
                p.as_object_mut().unwrap().remove("Partitions");
            }),
            "Partitions: required key is missing",
        ),
        (
            Box::new(|p| p["Partitions"] = json!({})),
            "Partitions: must be an array, got an object",
        ),
        (
            Box::new(|p| p["Partitions"][0]["PartitionName"] = json!("aws_1")),
            "Partitions[0].PartitionName: must match ^[a-zA-Z0-9]+$ (letters and digits only), got \"aws_1\"",
        ),
        (
            Box::new(|p| p["Partitions"][0]["PartitionOptions"] = json!("Default=yes")),
            "Partitions[0].PartitionOptions: must be an object, got the string \"Default=yes\"",
        ),
        (
            Box::new(|p| p["Partitions"][0]["NodeGroups"] = json!([])),
            "Partitions[0].NodeGroups: must hold at least one node group",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 1).insert("NodeGroupName".into(), json!("ondemand"));
            }),
            "Partitions[0].NodeGroups[1].NodeGroupName: \"ondemand\" is already used in this partition",
        ),
        (
            Box::new(|p| {
                let copy = p["Partitions"][0].clone();
                p["Partitions"].as_array_mut().unwrap().push(copy);
            }),
            "Partitions[1].PartitionName: \"aws\" is already used by another partition",
        ),
    ]
}

/// partitions.json messages: a node group's size, purchasing, subnets and overrides.
fn node_group_size_and_network_cases() -> Vec<(Change, &'static str)> {
    vec![
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("MaxNodes".into(), json!(true));
            }),
            "Partitions[0].NodeGroups[0].MaxNodes: must be a whole number from 1 to 10000, got the boolean true",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("MaxNodes".into(), json!(0));
            }),
            "Partitions[0].NodeGroups[0].MaxNodes: must be a whole number from 1 to 10000, got the number 0",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("MaxNodes".into(), json!(2.5));
            }),
            "Partitions[0].NodeGroups[0].MaxNodes: must be a whole number from 1 to 10000, got the number 2.5",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("MaxNodes".into(), json!(10001));
            }),
            "Partitions[0].NodeGroups[0].MaxNodes: must be a whole number from 1 to 10000, got the number 10001",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("PurchasingOption".into(), json!("reserved"));
            }),
            "Partitions[0].NodeGroups[0].PurchasingOption: must be \"spot\" or \"on-demand\", got \"reserved\"",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("SubnetIds".into(), json!([]));
            }),
            "Partitions[0].NodeGroups[0].SubnetIds: must hold at least one subnet id",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("SubnetIds".into(), json!("subnet-1"));
            }),
            "Partitions[0].NodeGroups[0].SubnetIds: must be an array, got the string \"subnet-1\"",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("SubnetIds".into(), json!(["subnet-1", "subnet-1"]));
            }),
            "Partitions[0].NodeGroups[0].SubnetIds[1]: \"subnet-1\" is listed twice",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("LaunchTemplateOverrides".into(), json!([]));
            }),
            "Partitions[0].NodeGroups[0].LaunchTemplateOverrides: must hold at least one override (for example {\"InstanceType\": \"c5.xlarge\"})",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("LaunchTemplateOverrides".into(), json!({}));
            }),
            "Partitions[0].NodeGroups[0].LaunchTemplateOverrides: must be an array, got an object",
        ),
    ]
}

/// partitions.json messages: the launch template, tags, Region and Gres.
fn template_tag_and_region_cases() -> Vec<(Change, &'static str)> {
    vec![
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert(
                    "LaunchTemplateOverrides".into(),
                    json!([{"InstanceType": "c5.large", "SubnetId": "subnet-1"}]),
                );
            }),
            "Partitions[0].NodeGroups[0].LaunchTemplateOverrides[0].SubnetId: must not be set here: list subnets in the node group's SubnetIds",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert(
                    "LaunchTemplateSpecification".into(),
                    json!({"Version": "1"}),
                );
            }),
            "Partitions[0].NodeGroups[0].LaunchTemplateSpecification: must give exactly one of LaunchTemplateId and LaunchTemplateName",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("Tags".into(), json!([{"Key": "Name", "Value": "x"}]));
            }),
            "Partitions[0].NodeGroups[0].Tags[0].Key: \"Name\" is set by slurm-ec2 to the node name and cannot be overridden",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("Tags".into(), json!([{"Key": "Cost", "Value": 12}]));
            }),
            "Partitions[0].NodeGroups[0].Tags[0].Value: must be a string, got the number 12",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("Tags".into(), json!([{"Key": "aws:x", "Value": "y"}]));
            }),
            "Partitions[0].NodeGroups[0].Tags[0].Key: \"aws:x\" uses a reserved prefix (aws: or slurm-ec2:)",
        ),
        (
            Box::new(|p| {
                let many: Vec<Value> = (0..43)
                    .map(|i| json!({"Key": format!("k{i}"), "Value": "v"}))
                    .collect();
                group_mut(p, 0, 0).insert("Tags".into(), Value::Array(many));
            }),
            "Partitions[0].NodeGroups[0].Tags: at most 42 tags (EC2 allows 50 per instance and slurm-ec2 adds up to 8: Name, cluster, partition, node group, node list, job id, user, account), got 43",
        ),
        (
            Box::new(|p| {
                let value = format!("{}{{user}}{{account}}", "x".repeat(170));
                group_mut(p, 0, 0).insert("Tags".into(), json!([{"Key": "Owner", "Value": value}]));
            }),
            "Partitions[0].NodeGroups[0].Tags[0].Value: may reach 266 characters once its placeholders are filled in (an address 39, a node or host name 64, a job id 10, a user 32, an account 64), more than EC2's 256",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("Region".into(), json!("US East"));
            }),
            "Partitions[0].NodeGroups[0].Region: \"US East\" is not a region name such as us-east-1",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("SlurmSpecifications".into(), json!({"Gres": "gpu:two"}));
            }),
            "Partitions[0].NodeGroups[0].SlurmSpecifications.Gres: \"gpu:two\": the count \"two\" is not a positive whole number",
        ),
    ]
}

/// partitions.json messages: purchasing options, overrides and template details.
fn option_cases() -> Vec<(Change, &'static str)> {
    vec![
        (
            Box::new(|p| {
                group_mut(p, 0, 0).remove("SlurmSpecifications");
            }),
            "Partitions[0].NodeGroups[0].SlurmSpecifications: required key is missing",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert(
                    "OnDemandOptions".into(),
                    json!({"SingleInstanceType": "yes"}),
                );
            }),
            "Partitions[0].NodeGroups[0].OnDemandOptions.SingleInstanceType: must be true or false, got the string \"yes\"",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0)
                    .insert("OnDemandOptions".into(), json!({"MinTargetCapacity": 0}));
            }),
            "Partitions[0].NodeGroups[0].OnDemandOptions.MinTargetCapacity: must be a whole number from 1 to 10000, got the number 0",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("OnDemandOptions".into(), json!([]));
            }),
            "Partitions[0].NodeGroups[0].OnDemandOptions: must be an object, got an array",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert(
                    "LaunchTemplateOverrides".into(),
                    json!([{"InstanceType": "c5.large", "Priority": "high"}]),
                );
            }),
            "Partitions[0].NodeGroups[0].LaunchTemplateOverrides[0].Priority: must be a number, got the string \"high\"",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("LaunchTemplateOverrides".into(), json!(["c5.large"]));
            }),
            "Partitions[0].NodeGroups[0].LaunchTemplateOverrides[0]: must be an object, got the string \"c5.large\"",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert(
                    "LaunchTemplateSpecification".into(),
                    json!({"LaunchTemplateName": "t", "Version": true}),
                );
            }),
            "Partitions[0].NodeGroups[0].LaunchTemplateSpecification.Version: must be a string, got the boolean true",
        ),
    ]
}

/// partitions.json messages: keys of the wrong type or missing, and shapes.
fn shape_cases() -> Vec<(Change, &'static str)> {
    vec![
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert(
                    "Tags".into(),
                    json!([{"Key": "k".repeat(129), "Value": "v"}]),
                );
            }),
            "Partitions[0].NodeGroups[0].Tags[0].Key: must be at most 128 characters",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert(
                    "Tags".into(),
                    json!([{"Key": "k", "Value": "v".repeat(257)}]),
                );
            }),
            "Partitions[0].NodeGroups[0].Tags[0].Value: must be at most 256 characters",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("Tags".into(), json!([{"Value": "v"}]));
            }),
            "Partitions[0].NodeGroups[0].Tags[0].Key: required key is missing",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("ProfileName".into(), json!(7));
            }),
            "Partitions[0].NodeGroups[0].ProfileName: must be a string, got the number 7",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("Region".into(), json!(""));
            }),
            "Partitions[0].NodeGroups[0].Region: must not be empty",
        ),
        (
            Box::new(|p| {
                group_mut(p, 0, 0).insert("SlurmSpecifications".into(), json!({"CPUs": null}));
            }),
            "Partitions[0].NodeGroups[0].SlurmSpecifications.CPUs: must be a string, number or boolean, got null",
        ),
        (
            Box::new(|p| p["Partitions"][0]["NodeGroups"] = json!({})),
            "Partitions[0].NodeGroups: must be an array, got an object",
        ),
        (
            Box::new(|p| p["Partitions"][0] = json!("aws")),
            "Partitions[0]: must be an object, got the string \"aws\"",
        ),
        (
            Box::new(|p| {
                p["Partitions"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("PartitionName");
            }),
            "Partitions[0].PartitionName: required key is missing",
        ),
        (
            Box::new(|p| p["Partitions"] = json!([])),
            "Partitions: must hold at least one partition",
        ),
        (
            Box::new(|p| *p = json!([])),
            ": must be an object, got an array",
        ),
    ]
}

#[test]
fn partitions_json_messages() {
    let config = example_config();
    let cases = [
        partition_cases(),
        node_group_size_and_network_cases(),
        template_tag_and_region_cases(),
        option_cases(),
        shape_cases(),
    ];
    for (change, expected) in cases.into_iter().flatten() {
        let mut partitions = example_partitions();
        change(&mut partitions);
        assert_problem(&config, &partitions, expected);
    }
}

#[test]
fn unknown_keys_are_warnings_that_suggest_the_nearest_key() {
    let mut partitions = example_partitions();
    let max = group_mut(&mut partitions, 0, 0).remove("MaxNodes").unwrap();
    group_mut(&mut partitions, 0, 0).insert("MaxNode".into(), max);
    // A misspelt required key is both missing and suggested.
    let found = problems(&example_config(), &partitions);
    assert_eq!(
        found,
        vec!["Partitions[0].NodeGroups[0].MaxNodes: required key is missing"]
    );

    let mut partitions = example_partitions();
    group_mut(&mut partitions, 0, 0).insert("ProfilName".into(), json!("x"));
    let mut config = example_config();
    config["Loglevel"] = json!("INFO");
    let loaded = fixtures::load(&config.to_string(), &partitions.to_string()).unwrap();
    let warnings: Vec<String> = loaded
        .warnings
        .iter()
        .map(|w| format!("{}: {}", w.path, w.message))
        .collect();
    assert!(warnings.contains(&"Partitions[0].NodeGroups[0].ProfilName: unknown key, ignored; did you mean \"ProfileName\"?".to_string()), "{warnings:#?}");
    assert!(
        warnings
            .contains(&"Loglevel: unknown key, ignored; did you mean \"LogLevel\"?".to_string()),
        "{warnings:#?}"
    );
}

#[test]
fn unreadable_or_malformed_files_name_the_file() {
    let error = fixtures::load("{ not json", fixtures::EXAMPLE_1).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("config.json: not valid JSON"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let error = crate::config::load(dir.path()).unwrap_err();
    assert!(
        error.to_string().contains("cannot read") && error.to_string().contains("config.json"),
        "{error}"
    );
}

#[test]
fn values_that_would_inject_slurm_conf_lines_or_match_other_clusters_are_refused() {
    let partitions = example_partitions();
    let mut config = example_config();
    config["ClusterName"] = json!("prod*");
    assert_problem(
        &config,
        &partitions,
        "ClusterName: must not hold '*': EC2 filters read it as a wildcard or an escape, so the value would match other clusters' instances",
    );
    for name in ["pr?d", "a\\b"] {
        config["ClusterName"] = json!(name);
        assert!(
            problems(&config, &partitions)
                .iter()
                .any(|p| p.starts_with("ClusterName: must not hold")),
            "{name}"
        );
    }

    let mut config = example_config();
    config["SlurmConf"]["ReconfigFlags"] = json!(true);
    config["SlurmConf"]["Bad Key"] = json!("1");
    config["SlurmConf"]["SuspendTime"] = json!("");
    config["SlurmBinPath"] = json!("/usr/bin\u{0}/evil");
    assert_problem(
        &config,
        &partitions,
        "SlurmConf.ReconfigFlags: takes no boolean in slurm.conf; write the value Slurm expects as a string",
    );
    assert_problem(
        &config,
        &partitions,
        "SlurmConf.Bad Key: is not a Slurm parameter name (a letter, then letters, digits or _)",
    );
    assert_problem(
        &config,
        &partitions,
        "SlurmConf.SuspendTime: must not be empty",
    );
    assert_problem(
        &config,
        &partitions,
        "SlurmBinPath: holds a NUL byte, which no file name can hold",
    );

    let config = example_config();
    let mut partitions = example_partitions();
    group_mut(&mut partitions, 0, 0)["SlurmSpecifications"]["CPUs"] =
        json!("4\nPartitionName=evil Nodes=ALL");
    group_mut(&mut partitions, 0, 0)["SlurmSpecifications"]["CPUs Weight"] = json!("1");
    group_mut(&mut partitions, 0, 0)["SlurmSpecifications"]["Weight"] = json!(true);
    partitions["Partitions"][0]["PartitionOptions"]["MaxTime"] = json!("1\r");
    group_mut(&mut partitions, 0, 1)["LaunchTemplateSpecification"]["Version"] = json!("0");
    assert_problems(
        &config,
        &partitions,
        &[
            "Partitions[0].NodeGroups[0].SlurmSpecifications.CPUs: holds a control character (a newline, a tab, …): slurm.conf takes one line per setting",
            "Partitions[0].NodeGroups[0].SlurmSpecifications.CPUs Weight: is not a Slurm parameter name (a letter, then letters, digits or _)",
            "Partitions[0].NodeGroups[0].SlurmSpecifications.Weight: takes no boolean in slurm.conf; write the value Slurm expects as a string",
            "Partitions[0].PartitionOptions.MaxTime: holds a control character (a newline, a tab, …): slurm.conf takes one line per setting",
            "Partitions[0].NodeGroups[1].LaunchTemplateSpecification.Version: must be a version number from 1, \"$Latest\" or \"$Default\", got \"0\"",
        ],
    );
    for version in [json!("$Latest"), json!("$Default"), json!(3), json!("12")] {
        let mut partitions = example_partitions();
        group_mut(&mut partitions, 0, 1)["LaunchTemplateSpecification"]["Version"] = version;
        assert!(problems(&config, &partitions).is_empty());
    }
    let mut partitions = example_partitions();
    partitions["Partitions"][0]["PartitionOptions"]["Default"] = json!(true);
    assert!(problems(&config, &partitions).is_empty());
}

#[test]
fn duplicate_keys_are_errors_with_their_path() {
    let config =
        fixtures::CONFIG_JSON.replacen('{', "{\"ClusterName\": \"a\", \"ClusterName\": \"b\",", 1);
    let error = fixtures::load(&config, fixtures::EXAMPLE_1).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("config.json: ClusterName: given more than once in the same object"),
        "{text}"
    );
    let partitions =
        fixtures::EXAMPLE_1.replacen("\"MaxNodes\": 10,", "\"MaxNodes\": 10, \"MaxNodes\": 5,", 1);
    let text = fixtures::load(fixtures::CONFIG_JSON, &partitions)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains(
            "partitions.json: Partitions[0].NodeGroups[0].MaxNodes: given more than once"
        ),
        "{text}"
    );
}

#[test]
fn only_regular_files_of_bounded_size_are_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partitions.json"), fixtures::EXAMPLE_1).unwrap();
    let fifo = dir.path().join("config.json");
    fixtures::mkfifo(&fifo);
    let text = crate::config::load(dir.path()).unwrap_err().to_string();
    assert!(
        text.contains("config.json") && text.contains("a FIFO"),
        "{text}"
    );
    std::fs::remove_file(&fifo).unwrap();
    std::fs::write(&fifo, fixtures::CONFIG_JSON).unwrap();
    let partitions = dir.path().join("partitions.json");
    std::fs::remove_file(&partitions).unwrap();
    std::os::unix::fs::symlink("/dev/urandom", &partitions).unwrap();
    let text = crate::config::load(dir.path()).unwrap_err().to_string();
    assert!(
        text.contains("partitions.json") && text.contains("character device"),
        "{text}"
    );
}

fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "Partitions",
            "NodeGroups",
            "MaxNodes",
            "SlurmConf",
            "$Latest"
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        let key = prop_oneof![
            prop::sample::select(vec![
                "Partitions",
                "PartitionName",
                "NodeGroups",
                "NodeGroupName",
                "MaxNodes",
                "Region",
                "SlurmSpecifications",
                "PurchasingOption",
                "LaunchTemplateSpecification",
                "LaunchTemplateOverrides",
                "SubnetIds",
                "Tags",
                "SlurmBinPath",
                "SlurmConf",
                "LogFileName",
                "ClusterName",
                "Environment",
                "Version",
            ])
            .prop_map(str::to_string),
            "\\PC{0,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..5)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

    #[test]
    fn any_bytes_or_json_are_loaded_or_refused_naming_the_file(
        bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        json in arbitrary_json(),
    ) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        for (config, partitions, file) in [
            (text.clone(), fixtures::EXAMPLE_1.to_string(), "config.json"),
            (fixtures::CONFIG_JSON.to_string(), text.clone(), "partitions.json"),
            (json.to_string(), fixtures::EXAMPLE_1.to_string(), "config.json"),
            (fixtures::CONFIG_JSON.to_string(), json.to_string(), "partitions.json"),
        ] {
            if let Err(error) = fixtures::load(&config, &partitions) {
                let message = error.to_string();
                proptest::prop_assert!(message.contains(file), "{}", message);
                if let ConfigError::Invalid { problems } = &error {
                    proptest::prop_assert!(!problems.is_empty());
                    proptest::prop_assert!(problems.iter().all(|p| !p.message.is_empty()));
                }
            }
        }
    }
}

#[test]
fn notice_settings_are_validated() {
    let mut config = example_config();
    let mut partitions = example_partitions();
    let loaded = fixtures::load(&config.to_string(), &partitions.to_string()).unwrap();
    let group = loaded.node_group("aws", "ondemand").unwrap();
    assert_eq!(group.on_rebalance, crate::config::OnRebalance::Drain);
    assert_eq!(loaded.settings.interruption_signal, "TERM");
    group_mut(&mut partitions, 0, 0).insert("RebalanceRecommendation".into(), json!("wait"));
    config["InterruptionSignal"] = json!("SIGKILL");
    config["InterruptionRequeueSeconds"] = json!(120);
    let found = problems(&config, &partitions);
    for expected in [
        "Partitions[0].NodeGroups[0].RebalanceRecommendation: must be \"drain\" or \"ignore\", got \"wait\"",
        "InterruptionSignal: must be one of TERM, USR1, USR2, INT, HUP, CONT; got \"SIGKILL\"",
        "InterruptionRequeueSeconds",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "{expected}: {found:#?}"
        );
    }
    group_mut(&mut partitions, 0, 0).insert("RebalanceRecommendation".into(), json!("ignore"));
    config["InterruptionSignal"] = json!("SIGUSR1");
    config["InterruptionRequeueSeconds"] = json!(30);
    let loaded = fixtures::load(&config.to_string(), &partitions.to_string()).unwrap();
    assert_eq!(
        loaded.node_group("aws", "ondemand").unwrap().on_rebalance,
        crate::config::OnRebalance::Ignore
    );
    assert_eq!(loaded.settings.interruption_signal, "USR1");
    assert_eq!(loaded.settings.interruption_requeue.as_secs(), 30);
}

#[test]
fn job_level_scaling_and_job_tags_are_validated() {
    let config = example_config();
    let mut partitions = example_partitions();
    let loaded = fixtures::load(&config.to_string(), &partitions.to_string()).unwrap();
    let group = loaded.node_group("aws", "ondemand").unwrap();
    assert_eq!(group.job_level_scaling, JobLevelScaling::BestEffort);
    assert!(loaded.settings.job_tags);

    group_mut(&mut partitions, 0, 0).insert("JobLevelScaling".into(), json!("all_or_nothing"));
    assert_problem(
        &config,
        &partitions,
        "Partitions[0].NodeGroups[0].JobLevelScaling: must be \"best-effort\" or \"all-or-nothing\", got \"all_or_nothing\"",
    );
    group_mut(&mut partitions, 0, 0).insert("JobLevelScaling".into(), json!("all-or-nothing"));
    let loaded = fixtures::load(&config.to_string(), &partitions.to_string()).unwrap();
    let group = loaded.node_group("aws", "ondemand").unwrap();
    assert_eq!(group.job_level_scaling, JobLevelScaling::AllOrNothing);

    group_mut(&mut partitions, 0, 0).insert(
        "OnDemandOptions".into(),
        json!({"SingleAvailabilityZone": false}),
    );
    let found = problems(&config, &partitions);
    assert!(
        found.iter().any(|p| p.starts_with(
            "Partitions[0].NodeGroups[0].JobLevelScaling: all-or-nothing needs SingleAvailabilityZone or SingleInstanceType"
        )),
        "{found:#?}"
    );
    group_mut(&mut partitions, 0, 0).insert(
        "OnDemandOptions".into(),
        json!({"SingleAvailabilityZone": false, "SingleInstanceType": true}),
    );
    assert!(problems(&config, &partitions).is_empty());

    let mut config = example_config();
    config["JobTags"] = json!(false);
    let loaded = fixtures::load(&config.to_string(), fixtures::EXAMPLE_1).unwrap();
    assert!(!loaded.settings.job_tags);
    config["JobTags"] = json!("no");
    assert_problem(
        &config,
        &example_partitions(),
        "JobTags: must be true or false, got the string \"no\"",
    );
}

#[test]
fn resume_timeout_infinite_keeps_the_defaults_and_no_kill_time() {
    let mut config = example_config();
    config["SlurmConf"]["ResumeTimeout"] = json!("INFINITE");
    let loaded = fixtures::load(&config.to_string(), fixtures::EXAMPLE_1).unwrap();
    let about_timeout = |config: &crate::config::Config| {
        config
            .warnings
            .iter()
            .any(|w| w.to_string().contains("not a number of seconds"))
    };
    assert!(!about_timeout(&loaded), "{:?}", loaded.warnings);
    assert_eq!(
        loaded.settings.resume_budget,
        std::time::Duration::from_secs(150)
    );
    assert_eq!(
        loaded.settings.launch_grace,
        std::time::Duration::from_secs(300)
    );
    assert!(loaded.settings.slurm_limit >= std::time::Duration::from_secs(86_400));
    config["SlurmConf"]["ResumeTimeout"] = json!("soon");
    let loaded = fixtures::load(&config.to_string(), fixtures::EXAMPLE_1).unwrap();
    assert!(about_timeout(&loaded), "{:?}", loaded.warnings);
}

/// The configuration these documents make, which must be valid.
fn valid(config: &Value, partitions: &Value) -> crate::config::Config {
    crate::config::load_texts(
        std::path::Path::new("/etc/slurm-ec2"),
        &config.to_string(),
        &partitions.to_string(),
    )
    .expect("valid")
}

#[test]
fn prices_and_the_metrics_file() {
    let partitions = example_partitions();
    let mut config = example_config();
    config["OnDemandHourlyPrices"] = json!({"c5.large": 0.085});
    config["Prices"] =
        json!({"c5.large": {"OnDemand": 0.085, "Spot": 0.03}, "m5.large": {"Spot": 0.04}});
    config["MetricsFile"] = json!("/var/lib/prometheus/node-exporter/slurm-ec2.prom");
    let loaded = valid(&config, &partitions);
    assert_eq!(loaded.settings.on_demand_prices["c5.large"], 0.085);
    assert_eq!(loaded.settings.spot_prices["c5.large"], 0.03);
    assert_eq!(loaded.settings.spot_prices["m5.large"], 0.04);
    assert!(!loaded.settings.on_demand_prices.contains_key("m5.large"));
    assert_eq!(
        loaded.metrics_file.as_deref(),
        Some(std::path::Path::new(
            "/var/lib/prometheus/node-exporter/slurm-ec2.prom"
        ))
    );

    config["Prices"] = json!({"c5.large": {"OnDemand": 0.1, "Reserved": 0.05}, "m5.large": {"Spot": -1}, "t3.micro": 3});
    config["MetricsFile"] = json!("slurm-ec2.prom");
    assert_problems(
        &config,
        &partitions,
        &[
            "Prices.c5.large.OnDemand: differs from OnDemandHourlyPrices.c5.large",
            "Prices.c5.large.Reserved: is no purchasing option: use OnDemand or Spot",
            "Prices.m5.large.Spot: must be a price in dollars an hour, got the number -1",
        ],
    );
    let found = problems(&config, &partitions);
    assert!(
        found.iter().any(|p| p.starts_with("Prices.t3.micro: ")),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|p| p.starts_with("MetricsFile: ")),
        "{found:#?}"
    );

    let mut config = example_config();
    config["MetricsFile"] = json!("/var/lib/prometheus/node-exporter/slurm-ec2.txt");
    let loaded = valid(&config, &partitions);
    assert!(
        loaded.warnings.iter().any(|w| w.message.contains(".prom")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn a_warm_pool_is_on_demand_within_max_nodes_and_leaves_room_for_its_tags() {
    let config = example_config();
    let mut partitions = example_partitions();
    let loaded = fixtures::load(&config.to_string(), &partitions.to_string()).unwrap();
    assert_eq!(
        loaded.node_group("aws", "ondemand").unwrap().warm_pool,
        None
    );

    group_mut(&mut partitions, 0, 0).insert("WarmPool".into(), json!({"Size": 4}));
    let loaded = fixtures::load(&config.to_string(), &partitions.to_string()).unwrap();
    let pool = loaded
        .node_group("aws", "ondemand")
        .unwrap()
        .warm_pool
        .clone()
        .expect("a pool");
    assert_eq!(pool.size, 4);
    assert_eq!(
        pool.max_age.as_secs(),
        24 * 3600,
        "MaxAgeHours defaults to 24"
    );
    assert_eq!(pool.volume_cost_per_hour, None);

    let pooled = |partitions: &mut Value, g: usize, pool: Value| {
        group_mut(partitions, 0, g).insert("WarmPool".into(), pool);
    };
    pooled(
        &mut partitions,
        0,
        json!({"Size": 11, "MaxAgeHours": 0, "VolumeCostPerHour": -1}),
    );
    pooled(&mut partitions, 1, json!({"Size": 2}));
    assert_problems(
        &config,
        &partitions,
        &[
            "Partitions[0].NodeGroups[0].WarmPool.Size: must be a whole number from 1 to 10, got the number 11",
            "Partitions[0].NodeGroups[0].WarmPool.MaxAgeHours: must be a whole number from 1 to 8760, got the number 0",
            "Partitions[0].NodeGroups[0].WarmPool.VolumeCostPerHour: must be a price in dollars an hour, got the number -1",
            "Partitions[0].NodeGroups[1].WarmPool: a Spot group cannot have a warm pool: an instant fleet's Spot instance cannot be stopped",
        ],
    );

    let mut partitions = example_partitions();
    let tags: Vec<Value> = (0..39)
        .map(|i| json!({"Key": format!("k{i}"), "Value": "v"}))
        .collect();
    group_mut(&mut partitions, 0, 0).insert("Tags".into(), Value::Array(tags));
    pooled(&mut partitions, 0, json!({"Size": 1, "Sizes": 2}));
    let found = problems(&config, &partitions);
    assert!(
        found.iter().any(|p| p
            == "Partitions[0].NodeGroups[0].WarmPool: a warm pool's instances carry 4 more tags of slurm-ec2's: at most 38 custom tags in its group, got 39"),
        "{found:#?}"
    );
}
