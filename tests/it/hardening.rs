//! The head-node programs against what a member of the `slurm` group can
//! plant in the shared folders (links, FIFOs), against files another user
//! created first, and against output that cannot be written.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::resume_wire::setup;
use crate::support::{Workspace, binary, command, our_tags, test_config, test_partitions};

/// The files the programs share, as `config_with_events` places them.
const SHARED: [&str; 4] = [
    "slurm-ec2.log",
    "events.jsonl",
    "slurm-ec2-change-state.lock",
    "slurm-ec2-pace-us-east-1.state",
];

/// The runs each planted file is tried against: a check, a reconciliation
/// and a suspend (EC2 at a closed port answers at once).
const RUNS: [(&str, &[&str]); 4] = [
    ("change-state", &["--check"]),
    ("resume", &["--check"]),
    ("change-state", &[]),
    ("suspend", &["aws-od-0"]),
];

fn edit_config(workspace: &Workspace, edit: impl FnOnce(&mut Value)) {
    let path = workspace.path().join("config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, config.to_string()).unwrap();
}

fn workspace_with_events() -> Workspace {
    let workspace = Workspace::new(&test_config("http://127.0.0.1:9"), &test_partitions(10));
    let events = workspace.path().join("events.jsonl");
    edit_config(&workspace, |config| config["EventLogFile"] = json!(events));
    workspace
}

/// Runs `command`, killed and failed if it is still running after `limit`.
fn within(mut command: Command, limit: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let started = Instant::now();
    while child.try_wait().expect("waitable").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} still ran after {limit:?}: it hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("its output")
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_fifo_in_place_of_a_shared_file_hangs_no_program() {
    for planted in SHARED {
        let workspace = workspace_with_events();
        mkfifo(&workspace.path().join(planted));
        for (program, args) in RUNS {
            let run = command(workspace.path(), binary(program), args);
            let output = within(run, Duration::from_secs(60));
            let refused =
                args == ["--check"] && matches!(planted, "slurm-ec2.log" | "events.jsonl");
            if refused {
                assert_eq!(output.status.code(), Some(2), "{program} {planted}");
                assert!(stderr(&output).contains("a FIFO"), "{}", stderr(&output));
            }
        }
    }
}

#[test]
fn a_planted_link_is_never_followed() {
    for planted in SHARED {
        let workspace = workspace_with_events();
        let secret = workspace.path().join("secret");
        std::fs::write(&secret, "private\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        // Where a created file would lock everyone out, as /etc/nologin would.
        let nologin = workspace.path().join("nologin");
        let target = match planted {
            "events.jsonl" => &nologin,
            _ => &secret,
        };
        std::os::unix::fs::symlink(target, workspace.path().join(planted)).unwrap();
        for (program, args) in RUNS {
            let run = command(workspace.path(), binary(program), args);
            within(run, Duration::from_secs(60));
        }
        assert_eq!(
            std::fs::read_to_string(&secret).unwrap(),
            "private\n",
            "{planted}"
        );
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{planted}: the link's target was chmod-ed");
        assert!(
            !nologin.exists(),
            "{planted}: a file was created through the link"
        );
    }
}

#[test]
fn check_refuses_shared_files_a_run_could_not_use() {
    let cases: [(&str, Value, &str); 6] = [
        (
            "EventLogFile",
            json!("/nonexistent-folder/events.jsonl"),
            "EventLogFile: cannot open EventLogFile",
        ),
        (
            "EventLogFile",
            json!("/tmp"),
            "EventLogFile: cannot open EventLogFile",
        ),
        ("EventLogFile", json!("/dev/full"), "a character device"),
        (
            "LogFileName",
            json!("relative.log"),
            "LogFileName: must be an absolute path",
        ),
        (
            "StateDirectory",
            json!("/nonexistent-folder"),
            "StateDirectory: StateDirectory /nonexistent-folder",
        ),
        (
            "StateDirectory",
            json!("/tmp"),
            "is writable by its group or by others",
        ),
    ];
    for (key, value, message) in cases {
        let workspace = Workspace::new(&test_config("http://127.0.0.1:9"), &test_partitions(10));
        edit_config(&workspace, |config| config[key] = value.clone());
        for program in ["resume", "suspend", "change-state"] {
            let output = workspace.run(program, &["--check"]);
            assert_eq!(output.status.code(), Some(2), "{program} {key}={value}");
            assert!(
                stderr(&output).contains(message),
                "{key}={value}: {}",
                stderr(&output)
            );
        }
    }
    let workspace = Workspace::new(&test_config("http://127.0.0.1:9"), &test_partitions(10));
    let log = workspace.log_path();
    edit_config(&workspace, |config| config["EventLogFile"] = json!(log));
    let output = workspace.run("change-state", &["--check"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("EventLogFile: must not be the LogFileName"));
}

/// SlurmUser and its group, as numbers no account of this machine has.
const SLURM_USER: u32 = 45678;
const SLURM_GROUP: u32 = 45679;

fn owner_and_mode(path: &Path) -> (u32, u32, u32) {
    let meta = std::fs::metadata(path).unwrap();
    (meta.uid(), meta.gid(), meta.permissions().mode() & 0o7777)
}

/// As installed: change-state (root) creates the shared files first, every
/// minute; resume and suspend (SlurmUser) must then write them too.
#[tokio::test(flavor = "multi_thread")]
async fn files_root_creates_first_are_written_by_slurm_user_too() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test runs the programs as two users: run it as root"
    );
    let (_server, fake, workspace) = setup(10).await;
    let dir = workspace.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (logs, state) = (dir.join("log"), dir.join("state"));
    std::fs::create_dir(&logs).unwrap();
    std::os::unix::fs::chown(&logs, Some(0), Some(SLURM_GROUP)).unwrap();
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o2775)).unwrap();
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(SLURM_USER), Some(SLURM_GROUP)).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (log, events) = (logs.join("slurm-ec2.log"), logs.join("events.jsonl"));
    edit_config(&workspace, |config| {
        config["LogFileName"] = json!(log);
        config["EventLogFile"] = json!(events);
        config["StateDirectory"] = json!(state);
    });
    // Where SlurmUser can run it from.
    let programs = dir.join("programs");
    std::fs::create_dir(&programs).unwrap();
    let suspend = programs.join("suspend");
    std::fs::copy(binary("suspend"), &suspend).unwrap();
    std::fs::set_permissions(&programs, std::fs::Permissions::from_mode(0o755)).unwrap();
    fake.add_instance(&our_tags("aws-od-0"));
    fake.add_instance(&our_tags("aws-od-1"));
    let run = |node: &'static str, user: Option<(u32, u32)>| {
        let mut run = command(dir, &suspend, &[node]);
        if let Some((uid, gid)) = user {
            run.uid(uid).gid(gid);
        }
        tokio::task::spawn_blocking(move || within(run, Duration::from_secs(60)))
    };
    let by_root = run("aws-od-0", None).await.unwrap();
    assert!(by_root.status.success(), "{}", stderr(&by_root));
    assert_eq!(owner_and_mode(&log), (0, SLURM_GROUP, 0o664));
    assert_eq!(owner_and_mode(&events), (0, SLURM_GROUP, 0o660));
    let pacing = state.join("slurm-ec2-pace-us-east-1.state");
    assert_eq!(owner_and_mode(&pacing), (SLURM_USER, SLURM_GROUP, 0o644));
    let paced_by_root = std::fs::read_to_string(&pacing).unwrap();
    let by_slurm = run("aws-od-1", Some((SLURM_USER, SLURM_GROUP)))
        .await
        .unwrap();
    assert!(by_slurm.status.success(), "{}", stderr(&by_slurm));
    assert!(
        !stderr(&by_slurm).contains("cannot open"),
        "{}",
        stderr(&by_slurm)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("Suspend summary: asked 1, terminated 1")
            .count(),
        2,
        "{text}"
    );
    let lines = std::fs::read_to_string(&events).unwrap();
    assert_eq!(
        lines.matches("\"event\":\"termination\"").count(),
        2,
        "{lines}"
    );
    assert_ne!(
        std::fs::read_to_string(&pacing).unwrap(),
        paced_by_root,
        "SlurmUser paced apart"
    );
    assert!(fake.live().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_the_disk_refuses_stops_resume_launching() {
    let (_server, fake, workspace) = setup(10).await;
    // The log is at the largest size a file may reach: every line is refused.
    let limit: u64 = 1 << 20;
    std::fs::write(workspace.log_path(), vec![b'\n'; limit as usize]).unwrap();
    let mut run = command(workspace.path(), binary("resume"), &["aws-od-0"]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        run.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let bound = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            match libc::setrlimit(libc::RLIMIT_FSIZE, &bound) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let output = tokio::task::spawn_blocking(move || within(run, Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("the log file refused a line"),
        "{}",
        stderr(&output)
    );
    assert!(fake.calls("CreateFleet").is_empty(), "launched with no log");
    let down = workspace
        .scontrol_updates()
        .into_iter()
        .any(|call| call.iter().any(|a| a.contains("(Code:LogFileUnavailable)")));
    assert!(down, "{:?}", workspace.scontrol_calls());
}

#[test]
fn a_result_that_cannot_reach_stdout_is_an_error() {
    let workspace = Workspace::new(&test_config("http://127.0.0.1:9"), &test_partitions(10));
    let mut closed = command(workspace.path(), binary("generate-conf"), &[]);
    // SAFETY: close is async-signal-safe.
    unsafe {
        closed.pre_exec(|| {
            libc::close(libc::STDOUT_FILENO);
            Ok(())
        });
    }
    let output = within(closed, Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("stdout is closed"),
        "{}",
        stderr(&output)
    );
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let output = command(workspace.path(), binary("generate-conf"), &[])
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("No space left"),
        "{}",
        stderr(&output)
    );
}
