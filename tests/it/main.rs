//! Integration tests: the real binaries, run as Slurm runs them, against a
//! recording `scontrol` and a faked EC2 (wire format), and the end-to-end
//! scenarios against a real slurmctld and moto when `scripts/test` set them up.

mod architecture;
mod change_state_wire;
mod cli;
mod e2e;
mod generate_conf;
mod get_nodename;
mod hardening;
mod isolation_wire;
mod jobs_wire;
mod metrics_wire;
pub mod resume_wire;
mod slurm_versions_wire;
mod status_wire;
mod support;
mod suspend_wire;
mod validate_wire;
