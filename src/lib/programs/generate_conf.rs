//! The `slurm.conf` and `gres.conf` fragments for the configured partitions,
//! in the original plugin's format without its stray spaces, fitted to the
//! Slurm version they are for.

use std::path::Path;

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Context, Outcome};
use crate::config::{Account, Config};
use crate::ec2::{self, CallCounter, Clients};
use crate::gres;
use crate::node_specs;
use crate::slurm::{Scontrol, SlurmVersion};

/// What the fragment is for: the Slurm version (None: unknown, the fragment
/// is written as for 22.05), and whether to add `cloud_dns`.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub version: Option<SlurmVersion>,
    pub cloud_dns: bool,
}

/// The program: prints the slurm.conf fragment (or, with `gres`, the
/// gres.conf fragment), or writes both into `output_dir`. `version` is the
/// one given with `--slurm-version`, else `scontrol --version` tells.
pub fn run(
    context: &Context,
    gres: bool,
    output_dir: Option<&Path>,
    version: Option<SlurmVersion>,
    cloud_dns: bool,
    from_ec2: bool,
) -> Outcome {
    let completed;
    let config = match from_ec2 {
        false => context.config,
        true => match specs_from_ec2(context.config) {
            Ok((config, notes)) => {
                for note in &notes {
                    eprintln!("generate-conf: {note}");
                    tracing::info!("{note}");
                }
                completed = config;
                &completed
            }
            Err((error, outcome)) => {
                eprintln!("generate-conf: {error}");
                tracing::error!("{error}");
                return outcome;
            }
        },
    };
    let version = version.or_else(|| {
        let scontrol = Scontrol::new(
            &config.scontrol(),
            config.settings.scontrol_timeout,
        );
        let detected = scontrol.version();
        if detected.is_none() && !gres {
            eprintln!(
                "generate-conf: cannot tell Slurm's version from {}: the fragment is written as for 22.05; give --slurm-version",
                config.scontrol().display()
            );
        }
        detected
    });
    let target = Target { version, cloud_dns };
    let fragment = slurm_conf_for(config, &target);
    for warning in &fragment.warnings {
        eprintln!("generate-conf: warning: {warning}");
        tracing::warn!("{warning}");
    }
    let slurm = fragment.text;
    let gres_text = gres_conf(config);
    let Some(dir) = output_dir else {
        if let Err(error) = super::write_stdout(if gres { &gres_text } else { &slurm }) {
            eprintln!("generate-conf: {error}");
            tracing::error!("{error}");
            return Outcome::Failed;
        }
        return Outcome::Done;
    };
    for (name, text) in [("slurm.conf.aws", slurm), ("gres.conf.aws", gres_text)] {
        let path = dir.join(name);
        if let Err(error) = crate::files::write_file(&path, &text, 0o644) {
            eprintln!("generate-conf: cannot write {}: {error}", path.display());
            tracing::error!("Cannot write {}: {error}", path.display());
            return Outcome::Failed;
        }
        tracing::info!("Output {name} file: {}", path.display());
    }
    Outcome::Done
}

/// `config` with the `CPUs`, `RealMemory` and `Gres` its node groups omit,
/// from DescribeInstanceTypes of each group's types (one call per account
/// and 100 types), and the notes on what was taken; or why not, with the outcome.
fn specs_from_ec2(config: &Config) -> Result<(Config, Vec<String>), (String, Outcome)> {
    let failed = |error: String| (error, Outcome::Failed);
    ec2::check_trust_store().map_err(|e| failed(e.to_string()))?;
    let runtime = crate::runtime::runtime()
        .map_err(|e| failed(format!("cannot start the async runtime: {e}")))?;
    let deadline = crate::budget::Deadline::after(super::LOOKUP_BUDGET);
    let clients = Clients::new(&config.settings, Arc::new(CallCounter::default()), deadline);
    runtime.block_on(async {
        let mut types_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut by_account: BTreeMap<Account, Vec<String>> = BTreeMap::new();
        for group in config.node_groups().filter(|g| node_specs::wants_lookup(g)) {
            let ec2 = clients.get(&group.account()).await;
            let needs_template = group.overrides.iter().any(|o| o.instance_type.is_none());
            let template_type = match needs_template {
                false => None,
                true => ec2
                    .template_version(&group.launch_template)
                    .await
                    .map_err(|e| failed(e.to_string()))?
                    .and_then(|v| v.instance_type),
            };
            let types = node_specs::group_types(group, template_type.as_deref())
                .map_err(|e| (e.to_string(), Outcome::BadInput))?;
            let account = by_account.entry(group.account()).or_default();
            account.extend(
                types
                    .iter()
                    .filter(|t| !account.contains(t))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            types_of.insert(group.node_prefix(), types);
        }
        let mut specs = Vec::new();
        for (account, types) in &by_account {
            let ec2 = clients.get(account).await;
            let described = ec2.instance_types(types).await.map_err(|e| {
                let outcome = match e.code.as_str() {
                    "InvalidInstanceType" => Outcome::BadInput,
                    _ => Outcome::Failed,
                };
                (e.to_string(), outcome)
            })?;
            specs.extend(described);
        }
        node_specs::complete(config, &types_of, &specs)
            .map_err(|e| (e.to_string(), Outcome::BadInput))
    })
}

/// The fragment and what the administrator should know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub text: String,
    pub warnings: Vec<String>,
}

