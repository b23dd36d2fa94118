//! Slurm's release, read once per run from `scontrol --version`, and what each
//! release changed for a power-save program.

use std::fmt;

/// A Slurm release: `24.11.5` is `SlurmVersion { major: 24, minor: 11, patch: 5 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SlurmVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("not a Slurm version: {text:?} (expected, for example, 24.11 or 24.11.5)")]
pub struct VersionError {
    pub text: String,
}

impl SlurmVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// `24.11`, `24.11.5` or `24.11.0-0rc1`.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let error = || VersionError {
            text: text.to_string(),
        };
        let mut parts = text.trim().splitn(3, '.');
        let number = |part: Option<&str>| -> Result<u32, VersionError> {
            let digits: String = part
                .ok_or_else(error)?
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().map_err(|_| error())
        };
        let major = number(parts.next())?;
        let minor = number(parts.next())?;
        let patch = match parts.next() {
            Some(part) => number(Some(part))?,
            None => 0,
        };
        if !(17..=99).contains(&major) || minor > 12 {
            return Err(error());
        }
        Ok(Self::new(major, minor, patch))
    }

    /// The version in `scontrol --version` output: `slurm 24.11.5`,
    /// `slurm-wlm 22.05.8`.
    pub fn from_scontrol_output(text: &str) -> Result<Self, VersionError> {
        let word = text.split_whitespace().nth(1).unwrap_or(text.trim());
        Self::parse(word)
    }

    fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        *self >= Self::new(major, minor, patch)
    }

    /// `scontrol power down force <nodes>` (24.05) instead of
    /// `scontrol update nodename=<nodes> state=POWER_DOWN_FORCE`.
    pub fn has_power_command(&self) -> bool {
        self.at_least(24, 5, 0)
    }

    /// Node fields `InstanceId` and `InstanceType` (23.11).
    pub fn has_instance_fields(&self) -> bool {
        self.at_least(23, 11, 0)
    }

    /// One `scontrol update` sets a different InstanceId on each node it names
    /// (25.11.6); before, it sets the same value on all of them.
    pub fn batches_instance_ids(&self) -> bool {
        self.at_least(25, 11, 6)
    }

    /// The resume file's keys `nodes_resume` and `all_nodes_resume` (23.02).
    pub fn resume_file_uses_nodes_resume(&self) -> bool {
        self.at_least(23, 2, 0)
    }

    /// A node that misses ResumeTimeout ends `DOWN+CLOUD+POWERED_DOWN`,
    /// without `NOT_RESPONDING` (23.02.5).
    pub fn resume_timeout_clears_not_responding(&self) -> bool {
        self.at_least(23, 2, 5)
    }

    /// `cloud_reg_addrs` is the default and the option is refused as defunct (23.11).
    pub fn cloud_reg_addrs_is_default(&self) -> bool {
        self.at_least(23, 11, 0)
    }

    /// `PrivateData=cloud` is ignored and cloud nodes are always listed (24.11:
    /// `scontrol show config` shows `PrivateData = none`).
    pub fn ignores_private_data_cloud(&self) -> bool {
        self.at_least(24, 11, 0)
    }

    /// slurmctld kills a ResumeProgram or SuspendProgram that runs longer than
    /// the largest of ResumeTimeout and SuspendTimeout (23.02).
    pub fn kills_slow_programs(&self) -> bool {
        self.at_least(23, 2, 0)
    }

    /// `RESUME` or `UNDRAIN` of a powered-down node keeps its reason and adds
    /// `NOT_RESPONDING` (seen on 24.11; 22.05 clears the reason).
    pub fn keeps_reason_of_resumed_powered_down_node(&self) -> bool {
        self.at_least(24, 11, 0)
    }

    /// At power-down NodeAddr and NodeHostName are reset to the node name
    /// (seen on 24.11; 22.05 keeps the last address).
    pub fn resets_address_at_power_down(&self) -> bool {
        self.at_least(24, 11, 0)
    }
}

impl fmt::Display for SlurmVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scontrol_version_lines() {
        let debian = SlurmVersion::from_scontrol_output("slurm-wlm 22.05.8\n").unwrap();
        assert_eq!(debian, SlurmVersion::new(22, 5, 8));
        let schedmd = SlurmVersion::from_scontrol_output("slurm 24.11.5\n").unwrap();
        assert_eq!(schedmd.to_string(), "24.11.5");
        let candidate = SlurmVersion::parse("25.11.0-0rc1").unwrap();
        assert_eq!(candidate, SlurmVersion::new(25, 11, 0));
        assert_eq!(SlurmVersion::parse("24.05").unwrap().patch, 0);
    }

    #[test]
    fn refuses_what_is_not_a_version() {
        for text in [
            "",
            "slurm",
            "24",
            "x.11",
            "24.13",
            "2.6.5",
            "24.11.x",
            "99999999999.1",
        ] {
            assert!(SlurmVersion::parse(text).is_err(), "{text:?} accepted");
        }
    }

    #[test]
    fn features_start_where_slurm_added_them() {
        let v = |text| SlurmVersion::parse(text).unwrap();
        assert!(!v("23.11.10").has_power_command());
        assert!(v("24.05.0").has_power_command());
        assert!(!v("23.02.7").has_instance_fields());
        assert!(v("23.11.0").has_instance_fields());
        assert!(!v("25.11.5").batches_instance_ids());
        assert!(v("25.11.6").batches_instance_ids());
        assert!(!v("23.02.4").resume_timeout_clears_not_responding());
        assert!(v("23.02.5").resume_timeout_clears_not_responding());
        assert!(!v("22.05.8").resume_file_uses_nodes_resume());
        assert!(v("24.11.5").cloud_reg_addrs_is_default());
        assert!(!v("24.05.3").ignores_private_data_cloud());
        assert!(v("24.11.5").ignores_private_data_cloud());
    }
}
