use serde_json::Value;

use crate::support::Workspace;

const CONFIG: &str = include_str!("../../config/config.json");

fn generate(partitions: &str, args: &[&str]) -> String {
    let config: Value = serde_json::from_str(CONFIG).unwrap();
    let partitions: Value = serde_json::from_str(partitions).unwrap();
    let workspace = Workspace::new(&config, &partitions);
    let output = workspace.run("generate-conf", args);
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

const HEADER: &str = "\
PrivateData=CLOUD
ResumeProgram=/slurm/etc/aws/resume
SuspendProgram=/slurm/etc/aws/suspend
ResumeRate=100
SuspendRate=100
ResumeTimeout=300
SuspendTime=350
TreeWidth=60000
# Slurm runs ResumeFailProgram for nodes that missed ResumeTimeout and does not
# call SuspendProgram for them: without it their instances would keep running.
ResumeFailProgram=/slurm/etc/aws/suspend

";

#[test]
fn readme_example_1() {
    let expected = format!(
        "{HEADER}\
NodeName=aws-ondemand-[0-9] State=CLOUD CPUs=4 Weight=1
NodeName=aws-spot-[0-99] State=CLOUD CPUs=4 Weight=2
PartitionName=aws Nodes=aws-ondemand-[0-9],aws-spot-[0-99] MaxTime=INFINITE State=UP Default=yes TRESBillingWeights=cpu=4

"
    );
    assert_eq!(
        generate(
            include_str!("../../config/examples/partitions-example-1.json"),
            &[]
        ),
        expected
    );
}

#[test]
fn readme_example_2_has_no_trailing_space() {
    let expected = format!(
        "{HEADER}\
NodeName=aws-spot4vCPU-[0-99] State=CLOUD CPUs=4 Weight=1
NodeName=aws-spot4vCPUa-[0-99] State=CLOUD CPUs=4 Features=us-east-1a Weight=2
NodeName=aws-spot4vCPUb-[0-99] State=CLOUD CPUs=4 Features=us-east-1b Weight=2
PartitionName=aws Nodes=aws-spot4vCPU-[0-99],aws-spot4vCPUa-[0-99],aws-spot4vCPUb-[0-99] MaxTime=INFINITE State=UP

"
    );
    assert_eq!(
        generate(
            include_str!("../../config/examples/partitions-example-2.json"),
            &[]
        ),
        expected
    );
}

#[test]
fn readme_example_3_two_partitions() {
    let expected = format!(
        "{HEADER}\
NodeName=aws-node-[0-99] State=CLOUD CPUs=4 Weight=1
PartitionName=aws Nodes=aws-node-[0-99] MaxTime=INFINITE State=UP TRESBillingWeights=cpu=30 AllowAccounts=standard,VIP

NodeName=awsspot-node-[0-99] State=CLOUD CPUs=4 Weight=1
PartitionName=awsspot Nodes=awsspot-node-[0-99] MaxTime=INFINITE State=UP TRESBillingWeights=cpu=10 AllowAccounts=standard

"
    );
    assert_eq!(
        generate(
            include_str!("../../config/examples/partitions-example-3.json"),
            &[]
        ),
        expected
    );
}

fn gpu_partitions() -> String {
    let mut partitions: Value = serde_json::from_str(include_str!(
        "../../config/examples/partitions-example-3.json"
    ))
    .unwrap();
    let groups = partitions["Partitions"][0]["NodeGroups"]
        .as_array_mut()
        .unwrap();
    groups[0]["MaxNodes"] = 1.into();
    groups[0]["SlurmSpecifications"] =
        serde_json::json!({"CPUs": 8, "Gres": "gpu:volta:4", "Features": "volta"});
    partitions["Partitions"][0]["PartitionOptions"] =
        serde_json::json!({"MaxTime": "1-00:00:00", "State": "DOWN", "Default": true});
    partitions.to_string()
}

#[test]
fn one_node_group_booleans_and_no_duplicate_max_time_or_state() {
    let output = generate(&gpu_partitions(), &[]);
    assert!(
        output
            .contains("\nNodeName=aws-node-0 State=CLOUD CPUs=8 Gres=gpu:volta:4 Features=volta\n"),
        "{output}"
    );
    assert!(
        output.contains(
            "\nPartitionName=aws Nodes=aws-node-0 MaxTime=1-00:00:00 State=DOWN Default=YES\n"
        ),
        "{output}"
    );
}

#[test]
fn gres_fragment_and_output_dir() {
    assert_eq!(
        generate(&gpu_partitions(), &["--gres"]),
        "NodeName=aws-node-0 Name=gpu Type=volta File=/dev/nvidia[0-3]\n"
    );
    let config: Value = serde_json::from_str(CONFIG).unwrap();
    let workspace = Workspace::new(&config, &serde_json::from_str(&gpu_partitions()).unwrap());
    let out = workspace.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let output = workspace.run("generate-conf", &["--output-dir", out.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    let slurm = std::fs::read_to_string(out.join("slurm.conf.aws")).unwrap();
    assert!(slurm.starts_with("PrivateData=CLOUD\n"));
    let gres = std::fs::read_to_string(out.join("gres.conf.aws")).unwrap();
    assert_eq!(
        gres,
        "NodeName=aws-node-0 Name=gpu Type=volta File=/dev/nvidia[0-3]\n"
    );
}

/// generate-conf's stdout and stderr, for a configuration whose SlurmConf has
/// `extra` added, on a Slurm that says it is `version`.
fn generate_for(version: &str, extra: &[(&str, &str)], args: &[&str]) -> (String, String) {
    let mut config: Value = serde_json::from_str(CONFIG).unwrap();
    for (key, value) in extra {
        config["SlurmConf"][*key] = Value::String(value.to_string());
    }
    let partitions: Value = serde_json::from_str(include_str!(
        "../../config/examples/partitions-example-1.json"
    ))
    .unwrap();
    let workspace = Workspace::new(&config, &partitions);
    std::fs::write(workspace.path().join("bin/version"), version).unwrap();
    let output = workspace.run("generate-conf", args);
    assert!(output.status.success(), "{output:?}");
    (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn the_fragment_for_22_05_is_the_same_whether_detected_or_given() {
    let (detected, _) = generate_for("22.05.8", &[], &[]);
    let (given, _) = generate_for("24.11.5", &[], &["--slurm-version", "22.05"]);
    assert_eq!(detected, given);
    assert!(detected.starts_with(HEADER), "{detected}");
}

#[test]
fn slurm_24_11_gets_no_private_data_cloud_and_a_warning_why() {
    let (text, stderr) = generate_for("24.11.5", &[], &[]);
    assert!(!text.contains("PrivateData"), "{text}");
    assert!(
        text.contains("ResumeProgram=/slurm/etc/aws/resume\n"),
        "{text}"
    );
    assert!(
        stderr.contains("PrivateData: cloud left out for Slurm 24.11.5"),
        "{stderr}"
    );
    assert!(
        stderr.contains("make the node names resolvable"),
        "{stderr}"
    );
    // Other items of the list stay.
    let (text, _) = generate_for("24.11.5", &[("PrivateData", "CLOUD,jobs")], &[]);
    assert!(text.contains("PrivateData=jobs\n"), "{text}");
}

#[test]
fn cloud_reg_addrs_is_left_out_from_23_11_and_cloud_dns_is_offered() {
    let extra = [(
        "SlurmctldParameters",
        "cloud_reg_addrs,idle_on_node_suspend",
    )];
    let (old, _) = generate_for("23.02.7", &extra, &[]);
    assert!(
        old.contains("SlurmctldParameters=cloud_reg_addrs,idle_on_node_suspend\n"),
        "{old}"
    );
    assert!(old.contains("PrivateData=CLOUD\n"), "{old}");
    let (new, stderr) = generate_for("23.11.1", &extra, &[]);
    assert!(
        new.contains("SlurmctldParameters=idle_on_node_suspend\n"),
        "{new}"
    );
    assert!(
        stderr.contains("cloud_reg_addrs left out for Slurm 23.11.1"),
        "{stderr}"
    );
    let (dns, stderr) = generate_for("24.11.5", &extra, &["--cloud-dns"]);
    assert!(
        dns.contains("SlurmctldParameters=idle_on_node_suspend,cloud_dns\n"),
        "{dns}"
    );
    assert!(
        !stderr.contains("make the node names resolvable"),
        "{stderr}"
    );
    let (alone, _) = generate_for("24.11.5", &[], &["--cloud-dns"]);
    assert!(
        alone.contains("\nSlurmctldParameters=cloud_dns\n"),
        "{alone}"
    );
}

#[test]
fn a_budget_as_long_as_slurm_lets_resume_run_is_refused() {
    let mut config: Value = serde_json::from_str(CONFIG).unwrap();
    config["ResumeBudgetSeconds"] = Value::from(300);
    let partitions: Value = serde_json::from_str(include_str!(
        "../../config/examples/partitions-example-1.json"
    ))
    .unwrap();
    let workspace = Workspace::new(&config, &partitions);
    for program in ["generate-conf", "resume", "change-state"] {
        let output = workspace.run(program, &["--check"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{program}: {stderr}");
        assert!(
            stderr.contains("ResumeBudgetSeconds: must be below 300 s, the larger of SlurmConf's ResumeTimeout and SuspendTimeout"),
            "{program}: {stderr}"
        );
    }
}

/// Partitions with a GPU group of two T4 types and a CPU group whose CPUs
/// are given, for `--from-ec2` against the faked EC2.
fn from_ec2_partitions() -> Value {
    let mut partitions = crate::support::test_partitions(4);
    let groups = &mut partitions["Partitions"][0]["NodeGroups"];
    groups[0]["NodeGroupName"] = "gpu".into();
    groups[0]["SlurmSpecifications"] = serde_json::json!({"Weight": "5"});
    groups[0]["LaunchTemplateOverrides"] =
        serde_json::json!([{"InstanceType": "g4dn.xlarge"}, {"InstanceType": "g4dn.2xlarge"}]);
    groups[1]["SlurmSpecifications"] = serde_json::json!({"CPUs": "2", "Weight": "1"});
    partitions
}

#[tokio::test(flavor = "multi_thread")]
async fn from_ec2_fills_in_what_the_specifications_omit_from_the_smallest_type() {
    let (server, fake, workspace) = crate::resume_wire::setup(4).await;
    workspace.write_config(
        &crate::support::test_config(&server.uri()),
        &from_ec2_partitions(),
    );
    let plain = workspace.run_async("generate-conf", &[]).await;
    assert!(plain.status.success(), "{plain:?}");
    assert!(
        fake.state().requests.is_empty(),
        "no EC2 call without --from-ec2"
    );
    let output = workspace.run_async("generate-conf", &["--from-ec2"]).await;
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let plain = String::from_utf8(plain.stdout).unwrap();
    // 16384 MiB less the larger of 5 % (819) and 1024 MiB.
    assert!(
        text.contains(
            "NodeName=aws-gpu-[0-3] State=CLOUD Weight=5 CPUs=4 RealMemory=15360 Gres=gpu:t4:1\n"
        ),
        "{text}"
    );
    // CPUs given: kept. The smallest memory is c4.xlarge's 7680 MiB.
    assert!(
        text.contains("NodeName=aws-sp-[0-3] State=CLOUD CPUs=2 Weight=1 RealMemory=6656\n"),
        "{text}"
    );
    assert!(text.contains("\nGresTypes=gpu\n"), "{text}");
    assert!(
        !plain.contains("GresTypes") && !plain.contains("RealMemory"),
        "{plain}"
    );
    let calls = fake.calls("DescribeInstanceTypes");
    assert_eq!(calls.len(), 1, "one call for every type of the account");
    let notes = String::from_utf8_lossy(&output.stderr);
    assert!(notes.contains("aws-sp-[0-3]: memory differs"), "{notes}");
    let gres = workspace
        .run_async("generate-conf", &["--from-ec2", "--gres"])
        .await;
    assert_eq!(
        String::from_utf8(gres.stdout).unwrap(),
        "NodeName=aws-gpu-[0-3] Name=gpu Type=t4 File=/dev/nvidia[0]\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn from_ec2_refuses_a_type_ec2_does_not_know_and_fails_when_ec2_is_away() {
    let (server, _fake, workspace) = crate::resume_wire::setup(4).await;
    let mut partitions = from_ec2_partitions();
    partitions["Partitions"][0]["NodeGroups"][0]["LaunchTemplateOverrides"][1]["InstanceType"] =
        "g4dn.nosuch".into();
    workspace.write_config(&crate::support::test_config(&server.uri()), &partitions);
    let output = workspace.run_async("generate-conf", &["--from-ec2"]).await;
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("InvalidInstanceType"), "{text}");
    assert!(output.stdout.is_empty(), "no fragment from half the data");
    let away = Workspace::new(
        &crate::support::test_config("http://127.0.0.1:9"),
        &from_ec2_partitions(),
    );
    let output = away.run("generate-conf", &["--from-ec2"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(output.stdout.is_empty());
}
