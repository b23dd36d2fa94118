//! `scontrol show nodes -o` output, as change-state reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    for node in slurm_ec2::slurm::parse_nodes(text) {
        assert!(text.contains(&node.name));
    }
});
