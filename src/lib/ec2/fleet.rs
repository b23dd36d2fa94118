use aws_sdk_ec2::types::{
    CapacityReservationOptionsRequest, DefaultTargetCapacityType,
    FleetCapacityReservationUsageStrategy, FleetLaunchTemplateConfigRequest,
    FleetLaunchTemplateOverridesRequest, FleetLaunchTemplateSpecificationRequest,
    FleetOnDemandAllocationStrategy, FleetType, InstanceType, OnDemandOptionsRequest, ResourceType,
    SpotAllocationStrategy, SpotInstanceInterruptionBehavior, SpotOptionsRequest, TagSpecification,
    TargetCapacitySpecificationRequest,
};

use aws_sdk_ec2::operation::create_fleet::builders::CreateFleetFluentBuilder;

use super::inspect::DryRun;
use super::{Ec2Error, Meter};
use crate::config::{FleetOptions, NodeGroup, Purchasing};

/// What one instant CreateFleet gave: the instances it launched and the errors
/// it listed for what it could not launch (a missing list is an empty list).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetOutcome {
    pub instance_ids: Vec<String>,
    /// `(ErrorCode, ErrorMessage)`, one per `Errors` entry.
    pub errors: Vec<(String, String)>,
}

/// Splits `count` nodes into CreateFleet batches of at most `batch_size`.
pub fn fleet_request_plan(count: usize, batch_size: usize) -> Vec<usize> {
    let batch_size = batch_size.max(1);
    (0..count)
        .step_by(batch_size)
        .map(|start| batch_size.min(count - start))
        .collect()
}

fn on_demand_options(options: &FleetOptions) -> OnDemandOptionsRequest {
    OnDemandOptionsRequest::builder()
        .set_allocation_strategy(
            options
                .allocation_strategy
                .as_deref()
                .map(FleetOnDemandAllocationStrategy::from),
        )
        .set_single_instance_type(options.single_instance_type)
        .set_single_availability_zone(options.single_availability_zone)
        .set_min_target_capacity(options.min_target_capacity)
        .set_max_total_price(options.max_total_price.clone())
        .set_capacity_reservation_options(options.capacity_reservation_usage.as_deref().map(
            |usage| {
                CapacityReservationOptionsRequest::builder()
                    .usage_strategy(FleetCapacityReservationUsageStrategy::from(usage))
                    .build()
            },
        ))
        .build()
}

fn spot_options(options: Option<&FleetOptions>) -> SpotOptionsRequest {
    let options = options.cloned().unwrap_or_default();
    SpotOptionsRequest::builder()
        .set_allocation_strategy(
            options
                .allocation_strategy
                .as_deref()
                .map(SpotAllocationStrategy::from),
        )
        .set_single_instance_type(options.single_instance_type)
        .set_single_availability_zone(options.single_availability_zone)
        .set_min_target_capacity(options.min_target_capacity)
        .set_max_total_price(options.max_total_price)
        .set_instance_pools_to_use_count(options.instance_pools_to_use_count)
        // A node must never come back as a stopped or hibernated instance.
        .instance_interruption_behavior(SpotInstanceInterruptionBehavior::Terminate)
        .build()
}

/// All or none of `count`: `MinTargetCapacity=count`, which EC2 accepts only
/// with `SingleInstanceType` or `SingleAvailabilityZone`; the latter is set
/// unless the node group asks for the former.
fn all_or_nothing_options(mut options: FleetOptions, count: i32) -> FleetOptions {
    options.min_target_capacity = Some(count);
    if options.single_instance_type != Some(true) {
        options.single_availability_zone = Some(true);
    }
    options
}

/// The launch template with every override × every subnet, each of weight 1.
fn launch_template_config(group: &NodeGroup) -> FleetLaunchTemplateConfigRequest {
    let template = FleetLaunchTemplateSpecificationRequest::builder()
        .set_launch_template_id(group.launch_template.id.clone())
        .set_launch_template_name(group.launch_template.name.clone())
        .set_version(group.launch_template.version.clone())
        .build();
    let overrides: Vec<FleetLaunchTemplateOverridesRequest> = group
        .overrides
        .iter()
        .flat_map(|o| {
            group.subnet_ids.iter().map(move |subnet| {
                FleetLaunchTemplateOverridesRequest::builder()
                    .set_instance_type(o.instance_type.as_deref().map(InstanceType::from))
                    .set_max_price(o.max_price.clone())
                    .set_availability_zone(o.availability_zone.clone())
                    .set_priority(o.priority)
                    .set_image_id(o.image_id.clone())
                    .subnet_id(subnet)
                    .weighted_capacity(1.0)
                    .build()
            })
        })
        .collect();
    FleetLaunchTemplateConfigRequest::builder()
        .launch_template_specification(template)
        .set_overrides(Some(overrides))
        .build()
}

