//! The schema of `config.json`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::json::join;
use super::model::{ClusterName, Config, LogLevel, MemoryHeadroom, Settings};
use super::walker::{Walker, describe};
use crate::rates::{Bucket, Rate, RateLimits};

const REQUIRED_SLURM_CONF: &[&str] = &[
    "PrivateData",
    "ResumeProgram",
    "SuspendProgram",
    "ResumeRate",
    "SuspendRate",
    "ResumeTimeout",
    "SuspendTime",
    "TreeWidth",
];
/// slurm.conf keys that take YES or NO, so that a JSON boolean may stand for them.
const BOOLEAN_SLURM_CONF: &[&str] = &[
    "AllowSpecResourcesUsage",
    "DisableRootJobs",
    "EnforcePartLimits",
    "TrackWCKey",
    "UsePAM",
];
const DAY: i64 = 86_400;
/// Slurm's default `SuspendTimeout`.
const SLURM_SUSPEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The `LogFileName` string of a config.json text, even one that is otherwise invalid.
pub(super) fn named_log_file(text: &str) -> Option<PathBuf> {
    let json: Value = serde_json::from_str(text).ok()?;
    json.get("LogFileName")?.as_str().map(PathBuf::from)
}

pub(super) fn config_file(w: &mut Walker, dir: &Path, json: &Value) -> Option<Config> {
    let root = w.object(json, "")?;
    let log_level = log_level(w, root);
    let log_file = match w.get(root, "", "LogFileName") {
        None => Some(super::default_log_file(dir)),
        Some(value) => absolute_path(w, value, "LogFileName"),
    };
    let event_log_file = w
        .get(root, "", "EventLogFile")
        .and_then(|value| absolute_path(w, value, "EventLogFile"));
    let metrics_file = w
        .get(root, "", "MetricsFile")
        .and_then(|value| absolute_path(w, value, "MetricsFile"));
    if metrics_file
        .as_ref()
        .is_some_and(|path| path.extension().is_none_or(|e| e != "prom"))
    {
        w.warning(
            "MetricsFile",
            "does not end in .prom: node_exporter's textfile collector reads only *.prom files",
        );
    }
    if let (Some(log), Some(events)) = (&log_file, &event_log_file)
        && log == events
    {
        w.problem(
            "EventLogFile",
            "must not be the LogFileName: the JSON lines and the text log would mix",
        );
    }
    let state_dir = match w.get(root, "", "StateDirectory") {
        None => log_file.as_deref().map(folder_of),
        Some(value) => absolute_path(w, value, "StateDirectory"),
    };
    let slurm_bin = w
        .required(root, "", "SlurmBinPath")
        .and_then(|value| w.path(value, "SlurmBinPath"));
    let slurm_conf = slurm_conf(w, root);
    let cluster_name = w.optional_string(root, "", "ClusterName").and_then(|name| {
        ClusterName::parse(&name)
            .map_err(|why| w.problem("ClusterName", why))
            .ok()
    });
    let environment = w
        .get(root, "", "Environment")
        .and_then(|value| w.object(value, "Environment"))
        .map(|map| environment(w, map))
        .unwrap_or_default();
    let mut settings = settings(w, root, &slurm_conf);
    (settings.on_demand_prices, settings.spot_prices) = prices(w, root);
    settings.pace_dir = state_dir.clone();
    w.unread_keys(root, "", "ignored");
    Some(Config {
        dir: dir.to_path_buf(),
        log_level: log_level?,
        log_file: log_file?,
        event_log_file,
        metrics_file,
        state_dir: state_dir?,
        slurm_bin: slurm_bin?,
        slurm_conf,
        cluster_name,
        environment,
        settings,
        partitions: Vec::new(),
        warnings: Vec::new(),
        validated: super::model::Validated::by_validation(),
    })
}

/// A path that must be absolute: a relative one would depend on the folder
/// slurmctld or cron happens to run the program in.
fn absolute_path(w: &mut Walker, value: &Value, key: &str) -> Option<PathBuf> {
    let path = w.path(value, key)?;
    if !path.is_absolute() {
        w.problem(
            key,
            format!("must be an absolute path, got \"{}\"", path.display()),
        );
        return None;
    }
    if path.file_name().is_none() {
        w.problem(
            key,
            format!("must name a file or folder, got \"{}\"", path.display()),
        );
        return None;
    }
    Some(path)
}

