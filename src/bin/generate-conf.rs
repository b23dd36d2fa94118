//! generate-conf: prints the slurm.conf fragment (or, with --gres, the gres.conf
//! fragment) for the configured partitions, or writes both to --output-dir.

mod process;

use std::path::PathBuf;

use clap::Parser;
use slurm_ec2::programs::generate_conf;

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
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    process::head_node("generate_conf", &args.common, false, |context| {
        generate_conf::run(context, args.gres, args.output_dir.as_deref())
    })
}
