//! resume against a faked EC2: the requests on the wire, and the decisions
//! under partial capacity, throttling, lag and failures.

use std::collections::BTreeSet;

use wiremock::matchers::method;
use wiremock::{Mock, MockServer};

use crate::support::fake_ec2::{Params, filters, list};
use crate::support::{FakeEc2, Workspace, our_tags, test_config, test_partitions};

pub async fn fake_ec2() -> (MockServer, FakeEc2) {
    let server = MockServer::start().await;
    let fake = FakeEc2::default();
    Mock::given(method("POST"))
        .respond_with(fake.clone())
        .mount(&server)
        .await;
    (server, fake)
}

pub async fn setup(max_nodes: u32) -> (MockServer, FakeEc2, Workspace) {
    let (server, fake) = fake_ec2().await;
    let workspace = Workspace::new(&test_config(&server.uri()), &test_partitions(max_nodes));
    (server, fake, workspace)
}

fn get<'a>(params: &'a Params, key: &str) -> &'a str {
    params
        .get(key)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no {key} in {params:#?}"))
}

fn launch_tags(params: &Params) -> Vec<(String, String)> {
    (1..)
        .map_while(|i| {
            let key = params.get(&format!("TagSpecification.1.Tag.{i}.Key"))?;
            Some((
                key.clone(),
                params[&format!("TagSpecification.1.Tag.{i}.Value")].clone(),
            ))
        })
        .collect()
}

