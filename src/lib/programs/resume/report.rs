use crate::code::Code;
use std::collections::BTreeMap;

/// What one resume run did, for its summary line and exit code.
#[derive(Debug, Default)]
pub struct ResumeReport {
    pub asked: usize,
    pub launched: usize,
    pub reused: usize,
    /// Nodes served by an instance started from a warm pool.
    pub from_pool: usize,
    /// Nodes that got no instance, by error code.
    pub failed: BTreeMap<Code, Vec<String>>,
    /// Nodes that kept the instance an earlier run gave them, but whose
    /// address Slurm refused this time: neither failed nor terminated.
    pub not_updated: Vec<String>,
    pub foreign: usize,
}

impl ResumeReport {
    pub fn failed_count(&self) -> usize {
        self.failed.values().map(Vec::len).sum::<usize>() + self.not_updated.len()
    }

    pub(super) fn fail(&mut self, code: impl Into<Code>, nodes: impl IntoIterator<Item = String>) {
        self.failed.entry(code.into()).or_default().extend(nodes);
    }

    /// The one summary line of a run, ending in its `tally`.
    pub fn summary(&self, tally: &str) -> String {
        let failed = if self.failed_count() == 0 {
            "0".to_string()
        } else {
            let mut codes: Vec<String> = self
                .failed
                .iter()
                .map(|(c, n)| format!("{c}: {}", n.len()))
                .collect();
            if !self.not_updated.is_empty() {
                let kept = self.not_updated.len();
                codes.push(format!("address refused, instance kept: {kept}"));
            }
            format!("{} ({})", self.failed_count(), codes.join(", "))
        };
        format!(
            "Resume summary: asked {}, launched {}, reused {}, failed {failed}, from warm pools {}, not ours {}; {tally}",
            self.asked, self.launched, self.reused, self.from_pool, self.foreign,
        )
    }
}
