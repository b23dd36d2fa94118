//! slurm-ec2: Slurm's power-saving programs for bursting into Amazon EC2.
//!
//! [`programs`] holds the five programs' logic; the modules beside it are the
//! services they use: [`config`] (the two JSON files, validated), [`ec2`]
//! (one handle per account), [`slurm`] (`scontrol`, its output, node
//! reasons), [`hostlist`], [`names`], [`logging`], [`lock`] and [`files`].
//! The binaries in `src/bin/` parse arguments, own every process-wide effect
//! and turn a program's [`programs::Outcome`] into an exit code.

pub mod budget;
pub mod cluster;
pub mod code;
pub mod config;
pub mod cost;
pub mod ec2;
pub mod events;
pub mod files;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod gres;
pub mod hostlist;
pub mod imds;
pub mod last_run;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod names;
pub mod node_specs;
pub mod notices;
pub mod pool;
pub mod programs;
pub mod rates;
pub mod runtime;
pub mod slurm;
