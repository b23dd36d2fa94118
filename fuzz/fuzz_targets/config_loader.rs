//! config.json and partitions.json: the input is split at the first NUL byte
//! into the two documents; either may be anything.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (config, partitions) = text.split_once('\0').unwrap_or((&text, "{}"));
    if let Err(error) = slurm_ec2::config::load_texts(std::path::Path::new("/fuzz"), config, partitions) {
        assert!(!error.to_string().is_empty());
    }
});
