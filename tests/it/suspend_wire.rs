//! suspend against a faked EC2.

use crate::resume_wire::setup;
use crate::support::fake_ec2::{filters, list};
use crate::support::{Workspace, our_tags, test_config, test_partitions};

/// More than 200 nodes of one group: the group is read whole by its tags
/// (one call a thousand instances) rather than by 200 names a call.
#[tokio::test(flavor = "multi_thread")]
async fn suspending_250_nodes_takes_one_lookup_and_one_termination() {
    let (_server, fake, workspace) = setup(1000).await;
    let names: Vec<String> = (0..250).map(|i| format!("aws-od-{i}")).collect();
    for name in &names {
        fake.add_instance(&our_tags(name));
    }
    let output = workspace.run_async("suspend", &["aws-od-[0-249]"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let lookups = fake.calls("DescribeInstances");
    assert_eq!(lookups.len(), 1, "{lookups:#?}");
    let by = filters(&lookups[0]);
    assert!(by.contains(&(
        "tag:slurm-ec2:node-group".to_string(),
        vec!["od".to_string()]
    )));
    assert!(!by.iter().any(|(name, _)| name == "tag:Name"));
    let terminations = fake.calls("TerminateInstances");
    assert_eq!(terminations.len(), 1);
    assert_eq!(list(&terminations[0], "InstanceId").len(), 250);
    assert!(fake.live().is_empty());
    assert!(
        workspace
            .log()
            .contains("Suspend summary: asked 250, terminated 250"),
        "{}",
        workspace.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn another_clusters_instance_with_the_same_name_is_never_touched() {
    let (_server, fake, workspace) = setup(10).await;
    let mine = fake.add_instance(&our_tags("aws-od-1"));
    let theirs = fake.add_instance(&[("Name", "aws-od-1"), ("slurm-ec2:cluster", "othercluster")]);
    let untagged = fake.add_instance(&[("Name", "aws-od-1")]);
    let output = workspace.run_async("suspend", &["aws-od-1"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let live: Vec<String> = fake.live().iter().map(|i| i.id.clone()).collect();
    assert_eq!(live, vec![theirs, untagged]);
    assert!(!live.contains(&mine));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_gone_before_its_termination_is_not_a_failure() {
    let (_server, fake, workspace) = setup(10).await;
    let ids: Vec<String> = (0..3)
        .map(|n| fake.add_instance(&our_tags(&format!("aws-od-{n}"))))
        .collect();
    fake.state().faults.vanish_on_terminate = [ids[1].clone()].into_iter().collect();
    let output = workspace.run_async("suspend", &["aws-od-[0-2]"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    assert!(fake.live().is_empty(), "the other two are terminated");
    let terminations = fake.calls("TerminateInstances");
    assert_eq!(
        terminations.len(),
        2,
        "the call EC2 refused, then one for the rest"
    );
    assert_eq!(
        list(&terminations[1], "InstanceId"),
        vec![ids[0].clone(), ids[2].clone()]
    );
    assert!(
        workspace.log().contains("already gone"),
        "{}",
        workspace.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_without_instances_and_foreign_names_succeed_quietly() {
    let (_server, fake, workspace) = setup(10).await;
    let output = workspace.run_async("suspend", &["aws-od-[2-3]"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    assert!(fake.calls("TerminateInstances").is_empty());
    assert!(
        workspace
            .log()
            .contains("Node aws-od-2 has no instance to terminate")
    );

    let before = fake.state().requests.len();
    let output = workspace
        .run_async("suspend", &["compute-[1-4],aws-xx-1"])
        .await;
    assert!(output.status.success());
    assert_eq!(
        fake.state().requests.len(),
        before,
        "no EC2 call for names that are not ours"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_ec2_makes_suspend_fail() {
    // Nothing listens on port 1 of loopback.
    let workspace = Workspace::new(&test_config("http://127.0.0.1:1"), &test_partitions(10));
    let output = workspace.run_async("suspend", &["aws-od-1"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", workspace.log());
    assert!(
        workspace
            .log()
            .contains("Failed to describe instances to terminate"),
        "{}",
        workspace.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ec2_that_accepts_and_never_answers_does_not_hang_the_program() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        // Accept and hold every connection, answering nothing.
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let mut config = test_config(&endpoint);
    config["Ec2TimeoutSeconds"] = serde_json::json!(3);
    let workspace = Workspace::new(&config, &test_partitions(10));
    let started = std::time::Instant::now();
    let output = workspace.run_async("suspend", &["aws-od-1"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", workspace.log());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        workspace
            .log()
            .contains("Failed to describe instances to terminate"),
        "{}",
        workspace.log()
    );
}

/// Right after a burst whose Names are not written yet, a few of its nodes
/// are found by their reservation's node list: the look-up by Name finds
/// none of them, so their group is read whole.
#[tokio::test(flavor = "multi_thread")]
async fn nodes_known_only_by_their_reservation_s_list_are_found_and_terminated() {
    let (_server, fake, workspace) = setup(10).await;
    let ids: Vec<String> = (0..3)
        .map(|_| {
            fake.add_instance(&[
                ("slurm-ec2:cluster", "testcluster"),
                ("slurm-ec2:partition", "aws"),
                ("slurm-ec2:node-group", "od"),
                ("slurm-ec2:nodes", "aws-od-[4-6]"),
            ])
        })
        .collect();
    {
        let mut state = fake.state();
        for (index, instance) in state.instances.iter_mut().enumerate() {
            instance.reservation = "r-burst".into();
            instance.launch_index = index;
        }
    }
    let output = workspace.run_async("suspend", &["aws-od-[5-6]"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let live: Vec<String> = fake.live().iter().map(|i| i.id.clone()).collect();
    assert_eq!(live, vec![ids[0].clone()], "aws-od-4 keeps its instance");
    assert_eq!(
        fake.calls("DescribeInstances").len(),
        2,
        "by Name, then the group"
    );
    assert!(
        workspace.log().contains("terminated 2"),
        "{}",
        workspace.log()
    );
}
