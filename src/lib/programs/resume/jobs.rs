//! The jobs a resume serves: `SLURM_RESUME_FILE` in either schema, and who
//! runs them (one `squeue` call for all of them), for per-job launches and
//! cost tags.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::hostlist;

/// The most node names the resume file's jobs may expand to, all together:
/// a file of thousands of jobs with huge node lists must not exhaust memory.
pub const MAX_RESUME_FILE_NODES: usize = 100_000;

/// One job of the resume file: the nodes this call must start for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRequest {
    pub job_id: u64,
    /// `nodes_resume` (23.02 on) or `nodes` (21.08 to 22.05), expanded.
    pub nodes: Vec<String>,
    pub partition: Option<String>,
    /// The job's priority (26.05): when a burst does not fit, the nodes of
    /// the jobs Slurm would run first are launched first.
    pub priority: Option<u64>,
}

/// `SLURM_RESUME_FILE`, read once at the start of the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResumeFile {
    pub jobs: Vec<JobRequest>,
    /// The text as slurmctld wrote it, for the log at DEBUG.
    pub text: String,
}

impl ResumeFile {
    /// Either schema: `jobs[].nodes` / `all_nodes` (up to 22.05) or
    /// `jobs[].nodes_resume` / `all_nodes_resume` (23.02 on). A job whose node
    /// list is no hostlist is skipped with a warning.
    pub fn parse(text: &str) -> Result<ResumeFile, serde_json::Error> {
        let json: Value = serde_json::from_str(text)?;
        let mut jobs = Vec::new();
        let mut names_left = MAX_RESUME_FILE_NODES;
        for job in json
            .get("jobs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(job_id) = job.get("job_id").and_then(Value::as_u64) else {
                continue;
            };
            let expression = job
                .get("nodes_resume")
                .or_else(|| job.get("nodes"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let nodes = match hostlist::expand_at_most(expression, names_left) {
                Ok(nodes) => nodes,
                Err(error) => {
                    tracing::warn!(
                        "Resume file: job {job_id}: {error} (at most {MAX_RESUME_FILE_NODES} node names in all): its nodes are served without their job"
                    );
                    continue;
                }
            };
            names_left -= nodes.len();
            let partition = job
                .get("partition")
                .and_then(Value::as_str)
                .map(str::to_string);
            let priority = job.get("priority").and_then(Value::as_u64);
            jobs.push(JobRequest {
                job_id,
                nodes,
                partition,
                priority,
            });
        }
        Ok(ResumeFile {
            jobs,
            text: text.to_string(),
        })
    }

    pub fn job_ids(&self) -> Vec<u64> {
        self.jobs.iter().map(|j| j.job_id).collect()
    }

    /// The job each node is started for (the lowest job id, should two name it).
    pub fn job_of_nodes(&self) -> BTreeMap<&str, u64> {
        let mut by_node = BTreeMap::new();
        for job in &self.jobs {
            for node in &job.nodes {
                by_node
                    .entry(node.as_str())
                    .and_modify(|id: &mut u64| *id = (*id).min(job.job_id))
                    .or_insert(job.job_id);
            }
        }
        by_node
    }
}

/// Who runs a job, for the cost tags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobOwner {
    pub user: String,
    pub account: String,
}

/// The arguments of the one `squeue` call for all `job_ids`: numeric job id, user, account.
pub fn squeue_arguments(job_ids: &[u64]) -> Vec<String> {
    let ids: Vec<String> = job_ids.iter().map(u64::to_string).collect();
    vec![
        "--noheader".to_string(),
        format!("--jobs={}", ids.join(",")),
        "--format=%A|%u|%a".to_string(),
    ]
}

