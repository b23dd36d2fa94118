//! Read-only look-ups of what the configuration names in an account: zones,
//! launch templates, subnets, instance types and their offerings, and dry
//! runs of the calls the programs make. For `slurm-ec2 validate` and
//! `generate-conf --from-ec2`; no instance is launched or changed.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{Filter, InstanceType, LocationType, Tag};

use super::{Ec2Error, Meter};
use crate::config::LaunchTemplate;

/// Most `InstanceTypes` per DescribeInstanceTypes call.
const MAX_INSTANCE_TYPES_PER_CALL: usize = 100;

/// The version of a launch template that `Version` resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateVersion {
    pub id: String,
    pub name: String,
    pub version_number: i64,
    /// The template's own instance type, used by overrides that name none.
    pub instance_type: Option<String>,
    /// The template's own image, when it names one.
    pub image_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub availability_zone: String,
}

/// What generate-conf takes from an instance type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceTypeSpec {
    pub instance_type: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// `(name, count)` per GPU model, the name as EC2 gives it (`T4`, `A10G`).
    pub gpus: Vec<(String, u32)>,
}

/// How a dry run ended.
#[derive(Debug)]
pub enum DryRun {
    /// `DryRunOperation`: the caller may make the call.
    Permitted,
    /// `UnauthorizedOperation`, with EC2's error.
    Denied(Ec2Error),
    /// Anything else: the call was refused for another reason, or EC2 did not answer.
    Failed(Ec2Error),
}

impl DryRun {
    pub(super) fn from_result<T>(result: Result<T, Ec2Error>) -> DryRun {
        match result {
            // A dry run that "succeeds" is a dry run EC2 ignored: treat it as permitted.
            Ok(_) => DryRun::Permitted,
            Err(error) if error.code.is("DryRunOperation") => DryRun::Permitted,
            Err(error) if error.code.is("UnauthorizedOperation") => DryRun::Denied(error),
            Err(error) => DryRun::Failed(error),
        }
    }
}

/// The zones EC2 lists for the client's Region: the cheapest call that
/// proves the credentials, the profile and the Region answer.
pub(super) async fn availability_zones(
    client: &aws_sdk_ec2::Client,
    calls: &Meter,
) -> Result<Vec<String>, Ec2Error> {
    let request = client.describe_availability_zones();
    let output = calls
        .call("DescribeAvailabilityZones", "of the Region", || {
            request.clone().send()
        })
        .await?;
    Ok(output
        .availability_zones()
        .iter()
        .filter_map(|z| z.zone_name().map(str::to_string))
        .collect())
}

/// The version `template.version` (default `$Default`) resolves to.
pub(super) async fn template_version(
    client: &aws_sdk_ec2::Client,
    template: &LaunchTemplate,
    calls: &Meter,
) -> Result<Option<TemplateVersion>, Ec2Error> {
    let version = template.version.as_deref().unwrap_or("$Default");
    let which = template
        .id
        .as_deref()
        .or(template.name.as_deref())
        .unwrap_or_default();
    let request = client
        .describe_launch_template_versions()
        .set_launch_template_id(template.id.clone())
        .set_launch_template_name(template.name.clone())
        .versions(version);
    let what = format!("of {which} version {version}");
    let output = calls
        .call("DescribeLaunchTemplateVersions", &what, || {
            request.clone().send()
        })
        .await?;
    Ok(output
        .launch_template_versions()
        .first()
        .map(|v| TemplateVersion {
            id: v.launch_template_id().unwrap_or_default().to_string(),
            name: v.launch_template_name().unwrap_or_default().to_string(),
            version_number: v.version_number().unwrap_or_default(),
            instance_type: v
                .launch_template_data()
                .and_then(|d| d.instance_type())
                .map(|t| t.as_str().to_string()),
            image_id: v
                .launch_template_data()
                .and_then(|d| d.image_id())
                .map(str::to_string),
        }))
}

/// Every page of a paginated call: `page(token)` asks for one and returns
/// its items and the next token.
async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, Ec2Error>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>), Ec2Error>>,
{
    let mut items = Vec::new();
    let mut token = None;
    loop {
        let (more, next) = page(token).await?;
        items.extend(more);
        token = next.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(items);
        }
    }
}

