//! What an administrator watches, in the Prometheus text exposition format:
//! the format and its file ([`exposition`]), and the counters read back from
//! the event log ([`counters`]). What the gauges say is gathered by
//! `programs::metrics`, from what change-state observes.

pub mod counters;
pub mod exposition;

pub use counters::Counters;
pub use exposition::{Family, MetricsFileError, Sample, Type, render, write_metrics_file};
