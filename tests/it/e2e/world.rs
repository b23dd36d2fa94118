//! Access to the world `tests/e2e/harness.py up` started: a real slurmctld,
//! moto behind the fault proxy, and the instance player.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use slurm_ec2::slurm::{NodeInfo, SlurmVersion, parse_nodes};

/// Scenarios share one slurmctld and run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub struct World {
    pub dir: PathBuf,
    pub bin: PathBuf,
    /// The Slurm this world runs, as `scontrol --version` says (`24.11.5`).
    pub slurm_version: SlurmVersion,
    /// Runs a command where slurmctld runs (`chroot <root>` for 24.11), so
    /// that Slurm's clients match its version and paths resolve alike.
    prefix: Vec<String>,
    slurm_conf: PathBuf,
    python: PathBuf,
    harness: PathBuf,
    _serial: MutexGuard<'static, ()>,
}

/// The world `scripts/test` started. The scenarios are `#[ignore]`d, so a
/// plain `cargo test` reports them as not run; one asked for without a world
/// fails, never passes.
pub fn world() -> World {
    let dir = std::env::var_os("SLURM_EC2_E2E_DIR")
        .map(PathBuf::from)
        .expect(
            "SLURM_EC2_E2E_DIR is unset: end-to-end scenarios run in the world scripts/test starts",
        );
    let serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let world: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("world.json")).expect("world.json"))
            .expect("world.json is JSON");
    let python = std::env::var_os("SLURM_EC2_PYTHON")
        .map_or_else(|| PathBuf::from("python3"), PathBuf::from);
    let version = world["slurm_version"].as_str().unwrap_or("22.05.8");
    let prefix = world["prefix"]
        .as_array()
        .map(|words| {
            words
                .iter()
                .filter_map(|w| w.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    eprintln!("end-to-end world: Slurm {version}");
    World {
        slurm_version: SlurmVersion::parse(version).expect("world.json has Slurm's version"),
        prefix,
        bin: PathBuf::from(world["bin"].as_str().expect("bin")),
        slurm_conf: PathBuf::from(world["slurm_conf"].as_str().expect("slurm_conf")),
        harness: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/harness.py"),
        dir,
        python,
        _serial: serial,
    }
}

pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {} s waiting for {what}",
            timeout.as_secs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl World {
    /// A command where slurmctld runs it: inside the world's Debian root, if any.
    fn command(&self, program: &Path) -> Command {
        match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(program);
                command
            }
            None => Command::new(program),
        }
    }

    /// A Slurm client command (`scontrol`, `sbatch`, …) against this world's slurmctld.
    pub fn slurm(&self, program: &str, args: &[&str]) -> Output {
        self.command(&Path::new("/usr/bin").join(program))
            .args(args)
            .env("SLURM_CONF", &self.slurm_conf)
            .output()
            .unwrap_or_else(|e| panic!("{program} runs: {e}"))
    }

    /// Runs scontrol, retrying while slurmctld is too busy to answer in time.
    pub fn scontrol(&self, args: &[&str]) -> String {
        let mut output = self.slurm("scontrol", args);
        for _ in 0..5 {
            if output.status.success()
                || !String::from_utf8_lossy(&output.stderr).contains("timed out")
            {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            output = self.slurm("scontrol", args);
        }
        assert!(output.status.success(), "scontrol {args:?}: {output:?}");
        text(&output)
    }

    pub fn node(&self, name: &str) -> NodeInfo {
        let nodes = parse_nodes(&self.scontrol(&["show", "node", name, "-o"]));
        nodes
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("node {name} exists"))
    }

    pub fn sbatch(&self, args: &[&str]) -> String {
        // Job output goes to the world's folder, not to the working directory.
        let output = format!("--output={}/slurm-%j.out", self.dir.display());
        let mut all = vec!["--parsable", output.as_str()];
        all.extend_from_slice(args);
        let output = self.slurm("sbatch", &all);
        assert!(output.status.success(), "sbatch {args:?}: {output:?}");
        text(&output)
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// A field of `scontrol show job -o`, such as JobState or Restarts.
    pub fn job_field(&self, job: &str, field: &str) -> String {
        let line = self.scontrol(&["show", "job", job, "-o"]);
        let prefix = format!("{field}=");
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(&prefix))
            .unwrap_or_default()
            .to_string()
    }

    pub fn cancel(&self, job: &str) {
        self.slurm("scancel", &[job]);
    }

    /// Runs one of our programs as slurmctld does: bare environment, no flags.
    /// Runs one of our programs as slurmctld or cron would. change-state is
    /// run again while another scenario's run holds its lock (it then exits
    /// at once, having done nothing), so that what follows sees a real run.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        let started = Instant::now();
        loop {
            let child = self
                .command(&self.bin.join(program))
                .args(args)
                .env_clear()
                .env("SLURM_CONF", &self.slurm_conf)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("{program} runs: {e}"));
            let pid = child.id();
            let output = child.wait_with_output().expect("its output");
            let blocked =
                format!("change_state[{pid}] - INFO - Another change-state run holds the lock");
            let retry = program == "change-state" && self.plugin_log().contains(&blocked);
            if !retry || started.elapsed() > Duration::from_secs(120) {
                return output;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn harness(&self, args: &[&str]) -> String {
        let output = Command::new(&self.python)
            .arg(&self.harness)
            .args(args)
            .arg("--dir")
            .arg(&self.dir)
            .output()
            .expect("the harness runs");
        assert!(output.status.success(), "harness {args:?}: {output:?}");
        text(&output)
    }

    /// Every instance in the emulator: `{id, state, ip, launch, tags}`.
    pub fn instances(&self) -> Vec<Value> {
        serde_json::from_str(&self.harness(&["instances"])).expect("instances as JSON")
    }

    /// The live (pending or running) instances named `name`.
    pub fn live_named(&self, name: &str) -> Vec<Value> {
        self.instances()
            .into_iter()
            .filter(|i| {
                i["tags"]["Name"] == name && (i["state"] == "running" || i["state"] == "pending")
            })
            .collect()
    }

    pub fn add_foreign_instance(&self, name: &str, cluster: &str) -> String {
        self.harness(&["add-instance", "--name", name, "--cluster", cluster])
            .trim()
            .to_string()
    }

    /// An instance of this cluster named `name` that the player never boots.
    pub fn add_unbooted_instance(&self, name: &str) -> String {
        self.harness(&[
            "add-instance",
            "--name",
            name,
            "--cluster",
            "e2e",
            "--no-boot",
        ])
        .trim()
        .to_string()
    }

    /// An instance of this cluster launched from the world's launch template
    /// with `tags` (besides the cluster's and an empty Name), stopped at once
    /// when `stopped`, never booted by the player.
    pub fn add_tagged_instance(&self, tags: &[(&str, String)], stopped: bool) -> String {
        let mut args = vec![
            "add-instance".to_string(),
            "--name".to_string(),
            String::new(),
            "--cluster".to_string(),
            "e2e".to_string(),
            "--no-boot".to_string(),
            "--template".to_string(),
        ];
        for (key, value) in tags {
            args.push("--tag".to_string());
            args.push(format!("{key}={value}"));
        }
        if stopped {
            args.push("--stopped".to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.harness(&args).trim().to_string()
    }

    /// A new version of the world's launch template, which every node
    /// group launches (`$Latest`).
    pub fn new_template_version(&self) -> u64 {
        self.harness(&["new-template-version"])
            .trim()
            .parse()
            .expect("a version number")
    }

    /// A copy of the programs' configuration with `config.json` and
    /// `partitions.json` changed, in a folder of its own, for `--config-dir`.
    pub fn edited_config(
        &self,
        name: &str,
        edit_config: impl FnOnce(&mut Value),
        edit_partitions: impl FnOnce(&mut Value),
    ) -> PathBuf {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).expect("a config folder");
        let read = |file: &str| -> Value {
            serde_json::from_str(&std::fs::read_to_string(self.bin.join(file)).expect(file))
                .expect("JSON")
        };
        let (mut config, mut partitions) = (read("config.json"), read("partitions.json"));
        edit_config(&mut config);
        edit_partitions(&mut partitions);
        std::fs::write(dir.join("config.json"), config.to_string()).expect("written");
        std::fs::write(dir.join("partitions.json"), partitions.to_string()).expect("written");
        dir
    }

    /// Terminates the live instances named `name` and returns their ids.
    pub fn terminate_named(&self, name: &str) -> Vec<String> {
        serde_json::from_str(&self.harness(&["terminate", "--name", name])).expect("ids as JSON")
    }

    /// What DescribeInstanceStatus reports of `instance` at the proxy from
    /// now on: `{"impaired_since": …}`, `{"events": [[code, description, not before]]}`.
    pub fn health(&self, instance: &str, health: Value) {
        self.set_in("health.json", instance, health);
    }

    /// What the metadata of `instance` announces from now on:
    /// `{"instance_action": {...}, "rebalance": {...}, "scheduled": [...]}`.
    pub fn notice(&self, instance: &str, notices: Value) {
        self.set_in("notices.json", instance, notices);
    }

    /// Tells the player to boot `node`'s instances or not (`skip` in `player.json`).
    pub fn player_skips(&self, node: &str, skip: bool) {
        let path = self.dir.join("player.json");
        let mut control: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("player.json"))
                .expect("JSON");
        let mut skipped: Vec<Value> = control["skip"].as_array().cloned().unwrap_or_default();
        skipped.retain(|name| name != node);
        if skip {
            skipped.push(Value::from(node));
        }
        control["skip"] = Value::Array(skipped);
        std::fs::write(&path, control.to_string()).expect("player.json");
    }

    /// Queues faults for a node group (`<partition>-<group>`) at the proxy.
    pub fn faults(&self, group: &str, faults: Value) {
        self.set_in("faults.json", group, faults);
    }

    /// Sets `key` of the JSON object in the world's file `name`, which the
    /// proxy reads on every request.
    fn set_in(&self, name: &str, key: &str, value: Value) {
        let path = self.dir.join(name);
        let mut all: Value = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        all[key] = value;
        std::fs::write(&path, all.to_string()).expect(name);
    }

    /// Turns the proxy's EC2 model on (token buckets, latency, eventual
    /// consistency: `Realism` in harness.py) until the guard is dropped.
    pub fn realism(&self) -> RealismGuard {
        let path = self.dir.join("realism.json");
        std::fs::write(&path, r#"{"enabled": true}"#).expect("realism.json");
        RealismGuard { path }
    }

    /// Every EC2 request the proxy saw: `{action, filter_values, status, group?}`.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn player_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/player.log")).unwrap_or_default()
    }

    /// slurmctld's own log: what it was told, whatever it did next.
    pub fn slurmctld_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/slurmctld.log")).unwrap_or_default()
    }

    pub fn plugin_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/slurm-ec2.log")).unwrap_or_default()
    }

    /// The lines of `EventLogFile`, which every program appends to.
    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("log/events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
            .collect()
    }

    /// The owner and mode of a file of the world's folder.
    pub fn owner_and_mode(&self, path: &str) -> (u32, u32) {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = std::fs::metadata(self.dir.join(path)).expect(path);
        (meta.uid(), meta.permissions().mode() & 0o7777)
    }
}

/// While it lives, the proxy answers as the real EC2 would.
pub struct RealismGuard {
    path: PathBuf,
}

impl Drop for RealismGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
