//! `config.json` and `partitions.json`: where they are found, how they are
//! read, and the validated, indexed form the programs use.
//!
//! The files are read as JSON values (key order kept) and walked once by
//! [`validate`], which reports every problem with its file and JSON path and
//! builds the typed [`Config`]. A `Config` that exists is valid.

mod locate;
mod model;
mod validate;

pub use locate::{DEFAULT_CONFIG_DIR, find_config_dir};
pub use model::*;

use std::fmt;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.json";
pub const PARTITIONS_FILE: &str = "partitions.json";

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
        source: std::io::Error,
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

fn read_json(path: &Path) -> Result<serde_json::Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and validates both files of `dir`.
pub fn load(dir: &Path) -> Result<Config, ConfigError> {
    let config_path = dir.join(CONFIG_FILE);
    let partitions_path = dir.join(PARTITIONS_FILE);
    let config_json = read_json(&config_path)?;
    let partitions_json = read_json(&partitions_path)?;
    validate::validate(
        dir,
        (&config_path, &config_json),
        (&partitions_path, &partitions_json),
    )
}

#[cfg(test)]
mod tests;
