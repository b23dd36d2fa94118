//! get-nodename against an instance-metadata stand-in (IMDSv2) and a faked EC2.

use std::process::Output;

use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::resume_wire::fake_ec2;
use crate::support::{Workspace, run_binary_with_env, test_config, test_partitions};

const TOKEN: &str = "test-token";

/// An IMDSv2 stand-in for instance `instance_id`; `tags` None means tags are
/// not exposed in metadata; `name_after` 404s before the Name tag shows.
async fn metadata(instance_id: &str, tags: Option<&str>, name_after: u64) -> MockServer {
    serve_metadata(MockServer::start().await, instance_id, tags, name_after).await
}

/// IMDSv2's session token, as the SDK asks for it.
async fn mount_token(server: &MockServer) {
    Mock::given(method("PUT"))
        .and(path("/latest/api/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(TOKEN)
                .insert_header("x-aws-ec2-metadata-token-ttl-seconds", "21600"),
        )
        .mount(server)
        .await;
}

/// IMDSv2 answering each of `paths` with its body, and 404 elsewhere.
async fn serve_paths(paths: &[(&str, &str)]) -> MockServer {
    let server = MockServer::start().await;
    mount_token(&server).await;
    for (p, body) in paths {
        Mock::given(method("GET"))
            .and(path(*p))
            .and(header("x-aws-ec2-metadata-token", TOKEN))
            .respond_with(ResponseTemplate::new(200).set_body_string(*body))
            .mount(&server)
            .await;
    }
    server
}

async fn serve_metadata(
    server: MockServer,
    instance_id: &str,
    tags: Option<&str>,
    name_after: u64,
) -> MockServer {
    mount_token(&server).await;
    let get = |p: &str| {
        Mock::given(method("GET"))
            .and(path(p.to_string()))
            .and(header("x-aws-ec2-metadata-token", TOKEN))
    };
    get("/latest/meta-data/instance-id")
        .respond_with(ResponseTemplate::new(200).set_body_string(instance_id))
        .mount(&server)
        .await;
    get("/latest/meta-data/instance-type")
        .respond_with(ResponseTemplate::new(200).set_body_string("c5.xlarge"))
        .mount(&server)
        .await;
    get("/latest/meta-data/placement/region")
        .respond_with(ResponseTemplate::new(200).set_body_string("us-east-1"))
        .mount(&server)
        .await;
    match tags {
        Some(name) => {
            get("/latest/meta-data/tags/instance")
                .respond_with(ResponseTemplate::new(200).set_body_string("Name\nslurm-ec2:cluster"))
                .mount(&server)
                .await;
            if name_after > 0 {
                get("/latest/meta-data/tags/instance/Name")
                    .respond_with(ResponseTemplate::new(404))
                    .up_to_n_times(name_after)
                    .with_priority(1)
                    .mount(&server)
                    .await;
            }
            get("/latest/meta-data/tags/instance/Name")
                .respond_with(ResponseTemplate::new(200).set_body_string(name))
                .with_priority(2)
                .mount(&server)
                .await;
        }
        None => {
            get("/latest/meta-data/tags/instance")
                .respond_with(ResponseTemplate::new(404))
                .mount(&server)
                .await;
        }
    }
    server
}

async fn get_nodename(workspace: &Workspace, imds: &str, ec2: &str, args: &[&str]) -> Output {
    let env = vec![
        (
            "AWS_EC2_METADATA_SERVICE_ENDPOINT".to_string(),
            imds.to_string(),
        ),
        ("AWS_ENDPOINT_URL_EC2".to_string(), ec2.to_string()),
        ("AWS_ACCESS_KEY_ID".to_string(), "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), "testing".to_string()),
    ];
    let dir = workspace.path().to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run_binary_with_env(&dir, "get-nodename", &refs, &env)
    })
    .await
    .unwrap()
}

