//! EC2 through the Rust SDK: clients, fleets, instance look-ups, tags and
//! terminations, each batched to the API's documented limits.

mod client;
mod describe;
mod error;
mod fleet;
mod handle;
mod health;
mod inspect;
mod meter;
mod pace;
mod pool_tags;
mod power;
mod state;
mod tags;
mod terminate;

pub use crate::config::Account;
pub use client::{NoCertificates, check_trust_store, https_client};
pub use describe::Instance;
pub use error::{Ec2Error, error_chain, is_capacity, is_throttling};
pub use fleet::{FleetOutcome, LaunchRequest, fleet_request_plan, new_client_token};
pub use handle::{Clients, Ec2};
pub use health::{Health, MAX_STATUS_IDS, ScheduledEvent};
pub use inspect::{DryRun, InstanceTypeSpec, Subnet, TemplateVersion};
pub(crate) use meter::Meter;
pub use meter::{CallCounter, Trouble};
pub use pool_tags::{
    FIRST_LAUNCH_TAG, INDEXES_TAG, POOL_TAG, POOLED_AT_TAG, indexes_text, pooling_tags,
    unpooling_tags,
};
pub use power::Started;
pub use state::InstanceState;
pub use tags::{
    ACCOUNT_TAG, CLUSTER_TAG, JOB_ID_TAG, NODE_GROUP_TAG, NODES_TAG, PARTITION_TAG, USER_TAG,
    launch_tags, node_in_nodes_tags, node_list_room, node_tags, nodes_tag_keys, nodes_tags,
};

/// An instance id and the tags it is to get.
pub type TagRequest = (String, Vec<(String, String)>);

/// EC2's code for an instance id it does not know (yet, right after a launch).
pub const INSTANCE_NOT_FOUND: &str = "InvalidInstanceID.NotFound";

/// The most filter values EC2 accepts in one DescribeInstances call.
pub const MAX_FILTER_VALUES: usize = 200;
/// The most instance ids per DescribeInstances or TerminateInstances call.
pub const MAX_IDS_PER_CALL: usize = 1000;
