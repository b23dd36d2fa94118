//! Configurations for unit tests, from the example files users start from.

use crate::config::{self, Config};

pub const CONFIG_JSON: &str = include_str!("../../config/config.json");
pub const EXAMPLE_1: &str = include_str!("../../config/examples/partitions-example-1.json");

/// Loads `config_json` and `partitions_json` from a fresh folder.
pub fn load(config_json: &str, partitions_json: &str) -> Result<Config, config::ConfigError> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join(config::CONFIG_FILE), config_json).expect("writable");
    std::fs::write(dir.path().join(config::PARTITIONS_FILE), partitions_json).expect("writable");
    config::load(dir.path()).map_err(|refused| refused.error)
}

pub fn example() -> Config {
    load(CONFIG_JSON, EXAMPLE_1).expect("the example configuration is valid")
}

/// Makes a FIFO at `path`, where a test plants one in a file's place.
pub fn mkfifo(path: &std::path::Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", path.display());
}
