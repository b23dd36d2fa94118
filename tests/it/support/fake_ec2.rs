//! A small stateful EC2 behind wiremock: enough of CreateFleet,
//! DescribeInstances, CreateTags and TerminateInstances to test the programs'
//! requests on the wire, with the faults moto cannot make.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use wiremock::{Request, Respond, ResponseTemplate};

pub type Params = BTreeMap<String, String>;

#[derive(Debug, Clone, Default)]
pub struct FakeInstance {
    pub id: String,
    pub state: String,
    pub ip: String,
    pub tags: Vec<(String, String)>,
    /// DescribeInstances-by-id calls during which this instance is still invisible.
    pub hidden_for: usize,
    /// Its launch's reservation and its `AmiLaunchIndex` there.
    pub reservation: String,
    pub launch_index: usize,
}

impl FakeInstance {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Faults to inject, consumed as calls arrive.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// A CreateFleet launches at most this many instances in all (then `capacity_code`).
    pub capacity_left: Option<usize>,
    pub capacity_code: Option<String>,
    /// The next n CreateFleet calls fail with HTTP 503 RequestLimitExceeded.
    pub fleet_http_throttles: usize,
    /// The next n CreateFleet calls launch nothing and list RequestLimitExceeded in Errors.
    pub fleet_error_throttles: usize,
    /// Every CreateFleet fails with HTTP 400 and this code.
    pub fleet_failure: Option<String>,
    /// New instances stay invisible to this many DescribeInstances-by-id calls.
    pub describe_lag: usize,
    /// CreateTags naming these nodes fails with UnauthorizedOperation.
    pub untaggable_nodes: HashSet<String>,
    /// Only the CreateTags of these nodes' `Name` fails so.
    pub unnameable_nodes: HashSet<String>,
    /// DescribeInstances answers as if tag filters matched every instance, as
    /// EC2 does for a pattern: the programs must check the tags themselves.
    pub ignore_tag_filters: bool,
    /// These instances vanish just before a TerminateInstances names them, so
    /// that it answers InvalidInstanceID.NotFound for the whole call, as EC2 does.
    pub vanish_on_terminate: HashSet<String>,
    /// CreateFleet answers this late (its instances exist at once, as on EC2).
    pub fleet_delay: Option<std::time::Duration>,
    /// The next n CreateFleet calls launch (once per ClientToken) but answer
    /// HTTP 500, as when EC2's answer is lost on the way.
    pub fleet_answers_lost: usize,
    /// Actions whose dry runs answer UnauthorizedOperation.
    pub denied: HashSet<String>,
    /// Every call answers AuthFailure, as for credentials EC2 does not know.
    pub auth_failure: bool,
    /// DescribeInstanceStatus: instances whose instance status check failed
    /// at this time (RFC 3339).
    pub impaired_since: HashMap<String, String>,
    /// DescribeInstanceStatus: `(code, description, not before)` events
    /// scheduled for these instances.
    pub scheduled_events: HashMap<String, Vec<(String, String, String)>>,
    /// DescribeInstanceStatus answers UnauthorizedOperation, as for a policy
    /// written before change-state asked it.
    pub status_denied: bool,
}

/// `(instance type, vCPUs, MiB, [(GPU name, count)])`.
pub type FakeInstanceType = (String, u32, u64, Vec<(String, u32)>);

/// What the account holds besides instances, for the read-only look-ups.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// `(id, name, versions, the template's instance type)`.
    pub templates: Vec<(String, String, Vec<i64>, Option<String>)>,
    /// `(subnet id, zone)`.
    pub subnets: Vec<(String, String)>,
    /// `(instance type, zone)` pairs EC2 offers.
    pub offerings: HashSet<(String, String)>,
    pub instance_types: Vec<FakeInstanceType>,
}

