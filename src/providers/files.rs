//! Reading and writing the deployment's files safely.
//!
//! A write goes to a temporary file in the same directory, is fsynced, renamed over the target,
//! and the directory is fsynced, so a crash or power loss leaves either the old file or the new
//! one, never a mix. Mode and owner are preserved. A full disk or a permission error leaves the
//! original untouched and the temporary file removed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::secrets::sha256_hex;

/// A file as read, with what is needed to write it back the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSnapshot {
    pub path: PathBuf,
    /// `None` when the file does not exist.
    pub content: Option<String>,
    pub mode: Option<u32>,
    pub owner: Option<(u32, u32)>,
}

impl FileSnapshot {
    pub fn exists(&self) -> bool {
        self.content.is_some()
    }

    /// Hash of the content, or `absent`.
    pub fn hash(&self) -> String {
        content_hash(self.content.as_deref())
    }
}

/// The hash a journal records for a file's content; `absent` for no file.
pub fn content_hash(content: Option<&str>) -> String {
    match content {
        Some(text) => sha256_hex(text.as_bytes()),
        None => "absent".to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is a directory, expected a file")]
    Directory { path: PathBuf },
    #[error("{path} is not UTF-8 text")]
    NotUtf8 { path: PathBuf },
    /// Not a regular file (a device, a FIFO), or larger than the limit.
    #[error(transparent)]
    Refused(crate::limits::ReadError),
    #[error("cannot write {path}: {source} (the original file is unchanged)")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} changed since this apply read it (another writer); nothing was written to it")]
    Moved { path: PathBuf },
}

/// Reads a file; a missing file is not an error.
pub fn read_snapshot(path: &Path) -> Result<FileSnapshot, FileError> {
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Ok(FileSnapshot {
                path: path.to_path_buf(),
                content: None,
                mode: None,
                owner: None,
            });
        }
        Err(source) => {
            return Err(FileError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if metadata.is_dir() {
        return Err(FileError::Directory {
            path: path.to_path_buf(),
        });
    }
    // Bounded, and only from a regular file: a `.env` replaced by a FIFO or a huge file must
    // not hang or exhaust the process.
    let bytes = crate::limits::read_regular_file(path, crate::limits::MAX_DEPLOYMENT_FILE_BYTES)
        .map_err(|error| match error {
            crate::limits::ReadError::Io { source, .. } => FileError::Read {
                path: path.to_path_buf(),
                source,
            },
            crate::limits::ReadError::NotRegular {
                kind: crate::limits::FileKind::Directory,
                ..
            } => FileError::Directory {
                path: path.to_path_buf(),
            },
            refused => FileError::Refused(refused),
        })?;
    let content = String::from_utf8(bytes).map_err(|_| FileError::NotUtf8 {
        path: path.to_path_buf(),
    })?;
    Ok(FileSnapshot {
        path: path.to_path_buf(),
        content: Some(content),
        mode: Some(metadata.permissions().mode() & 0o7777),
        owner: Some((metadata.uid(), metadata.gid())),
    })
}

/// Writes `content` to `path` atomically with `mode`, keeping `owner` when given. A `path`
/// that is a symbolic link is written through: the link stays and its target is replaced
/// atomically.
pub fn write_atomic(
    path: &Path,
    content: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), FileError> {
    write_atomic_checked(path, content, mode, owner, None, true)
}

/// Writes a file of tldw-ops's own (a checkpoint) atomically, never through a link: a link
/// planted where the file goes is replaced, not followed.
pub fn write_private(path: &Path, content: &[u8]) -> Result<(), FileError> {
    write_atomic_checked(path, content, 0o600, None, None, false)
}

fn write_atomic_checked(
    path: &Path,
    content: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
    expected: Option<&str>,
    follow_links: bool,
) -> Result<(), FileError> {
    let error = |source: io::Error| FileError::Write {
        path: path.to_path_buf(),
        source,
    };
    // Write through a link: the rename must replace the link's target, not the link.
    let resolved;
    let path = match fs::symlink_metadata(path) {
        Ok(metadata) if follow_links && metadata.file_type().is_symlink() => {
            resolved = fs::canonicalize(path).map_err(error)?;
            resolved.as_path()
        }
        _ => path,
    };
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temporary = temporary_path(path, std::process::id());
    let mut moved = false;
    let result = (|| -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temporary)?;
        // The mode given to open is masked by the umask; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        if let Some((uid, gid)) = owner {
            let metadata = file.metadata()?;
            if metadata.uid() != uid || metadata.gid() != gid {
                std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
            }
        }
        file.write_all(content)?;
        file.sync_all()?;
        drop(file);
        if let Some(expected) = expected {
            let now = match fs::read(path) {
                Ok(bytes) => sha256_hex(&bytes),
                Err(error) if error.kind() == io::ErrorKind::NotFound => "absent".to_string(),
                Err(error) => return Err(error),
            };
            if now != expected {
                moved = true;
                return Err(io::Error::other("the file changed since it was read"));
            }
        }
        fs::rename(&temporary, path)?;
        File::open(&directory)?.sync_all()?;
        Ok(())
    })();
    if let Err(source) = result {
        let _ = fs::remove_file(&temporary);
        if moved {
            return Err(FileError::Moved {
                path: path.to_path_buf(),
            });
        }
        return Err(error(source));
    }
    Ok(())
}

