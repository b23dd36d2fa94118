//! One walk over both JSON documents that collects every problem, each with
//! its file and JSON path, and builds the typed [`Config`].

use std::path::Path;

use serde_json::Value;

use super::model::Config;
use super::walker::Walker;
use super::{ConfigError, config_file, partitions_file};

pub(super) fn validate(
    dir: &Path,
    (config_path, config_json): (&Path, &Value),
    (partitions_path, partitions_json): (&Path, &Value),
) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut walker = Walker::new(config_path.to_path_buf(), &mut problems, &mut warnings);
    let config = config_file::config_file(&mut walker, dir, config_json);
    let mut walker = Walker::new(partitions_path.to_path_buf(), &mut problems, &mut warnings);
    let partitions = partitions_file::partitions_file(&mut walker, partitions_json);
    match config {
        Some(mut config) if problems.is_empty() => {
            config.partitions = partitions;
            config.warnings = warnings;
            Ok(config)
        }
        _ => Err(ConfigError::Invalid { problems }),
    }
}
