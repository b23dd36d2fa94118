//! change-state against a recording scontrol and a faked EC2.

use std::os::fd::AsRawFd;

use crate::resume_wire::setup;
use crate::support::fake_ec2::list;
use crate::support::our_tags;

const NODES: &str = "\
NodeName=aws-od-0 Arch=x86_64 CoresPerSocket=1 NodeAddr=10.0.0.1 State=IDLE+CLOUD+POWERED_DOWN ThreadsPerCore=1 Partitions=aws Reason=(null)
NodeName=aws-od-1 Arch=x86_64 NodeAddr=aws-od-1 State=DOWN+CLOUD+POWERED_DOWN+NOT_RESPONDING Partitions=aws Reason=ResumeTimeout reached [slurm@2026-11-21T12:00:00]
NodeName=aws-od-2 Arch=x86_64 NodeAddr=10.0.0.3 State=ALLOCATED+CLOUD Partitions=aws Reason=(null)
NodeName=compute-1 State=IDLE
";

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_prints_the_plan_and_a_real_run_carries_it_out() {
    let (_server, fake, workspace) = setup(10).await;
    std::fs::write(workspace.path().join("bin/nodes.txt"), NODES).unwrap();
    let leaked = fake.add_instance(&our_tags("aws-od-0"));
    let orphan = fake.add_instance(&our_tags("aws-od-77"));
    let stranger = fake.add_instance(&[("Name", "aws-od-2")]);
    // aws-od-2 is allocated but has no instance of this cluster.

    let output = workspace.run_async("change-state", &["--dry-run"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let table = String::from_utf8_lossy(&output.stdout);
    let header = table.lines().next().unwrap();
    for column in [
        "NODE",
        "SLURM STATE",
        "INSTANCE",
        "EC2 STATE",
        "ACTION",
        "REASON",
    ] {
        assert!(header.contains(column), "{table}");
    }
    let row = |needle: &str| {
        table
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {table}"))
            .to_string()
    };
    assert!(row(&leaked).contains("terminate instance"));
    assert!(row(&orphan).contains("orphan"));
    assert!(row("aws-od-1").contains("state=RESUME"));
    assert!(row("aws-od-2").contains("state=DOWN reason=(Code:InstanceGone)"));
    assert!(
        !table.contains(&stranger),
        "an instance without the cluster tag is not ours"
    );
    assert!(
        fake.calls("TerminateInstances").is_empty(),
        "a dry run acts on nothing"
    );
    assert!(workspace.scontrol_updates().is_empty());

    let output = workspace.run_async("change-state", &[]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let terminated = list(&fake.calls("TerminateInstances")[0], "InstanceId");
    assert_eq!(terminated.len(), 2);
    assert!(terminated.contains(&leaked) && terminated.contains(&orphan));
    let updates = workspace.scontrol_updates();
    let has = |args: &[&str]| {
        updates
            .iter()
            .any(|u| args.iter().all(|a| u.contains(&a.to_string())))
    };
    assert!(has(&["nodename=aws-od-1", "state=RESUME"]), "{updates:?}");
    assert!(has(&["nodename=aws-od-2", "state=DOWN"]), "{updates:?}");
    // Both powered down after their state: aws-od-2 under its job (DOWN),
    // aws-od-1 after RESUME, which would leave it not responding.
    let powered_down = |node: &str| {
        updates.iter().position(|u| {
            u.contains(&"state=POWER_DOWN_FORCE".to_string())
                && u.iter().any(|a| {
                    a.strip_prefix("nodename=")
                        .and_then(|list| slurm_ec2::hostlist::expand(list).ok())
                        .is_some_and(|nodes| nodes.iter().any(|n| n == node))
                })
        })
    };
    for node in ["aws-od-1", "aws-od-2"] {
        let state_set = updates
            .iter()
            .position(|u| u.contains(&format!("nodename={node}")));
        let power_down = powered_down(node);
        assert!(
            power_down.is_some() && state_set < power_down,
            "{node}: {updates:?}"
        );
    }
    assert_eq!(fake.live().len(), 1, "only the stranger is left");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_while_one_holds_the_lock_exits_at_once() {
    let (_server, fake, workspace) = setup(10).await;
    let lock = std::fs::File::create(workspace.path().join("slurm-ec2-change-state.lock")).unwrap();
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(
        unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    let output = workspace.run_async("change-state", &["--dry-run"]).await;
    assert!(output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("another change-state run holds the lock"),
        "a dry run says why it prints no plan: {output:?}"
    );
    let output = workspace.run_async("change-state", &[]).await;
    assert!(output.status.success());
    assert!(
        workspace
            .log()
            .contains("Another change-state run holds the lock"),
        "{}",
        workspace.log()
    );
    assert!(fake.state().requests.is_empty());
    assert!(workspace.scontrol_calls().is_empty());
}

/// An instance that resume had no time to name (it is known by its
/// reservation's node list) gets its `Name` and placeholder tags from
/// change-state, and is kept.
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_known_only_by_its_reservation_s_list_is_named() {
    let (_server, fake, workspace) = setup(10).await;
    std::fs::write(
        workspace.path().join("bin/nodes.txt"),
        "NodeName=aws-od-2 NodeAddr=10.0.0.2 State=ALLOCATED+CLOUD Partitions=aws Reason=(null)\n",
    )
    .unwrap();
    let id = fake.add_instance(&[
        ("slurm-ec2:cluster", "testcluster"),
        ("slurm-ec2:partition", "aws"),
        ("slurm-ec2:node-group", "od"),
        ("slurm-ec2:nodes", "aws-od-[1-3]"),
    ]);
    fake.state().instances[0].launch_index = 1;
    let output = workspace.run_async("change-state", &[]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let live = fake.live();
    assert_eq!(live.len(), 1, "kept");
    assert_eq!(live[0].id, id);
    assert_eq!(live[0].tag("Name"), Some("aws-od-2"));
    let address = live[0].tag("Address").unwrap_or_default().to_string();
    assert!(address.ends_with("/aws-od-2"), "{address}");
    assert!(fake.calls("TerminateInstances").is_empty());
    assert!(
        workspace.scontrol_updates().is_empty(),
        "{:?}",
        workspace.scontrol_updates()
    );
}

const HEALTH_NODES: &str = "\
NodeName=aws-od-2 Arch=x86_64 NodeAddr=10.0.0.3 State=ALLOCATED+CLOUD Partitions=aws Reason=(null)
NodeName=aws-od-3 Arch=x86_64 NodeAddr=10.0.0.4 State=IDLE+CLOUD Partitions=aws Reason=(null)
NodeName=aws-od-4 Arch=x86_64 NodeAddr=10.0.0.5 State=IDLE+CLOUD Partitions=aws Reason=(null)
";

/// EC2's view of health: a node whose instance has failed its status checks
/// past the grace goes DOWN (then its instance is replaced as for any DOWN
/// node); one with a retirement scheduled is drained; a healthy one is left.
#[tokio::test(flavor = "multi_thread")]
async fn failed_status_checks_take_a_node_down_and_a_scheduled_event_drains_one() {
    let (_server, fake, workspace) = setup(10).await;
    std::fs::write(workspace.path().join("bin/nodes.txt"), HEALTH_NODES).unwrap();
    let impaired = fake.add_instance(&our_tags("aws-od-2"));
    let retiring = fake.add_instance(&our_tags("aws-od-3"));
    let healthy = fake.add_instance(&our_tags("aws-od-4"));
    {
        let mut state = fake.state();
        let faults = &mut state.faults;
        faults
            .impaired_since
            .insert(impaired.clone(), "2026-01-01T00:00:00.000Z".into());
        let event = (
            "instance-retirement".to_string(),
            "The instance is running on degraded hardware".to_string(),
            "2030-01-01T00:00:00.000Z".to_string(),
        );
        faults
            .scheduled_events
            .insert(retiring.clone(), vec![event]);
    }
    let output = workspace.run_async("change-state", &[]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let asked = list(&fake.calls("DescribeInstanceStatus")[0], "InstanceId");
    assert_eq!(
        asked.len(),
        3,
        "every running instance, in one call: {asked:?}"
    );
    let updates = workspace.scontrol_updates();
    let update_of = |node: &str, state: &str| {
        updates
            .iter()
            .find(|u| {
                u.contains(&format!("nodename={node}")) && u.contains(&format!("state={state}"))
            })
            .cloned()
            .unwrap_or_else(|| panic!("no state={state} for {node}: {updates:?}"))
    };
    let down = update_of("aws-od-2", "DOWN");
    assert!(
        down.iter().any(|a| a.starts_with(&format!(
            "reason=(Code:InstanceImpaired)Instance {impaired} "
        ))),
        "{down:?}"
    );
    update_of("aws-od-2", "POWER_DOWN_FORCE");
    let drain = update_of("aws-od-3", "DRAIN");
    assert!(
        drain
            .iter()
            .any(|a| a.starts_with("reason=(Code:instance-retirement)EC2 scheduled it for 20")),
        "{drain:?}"
    );
    assert!(
        !updates
            .iter()
            .any(|u| u.iter().any(|a| a.contains("aws-od-4"))),
        "the healthy node {healthy} is left alone: {updates:?}"
    );
    assert!(
        fake.calls("TerminateInstances").is_empty(),
        "nothing is terminated yet"
    );
}

/// A policy from before change-state read instance health: the look-up is
/// refused, said in a warning, and the run does the rest of its work.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_health_look_up_costs_only_the_health_rows() {
    let (_server, fake, workspace) = setup(10).await;
    std::fs::write(workspace.path().join("bin/nodes.txt"), NODES).unwrap();
    let leaked = fake.add_instance(&our_tags("aws-od-0"));
    fake.state().faults.status_denied = true;
    let output = workspace.run_async("change-state", &[]).await;
    assert!(output.status.success(), "{}", workspace.log());
    assert!(
        workspace
            .log()
            .contains("No health of the instances in us-east-1: DescribeInstanceStatus"),
        "{}",
        workspace.log()
    );
    let terminated = list(&fake.calls("TerminateInstances")[0], "InstanceId");
    assert_eq!(terminated, vec![leaked]);
}