/// Parses `squeue --format=%A|%u|%a` output: `<job id>|<user>|<account>` a line.
pub fn parse_owners(text: &str) -> BTreeMap<u64, JobOwner> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().splitn(3, '|');
            let job_id = fields.next()?.trim().parse().ok()?;
            let user = fields.next()?.trim().to_string();
            let account = fields.next().unwrap_or_default().trim();
            let account = match account {
                "(null)" => String::new(),
                other => other.to_string(),
            };
            Some((job_id, JobOwner { user, account }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jobs_node_lists_expand_to_a_bounded_number_of_names() {
        let jobs: Vec<String> = (0..3000)
            .map(|i| format!(r#"{{"job_id":{i},"nodes_resume":"n[0-9][0-9999]"}}"#))
            .collect();
        let text = format!(r#"{{"jobs":[{}]}}"#, jobs.join(","));
        let file = ResumeFile::parse(&text).unwrap();
        let names: usize = file.jobs.iter().map(|j| j.nodes.len()).sum();
        assert!(names <= MAX_RESUME_FILE_NODES, "{names}");
        // The first job names 100,000 nodes: the others no longer fit.
        assert_eq!(file.jobs.len(), 1);
    }

    #[test]
    fn both_schemas_name_the_nodes_of_each_job() {
        let old = r#"{"jobs":[{"job_id":1,"nodes":"aws-od-[0-1]"}],"all_nodes":"aws-od-[0-1]"}"#;
        let new = r#"{"jobs":[{"extra":null,"job_id":3,"features":null,"nodes_alloc":"aws-od-[4-6]","nodes_resume":"aws-od-[5-6]","oversubscribe":"OK","partition":"aws","reservation":null}],"all_nodes_resume":"aws-od-[5-6]"}"#;
        let old = ResumeFile::parse(old).unwrap();
        assert_eq!(old.jobs[0].nodes, vec!["aws-od-0", "aws-od-1"]);
        let new = ResumeFile::parse(new).unwrap();
        assert_eq!(new.jobs[0].job_id, 3);
        assert_eq!(new.jobs[0].nodes, vec!["aws-od-5", "aws-od-6"]);
        assert_eq!(new.jobs[0].partition.as_deref(), Some("aws"));
        assert_eq!(new.job_of_nodes().get("aws-od-6"), Some(&3));
        assert!(ResumeFile::parse("{").is_err());
        assert!(ResumeFile::parse("{}").unwrap().jobs.is_empty());
    }

    #[test]
    fn files_slurm_wrote() {
        // Captured from slurmctld 22.05.8 in the end-to-end world (two jobs in one call).
        let old = ResumeFile::parse(include_str!("testdata/resume-file-22.05.json")).unwrap();
        assert_eq!(old.job_ids(), vec![1, 2]);
        assert_eq!(old.jobs[0].nodes, vec!["aon-a-0", "aon-a-1", "aon-a-2"]);
        assert_eq!(old.job_of_nodes().get("burst-a-0"), Some(&2));
        // Captured from slurmctld 26.05.5 in the end-to-end world: jobs carry
        // their priority (and `exclusive`).
        let newest = ResumeFile::parse(include_str!("testdata/resume-file-26.05.json")).unwrap();
        assert_eq!(newest.jobs[0].priority, Some(1));
        assert_eq!(newest.jobs[0].nodes, vec!["burst-a-0", "burst-a-1"]);
        assert_eq!(old.jobs[0].priority, None);
        // As slurmctld 24.11.5 hands it over (issue 15's measurement in a Debian 13 chroot).
        let new = ResumeFile::parse(include_str!("testdata/resume-file-24.11.json")).unwrap();
        assert_eq!(new.job_ids(), vec![3]);
        assert_eq!(new.jobs[0].nodes, vec!["aws-node-5"]);
        assert_eq!(new.jobs[0].partition.as_deref(), Some("aws"));
    }

    #[test]
    fn owners_from_squeue() {
        let owners = parse_owners("12|alice|physics\n13|bob|(null)\nnot a line\n");
        assert_eq!(owners[&12].user, "alice");
        assert_eq!(owners[&12].account, "physics");
        assert_eq!(owners[&13].account, "");
        assert_eq!(owners.len(), 2);
        assert_eq!(
            squeue_arguments(&[12, 13]),
            vec!["--noheader", "--jobs=12,13", "--format=%A|%u|%a"]
        );
    }
}

/// What resume knows of the jobs behind the nodes it starts.
#[derive(Debug, Clone, Default)]
pub struct Jobs {
    /// The job each node is started for.
    pub by_node: BTreeMap<String, u64>,
    /// Who runs each job (empty when `JobTags` is off or squeue could not say).
    pub owners: BTreeMap<u64, JobOwner>,
    /// `JobTags`: tag instances with their job.
    pub tag: bool,
    /// Each job's priority, where the resume file gives it (26.05).
    pub priorities: BTreeMap<u64, u64>,
}

pub use crate::ec2::{ACCOUNT_TAG, JOB_ID_TAG, USER_TAG};

impl Jobs {
    pub fn new(file: &ResumeFile, owners: BTreeMap<u64, JobOwner>, tag: bool) -> Jobs {
        let by_node = file
            .job_of_nodes()
            .into_iter()
            .map(|(node, id)| (node.to_string(), id))
            .collect();
        let priorities = file
            .jobs
            .iter()
            .filter_map(|job| Some((job.job_id, job.priority?)))
            .collect();
        Jobs {
            by_node,
            owners,
            tag,
            priorities,
        }
    }

    /// The priority of the job `node` is started for; nodes of no job, or of
    /// a Slurm that gives no priority, come last.
    pub fn priority_of(&self, node: &str) -> Option<u64> {
        self.priorities.get(&self.job_of(node)?).copied()
    }

    pub fn job_of(&self, node: &str) -> Option<u64> {
        self.by_node.get(node).copied()
    }

    /// `slurm-ec2:job-id`, `slurm-ec2:user` and `slurm-ec2:account` of a job,
    /// when `JobTags` is on; the user and account only when squeue named them.
    pub fn tags_of_job(&self, job_id: u64) -> Vec<(String, String)> {
        if !self.tag {
            return Vec::new();
        }
        let mut tags = vec![(JOB_ID_TAG.to_string(), job_id.to_string())];
        if let Some(owner) = self.owners.get(&job_id) {
            tags.push((USER_TAG.to_string(), owner.user.clone()));
            if !owner.account.is_empty() {
                tags.push((ACCOUNT_TAG.to_string(), owner.account.clone()));
            }
        }
        tags
    }

    /// The job tags of the instance that serves `node` (none for a node no job names).
    pub fn tags_of_node(&self, node: &str) -> Vec<(String, String)> {
        self.job_of(node)
            .map(|id| self.tags_of_job(id))
            .unwrap_or_default()
    }

    /// `{job_id}`, `{user}` and `{account}` for a node, empty when no job names it.
    pub fn placeholders(&self, node: &str) -> [(&'static str, String); 3] {
        let job = self.job_of(node);
        let owner = job.and_then(|id| self.owners.get(&id));
        [
            ("{job_id}", job.map(|id| id.to_string()).unwrap_or_default()),
            ("{user}", owner.map(|o| o.user.clone()).unwrap_or_default()),
            (
                "{account}",
                owner.map(|o| o.account.clone()).unwrap_or_default(),
            ),
        ]
    }
}
