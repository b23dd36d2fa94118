//! The async runtime of a run's EC2 work, and the one way blocking work (a
//! Slurm command, the pacer's file lock) is called from it.

/// A Tokio runtime for the EC2 work of one program run.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Runs blocking `work` from async code: on a multi-thread runtime the
/// worker's other tasks move to another thread meanwhile; outside a runtime,
/// or on a single-thread one (a test's), it simply runs.
pub fn blocking<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}