/// Writes `content` to `path` atomically, but only if the file still holds what the caller read:
/// just before the rename its content hash must be `expected` (`absent` for no file). Otherwise
/// nothing changes and the error says the file moved. Compare-and-swap against writers outside
/// tldw-ops; other applies are kept out by [`DirectoryLocks`].
pub fn write_atomic_if(
    path: &Path,
    content: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
    expected: &str,
) -> Result<(), FileError> {
    write_atomic_checked(path, content, mode, owner, Some(expected), true)
}

/// Directories whose files an apply writes, locked for the apply's whole run, so two applies
/// that write the same files exclude each other whatever their environment names or state
/// stores. The lock is `flock` on the directory itself: its identity survives the renames that
/// replace the files inside it, and it leaves nothing behind. Released when dropped.
#[derive(Debug, Default)]
pub struct DirectoryLocks {
    held: Vec<(PathBuf, File)>,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryLockError {
    #[error("another tldw-ops apply is writing files in {path}; it holds its lock until it ends")]
    Busy { path: PathBuf },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl DirectoryLocks {
    /// Locks the directories of `files` without waiting. Directories that do not exist yet are
    /// skipped (nothing can be written there until they do).
    pub fn acquire(files: &[&Path]) -> Result<DirectoryLocks, DirectoryLockError> {
        let mut locks = DirectoryLocks::default();
        for file in files {
            let Some(directory) = file.parent() else {
                continue;
            };
            let directory = if directory.as_os_str().is_empty() {
                Path::new(".")
            } else {
                directory
            };
            let Ok(directory) = fs::canonicalize(directory) else {
                continue;
            };
            if locks.held.iter().any(|(held, _)| *held == directory) {
                continue;
            }
            let handle = File::open(&directory).map_err(|source| DirectoryLockError::Io {
                path: directory.clone(),
                source,
            })?;
            match handle.try_lock() {
                Ok(()) => locks.held.push((directory, handle)),
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(DirectoryLockError::Busy { path: directory });
                }
                Err(fs::TryLockError::Error(source)) => {
                    return Err(DirectoryLockError::Io {
                        path: directory,
                        source,
                    });
                }
            }
        }
        Ok(locks)
    }

    pub fn directories(&self) -> impl Iterator<Item = &Path> {
        self.held.iter().map(|(path, _)| path.as_path())
    }
}

/// The temporary file [`write_atomic`] uses for `path` in process `pid`.
pub fn temporary_path(path: &Path, pid: u32) -> PathBuf {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().to_string())
        .unwrap_or_else(|| "file".to_string());
    directory.join(format!(".{file_name}.tldw-ops.{pid}.tmp"))
}

/// Removes the temporary files an interrupted tldw-ops left beside `path` (`.NAME.tldw-ops.
/// <pid>.tmp` of a process that is gone). Returns the ones removed.
pub fn remove_stale_temporaries(path: &Path) -> Vec<PathBuf> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(file_name) = path
        .file_name()
        .map(|name| name.to_string_lossy().to_string())
    else {
        return Vec::new();
    };
    let prefix = format!(".{file_name}.tldw-ops.");
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(&directory) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        let is_file = entry
            .file_type()
            .map(|kind| kind.is_file())
            .unwrap_or(false);
        if !alive && is_file && fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    if !removed.is_empty() {
        let _ = File::open(&directory).and_then(|file| file.sync_all());
    }
    removed
}

