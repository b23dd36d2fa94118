//! The `slurm.conf` and `gres.conf` fragments for the configured partitions,
//! in the original plugin's format without its stray spaces.

use std::path::Path;

use super::{Context, Outcome};
use crate::config::Config;
use crate::gres;

/// The program: prints the slurm.conf fragment (or, with `gres`, the
/// gres.conf fragment), or writes both into `output_dir`.
pub fn run(context: &Context, gres: bool, output_dir: Option<&Path>) -> Outcome {
    let slurm = slurm_conf(context.config);
    let gres_text = gres_conf(context.config);
    let Some(dir) = output_dir else {
        print!("{}", if gres { gres_text } else { slurm });
        return Outcome::Done;
    };
    for (name, text) in [("slurm.conf.aws", slurm), ("gres.conf.aws", gres_text)] {
        let path = dir.join(name);
        if let Err(error) = std::fs::write(&path, text) {
            eprintln!("generate-conf: cannot write {}: {error}", path.display());
            tracing::error!("Cannot write {}: {error}", path.display());
            return Outcome::Failed;
        }
        tracing::info!("Output {name} file: {}", path.display());
    }
    Outcome::Done
}

/// The `slurm.conf` fragment: `SlurmConf` pairs in file order, then per
/// partition its `NodeName` lines and its `PartitionName` line.
pub fn slurm_conf(config: &Config) -> String {
    let mut out = String::new();
    for (key, value) in &config.slurm_conf {
        out.push_str(&format!("{key}={value}\n"));
    }
    if config.slurm_conf_value("ResumeFailProgram").is_none()
        && let Some(suspend) = config.slurm_conf_value("SuspendProgram")
    {
        out.push_str(
            "# Slurm runs ResumeFailProgram for nodes that missed ResumeTimeout and does not\n\
             # call SuspendProgram for them: without it their instances would keep running.\n",
        );
        out.push_str(&format!("ResumeFailProgram={suspend}\n"));
    }
    out.push('\n');
    for partition in &config.partitions {
        for group in &partition.node_groups {
            let mut line = format!("NodeName={} State=CLOUD", group.node_range());
            for (key, value) in &group.slurm_specifications {
                line.push_str(&format!(" {key}={value}"));
            }
            out.push_str(&line);
            out.push('\n');
        }
        let ranges: Vec<String> = partition
            .node_groups
            .iter()
            .map(|g| g.node_range())
            .collect();
        let mut line = format!(
            "PartitionName={} Nodes={}",
            partition.name,
            ranges.join(",")
        );
        let has_option = |name: &str| {
            partition
                .options
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(name))
        };
        if !has_option("MaxTime") {
            line.push_str(" MaxTime=INFINITE");
        }
        if !has_option("State") {
            line.push_str(" State=UP");
        }
        for (key, value) in &partition.options {
            line.push_str(&format!(" {key}={value}"));
        }
        out.push_str(&line);
        out.push_str("\n\n");
    }
    out
}

/// The `gres.conf` fragment: one line per generic resource of each node group
/// whose `SlurmSpecifications` has a `Gres` (any case). Validation has checked
/// the syntax, so a value that does not parse here is skipped.
pub fn gres_conf(config: &Config) -> String {
    let mut out = String::new();
    for group in config.node_groups() {
        for (_, value) in group
            .slurm_specifications
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("gres"))
        {
            for entry in gres::parse(value).unwrap_or_default() {
                out.push_str(&entry.conf_line(&group.node_range()));
                out.push('\n');
            }
        }
    }
    out
}
