//! `slurm-ec2 cost [--since DATE] [--until DATE] [--by job|user|account|group|instance] [--json|--csv]`:
//! instance-hours and their estimated cost from the event log, completed by
//! one look at this cluster's instances in EC2.

use super::table::text_table;
use super::{Context, Outcome, Run};
use crate::cost::{By, Ledger, Report, Row};

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub since: Option<String>,
    pub until: Option<String>,
    pub by: String,
    pub format: Format,
}

/// A time given on the command line, in milliseconds since the epoch:
/// RFC 3339 (`2026-12-01T08:00:00Z`) or a day (`2026-12-01`, from 00:00 UTC).
pub fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc().timestamp_millis())
        .ok_or_else(|| format!("{text:?} is no date: give 2026-12-01 or 2026-12-01T08:00:00Z"))
}

/// The window and the grouping, or what is wrong with them.
fn window(options: &Options, now: i64) -> Result<(By, Option<i64>, i64), String> {
    let by = By::parse(&options.by).ok_or_else(|| {
        format!(
            "--by {:?}: give one of {}",
            options.by,
            By::NAMES.join(", ")
        )
    })?;
    let since = options.since.as_deref().map(parse_time).transpose()?;
    let until = options
        .until
        .as_deref()
        .map(parse_time)
        .transpose()?
        .unwrap_or(now);
    if since.is_some_and(|since| since >= until) {
        return Err("--since must come before --until".to_string());
    }
    Ok((by, since, until))
}

/// The program.
pub fn run(context: &Context, options: &Options) -> Outcome {
    let config = context.config;
    let now = chrono::Utc::now().timestamp_millis();
    let (by, since, until) = match window(options, now) {
        Ok(window) => window,
        Err(problem) => {
            eprintln!("slurm-ec2 cost: {problem}");
            return Outcome::BadInput;
        }
    };
    let Some(path) = &config.event_log_file else {
        eprintln!(
            "slurm-ec2 cost: config.json sets no EventLogFile, where the launches and terminations are counted from"
        );
        return Outcome::BadInput;
    };
    let mut ledger = Ledger::default();
    match crate::events::read_events(path, |event| ledger.add(&event)) {
        Ok(summary) => say_what_was_not_read(path, &summary),
        Err(error) => {
            eprintln!("slurm-ec2 cost: {error}");
            return Outcome::Failed;
        }
    }
    let known = known_instances(context);
    let report = crate::cost::report(config, &ledger.usages(&known, now), by, since, until);
    let text = match options.format {
        Format::Table => render_table(&report),
        Format::Csv => crate::cost::render_csv(&report),
        Format::Json => serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
    };
    if let Err(error) = super::write_stdout(&text) {
        eprintln!("slurm-ec2 cost: {error}");
        return Outcome::Failed;
    }
    Outcome::Done
}

/// Lines of the event log that were skipped, or its end left unread, on stderr.
fn say_what_was_not_read(path: &std::path::Path, summary: &crate::events::ReadSummary) {
    if summary.skipped > 0 {
        eprintln!(
            "slurm-ec2 cost: {} line(s) of {} are not events: skipped",
            summary.skipped,
            path.display()
        );
    }
    if summary.truncated {
        eprintln!(
            "slurm-ec2 cost: {} is longer than {} bytes: its end was not read; rotate it",
            path.display(),
            crate::events::MAX_EVENT_LOG_BYTES
        );
    }
}

/// This cluster's instances in EC2, in any state; none, said on stderr,
/// when EC2 cannot be read (the report then rests on the event log alone).
fn known_instances(context: &Context) -> Vec<crate::ec2::Instance> {
    let budget = super::Budget::both(super::LOOKUP_BUDGET);
    let found = Run::begin(context.config, context.started, budget)
        .map_err(|error| error.to_string())
        .and_then(|run| super::change_state::instances(&run).map_err(|error| error.to_string()));
    match found {
        Ok(instances) => instances.into_iter().map(|found| found.instance).collect(),
        Err(error) => {
            eprintln!(
                "slurm-ec2 cost: {error}: running instances are counted from the event log alone"
            );
            Vec::new()
        }
    }
}

fn cost_cell(row: &Row) -> String {
    row.cost_usd.map_or("-".to_string(), |c| format!("{c:.2}"))
}

/// The report as a table, its total and where its prices come from.
pub fn render_table(report: &Report) -> String {
    let mut rows = vec![
        [
            report.by.to_uppercase().as_str(),
            "INSTANCES",
            "INSTANCE-HOURS",
            "COST-USD",
            "NOTES",
        ]
        .map(str::to_string)
        .to_vec(),
    ];
    for row in report.rows.iter().chain([&report.total]) {
        rows.push(vec![
            row.key.clone(),
            row.instances.to_string(),
            format!("{:.3}", row.instance_hours),
            cost_cell(row),
            row.notes.join("; "),
        ]);
    }
    let window = match &report.since {
        Some(since) => format!("From {since} to {}", report.until),
        None => format!("Up to {}", report.until),
    };
    format!(
        "{}{window}. Prices: {}.\n",
        text_table(&rows),
        report.prices
    )
}
