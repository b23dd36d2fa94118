//! `slurm-ec2 validate` and `--check --aws`: the configuration against the
//! account it names. Per account: the credentials and Region answer, and
//! TerminateInstances and CreateTags are permitted; per node group: the
//! launch template version resolves, every subnet exists and each lies in a
//! zone of its own, every instance type is offered in those zones, and a
//! CreateFleet of the group is permitted (dry runs; nothing is launched).
//! Each problem names the file and JSON path of the setting behind it.

use std::collections::BTreeMap;

use futures_util::StreamExt;

use super::{Outcome, Run, RunError};
use crate::config::{self, Account, Config, NodeGroup, Problem};
use crate::ec2::{self, Clients, DryRun, Ec2, Ec2Error};

/// Node groups checked at the same time.
const GROUP_CONCURRENCY: usize = 4;

/// What the checks found.
#[derive(Debug, Default)]
pub struct Report {
    /// Settings EC2 refuses: the configuration must change.
    pub problems: Vec<Problem>,
    /// Checks EC2 did not answer (throttled, unreachable, timed out).
    pub unchecked: Vec<Problem>,
    /// What a dry run could not settle, worth knowing.
    pub notes: Vec<String>,
    pub node_groups: usize,
    pub accounts: usize,
}

/// Where a node group sits in partitions.json.
struct Located<'a> {
    group: &'a NodeGroup,
    path: String,
}

impl Located<'_> {
    fn at(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }
}

fn located(config: &Config) -> Vec<Located<'_>> {
    config
        .partitions
        .iter()
        .enumerate()
        .flat_map(|(p, partition)| {
            partition
                .node_groups
                .iter()
                .enumerate()
                .map(move |(g, group)| Located {
                    group,
                    path: format!("Partitions[{p}].NodeGroups[{g}]"),
                })
        })
        .collect()
}

/// The program: runs the checks and prints each finding on stderr, the
/// summary on stdout. Exit 2 for problems, 1 when EC2 left checks undone.
pub fn check_aws(program: &str, config: &Config) -> Outcome {
    let budget = super::Budget::both(super::LOOKUP_BUDGET);
    let run = match Run::begin(config, std::time::Instant::now(), budget) {
        Ok(run) => run,
        Err(RunError::Cluster(error)) => {
            eprintln!(
                "{program}: {}: ClusterName: {error}",
                config.dir.join(config::CONFIG_FILE).display()
            );
            return Outcome::BadInput;
        }
        Err(error) => {
            eprintln!("{program}: {error}");
            return Outcome::Failed;
        }
    };
    let report = run.block_on(validate(config, &run.clients, run.cluster.as_str()));
    for note in &report.notes {
        eprintln!("{program}: note: {note}");
    }
    for problem in &report.problems {
        eprintln!("{program}: {problem}");
    }
    for problem in &report.unchecked {
        eprintln!("{program}: not checked: {problem}");
    }
    let scope = format!(
        "{} node group(s) in {} account(s); EC2 calls: {}",
        report.node_groups,
        report.accounts,
        run.calls.summary()
    );
    if !report.problems.is_empty() {
        eprintln!(
            "{program}: EC2 refuses {} setting(s) of the configuration: {scope}",
            report.problems.len()
        );
        return Outcome::BadInput;
    }
    if !report.unchecked.is_empty() {
        eprintln!(
            "{program}: {} check(s) could not be made: {scope}",
            report.unchecked.len()
        );
        return Outcome::Failed;
    }
    println!(
        "EC2 accepts the configuration: launch templates, subnets, zones, instance type offerings and permissions of {scope}"
    );
    Outcome::Done
}