/// The folder of an absolute file path.
fn folder_of(path: &Path) -> PathBuf {
    path.parent().unwrap_or(Path::new("/")).to_path_buf()
}

fn log_level(w: &mut Walker, root: &Map<String, Value>) -> Option<LogLevel> {
    let Some(value) = w.get(root, "", "LogLevel") else {
        return Some(LogLevel::Debug);
    };
    let name = w.string(value, "LogLevel")?;
    let level = LogLevel::parse(&name);
    if level.is_none() {
        let names = LogLevel::NAMES.join(", ");
        w.problem("LogLevel", format!("must be one of {names}, got {name:?}"));
    }
    level
}

fn slurm_conf(w: &mut Walker, root: &Map<String, Value>) -> Vec<(String, String)> {
    let Some(value) = w.required(root, "", "SlurmConf") else {
        return Vec::new();
    };
    if let Some(map) = value.as_object() {
        for key in REQUIRED_SLURM_CONF
            .iter()
            .filter(|k| !map.contains_key(**k))
        {
            w.problem(&join("SlurmConf", key), "required key is missing");
        }
    }
    w.slurm_pairs(value, "SlurmConf", BOOLEAN_SLURM_CONF)
}

/// Seconds from a number or a string of digits (the original accepts both).
fn seconds(value: Option<&String>) -> Option<u64> {
    value.and_then(|v| v.trim().parse::<u64>().ok())
}

/// What `SlurmConf` says of how long Slurm waits: `ResumeTimeout` (the
/// launch grace's default), and the limit after which slurmctld kills a
/// power-save program.
fn slurm_timeouts(w: &mut Walker, slurm_conf: &[(String, String)]) -> (Duration, Duration) {
    let conf_value = |key: &str| slurm_conf.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    // `ResumeTimeout=INFINITE` (25.05): Slurm never gives up on a node and
    // never kills resume; the programs keep the defaults of 300 s.
    let infinite = conf_value("ResumeTimeout").is_some_and(|v| {
        v.trim().eq_ignore_ascii_case("INFINITE") || v.trim().eq_ignore_ascii_case("UNLIMITED")
    });
    let resume_timeout = seconds(conf_value("ResumeTimeout"));
    if resume_timeout.is_none() && conf_value("ResumeTimeout").is_some() && !infinite {
        w.warning(
            "SlurmConf.ResumeTimeout",
            "is not a number of seconds; resume works to a budget of 150 s",
        );
    }
    let resume_timeout =
        resume_timeout.map_or(Settings::default().launch_grace, Duration::from_secs);
    // Since 23.02 slurmctld kills a power-save program that runs longer than
    // the larger of the two (SuspendTimeout defaults to 30 s).
    let suspend_timeout =
        seconds(conf_value("SuspendTimeout")).map_or(SLURM_SUSPEND_TIMEOUT, Duration::from_secs);
    let slurm_limit = match infinite {
        true => Duration::from_secs(DAY.unsigned_abs()),
        false => resume_timeout.max(suspend_timeout),
    };
    (resume_timeout, slurm_limit)
}

fn memory_headroom(w: &mut Walker, root: &Map<String, Value>) -> MemoryHeadroom {
    let defaults = Settings::default().memory_headroom;
    MemoryHeadroom {
        percent: w
            .optional_integer(root, "", "RealMemoryHeadroomPercent", (0, 90))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(defaults.percent),
        mib: w
            .optional_integer(root, "", "RealMemoryHeadroomMiB", (0, 1 << 20))
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(defaults.mib),
    }
}

/// The signals a job may be sent for a notice, by the names `scancel --signal` takes.
pub const INTERRUPTION_SIGNALS: [&str; 6] = ["TERM", "USR1", "USR2", "INT", "HUP", "CONT"];

