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
