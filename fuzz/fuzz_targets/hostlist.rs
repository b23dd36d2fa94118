//! Hostlist expressions as slurmctld passes them to resume and suspend.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|expression: &str| {
    match slurm_ec2::hostlist::expand(expression) {
        Ok(hosts) => {
            let _ = slurm_ec2::hostlist::compress(&hosts);
        }
        Err(error) => assert!(!error.reason.is_empty()),
    }
});
