//! What an administrator watches, in the Prometheus text exposition format:
//! the format and its file ([`exposition`]), the gauges of an observation
//! ([`gauges`], counted by change-state), the counters read back from the
//! event log ([`counters`]), and all of them together ([`all`]).

pub mod all;
pub mod counters;
pub mod exposition;
pub mod gauges;

pub use all::{families, write_file};
pub use counters::Counters;
pub use exposition::{Family, MetricsFileError, Sample, Type, render, write_metrics_file};
pub use gauges::Gauges;
