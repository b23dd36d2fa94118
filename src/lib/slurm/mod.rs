//! Slurm through its own commands, run without a shell, with a timeout, their
//! exit status and stderr checked (`runner`); `scontrol` is one user of them.

mod command;
mod nodes;
pub mod reason;
mod runner;
mod version;

pub use command::{NodeInstance, Scontrol};
pub use nodes::{BaseState, Flag, NodeInfo, NodeState, is_state_word, parse_nodes};
pub use runner::{SlurmCommand, SlurmError};
pub use version::{SlurmVersion, VersionError};

/// At most this many nodes per `scontrol update`.
pub const UPDATE_BATCH: usize = 100;

/// A node name with the address and host name Slurm must reach it at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NodeAddress {
    pub node: String,
    pub address: String,
    pub hostname: String,
}