/// Every check of every account and node group of `config`.
pub async fn validate(config: &Config, clients: &Clients, cluster: &str) -> Report {
    let groups = located(config);
    let partitions_file = config.dir.join(config::PARTITIONS_FILE);
    let mut report = Report {
        node_groups: groups.len(),
        accounts: config.accounts().len(),
        ..Report::default()
    };
    let mut by_account: BTreeMap<Account, Vec<&Located>> = BTreeMap::new();
    for located in &groups {
        by_account
            .entry(located.group.account())
            .or_default()
            .push(located);
    }
    let mut findings = Findings::new(partitions_file);
    let mut answering = Vec::new();
    for (account, members) in &by_account {
        let ec2 = clients.get(account).await;
        let first = members[0];
        let setting = match first.group.profile {
            Some(_) => first.at("ProfileName"),
            None => first.at("Region"),
        };
        match ec2.availability_zones().await {
            Ok(_) => {}
            Err(error) => {
                findings.failed(
                    &setting,
                    format!("{account} does not answer, so none of its node groups was checked"),
                    error,
                );
                continue;
            }
        }
        let tags = vec![(ec2::CLUSTER_TAG.to_string(), cluster.to_string())];
        permission(&mut findings, &setting, account, ec2.may_terminate().await);
        permission(&mut findings, &setting, account, ec2.may_tag(&tags).await);
        answering.extend(members.iter().map(|m| (ec2.clone(), *m)));
    }
    let results: Vec<Findings> = futures_util::stream::iter(answering)
        .map(|(ec2, located)| {
            let file = findings.file.clone();
            async move { check_group(&ec2, located, cluster, file).await }
        })
        .buffered(GROUP_CONCURRENCY)
        .collect()
        .await;
    for result in results {
        findings.extend(result);
    }
    report.problems = findings.problems;
    report.unchecked = findings.unchecked;
    report.notes = findings.notes;
    report
}

/// What one part of the checks found, in partitions.json.
struct Findings {
    file: std::path::PathBuf,
    problems: Vec<Problem>,
    unchecked: Vec<Problem>,
    notes: Vec<String>,
}

