//! `slurm-ec2 validate` and `--check --aws` against a faked EC2: each thing
//! EC2 can refuse is reported with the JSON path of the setting behind it.

use std::process::Output;

use serde_json::Value;

use crate::resume_wire::setup;
use crate::support::{FakeEc2, Workspace, test_config, test_partitions};

const GROUP: &str = "Partitions[0].NodeGroups[0]";

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `slurm-ec2 validate` with the partitions edited by `edit`.
async fn validate_with(
    fake: &FakeEc2,
    endpoint: &str,
    workspace: &Workspace,
    edit: impl FnOnce(&mut Value),
    fault: impl FnOnce(&FakeEc2),
) -> Output {
    let mut partitions = test_partitions(4);
    edit(&mut partitions);
    workspace.write_config(&test_config(endpoint), &partitions);
    fault(fake);
    workspace.run_async("slurm-ec2", &["validate"]).await
}

/// Exit 2, and a line naming `path` that says `what`.
fn assert_refused(output: &Output, path: &str, what: &str) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(&format!("partitions.json: {path}: ")) && l.contains(what)),
        "no problem at {path} that says {what:?}:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configuration_ec2_accepts_passes_with_dry_runs_only() {
    let (server, fake, workspace) = setup(4).await;
    let output = workspace.run_async("slurm-ec2", &["validate"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout.contains("configuration in"), "{stdout}");
    assert!(stdout.contains("EC2 accepts the configuration"), "{stdout}");
    assert!(
        stdout.contains("2 node group(s) in 1 account(s)"),
        "{stdout}"
    );
    // Every call that could change something was a dry run.
    for action in ["CreateFleet", "TerminateInstances", "CreateTags"] {
        let calls = fake.calls(action);
        assert!(!calls.is_empty(), "no dry run of {action}");
        assert!(
            calls
                .iter()
                .all(|c| c.get("DryRun").map(String::as_str) == Some("true")),
            "{calls:?}"
        );
    }
    assert_eq!(
        fake.calls("CreateFleet").len(),
        2,
        "one dry-run launch per node group"
    );
    let fleet = &fake.calls("CreateFleet")[0];
    assert_eq!(fleet["TagSpecification.1.Tag.1.Value"], "testcluster");
    let offerings = &fake.calls("DescribeInstanceTypeOfferings")[0];
    assert_eq!(offerings["LocationType"], "availability-zone");
    assert!(fake.live().is_empty());
    // resume --check --aws is the same check.
    let resume = workspace.run_async("resume", &["--check", "--aws"]).await;
    assert!(resume.status.success(), "{}", stderr(&resume));
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_template_that_does_not_exist_names_its_setting() {
    let (server, fake, workspace) = setup(4).await;
    let output = validate_with(&fake, &server.uri(), &workspace, |p| {
        p["Partitions"][0]["NodeGroups"][0]["LaunchTemplateSpecification"]["LaunchTemplateName"] =
            "compute-x".into();
    }, |_| {})
    .await;
    assert_refused(
        &output,
        &format!("{GROUP}.LaunchTemplateSpecification.LaunchTemplateName"),
        "InvalidLaunchTemplateName.NotFoundException",
    );
    // The other group is fine, and its launch was still tried.
    assert!(
        !stderr(&output).contains("NodeGroups[1]"),
        "{}",
        stderr(&output)
    );
    assert_eq!(fake.calls("CreateFleet").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_template_version_that_does_not_exist_names_the_version() {
    let (server, fake, workspace) = setup(4).await;
    let output = validate_with(
        &fake,
        &server.uri(),
        &workspace,
        |p| {
            p["Partitions"][0]["NodeGroups"][1]["LaunchTemplateSpecification"]["Version"] =
                "7".into();
        },
        |_| {},
    )
    .await;
    assert_refused(
        &output,
        "Partitions[0].NodeGroups[1].LaunchTemplateSpecification.Version",
        "has no version 7",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subnet_that_does_not_exist_names_its_index() {
    let (server, fake, workspace) = setup(4).await;
    let output = validate_with(
        &fake,
        &server.uri(),
        &workspace,
        |p| {
            p["Partitions"][0]["NodeGroups"][0]["SubnetIds"][1] = "subnet-99999999".into();
        },
        |_| {},
    )
    .await;
    assert_refused(
        &output,
        &format!("{GROUP}.SubnetIds[1]"),
        "subnet-99999999 does not exist in us-east-1",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_subnets_in_one_zone_are_refused() {
    let (server, fake, workspace) = setup(4).await;
    let output = validate_with(
        &fake,
        &server.uri(),
        &workspace,
        |_| {},
        |fake| {
            fake.state().catalog.subnets[1].1 = "us-east-1a".into();
        },
    )
    .await;
    assert_refused(
        &output,
        &format!("{GROUP}.SubnetIds[1]"),
        "is in us-east-1a, as SubnetIds[0] (subnet-11111111) is",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_type_missing_from_a_zone_or_from_all_is_refused() {
    let (server, fake, workspace) = setup(4).await;
    let output = validate_with(
        &fake,
        &server.uri(),
        &workspace,
        |p| {
            p["Partitions"][0]["NodeGroups"][1]["LaunchTemplateOverrides"][0]["InstanceType"] =
                "c5.nosuch".into();
        },
        |fake| {
            fake.state()
                .catalog
                .offerings
                .remove(&("c4.xlarge".to_string(), "us-east-1b".to_string()));
        },
    )
    .await;
    assert_refused(
        &output,
        &format!("{GROUP}.LaunchTemplateOverrides[1].InstanceType"),
        "c4.xlarge is not offered in us-east-1b",
    );
    assert_refused(
        &output,
        "Partitions[0].NodeGroups[1].LaunchTemplateOverrides[0].InstanceType",
        "c5.nosuch is offered in none of the subnets' zones",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_that_is_not_permitted_is_refused() {
    let (server, fake, workspace) = setup(4).await;
    let output = validate_with(
        &fake,
        &server.uri(),
        &workspace,
        |_| {},
        |fake| {
            fake.state().faults.denied.insert("CreateFleet".into());
        },
    )
    .await;
    assert_refused(
        &output,
        GROUP,
        "may not launch this node group: CreateFleet",
    );
    assert!(
        stderr(&output).contains("UnauthorizedOperation"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn terminating_and_tagging_that_are_not_permitted_are_refused() {
    let (server, fake, workspace) = setup(4).await;
    let output = validate_with(
        &fake,
        &server.uri(),
        &workspace,
        |_| {},
        |fake| {
            let mut state = fake.state();
            state.faults.denied.insert("TerminateInstances".into());
            state.faults.denied.insert("CreateTags".into());
        },
    )
    .await;
    assert_refused(
        &output,
        &format!("{GROUP}.Region"),
        "may not call TerminateInstances",
    );
    assert_refused(
        &output,
        &format!("{GROUP}.Region"),
        "may not call CreateTags",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_the_region_refuses_stop_the_account_s_checks() {
    let (server, fake, workspace) = setup(4).await;
    let output = validate_with(
        &fake,
        &server.uri(),
        &workspace,
        |_| {},
        |fake| {
            fake.state().faults.auth_failure = true;
        },
    )
    .await;
    assert_refused(
        &output,
        &format!("{GROUP}.Region"),
        "us-east-1 does not answer",
    );
    assert!(
        stderr(&output).contains("AuthFailure"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        fake.state().requests.len(),
        1,
        "nothing is asked after the zones"
    );
}

#[test]
fn an_unreachable_ec2_leaves_the_checks_undone_with_exit_1() {
    // Nothing listens on port 9 of localhost.
    let workspace = Workspace::new(&test_config("http://127.0.0.1:9"), &test_partitions(4));
    let output = workspace.run("slurm-ec2", &["validate"]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("not checked: "), "{text}");
    assert!(text.contains(&format!("{GROUP}.Region")), "{text}");
}

#[test]
fn get_nodename_has_no_aws_check() {
    let workspace = Workspace::new(&test_config("http://127.0.0.1:9"), &test_partitions(4));
    let output = workspace.run("get-nodename", &["--check", "--aws"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("slurm-ec2 validate"),
        "{}",
        stderr(&output)
    );
    let without_check = workspace.run("resume", &["--aws"]);
    assert_eq!(
        without_check.status.code(),
        Some(2),
        "--aws requires --check"
    );
}
