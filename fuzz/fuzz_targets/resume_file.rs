//! The SLURM_RESUME_FILE document slurmctld hands resume.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = slurm_ec2::programs::resume::parse_resume_file(text);
});
