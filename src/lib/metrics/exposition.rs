//! The Prometheus text exposition format (0.0.4), which node_exporter's
//! textfile collector and `promtool check metrics` read, and the file
//! written for the collector: whole or not at all.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Gauge,
    Counter,
}

/// One sample: its labels, in order, and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Sample {
    pub fn new(labels: &[(&'static str, &str)], value: f64) -> Sample {
        Sample {
            labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            value,
        }
    }
}

/// One metric: a name (a counter's ends in `_total`), its help and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Type,
    pub samples: Vec<Sample>,
}

impl Family {
    pub fn new(name: &'static str, kind: Type, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    pub fn with(mut self, samples: impl IntoIterator<Item = Sample>) -> Family {
        self.samples.extend(samples);
        self
    }
}

/// The families as text: HELP, TYPE, then one line per sample.
pub fn render(families: &[Family]) -> String {
    let mut text = String::new();
    for family in families {
        let kind = match family.kind {
            Type::Gauge => "gauge",
            Type::Counter => "counter",
        };
        let _ = writeln!(text, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(text, "# TYPE {} {kind}", family.name);
        for sample in &family.samples {
            text.push_str(family.name);
            if !sample.labels.is_empty() {
                let labels: Vec<String> = sample
                    .labels
                    .iter()
                    .map(|(key, value)| format!("{key}=\"{}\"", escape(value)))
                    .collect();
                let _ = write!(text, "{{{}}}", labels.join(","));
            }
            let _ = writeln!(text, " {}", number(sample.value));
        }
    }
    text
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

/// Writes `text` to `path` as node_exporter's textfile collector needs it:
/// whole or not at all ([`crate::files::replace_whole`]), mode 0644 (the
/// collector runs as another user).
pub fn write_metrics_file(path: &Path, text: &str) -> Result<(), MetricsFileError> {
    crate::files::replace_whole(path, text, 0o644).map_err(|source| MetricsFileError {
        path: path.to_path_buf(),
        source,
    })
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write MetricsFile {}: {source}", path.display())]
pub struct MetricsFileError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_type_and_samples_with_escaped_labels() {
        let families = [
            Family::new("slurm_ec2_nodes", Type::Gauge, "Nodes.").with([Sample::new(
                &[("state", "idle"), ("group", "a\"b\\c\nd")],
                3.0,
            )]),
            Family::new("slurm_ec2_launches_total", Type::Counter, "Launches.")
                .with([Sample::new(&[], 1.5)]),
        ];
        assert_eq!(
            render(&families),
            "# HELP slurm_ec2_nodes Nodes.\n# TYPE slurm_ec2_nodes gauge\n\
             slurm_ec2_nodes{state=\"idle\",group=\"a\\\"b\\\\c\\nd\"} 3\n\
             # HELP slurm_ec2_launches_total Launches.\n# TYPE slurm_ec2_launches_total counter\n\
             slurm_ec2_launches_total 1.5\n"
        );
    }

    #[test]
    fn the_file_is_replaced_whole_and_a_planted_link_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slurm-ec2.prom");
        write_metrics_file(&path, "a 1\n").unwrap();
        write_metrics_file(&path, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 2\n");
        let target = dir.path().join("target");
        std::fs::write(&target, "mine").unwrap();
        let planted = dir
            .path()
            .join(format!(".slurm-ec2.prom.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        assert!(write_metrics_file(&path, "a 3\n").is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "mine");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 2\n");
        std::fs::remove_file(&planted).unwrap();
        let entries = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(entries, 2, "no temporary file is left behind");
    }
}
