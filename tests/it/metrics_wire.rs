//! The metrics and the cost against a recording scontrol and a faked EC2:
//! what a resume leaves behind (its launches, its throttled calls, its last
//! run) is counted, and the cost command refuses what it cannot read.

use serde_json::{Value, json};

use crate::resume_wire::setup;
use crate::support::{Workspace, test_config, test_partitions};

/// The workspace's configuration with an event log, a metrics file and prices.
fn watched(endpoint: &str) -> Workspace {
    let workspace = Workspace::new(&test_config(endpoint), &test_partitions(10));
    let mut config = test_config(endpoint);
    let dir = workspace.path();
    config["EventLogFile"] = json!(dir.join("events.jsonl"));
    config["MetricsFile"] = json!(dir.join("metrics/slurm-ec2.prom"));
    config["Prices"] = json!({"c5.xlarge": {"OnDemand": 0.17, "Spot": 0.07}});
    workspace.write_config(&config, &test_partitions(10));
    workspace
}

/// The value of the sample `series` (name and labels, as printed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_with_throttled_calls_shows_in_the_metrics_and_the_cost() {
    let (server, fake, _) = setup(10).await;
    let workspace = watched(&server.uri());
    fake.state().faults.fleet_http_throttles = 2;
    let output = workspace.run_async("resume", &["aws-od-[0-1]"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let events = std::fs::read_to_string(workspace.path().join("events.jsonl")).unwrap();
    let retries: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "retries")
        .collect();
    assert_eq!(retries.len(), 1, "{events}");
    assert_eq!(retries[0]["code"], "CreateFleet");
    assert_eq!(
        (
            retries[0]["throttled"].as_u64(),
            retries[0]["retried"].as_u64()
        ),
        (Some(2), Some(2))
    );
    let launch: Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
    assert_eq!(launch["instance_type"], "c5.xlarge", "{launch}");
    assert_eq!(launch["purchasing_option"], "on_demand", "{launch}");

    std::fs::write(
        workspace.path().join("bin/nodes.txt"),
        "NodeName=aws-od-0 NodeAddr=10.0.0.1 State=ALLOCATED+CLOUD Partitions=aws\n\
         NodeName=aws-od-1 NodeAddr=10.0.0.2 State=IDLE+CLOUD Partitions=aws\n\
         NodeName=aws-od-2 NodeAddr=aws-od-2 State=IDLE+CLOUD+POWERED_DOWN Partitions=aws\n",
    )
    .unwrap();
    let output = workspace.run_async("slurm-ec2", &["metrics"]).await;
    assert!(output.status.success(), "{output:?}\n{}", workspace.log());
    let text = String::from_utf8(output.stdout).unwrap();
    let od = r#"partition="aws",node_group="od""#;
    for (series, value) in [
        ("slurm_ec2_observed".to_string(), 1.0),
        (format!("slurm_ec2_nodes{{{od},state=\"allocated\"}}"), 1.0),
        (format!("slurm_ec2_nodes{{{od},state=\"idle\"}}"), 1.0),
        (
            format!("slurm_ec2_nodes{{{od},state=\"powered_down\"}}"),
            1.0,
        ),
        (
            format!(
                "slurm_ec2_instances{{{od},state=\"running\",purchasing_option=\"on_demand\"}}"
            ),
            2.0,
        ),
        (format!("slurm_ec2_launches_total{{{od}}}"), 2.0),
        (
            r#"slurm_ec2_api_throttled_total{api="CreateFleet"}"#.to_string(),
            2.0,
        ),
        (
            r#"slurm_ec2_api_retries_total{api="CreateFleet"}"#.to_string(),
            2.0,
        ),
        (
            r#"slurm_ec2_last_run_success{program="resume"}"#.to_string(),
            1.0,
        ),
        ("slurm_ec2_orphan_instances".to_string(), 0.0),
    ] {
        assert_eq!(sample(&text, &series), Some(value), "{series} in:\n{text}");
    }
    assert_eq!(fake.calls("CreateFleet").len(), 3, "metrics launch nothing");

    let output = workspace
        .run_async("slurm-ec2", &["cost", "--by", "group", "--json"])
        .await;
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let row = &report["rows"][0];
    assert_eq!(row["key"], "aws/od", "{report:#}");
    assert_eq!(row["instances"], 2, "{report:#}");
    assert!(
        row["cost_usd"].as_f64().is_some(),
        "priced from Prices: {report:#}"
    );
    assert!(
        row["notes"][0].as_str().unwrap().contains("still running"),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn change_state_writes_the_metrics_file_and_a_failure_to_is_not_fatal() {
    let (server, _fake, _) = setup(10).await;
    let workspace = watched(&server.uri());
    let file = workspace.path().join("metrics/slurm-ec2.prom");
    let output = workspace.run_async("change-state", &[]).await;
    assert!(output.status.success(), "{}", workspace.log());
    assert!(
        workspace.log().contains("cannot write MetricsFile"),
        "{}",
        workspace.log()
    );
    std::fs::create_dir(workspace.path().join("metrics")).unwrap();
    let output = workspace.run_async("change-state", &[]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let text = std::fs::read_to_string(&file).expect("MetricsFile");
    assert_eq!(sample(&text, "slurm_ec2_observed"), Some(1.0), "{text}");
    let success = r#"slurm_ec2_last_run_success{program="change_state"}"#;
    assert_eq!(sample(&text, success), Some(1.0), "{text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
}

#[test]
fn cost_refuses_a_bad_window_and_a_configuration_without_an_event_log() {
    let workspace = Workspace::new(&test_config("http://127.0.0.1:9"), &test_partitions(10));
    let output = workspace.run("slurm-ec2", &["cost"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("EventLogFile"),
        "{output:?}"
    );
    let workspace = watched("http://127.0.0.1:9");
    for (args, said) in [
        (vec!["cost", "--since", "yesterday"], "is no date"),
        (
            vec!["cost", "--since", "2026-12-02", "--until", "2026-12-01"],
            "before --until",
        ),
        (vec!["cost", "--by", "planet"], "planet"),
    ] {
        let output = workspace.run("slurm-ec2", &args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(said),
            "{args:?}: {output:?}"
        );
    }
}

#[test]
fn a_change_state_that_cannot_read_ec2_says_so_in_the_metrics_file() {
    let workspace = watched("http://127.0.0.1:9");
    std::fs::create_dir(workspace.path().join("metrics")).unwrap();
    let output = workspace.run("change-state", &[]);
    assert_eq!(output.status.code(), Some(1), "{}", workspace.log());
    let text = std::fs::read_to_string(workspace.path().join("metrics/slurm-ec2.prom")).unwrap();
    assert_eq!(sample(&text, "slurm_ec2_observed"), Some(0.0), "{text}");
    assert!(!text.contains("slurm_ec2_nodes"), "{text}");
    let success = r#"slurm_ec2_last_run_success{program="change_state"}"#;
    assert_eq!(sample(&text, success), Some(0.0), "{text}");
}
