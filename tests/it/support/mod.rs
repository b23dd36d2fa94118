//! A fresh folder per test with a configuration, a recording stand-in for
//! `scontrol`, and the real binaries run in a hermetic environment.

pub mod fake_ec2;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

pub use fake_ec2::FakeEc2;

/// Records each call as one line of tab-separated arguments; answers
/// `show config` with a ClusterName and `show nodes` from nodes.txt; fails an
/// update while `fail-update` exists.
const FAKE_SCONTROL: &str = r#"#!/bin/bash
here="$(dirname "$0")"
(IFS=$'\t'; echo "$*") >> "$here/scontrol.calls"
if [ "$1" = --version ]; then echo "slurm $(cat "$here/version" 2>/dev/null || echo 22.05.8)"; exit 0; fi
if [ "$1" = show ] && [ "$2" = config ]; then echo "ClusterName             = testcluster"; exit 0; fi
if [ "$1" = show ] && { [ "$2" = nodes ] || [ "$2" = node ]; }; then cat "$here/nodes.txt" 2>/dev/null; exit 0; fi
if [ "$1" = update ] && [ -s "$here/timeouts" ] && [ "$(cat "$here/timeouts")" -gt 0 ]; then
    echo $(( $(cat "$here/timeouts") - 1 )) > "$here/timeouts"
    echo "slurm_update error: Socket timed out on send/recv operation" >&2; exit 1
fi
if [ "$1" = update ] && [ -e "$here/fail-update" ]; then echo "slurm_update error: Invalid node state specified" >&2; exit 1; fi
exit 0
"#;

/// Answers `squeue` with squeue.txt (as `%A|%u|%a` lines), recording its arguments.
const FAKE_SQUEUE: &str = r#"#!/bin/bash
here="$(dirname "$0")"
(IFS=$'\t'; echo "$*") >> "$here/squeue.calls"
cat "$here/squeue.txt" 2>/dev/null
exit 0
"#;

pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new(config: &Value, partitions: &Value) -> Workspace {
        let dir = tempfile::tempdir().expect("temporary folder");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin folder");
        let scontrol = bin.join("scontrol");
        std::fs::write(&scontrol, FAKE_SCONTROL).expect("fake scontrol");
        std::fs::set_permissions(&scontrol, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let squeue = bin.join("squeue");
        std::fs::write(&squeue, FAKE_SQUEUE).expect("fake squeue");
        std::fs::set_permissions(&squeue, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let workspace = Workspace { dir };
        workspace.write_config(config, partitions);
        workspace
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write_config(&self, config: &Value, partitions: &Value) {
        let mut config = config.clone();
        config["SlurmBinPath"] = json!(self.path().join("bin"));
        config["LogFileName"] = json!(self.log_path());
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_string_pretty(&config).unwrap(),
        )
        .unwrap();
        std::fs::write(
            self.path().join("partitions.json"),
            serde_json::to_string_pretty(partitions).unwrap(),
        )
        .unwrap();
    }

    pub fn log_path(&self) -> PathBuf {
        self.path().join("slurm-ec2.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Each scontrol call, as its list of arguments.
    pub fn scontrol_calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.path().join("bin/scontrol.calls"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    pub fn scontrol_updates(&self) -> Vec<Vec<String>> {
        self.scontrol_calls()
            .into_iter()
            .filter(|c| c[0] == "update")
            .collect()
    }

    pub fn fail_scontrol_updates(&self) {
        std::fs::write(self.path().join("bin/fail-update"), "").unwrap();
    }

    /// Runs a binary of the package with `--config-dir` and a bare environment,
    /// as slurmctld would.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        run_binary(self.path(), program, args)
    }

    /// Runs a binary as slurmctld runs resume: `SLURM_RESUME_FILE` names `resume_file`.
    pub async fn run_with_resume_file(
        &self,
        program: &'static str,
        args: &[&str],
        resume_file: &Path,
    ) -> Output {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let path = self.path().to_path_buf();
        let env = vec![(
            "SLURM_RESUME_FILE".to_string(),
            resume_file.display().to_string(),
        )];
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            run_binary_with_env(&path, program, &refs, &env)
        })
        .await
        .expect("the blocking task ends")
    }

    /// Runs a binary from async test code without blocking the mock server.
    pub async fn run_async(&self, program: &'static str, args: &[&str]) -> Output {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let path = self.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            run_binary(&path, program, &refs)
        })
        .await
        .expect("the blocking task ends")
    }
}

