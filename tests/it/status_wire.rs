//! `slurm-ec2 status` and the event log against a recording scontrol and a
//! faked EC2.

use serde_json::Value;

use crate::resume_wire::setup;
use crate::support::{Workspace, our_tags, test_config, test_partitions};

/// Slurm's nodes: one in service, one powered down, one failed a minute ago
/// for capacity (its group is held), one of the spot group.
fn nodes() -> String {
    let a_minute_ago =
        (chrono::Local::now() - chrono::Duration::seconds(60)).format("%Y-%m-%dT%H:%M:%S");
    format!(
        "NodeName=aws-od-0 NodeAddr=10.0.0.1 State=ALLOCATED+CLOUD Partitions=aws\n\
         NodeName=aws-od-1 NodeAddr=aws-od-1 State=IDLE+CLOUD+POWERED_DOWN Partitions=aws\n\
         NodeName=aws-od-2 NodeAddr=aws-od-2 State=DOWN+CLOUD+POWERED_DOWN Partitions=aws Reason=(Code:InsufficientInstanceCapacity)Failure when resuming nodes [root@{a_minute_ago}]\n\
         NodeName=aws-sp-0 NodeAddr=aws-sp-0 State=IDLE+CLOUD+POWERED_DOWN Partitions=aws\n"
    )
}

fn with_events(endpoint: &str) -> (Workspace, std::path::PathBuf) {
    let mut config = test_config(endpoint);
    config["OnDemandHourlyPrices"] = serde_json::json!({"c5.xlarge": 0.17});
    let workspace = Workspace::new(&config, &test_partitions(10));
    let events = workspace.path().join("events.jsonl");
    config["EventLogFile"] = Value::String(events.display().to_string());
    workspace.write_config(&config, &test_partitions(10));
    (workspace, events)
}

fn events(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_each_node_beside_its_instance_and_what_change_state_would_do() {
    let (server, fake, _) = setup(10).await;
    let (workspace, _) = with_events(&server.uri());
    std::fs::write(workspace.path().join("bin/nodes.txt"), nodes()).unwrap();
    std::fs::write(workspace.path().join("bin/squeue.txt"), "17|aws-od-0\n").unwrap();
    let serving = fake.add_instance(&our_tags("aws-od-0"));
    let leak = fake.add_instance(&our_tags("aws-od-1"));
    let orphan = fake.add_instance(&our_tags("aws-od-77"));

    let output = workspace
        .run_async("slurm-ec2", &["status", "--json"])
        .await;
    assert!(output.status.success(), "{output:?}\n{}", workspace.log());
    let status: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let rows = status["rows"].as_array().unwrap();
    let row = |key: &str, value: &str| {
        rows.iter()
            .find(|r| r[key] == value)
            .unwrap_or_else(|| panic!("no row with {key}={value}: {status:#}"))
    };
    let served = row("instance", &serving);
    assert_eq!(served["node"], "aws-od-0");
    assert_eq!(served["slurm_symbol"], "alloc");
    assert_eq!(served["jobs"], serde_json::json!([17]));
    assert_eq!(served["instance_type"], "c5.xlarge");
    assert_eq!(served["action"], "none");
    assert_eq!(served["problem"], false);
    let leaked = row("instance", &leak);
    assert_eq!(leaked["node"], "aws-od-1");
    assert_eq!(leaked["slurm_symbol"], "idle~");
    // Terminated, and held with the rest of its group.
    assert!(
        leaked["action"]
            .as_str()
            .unwrap()
            .starts_with("terminate instance; state=DOWN"),
        "{leaked}"
    );
    assert!(leaked["why"].as_str().unwrap().contains("leak"), "{leaked}");
    let orphaned = row("instance", &orphan);
    assert_eq!(orphaned["node"], Value::Null);
    assert!(
        orphaned["why"].as_str().unwrap().contains("orphan"),
        "{orphaned}"
    );
    let held = row("node", "aws-od-2");
    assert_eq!(held["slurm_symbol"], "down~");
    assert!(
        held["action"].as_str().unwrap().contains("state=DOWN"),
        "{held}"
    );
    assert!(
        held["reason"]
            .as_str()
            .unwrap()
            .starts_with("(Code:InsufficientInstanceCapacity)")
    );
    let summary = &status["summary"];
    assert_eq!(summary["orphans"], 1);
    assert_eq!(summary["leaks"], 1);
    assert_eq!(summary["live_instances_by_type"]["c5.xlarge"], 3);
    assert!((summary["estimated_hourly_cost"].as_f64().unwrap() - 0.51).abs() < 1e-9);
    assert!(
        fake.calls("TerminateInstances").is_empty(),
        "status changes nothing"
    );
    let updates = workspace.scontrol_updates();
    assert!(updates.is_empty(), "status changes nothing: {updates:?}");

    // --problems drops the healthy rows; --partition and --state filter.
    let output = workspace
        .run_async("slurm-ec2", &["status", "--json", "--problems"])
        .await;
    let problems: Value = serde_json::from_slice(&output.stdout).unwrap();
    let problems = problems["rows"].as_array().unwrap();
    assert!(
        problems.iter().all(|r| r["problem"] == true),
        "{problems:?}"
    );
    assert!(!problems.iter().any(|r| r["instance"] == serving.as_str()));
    assert!(problems.iter().any(|r| r["instance"] == orphan.as_str()));
    let output = workspace
        .run_async("slurm-ec2", &["status", "--state", "down"])
        .await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("aws-od-2") && !text.contains("aws-od-0"),
        "{text}"
    );
    assert!(text.lines().next().unwrap().starts_with("NODE"), "{text}");
    assert!(text.contains("orphans 1, leaks 1"), "{text}");
    assert!(text.contains("about $0.51 an hour"), "{text}");
}