/// Removes a file that tldw-ops created, durably.
pub fn remove_durably(path: &Path) -> Result<(), FileError> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(FileError::Write {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    if let Some(directory) = path.parent() {
        let _ = File::open(directory).and_then(|file| file.sync_all());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_keeps_the_mode_and_leaves_no_temporary_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(".env");
        fs::write(&path, "A=1\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let before = read_snapshot(&path).unwrap();
        write_atomic(&path, b"A=2\n", before.mode.unwrap(), before.owner).unwrap();
        let after = read_snapshot(&path).unwrap();
        assert_eq!(after.content.as_deref(), Some("A=2\n"));
        assert_eq!(after.mode, Some(0o640));
        assert_eq!(fs::read_dir(directory.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_file_reads_as_absent_and_a_directory_is_an_error() {
        let directory = tempfile::tempdir().unwrap();
        let missing = read_snapshot(&directory.path().join("nope")).unwrap();
        assert!(!missing.exists());
        assert_eq!(missing.hash(), "absent");
        assert!(matches!(
            read_snapshot(directory.path()),
            Err(FileError::Directory { .. })
        ));
    }

    #[test]
    fn a_file_that_is_not_utf8_is_an_error_naming_it() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("config.txt");
        fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
        let error = read_snapshot(&path).unwrap_err();
        assert!(error.to_string().contains("config.txt"), "{error}");
    }

    #[test]
    fn a_compare_and_swap_write_refuses_a_file_that_changed_and_leaves_it_alone() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(".env");
        fs::write(&path, "A=1\n").unwrap();
        let read = read_snapshot(&path).unwrap();
        // Another writer gets there first.
        fs::write(&path, "A=1\nB=2\n").unwrap();
        let error = write_atomic_if(&path, b"A=3\n", 0o600, None, &read.hash()).unwrap_err();
        assert!(matches!(error, FileError::Moved { .. }), "{error}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "A=1\nB=2\n");
        assert_eq!(fs::read_dir(directory.path()).unwrap().count(), 1);
        let now = read_snapshot(&path).unwrap();
        write_atomic_if(&path, b"A=3\n", 0o600, None, &now.hash()).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "A=3\n");
        // A file that must not exist yet.
        let new = directory.path().join("config.txt");
        write_atomic_if(&new, b"[S]\n", 0o644, None, "absent").unwrap();
        assert!(write_atomic_if(&new, b"[T]\n", 0o644, None, "absent").is_err());
    }

    #[test]
    fn a_symlinked_file_is_written_through_and_the_link_stays() {
        let directory = tempfile::tempdir().unwrap();
        let real = directory.path().join("real.env");
        let link = directory.path().join(".env");
        fs::write(&real, "A=1\n").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomic(&link, b"A=2\n", 0o600, None).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&real).unwrap(), "A=2\n");
    }

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let directory = tempfile::tempdir().unwrap();
        let env = directory.path().join(".env");
        let config = directory.path().join("config.txt");
        let first = DirectoryLocks::acquire(&[&env, &config]).unwrap();
        assert_eq!(first.directories().count(), 1, "one lock per directory");
        assert!(matches!(
            DirectoryLocks::acquire(&[&config]),
            Err(DirectoryLockError::Busy { .. })
        ));
        drop(first);
        assert!(DirectoryLocks::acquire(&[&config]).is_ok());
    }

    #[test]
    fn only_temporary_files_of_processes_that_are_gone_are_removed() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(".env");
        let dead = temporary_path(&path, 4_000_000_000);
        let mine = temporary_path(&path, std::process::id());
        let other = directory.path().join(".config.txt.tldw-ops.4000000000.tmp");
        for file in [&dead, &mine, &other] {
            fs::write(file, "x").unwrap();
        }
        assert_eq!(remove_stale_temporaries(&path), vec![dead.clone()]);
        assert!(!dead.exists() && mine.exists() && other.exists());
    }

    #[test]
    fn a_write_into_a_missing_directory_fails_and_leaves_nothing() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("missing").join(".env");
        assert!(write_atomic(&path, b"A=1\n", 0o600, None).is_err());
        assert!(!path.exists());
    }
}