/// The `slurm.conf` fragment for an unknown Slurm version, as for 22.05.
pub fn slurm_conf(config: &Config) -> String {
    slurm_conf_for(config, &Target::default()).text
}

/// A `SlurmConf` item that a Slurm version no longer takes.
struct Defunct {
    key: &'static str,
    item: &'static str,
    since: fn(&SlurmVersion) -> bool,
    why: &'static str,
}

const DEFUNCT: [Defunct; 2] = [
    Defunct {
        key: "SlurmctldParameters",
        item: "cloud_reg_addrs",
        since: SlurmVersion::cloud_reg_addrs_is_default,
        why: "the default since 23.11, which refuses the option as defunct",
    },
    Defunct {
        key: "PrivateData",
        item: "cloud",
        since: SlurmVersion::ignores_private_data_cloud,
        why: "ignored since 24.11, which always lists cloud nodes",
    },
];

/// `value` (a comma-separated list) of `key` without the items `version`
/// no longer takes, with a warning for each; None when nothing is left.
fn fit_value(
    key: &str,
    value: &str,
    target: &Target,
    warnings: &mut Vec<String>,
) -> Option<String> {
    let mut items: Vec<String> = value.split(',').map(str::to_string).collect();
    if let Some(version) = target.version {
        for defunct in DEFUNCT
            .iter()
            .filter(|d| d.key.eq_ignore_ascii_case(key) && (d.since)(&version))
        {
            let before = items.len();
            items.retain(|item| !item.trim().eq_ignore_ascii_case(defunct.item));
            if items.len() < before {
                warnings.push(format!(
                    "SlurmConf.{key}: {} left out for Slurm {version}: {}",
                    defunct.item, defunct.why
                ));
            }
        }
    }
    if target.cloud_dns
        && key.eq_ignore_ascii_case("SlurmctldParameters")
        && !items
            .iter()
            .any(|i| i.trim().eq_ignore_ascii_case("cloud_dns"))
    {
        items.push("cloud_dns".to_string());
    }
    let value = items.join(",");
    (!value.is_empty()).then_some(value)
}

/// The `slurm.conf` fragment: `SlurmConf` pairs in file order (fitted to
/// the target version), then per partition its `NodeName` lines and its
/// `PartitionName` line.
pub fn slurm_conf_for(config: &Config, target: &Target) -> Fragment {
    let mut out = String::new();
    let mut warnings = Vec::new();
    for (key, value) in &config.slurm_conf {
        if let Some(value) = fit_value(key, value, target, &mut warnings) {
            out.push_str(&format!("{key}={value}\n"));
        }
    }
    if target.cloud_dns && config.slurm_conf_value("SlurmctldParameters").is_none() {
        out.push_str("SlurmctldParameters=cloud_dns\n");
    }
    if let Some(version) = target.version {
        warnings.extend(version_warnings(&version, target.cloud_dns));
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
    Fragment {
        text: out,
        warnings,
    }
}

/// What the administrator of `version` should know about the nodes' names
/// (a budget Slurm would kill resume before is refused by the configuration).
fn version_warnings(version: &SlurmVersion, cloud_dns: bool) -> Vec<String> {
    let mut warnings = Vec::new();
    if version.resets_address_at_power_down() && !cloud_dns {
        warnings.push(format!(
            "Slurm {version} resets a powered-down node's NodeAddr to its name: make the node names resolvable (/etc/hosts, or DNS with --cloud-dns), or slurmctld stalls resolving them"
        ));
    }
    warnings
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
