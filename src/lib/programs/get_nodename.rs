//! get-nodename: on a compute node, the Slurm node name resume gave this
//! instance, read from its `Name` tag over IMDSv2 (or, where the launch
//! template does not expose tags in metadata, from DescribeInstances).

use std::time::Duration;

use std::path::Path;
use std::sync::Arc;

use super::Outcome;
use crate::budget::{Backoff, Deadline};
use crate::config::{self, Config, Settings};
use crate::ec2::{Account, CallCounter, Clients};
use crate::imds::{InstanceMetadata, MetadataError};
use crate::names;

/// What get-nodename is asked beyond its configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// Give up after this long without a Name tag.
    pub timeout: Duration,
    /// On failure print the host name instead (the original plugin's behaviour).
    pub fallback_hostname: bool,
    /// Print `SLURM_NODENAME=<name>`, for a systemd environment file, and
    /// `SLURM_EC2_SLURMD_ARGS`: this instance's id and type for slurmd when
    /// the local `slurmd` is 23.11 or later (empty before).
    pub env: bool,
    /// The local slurmd, asked for its version with `--env`.
    pub slurmd: std::path::PathBuf,
}

/// On a compute node the configuration is optional: with it, the name is
/// checked. Only a `config.json` that does not exist at all means "no
/// configuration": a folder, a dangling link or a loop in its place is an error.
pub fn optional_config(dir: &Path) -> Result<Option<Config>, Outcome> {
    let absent = std::fs::symlink_metadata(dir.join(config::CONFIG_FILE))
        .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
    if absent {
        return Ok(None);
    }
    config::load(dir).map(Some).map_err(|error| {
        eprintln!("get-nodename: {error}");
        Outcome::BadInput
    })
}

/// `--check`: the configuration's summary, or that there is none.
pub fn check(dir: &Path, config: Option<&Config>) -> Outcome {
    match config {
        Some(config) => println!("{}", config.summary()),
        None => println!(
            "no configuration in {}: node names will not be checked",
            dir.display()
        ),
    }
    Outcome::Done
}

/// The program: prints this instance's node name alone on stdout, or says
/// why not on stderr and prints nothing (or, with `fallback_hostname`, the
/// host name).
pub fn run(config: Option<&Config>, options: &Options) -> Outcome {
    let settings = config.map(|c| c.settings.clone()).unwrap_or_default();
    let runtime = match crate::runtime::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("get-nodename: cannot start the async runtime: {error}");
            return Outcome::Failed;
        }
    };
    let result: Result<String, GetNameError> = runtime.block_on(async {
        let metadata = InstanceMetadata::new();
        let (name, source) = lookup(&metadata, &settings, options.timeout).await?;
        // With or without a configuration, what a tag says goes nowhere
        // unless it can be a node name: it ends up in root's slurmd's
        // environment file, where a newline would add a variable.
        if !names::is_node_name(&name) {
            return Err(GetNameError::NotANodeName { name });
        }
        tracing::info!("Node name {name} read from {source}");
        if let Some(config) = config {
            check_name(config, &name)?;
        }
        Ok(name)
    });
    let text = |name: &str| match options.env {
        true => format!("SLURM_NODENAME={name}\n"),
        false => format!("{name}\n"),
    };
    let output = match result {
        Ok(name) => {
            let mut output = text(&name);
            if options.env {
                let args = slurmd_arguments(&runtime, &options.slurmd);
                output.push_str(&format!("SLURM_EC2_SLURMD_ARGS={args}\n"));
            }
            output
        }
        Err(error) => {
            eprintln!("get-nodename: {error}");
            match super::hostname().filter(|h| options.fallback_hostname && names::is_node_name(h))
            {
                Some(hostname) => {
                    eprintln!("get-nodename: falling back to the host name {hostname}");
                    text(&hostname)
                }
                None => return Outcome::Failed,
            }
        }
    };
    match super::write_stdout(&output) {
        Ok(()) => Outcome::Done,
        Err(error) => {
            eprintln!("get-nodename: {error}");
            Outcome::Failed
        }
    }
}

