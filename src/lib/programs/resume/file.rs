//! `SLURM_RESUME_FILE`: a descriptor of slurmctld's, read at once.

use super::jobs::ResumeFile;

/// Reads the resume file: the jobs it names and the nodes each needs.
pub fn read_resume_file(path: &std::path::Path) -> Result<ResumeFile, String> {
    let text = crate::files::read_bounded(path, crate::files::MAX_CONFIG_BYTES)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_resume_file(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

/// A resume file's text, in either schema (`nodes` up to 22.05,
/// `nodes_resume` from 23.02).
pub fn parse_resume_file(text: &str) -> Result<ResumeFile, serde_json::Error> {
    ResumeFile::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn any_resume_file_is_read_or_refused_with_its_path(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("resume.json");
            std::fs::write(&path, &bytes).unwrap();
            if let Err(message) = read_resume_file(&path) {
                proptest::prop_assert!(message.contains("resume.json"), "{}", message);
            }
        }
    }

    #[test]
    fn reads_job_ids_of_both_resume_file_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resume.json");
        std::fs::write(&path, r#"{"jobs":[{"job_id":1,"nodes":"aws-node-[0-1]"},{"job_id":7,"nodes_resume":"x"}],"all_nodes":"aws-node-[0-1]"}"#).unwrap();
        assert_eq!(read_resume_file(&path).unwrap().job_ids(), vec![1, 7]);
        assert!(
            read_resume_file(&dir.path().join("gone"))
                .unwrap_err()
                .contains("cannot read")
        );
    }
}
