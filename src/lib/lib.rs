//! slurm-ec2: Slurm's power-saving programs for bursting into Amazon EC2.
//!
//! One module per concern; each program's logic lives in its own module and
//! its binary in `src/bin/` only wires configuration, clients and logging.

pub mod config;
pub mod files;
pub mod generate_conf;
pub mod gres;
pub mod hostlist;
pub mod lock;
pub mod logging;
pub mod names;
pub mod startup;

pub mod change_state;
pub mod cluster;
pub mod ec2;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod get_nodename;
pub mod resume;
pub mod slurm;
pub mod suspend;
