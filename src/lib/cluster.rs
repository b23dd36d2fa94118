//! Which cluster this is: every EC2 search is scoped to it.

use crate::config::{ClusterName, Config};
use crate::slurm::{Scontrol, SlurmError};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no ClusterName in config.json and cannot ask Slurm for it: {0}")]
    Slurm(#[from] SlurmError),
    #[error("no ClusterName in config.json, and `scontrol show config` names none")]
    Unnamed,
    #[error("Slurm's ClusterName {name:?} {why}; set ClusterName in config.json")]
    Pattern { name: String, why: String },
}

/// `ClusterName` of config.json, else Slurm's own `ClusterName`.
pub fn cluster_name(config: &Config, scontrol: &Scontrol) -> Result<ClusterName, ClusterError> {
    if let Some(name) = &config.cluster_name {
        return Ok(name.clone());
    }
    let name = scontrol
        .cluster_name()?
        .filter(|n| !n.is_empty() && n != "(null)")
        .ok_or(ClusterError::Unnamed)?;
    ClusterName::parse(&name).map_err(|why| ClusterError::Pattern { name, why })
}
