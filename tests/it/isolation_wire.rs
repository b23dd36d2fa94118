//! Another cluster's instances in the same account: whatever EC2's filters
//! return, resume, suspend and change-state act only on instances whose tags
//! name this cluster exactly.

use crate::resume_wire::setup;
use crate::support::fake_ec2::list;
use crate::support::our_tags;

fn other_cluster(name: &str) -> Vec<(&str, &str)> {
    let mut tags = our_tags(name);
    tags[1] = ("slurm-ec2:cluster", "testcluster2");
    tags
}

#[tokio::test(flavor = "multi_thread")]
async fn another_clusters_instances_are_never_adopted_or_terminated() {
    let (_server, fake, workspace) = setup(10).await;
    fake.state().faults.ignore_tag_filters = true;
    let theirs = fake.add_instance(&other_cluster("aws-od-0"));
    let their_orphan = fake.add_instance(&other_cluster("aws-od-77"));

    let output = workspace.run_async("resume", &["aws-od-0"]).await;
    assert!(output.status.success(), "{}", workspace.log());
    assert_eq!(
        fake.calls("CreateFleet").len(),
        1,
        "their aws-od-0 is not adopted"
    );
    let ours: Vec<String> = fake
        .live()
        .into_iter()
        .filter(|i| i.tag("slurm-ec2:cluster") == Some("testcluster"))
        .map(|i| i.id)
        .collect();
    assert_eq!(ours.len(), 1);

    std::fs::write(
        workspace.path().join("bin/nodes.txt"),
        "NodeName=aws-od-0 State=IDLE+CLOUD+POWERED_DOWN Reason=(null)\n",
    )
    .unwrap();
    let output = workspace.run_async("change-state", &[]).await;
    assert!(output.status.success(), "{}", workspace.log());
    let output = workspace.run_async("suspend", &["aws-od-0"]).await;
    assert!(output.status.success(), "{}", workspace.log());

    let terminated: Vec<String> = fake
        .calls("TerminateInstances")
        .iter()
        .flat_map(|c| list(c, "InstanceId"))
        .collect();
    assert!(!terminated.is_empty(), "our leaked instance is terminated");
    assert!(
        terminated.iter().all(|id| ours.contains(id)),
        "{terminated:?}"
    );
    let live: Vec<String> = fake.live().into_iter().map(|i| i.id).collect();
    assert!(live.contains(&theirs) && live.contains(&their_orphan));
}
