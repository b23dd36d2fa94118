//! Reading input files safely: only regular files, only up to a size limit,
//! so that a FIFO cannot hang a program and `/dev/urandom` cannot exhaust its
//! memory.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The most bytes a configuration file may hold.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("is {kind}, not a regular file")]
    NotRegular { kind: &'static str },
    #[error("is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("is not UTF-8 text")]
    NotText,
}

fn kind_of(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

fn check_regular(file_type: std::fs::FileType) -> Result<(), ReadError> {
    if file_type.is_file() {
        Ok(())
    } else {
        Err(ReadError::NotRegular {
            kind: kind_of(file_type),
        })
    }
}

/// Opens `path` (links followed) for reading only when it is a regular file.
/// The open does not block: a FIFO swapped in after the check is refused too.
pub fn open_regular(path: &Path) -> Result<File, ReadError> {
    check_regular(std::fs::metadata(path)?.file_type())?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    check_regular(file.metadata()?.file_type())?;
    Ok(file)
}

/// The text of a regular file of at most `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> Result<String, ReadError> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    String::from_utf8(bytes).map_err(|_| ReadError::NotText)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let error = read_bounded(&fifo, 100).unwrap_err();
        assert!(error.to_string().contains("a FIFO"), "{error}");
        let error = read_bounded(dir.path(), 100).unwrap_err();
        assert!(error.to_string().contains("a directory"), "{error}");
        let error = read_bounded(Path::new("/dev/urandom"), 100).unwrap_err();
        assert!(error.to_string().contains("character device"), "{error}");
        let link = dir.path().join("random");
        std::os::unix::fs::symlink("/dev/urandom", &link).unwrap();
        assert!(matches!(
            read_bounded(&link, 100),
            Err(ReadError::NotRegular { .. })
        ));
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 101]).unwrap();
        assert!(matches!(
            read_bounded(&big, 100),
            Err(ReadError::TooLarge { limit: 100 })
        ));
        std::fs::write(&big, "{}").unwrap();
        assert_eq!(read_bounded(&big, 100).unwrap(), "{}");
    }
}
