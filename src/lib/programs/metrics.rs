//! `slurm-ec2 metrics`: the metrics change-state writes to `MetricsFile`,
//! printed on demand from what one `slurm-ec2 status` reads.

use super::{Context, Outcome, Run, change_state};

/// The program.
pub fn run(context: &Context) -> Outcome {
    let config = context.config;
    let budget = super::Budget::both(super::LOOKUP_BUDGET);
    let run = match Run::begin(config, context.started, budget) {
        Ok(run) => run,
        Err(error) => {
            tracing::error!("{error}");
            eprintln!("slurm-ec2 metrics: {error}");
            return Outcome::Failed;
        }
    };
    let planned = match change_state::make_plan(&run, super::epoch_seconds()) {
        Ok(planned) => planned,
        Err(error) => {
            eprintln!("slurm-ec2 metrics: {error}");
            tracing::error!("{error}");
            return Outcome::Failed;
        }
    };
    let gauges = change_state::gauges::gauges(config, &planned.observation, &planned.steps);
    let families = crate::metrics::families(config, Some(&gauges), super::epoch_seconds());
    if let Err(error) = super::write_stdout(&crate::metrics::render(&families)) {
        eprintln!("slurm-ec2 metrics: {error}");
        return Outcome::Failed;
    }
    tracing::info!("Metrics printed; {}", run.tally());
    Outcome::Done
}
