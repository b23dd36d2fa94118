//! Every file the programs open goes through here. Input files are read
//! only when regular and only up to a size limit, so that a FIFO cannot hang
//! a program and `/dev/urandom` cannot exhaust its memory. Shared files (the
//! log, the event log, the locks, the pacing state), which root and SlurmUser
//! both write in folders that others may write too, are opened without
//! following a link, without waiting on a FIFO, and checked once open.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

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
    #[error(
        "is a symbolic link: refused, since whoever can write its folder could point it anywhere"
    )]
    Link,
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

/// Opens a shared file (the event log) for reading: never through a link in
/// its last component, never waiting on a FIFO, and only a regular file.
pub fn open_shared_for_reading(path: &Path) -> Result<File, ReadError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|error| match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => ReadError::Link,
            _ => ReadError::Io(error),
        })?;
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

/// How a shared file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Lines appended (the log, the event log).
    Append,
    /// Read and rewritten in place (the pacing state, the locks).
    ReadWrite,
}

/// Why a shared file was not opened.
#[derive(Debug, thiserror::Error)]
pub enum SharedFileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is a symbolic link: refused, since whoever can write its folder could point it anywhere", path.display())]
    Link { path: PathBuf },
    #[error("{} {}", path.display(), ReadError::NotRegular { kind })]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{} has {links} hard links: refused, since another name of it may be anyone's file", path.display())]
    Linked { path: PathBuf, links: u64 },
    #[error("{} is owned by uid {owner}, not by root, this program's user or its folder's owner: refused", path.display())]
    Owner { path: PathBuf, owner: u32 },
}

/// This process's effective user id.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Opens a file that several programs, run as root and as SlurmUser, share
/// in a folder that others may write: the last component is never followed
/// when it is a link, a FIFO never blocks the open, and what was opened must
/// be a regular file with one name, owned by root, by this program's user,
/// by the owner of its folder or by `program_user` (SlurmUser, the owner of
/// `StateDirectory`). A file this call creates is made `mode` whatever the
/// umask, and, when root creates it, is given its folder's owner and group,
/// so that the programs of the other user can open it too. No path is ever
/// chmod-ed or chown-ed: only the descriptor just opened.
pub fn open_shared(
    path: &Path,
    access: Access,
    mode: u32,
    program_user: Option<u32>,
) -> Result<File, SharedFileError> {
    let io = |source: std::io::Error| SharedFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (file, created) = open_no_follow(path, access, mode).map_err(|source| {
        // A FIFO without a reader refuses a non-blocking open for writing
        // (ENXIO): say what is there rather than what the open said.
        match std::fs::symlink_metadata(path).map(|m| m.file_type()) {
            Ok(kind) if kind.is_symlink() => SharedFileError::Link {
                path: path.to_path_buf(),
            },
            Ok(kind) if !kind.is_file() && !kind.is_dir() => SharedFileError::NotRegular {
                path: path.to_path_buf(),
                kind: kind_of(kind),
            },
            _ => io(source),
        }
    })?;
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(SharedFileError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(meta.file_type()),
        });
    }
    if meta.nlink() != 1 {
        return Err(SharedFileError::Linked {
            path: path.to_path_buf(),
            links: meta.nlink(),
        });
    }
    let folder = std::fs::metadata(parent_of(path)).map_err(io)?;
    let euid = effective_uid();
    let trusted = [0, euid, folder.uid()];
    if !trusted.contains(&meta.uid()) && program_user != Some(meta.uid()) {
        return Err(SharedFileError::Owner {
            path: path.to_path_buf(),
            owner: meta.uid(),
        });
    }
    if created {
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io)?;
        if euid == 0 {
            std::os::unix::fs::fchown(&file, Some(folder.uid()), Some(folder.gid())).map_err(io)?;
        }
    }
    Ok(file)
}

