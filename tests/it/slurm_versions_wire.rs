//! The forms of Slurm commands that each version gets, and the InstanceId
//! that 23.11 and later record, against a recording scontrol and a faked EC2.

use crate::resume_wire::setup;
use crate::support::fake_ec2::list;
use crate::support::{Workspace, our_tags};

fn slurm_version(workspace: &Workspace, version: &str) {
    std::fs::write(workspace.path().join("bin/version"), version).unwrap();
}

fn nodes(workspace: &Workspace, text: &str) {
    std::fs::write(workspace.path().join("bin/nodes.txt"), text).unwrap();
}

fn calls_starting(workspace: &Workspace, words: &[&str]) -> Vec<Vec<String>> {
    workspace
        .scontrol_calls()
        .into_iter()
        .filter(|c| c.len() >= words.len() && c.iter().zip(words).all(|(a, b)| a == b))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_on_24_11_records_each_instance_after_the_addresses() {
    let (_server, fake, workspace) = setup(10).await;
    slurm_version(&workspace, "24.11.5");
    let output = workspace.run_async("resume", &["aws-od-[0-2]"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let updates = workspace.scontrol_updates();
    let address_call = updates
        .iter()
        .position(|c| c.iter().any(|a| a.starts_with("nodeaddr=")))
        .expect("an address update");
    let records: Vec<(usize, &Vec<String>)> = updates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.iter().any(|a| a.starts_with("instanceid=")))
        .collect();
    assert_eq!(
        records.len(),
        3,
        "one call per node before 25.11.6: {updates:?}"
    );
    let live = fake.live();
    for (position, call) in &records {
        assert!(*position > address_call, "addresses first: {updates:?}");
        let node = call[1].strip_prefix("nodename=").unwrap();
        let id = call[2].strip_prefix("instanceid=").unwrap();
        let instance = live.iter().find(|i| i.id == id).expect("a live instance");
        assert_eq!(instance.tag("Name"), Some(node));
        assert_eq!(call[3], "instancetype=c5.xlarge");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn from_25_11_6_instances_are_recorded_in_one_call() {
    let (_server, _fake, workspace) = setup(10).await;
    slurm_version(&workspace, "25.11.6");
    let output = workspace.run_async("resume", &["aws-od-[0-2]"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let records: Vec<Vec<String>> = workspace
        .scontrol_updates()
        .into_iter()
        .filter(|c| c.iter().any(|a| a.starts_with("instanceid=")))
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0][1], "nodename=aws-od-0,aws-od-1,aws-od-2");
    assert_eq!(records[0][2].matches(',').count(), 2, "{records:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn before_23_11_nothing_is_recorded_and_power_down_is_a_state() {
    let (_server, fake, workspace) = setup(10).await;
    slurm_version(&workspace, "23.02.7");
    fake.state().faults.capacity_left = Some(0);
    let output = workspace.run_async("resume", &["aws-od-[0-1]"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", workspace.log());
    let all = workspace.scontrol_calls();
    assert!(
        !all.iter().flatten().any(|a| a.starts_with("instanceid=")),
        "{all:?}"
    );
    assert!(
        all.iter()
            .any(|c| c.last().map(String::as_str) == Some("state=POWER_DOWN_FORCE")),
        "{all:?}"
    );
    assert!(calls_starting(&workspace, &["power"]).is_empty(), "{all:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn from_24_05_failed_nodes_are_powered_down_by_the_power_command() {
    let (_server, fake, workspace) = setup(10).await;
    slurm_version(&workspace, "24.05.4");
    fake.state().faults.capacity_left = Some(0);
    let output = workspace.run_async("resume", &["aws-od-[0-1]"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", workspace.log());
    let power = calls_starting(&workspace, &["power", "down", "force"]);
    assert_eq!(power.len(), 1, "{:?}", workspace.scontrol_calls());
    assert_eq!(power[0][3], "aws-od-[0-1]");
    let versions = calls_starting(&workspace, &["--version"]);
    assert_eq!(versions.len(), 1, "the version is read once per run");
}

const RECORDED: &str = "\
NodeName=aws-od-0 NodeAddr=10.0.0.1 State=IDLE+CLOUD+POWERING_DOWN InstanceId=ID0 InstanceType=c5.xlarge Partitions=aws
NodeName=aws-od-1 NodeAddr=10.0.0.2 State=IDLE+CLOUD+POWERING_DOWN InstanceId=ID1 InstanceType=c5.xlarge Partitions=aws
NodeName=aws-od-2 NodeAddr=10.0.0.3 State=IDLE+CLOUD+POWERING_DOWN InstanceId=(null) Partitions=aws
";

#[tokio::test(flavor = "multi_thread")]
async fn suspend_on_24_11_terminates_by_recorded_id_and_checks_its_tags() {
    let (_server, fake, workspace) = setup(10).await;
    slurm_version(&workspace, "24.11.5");
    // aws-od-0's instance has no Name yet; aws-od-1's recorded id is another
    // cluster's instance; aws-od-2 has no record, only its Name.
    let nameless = fake.add_instance(&our_tags("aws-od-0")[1..]);
    let theirs = fake.add_instance(&[("Name", "aws-od-1"), ("slurm-ec2:cluster", "other")]);
    let named = fake.add_instance(&our_tags("aws-od-2"));
    let own_1 = fake.add_instance(&our_tags("aws-od-1"));
    nodes(
        &workspace,
        &RECORDED.replace("ID0", &nameless).replace("ID1", &theirs),
    );
    let output = workspace.run_async("suspend", &["aws-od-[0-2]"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let live: Vec<String> = fake.live().iter().map(|i| i.id.clone()).collect();
    assert_eq!(live, vec![theirs.clone()], "{}", workspace.log());
    let terminated: Vec<String> = fake
        .calls("TerminateInstances")
        .iter()
        .flat_map(|c| list(c, "InstanceId"))
        .collect();
    for id in [&nameless, &named, &own_1] {
        assert!(terminated.contains(id), "{id} terminated: {terminated:?}");
    }
    let by_name: usize = fake
        .calls("DescribeInstances")
        .iter()
        .filter(|c| c.values().any(|v| v == "tag:Name"))
        .count();
    assert_eq!(by_name, 1, "one look-up by Name for the nodes left");
    assert!(
        workspace.log().contains("terminated 3"),
        "{}",
        workspace.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn change_state_on_24_11_records_a_missing_instance_id_and_powers_down_by_command() {
    let (_server, fake, workspace) = setup(10).await;
    slurm_version(&workspace, "24.11.5");
    let instance = fake.add_instance(&our_tags("aws-od-0"));
    nodes(
        &workspace,
        "NodeName=aws-od-0 NodeAddr=10.0.0.1 State=ALLOCATED+CLOUD InstanceId=(null) Partitions=aws\n\
         NodeName=aws-od-1 NodeAddr=aws-od-1 State=DOWN+CLOUD+NOT_RESPONDING Partitions=aws Reason=Not responding [slurm@2026-11-21T12:00:00]\n",
    );
    let output = workspace.run_async("change-state", &[]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let records = calls_starting(&workspace, &["update", "nodename=aws-od-0"]);
    assert_eq!(
        records,
        vec![vec![
            "update".to_string(),
            "nodename=aws-od-0".to_string(),
            format!("instanceid={instance}"),
            "instancetype=c5.xlarge".to_string(),
        ]]
    );
    let power = calls_starting(&workspace, &["power", "down", "force"]);
    assert_eq!(power.len(), 1, "{:?}", workspace.scontrol_calls());
    assert_eq!(power[0][3], "aws-od-1");
    assert!(
        !fake.live().is_empty(),
        "the instance of a node in service is kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_without_ca_certificates_fails_the_nodes_at_once_instead_of_panicking() {
    let (_server, fake, workspace) = setup(10).await;
    let empty = workspace.path().join("no-certificates");
    std::fs::create_dir(&empty).unwrap();
    let dir = workspace.path().to_path_buf();
    let env = vec![
        (
            "SSL_CERT_FILE".to_string(),
            empty.join("none.pem").display().to_string(),
        ),
        ("SSL_CERT_DIR".to_string(), empty.display().to_string()),
    ];
    let output = tokio::task::spawn_blocking(move || {
        crate::support::run_binary_with_env(&dir, "resume", &["aws-od-[0-1]"], &env)
    })
    .await
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{output:?}\n{}",
        workspace.log()
    );
    let log = workspace.log();
    assert!(log.contains("no CA certificates found"), "{log}");
    let down = workspace
        .scontrol_updates()
        .into_iter()
        .find(|c| c.iter().any(|a| a == "state=DOWN"))
        .expect("the nodes are set DOWN");
    assert!(
        down.iter().any(|a| a.contains("(Code:NoCACertificates)")),
        "{down:?}"
    );
    assert!(fake.calls("CreateFleet").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_that_slurmctld_did_not_answer_in_time_is_repeated() {
    let (_server, fake, workspace) = setup(10).await;
    // slurmctld busy resolving names (24.11) answers the first two too late.
    std::fs::write(workspace.path().join("bin/timeouts"), "2").unwrap();
    let output = workspace.run_async("resume", &["aws-od-[0-1]"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let addresses = workspace
        .scontrol_updates()
        .into_iter()
        .filter(|c| c.iter().any(|a| a.starts_with("nodeaddr=")))
        .count();
    assert_eq!(
        addresses, 3,
        "two timeouts, then the call that went through"
    );
    assert!(
        workspace.log().contains("trying again in 1 s"),
        "{}",
        workspace.log()
    );
    assert_eq!(fake.live().len(), 2, "both nodes served");

    // Three in a row are the end of it: the nodes fail and nothing is left running.
    let (_server, fake, workspace) = setup(10).await;
    std::fs::write(workspace.path().join("bin/timeouts"), "3").unwrap();
    let output = workspace.run_async("resume", &["aws-od-[0-1]"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", workspace.log());
    assert!(fake.live().is_empty(), "{}", workspace.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_burst_before_25_11_6_leaves_instance_ids_to_slurmd_and_change_state() {
    let (_server, _fake, workspace) = setup(100).await;
    slurm_version(&workspace, "24.11.5");
    let output = workspace.run_async("resume", &["aws-od-[0-29]"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let records = workspace
        .scontrol_updates()
        .into_iter()
        .filter(|c| c.iter().any(|a| a.starts_with("instanceid=")))
        .count();
    assert_eq!(records, 0);
    assert!(
        workspace
            .log()
            .contains("InstanceId of 30 node(s) left to slurmd's registration"),
        "{}",
        workspace.log()
    );
}