impl Findings {
    fn new(file: std::path::PathBuf) -> Self {
        Findings {
            file,
            problems: Vec::new(),
            unchecked: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// An EC2 call failed: a problem of the setting at `path`, or, when EC2
    /// did not really answer, a check left undone.
    fn failed(&mut self, path: &str, what: String, error: Ec2Error) {
        let finding = Problem {
            file: self.file.clone(),
            path: path.to_string(),
            message: format!("{what}: {error}"),
        };
        match error.retryable {
            true => self.unchecked.push(finding),
            false => self.problems.push(finding),
        }
    }

    fn extend(&mut self, other: Findings) {
        self.problems.extend(other.problems);
        self.unchecked.extend(other.unchecked);
        self.notes.extend(other.notes);
    }
}

/// What a dry run of an account-wide call says.
fn permission(findings: &mut Findings, setting: &str, account: &Account, dry_run: DryRun) {
    match dry_run {
        DryRun::Permitted => {}
        DryRun::Denied(error) => findings.problem(
            setting,
            format!(
                "the credentials of {account} may not call {}, which the programs need: {error}",
                error.action
            ),
        ),
        // EC2 may look the made-up instance up before the permission.
        DryRun::Failed(error) if error.code.as_str().starts_with("InvalidInstanceID") => {
            findings.notes.push(format!(
                "{account}: a dry run could not settle whether {} is permitted ({}): EC2 checked the instance before the permission",
                error.action, error.code
            ))
        }
        DryRun::Failed(error) => findings.failed(
            setting,
            format!("{account}: the dry run of {} failed", error.action),
            error,
        ),
    }
}

/// The checks of one node group.
async fn check_group(
    ec2: &Ec2,
    located: &Located<'_>,
    cluster: &str,
    file: std::path::PathBuf,
) -> Findings {
    let mut findings = Findings::new(file);
    let group = located.group;
    let template_type = check_template(ec2, located, &mut findings).await;
    let zones = check_subnets(ec2, located, &mut findings).await;
    if !zones.is_empty() {
        check_offerings(
            ec2,
            located,
            template_type.as_deref(),
            &zones,
            &mut findings,
        )
        .await;
    }
    // A launch that the checks above already condemn would only repeat them.
    if findings.problems.is_empty() && findings.unchecked.is_empty() {
        match ec2
            .may_launch(group, &ec2::launch_tags(group, cluster))
            .await
        {
            DryRun::Permitted => {}
            DryRun::Denied(error) => findings.problem(
                &located.path,
                format!(
                    "the credentials of {} may not launch this node group: {error}",
                    group.account()
                ),
            ),
            DryRun::Failed(error) => findings.failed(
                &located.path,
                "EC2 refuses a CreateFleet of this node group".to_string(),
                error,
            ),
        }
    }
    findings
}

/// The launch template and version exist; returns the template's instance type.
async fn check_template(
    ec2: &Ec2,
    located: &Located<'_>,
    findings: &mut Findings,
) -> Option<String> {
    let template = &located.group.launch_template;
    let spec = located.at("LaunchTemplateSpecification");
    let (key, which) = match (&template.id, &template.name) {
        (Some(id), _) => ("LaunchTemplateId", id.clone()),
        (None, Some(name)) => ("LaunchTemplateName", name.clone()),
        (None, None) => return None,
    };
    let version = template.version.as_deref().unwrap_or("$Default");
    match ec2.template_version(template).await {
        Ok(Some(resolved)) => resolved.instance_type,
        Ok(None) => {
            findings.problem(
                &format!("{spec}.Version"),
                format!("version {version} of launch template {which} resolves to no version"),
            );
            None
        }
        Err(error) => {
            let path = match error.code.as_str().contains("Version") {
                true => format!("{spec}.Version"),
                false => format!("{spec}.{key}"),
            };
            let what = match error.code.as_str().contains("Version") {
                true => format!("launch template {which} has no version {version}"),
                false => format!("launch template {which} cannot be found"),
            };
            findings.failed(&path, what, error);
            None
        }
    }
}

/// Every subnet exists, each in a zone of its own; returns the zones.
async fn check_subnets(ec2: &Ec2, located: &Located<'_>, findings: &mut Findings) -> Vec<String> {
    let ids = &located.group.subnet_ids;
    let found = match ec2.subnets(ids).await {
        Ok(found) => found,
        Err(error) => {
            findings.failed(
                &located.at("SubnetIds"),
                "the subnets cannot be looked up".to_string(),
                error,
            );
            return Vec::new();
        }
    };
    let mut zones: Vec<(usize, &str, String)> = Vec::new();
    for (index, id) in ids.iter().enumerate() {
        let path = format!("{}[{index}]", located.at("SubnetIds"));
        let Some(subnet) = found.iter().find(|s| &s.id == id) else {
            findings.problem(
                &path,
                format!("{id} does not exist in {}", located.group.region),
            );
            continue;
        };
        if let Some((other, other_id, zone)) = zones
            .iter()
            .find(|(_, _, zone)| *zone == subnet.availability_zone)
        {
            findings.problem(
                &path,
                format!(
                    "{id} is in {zone}, as SubnetIds[{other}] ({other_id}) is: an EC2 Fleet takes one subnet per availability zone, so list one subnet of each zone"
                ),
            );
            continue;
        }
        zones.push((index, id, subnet.availability_zone.clone()));
    }
    zones.into_iter().map(|(_, _, zone)| zone).collect()
}

/// Every override's instance type is offered in every zone of the subnets.
async fn check_offerings(
    ec2: &Ec2,
    located: &Located<'_>,
    template_type: Option<&str>,
    zones: &[String],
    findings: &mut Findings,
) {
    let overrides = &located.group.overrides;
    let mut wanted: Vec<(String, String)> = Vec::new();
    for (index, item) in overrides.iter().enumerate() {
        let path = format!("{}[{index}]", located.at("LaunchTemplateOverrides"));
        match item.instance_type.as_deref().or(template_type) {
            Some(instance_type) => {
                wanted.push((format!("{path}.InstanceType"), instance_type.to_string()))
            }
            None => findings.problem(
                &path,
                "names no InstanceType, and the launch template names none either",
            ),
        }
    }
    let mut types: Vec<String> = wanted.iter().map(|(_, t)| t.clone()).collect();
    types.sort();
    types.dedup();
    if types.is_empty() {
        return;
    }
    let offered = match ec2.offerings(&types, zones).await {
        Ok(offered) => offered,
        Err(error) => {
            findings.failed(
                &located.at("LaunchTemplateOverrides"),
                "the instance type offerings cannot be looked up".to_string(),
                error,
            );
            return;
        }
    };
    for (path, instance_type) in wanted {
        let missing: Vec<&str> = zones
            .iter()
            .filter(|zone| !offered.contains(&(instance_type.clone(), zone.to_string())))
            .map(String::as_str)
            .collect();
        if missing.len() == zones.len() {
            findings.problem(
                &path,
                format!(
                    "{instance_type} is offered in none of the subnets' zones ({}): no such type, or not in {}",
                    missing.join(", "),
                    located.group.region
                ),
            );
        } else if !missing.is_empty() {
            findings.problem(
                &path,
                format!(
                    "{instance_type} is not offered in {}: EC2 cannot launch it in the subnets there",
                    missing.join(", ")
                ),
            );
        }
    }
}