/// Replaces the contents of the file at `path` (created `mode` if missing),
/// through [`open_shared`]: never through a link, never into a FIFO.
pub fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), SharedFileError> {
    use std::io::Write;
    let mut file = open_shared(path, Access::ReadWrite, mode, None)?;
    file.set_len(0)
        .and_then(|_| file.write_all(text.as_bytes()))
        .map_err(|source| SharedFileError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Replaces the file at `path` with `text` so that a reader sees the old
/// file or the new one, never half of one: written to a new file beside it
/// (created, never opened through a link), made `mode`, then renamed over it.
pub fn replace_whole(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("names no file"))?;
    let temporary = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&temporary)?;
    let written = file
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .and_then(|_| file.write_all(text.as_bytes()))
        .and_then(|_| file.sync_all())
        .and_then(|_| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// The folder a path names its file in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Creates the file, or opens the one there; either way without following a
/// link in the last component and without waiting on a FIFO. True when created.
fn open_no_follow(path: &Path, access: Access, mode: u32) -> std::io::Result<(File, bool)> {
    let options = |create: bool| {
        let mut options = OpenOptions::new();
        match access {
            Access::Append => options.append(true),
            Access::ReadWrite => options.read(true).write(true),
        };
        options
            .create_new(create)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
        options
    };
    // A file removed between the two opens is created on the next round.
    for _ in 0..3 {
        match options(true).open(path) {
            Ok(file) => return Ok((file, true)),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
        match options(false).open(path) {
            Ok(file) => return Ok((file, false)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Err(std::io::Error::other(
        "removed and created again while opening it",
    ))
}

/// Why a state folder is not safe to keep locks and shared state in.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("StateDirectory {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("StateDirectory {} is not a folder", path.display())]
    NotFolder { path: PathBuf },
    #[error("StateDirectory {} is writable by its group or by others (mode {mode:o}): whoever can write it could replace the locks and the pacing state; make it writable by its owner only (SlurmUser)", path.display())]
    Writable { path: PathBuf, mode: u32 },
}

/// The owner of the state folder (the programs' user, SlurmUser), once the
/// folder is known to be one that only its owner and root can write.
pub fn state_dir_owner(path: &Path) -> Result<u32, StateDirError> {
    let meta = std::fs::metadata(path).map_err(|source| StateDirError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(StateDirError::NotFolder {
            path: path.to_path_buf(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(StateDirError::Writable {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(meta.uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        crate::fixtures::mkfifo(&fifo);
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

    #[test]
    fn a_shared_file_is_never_a_link_a_fifo_or_another_name() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "root only").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let dangling = dir.path().join("dangling.log");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        for path in [&link, &dangling] {
            for access in [Access::Append, Access::ReadWrite] {
                let error = open_shared(path, access, 0o664, None).unwrap_err();
                assert!(matches!(error, SharedFileError::Link { .. }), "{error}");
            }
        }
        assert!(
            !dir.path().join("nowhere").exists(),
            "the link's target was created"
        );
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the link's target was chmod-ed");
        let fifo = dir.path().join("fifo");
        crate::fixtures::mkfifo(&fifo);
        for access in [Access::Append, Access::ReadWrite] {
            match open_shared(&fifo, access, 0o664, None) {
                Err(SharedFileError::NotRegular { kind, .. }) => assert_eq!(kind, "a FIFO"),
                other => panic!("a FIFO was opened: {other:?}"),
            }
        }
        let other_name = dir.path().join("hard.log");
        std::fs::hard_link(&secret, &other_name).unwrap();
        let error = open_shared(&other_name, Access::Append, 0o664, None).unwrap_err();
        assert!(
            matches!(error, SharedFileError::Linked { links: 2, .. }),
            "{error}"
        );
    }

    #[test]
    fn a_shared_file_is_created_with_its_mode_and_must_have_a_trusted_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.log");
        // SAFETY: umask only changes this process's creation mask.
        let old = unsafe { libc::umask(0o077) };
        let opened = open_shared(&path, Access::Append, 0o664, None);
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        opened.unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o664);
        assert!(open_shared(&path, Access::ReadWrite, 0o664, None).is_ok());
        if effective_uid() != 0 {
            eprintln!("not run: the ownership part needs root");
            return;
        }
        std::os::unix::fs::chown(&path, Some(54321), None).unwrap();
        let error = open_shared(&path, Access::Append, 0o664, None).unwrap_err();
        assert!(
            matches!(error, SharedFileError::Owner { owner: 54321, .. }),
            "{error}"
        );
        assert!(open_shared(&path, Access::Append, 0o664, Some(54321)).is_ok());
        // Root gives what it creates to the folder's owner and group.
        let folder = dir.path().join("slurm");
        std::fs::create_dir(&folder).unwrap();
        std::os::unix::fs::chown(&folder, Some(54321), Some(54322)).unwrap();
        let state = folder.join("state");
        open_shared(&state, Access::ReadWrite, 0o644, None).unwrap();
        let meta = std::fs::metadata(&state).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (54321, 54322));
    }

    #[test]
    fn a_state_folder_only_its_owner_can_write() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            state_dir_owner(dir.path()).unwrap(),
            std::fs::metadata(dir.path()).unwrap().uid()
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o2775)).unwrap();
        let error = state_dir_owner(dir.path()).unwrap_err();
        assert!(error.to_string().contains("mode 2775"), "{error}");
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            state_dir_owner(&file),
            Err(StateDirError::NotFolder { .. })
        ));
        assert!(matches!(
            state_dir_owner(&dir.path().join("missing")),
            Err(StateDirError::Io { .. })
        ));
    }

    /// Every file the programs open goes through this module: a test walks
    /// the sources and names each place that opens one by another way.
    #[test]
    fn no_other_module_opens_a_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let forbidden = [
            "OpenOptions",
            "File::open",
            "File::create",
            "fs::write(",
            "fs::read_to_string(",
            "fs::read(",
            "fs::copy(",
            "set_permissions(",
            "fs::chown(",
        ];
        let mut stack = vec![root.clone()];
        let mut offenders = Vec::new();
        let mut seen = 0;
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") || path.ends_with("files.rs") {
                    continue;
                }
                seen += 1;
                let text = std::fs::read_to_string(&path).unwrap();
                // Tests may make their files as they like.
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                let test_module = path.ends_with("fixtures.rs") || path.ends_with("tests.rs");
                let code = match test_module {
                    true => "",
                    false => code,
                };
                for word in forbidden {
                    if code.contains(word) {
                        offenders.push(format!("{}: {word}", path.display()));
                    }
                }
            }
        }
        assert!(
            seen > 40,
            "only {seen} source files found under {}",
            root.display()
        );
        assert!(
            offenders.is_empty(),
            "files opened outside files.rs: {offenders:#?}"
        );
    }
}