pub fn binary(program: &str) -> &'static str {
    match program {
        "resume" => env!("CARGO_BIN_EXE_resume"),
        "suspend" => env!("CARGO_BIN_EXE_suspend"),
        "change-state" => env!("CARGO_BIN_EXE_change-state"),
        "generate-conf" => env!("CARGO_BIN_EXE_generate-conf"),
        "get-nodename" => env!("CARGO_BIN_EXE_get-nodename"),
        "slurm-ec2" => env!("CARGO_BIN_EXE_slurm-ec2"),
        other => panic!("no binary {other}"),
    }
}

pub fn run_binary(dir: &Path, program: &str, args: &[&str]) -> Output {
    run_binary_with_env(dir, program, args, &[])
}

pub fn run_binary_with_env(
    dir: &Path,
    program: &str,
    args: &[&str],
    env: &[(String, String)],
) -> Output {
    command(dir, binary(program), args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("the binary runs")
}

/// `program` (a path) with `--config-dir dir` and `args`, in a bare
/// environment, as slurmctld would run it.
pub fn command(dir: &Path, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command
        .env_clear()
        .arg("--config-dir")
        .arg(dir)
        .args(args)
        .env("PATH", "/usr/bin:/bin")
        .current_dir(dir);
    command
}

/// A config.json for tests: EC2 at `endpoint`, test credentials, and few
/// attempts per call, so that a test of giving up ends soon.
pub fn test_config(endpoint: &str) -> Value {
    json!({
        "LogLevel": "DEBUG",
        "ClusterName": "testcluster",
        "SlurmBinPath": "/placeholder",
        "ResumeBudgetSeconds": 20,
        "Ec2MaxAttempts": 4,
        "Ec2TimeoutSeconds": 10,
        "Environment": {
            "AWS_ENDPOINT_URL_EC2": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true"
        },
        "SlurmConf": {
            "PrivateData": "CLOUD",
            "ResumeProgram": "/opt/slurm-ec2/resume",
            "SuspendProgram": "/opt/slurm-ec2/suspend",
            "ResumeRate": 0,
            "SuspendRate": 0,
            "ResumeTimeout": 60,
            "SuspendTime": 350,
            "TreeWidth": 60000
        }
    })
}

/// The tags resume gives an instance of node `name` of group `aws-od`.
pub fn our_tags(name: &str) -> Vec<(&str, &str)> {
    vec![
        ("Name", name),
        ("slurm-ec2:cluster", "testcluster"),
        ("slurm-ec2:partition", "aws"),
        ("slurm-ec2:node-group", "od"),
    ]
}

/// One partition `aws` with an on-demand group `od` and a spot group `sp`.
pub fn test_partitions(max_nodes: u32) -> Value {
    let group = |name: &str, purchasing: &str, options: &str| {
        json!({
            "NodeGroupName": name,
            "MaxNodes": max_nodes,
            "Region": "us-east-1",
            "SlurmSpecifications": {"CPUs": "2"},
            "PurchasingOption": purchasing,
            options: {"AllocationStrategy": "lowest-price"},
            "LaunchTemplateSpecification": {"LaunchTemplateName": "compute", "Version": "$Latest"},
            "LaunchTemplateOverrides": [{"InstanceType": "c5.xlarge"}, {"InstanceType": "c4.xlarge"}],
            "SubnetIds": ["subnet-11111111", "subnet-22222222"],
            "Tags": [
                {"Key": "Team", "Value": "hpc"},
                {"Key": "Address", "Value": "{ip_address}/{hostname}/{node_name}"}
            ]
        })
    };
    json!({"Partitions": [{"PartitionName": "aws", "NodeGroups": [
        group("od", "on-demand", "OnDemandOptions"),
        group("sp", "spot", "SpotOptions")
    ]}]})
}