impl Default for Catalog {
    /// What `test_partitions` names: the template `compute`, two subnets in
    /// two zones, c5.xlarge and c4.xlarge offered in both, and the data of a
    /// few instance types as EC2 gives it.
    fn default() -> Self {
        let zones = ["us-east-1a", "us-east-1b"];
        let types = [
            ("c5.xlarge", 4, 8192, vec![]),
            ("c4.xlarge", 4, 7680, vec![]),
            ("g4dn.xlarge", 4, 16384, vec![("T4".to_string(), 1)]),
            ("g4dn.2xlarge", 8, 32768, vec![("T4".to_string(), 1)]),
            ("g5.12xlarge", 48, 196608, vec![("A10G".to_string(), 4)]),
        ];
        Catalog {
            templates: vec![(
                "lt-0123456789abcdef0".into(),
                "compute".into(),
                vec![1, 2],
                None,
            )],
            subnets: vec![
                ("subnet-11111111".into(), zones[0].into()),
                ("subnet-22222222".into(), zones[1].into()),
            ],
            offerings: types
                .iter()
                .flat_map(|(t, ..)| zones.iter().map(move |z| (t.to_string(), z.to_string())))
                .collect(),
            instance_types: types
                .into_iter()
                .map(|(t, cpus, mib, gpus)| (t.to_string(), cpus, mib, gpus))
                .collect(),
        }
    }
}

#[derive(Debug, Default)]
pub struct State {
    pub instances: Vec<FakeInstance>,
    pub requests: Vec<Params>,
    pub faults: Faults,
    pub catalog: Catalog,
    next_id: usize,
    /// CreateFleet's answer by ClientToken: a repeated token launches
    /// nothing and gets the first answer, as EC2 documents.
    fleet_answers: HashMap<String, String>,
}

#[derive(Clone, Default)]
pub struct FakeEc2(pub Arc<Mutex<State>>);

impl FakeEc2 {
    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().expect("fake EC2 state")
    }

    pub fn calls(&self, action: &str) -> Vec<Params> {
        self.state()
            .requests
            .iter()
            .filter(|p| p.get("Action").map(String::as_str) == Some(action))
            .cloned()
            .collect()
    }

    pub fn live(&self) -> Vec<FakeInstance> {
        self.state()
            .instances
            .iter()
            .filter(|i| i.state == "running")
            .cloned()
            .collect()
    }

    /// Adds a running instance with these tags, as if launched earlier.
    pub fn add_instance(&self, tags: &[(&str, &str)]) -> String {
        let mut state = self.state();
        let instance = new_instance(
            &mut state,
            tags.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let id = instance.id.clone();
        state.instances.push(instance);
        id
    }
}

fn new_instance(state: &mut State, tags: Vec<(String, String)>) -> FakeInstance {
    state.next_id += 1;
    let n = state.next_id;
    FakeInstance {
        id: format!("i-{n:017x}"),
        state: "running".into(),
        ip: format!("10.0.{}.{}", n / 250, n % 250 + 1),
        tags,
        hidden_for: state.faults.describe_lag,
        reservation: format!("r-{n:017x}"),
        launch_index: 0,
    }
}

/// The values of `Prefix.1`, `Prefix.2`, … in order.
pub fn list(params: &Params, prefix: &str) -> Vec<String> {
    (1..)
        .map_while(|i| params.get(&format!("{prefix}.{i}")).cloned())
        .collect()
}

/// `Prefix.N.Key`/`Prefix.N.Value` pairs.
fn pairs(params: &Params, prefix: &str, key: &str, value: &str) -> Vec<(String, String)> {
    (1..)
        .map_while(|i| {
            let k = params.get(&format!("{prefix}.{i}.{key}"))?;
            Some((
                k.clone(),
                params
                    .get(&format!("{prefix}.{i}.{value}"))
                    .cloned()
                    .unwrap_or_default(),
            ))
        })
        .collect()
}

/// `Filter.N.Name` with its `Filter.N.Value.M` values.
pub fn filters(params: &Params) -> Vec<(String, Vec<String>)> {
    (1..)
        .map_while(|i| {
            let name = params.get(&format!("Filter.{i}.Name"))?;
            Some((name.clone(), list(params, &format!("Filter.{i}.Value"))))
        })
        .collect()
}

fn xml(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "text/xml")
}

fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>req-1</RequestID></Response>"
    );
    ResponseTemplate::new(status).set_body_raw(body, "text/xml")
}

const NS: &str = "xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"";

