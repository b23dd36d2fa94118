//! The usages grouped by job, user, account, node group or instance, within
//! a window, priced from the configuration's price table.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Source, Usage};
use crate::config::Config;

/// What the rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Job,
    User,
    Account,
    Group,
    Instance,
}

impl By {
    const ALL: [By; 5] = [By::Job, By::User, By::Account, By::Group, By::Instance];
    /// `--by`'s words, in the order of [`By::ALL`].
    pub const NAMES: [&'static str; 5] = ["job", "user", "account", "group", "instance"];

    pub fn parse(name: &str) -> Option<By> {
        let at = Self::NAMES.iter().position(|known| *known == name)?;
        Some(Self::ALL[at])
    }

    fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    fn key(self, config: &Config, usage: &Usage) -> String {
        let or_none =
            |value: &Option<String>| value.clone().unwrap_or_else(|| "(none)".to_string());
        match self {
            By::Job => usage.job.map_or("(none)".to_string(), |id| id.to_string()),
            By::User => or_none(&usage.user),
            By::Account => or_none(&usage.account),
            By::Group => usage
                .node
                .as_deref()
                .and_then(|node| crate::names::parse(config, node).ok())
                .map_or("(none)".to_string(), |(_, g)| {
                    format!("{}/{}", g.partition, g.name)
                }),
            By::Instance => usage.instance.clone(),
        }
    }
}

/// One row: the instances of one key, their hours in the window, and what
/// the priced ones cost.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Row {
    pub key: String,
    pub instances: usize,
    pub instance_hours: f64,
    /// US dollars, to the cent; `None` when no hour of the row has a price.
    pub cost_usd: Option<f64>,
    /// Hours of instances whose type and purchasing option have no price.
    pub unpriced_instance_hours: f64,
    /// How far the figures rest on more than the event log.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub by: &'static str,
    /// RFC 3339, UTC.
    pub since: Option<String>,
    pub until: String,
    pub rows: Vec<Row>,
    pub total: Row,
    /// Where the prices come from, and what they leave out.
    pub prices: String,
}

pub const PRICES_NOTE: &str = "estimates from config.json's Prices and OnDemandHourlyPrices, by the hour used, to the millisecond; no Savings Plans, Reserved Instances, discounts, taxes, volumes or data transfer; a Spot price is the one configured, not what EC2 charged";

/// The hours of one usage within the window.
fn hours_within(usage: &Usage, since: Option<i64>, until: i64) -> f64 {
    let start = since.map_or(usage.start, |s| usage.start.max(s));
    let end = usage.end.min(until);
    (end.saturating_sub(start)).max(0) as f64 / 3_600_000.0
}

/// The price of an hour of the usage's instance, when the table has one.
fn price_of(config: &Config, usage: &Usage) -> Option<f64> {
    let kind = usage.instance_type.as_deref()?;
    let spot = match usage.purchasing_option.as_deref() {
        Some(option) => option == "spot",
        None => usage
            .node
            .as_deref()
            .and_then(|node| crate::names::parse(config, node).ok())
            .is_some_and(|(_, g)| g.purchasing == crate::config::Purchasing::Spot),
    };
    let table = match spot {
        true => &config.settings.spot_prices,
        false => &config.settings.on_demand_prices,
    };
    table.get(kind).copied()
}

#[derive(Default)]
struct Sums {
    instances: usize,
    hours: f64,
    cost: Option<f64>,
    unpriced: f64,
    notes: BTreeMap<&'static str, usize>,
}

impl Sums {
    fn add(&mut self, hours: f64, price: Option<f64>, usage: &Usage) {
        self.instances += 1;
        self.hours += hours;
        match price {
            Some(price) => self.cost = Some(self.cost.unwrap_or(0.0) + hours * price),
            None => self.unpriced += hours,
        }
        let mut note = |what| *self.notes.entry(what).or_default() += 1;
        match usage.start_from {
            Source::Ec2LaunchTime => {
                note("launch not in the event log: counted from EC2's LaunchTime")
            }
            Source::Unknown => note(
                "terminated, but launched neither in the event log nor known to EC2: not counted",
            ),
            _ => {}
        }
        match usage.end_from {
            Source::Running => note("still running: counted up to now"),
            Source::Missing => {
                note("end not in the event log and not running in EC2: counted up to now")
            }
            _ => {}
        }
        if price.is_none() && usage.start_from != Source::Unknown {
            note("no price for its type and purchasing option");
        }
    }

    fn row(self, key: String) -> Row {
        let cents = |x: f64| (x * 100.0).round() / 100.0;
        Row {
            key,
            instances: self.instances,
            instance_hours: self.hours,
            cost_usd: self.cost.map(cents),
            unpriced_instance_hours: self.unpriced,
            notes: self
                .notes
                .into_iter()
                .map(|(what, n)| format!("{n} instance(s): {what}"))
                .collect(),
        }
    }
}