/// An InstanceId that Slurm records for a node counts only where the
/// instance's own tags agree, as in change-state: here they name another node.
#[tokio::test(flavor = "multi_thread")]
async fn status_trusts_a_recorded_instance_id_only_where_the_tags_agree() {
    let (server, fake, _) = setup(10).await;
    let (workspace, _) = with_events(&server.uri());
    std::fs::write(workspace.path().join("bin/version"), "24.11.5").unwrap();
    let spot = fake.add_instance(&[
        ("Name", "aws-sp-0"),
        ("slurm-ec2:cluster", "testcluster"),
        ("slurm-ec2:partition", "aws"),
        ("slurm-ec2:node-group", "sp"),
    ]);
    std::fs::write(
        workspace.path().join("bin/nodes.txt"),
        format!(
            "NodeName=aws-od-0 NodeAddr=10.0.0.9 State=ALLOCATED+CLOUD Partitions=aws InstanceId={spot}\n\
             NodeName=aws-sp-0 NodeAddr=10.0.0.1 State=ALLOCATED+CLOUD Partitions=aws\n"
        ),
    )
    .unwrap();
    let output = workspace
        .run_async("slurm-ec2", &["status", "--json"])
        .await;
    assert!(output.status.success(), "{output:?}");
    let status: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let rows = status["rows"].as_array().unwrap();
    let row = rows
        .iter()
        .find(|r| r["instance"] == spot.as_str())
        .expect("the instance's row");
    assert_eq!(row["node"], "aws-sp-0", "{status:#}");
    let od = rows
        .iter()
        .find(|r| r["node"] == "aws-od-0")
        .expect("aws-od-0's row");
    assert_eq!(od["instance"], Value::Null, "{status:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_launch_failure_and_termination_is_an_event() {
    let (server, fake, _) = setup(10).await;
    let (workspace, path) = with_events(&server.uri());
    fake.state().faults.capacity_left = Some(1);
    let output = workspace.run_async("resume", &["aws-od-[0-1]"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", workspace.log());
    let output = workspace.run_async("suspend", &["aws-od-[0-1]"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let orphan = fake.add_instance(&our_tags("aws-od-77"));
    std::fs::write(workspace.path().join("bin/nodes.txt"), nodes()).unwrap();
    let output = workspace.run_async("change-state", &[]).await;
    assert!(output.status.success(), "{}", workspace.log());

    let all = events(&path);
    let kinds: Vec<(&str, &str)> = all
        .iter()
        .map(|e| (e["program"].as_str().unwrap(), e["event"].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&("resume", "launch")), "{all:#?}");
    let failure = all
        .iter()
        .find(|e| e["event"] == "failure")
        .expect("a failure event");
    assert_eq!(failure["code"], "InsufficientInstanceCapacity");
    let launched = all.iter().find(|e| e["event"] == "launch").unwrap();
    assert_ne!(launched["node"], failure["node"]);
    let suspended = all
        .iter()
        .find(|e| e["program"] == "suspend")
        .expect("suspend's termination");
    assert_eq!(suspended["event"], "termination");
    assert_eq!(suspended["why"], "suspend");
    assert_eq!(suspended["instance"], launched["instance"]);
    let reaped = all
        .iter()
        .find(|e| e["instance"] == orphan.as_str())
        .expect("the orphan's termination");
    assert_eq!(reaped["program"], "change_state");
    assert_eq!(reaped["why"], "orphan");
    assert!(
        all.iter()
            .any(|e| e["event"] == "capacity_hold" && e["node"] == "aws-od-2"),
        "{all:#?}"
    );
    for event in &all {
        for field in [
            "time", "program", "pid", "event", "node", "instance", "job_ids", "code", "why",
            "detail",
        ] {
            assert!(event.get(field).is_some(), "{field} in {event}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_that_can_match_nothing_are_refused_and_no_match_is_said() {
    let (_server, fake, workspace) = setup(10).await;
    std::fs::write(workspace.path().join("bin/nodes.txt"), nodes()).unwrap();
    for (args, message) in [
        (
            &["status", "--partition", "nosuch"][..],
            "no partition \"nosuch\"",
        ),
        (
            &["status", "--node-group", "gpu"][..],
            "no node group \"gpu\"",
        ),
        (
            &["status", "--state", "idel"][..],
            "\"idel\" is no Slurm node state",
        ),
    ] {
        let output = workspace.run_async("slurm-ec2", args).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }
    assert!(
        fake.calls("DescribeInstances").is_empty(),
        "refused before any look-up"
    );
    let output = workspace
        .run_async("slurm-ec2", &["status", "--state", "maint"])
        .await;
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no node or instance matches the filters"),
        "{stderr}"
    );
}
