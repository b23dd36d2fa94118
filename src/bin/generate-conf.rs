//! generate-conf: prints the slurm.conf fragment (or, with --gres, the gres.conf
//! fragment) for the configured partitions, or writes both to --output-dir.

mod process;

use std::path::PathBuf;

use clap::Parser;
use slurm_ec2::programs::generate_conf;
use slurm_ec2::slurm::SlurmVersion;

#[derive(Parser)]
#[command(
    version,
    about = "Print the slurm.conf fragment for the configured partitions"
)]
struct Args {
    #[command(flatten)]
    common: process::CommonArgs,
    /// Print the gres.conf fragment instead
    #[arg(long)]
    gres: bool,
    /// Write slurm.conf.aws and gres.conf.aws into this folder instead of printing
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// The Slurm version the fragment is for (default: what `scontrol --version` says)
    #[arg(long, value_name = "VERSION", value_parser = parse_version)]
    slurm_version: Option<SlurmVersion>,
    /// Add cloud_dns to SlurmctldParameters: slurmctld then resolves the node
    /// names (in DNS) instead of using the addresses resume sets
    #[arg(long)]
    cloud_dns: bool,
    /// Fill in the CPUs, RealMemory and Gres that a node group's
    /// SlurmSpecifications omit from EC2's data of its instance types (the smallest)
    #[arg(long)]
    from_ec2: bool,
}

fn parse_version(text: &str) -> Result<SlurmVersion, String> {
    SlurmVersion::parse(text).map_err(|error| error.to_string())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    process::head_node("generate_conf", &args.common, false, |context| {
        generate_conf::run(
            context,
            args.gres,
            args.output_dir.as_deref(),
            args.slurm_version,
            args.cloud_dns,
            args.from_ec2,
        )
    })
}
