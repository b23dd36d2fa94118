//! The event log read back, line by line: a file of any length is streamed,
//! never loaded whole, and a line that is not an event is counted and skipped.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::Event;
use crate::files::ReadError;

/// The longest line read as an event; a longer one is skipped.
const MAX_LINE_BYTES: u64 = 64 * 1024;
/// The most of the file read: beyond it, the rest is left unread and said.
pub const MAX_EVENT_LOG_BYTES: u64 = 4 * 1024 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("cannot read EventLogFile {}: {source}", path.display())]
pub struct ReadEventsError {
    path: PathBuf,
    #[source]
    source: ReadError,
}

/// What reading the file gave besides its events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadSummary {
    pub events: u64,
    /// Lines that are not an event of this format (or longer than 64 KiB).
    pub skipped: u64,
    /// The file was longer than [`MAX_EVENT_LOG_BYTES`]: its end was not read.
    pub truncated: bool,
}

/// Calls `each` with every event of the file at `path`, in the file's order.
pub fn read_events(
    path: &Path,
    mut each: impl FnMut(Event),
) -> Result<ReadSummary, ReadEventsError> {
    let error = |source| ReadEventsError {
        path: path.to_path_buf(),
        source,
    };
    let file = crate::files::open_shared_for_reading(path).map_err(error)?;
    let mut reader = BufReader::new(file.take(MAX_EVENT_LOG_BYTES));
    let mut summary = ReadSummary::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES)
            .read_until(b'\n', &mut line)
            .map_err(|e| error(ReadError::Io(e)))?;
        if read == 0 {
            break;
        }
        if line.last() != Some(&b'\n') && read as u64 == MAX_LINE_BYTES {
            summary.skipped += 1;
            skip_rest_of_line(&mut reader).map_err(|e| error(ReadError::Io(e)))?;
            continue;
        }
        match serde_json::from_slice::<Event>(&line) {
            Ok(event) => {
                summary.events += 1;
                each(event);
            }
            Err(_) if line.iter().all(u8::is_ascii_whitespace) => {}
            Err(_) => summary.skipped += 1,
        }
    }
    summary.truncated = reader.into_inner().limit() == 0;
    Ok(summary)
}

fn skip_rest_of_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        match buffer.iter().position(|b| *b == b'\n') {
            Some(at) => {
                reader.consume(at + 1);
                return Ok(());
            }
            None => {
                let all = buffer.len();
                reader.consume(all);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{About, EventLog, Kind};

    #[test]
    fn gives_back_what_was_recorded_and_skips_what_is_not_an_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let log = EventLog::open(&path, "resume", None).unwrap();
        let about = About {
            node: Some("aws-a-0"),
            instance: Some("i-1"),
            instance_type: Some("c5.large"),
            purchasing_option: Some("spot"),
            user: Some("alice"),
            ..Default::default()
        };
        log.record(Kind::Launch, about);
        drop(log);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("not json\n\n");
        text.push_str(&"x".repeat(70 * 1024));
        text.push('\n');
        text.push_str(r#"{"time":"2026-01-01T00:00:00.000Z","program":"suspend","pid":1,"event":"termination","node":"aws-a-0","instance":"i-1","job_ids":[],"code":null,"why":"suspend","detail":null}"#);
        std::fs::write(&path, text).unwrap();
        let mut events = Vec::new();
        let summary = read_events(&path, |e| events.push(e)).unwrap();
        assert_eq!(summary.events, 2);
        assert_eq!(summary.skipped, 2);
        assert!(!summary.truncated);
        assert_eq!(events[0].event, Kind::Launch);
        assert_eq!(events[0].instance_type.as_deref(), Some("c5.large"));
        assert_eq!(events[0].user.as_deref(), Some("alice"));
        assert_eq!(events[1].event, Kind::Termination);
        assert_eq!(events[1].instance_type, None);
    }

    #[test]
    fn refuses_a_link_and_what_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "").unwrap();
        let link = dir.path().join("events.jsonl");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let error = read_events(&link, |_| {}).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
        let error = read_events(dir.path(), |_| {}).unwrap_err().to_string();
        assert!(error.contains("directory"), "{error}");
    }
}