/// `--instance-id <id> --instance-type <type>` for a slurmd of 23.11 or
/// later, so that it registers with them: slurmctld replaces the InstanceId
/// that resume recorded with the one slurmd reports, none without these.
/// Empty for an older slurmd, which refuses the options, and when metadata
/// does not give both.
fn slurmd_arguments(runtime: &tokio::runtime::Runtime, slurmd: &Path) -> String {
    let version = crate::slurm::SlurmCommand::new(slurmd, Duration::from_secs(10)).read_version();
    if !version.is_ok_and(|v| v.has_instance_fields()) {
        return String::new();
    }
    let metadata = InstanceMetadata::new();
    let deadline = Deadline::after(Duration::from_secs(10));
    let (id, kind) = runtime.block_on(async {
        let id = retrying(&deadline, || metadata.instance_id()).await;
        let kind = retrying(&deadline, || metadata.instance_type()).await;
        (id, kind)
    });
    let plain = |v: &str| {
        !v.is_empty()
            && v.len() <= 64
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    match (id, kind) {
        (Ok(id), Ok(kind)) if plain(&id) && plain(&kind) => {
            format!("--instance-id {id} --instance-type {kind}")
        }
        (id, kind) => {
            let why = [id.err(), kind.err()]
                .into_iter()
                .flatten()
                .map(|e| e.to_string())
                .next()
                .unwrap_or_else(|| "not an instance id and type".to_string());
            tracing::warn!("slurmd will not report this instance to Slurm: {why}");
            String::new()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameSource {
    MetadataTags,
    /// Its reservation's node list and its launch index, from metadata.
    MetadataNodeList,
    DescribeInstances,
}

impl std::fmt::Display for NameSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NameSource::MetadataTags => "instance metadata tags",
            NameSource::MetadataNodeList => {
                "its reservation's node list (slurm-ec2:nodes) and its launch index, in instance metadata"
            }
            NameSource::DescribeInstances => {
                "DescribeInstances (tags are not exposed in instance metadata)"
            }
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GetNameError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("instance {instance_id} has no Name tag after {} s", waited.as_secs())]
    NoName {
        instance_id: String,
        waited: Duration,
    },
    #[error("this instance's node name {name:?} is not a node of this cluster: {reason}")]
    NotOurs {
        name: String,
        reason: names::NameError,
    },
    #[error(
        "this instance's tags give {name:?}, which no Slurm node name can be (letters, digits, '-', '_' and '.', at most 64)"
    )]
    NotANodeName { name: String },
}

/// Retries `attempt` with back-off while it fails and `deadline` leaves room:
/// on a booting instance the metadata service may not answer at first.
async fn retrying<T, F, Fut>(deadline: &Deadline, mut attempt: F) -> Result<T, MetadataError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, MetadataError>>,
{
    let mut backoff = Backoff::new();
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => {
                if !backoff.wait(deadline).await {
                    return Err(error);
                }
                tracing::warn!("{error}; retrying");
            }
        }
    }
}

/// Waits, with back-off, until this instance has a `Name` tag or `timeout` runs out.
pub async fn lookup(
    metadata: &InstanceMetadata,
    settings: &Settings,
    timeout: Duration,
) -> Result<(String, NameSource), GetNameError> {
    let deadline = Deadline::after(timeout);
    let instance_id = retrying(&deadline, || metadata.instance_id()).await?;
    let tags_exposed = retrying(&deadline, || metadata.tags_exposed()).await?;
    let mut backoff = Backoff::new();
    if tags_exposed {
        loop {
            match metadata.tag("Name").await {
                Ok(Some(name)) if !name.is_empty() => {
                    return Ok((name, NameSource::MetadataTags));
                }
                Ok(_) => {}
                Err(error) => tracing::warn!("Reading the Name tag: {error}"),
            }
            if let Some(name) = name_from_node_list(metadata).await {
                return Ok((name, NameSource::MetadataNodeList));
            }
            if !backoff.wait(&deadline).await {
                return Err(GetNameError::NoName {
                    instance_id,
                    waited: timeout,
                });
            }
            tracing::info!("Instance {instance_id} has no Name tag yet; waiting");
        }
    }
    tracing::info!("Tags are not exposed in instance metadata; asking EC2 with DescribeInstances");
    let region = retrying(&deadline, || metadata.region()).await?;
    let account = Account {
        region,
        profile: None,
    };
    // The same EC2 set-up as every run's (pacing, retries, the deadline).
    let clients = Clients::new(settings, Arc::new(CallCounter::default()), deadline);
    let ec2 = clients.get(&account).await;
    loop {
        match ec2.describe(std::slice::from_ref(&instance_id)).await {
            Ok(instances) => {
                if let Some(name) = instances
                    .iter()
                    .find_map(|i| i.node_name())
                    .filter(|n| !n.is_empty())
                {
                    return Ok((name, NameSource::DescribeInstances));
                }
            }
            Err(error) => tracing::warn!("{error}"),
        }
        if !backoff.wait(&deadline).await {
            return Err(GetNameError::NoName {
                instance_id,
                waited: timeout,
            });
        }
        tracing::info!("Instance {instance_id} has no Name tag yet; waiting");
    }
}

/// This instance's node from its reservation's node list (written by resume
/// in one call for the whole reservation, before the `Name` tags) and its
/// `ami-launch-index`, both from metadata; None while they are not there.
async fn name_from_node_list(metadata: &InstanceMetadata) -> Option<String> {
    let mut tags = Vec::new();
    for key in crate::ec2::nodes_tag_keys() {
        match metadata.tag(&key).await {
            Ok(Some(value)) => tags.push((key, value)),
            _ => break,
        }
    }
    if tags.is_empty() {
        return None;
    }
    // An instance restarted from a warm pool: its place among the launch
    // indexes its node list names, never the list of its first launch.
    if let Ok(Some(indexes)) = metadata.tag(crate::ec2::INDEXES_TAG).await {
        tags.push((crate::ec2::INDEXES_TAG.to_string(), indexes));
    }
    let index = metadata.launch_index().await.ok()?;
    crate::ec2::node_in_nodes_tags(&tags, index)
}

/// Refuses a name that is not one of the configured nodes.
pub fn check_name(config: &Config, name: &str) -> Result<(), GetNameError> {
    names::parse(config, name)
        .map(|_| ())
        .map_err(|reason| GetNameError::NotOurs {
            name: name.to_string(),
            reason,
        })
}
