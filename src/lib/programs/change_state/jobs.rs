//! The jobs running on each node, for the tags change-state writes on the
//! instances resume had no time to name: their placeholders (`{job_id}`,
//! `{user}`, `{account}`) and the job tags, as resume would have written them.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::slurm::Scontrol;

/// The job a node runs, as `squeue` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOnNode {
    pub job_id: u64,
    pub user: String,
    pub account: String,
}

impl JobOnNode {
    /// `{job_id}`, `{user}` and `{account}` for [`crate::ec2::node_tags`].
    pub fn placeholders(&self) -> [(&'static str, String); 3] {
        [
            ("{job_id}", self.job_id.to_string()),
            ("{user}", self.user.clone()),
            ("{account}", self.account.clone()),
        ]
    }

    /// The job tags resume gives an instance launched for a job.
    pub fn tags(&self) -> Vec<(String, String)> {
        use crate::programs::resume::jobs::{ACCOUNT_TAG, JOB_ID_TAG, USER_TAG};
        let mut tags = vec![(JOB_ID_TAG.to_string(), self.job_id.to_string())];
        if !self.user.is_empty() {
            tags.push((USER_TAG.to_string(), self.user.clone()));
        }
        if !self.account.is_empty() {
            tags.push((ACCOUNT_TAG.to_string(), self.account.clone()));
        }
        tags
    }
}

/// The most nodes one job's line may name: the configuration's nodes.
pub const MAX_NODES_OF_A_JOB: usize = 100_000;

/// The jobs that hold nodes, for `squeue --states`.
pub const HOLDING_STATES: &str = "--states=CONFIGURING,RUNNING,COMPLETING,SUSPENDED";

/// One `squeue` call, by `scontrol`'s limits; none needed (or none answered:
/// a warning, never a failure) gives an empty map.
pub fn running_jobs(config: &Config, scontrol: &Scontrol) -> BTreeMap<String, JobOnNode> {
    let squeue = scontrol.sibling(&config.slurm_bin.join("squeue"));
    let args = ["--noheader", HOLDING_STATES, "--format=%A|%u|%a|%N"].map(str::to_string);
    match squeue.run(&args) {
        Ok(text) => parse(&text),
        Err(error) => {
            tracing::warn!("Cannot ask squeue which jobs run where, so no job tags: {error}");
            BTreeMap::new()
        }
    }
}

/// `<job id>|<user>|<account>|<hostlist>` lines; a node keeps its first job.
pub fn parse(text: &str) -> BTreeMap<String, JobOnNode> {
    let mut jobs = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.trim().splitn(4, '|').collect();
        let [id, user, account, hosts] = fields.as_slice() else {
            continue;
        };
        let Ok(job_id) = id.trim().parse::<u64>() else {
            continue;
        };
        let Ok(hosts) = crate::hostlist::expand_at_most(hosts.trim(), MAX_NODES_OF_A_JOB) else {
            continue;
        };
        let job = JobOnNode {
            job_id,
            user: user.trim().to_string(),
            account: account.trim().to_string(),
        };
        for host in hosts {
            jobs.entry(host).or_insert_with(|| job.clone());
        }
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_gets_its_job_and_bad_lines_are_skipped() {
        let jobs = parse("17|alice|physics|aws-a-[0-1]\nx|bob|b|aws-a-2\n18|bob||aws-a-3\n");
        assert_eq!(jobs.len(), 3);
        assert_eq!(jobs["aws-a-1"].job_id, 17);
        assert_eq!(jobs["aws-a-1"].account, "physics");
        assert_eq!(
            jobs["aws-a-3"].tags(),
            vec![
                ("slurm-ec2:job-id".to_string(), "18".to_string()),
                ("slurm-ec2:user".to_string(), "bob".to_string())
            ]
        );
    }
}
