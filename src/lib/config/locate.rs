use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG_DIR: &str = "/etc/slurm-ec2";

/// The folder that holds `config.json` and `partitions.json`: `--config-dir`,
/// else `$SLURM_EC2_CONFIG_DIR`, else the folder of the running executable
/// (symlinks resolved) when it holds a `config.json` (the original plugin's
/// layout), else [`DEFAULT_CONFIG_DIR`].
pub fn find_config_dir(
    flag: Option<&Path>,
    env_value: Option<&str>,
    executable: Option<&Path>,
) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    if let Some(dir) = env_value.filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let beside_executable = executable
        .and_then(|exe| std::fs::canonicalize(exe).ok())
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .filter(|dir| dir.join(super::CONFIG_FILE).is_file());
    beside_executable.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_DIR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_order_flag_env_executable_default() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("resume"), "").unwrap();
        let link = dir.path().join("resume-link");
        std::os::unix::fs::symlink(real.join("resume"), &link).unwrap();

        let flag = Path::new("/from/flag");
        assert_eq!(
            find_config_dir(Some(flag), Some("/from/env"), Some(&link)),
            flag
        );
        assert_eq!(
            find_config_dir(None, Some("/from/env"), Some(&link)),
            Path::new("/from/env")
        );
        // No config.json beside the executable yet: the default.
        assert_eq!(
            find_config_dir(None, None, Some(&link)),
            Path::new(DEFAULT_CONFIG_DIR)
        );
        std::fs::write(real.join("config.json"), "{}").unwrap();
        let found = find_config_dir(None, Some(""), Some(&link));
        assert_eq!(found, std::fs::canonicalize(&real).unwrap());
    }
}