fn workspace() -> Workspace {
    Workspace::new(&test_config("http://127.0.0.1:1"), &test_partitions(10))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_the_name_tag_over_imdsv2() {
    let imds = metadata("i-0123", Some("aws-od-3"), 0).await;
    let workspace = workspace();
    let output = get_nodename(&workspace, &imds.uri(), "http://127.0.0.1:1", &[]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), "aws-od-3\n");
    assert!(String::from_utf8_lossy(&output.stderr).contains("instance metadata tags"));
    // For the systemd drop-in: slurmd's arguments follow its version.
    for (version, args) in [
        ("22.05.8", ""),
        ("23.11.0", "--instance-id i-0123 --instance-type c5.xlarge"),
    ] {
        let slurmd = workspace.path().join(format!("slurmd-{version}"));
        std::fs::write(&slurmd, format!("#!/bin/sh\necho slurm-wlm {version}\n")).unwrap();
        std::fs::set_permissions(&slurmd, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let slurmd = slurmd.display().to_string();
        let flags = ["--env", "--slurmd", slurmd.as_str()];
        let output = get_nodename(&workspace, &imds.uri(), "http://127.0.0.1:1", &flags).await;
        assert!(output.status.success(), "{output:?}");
        assert_eq!(
            stdout(&output),
            format!("SLURM_NODENAME=aws-od-3\nSLURM_EC2_SLURMD_ARGS={args}\n"),
            "slurmd {version}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn waits_for_a_name_tag_that_appears_later() {
    let imds = metadata("i-0123", Some("aws-od-4"), 2).await;
    let output = get_nodename(
        &workspace(),
        &imds.uri(),
        "http://127.0.0.1:1",
        &["--timeout", "30"],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), "aws-od-4\n");
    let name_requests = imds
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/latest/meta-data/tags/instance/Name")
        .count();
    assert_eq!(name_requests, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_that_never_appears_fails_within_the_timeout() {
    let imds = metadata("i-0123", Some("aws-od-4"), 1000).await;
    let started = std::time::Instant::now();
    let output = get_nodename(
        &workspace(),
        &imds.uri(),
        "http://127.0.0.1:1",
        &["--timeout", "2"],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(started.elapsed().as_secs() < 10);
    assert_eq!(stdout(&output), "");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("has no Name tag after 2 s"),
        "{output:?}"
    );

    let output = get_nodename(
        &workspace(),
        &imds.uri(),
        "http://127.0.0.1:1",
        &["--timeout", "1", "--fallback-hostname"],
    )
    .await;
    assert!(output.status.success());
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(stdout(&output).trim(), hostname.trim());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_that_is_not_one_of_our_nodes_is_refused() {
    let imds = metadata("i-0123", Some("aws-od-99"), 0).await;
    let output = get_nodename(&workspace(), &imds.uri(), "http://127.0.0.1:1", &[]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("is not a node of this cluster"),
        "{output:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_imdsv1_only_endpoint_is_refused() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("aws-od-1"))
        .mount(&server)
        .await;
    let output = get_nodename(
        &workspace(),
        &server.uri(),
        "http://127.0.0.1:1",
        &["--timeout", "2"],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(stdout(&output), "");
    let gets = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "GET")
        .count();
    assert_eq!(gets, 0, "no tokenless IMDSv1 read");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_tags_in_metadata_it_asks_describe_instances() {
    let (ec2, fake) = fake_ec2().await;
    let id = fake.add_instance(&[("Name", "aws-sp-2"), ("slurm-ec2:cluster", "testcluster")]);
    let imds = metadata(&id, None, 0).await;
    let output = get_nodename(&workspace(), &imds.uri(), &ec2.uri(), &[]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), "aws-sp-2\n");
    assert!(String::from_utf8_lossy(&output.stderr).contains("DescribeInstances"));
    assert_eq!(fake.calls("DescribeInstances").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn waits_for_a_metadata_service_that_is_not_up_yet() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let workspace = workspace();
    let run = get_nodename(
        &workspace,
        &endpoint,
        "http://127.0.0.1:1",
        &["--timeout", "20"],
    );
    let late = async {
        // Connections are refused until the service starts.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let server = MockServer::builder().listener(listener).start().await;
        serve_metadata(server, "i-0456", Some("aws-od-5"), 0).await
    };
    let (output, _server) = tokio::join!(run, late);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), "aws-od-5\n");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("retrying"),
        "{output:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_range_timeouts_and_broken_config_paths_exit_2() {
    let imds = metadata("i-0123", Some("aws-od-3"), 0).await;
    let workspace = workspace();
    for timeout in ["18446744073709551615", "0", "86401"] {
        let output = get_nodename(
            &workspace,
            &imds.uri(),
            "http://127.0.0.1:1",
            &["--timeout", timeout],
        )
        .await;
        assert_eq!(output.status.code(), Some(2), "{timeout}: {output:?}");
    }
    let config = workspace.path().join("config.json");
    std::fs::remove_file(&config).unwrap();
    std::fs::create_dir(&config).unwrap();
    let output = get_nodename(&workspace, &imds.uri(), "http://127.0.0.1:1", &["--check"]).await;
    assert_eq!(output.status.code(), Some(2), "a folder: {output:?}");
    std::fs::remove_dir(&config).unwrap();
    std::os::unix::fs::symlink(workspace.path().join("gone.json"), &config).unwrap();
    let output = get_nodename(&workspace, &imds.uri(), "http://127.0.0.1:1", &[]).await;
    assert_eq!(output.status.code(), Some(2), "a dangling link: {output:?}");
    assert_eq!(stdout(&output), "");
    std::fs::remove_file(&config).unwrap();
    let output = get_nodename(&workspace, &imds.uri(), "http://127.0.0.1:1", &["--check"]).await;
    assert!(output.status.success(), "no config.json at all: {output:?}");
}

/// Before its `Name` tag, an instance finds its node in its reservation's
/// node list (`slurm-ec2:nodes`, one tag for the whole reservation) at its
/// `ami-launch-index`.
#[tokio::test(flavor = "multi_thread")]
async fn before_its_name_it_reads_its_node_from_the_reservation_s_list() {
    let server = serve_paths(&[
        ("/latest/meta-data/instance-id", "i-0456"),
        (
            "/latest/meta-data/tags/instance",
            "slurm-ec2:cluster\nslurm-ec2:nodes",
        ),
        (
            "/latest/meta-data/tags/instance/slurm-ec2:nodes",
            "aws-od-[0-4],aws-sp-[7-9]",
        ),
        ("/latest/meta-data/ami-launch-index", "6"),
    ])
    .await;
    let workspace = workspace();
    let output = get_nodename(&workspace, &server.uri(), "http://127.0.0.1:1", &[]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), "aws-sp-8\n");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("node list"),
        "{output:?}"
    );
}

/// An instance restarted from a warm pool keeps the launch index of its
/// first launch: resume names its reservation's restarted instances by a node
/// list and the launch indexes that list names (`slurm-ec2:indexes`), and its
/// pooled `Name` is empty. It must print its new node, never the one at its
/// launch index in the list.
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_pooled_instance_prints_its_new_node() {
    let server = serve_paths(&[
        ("/latest/meta-data/instance-id", "i-0456"),
        (
            "/latest/meta-data/tags/instance",
            "Name\nslurm-ec2:cluster\nslurm-ec2:nodes\nslurm-ec2:indexes",
        ),
        ("/latest/meta-data/tags/instance/Name", ""),
        (
            "/latest/meta-data/tags/instance/slurm-ec2:nodes",
            "aws-od-[7-9]",
        ),
        ("/latest/meta-data/tags/instance/slurm-ec2:indexes", "0,2,5"),
        ("/latest/meta-data/ami-launch-index", "2"),
    ])
    .await;
    let workspace = workspace();
    let output = get_nodename(&workspace, &server.uri(), "http://127.0.0.1:1", &[]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout(&output),
        "aws-od-8\n",
        "index 2 is the list's second"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_that_is_no_node_name_reaches_no_environment_file() {
    // The documented mode without a configuration on the node: no name is
    // checked against partitions.json, so the tag alone must be refused.
    let workspace = workspace();
    std::fs::remove_file(workspace.path().join("config.json")).unwrap();
    std::fs::remove_file(workspace.path().join("partitions.json")).unwrap();
    for hostile in [
        "aws-od-1\nLD_PRELOAD=/tmp/x.so",
        "aws-od-1\\",
        "aws od 1",
        "-aws-od-1",
    ] {
        let imds = metadata("i-0123", Some(hostile), 0).await;
        let args = ["--env", "--timeout", "2"];
        let output = get_nodename(&workspace, &imds.uri(), "http://127.0.0.1:1", &args).await;
        assert_eq!(output.status.code(), Some(1), "{hostile:?}: {output:?}");
        assert_eq!(stdout(&output), "", "{hostile:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("which no Slurm node name can be"),
            "{output:?}"
        );
    }
}

/// `slurm-ec2 watch --once`: silent while the metadata has no notice; on a
/// Spot notice, the node drained with the notice's code and its jobs
/// signalled, and a second look (a restarted watcher) does neither again.
#[tokio::test(flavor = "multi_thread")]
async fn the_watcher_drains_and_signals_once_on_a_spot_notice() {
    let imds = metadata("i-0123", Some("aws-od-3"), 0).await;
    let workspace = workspace();
    let bin = workspace.path().join("bin");
    let scancel = bin.join("scancel");
    let record = "#!/bin/sh\necho \"$*\" >> \"$(dirname \"$0\")/scancel.calls\"\n";
    std::fs::write(&scancel, record).unwrap();
    std::fs::set_permissions(
        &scancel,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let watch = |workspace: &Workspace| {
        let env = vec![
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT".to_string(), imds.uri()),
            (
                "AWS_ENDPOINT_URL_EC2".to_string(),
                "http://127.0.0.1:1".to_string(),
            ),
        ];
        let dir = workspace.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            run_binary_with_env(&dir, "slurm-ec2", &["watch", "--once"], &env)
        })
    };
    let output = watch(&workspace).await.unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(workspace.scontrol_calls().is_empty(), "no notice, no Slurm");

    let time = (chrono::Utc::now() + chrono::Duration::seconds(120)).format("%Y-%m-%dT%H:%M:%SZ");
    Mock::given(method("GET"))
        .and(path("/latest/meta-data/spot/instance-action"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(format!(r#"{{"action": "terminate", "time": "{time}"}}"#)),
        )
        .mount(&imds)
        .await;
    let nodes = workspace.path().join("bin/nodes.txt");
    std::fs::write(
        &nodes,
        "NodeName=aws-od-3 State=ALLOCATED+CLOUD Reason=(null)\n",
    )
    .unwrap();
    let output = watch(&workspace).await.unwrap();
    assert!(output.status.success(), "{output:?}");
    let updates = workspace.scontrol_updates();
    assert_eq!(updates.len(), 2, "{updates:?}");
    assert!(
        updates
            .iter()
            .all(|u| u[1] == "nodename=aws-od-3" && u[2] == "state=DRAIN")
    );
    assert!(
        updates[0][3]
            .starts_with("reason=(Code:spot-interruption)EC2 will terminate its instance at ")
    );
    assert!(
        updates[1][3].ends_with("; jobs sent SIGTERM"),
        "{updates:?}"
    );
    let signalled = std::fs::read_to_string(bin.join("scancel.calls")).unwrap();
    assert_eq!(signalled, "--signal=TERM --full --nodelist=aws-od-3\n");

    let reason = updates[1][3].trim_start_matches("reason=");
    // Slurm's stamp of the drain: just now, so the requeue is not due yet.
    let stamp = chrono::Local::now().format("%Y-%m-%dT%H:%M:%S");
    let drained =
        format!("NodeName=aws-od-3 State=ALLOCATED+CLOUD+DRAIN Reason={reason} [root@{stamp}]\n");
    std::fs::write(&nodes, drained).unwrap();
    let output = watch(&workspace).await.unwrap();
    assert!(output.status.success(), "{output:?}");
    let after = workspace.scontrol_updates();
    assert_eq!(after.len(), 2, "a second look acts again: {after:?}");
    assert_eq!(
        std::fs::read_to_string(bin.join("scancel.calls"))
            .unwrap()
            .lines()
            .count(),
        1
    );
}
