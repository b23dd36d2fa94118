//! A small stateful EC2 behind wiremock: enough of CreateFleet,
//! DescribeInstances, CreateTags and TerminateInstances to test the programs'
//! requests on the wire, with the faults moto cannot make.

use std::collections::{BTreeMap, HashSet};
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
    /// DescribeInstances answers as if tag filters matched every instance, as
    /// EC2 does for a pattern: the programs must check the tags themselves.
    pub ignore_tag_filters: bool,
    /// These instances vanish just before a TerminateInstances names them, so
    /// that it answers InvalidInstanceID.NotFound for the whole call, as EC2 does.
    pub vanish_on_terminate: HashSet<String>,
    /// CreateFleet answers this late (its instances exist at once, as on EC2).
    pub fleet_delay: Option<std::time::Duration>,
}

#[derive(Debug, Default)]
pub struct State {
    pub instances: Vec<FakeInstance>,
    pub requests: Vec<Params>,
    pub faults: Faults,
    next_id: usize,
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
            other => error(400, "InvalidAction", &format!("{other:?} is not faked")),
        }
    }
}

fn create_fleet(state: &mut State, params: &Params) -> ResponseTemplate {
    if let Some(code) = state.faults.fleet_failure.clone() {
        return error(400, &code, "the fleet request failed");
    }
    if state.faults.fleet_http_throttles > 0 {
        state.faults.fleet_http_throttles -= 1;
        return error(503, "RequestLimitExceeded", "Request limit exceeded.");
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
    for _ in 0..count {
        let instance = new_instance(state, tags.clone());
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
    xml(format!(
        "<CreateFleetResponse {NS}><requestId>req-1</requestId><fleetId>fleet-1</fleetId><errorSet>{errors_xml}</errorSet><fleetInstanceSet>{instances_xml}</fleetInstanceSet></CreateFleetResponse>"
    ))
}

fn describe(state: &mut State, params: &Params) -> ResponseTemplate {
    let ids = list(params, "InstanceId");
    let filters = filters(params);
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
                "<item><reservationId>r-1</reservationId><instancesSet><item><instanceId>{}</instanceId><instanceState><code>16</code><name>{}</name></instanceState><privateDnsName>{dns}</privateDnsName><privateIpAddress>{}</privateIpAddress><instanceType>c5.xlarge</instanceType><launchTime>{launched}</launchTime><tagSet>{tags}</tagSet></item></instancesSet></item>",
                i.id, i.state, i.ip
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
    if let Some((_, node)) = tags.iter().find(|(k, _)| k == "Name")
        && state.faults.untaggable_nodes.contains(node)
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
