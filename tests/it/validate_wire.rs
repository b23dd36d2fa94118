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

/// Exit 2, and a line naming `path` that says `what`.
fn assert_refused(case: &str, output: &Output, path: &str, what: &str) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{case}: {text}");
    assert!(
        text.lines()
            .any(|l| l.contains(&format!("partitions.json: {path}: ")) && l.contains(what)),
        "{case}: no problem at {path} that says {what:?}:\n{text}"
    );
}

/// One thing EC2 refuses, and how validate must say it.
struct Refusal {
    case: &'static str,
    /// Changes the test partitions.
    edit: fn(&mut Value),
    /// Makes the fake EC2 refuse something.
    fault: fn(&FakeEc2),
    /// Each `(JSON path, words)` is one line on stderr.
    refused: &'static [(&'static str, &'static str)],
    /// Words stderr holds besides (EC2's error code).
    also_says: &'static [&'static str],
    /// Words stderr never holds (a node group that is fine).
    never_says: &'static [&'static str],
    /// What else must hold of the calls made.
    calls: fn(&FakeEc2) -> Result<(), String>,
}

fn no_edit(_: &mut Value) {}
fn no_fault(_: &FakeEc2) {}
fn any_calls(_: &FakeEc2) -> Result<(), String> {
    Ok(())
}

const REFUSALS: &[Refusal] = &[
    Refusal {
        case: "a launch template that does not exist names its setting",
        edit: |p| {
            p["Partitions"][0]["NodeGroups"][0]["LaunchTemplateSpecification"]["LaunchTemplateName"] =
                "compute-x".into();
        },
        fault: no_fault,
        refused: &[(
            "Partitions[0].NodeGroups[0].LaunchTemplateSpecification.LaunchTemplateName",
            "InvalidLaunchTemplateName.NotFoundException",
        )],
        also_says: &[],
        never_says: &["NodeGroups[1]"],
        // The other group is fine, and its launch was still tried.
        calls: |fake| match fake.calls("CreateFleet").len() {
            1 => Ok(()),
            n => Err(format!("{n} dry-run launches, not 1")),
        },
    },
    Refusal {
        case: "a launch template version that does not exist names the version",
        edit: |p| {
            p["Partitions"][0]["NodeGroups"][1]["LaunchTemplateSpecification"]["Version"] =
                "7".into();
        },
        fault: no_fault,
        refused: &[(
            "Partitions[0].NodeGroups[1].LaunchTemplateSpecification.Version",
            "has no version 7",
        )],
        also_says: &[],
        never_says: &[],
        calls: any_calls,
    },
    Refusal {
        case: "a subnet that does not exist names its index",
        edit: |p| {
            p["Partitions"][0]["NodeGroups"][0]["SubnetIds"][1] = "subnet-99999999".into();
        },
        fault: no_fault,
        refused: &[(
            "Partitions[0].NodeGroups[0].SubnetIds[1]",
            "subnet-99999999 does not exist in us-east-1",
        )],
        also_says: &[],
        never_says: &[],
        calls: any_calls,
    },
    Refusal {
        case: "two subnets in one zone are refused",
        edit: no_edit,
        fault: |fake| fake.state().catalog.subnets[1].1 = "us-east-1a".into(),
        refused: &[(
            "Partitions[0].NodeGroups[0].SubnetIds[1]",
            "is in us-east-1a, as SubnetIds[0] (subnet-11111111) is",
        )],
        also_says: &[],
        never_says: &[],
        calls: any_calls,
    },
    Refusal {
        case: "an instance type missing from a zone or from all is refused",
        edit: |p| {
            p["Partitions"][0]["NodeGroups"][1]["LaunchTemplateOverrides"][0]["InstanceType"] =
                "c5.nosuch".into();
        },
        fault: |fake| {
            let gone = ("c4.xlarge".to_string(), "us-east-1b".to_string());
            fake.state().catalog.offerings.remove(&gone);
        },
        refused: &[
            (
                "Partitions[0].NodeGroups[0].LaunchTemplateOverrides[1].InstanceType",
                "c4.xlarge is not offered in us-east-1b",
            ),
            (
                "Partitions[0].NodeGroups[1].LaunchTemplateOverrides[0].InstanceType",
                "c5.nosuch is offered in none of the subnets' zones",
            ),
        ],
        also_says: &[],
        never_says: &[],
        calls: any_calls,
    },
    Refusal {
        case: "a launch that is not permitted is refused",
        edit: no_edit,
        fault: |fake| {
            fake.state().faults.denied.insert("CreateFleet".into());
        },
        refused: &[(GROUP, "may not launch this node group: CreateFleet")],
        also_says: &["UnauthorizedOperation"],
        never_says: &[],
        calls: any_calls,
    },
    Refusal {
        case: "terminating and tagging that are not permitted are refused",
        edit: no_edit,
        fault: |fake| {
            let mut state = fake.state();
            state.faults.denied.insert("TerminateInstances".into());
            state.faults.denied.insert("CreateTags".into());
        },
        refused: &[
            (
                "Partitions[0].NodeGroups[0].Region",
                "may not call TerminateInstances",
            ),
            (
                "Partitions[0].NodeGroups[0].Region",
                "may not call CreateTags",
            ),
        ],
        also_says: &[],
        never_says: &[],
        calls: any_calls,
    },
    Refusal {
        case: "credentials the Region refuses stop the account's checks",
        edit: no_edit,
        fault: |fake| fake.state().faults.auth_failure = true,
        refused: &[(
            "Partitions[0].NodeGroups[0].Region",
            "us-east-1 does not answer",
        )],
        also_says: &["AuthFailure"],
        never_says: &[],
        calls: |fake| match fake.state().requests.len() {
            1 => Ok(()),
            n => Err(format!("{n} requests: nothing is asked after the zones")),
        },
    },
];

#[tokio::test(flavor = "multi_thread")]
async fn each_refusal_names_the_setting_behind_it() {
    for refusal in REFUSALS {
        let (server, fake, workspace) = setup(4).await;
        let mut partitions = test_partitions(4);
        (refusal.edit)(&mut partitions);
        workspace.write_config(&test_config(&server.uri()), &partitions);
        (refusal.fault)(&fake);
        let output = workspace.run_async("slurm-ec2", &["validate"]).await;
        let case = refusal.case;
        for (path, what) in refusal.refused {
            assert_refused(case, &output, path, what);
        }
        let text = stderr(&output);
        for words in refusal.also_says {
            assert!(text.contains(words), "{case}: no {words:?} in\n{text}");
        }
        for words in refusal.never_says {
            assert!(!text.contains(words), "{case}: {words:?} in\n{text}");
        }
        if let Err(why) = (refusal.calls)(&fake) {
            panic!("{case}: {why}");
        }
    }
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
