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
    #[error("cannot write {path}: {source} (the original file is unchanged)")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
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
    let bytes = fs::read(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
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

/// Writes `content` to `path` atomically with `mode`, keeping `owner` when given.
pub fn write_atomic(
    path: &Path,
    content: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), FileError> {
    let error = |source: io::Error| FileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().to_string())
        .unwrap_or_else(|| "file".to_string());
    let temporary = directory.join(format!(".{file_name}.tldw-ops.{}.tmp", std::process::id()));
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
        fs::rename(&temporary, path)?;
        File::open(&directory)?.sync_all()?;
        Ok(())
    })();
    if let Err(source) = result {
        let _ = fs::remove_file(&temporary);
        return Err(error(source));
    }
    Ok(())
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
    fn a_write_into_a_missing_directory_fails_and_leaves_nothing() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("missing").join(".env");
        assert!(write_atomic(&path, b"A=1\n", 0o600, None).is_err());
        assert!(!path.exists());
    }
}
