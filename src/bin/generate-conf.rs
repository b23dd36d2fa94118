//! generate-conf: prints the slurm.conf fragment (or, with --gres, the gres.conf
//! fragment) for the configured partitions, or writes both to --output-dir.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use slurm_ec2::generate_conf;
use slurm_ec2::startup::{self, CommonArgs, EXIT_FAILED};

#[derive(Parser)]
#[command(
    version,
    about = "Print the slurm.conf fragment for the configured partitions"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Print the gres.conf fragment instead
    #[arg(long)]
    gres: bool,
    /// Write slurm.conf.aws and gres.conf.aws into this folder instead of printing
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    startup::run("generate_conf", &args.common, false, |config, _logging| {
        let slurm = generate_conf::slurm_conf(config);
        let gres = generate_conf::gres_conf(config);
        let Some(dir) = &args.output_dir else {
            print!("{}", if args.gres { gres } else { slurm });
            return ExitCode::SUCCESS;
        };
        for (name, text) in [("slurm.conf.aws", slurm), ("gres.conf.aws", gres)] {
            let path = dir.join(name);
            if let Err(error) = std::fs::write(&path, text) {
                eprintln!("generate-conf: cannot write {}: {error}", path.display());
                tracing::error!("Cannot write {}: {error}", path.display());
                return ExitCode::from(EXIT_FAILED);
            }
            tracing::info!("Output {name} file: {}", path.display());
        }
        ExitCode::SUCCESS
    })
}