impl Respond for FakeEc2 {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let params: Params = form_urlencoded::parse(&request.body).into_owned().collect();
        let mut state = self.state();
        state.requests.push(params.clone());
        let action = params.get("Action").cloned().unwrap_or_default();
        if state.faults.auth_failure {
            return error(
                401,
                "AuthFailure",
                "AWS was not able to validate the provided access credentials",
            );
        }
        if params.get("DryRun").map(String::as_str) == Some("true") {
            return match state.faults.denied.contains(&action) {
                true => error(
                    403,
                    "UnauthorizedOperation",
                    "You are not authorized to perform this operation.",
                ),
                false => error(
                    412,
                    "DryRunOperation",
                    "Request would have succeeded, but DryRun flag is set.",
                ),
            };
        }
        match params.get("Action").map(String::as_str) {
            Some("CreateFleet") => {
                let answer = create_fleet(&mut state, &params);
                match state.faults.fleet_delay {
                    Some(delay) => answer.set_delay(delay),
                    None => answer,
                }
            }
            Some("DescribeInstances") => describe(&mut state, &params),
            Some("CreateTags") => create_tags(&mut state, &params),
            Some("TerminateInstances") => terminate(&mut state, &params),
            Some("DescribeInstanceStatus") if state.faults.status_denied => error(
                403,
                "UnauthorizedOperation",
                "You are not authorized to perform this operation.",
            ),
            Some("DescribeInstanceStatus") => instance_status(&state, &params),
            Some("DescribeAvailabilityZones") => availability_zones(&state),
            Some("DescribeLaunchTemplateVersions") => template_versions(&state, &params),
            Some("DescribeSubnets") => subnets(&state, &params),
            Some("DescribeInstanceTypeOfferings") => offerings(&state, &params),
            Some("DescribeInstanceTypes") => instance_types(&state, &params),
            other => error(400, "InvalidAction", &format!("{other:?} is not faked")),
        }
    }
}

fn create_fleet(state: &mut State, params: &Params) -> ResponseTemplate {
    let token = params.get("ClientToken").cloned();
    let answer = match token.as_ref().and_then(|t| state.fleet_answers.get(t)) {
        Some(answer) => answer.clone(),
        None => {
            let answer = launch_fleet(state, params);
            if let (Some(token), Ok(body)) = (token, &answer) {
                state.fleet_answers.insert(token, body.clone());
            }
            match answer {
                Ok(body) => body,
                Err(refusal) => return *refusal,
            }
        }
    };
    if state.faults.fleet_answers_lost > 0 {
        state.faults.fleet_answers_lost -= 1;
        return error(500, "InternalError", "An internal error has occurred.");
    }
    xml(answer)
}

/// The instances of one CreateFleet, and its answer; or its refusal.
fn launch_fleet(state: &mut State, params: &Params) -> Result<String, Box<ResponseTemplate>> {
    if let Some(code) = state.faults.fleet_failure.clone() {
        return Err(Box::new(error(400, &code, "the fleet request failed")));
    }
    if state.faults.fleet_http_throttles > 0 {
        state.faults.fleet_http_throttles -= 1;
        let throttled = error(503, "RequestLimitExceeded", "Request limit exceeded.");
        return Err(Box::new(throttled));
    }
    let wanted: usize = params
        .get("TargetCapacitySpecification.TotalTargetCapacity")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut errors = Vec::new();
    let mut count = wanted;
    if state.faults.fleet_error_throttles > 0 {
        state.faults.fleet_error_throttles -= 1;
        count = 0;
        errors.push((
            "RequestLimitExceeded".to_string(),
            "Request limit exceeded.".to_string(),
        ));
    } else if let Some(left) = state.faults.capacity_left {
        count = wanted.min(left);
        // MinTargetCapacity: EC2 launches at least that many, or none.
        let minimum: usize = ["OnDemandOptions", "SpotOptions"]
            .iter()
            .find_map(|o| params.get(&format!("{o}.MinTargetCapacity"))?.parse().ok())
            .unwrap_or(0);
        if count < minimum {
            count = 0;
        }
        state.faults.capacity_left = Some(left - count);
        if count < wanted {
            let code = state
                .faults
                .capacity_code
                .clone()
                .unwrap_or("InsufficientInstanceCapacity".into());
            errors.push((
                code,
                "We currently do not have sufficient capacity.".to_string(),
            ));
        }
    }
    let tags = pairs(params, "TagSpecification.1.Tag", "Key", "Value");
    let mut ids = Vec::new();
    // One reservation per fleet, its instances numbered from 0, as EC2 does.
    let reservation = format!("r-fleet-{}", state.next_id + 1);
    for index in 0..count {
        let mut instance = new_instance(state, tags.clone());
        instance.reservation = reservation.clone();
        instance.launch_index = index;
        ids.push(instance.id.clone());
        state.instances.push(instance);
    }
    let ids_xml: String = ids.iter().map(|id| format!("<item>{id}</item>")).collect();
    let errors_xml: String = errors
        .iter()
        .map(|(code, message)| {
            format!("<item><errorCode>{code}</errorCode><errorMessage>{message}</errorMessage><lifecycle>on-demand</lifecycle></item>")
        })
        .collect();
    let instances_xml = if ids.is_empty() {
        String::new()
    } else {
        format!(
            "<item><instanceIds>{ids_xml}</instanceIds><lifecycle>on-demand</lifecycle><instanceType>c5.xlarge</instanceType></item>"
        )
    };
    Ok(format!(
        "<CreateFleetResponse {NS}><requestId>req-1</requestId><fleetId>fleet-1</fleetId><errorSet>{errors_xml}</errorSet><fleetInstanceSet>{instances_xml}</fleetInstanceSet></CreateFleetResponse>"
    ))
}