fn interruption_signal(w: &mut Walker, root: &Map<String, Value>, default: &str) -> String {
    let Some(name) = w.optional_string(root, "", "InterruptionSignal") else {
        return default.to_string();
    };
    let bare = name.trim_start_matches("SIG").to_string();
    if !INTERRUPTION_SIGNALS.contains(&bare.as_str()) {
        let names = INTERRUPTION_SIGNALS.join(", ");
        w.problem(
            "InterruptionSignal",
            format!("must be one of {names}; got {name:?}"),
        );
        return default.to_string();
    }
    bare
}

fn settings(
    w: &mut Walker,
    root: &Map<String, Value>,
    slurm_conf: &[(String, String)],
) -> Settings {
    let job_tags = w.boolean(root, "", "JobTags").unwrap_or(true);
    let (resume_timeout, slurm_limit) = slurm_timeouts(w, slurm_conf);
    let defaults = Settings::default();
    let mut seconds_or = |key: &'static str, low: i64, default: Duration| {
        w.optional_integer(root, "", key, (low, DAY))
            .map_or(default, |n| Duration::from_secs(n.unsigned_abs()))
    };
    let half_timeout = (resume_timeout / 2).max(Duration::from_secs(1));
    let resume_budget = seconds_or("ResumeBudgetSeconds", 1, half_timeout);
    let ec2_timeout = seconds_or("Ec2TimeoutSeconds", 1, defaults.ec2_timeout);
    let scontrol_timeout = seconds_or("ScontrolTimeoutSeconds", 1, defaults.scontrol_timeout);
    let capacity_hold = seconds_or("InsufficientCapacityHoldSeconds", 0, defaults.capacity_hold);
    let impaired_grace = seconds_or("ImpairedGraceSeconds", 0, defaults.impaired_grace);
    let boot_failure_hold = seconds_or("BootFailureHoldSeconds", 1, defaults.boot_failure_hold);
    let boot_failure_hold_max = seconds_or(
        "BootFailureHoldMaxSeconds",
        1,
        defaults.boot_failure_hold_max,
    );
    let launch_grace = seconds_or("LaunchGraceSeconds", 0, resume_timeout);
    if resume_budget >= slurm_limit {
        w.problem(
            "ResumeBudgetSeconds",
            format!(
                "must be below {} s, the larger of SlurmConf's ResumeTimeout and SuspendTimeout, after which slurmctld kills resume; got {} s",
                slurm_limit.as_secs(),
                resume_budget.as_secs()
            ),
        );
    }
    let memory_headroom = memory_headroom(w, root);
    let interruption_requeue = w
        .optional_integer(root, "", "InterruptionRequeueSeconds", (0, 110))
        .map_or(defaults.interruption_requeue, |n| {
            Duration::from_secs(n.unsigned_abs())
        });
    let interruption_signal = interruption_signal(w, root, &defaults.interruption_signal);
    let mut count_or = |key: &'static str, high: i64, default: usize| {
        w.optional_integer(root, "", key, (1, high))
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(default)
    };
    let attempts = defaults.ec2_max_attempts as usize;
    Settings {
        resume_budget,
        slurm_limit,
        fleet_batch_size: count_or("FleetBatchSize", 1000, defaults.fleet_batch_size),
        tag_concurrency: count_or("TagConcurrency", 256, defaults.tag_concurrency),
        ec2_max_attempts: u32::try_from(count_or("Ec2MaxAttempts", 20, attempts))
            .unwrap_or(defaults.ec2_max_attempts),
        ec2_timeout,
        scontrol_timeout,
        capacity_hold,
        impaired_grace,
        boot_failures_before_hold: w
            .optional_integer(root, "", "BootFailuresBeforeHold", (0, 100))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(defaults.boot_failures_before_hold),
        boot_failure_hold,
        boot_failure_hold_max,
        interruption_signal,
        interruption_requeue,
        launch_grace,
        job_tags,
        on_demand_prices: Default::default(),
        spot_prices: Default::default(),
        memory_headroom,
        rate_limits: rate_limits(w, root),
        pace_dir: None,
    }
}

