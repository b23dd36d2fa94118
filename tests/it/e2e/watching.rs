//! What an administrator watches and pays: the metrics agree with Slurm,
//! EC2 and the event log, and pass `promtool check metrics`; the cost of two
//! jobs of known duration comes to the cent, by job, account and user.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use super::*;

/// The world's price of an On-Demand t3.micro hour (`Prices` in its config.json).
const PRICE: f64 = 36.0;

/// One sample: its name, labels and value.
type Sample = (String, BTreeMap<String, String>, f64);

/// The samples of a text in Prometheus' format, once promtool passed it.
struct Metrics(Vec<Sample>);

impl Metrics {
    fn checked(text: &str) -> Metrics {
        promtool_check(text);
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a value");
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => (name, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                let labels = labels
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair.split_once('=').expect("key=value");
                        (key.to_string(), value.trim_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels, value.parse().expect("a number"))
            })
            .collect();
        Metrics(samples)
    }

    /// The sum of the samples of `name` whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, value)| value)
            .sum()
    }

    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.0.iter().any(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

/// `promtool check metrics` (Debian's, from `SLURM_EC2_PROMTOOL`) accepts `text`.
fn promtool_check(text: &str) {
    let promtool = std::env::var("SLURM_EC2_PROMTOOL")
        .expect("SLURM_EC2_PROMTOOL names promtool (scripts/test sets it)");
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{promtool} runs: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("promtool reads");
    let output = child.wait_with_output().expect("promtool ends");
    assert!(
        output.status.success(),
        "promtool check metrics: {output:?}\n{text}"
    );
}

/// `slurm-ec2 metrics`, checked by promtool.
fn metrics(w: &world::World) -> Metrics {
    let output = w.run("slurm-ec2", &["metrics"]);
    assert!(output.status.success(), "slurm-ec2 metrics: {output:?}");
    Metrics::checked(&String::from_utf8_lossy(&output.stdout))
}

fn cost_partition() -> [(&'static str, &'static str); 2] {
    [("partition", "cost"), ("node_group", "a")]
}

/// The event log's events of `kind` about the cost partition's nodes.
fn cost_events(w: &world::World, kind: &str) -> Vec<Value> {
    w.events()
        .into_iter()
        .filter(|e| {
            e["event"] == kind && e["node"].as_str().is_some_and(|n| n.starts_with("cost-a-"))
        })
        .collect()
}

fn millis(time: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(time)
        .expect("an RFC 3339 time")
        .timestamp_millis()
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("a time")
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `slurm-ec2 cost --json` in a window, its rows by key.
fn cost(w: &world::World, by: &str, since: i64, until: i64) -> BTreeMap<String, Value> {
    let (since, until) = (rfc3339(since), rfc3339(until));
    let args = [
        "cost", "--by", by, "--json", "--since", &since, "--until", &until,
    ];
    let output = w.run("slurm-ec2", &args);
    assert!(output.status.success(), "slurm-ec2 {args:?}: {output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert!(
        report["prices"].as_str().unwrap().contains("estimates"),
        "{report:#}"
    );
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| (row["key"].as_str().unwrap().to_string(), row.clone()))
        .collect()
}

/// The hours of each instance from the event log, within the window: from
/// a launch to its termination, or to its move into a warm pool (a start
/// from the pool is a launch again): what the cost must come to. Each
/// interval comes with the launch that began it.
fn logged_hours(w: &world::World, since: i64, until: i64) -> Vec<(Value, f64)> {
    let mut open: BTreeMap<String, (Value, i64)> = BTreeMap::new();
    let mut hours = Vec::new();
    let mut close = |launch: Value, start: i64, end: i64| {
        let (start, end) = (start.max(since), end.min(until));
        if end > start {
            hours.push((launch, (end - start) as f64 / 3_600_000.0));
        }
    };
    for event in w.events() {
        let Some(id) = event["instance"].as_str().map(str::to_string) else {
            continue;
        };
        let at = millis(event["time"].as_str().unwrap());
        match event["event"].as_str() {
            Some("launch") if !open.contains_key(&id) => {
                open.insert(id, (event, at));
            }
            Some("termination" | "pooled") => {
                if let Some((launch, start)) = open.remove(&id) {
                    close(launch, start, at);
                }
            }
            _ => {}
        }
    }
    for (launch, start) in open.into_values() {
        close(launch, start, until);
    }
    hours
}

fn cents(dollars: f64) -> i64 {
    (dollars * 100.0).round() as i64
}

/// A row's hours and cost are `hours` and what they cost at [`PRICE`].
fn assert_row(row: &Value, hours: f64, what: &str) {
    let got = row["instance_hours"].as_f64().unwrap();
    assert!(
        (got - hours).abs() < 1e-9,
        "{what}: {got} h, not {hours} h: {row}"
    );
    let cost = row["cost_usd"].as_f64().expect("priced");
    assert_eq!(cents(cost), cents(hours * PRICE), "{what}: {row}");
}

#[test]
#[ignore = "end-to-end: needs the world scripts/test starts"]
fn metrics_and_the_cost_of_two_jobs() {
    let w = world();
    let since = now_millis() - 1000;
    let physics = w.sbatch(&[
        "-p",
        "cost",
        "-N",
        "1",
        "--account=physics",
        "--wrap",
        "sleep 30",
    ]);
    let chemistry = w.sbatch(&[
        "-p",
        "cost",
        "-N",
        "1",
        "--account=chemistry",
        "--wrap",
        "sleep 30",
    ]);

    // While both run: two nodes allocated, two instances running, and the
    // launches the log holds.
    wait_for(
        "the metrics of both jobs running",
        Duration::from_secs(90),
        || {
            let running = [&physics, &chemistry]
                .iter()
                .all(|job| w.job_field(job, "JobState") == "RUNNING");
            let live = w
                .instances()
                .into_iter()
                .filter(|i| i["tags"]["slurm-ec2:partition"] == "cost" && i["state"] == "running")
                .count();
            let m = metrics(&w);
            let [partition, group] = cost_partition();
            let allocated = [partition, group, ("state", "allocated")];
            let instances = [
                partition,
                group,
                ("state", "running"),
                ("purchasing_option", "on_demand"),
            ];
            let launches = cost_events(&w, "launch").len() as f64;
            (running
                && m.sum("slurm_ec2_nodes", &allocated) == 2.0
                && m.sum("slurm_ec2_instances", &instances) == live as f64
                && live == 2
                && m.sum("slurm_ec2_launches_total", &cost_partition()) == launches)
                .then_some(())
        },
    );
    for job in [&physics, &chemistry] {
        assert_eq!(
            job_end(&w, job, "the job to end", Duration::from_secs(60)),
            "COMPLETED"
        );
    }
    wait_for("both instances terminated", Duration::from_secs(90), || {
        let nodes = ["cost-a-0", "cost-a-1"];
        (nodes
            .iter()
            .all(|n| idle_powered_down(&w.node(n)) && w.live_named(n).is_empty()))
        .then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let until = now_millis();
    the_cost_comes_to_the_cent(
        &w,
        &[(&physics, "physics"), (&chemistry, "chemistry")],
        since,
        until,
    );
    an_orphan_is_counted_then_reaped(&w);
    a_failed_launch_and_its_hold_are_counted(&w);
}

/// `--by job` gives each job its instance's hours from launch to
/// termination, and their price to the cent; `--by account` gives the same
/// per account, `--by user` sums every instance root's jobs had.
fn the_cost_comes_to_the_cent(
    w: &world::World,
    jobs: &[(&String, &str); 2],
    since: i64,
    until: i64,
) {
    let logged = logged_hours(w, since, until);
    let by_job = cost(w, "job", since, until);
    let by_account = cost(w, "account", since, until);
    for (job, account) in jobs {
        let id: u64 = job.parse().unwrap();
        let (_, hours) = logged
            .iter()
            .find(|(launch, _)| launch["job_ids"] == json!([id]))
            .unwrap_or_else(|| panic!("a launch for job {job}: {logged:?}"));
        // The instance lived through the job's 10 s, and not a minute more
        // than boot, job and SuspendTime.
        assert!(
            (10.0..150.0).contains(&(hours * 3600.0)),
            "job {job}: {hours} h"
        );
        let row = &by_job[job.as_str()];
        assert_eq!(row["instances"], 1, "{row}");
        assert_row(row, *hours, &format!("job {job}"));
        assert_row(&by_account[*account], *hours, account);
        eprintln!(
            "job {job} ({account}): {:.6} h, {} cents",
            hours,
            cents(hours * PRICE)
        );
    }
    let roots: f64 = logged
        .iter()
        .filter(|(launch, _)| launch["user"] == "root")
        .map(|(_, hours)| hours)
        .sum();
    assert_row(&cost(w, "user", since, until)["root"], roots, "root");
}

/// A planted instance named for no node shows as an orphan; change-state
/// reaps it, and the metrics file it writes counts the termination.
fn an_orphan_is_counted_then_reaped(w: &world::World) {
    let orphan = w.add_unbooted_instance("cost-a-99");
    std::thread::sleep(Duration::from_secs(6)); // past LaunchGraceSeconds
    let m = metrics(w);
    assert!(m.sum("slurm_ec2_orphan_instances", &[]) >= 1.0);
    let started = now_millis() / 1000;
    assert!(
        w.run("change-state", &[]).status.success(),
        "{}",
        w.plugin_log()
    );
    let reaped = w
        .events()
        .into_iter()
        .filter(|e| e["event"] == "termination" && e["why"] == "orphan")
        .collect::<Vec<_>>();
    assert!(
        reaped.iter().any(|e| e["instance"] == orphan.as_str()),
        "{reaped:?}"
    );
    let file = std::fs::read_to_string(w.dir.join("metrics/slurm-ec2.prom")).expect("MetricsFile");
    let written = Metrics::checked(&file);
    let counted = written.sum("slurm_ec2_terminations_total", &[("why", "orphan")]);
    assert!(
        (1.0..=reaped.len() as f64).contains(&counted),
        "{counted} of {reaped:?}"
    );
    let last = written.sum(
        "slurm_ec2_last_run_timestamp_seconds",
        &[("program", "change_state")],
    );
    assert!(
        last >= started as f64,
        "change-state's run recorded: {file}"
    );
}

/// A launch EC2 has no capacity for is counted with its code, and the hold
/// of its group shows with its end.
fn a_failed_launch_and_its_hold_are_counted(w: &world::World) {
    w.faults("cost-a", json!([{"capacity": 0}]));
    assert_eq!(w.run("resume", &["cost-a-0"]).status.code(), Some(1));
    w.faults("cost-a", json!([]));
    let failures = cost_events(w, "failure");
    assert_eq!(failures.len(), 1, "{failures:?}");
    let m = metrics(w);
    let [partition, group] = cost_partition();
    let code = [partition, group, ("code", "InsufficientInstanceCapacity")];
    assert_eq!(m.sum("slurm_ec2_launch_failures_total", &code), 1.0);
    let hold = [partition, group, ("kind", "capacity")];
    assert!(
        m.has("slurm_ec2_hold_end_timestamp_seconds", &hold),
        "{:?}",
        m.0
    );
    let ends = m.sum("slurm_ec2_hold_end_timestamp_seconds", &hold);
    assert!(
        ends > (now_millis() / 1000) as f64,
        "the hold ends in the future: {ends}"
    );
}