/// The report: one row per key with hours in the window, and their total.
/// `since` and `until` in milliseconds since the epoch.
pub fn report(config: &Config, usages: &[Usage], by: By, since: Option<i64>, until: i64) -> Report {
    let mut rows: BTreeMap<String, Sums> = BTreeMap::new();
    let mut total = Sums::default();
    for usage in usages {
        let outside = usage.end < since.unwrap_or(i64::MIN) || usage.start >= until;
        if outside || (usage.end == usage.start && usage.start_from != Source::Unknown) {
            continue;
        }
        let hours = hours_within(usage, since, until);
        let price = price_of(config, usage);
        rows.entry(by.key(config, usage))
            .or_default()
            .add(hours, price, usage);
        total.add(hours, price, usage);
    }
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default()
    };
    Report {
        by: by.name(),
        since: since.map(time),
        until: time(until),
        rows: rows.into_iter().map(|(key, sums)| sums.row(key)).collect(),
        total: total.row("total".to_string()),
        prices: PRICES_NOTE.to_string(),
    }
}

/// The rows and the total as CSV, with a header.
pub fn render_csv(report: &Report) -> String {
    let field = |text: &str| match text.contains([',', '"', '\n']) {
        true => format!("\"{}\"", text.replace('"', "\"\"")),
        false => text.to_string(),
    };
    let mut out = format!(
        "{},instances,instance_hours,cost_usd,unpriced_instance_hours,notes\n",
        report.by
    );
    for row in report.rows.iter().chain([&report.total]) {
        let cost = row.cost_usd.map_or(String::new(), |c| format!("{c:.2}"));
        out.push_str(&format!(
            "{},{},{:.6},{cost},{:.6},{}\n",
            field(&row.key),
            row.instances,
            row.instance_hours,
            row.unpriced_instance_hours,
            field(&row.notes.join("; "))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(instance: &str, job: u64, user: &str, start: i64, end: i64, spot: bool) -> Usage {
        Usage {
            instance: instance.into(),
            instance_type: Some("c5.large".into()),
            purchasing_option: Some(if spot { "spot" } else { "on_demand" }.into()),
            node: None,
            job: Some(job),
            user: Some(user.into()),
            account: None,
            start,
            end,
            start_from: Source::EventLog,
            end_from: Source::EventLog,
        }
    }

    #[test]
    fn each_word_of_by_names_one_grouping() {
        for name in By::NAMES {
            assert_eq!(By::parse(name).map(By::name), Some(name));
        }
        assert_eq!(By::parse("planet"), None);
    }

    #[test]
    fn hours_by_key_priced_by_purchasing_option_and_clipped_to_the_window() {
        let mut config = crate::fixtures::example();
        config
            .settings
            .on_demand_prices
            .insert("c5.large".into(), 3.6);
        config.settings.spot_prices.insert("c5.large".into(), 1.2);
        let hour = 3_600_000;
        let usages = [
            usage("i-1", 7, "alice", 0, hour, false),
            usage("i-2", 7, "alice", 0, hour / 2, true),
            usage("i-3", 8, "bob", hour, 3 * hour, false),
        ];
        let by_job = report(&config, &usages, By::Job, None, 10 * hour);
        assert_eq!(by_job.rows.len(), 2);
        assert_eq!(by_job.rows[0].key, "7");
        assert_eq!(by_job.rows[0].instance_hours, 1.5);
        assert_eq!(by_job.rows[0].cost_usd, Some(4.2));
        assert_eq!(by_job.rows[1].cost_usd, Some(7.2));
        assert_eq!(by_job.total.cost_usd, Some(11.4));
        let clipped = report(&config, &usages, By::User, Some(2 * hour), 10 * hour);
        assert_eq!(
            clipped.rows.len(),
            1,
            "alice's instances ended before the window"
        );
        assert_eq!(clipped.rows[0].key, "bob");
        assert_eq!(clipped.rows[0].instance_hours, 1.0);
        config.settings.spot_prices.clear();
        let unpriced = report(&config, &usages, By::User, None, 10 * hour);
        assert_eq!(unpriced.rows[0].unpriced_instance_hours, 0.5);
        assert_eq!(unpriced.rows[0].cost_usd, Some(3.6));
        assert!(
            unpriced.rows[0].notes[0].contains("no price"),
            "{:?}",
            unpriced.rows[0].notes
        );
        let csv = render_csv(&by_job);
        assert!(
            csv.starts_with("job,instances,instance_hours,cost_usd"),
            "{csv}"
        );
        assert!(
            csv.contains("\ntotal,3,3.500000,11.40,0.000000,\n"),
            "{csv}"
        );
    }
}
