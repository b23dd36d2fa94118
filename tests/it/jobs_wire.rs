//! Jobs behind the nodes: SLURM_RESUME_FILE in both schemas, cost tags per
//! job (user and account from one squeue call), and all-or-nothing launches.

use serde_json::json;

use crate::resume_wire::fake_ec2;
use crate::support::fake_ec2::Params;
use crate::support::{FakeEc2, Workspace, test_config, test_partitions};

const OLD_SCHEMA: &str =
    r#"{"jobs":[{"job_id":12,"nodes":"aws-od-[0-1]"}],"all_nodes":"aws-od-[0-1]"}"#;
const NEW_SCHEMA: &str = r#"{"jobs":[{"extra":null,"job_id":12,"features":null,"nodes_alloc":"aws-od-[0-1]","nodes_resume":"aws-od-[0-1]","oversubscribe":"OK","partition":"aws","reservation":null}],"all_nodes_resume":"aws-od-[0-1]"}"#;

fn tags_of_call(params: &Params) -> Vec<(String, String)> {
    (1..)
        .map_while(|i| {
            let key = params.get(&format!("Tag.{i}.Key"))?;
            Some((key.clone(), params[&format!("Tag.{i}.Value")].clone()))
        })
        .collect()
}

fn launch_tags(params: &Params) -> Vec<(String, String)> {
    (1..)
        .map_while(|i| {
            let key = params.get(&format!("TagSpecification.1.Tag.{i}.Key"))?;
            let value = &params[&format!("TagSpecification.1.Tag.{i}.Value")];
            Some((key.clone(), value.clone()))
        })
        .collect()
}

fn has(tags: &[(String, String)], key: &str, value: &str) -> bool {
    tags.iter().any(|(k, v)| k == key && v == value)
}

async fn workspace(partitions: serde_json::Value) -> (wiremock::MockServer, FakeEc2, Workspace) {
    let (server, fake) = fake_ec2().await;
    let workspace = Workspace::new(&test_config(&server.uri()), &partitions);
    std::fs::write(
        workspace.path().join("bin/squeue.txt"),
        "12|alice|physics\n7|bob|chem\n8|carol|(null)\n",
    )
    .unwrap();
    (server, fake, workspace)
}

