//! get-nodename: on a compute node, the Slurm node name resume gave this
//! instance, read from its `Name` tag over IMDSv2 (or, where the launch
//! template does not expose tags in metadata, from DescribeInstances).

use std::time::Duration;

use aws_config::imds::client::error::ImdsError;
use aws_config::provider_config::ProviderConfig;

use std::path::Path;
use std::sync::Arc;

use super::Outcome;
use crate::budget::{Backoff, Deadline};
use crate::config::{self, Config, Settings};
use crate::ec2::{Account, CallCounter, Ec2};
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
    let runtime = match super::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("get-nodename: cannot start the async runtime: {error}");
            return Outcome::Failed;
        }
    };
    let result: Result<String, GetNameError> = runtime.block_on(async {
        let (name, source) = lookup(&imds_client(), &settings, options.timeout).await?;
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
                let args = runtime.block_on(slurmd_arguments(&imds_client(), &options.slurmd));
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
async fn slurmd_arguments(imds: &aws_config::imds::Client, slurmd: &Path) -> String {
    let version = crate::slurm::Scontrol::new(slurmd, Duration::from_secs(10)).version();
    if !version.is_some_and(|v| v.has_instance_fields()) {
        return String::new();
    }
    let deadline = Deadline::after(Duration::from_secs(10));
    let id = retrying(&deadline, || get(imds, "/latest/meta-data/instance-id")).await;
    let kind = retrying(&deadline, || get(imds, "/latest/meta-data/instance-type")).await;
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
    #[error("cannot read {path} from instance metadata (IMDSv2): {message}")]
    Metadata { path: &'static str, message: String },
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

fn describe_imds_error(error: &ImdsError) -> String {
    match error {
        ImdsError::ErrorResponse(response) => {
            format!("HTTP {}", response.response().status().as_u16())
        }
        other => crate::ec2::error_chain(other),
    }
}

fn is_not_found(error: &ImdsError) -> bool {
    matches!(error, ImdsError::ErrorResponse(r) if r.response().status().as_u16() == 404)
}

/// An IMDSv2-only client: the endpoint override `AWS_EC2_METADATA_SERVICE_ENDPOINT` applies.
pub fn imds_client() -> aws_config::imds::Client {
    aws_config::imds::Client::builder()
        .configure(&ProviderConfig::default().with_http_client(crate::ec2::https_client()))
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(2))
        // The one retry is ours (`retrying`, and the look-up's own polling).
        .max_attempts(1)
        .build()
}

async fn get(imds: &aws_config::imds::Client, path: &'static str) -> Result<String, GetNameError> {
    imds.get(path)
        .await
        .map(|value| value.as_ref().trim().to_string())
        .map_err(|e| GetNameError::Metadata {
            path,
            message: describe_imds_error(&e),
        })
}

/// Retries `attempt` with back-off while it fails and `deadline` leaves room:
/// on a booting instance the metadata service may not answer at first.
async fn retrying<T, F, Fut>(deadline: &Deadline, mut attempt: F) -> Result<T, GetNameError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, GetNameError>>,
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

/// Whether the launch template exposes tags in instance metadata.
async fn tags_exposed(imds: &aws_config::imds::Client) -> Result<bool, GetNameError> {
    match imds.get("/latest/meta-data/tags/instance").await {
        Ok(_) => Ok(true),
        Err(error) if is_not_found(&error) => Ok(false),
        Err(error) => Err(GetNameError::Metadata {
            path: "/latest/meta-data/tags/instance",
            message: describe_imds_error(&error),
        }),
    }
}

/// Waits, with back-off, until this instance has a `Name` tag or `timeout` runs out.
pub async fn lookup(
    imds: &aws_config::imds::Client,
    settings: &Settings,
    timeout: Duration,
) -> Result<(String, NameSource), GetNameError> {
    let deadline = Deadline::after(timeout);
    let instance_id = retrying(&deadline, || get(imds, "/latest/meta-data/instance-id")).await?;
    let tags_exposed = retrying(&deadline, || tags_exposed(imds)).await?;
    let mut backoff = Backoff::new();
    if tags_exposed {
        loop {
            match imds.get("/latest/meta-data/tags/instance/Name").await {
                Ok(name) if !name.as_ref().trim().is_empty() => {
                    return Ok((name.as_ref().trim().to_string(), NameSource::MetadataTags));
                }
                Ok(_) => {}
                Err(error) if is_not_found(&error) => {}
                Err(error) => {
                    tracing::warn!("Reading the Name tag: {}", describe_imds_error(&error))
                }
            }
            if let Some(name) = name_from_node_list(imds).await {
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
    let region = retrying(&deadline, || {
        get(imds, "/latest/meta-data/placement/region")
    })
    .await?;
    let account = Account {
        region,
        profile: None,
    };
    let ec2 = Ec2::connect(
        account,
        settings,
        Arc::new(CallCounter::default()),
        deadline,
    )
    .await;
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
async fn name_from_node_list(imds: &aws_config::imds::Client) -> Option<String> {
    let mut tags = Vec::new();
    for part in 0..8 {
        let key = match part {
            0 => crate::ec2::NODES_TAG.to_string(),
            n => format!("{}.{n}", crate::ec2::NODES_TAG),
        };
        match imds
            .get(&format!("/latest/meta-data/tags/instance/{key}"))
            .await
        {
            Ok(value) => tags.push((key, value.as_ref().trim().to_string())),
            Err(_) => break,
        }
    }
    if tags.is_empty() {
        return None;
    }
    let index = imds.get("/latest/meta-data/ami-launch-index").await.ok()?;
    let index: usize = index.as_ref().trim().parse().ok()?;
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
