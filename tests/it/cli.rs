use serde_json::json;

use crate::support::{Workspace, binary, test_config, test_partitions};

const PROGRAMS: [&str; 6] = [
    "resume",
    "suspend",
    "change-state",
    "generate-conf",
    "get-nodename",
    "slurm-ec2",
];

#[test]
fn every_binary_answers_help_and_version() {
    for program in PROGRAMS {
        let help = std::process::Command::new(binary(program))
            .arg("--help")
            .output()
            .unwrap();
        assert!(help.status.success(), "{program} --help");
        assert!(
            String::from_utf8_lossy(&help.stdout).contains("--config-dir"),
            "{program} --help lists --config-dir"
        );
        let version = std::process::Command::new(binary(program))
            .arg("--version")
            .output()
            .unwrap();
        assert!(version.status.success(), "{program} --version");
        assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn check_prints_a_summary_or_every_problem() {
    let workspace = Workspace::new(&test_config("http://127.0.0.1:9"), &test_partitions(10));
    for program in ["resume", "suspend", "generate-conf", "change-state"] {
        let output = workspace.run(program, &["--check"]);
        assert!(output.status.success(), "{program}: {output:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("1 partition(s), 2 node group(s), 20 node(s)"),
            "{program}: {stdout}"
        );
    }
    let mut partitions = test_partitions(10);
    partitions["Partitions"][0]["NodeGroups"][1]["MaxNodes"] = json!(-3);
    partitions["Partitions"][0]["NodeGroups"][0]["PurchasingOption"] = json!("cheap");
    workspace.write_config(&test_config("http://127.0.0.1:9"), &partitions);
    let output = workspace.run("resume", &["--check"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("partitions.json: Partitions[0].NodeGroups[1].MaxNodes: must be a whole number from 1 to 10000, got the number -3"), "{stderr}");
    assert!(
        stderr.contains("Partitions[0].NodeGroups[0].PurchasingOption"),
        "{stderr}"
    );
}

#[test]
fn a_broken_config_run_by_slurm_exits_non_zero_and_says_why_in_the_log() {
    let workspace = Workspace::new(&test_config("http://127.0.0.1:9"), &test_partitions(10));
    std::fs::write(
        workspace.path().join("partitions.json"),
        "{\"Partitions\": [",
    )
    .unwrap();
    let output = workspace.run("resume", &["aws-od-0"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("partitions.json: not valid JSON"));
    assert!(
        workspace.log().contains("resume["),
        "the log file tells: {}",
        workspace.log()
    );
    assert!(workspace.log().contains("CRITICAL"), "{}", workspace.log());
}

fn set_log_file(workspace: &Workspace, path: &str) {
    let mut config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace.path().join("config.json")).unwrap(),
    )
    .unwrap();
    config["LogFileName"] = json!(path);
    std::fs::write(workspace.path().join("config.json"), config.to_string()).unwrap();
}

#[test]
fn an_unopenable_log_file_is_named_on_stderr() {
    let workspace = Workspace::new(&test_config("http://127.0.0.1:9"), &test_partitions(10));
    set_log_file(&workspace, "/nonexistent-folder/slurm-ec2.log");
    // Nothing to do but log: it still ends normally, and says where its lines went.
    let output = workspace.run("suspend", &["not-ours"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot open log file /nonexistent-folder/slurm-ec2.log"),
        "{stderr}"
    );
    assert!(stderr.contains("logging to stderr and syslog"), "{stderr}");
}

#[test]
fn check_opens_the_log_file_and_finds_scontrol_as_a_run_would() {
    let workspace = Workspace::new(&test_config("http://127.0.0.1:9"), &test_partitions(10));
    for bad in ["/nonexistent-folder/x.log", "/dev/full", "/tmp"] {
        set_log_file(&workspace, bad);
        for program in ["resume", "suspend", "change-state", "generate-conf"] {
            let output = workspace.run(program, &["--check"]);
            assert_eq!(output.status.code(), Some(2), "{program} {bad}: {output:?}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                stderr.contains("config.json: LogFileName: cannot open log file"),
                "{stderr}"
            );
        }
    }
    let workspace = Workspace::new(&test_config("http://127.0.0.1:9"), &test_partitions(10));
    std::fs::remove_file(workspace.path().join("bin/scontrol")).unwrap();
    let output = workspace.run("resume", &["--check"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("SlurmBinPath:") && stderr.contains("scontrol is not an executable file"),
        "{stderr}"
    );
    assert!(
        workspace
            .run("generate-conf", &["--check"])
            .status
            .success(),
        "generate-conf needs no scontrol"
    );
}

#[test]
fn resume_without_a_log_launches_nothing_and_fails_its_nodes() {
    let workspace = Workspace::new(&test_config("http://127.0.0.1:9"), &test_partitions(10));
    set_log_file(&workspace, "/dev/full");
    let output = workspace.run("resume", &["aws-od-[0-1]"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let updates = workspace.scontrol_updates();
    assert!(
        updates
            .iter()
            .any(|u| u.contains(&"nodename=aws-od-[0-1]".to_string())
                && u.contains(&"state=DOWN".to_string())
                && u.iter()
                    .any(|a| a.starts_with("reason=(Code:LogFileUnavailable)"))),
        "{updates:?}"
    );
    assert!(
        updates
            .iter()
            .any(|u| u.contains(&"state=POWER_DOWN_FORCE".to_string())),
        "{updates:?}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Launching nothing"), "{stderr}");
}

#[test]
fn extra_arguments_and_runs_with_nothing_of_ours_are_reported() {
    let workspace = Workspace::new(&test_config("http://127.0.0.1:9"), &test_partitions(10));
    let output = workspace.run("suspend", &["x[0-65535]y[0-15]", "extra", "words"]);
    assert!(output.status.success(), "{output:?}");
    let log = workspace.log();
    assert!(
        log.contains("Ignoring 2 argument(s) after the hostlist: extra words"),
        "{log}"
    );
    assert!(
        log.contains("Skipping 1048576 names that are not nodes of ours; the first 5:"),
        "{log}"
    );
    assert!(
        log.lines().count() < 10,
        "one line for a million names: {log}"
    );
    assert!(
        log.contains(
            "Suspend summary: asked 0, terminated 0, pooled 0, without instance 0, failed 0, not ours 1048576"
        ),
        "{log}"
    );
    let output = workspace.run("resume", &["aws-ondemand-[0-18446744073709551615]"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        workspace.log().contains("range too large"),
        "{}",
        workspace.log()
    );
}

#[test]
fn log_lines_carry_program_and_pid_and_the_file_is_group_writable() {
    let workspace = Workspace::new(&test_config("http://127.0.0.1:9"), &test_partitions(10));
    let output = workspace.run("suspend", &["not-ours"]);
    assert!(output.status.success(), "{output:?}");
    let log = workspace.log();
    let line = log
        .lines()
        .find(|l| l.contains("Hostlist: not-ours"))
        .expect("a Hostlist line");
    // 2026-11-21 12:00:00,123 - suspend[4242] - INFO - Hostlist: not-ours
    let parts: Vec<&str> = line.splitn(4, " - ").collect();
    assert_eq!(parts.len(), 4, "{line}");
    assert_eq!(parts[0].len(), "2026-11-21 12:00:00,123".len(), "{line}");
    assert!(
        parts[1].starts_with("suspend[") && parts[1].ends_with(']'),
        "{line}"
    );
    assert_eq!(parts[2], "INFO");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(workspace.log_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o060, 0o060, "group read/write: {mode:o}");
    assert!(
        log.contains(
            "WARNING - Skipping \"not-ours\" is not of the form <partition>-<nodegroup>-<id>"
        ),
        "{log}"
    );
}