#[tokio::test(flavor = "multi_thread")]
async fn job_tags_ride_in_the_name_call_in_both_schemas() {
    for schema in [OLD_SCHEMA, NEW_SCHEMA] {
        let mut partitions = test_partitions(10);
        partitions["Partitions"][0]["NodeGroups"][0]["Tags"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Key": "CostCenter", "Value": "{job_id}/{user}/{account}"}));
        let (_server, fake, workspace) = workspace(partitions).await;
        let file = workspace.path().join("resume.json");
        std::fs::write(&file, schema).unwrap();
        let output = workspace
            .run_with_resume_file("resume", &["aws-od-[0-2]"], &file)
            .await;
        assert!(output.status.success(), "{}", workspace.log());
        let calls = fake.calls("CreateTags");
        assert_eq!(
            calls.len(),
            4,
            "the reservation's node list, then one per instance, no extra call for the job tags"
        );
        // The nodes are of two jobs' sorts (one of none), so the job tags
        // do not ride in the reservation's call.
        let list_call = tags_of_call(&calls[0]);
        assert!(
            has(&list_call, "slurm-ec2:nodes", "aws-od-[0-2]"),
            "{list_call:?}"
        );
        assert!(!list_call.iter().any(|(k, _)| k == "slurm-ec2:job-id"));
        for call in &calls[1..] {
            let tags = tags_of_call(call);
            let name = tags.iter().find(|(k, _)| k == "Name").unwrap().1.clone();
            let of_job = name != "aws-od-2";
            assert_eq!(
                has(&tags, "slurm-ec2:job-id", "12"),
                of_job,
                "{name}: {tags:?}"
            );
            assert_eq!(has(&tags, "slurm-ec2:user", "alice"), of_job, "{name}");
            assert_eq!(has(&tags, "slurm-ec2:account", "physics"), of_job, "{name}");
            let cost = if of_job { "12/alice/physics" } else { "//" };
            assert!(has(&tags, "CostCenter", cost), "{name}: {tags:?}");
        }
        let squeue = std::fs::read_to_string(workspace.path().join("bin/squeue.calls")).unwrap();
        assert_eq!(
            squeue.lines().count(),
            1,
            "one squeue call for all the jobs"
        );
        assert!(squeue.contains("--jobs=12"), "{squeue}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_broken_resume_file_is_a_warning_not_a_failure() {
    let (_server, fake, workspace) = workspace(test_partitions(10)).await;
    let broken = workspace.path().join("broken.json");
    std::fs::write(&broken, "{\"jobs\": [").unwrap();
    for file in [workspace.path().join("gone.json"), broken] {
        let output = workspace
            .run_with_resume_file("resume", &["aws-od-0"], &file)
            .await;
        assert!(output.status.success(), "{}", workspace.log());
    }
    let log = workspace.log();
    assert!(
        log.contains("WARNING - SLURM_RESUME_FILE") && log.contains("cannot read"),
        "{log}"
    );
    assert!(log.contains("is not JSON"), "{log}");
    assert_eq!(
        fake.live().len(),
        1,
        "the node is served from the hostlist alone"
    );
}

fn all_or_nothing_partitions(max_nodes: u32) -> serde_json::Value {
    let mut partitions = test_partitions(max_nodes);
    partitions["Partitions"][0]["NodeGroups"][0]["JobLevelScaling"] = json!("all-or-nothing");
    partitions
}

#[tokio::test(flavor = "multi_thread")]
async fn an_all_or_nothing_job_gets_all_its_nodes_or_none_and_others_are_unaffected() {
    let (_server, fake, workspace) = workspace(all_or_nothing_partitions(10)).await;
    fake.state().faults.capacity_left = Some(2);
    let file = workspace.path().join("resume.json");
    let two_jobs = r#"{"jobs":[{"job_id":7,"nodes_resume":"aws-od-[0-2]"},{"job_id":8,"nodes_resume":"aws-od-3"}],"all_nodes_resume":"aws-od-[0-3]"}"#;
    std::fs::write(&file, two_jobs).unwrap();
    let output = workspace
        .run_with_resume_file("resume", &["aws-od-[0-3]"], &file)
        .await;
    assert_eq!(output.status.code(), Some(1), "{}", workspace.log());

    let fleets = fake.calls("CreateFleet");
    assert_eq!(fleets.len(), 2, "one fleet per job");
    let of_job = |id: &str| {
        fleets
            .iter()
            .find(|f| has(&launch_tags(f), "slurm-ec2:job-id", id))
            .unwrap_or_else(|| panic!("a fleet tagged with job {id}"))
    };
    let big = of_job("7");
    assert_eq!(big["TargetCapacitySpecification.TotalTargetCapacity"], "3");
    assert_eq!(big["OnDemandOptions.MinTargetCapacity"], "3");
    assert_eq!(big["OnDemandOptions.SingleAvailabilityZone"], "true");
    assert!(has(&launch_tags(big), "slurm-ec2:user", "bob"));
    let small = of_job("8");
    assert_eq!(small["OnDemandOptions.MinTargetCapacity"], "1");

    let live = fake.live();
    assert_eq!(live.len(), 1, "nothing of job 7 runs");
    assert_eq!(live[0].tag("Name"), Some("aws-od-3"));
    assert_eq!(live[0].tag("slurm-ec2:job-id"), Some("8"));
    let downs: Vec<Vec<String>> = workspace
        .scontrol_updates()
        .into_iter()
        .filter(|u| u.iter().any(|a| a == "state=DOWN"))
        .collect();
    assert_eq!(downs.len(), 1, "{downs:?}");
    assert_eq!(downs[0][1], "nodename=aws-od-[0-2]");
    assert!(downs[0][3].starts_with("reason=(Code:InsufficientInstanceCapacity)"));
    let updates = workspace.scontrol_updates();
    assert!(
        updates
            .iter()
            .any(|u| u[1] == "nodename=aws-od-3" && u[2].starts_with("nodeaddr=")),
        "job 8 gets its address: {updates:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_all_or_nothing_job_of_over_1000_nodes_in_a_group_is_refused() {
    let (_server, fake, workspace) = workspace(all_or_nothing_partitions(2000)).await;
    let file = workspace.path().join("resume.json");
    let big = r#"{"jobs":[{"job_id":9,"nodes_resume":"aws-od-[0-1000]"}],"all_nodes_resume":"aws-od-[0-1000]"}"#;
    std::fs::write(&file, big).unwrap();
    let output = workspace
        .run_with_resume_file("resume", &["aws-od-[0-1000]"], &file)
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(fake.calls("CreateFleet").is_empty());
    let downs: Vec<Vec<String>> = workspace
        .scontrol_updates()
        .into_iter()
        .filter(|u| u.iter().any(|a| a == "state=DOWN"))
        .collect();
    assert!(!downs.is_empty());
    assert!(
        downs
            .iter()
            .all(|d| d[3] == "reason=(Code:AllOrNothingOver1000Nodes)Failure when resuming nodes")
    );
}