/// `tags` on the instances, from their first moment.
fn instance_tags(tags: &[(String, String)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

/// The instant CreateFleet of `count` instances of `group`: the launch
/// template, every override × every subnet with weight 1, the capacity type
/// of `PurchasingOption`, and `tags` on the instances from their first moment.
fn fleet_request(
    client: &aws_sdk_ec2::Client,
    group: &NodeGroup,
    count: usize,
    tags: &[(String, String)],
    all_or_nothing: bool,
) -> CreateFleetFluentBuilder {
    let capacity_type = match group.purchasing {
        Purchasing::Spot => DefaultTargetCapacityType::Spot,
        Purchasing::OnDemand => DefaultTargetCapacityType::OnDemand,
    };
    let total = i32::try_from(count).unwrap_or(i32::MAX);
    let capacity = TargetCapacitySpecificationRequest::builder()
        .total_target_capacity(total)
        .default_target_capacity_type(capacity_type)
        .build();
    let request = client
        .create_fleet()
        .r#type(FleetType::Instant)
        .target_capacity_specification(capacity)
        .launch_template_configs(launch_template_config(group))
        .tag_specifications(instance_tags(tags));
    let options = match group.purchasing {
        Purchasing::OnDemand => group.on_demand_options.clone(),
        Purchasing::Spot => group.spot_options.clone(),
    };
    let options = match all_or_nothing {
        true => Some(all_or_nothing_options(options.unwrap_or_default(), total)),
        false => options,
    };
    match group.purchasing {
        Purchasing::OnDemand => {
            request.set_on_demand_options(options.as_ref().map(on_demand_options))
        }
        Purchasing::Spot => request.spot_options(spot_options(options.as_ref())),
    }
}

/// The CreateFleet of one node of `group`, with `DryRun`: EC2 checks the
/// request and the caller's permission, and launches nothing.
pub(super) async fn dry_run_create_fleet(
    client: &aws_sdk_ec2::Client,
    group: &NodeGroup,
    tags: &[(String, String)],
    calls: &Meter,
) -> DryRun {
    let what = format!("for {} (dry run)", group.node_prefix());
    let request = fleet_request(client, group, 1, tags, false).dry_run(true);
    let result = calls
        .call("CreateFleet", &what, || request.clone().send())
        .await;
    DryRun::from_result(result)
}

/// What one CreateFleet asks for.
#[derive(Debug, Clone, Copy)]
pub struct LaunchRequest<'a> {
    pub count: usize,
    /// The tags every instance carries from launch.
    pub tags: &'a [(String, String)],
    pub all_or_nothing: bool,
    pub client_token: &'a str,
}

/// A new CreateFleet idempotency token: EC2 launches once for all the calls
/// that carry the same one (at most 64 ASCII characters).
pub fn new_client_token() -> String {
    format!(
        "slurm-ec2-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    )
}

/// Launches `count` instances of `group` with one instant fleet. A call
/// repeated with the same `client_token` (after a timeout or a lost answer)
/// gets the first call's instances instead of new ones.
pub(super) async fn create_fleet(
    client: &aws_sdk_ec2::Client,
    group: &NodeGroup,
    request: LaunchRequest<'_>,
    calls: &Meter,
) -> Result<FleetOutcome, Ec2Error> {
    let LaunchRequest {
        count,
        tags,
        all_or_nothing,
        client_token,
    } = request;
    let request =
        fleet_request(client, group, count, tags, all_or_nothing).client_token(client_token);
    let what = format!("for {count} node(s) of {}", group.node_prefix());
    let output = calls
        .call("CreateFleet", &what, || request.clone().send())
        .await?;
    Ok(FleetOutcome {
        instance_ids: output
            .instances()
            .iter()
            .flat_map(|entry| entry.instance_ids().iter().cloned())
            .collect(),
        errors: output
            .errors()
            .iter()
            .map(|e| {
                (
                    e.error_code().unwrap_or("Unknown").to_string(),
                    e.error_message().unwrap_or_default().to_string(),
                )
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_of_at_most_the_batch_size() {
        assert_eq!(fleet_request_plan(1, 500), vec![1]);
        assert_eq!(fleet_request_plan(500, 500), vec![500]);
        assert_eq!(fleet_request_plan(501, 500), vec![500, 1]);
        assert_eq!(fleet_request_plan(1000, 500), vec![500, 500]);
        assert_eq!(fleet_request_plan(0, 500), Vec::<usize>::new());
    }
}
