//! generate-conf: prints the slurm.conf fragment (or, with --gres, the gres.conf
//! fragment) for the configured partitions, or writes both to --output-dir.

mod process;

use clap::Parser;
use process::args::GenerateConfArgs as Args;
use slurm_ec2::programs::generate_conf;

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    process::head_node("generate_conf", &args.common, false, |context| {
        let output_dir = args.output_dir.as_deref();
        let (gres, version) = (args.gres, args.slurm_version);
        generate_conf::run(
            context,
            gres,
            output_dir,
            version,
            args.cloud_dns,
            args.from_ec2,
        )
    })
}