/// `Ec2RateLimits`: `{"CreateTags": {"Burst": 100, "PerSecond": 10}, …}`
/// for the buckets of an account whose limits were raised; the rest keep
/// EC2's documented sizes.
fn rate_limits(w: &mut Walker, root: &Map<String, Value>) -> RateLimits {
    let key = "Ec2RateLimits";
    let mut limits = RateLimits::default();
    let Some(map) = w.get(root, "", key).and_then(|value| w.object(value, key)) else {
        return limits;
    };
    for (name, value) in map {
        let path = join(key, name);
        let Some(bucket) = Bucket::parse(name) else {
            let names: Vec<&str> = Bucket::ALL.iter().map(|b| b.name()).collect();
            w.problem(
                &path,
                format!("is not a bucket: one of {}", names.join(", ")),
            );
            continue;
        };
        let Some(entry) = w.object(value, &path) else {
            continue;
        };
        let mut number = |field: &'static str, low: f64| {
            let field_path = join(&path, field);
            match w
                .required(entry, &path, field)
                .map(|v| (v.as_f64(), describe(v)))
            {
                Some((Some(n), _)) if n.is_finite() && n >= low && n <= 1e6 => Some(n),
                Some((_, got)) => {
                    w.problem(
                        &field_path,
                        format!("must be a number from {low} to 1000000 (a smaller bucket cannot serve a run's calls within its budget), got {got}"),
                    );
                    None
                }
                None => None,
            }
        };
        // A run makes a handful of calls of each kind before its first
        // result reaches Slurm: two at once and one a second at the least.
        let burst = number("Burst", 2.0);
        let per_second = number("PerSecond", 1.0);
        if let (Some(burst), Some(per_second)) = (burst, per_second) {
            limits.0.insert(bucket, Rate { burst, per_second });
        }
        w.unread_keys(entry, &path, "ignored");
    }
    limits
}

type PriceTable = std::collections::BTreeMap<String, f64>;

/// `OnDemandHourlyPrices` (instance type to dollars an hour) and `Prices`
/// (instance type to `{"OnDemand": …, "Spot": …}`): the On-Demand and the
/// Spot prices. A type priced differently by the two keys is refused.
fn prices(w: &mut Walker, root: &Map<String, Value>) -> (PriceTable, PriceTable) {
    let key = "OnDemandHourlyPrices";
    let mut on_demand = PriceTable::new();
    if let Some(map) = w.get(root, "", key).and_then(|value| w.object(value, key)) {
        for (kind, value) in map {
            if let Some(price) = price(w, &join(key, kind), value) {
                on_demand.insert(kind.clone(), price);
            }
        }
    }
    let mut spot = PriceTable::new();
    let Some(map) = w
        .get(root, "", "Prices")
        .and_then(|value| w.object(value, "Prices"))
    else {
        return (on_demand, spot);
    };
    for (kind, value) in map {
        let path = join("Prices", kind);
        let Some(options) = w.object(value, &path) else {
            continue;
        };
        for (option, value) in options {
            let path = join(&path, option);
            let Some(price) = price(w, &path, value) else {
                continue;
            };
            let table = match option.as_str() {
                "OnDemand" => &mut on_demand,
                "Spot" => &mut spot,
                _ => {
                    w.problem(&path, "is no purchasing option: use OnDemand or Spot");
                    continue;
                }
            };
            if table.get(kind).is_some_and(|earlier| *earlier != price) {
                w.problem(&path, format!("differs from OnDemandHourlyPrices.{kind}"));
            }
            table.insert(kind.clone(), price);
        }
    }
    (on_demand, spot)
}

pub(super) fn price(w: &mut Walker, path: &str, value: &Value) -> Option<f64> {
    match value.as_f64() {
        Some(price) if price.is_finite() && price >= 0.0 => Some(price),
        _ => {
            let got = describe(value);
            w.problem(
                path,
                format!("must be a price in dollars an hour, got {got}"),
            );
            None
        }
    }
}

fn environment(w: &mut Walker, map: &Map<String, Value>) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for (key, value) in map {
        let path = join("Environment", key);
        if key.is_empty() || key.contains(['=', '\0']) {
            w.problem(&path, "is not a valid environment variable name");
            continue;
        }
        match value {
            Value::String(s) if !s.contains('\0') => pairs.push((key.clone(), s.clone())),
            other => w.problem(&path, format!("must be a string, got {}", describe(other))),
        }
    }
    pairs
}
