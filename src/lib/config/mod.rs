//! `config.json` and `partitions.json`: where they are found, how they are
//! read, and the validated, indexed form the programs use.
//!
//! The files are read as JSON values (key order kept) and walked once by
//! [`validate`], which reports every problem with its file and JSON path and
//! builds the typed [`Config`]. A `Config` that exists is valid.

mod config_file;
mod json;
mod locate;
mod model;
mod name;
mod partitions_file;
mod validate;
mod walker;

pub use locate::{DEFAULT_CONFIG_DIR, find_config_dir};
pub use model::*;
pub use name::{ClusterName, NodeGroupName, PartitionName};
pub use partitions_file::{MAX_CUSTOM_TAGS, WARM_POOL_TAGS};

use std::fmt;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.json";
pub const PARTITIONS_FILE: &str = "partitions.json";
/// The log of `dir`'s programs when config.json names none: beside it.
pub const DEFAULT_LOG_FILE: &str = "aws_plugin.log";

/// The default log file of the configuration in `dir`, as an absolute path.
pub fn default_log_file(dir: &Path) -> PathBuf {
    std::path::absolute(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .join(DEFAULT_LOG_FILE)
}

/// A configuration that was refused, and where its programs log: the
/// `LogFileName` of config.json when it could be read that far (absolute
/// only), else the default. slurmctld discards the programs' stderr, so the
/// refusal goes there too.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Refused {
    pub error: ConfigError,
    pub log_file: Option<PathBuf>,
}

/// One thing wrong (or suspicious) in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// JSON path inside the file, such as `Partitions[0].NodeGroups[1].MaxNodes`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        if self.path.is_empty() {
            write!(f, "{file}: {}", self.message)
        } else {
            write!(f, "{file}: {}: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: crate::files::ReadError,
    },
    #[error("{}: not valid JSON: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{} problem(s) in the configuration:\n{}", problems.len(), list(problems))]
    Invalid { problems: Vec<Problem> },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A configuration document as JSON, with a problem for each key given twice.
fn parse_json(path: &Path, text: &str) -> Result<(serde_json::Value, Vec<Problem>), ConfigError> {
    let (value, duplicates) = json::parse(text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    let problems = duplicates
        .into_iter()
        .map(|key_path| Problem {
            file: path.to_path_buf(),
            path: key_path,
            message: "given more than once in the same object; keep one".to_string(),
        })
        .collect();
    Ok((value, problems))
}

fn read_text(path: &Path) -> Result<String, ConfigError> {
    crate::files::read_bounded(path, crate::files::MAX_CONFIG_BYTES).map_err(|source| {
        ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Reads and validates both files of `dir`.
pub fn load(dir: &Path) -> Result<Config, Refused> {
    let refused = |log_file: Option<PathBuf>| move |error| Refused { error, log_file };
    let config_text =
        read_text(&dir.join(CONFIG_FILE)).map_err(refused(Some(default_log_file(dir))))?;
    // A relative name would land in whatever folder slurmctld or cron runs in.
    let log_file = match config_file::named_log_file(&config_text) {
        Some(named) => Some(named).filter(|path| path.is_absolute()),
        None => Some(default_log_file(dir)),
    };
    let partitions_text =
        read_text(&dir.join(PARTITIONS_FILE)).map_err(refused(log_file.clone()))?;
    load_texts(dir, &config_text, &partitions_text).map_err(refused(log_file))
}

/// Validates the texts of both files as if read from `dir`.
pub fn load_texts(
    dir: &Path,
    config_text: &str,
    partitions_text: &str,
) -> Result<Config, ConfigError> {
    let config_path = dir.join(CONFIG_FILE);
    let partitions_path = dir.join(PARTITIONS_FILE);
    let (config_json, mut duplicates) = parse_json(&config_path, config_text)?;
    let (partitions_json, more) = parse_json(&partitions_path, partitions_text)?;
    duplicates.extend(more);
    let validated = validate::validate(
        dir,
        (&config_path, &config_json),
        (&partitions_path, &partitions_json),
    );
    match validated {
        Ok(_) if !duplicates.is_empty() => Err(ConfigError::Invalid {
            problems: duplicates,
        }),
        Err(ConfigError::Invalid { mut problems }) if !duplicates.is_empty() => {
            duplicates.append(&mut problems);
            Err(ConfigError::Invalid {
                problems: duplicates,
            })
        }
        other => other,
    }
}

#[cfg(test)]
mod tests;