/// The subnets of `ids` that exist, by a `subnet-id` filter (which, unlike
/// `SubnetIds`, does not fail the whole call on one unknown id).
pub(super) async fn subnets(
    client: &aws_sdk_ec2::Client,
    ids: &[String],
    calls: &Meter,
) -> Result<Vec<Subnet>, Ec2Error> {
    let filter = Filter::builder()
        .name("subnet-id")
        .set_values(Some(ids.to_vec()))
        .build();
    let what = format!("of {}", ids.join(", "));
    all_pages(|token| async {
        let request = client
            .describe_subnets()
            .filters(filter.clone())
            .set_next_token(token);
        let output = calls
            .call("DescribeSubnets", &what, || request.clone().send())
            .await?;
        let found = output.subnets().iter().filter_map(|s| {
            Some(Subnet {
                id: s.subnet_id()?.to_string(),
                availability_zone: s.availability_zone()?.to_string(),
            })
        });
        Ok((found.collect(), output.next_token().map(str::to_string)))
    })
    .await
}

/// Which `(instance type, zone)` pairs of `types` × `zones` EC2 offers.
pub(super) async fn offerings(
    client: &aws_sdk_ec2::Client,
    types: &[String],
    zones: &[String],
    calls: &Meter,
) -> Result<BTreeSet<(String, String)>, Ec2Error> {
    let filters = [
        Filter::builder()
            .name("instance-type")
            .set_values(Some(types.to_vec()))
            .build(),
        Filter::builder()
            .name("location")
            .set_values(Some(zones.to_vec()))
            .build(),
    ];
    let what = format!("of {} in {}", types.join(", "), zones.join(", "));
    let offered = all_pages(|token| async {
        let request = client
            .describe_instance_type_offerings()
            .location_type(LocationType::AvailabilityZone)
            .set_filters(Some(filters.to_vec()))
            .set_next_token(token);
        let output = calls
            .call("DescribeInstanceTypeOfferings", &what, || {
                request.clone().send()
            })
            .await?;
        let pairs = output.instance_type_offerings().iter().filter_map(|o| {
            Some((
                o.instance_type()?.as_str().to_string(),
                o.location()?.to_string(),
            ))
        });
        Ok((pairs.collect(), output.next_token().map(str::to_string)))
    })
    .await?;
    Ok(offered.into_iter().collect())
}

fn instance_type_spec(t: &aws_sdk_ec2::types::InstanceTypeInfo) -> Option<InstanceTypeSpec> {
    let gpus = t.gpu_info().map(|g| {
        g.gpus()
            .iter()
            .filter_map(|gpu| Some((gpu.name()?.to_string(), u32::try_from(gpu.count()?).ok()?)))
            .collect()
    });
    Some(InstanceTypeSpec {
        instance_type: t.instance_type()?.as_str().to_string(),
        vcpus: u32::try_from(t.v_cpu_info()?.default_v_cpus()?).ok()?,
        memory_mib: u64::try_from(t.memory_info()?.size_in_mib()?).ok()?,
        gpus: gpus.unwrap_or_default(),
    })
}

/// CPUs, memory and GPUs of each of `types`, 100 types a call.
pub(super) async fn instance_types(
    client: &aws_sdk_ec2::Client,
    types: &[String],
    calls: &Meter,
) -> Result<Vec<InstanceTypeSpec>, Ec2Error> {
    let mut specs = Vec::new();
    for batch in types.chunks(MAX_INSTANCE_TYPES_PER_CALL) {
        let wanted: Vec<InstanceType> = batch
            .iter()
            .map(|t| InstanceType::from(t.as_str()))
            .collect();
        let what = format!("of {}", batch.join(", "));
        specs.extend(
            all_pages(|token| async {
                let request = client
                    .describe_instance_types()
                    .set_instance_types(Some(wanted.clone()))
                    .set_next_token(token);
                let output = calls
                    .call("DescribeInstanceTypes", &what, || request.clone().send())
                    .await?;
                let found = output
                    .instance_types()
                    .iter()
                    .filter_map(instance_type_spec);
                Ok((found.collect(), output.next_token().map(str::to_string)))
            })
            .await?,
        );
    }
    Ok(specs)
}

/// An instance id that cannot exist, for the dry runs of calls on instances.
const NO_INSTANCE: &str = "i-00000000000000000";

pub(super) async fn dry_run_terminate(client: &aws_sdk_ec2::Client, calls: &Meter) -> DryRun {
    let request = client
        .terminate_instances()
        .dry_run(true)
        .instance_ids(NO_INSTANCE);
    DryRun::from_result(
        calls
            .call("TerminateInstances", "(dry run)", || request.clone().send())
            .await,
    )
}

pub(super) async fn dry_run_create_tags(
    client: &aws_sdk_ec2::Client,
    tags: &[(String, String)],
    calls: &Meter,
) -> DryRun {
    let request = client
        .create_tags()
        .dry_run(true)
        .resources(NO_INSTANCE)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ));
    DryRun::from_result(
        calls
            .call("CreateTags", "(dry run)", || request.clone().send())
            .await,
    )
}