fn describe(state: &mut State, params: &Params) -> ResponseTemplate {
    let filters = filters(params);
    // By `InstanceIds` or by an `instance-id` filter: either way a new
    // instance may still be invisible.
    let mut ids = list(params, "InstanceId");
    ids.extend(
        filters
            .iter()
            .filter(|(name, _)| name == "instance-id")
            .flat_map(|(_, values)| values.iter().cloned()),
    );
    let values: usize = filters.iter().map(|(_, v)| v.len()).sum();
    if values > 200 {
        return error(
            400,
            "FilterLimitExceeded",
            "The maximum number of filter values specified on a single call is 200",
        );
    }
    let mut selected = Vec::new();
    let ignore_tags = state.faults.ignore_tag_filters;
    for instance in state.instances.iter_mut() {
        if !ids.is_empty() {
            if !ids.contains(&instance.id) {
                continue;
            }
            if instance.hidden_for > 0 {
                instance.hidden_for -= 1;
                continue;
            }
        }
        let matches = filters.iter().all(|(name, values)| match name.as_str() {
            "instance-state-name" => values.contains(&instance.state),
            "instance-id" => values.contains(&instance.id),
            tag if tag.starts_with("tag:") && ignore_tags => true,
            tag if tag.starts_with("tag:") => instance
                .tag(&tag[4..])
                .is_some_and(|v| values.iter().any(|x| x == v)),
            _ => true,
        });
        if matches {
            selected.push(instance.clone());
        }
    }
    let items: String = selected
        .iter()
        .map(|i| {
            let tags: String = i
                .tags
                .iter()
                .map(|(k, v)| format!("<item><key>{k}</key><value>{v}</value></item>"))
                .collect();
            let dns = format!("ip-{}.ec2.internal", i.ip.replace('.', "-"));
            // Launched an hour ago: past any launch grace of the tests.
            let launched = (chrono::Utc::now() - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%S.000Z");
            format!(
                "<item><reservationId>{}</reservationId><instancesSet><item><instanceId>{}</instanceId><instanceState><code>16</code><name>{}</name></instanceState><privateDnsName>{dns}</privateDnsName><privateIpAddress>{}</privateIpAddress><amiLaunchIndex>{}</amiLaunchIndex><instanceType>c5.xlarge</instanceType><launchTime>{launched}</launchTime><tagSet>{tags}</tagSet></item></instancesSet></item>",
                i.reservation, i.id, i.state, i.ip, i.launch_index
            )
        })
        .collect();
    xml(format!(
        "<DescribeInstancesResponse {NS}><requestId>req-1</requestId><reservationSet>{items}</reservationSet></DescribeInstancesResponse>"
    ))
}

fn create_tags(state: &mut State, params: &Params) -> ResponseTemplate {
    let ids = list(params, "ResourceId");
    let tags = pairs(params, "Tag", "Key", "Value");
    // A node is untaggable by its Name, or in a reservation's node list.
    let named: Vec<String> = tags
        .iter()
        .flat_map(|(k, v)| match k.as_str() {
            "Name" => vec![v.clone()],
            "slurm-ec2:nodes" => slurm_ec2::hostlist::expand(v).unwrap_or_default(),
            _ => Vec::new(),
        })
        .collect();
    let refused = |nodes: &HashSet<String>| named.iter().any(|n| nodes.contains(n));
    let name_only = tags.iter().any(|(k, _)| k == "Name");
    if refused(&state.faults.untaggable_nodes)
        || (name_only && refused(&state.faults.unnameable_nodes))
    {
        return error(
            403,
            "UnauthorizedOperation",
            "You are not authorized to perform this operation.",
        );
    }
    for id in &ids {
        let Some(instance) = state.instances.iter_mut().find(|i| &i.id == id) else {
            return error(
                400,
                "InvalidInstanceID.NotFound",
                &format!("The instance ID '{id}' does not exist"),
            );
        };
        for (key, value) in &tags {
            instance.tags.retain(|(k, _)| k != key);
            instance.tags.push((key.clone(), value.clone()));
        }
    }
    xml(format!(
        "<CreateTagsResponse {NS}><requestId>req-1</requestId><return>true</return></CreateTagsResponse>"
    ))
}

fn terminate(state: &mut State, params: &Params) -> ResponseTemplate {
    let ids = list(params, "InstanceId");
    let vanish = std::mem::take(&mut state.faults.vanish_on_terminate);
    state.instances.retain(|i| !vanish.contains(&i.id));
    let unknown: Vec<&String> = ids
        .iter()
        .filter(|id| !state.instances.iter().any(|i| &i.id == *id))
        .collect();
    if !unknown.is_empty() {
        let names: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        return error(
            400,
            "InvalidInstanceID.NotFound",
            &format!("The instance IDs '{}' do not exist", names.join(", ")),
        );
    }
    let mut items = String::new();
    for instance in state.instances.iter_mut().filter(|i| ids.contains(&i.id)) {
        instance.state = "terminated".into();
        items.push_str(&format!(
            "<item><instanceId>{}</instanceId><currentState><code>48</code><name>terminated</name></currentState><previousState><code>16</code><name>running</name></previousState></item>",
            instance.id
        ));
    }
    xml(format!(
        "<TerminateInstancesResponse {NS}><requestId>req-1</requestId><instancesSet>{items}</instancesSet></TerminateInstancesResponse>"
    ))
}

/// The running instances among the ids asked for, with the status checks
/// and events the faults give them (all passing, none, by default).
fn instance_status(state: &State, params: &Params) -> ResponseTemplate {
    let ids = list(params, "InstanceId");
    let faults = &state.faults;
    let mut items = String::new();
    for instance in state
        .instances
        .iter()
        .filter(|i| ids.contains(&i.id) && i.state == "running")
    {
        let check = match faults.impaired_since.get(&instance.id) {
            Some(since) => format!(
                "<status>impaired</status><details><item><name>reachability</name><status>failed</status><impairedSince>{since}</impairedSince></item></details>"
            ),
            None => "<status>ok</status><details><item><name>reachability</name><status>passed</status></item></details>".to_string(),
        };
        let events: String = faults
            .scheduled_events
            .get(&instance.id)
            .into_iter()
            .flatten()
            .map(|(code, description, not_before)| {
                format!(
                    "<item><code>{code}</code><description>{description}</description><notBefore>{not_before}</notBefore></item>"
                )
            })
            .collect();
        items.push_str(&format!(
            "<item><instanceId>{}</instanceId><availabilityZone>us-east-1a</availabilityZone><instanceState><code>16</code><name>running</name></instanceState><instanceStatus>{check}</instanceStatus><systemStatus><status>ok</status></systemStatus><eventsSet>{events}</eventsSet></item>",
            instance.id
        ));
    }
    xml(format!(
        "<DescribeInstanceStatusResponse {NS}><requestId>req-1</requestId><instanceStatusSet>{items}</instanceStatusSet></DescribeInstanceStatusResponse>"
    ))
}

fn availability_zones(state: &State) -> ResponseTemplate {
    let mut zones: Vec<&String> = state.catalog.subnets.iter().map(|(_, z)| z).collect();
    zones.sort();
    zones.dedup();
    let items: String = zones
        .iter()
        .map(|z| format!("<item><zoneName>{z}</zoneName><zoneState>available</zoneState><regionName>us-east-1</regionName></item>"))
        .collect();
    xml(format!(
        "<DescribeAvailabilityZonesResponse {NS}><requestId>req-1</requestId><availabilityZoneInfo>{items}</availabilityZoneInfo></DescribeAvailabilityZonesResponse>"
    ))
}

/// EC2's answers: an unknown name or id fails the call, as does a version
/// the template does not have.
fn template_versions(state: &State, params: &Params) -> ResponseTemplate {
    let by_id = params.get("LaunchTemplateId");
    let by_name = params.get("LaunchTemplateName");
    let Some((id, name, versions, instance_type)) = state
        .catalog
        .templates
        .iter()
        .find(|(id, name, ..)| Some(id) == by_id || Some(name) == by_name)
    else {
        return match by_id {
            Some(id) => error(
                400,
                "InvalidLaunchTemplateId.NotFound",
                &format!("The specified launch template, with template ID {id}, does not exist."),
            ),
            None => error(
                400,
                "InvalidLaunchTemplateName.NotFoundException",
                "The specified launch template, with template name compute-x, does not exist.",
            ),
        };
    };
    let wanted = list(params, "LaunchTemplateVersion");
    let mut items = String::new();
    for version in wanted {
        let number = match version.as_str() {
            "$Latest" => versions.iter().max().copied(),
            "$Default" => versions.first().copied(),
            other => other.parse::<i64>().ok().filter(|n| versions.contains(n)),
        };
        let Some(number) = number else {
            return error(
                400,
                "InvalidLaunchTemplateId.VersionNotFound",
                &format!(
                    "Could not find launch template version {version} for launch template {id}"
                ),
            );
        };
        let data = instance_type
            .as_ref()
            .map(|t| format!("<instanceType>{t}</instanceType>"))
            .unwrap_or_default();
        items.push_str(&format!(
            "<item><launchTemplateId>{id}</launchTemplateId><launchTemplateName>{name}</launchTemplateName><versionNumber>{number}</versionNumber><launchTemplateData>{data}</launchTemplateData></item>"
        ));
    }
    xml(format!(
        "<DescribeLaunchTemplateVersionsResponse {NS}><requestId>req-1</requestId><launchTemplateVersionSet>{items}</launchTemplateVersionSet></DescribeLaunchTemplateVersionsResponse>"
    ))
}

fn filter_values(params: &Params, name: &str) -> Vec<String> {
    filters(params)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

fn subnets(state: &State, params: &Params) -> ResponseTemplate {
    let wanted = filter_values(params, "subnet-id");
    let items: String = state
        .catalog
        .subnets
        .iter()
        .filter(|(id, _)| wanted.contains(id))
        .map(|(id, zone)| format!("<item><subnetId>{id}</subnetId><availabilityZone>{zone}</availabilityZone><state>available</state></item>"))
        .collect();
    xml(format!(
        "<DescribeSubnetsResponse {NS}><requestId>req-1</requestId><subnetSet>{items}</subnetSet></DescribeSubnetsResponse>"
    ))
}

fn offerings(state: &State, params: &Params) -> ResponseTemplate {
    let types = filter_values(params, "instance-type");
    let zones = filter_values(params, "location");
    let mut offered: Vec<&(String, String)> = state
        .catalog
        .offerings
        .iter()
        .filter(|(t, z)| types.contains(t) && zones.contains(z))
        .collect();
    offered.sort();
    let items: String = offered
        .iter()
        .map(|(t, z)| format!("<item><instanceType>{t}</instanceType><locationType>availability-zone</locationType><location>{z}</location></item>"))
        .collect();
    xml(format!(
        "<DescribeInstanceTypeOfferingsResponse {NS}><requestId>req-1</requestId><instanceTypeOfferingSet>{items}</instanceTypeOfferingSet></DescribeInstanceTypeOfferingsResponse>"
    ))
}

/// As EC2: one unknown type fails the whole call.
fn instance_types(state: &State, params: &Params) -> ResponseTemplate {
    let wanted = list(params, "InstanceType");
    let mut items = String::new();
    for name in &wanted {
        let Some((_, cpus, mib, gpus)) = state
            .catalog
            .instance_types
            .iter()
            .find(|(t, ..)| t == name)
        else {
            return error(
                400,
                "InvalidInstanceType",
                &format!("The following supplied instance types do not exist: [{name}]"),
            );
        };
        let gpus = match gpus.is_empty() {
            true => String::new(),
            false => format!(
                "<gpuInfo><gpus>{}</gpus></gpuInfo>",
                gpus.iter()
                    .map(|(n, c)| format!("<item><name>{n}</name><manufacturer>NVIDIA</manufacturer><count>{c}</count></item>"))
                    .collect::<String>()
            ),
        };
        items.push_str(&format!(
            "<item><instanceType>{name}</instanceType><vCpuInfo><defaultVCpus>{cpus}</defaultVCpus></vCpuInfo><memoryInfo><sizeInMiB>{mib}</sizeInMiB></memoryInfo>{gpus}</item>"
        ));
    }
    xml(format!(
        "<DescribeInstanceTypesResponse {NS}><requestId>req-1</requestId><instanceTypeSet>{items}</instanceTypeSet></DescribeInstanceTypesResponse>"
    ))
}