fn down_updates(workspace: &Workspace) -> Vec<Vec<String>> {
    workspace
        .scontrol_updates()
        .into_iter()
        .filter(|c| c.iter().any(|a| a == "state=DOWN"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn launches_tags_at_launch_and_per_instance_then_updates_slurm_once() {
    let (_server, fake, workspace) = setup(10).await;
    let output = workspace.run_async("resume", &["aws-od-[0-1]"]).await;
    assert!(output.status.success(), "{output:?}\n{}", workspace.log());

    let fleets = fake.calls("CreateFleet");
    assert_eq!(fleets.len(), 1);
    let fleet = &fleets[0];
    assert_eq!(get(fleet, "Type"), "instant");
    assert_eq!(
        get(fleet, "TargetCapacitySpecification.TotalTargetCapacity"),
        "2"
    );
    assert_eq!(
        get(
            fleet,
            "TargetCapacitySpecification.DefaultTargetCapacityType"
        ),
        "on-demand"
    );
    assert_eq!(
        get(
            fleet,
            "LaunchTemplateConfigs.1.LaunchTemplateSpecification.LaunchTemplateName"
        ),
        "compute"
    );
    assert_eq!(
        get(
            fleet,
            "LaunchTemplateConfigs.1.LaunchTemplateSpecification.Version"
        ),
        "$Latest"
    );
    let overrides: Vec<(String, String, String)> = (1..=4)
        .map(|i| {
            let prefix = format!("LaunchTemplateConfigs.1.Overrides.{i}");
            assert_eq!(
                get(fleet, &format!("{prefix}.WeightedCapacity"))
                    .parse::<f64>()
                    .unwrap(),
                1.0
            );
            (
                i.to_string(),
                get(fleet, &format!("{prefix}.InstanceType")).to_string(),
                get(fleet, &format!("{prefix}.SubnetId")).to_string(),
            )
        })
        .collect();
    assert_eq!(overrides[0].1, "c5.xlarge");
    assert_eq!(overrides[0].2, "subnet-11111111");
    assert_eq!(overrides[1].2, "subnet-22222222");
    assert_eq!(overrides[3].1, "c4.xlarge");
    assert!(!fleet.contains_key("LaunchTemplateConfigs.1.Overrides.5.InstanceType"));
    assert_eq!(
        get(fleet, "OnDemandOptions.AllocationStrategy"),
        "lowest-price"
    );
    assert!(!fleet.keys().any(|k| k.starts_with("SpotOptions")));
    assert_eq!(get(fleet, "TagSpecification.1.ResourceType"), "instance");
    let tags = launch_tags(fleet);
    for expected in [
        ("slurm-ec2:cluster", "testcluster"),
        ("slurm-ec2:partition", "aws"),
        ("slurm-ec2:node-group", "od"),
        ("Team", "hpc"),
    ] {
        assert!(
            tags.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{tags:?}"
        );
    }
    assert!(
        !tags.iter().any(|(k, _)| k == "Address" || k == "Name"),
        "placeholders wait for the instance: {tags:?}"
    );

    // Per-instance tags, each with its own values.
    let live = fake.live();
    assert_eq!(live.len(), 2);
    let mut names = BTreeSet::new();
    for instance in &live {
        let name = instance.tag("Name").expect("named").to_string();
        let hostname = format!("ip-{}", instance.ip.replace('.', "-"));
        assert_eq!(
            instance.tag("Address"),
            Some(format!("{}/{hostname}/{name}", instance.ip).as_str())
        );
        assert_eq!(instance.tag("slurm-ec2:cluster"), Some("testcluster"));
        names.insert(name);
    }
    assert_eq!(
        names,
        BTreeSet::from(["aws-od-0".to_string(), "aws-od-1".to_string()])
    );
    // One CreateTags names the reservation's nodes in launch order; each
    // instance's Name matches its place there.
    for instance in &live {
        assert_eq!(instance.tag("slurm-ec2:nodes"), Some("aws-od-[0-1]"));
        let expected = format!("aws-od-{}", instance.launch_index);
        assert_eq!(instance.tag("Name"), Some(expected.as_str()));
    }
    let tag_calls = fake.calls("CreateTags");
    assert_eq!(tag_calls.len(), 3, "{tag_calls:#?}");
    assert_eq!(list(&tag_calls[0], "ResourceId").len(), 2);
    // Slurm gets the addresses after the reservation's tag, before any Name.
    let log = workspace.log();
    let at = |text: &str| {
        log.find(text)
            .unwrap_or_else(|| panic!("{text:?} in {log}"))
    };
    assert!(at("named aws-od-[0-1] in one CreateTags") < at("Launched node aws-od-0"));
    assert!(at("Launched node aws-od-1") < at("Name tags written on 2 instance(s)"));

    let updates = workspace.scontrol_updates();
    assert_eq!(updates.len(), 1, "{updates:?}");
    let by_name = |n: &str| {
        live.iter()
            .find(|i| i.tag("Name") == Some(n))
            .unwrap()
            .ip
            .clone()
    };
    assert_eq!(updates[0][1], "nodename=aws-od-0,aws-od-1");
    assert_eq!(
        updates[0][2],
        format!("nodeaddr={},{}", by_name("aws-od-0"), by_name("aws-od-1"))
    );
    assert!(
        updates[0][3].starts_with("nodehostname=ip-10-0-"),
        "{:?}",
        updates[0]
    );
    assert!(
        workspace
            .log()
            .contains("Resume summary: asked 2, launched 2, reused 0, failed 0"),
        "{}",
        workspace.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn spot_groups_ask_for_spot_that_terminates_on_interruption() {
    let (_server, fake, workspace) = setup(10).await;
    let output = workspace
        .run_async("resume", &["aws-sp-3", "feature-string-ignored"])
        .await;
    assert!(output.status.success(), "{output:?}\n{}", workspace.log());
    let fleet = &fake.calls("CreateFleet")[0];
    assert_eq!(
        get(
            fleet,
            "TargetCapacitySpecification.DefaultTargetCapacityType"
        ),
        "spot"
    );
    assert_eq!(
        get(fleet, "SpotOptions.InstanceInterruptionBehavior"),
        "terminate"
    );
    assert_eq!(get(fleet, "SpotOptions.AllocationStrategy"), "lowest-price");
    assert!(!fleet.keys().any(|k| k.starts_with("OnDemandOptions")));
    assert_eq!(fake.live()[0].tag("Name"), Some("aws-sp-3"));
    // Its one-node list from launch too, for a node that reads only the list.
    assert_eq!(fake.live()[0].tag("slurm-ec2:nodes"), Some("aws-sp-3"));
}

/// Resumes `count` nodes of a 1000-node group with the CreateTags bucket
/// raised (`Ec2RateLimits`), so that every Name is written within the budget.
async fn resume_many(count: u32) -> (FakeEc2, Workspace) {
    let (server, fake, workspace) = setup(1000).await;
    let mut config = test_config(&server.uri());
    config["Ec2RateLimits"] = serde_json::json!({"CreateTags": {"Burst": 5000, "PerSecond": 5000}});
    workspace.write_config(&config, &test_partitions(1000));
    let expression = format!("aws-od-[0-{}]", count - 1);
    let output = workspace.run_async("resume", &[&expression]).await;
    assert!(output.status.success(), "{output:?}\n{}", workspace.log());
    (fake, workspace)
}

fn fleet_sizes(fake: &FakeEc2) -> Vec<String> {
    fake.calls("CreateFleet")
        .iter()
        .map(|p| p["TargetCapacitySpecification.TotalTargetCapacity"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_of_at_most_500_and_100() {
    let (fake, workspace) = resume_many(501).await;
    assert_eq!(fleet_sizes(&fake), vec!["500", "1"]);
    // One for the 500-node reservation, 500 Names, and the placeholder tag
    // of the 1-node fleet's instance, which carried its Name from launch.
    assert_eq!(fake.calls("CreateTags").len(), 502);
    let updates = workspace.scontrol_updates();
    assert_eq!(updates.len(), 6);
    assert!(updates.iter().all(|u| u[1].split(',').count() <= 100));
    assert_eq!(fake.live().len(), 501);

    let (fake, workspace) = resume_many(1000).await;
    assert_eq!(fleet_sizes(&fake), vec!["500", "500"]);
    assert_eq!(workspace.scontrol_updates().len(), 10);
    let describes = fake.calls("DescribeInstances");
    assert!(
        describes.iter().all(|p| !p.contains_key("InstanceId.1")),
        "never by bare InstanceIds (EC2's smaller bucket)"
    );
    // The look-up of existing instances, then the 1000 new ones by the
    // group's tags in one paginated call, not five of 200 ids.
    assert_eq!(describes.len(), 2, "{describes:#?}");
    let names: BTreeSet<String> = fake
        .live()
        .iter()
        .filter_map(|i| i.tag("Name").map(str::to_string))
        .collect();
    assert_eq!(names.len(), 1000);
    assert_eq!(
        fake.calls("CreateTags").len(),
        1002,
        "2 reservations, 1000 Names"
    );

    let (fake, _workspace) = resume_many(1).await;
    assert_eq!(fleet_sizes(&fake), vec!["1"]);
}

/// With EC2's own CreateTags bucket (100, then 10 a second) 1000 Names
/// cannot be written within a 20 s budget: no node fails for it. Slurm has
/// every address after two node-list tags, and the Names not written are
/// left to change-state.
#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_nodes_are_served_whatever_the_pace_of_their_names() {
    let (_server, fake, workspace) = setup(1000).await;
    let output = workspace.run_async("resume", &["aws-od-[0-999]"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    assert_eq!(workspace.scontrol_updates().len(), 10);
    let live = fake.live();
    assert_eq!(live.len(), 1000);
    assert!(live.iter().all(|i| i.tag("slurm-ec2:nodes").is_some()));
    let named = live.iter().filter(|i| i.tag("Name").is_some()).count();
    let calls = fake.calls("CreateTags").len();
    // The bucket: 100 at once, then 10 a second, for the 20 s budget (and
    // the calls already waiting for a token when it ends).
    assert!(
        (100..1000).contains(&named) && calls <= 2 + 100 + 10 * 23,
        "{named} named in {calls} calls"
    );
    let log = workspace.log();
    assert!(
        log.contains("Resume summary: asked 1000, launched 1000, reused 0, failed 0"),
        "{log}"
    );
    assert!(log.contains("change-state writes them"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_resume_launches_nothing_and_duplicates_are_terminated() {
    let (_server, fake, workspace) = setup(10).await;
    assert!(
        workspace
            .run_async("resume", &["aws-od-[0-1]"])
            .await
            .status
            .success()
    );
    let output = workspace.run_async("resume", &["aws-od-[0-1]"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    assert_eq!(fake.calls("CreateFleet").len(), 1, "no second CreateFleet");
    assert_eq!(
        fake.calls("CreateTags").len(),
        3,
        "one node list and two Names; then the instances carry their tags"
    );
    assert_eq!(fake.live().len(), 2);
    assert_eq!(
        workspace.scontrol_updates().len(),
        2,
        "Slurm gets the addresses again"
    );
    // The look-up is by cluster and group tags, not by 200 names at a time.
    let lookup = &fake.calls("DescribeInstances")[0];
    let lookup_filters = filters(lookup);
    assert!(lookup_filters.contains(&(
        "tag:slurm-ec2:cluster".to_string(),
        vec!["testcluster".to_string()]
    )));
    assert!(lookup_filters.contains(&(
        "tag:slurm-ec2:node-group".to_string(),
        vec!["od".to_string()]
    )));

    let tags = our_tags("aws-od-5");
    let first = fake.add_instance(&tags);
    let second = fake.add_instance(&tags);
    let output = workspace.run_async("resume", &["aws-od-5"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    assert_eq!(fake.calls("CreateFleet").len(), 1);
    let terminated = fake.calls("TerminateInstances");
    assert_eq!(terminated.len(), 1);
    assert_eq!(list(&terminated[0], "InstanceId").len(), 1);
    assert!([first, second].contains(&list(&terminated[0], "InstanceId")[0]));
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_capacity_fails_the_rest_at_once_with_the_code() {
    let (_server, fake, workspace) = setup(10).await;
    fake.state().faults.capacity_left = Some(1);
    let output = workspace.run_async("resume", &["aws-od-[0-2]"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", workspace.log());
    assert_eq!(fake.live().len(), 1);
    assert_eq!(fake.live()[0].tag("Name"), Some("aws-od-0"));
    let downs = down_updates(&workspace);
    assert_eq!(downs.len(), 1, "{downs:?}");
    assert_eq!(downs[0][1], "nodename=aws-od-[1-2]");
    assert_eq!(
        downs[0][3],
        "reason=(Code:InsufficientInstanceCapacity)Failure when resuming nodes"
    );
    assert_eq!(
        fake.calls("CreateFleet").len(),
        1,
        "capacity errors are not retried"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_in_errors_and_as_http_503_is_retried() {
    let (_server, fake, workspace) = setup(10).await;
    fake.state().faults.fleet_error_throttles = 1;
    fake.state().faults.fleet_http_throttles = 2;
    let output = workspace.run_async("resume", &["aws-od-[0-1]"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    assert_eq!(fake.calls("CreateFleet").len(), 4);
    assert_eq!(fake.live().len(), 2);
    assert!(down_updates(&workspace).is_empty());
}

/// The retry of a failed call is ours alone (the SDK's is off), so every HTTP
/// attempt waits for a token of its bucket and is counted: the run's count of
/// each action, drawn token by token, equals what EC2 received.
#[tokio::test(flavor = "multi_thread")]
async fn every_http_attempt_draws_a_token() {
    let (_server, fake, workspace) = setup(10).await;
    fake.state().faults.fleet_http_throttles = 2;
    let output = workspace.run_async("resume", &["aws-od-[0-1]"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let log = workspace.log();
    let summary = log
        .lines()
        .find(|l| l.contains("Resume summary"))
        .expect("a summary line");
    for action in ["CreateFleet", "DescribeInstances", "CreateTags"] {
        let received = fake.calls(action).len();
        assert!(received > 0, "{action} was called");
        assert!(
            summary.contains(&format!(" {action}={received}")),
            "{action}: EC2 received {received}; {summary}"
        );
    }
    assert_eq!(
        fake.calls("CreateFleet").len(),
        3,
        "two throttled, one answered"
    );
}

/// EC2 launched, but the answers of the first attempts were lost: every
/// retry carries the same ClientToken, so EC2 answers with the first
/// launch instead of launching again.
#[tokio::test(flavor = "multi_thread")]
async fn a_launch_whose_answers_were_lost_is_retried_without_launching_twice() {
    let (_server, fake, workspace) = setup(10).await;
    let attempts = 3; // fewer than the test configuration's Ec2MaxAttempts
    fake.state().faults.fleet_answers_lost = attempts;
    let output = workspace.run_async("resume", &["aws-od-[0-1]"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let fleets = fake.calls("CreateFleet");
    assert_eq!(fleets.len(), attempts + 1, "{}", workspace.log());
    let tokens: BTreeSet<&str> = fleets
        .iter()
        .filter_map(|p| p.get("ClientToken").map(String::as_str))
        .collect();
    assert_eq!(tokens.len(), 1, "one token for every attempt: {tokens:?}");
    assert_eq!(fake.live().len(), 2, "launched once");
    assert!(fake.calls("TerminateInstances").is_empty());
    assert!(down_updates(&workspace).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_fleet_fails_the_nodes_at_once() {
    let (_server, fake, workspace) = setup(10).await;
    fake.state().faults.fleet_failure = Some("InvalidLaunchTemplateName.NotFoundException".into());
    let output = workspace
        .run_async("resume", &["aws-od-[0-1],aws-sp-0"])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(fake.live().is_empty());
    let downs = down_updates(&workspace);
    assert_eq!(downs.len(), 1);
    assert_eq!(downs[0][1], "nodename=aws-od-[0-1],aws-sp-0");
    assert_eq!(
        downs[0][3],
        "reason=(Code:InvalidLaunchTemplateName.NotFoundException)Failure when resuming nodes"
    );
    assert_eq!(
        fake.calls("CreateFleet").len(),
        2,
        "one per node group, not retried"
    );
    // One readable line per failure: action, code, message and request id.
    let log = workspace.log();
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Failed to launch nodes"))
        .collect();
    assert_eq!(failures.len(), 2, "{log}");
    for line in failures {
        assert!(line.contains("CreateFleet"), "{line}");
        assert!(
            line.contains(": InvalidLaunchTemplateName.NotFoundException: "),
            "{line}"
        );
        assert!(line.contains("(request id req-1)"), "{line}");
        assert!(line.len() < 400, "{} characters: {line}", line.len());
        assert!(!line.contains("headers") && !line.contains("{"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_lag_is_waited_out() {
    let (_server, fake, workspace) = setup(10).await;
    fake.state().faults.describe_lag = 2;
    let output = workspace.run_async("resume", &["aws-od-[0-1]"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let by_id = fake
        .calls("DescribeInstances")
        .iter()
        .filter(|p| filters(p).iter().any(|(name, _)| name == "instance-id"))
        .count();
    assert_eq!(by_id, 3);
    assert_eq!(workspace.scontrol_updates().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_cannot_be_tagged_is_terminated_and_its_node_failed() {
    let (_server, fake, workspace) = setup(10).await;
    fake.state()
        .faults
        .untaggable_nodes
        .insert("aws-od-1".into());
    let output = workspace.run_async("resume", &["aws-od-[0-1]"]).await;
    assert_eq!(output.status.code(), Some(1));
    let live = fake.live();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].tag("Name"), Some("aws-od-0"));
    assert_eq!(fake.calls("TerminateInstances").len(), 1);
    let updates = workspace.scontrol_updates();
    assert_eq!(updates[0][1], "nodename=aws-od-0");
    let downs = down_updates(&workspace);
    assert_eq!(downs[0][1], "nodename=aws-od-1");
    assert_eq!(
        downs[0][3],
        "reason=(Code:UnauthorizedOperation)Failure when resuming nodes"
    );
}

/// Once the reservation's node list is written, a node is served: a Name
/// that cannot be written after Slurm has the address fails nothing, and
/// the node's instance is found by the list.
#[tokio::test(flavor = "multi_thread")]
async fn a_name_that_cannot_be_written_after_slurm_fails_no_node() {
    let (_server, fake, workspace) = setup(10).await;
    fake.state()
        .faults
        .unnameable_nodes
        .insert("aws-od-1".into());
    let output = workspace.run_async("resume", &["aws-od-[0-1]"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    assert_eq!(fake.live().len(), 2);
    assert!(fake.calls("TerminateInstances").is_empty());
    assert!(down_updates(&workspace).is_empty());
    assert!(workspace.log().contains("change-state writes them"));
    // A second resume finds both by the node list: nothing launched.
    let again = workspace.run_async("resume", &["aws-od-[0-1]"]).await;
    assert!(again.status.success(), "{}", workspace.log());
    assert_eq!(fake.calls("CreateFleet").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn when_slurm_refuses_the_addresses_the_instances_are_terminated() {
    let (_server, fake, workspace) = setup(10).await;
    workspace.fail_scontrol_updates();
    let output = workspace.run_async("resume", &["aws-od-[0-1]"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(fake.live().is_empty(), "nothing left running");
    assert_eq!(
        fake.calls("TerminateInstances").len(),
        1,
        "one call for both"
    );
    assert!(
        workspace
            .log()
            .contains("Failed to update node information in Slurm"),
        "{}",
        workspace.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_address_never_ends_an_instance_of_an_earlier_run() {
    let (_server, fake, workspace) = setup(10).await;
    let first = workspace.run_async("resume", &["aws-od-[0-1]"]).await;
    assert!(first.status.success(), "{}", workspace.log());
    let before: Vec<String> = fake.live().into_iter().map(|i| i.id).collect();
    assert_eq!(before.len(), 2);
    workspace.fail_scontrol_updates();
    let again = workspace.run_async("resume", &["aws-od-[0-2]"]).await;
    assert_eq!(again.status.code(), Some(1), "{}", workspace.log());
    let live: Vec<String> = fake.live().into_iter().map(|i| i.id).collect();
    for id in &before {
        assert!(live.contains(id), "{id} of the earlier run still runs");
    }
    assert_eq!(
        live.len(),
        2,
        "the instance launched for aws-od-2 is terminated"
    );
    let log = workspace.log();
    assert!(
        log.contains("keeps its instance") && log.contains("Slurm refused its address"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_resumes_of_the_same_nodes_at_once_launch_once() {
    let (_server, fake, workspace) = setup(10).await;
    // The first launch is slow, so the second resume looks while it is under way.
    fake.state().faults.fleet_delay = Some(std::time::Duration::from_millis(1500));
    let (first, second) = tokio::join!(
        workspace.run_async("resume", &["aws-od-[0-2]"]),
        workspace.run_async("resume", &["aws-od-[0-2]"])
    );
    assert!(first.status.success(), "{}", workspace.log());
    assert!(second.status.success(), "{}", workspace.log());
    assert_eq!(fake.calls("CreateFleet").len(), 1, "{}", workspace.log());
    let live = fake.live();
    assert_eq!(live.len(), 3, "one instance per node");
    let names: BTreeSet<&str> = live.iter().filter_map(|i| i.tag("Name")).collect();
    assert_eq!(names.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn names_that_are_not_ours_make_no_ec2_call() {
    let (_server, fake, workspace) = setup(10).await;
    let output = workspace
        .run_async("resume", &["linux-[1-2],aws-od-10,aws-zz-1"])
        .await;
    assert!(output.status.success(), "{}", workspace.log());
    assert!(fake.state().requests.is_empty());
    let log = workspace.log();
    assert!(log.contains("id 10 is outside 0..10"), "{log}");
    assert!(log.contains("has no node group \"zz\""), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_node_carries_its_name_from_launch() {
    let (server, fake) = fake_ec2().await;
    let mut partitions = test_partitions(10);
    partitions["Partitions"][0]["NodeGroups"][0]["Tags"] =
        serde_json::json!([{"Key": "Team", "Value": "hpc"}]);
    let workspace = Workspace::new(&test_config(&server.uri()), &partitions);
    let output = workspace.run_async("resume", &["aws-od-4"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let tags = launch_tags(&fake.calls("CreateFleet")[0]);
    assert!(
        tags.contains(&("Name".to_string(), "aws-od-4".to_string())),
        "{tags:?}"
    );
    assert!(fake.calls("CreateTags").is_empty(), "nothing left to tag");
    assert_eq!(workspace.scontrol_updates()[0][1], "nodename=aws-od-4");
}

/// Slurm 26.05's resume file gives each job its priority: when capacity runs
/// short, the nodes of the job Slurm ranks highest are the ones launched.
#[tokio::test(flavor = "multi_thread")]
async fn short_capacity_goes_to_the_highest_priority_job() {
    let (_server, fake, workspace) = setup(10).await;
    fake.state().faults.capacity_left = Some(1);
    let file = workspace.path().join("resume.json");
    std::fs::write(
        &file,
        r#"{"jobs":[{"exclusive":"NO","job_id":7,"priority":10,"nodes_alloc":"aws-od-[0-1]","nodes_resume":"aws-od-[0-1]","partition":"aws"},
                    {"exclusive":"NO","job_id":8,"priority":500,"nodes_alloc":"aws-od-2","nodes_resume":"aws-od-2","partition":"aws"}],
            "all_nodes_resume":"aws-od-[0-2]"}"#,
    )
    .unwrap();
    let output = workspace
        .run_with_resume_file("resume", &["aws-od-[0-2]"], &file)
        .await;
    assert_eq!(output.status.code(), Some(1), "{}", workspace.log());
    let live = fake.live();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].tag("Name"), Some("aws-od-2"), "{}", workspace.log());
    let downs = down_updates(&workspace);
    assert_eq!(downs[0][1], "nodename=aws-od-[0-1]", "{downs:?}");
}
