//! Bounds on everything tldw-ops reads from input that someone else may have written: a
//! desired-state file can come from a pull request, a saved plan from a CI artifact, and the
//! `.env` and `config.txt` from the host. Every bound is a constant here, so the peak memory of
//! one run can be stated (README, "Limits") and a refusal always names the file and the limit.
//!
//! This module owns the numbers and the one bounded reader of regular files. It does not decide
//! what a refusal means for the exit status: the caller reports it as bad input (exit 3) or as an
//! unreadable file (exit 1). The HTTP response bound lives with the admin API client.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest desired-state file (and each file it `extends`), in bytes.
pub const MAX_DOCUMENT_BYTES: u64 = 4 * 1024 * 1024;
/// Most files one desired state may be layered from, itself included.
pub const MAX_LAYER_FILES: usize = 32;
/// Deepest nesting of mappings and sequences in a YAML document. Deeper trees would also make
/// the recursive walks over them (merge, drop, JSON) risk the stack.
pub const MAX_YAML_DEPTH: usize = 64;
/// Most nodes (scalars, mappings, sequences) all layers of a desired state may hold once every
/// alias is expanded. An alias counts as a copy of everything under its anchor, so "billion
/// laughs" (9 levels of 9 aliases, 387 million nodes) is refused when the count passes this,
/// before any copy is made.
pub const MAX_YAML_NODES: usize = 100_000;
/// Most bytes of scalar text all layers may hold once every alias is expanded: a 1 MiB string
/// aliased a thousand times is refused like a billion laughs.
pub const MAX_YAML_SCALAR_BYTES: usize = 8 * 1024 * 1024;

/// Largest template source (one string value holding `{{`, `{%` or `{#`), in bytes.
pub const MAX_TEMPLATE_SOURCE_BYTES: usize = 4 * 1024;
/// Instructions one template may execute (minijinja fuel).
pub const TEMPLATE_FUEL: u64 = 10_000;
/// Most different templates one desired state may hold (identical text renders once).
pub const MAX_TEMPLATE_VALUES: usize = 10_000;
/// Largest value one template may render, in bytes.
pub const MAX_TEMPLATE_OUTPUT_BYTES: usize = 64 * 1024;
/// Most bytes all templates of a desired state may render together (aliases of a templated
/// value count once per copy).
pub const MAX_TEMPLATE_TOTAL_OUTPUT_BYTES: usize = 8 * 1024 * 1024;

/// Largest `from_file` secret (or `target.api.token` file), in bytes.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;
/// Largest deployment `.env` or `config.txt` read, in bytes (tldw's shipped `config.txt` is
/// about 60 KiB).
pub const MAX_DEPLOYMENT_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Largest backup set manifest read, in bytes.
pub const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;
/// Largest saved plan (`apply plan.json`), in bytes.
pub const MAX_PLAN_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// Why a bounded read refused a file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is {kind}, not a regular file", path.display())]
    NotRegular { path: PathBuf, kind: FileKind },
    #[error("{} is larger than the limit of {}", path.display(), show_bytes(*limit))]
    TooLarge { path: PathBuf, limit: u64 },
}

impl ReadError {
    pub fn path(&self) -> &Path {
        match self {
            ReadError::Io { path, .. }
            | ReadError::NotRegular { path, .. }
            | ReadError::TooLarge { path, .. } => path,
        }
    }

    /// Whether the file exists but was refused by a bound (bad input) rather than unreadable.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, ReadError::Io { .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What a path that is not a regular file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    CharacterDevice,
    BlockDevice,
    Fifo,
    Socket,
    Other,
}

impl fmt::Display for FileKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            FileKind::Directory => "a directory",
            FileKind::CharacterDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Fifo => "a FIFO",
            FileKind::Socket => "a socket",
            FileKind::Other => "a special file",
        })
    }
}

fn kind_of(file_type: std::fs::FileType) -> Option<FileKind> {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_file() {
        None
    } else if file_type.is_dir() {
        Some(FileKind::Directory)
    } else if file_type.is_char_device() {
        Some(FileKind::CharacterDevice)
    } else if file_type.is_block_device() {
        Some(FileKind::BlockDevice)
    } else if file_type.is_fifo() {
        Some(FileKind::Fifo)
    } else if file_type.is_socket() {
        Some(FileKind::Socket)
    } else {
        Some(FileKind::Other)
    }
}

/// `1 MiB`, `64 KiB`, `512 bytes`.
pub fn show_bytes(bytes: u64) -> String {
    if bytes >= 1024 * 1024 && bytes.is_multiple_of(1024 * 1024) {
        format!("{} MiB", bytes / (1024 * 1024))
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// Reads a regular file of at most `limit` bytes. Directories, devices (`/dev/zero`), FIFOs and
/// sockets are refused before they are opened for reading (opening a FIFO would block), checked
/// again on the open handle (the path may have been swapped), and the read itself stops one
/// byte past `limit` whatever the metadata said, so a file that grows while it is read, or a
/// file system that reports size 0 (procfs), cannot make it read more.
pub fn read_regular_file(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let io = |source: std::io::Error| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(io)?;
    if let Some(refused) = refusal(path, &metadata, limit) {
        return Err(refused);
    }
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: a FIFO swapped in after the check above must not block the open.
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(O_NONBLOCK)
            .open(path)
            .map_err(io)?
    };
    let opened = file.metadata().map_err(io)?;
    if let Some(kind) = kind_of(opened.file_type()) {
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    let capacity = usize::try_from(opened.len().min(limit)).unwrap_or(0);
    let mut bytes = Vec::with_capacity(capacity);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(bytes)
}

/// Why [`read_regular_file`] refuses `path`, judged by its `metadata` alone: not a regular
/// file, or larger than `limit`. `None` when it would be read.
pub fn refusal(path: &Path, metadata: &std::fs::Metadata, limit: u64) -> Option<ReadError> {
    if let Some(kind) = kind_of(metadata.file_type()) {
        return Some(ReadError::NotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    (metadata.len() > limit).then(|| ReadError::TooLarge {
        path: path.to_path_buf(),
        limit,
    })
}

/// Like [`read_regular_file`], for a file that may be absent: `Ok(None)` when it does not exist.
pub fn read_regular_file_if_exists(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, ReadError> {
    match read_regular_file(path, limit) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const O_NONBLOCK: i32 = 0o4000;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const O_NONBLOCK: i32 = 0x0004;

/// The 1-based line and column (in characters) of byte `offset` in `bytes`, for pointing at
/// the first invalid byte of a file that is not UTF-8. Only the valid prefix is decoded.
pub fn line_column_at(bytes: &[u8], offset: usize) -> (usize, usize) {
    let prefix = &bytes[..offset.min(bytes.len())];
    let text = String::from_utf8_lossy(prefix);
    let line = text.matches('\n').count() + 1;
    let column = text
        .rsplit('\n')
        .next()
        .map(|last| last.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_directories_and_fifos_are_refused_without_reading() {
        let error = read_regular_file(Path::new("/dev/zero"), 16).unwrap_err();
        assert!(
            matches!(
                error,
                ReadError::NotRegular {
                    kind: FileKind::CharacterDevice,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("/dev/zero"), "{error}");
        let directory = tempfile::tempdir().unwrap();
        let error = read_regular_file(directory.path(), 16).unwrap_err();
        assert!(matches!(
            error,
            ReadError::NotRegular {
                kind: FileKind::Directory,
                ..
            }
        ));
        let fifo = directory.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let error = read_regular_file(&fifo, 16).unwrap_err();
        assert!(matches!(
            error,
            ReadError::NotRegular {
                kind: FileKind::Fifo,
                ..
            }
        ));
    }

    #[test]
    fn a_file_over_the_limit_is_refused_naming_the_limit() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("big");
        std::fs::write(&path, vec![b'a'; 2049]).unwrap();
        let error = read_regular_file(&path, 2048).unwrap_err();
        assert!(matches!(error, ReadError::TooLarge { limit: 2048, .. }));
        assert!(error.to_string().ends_with("limit of 2 KiB"), "{error}");
        assert_eq!(read_regular_file(&path, 2049).unwrap().len(), 2049);
    }

    #[test]
    fn a_file_reporting_size_zero_is_still_bounded_by_the_read() {
        // procfs reports size 0 for files that have content: metadata alone is not trusted.
        let bytes = read_regular_file(Path::new("/proc/self/status"), 1 << 20).unwrap();
        assert!(!bytes.is_empty());
        let error = read_regular_file(Path::new("/proc/self/status"), 8).unwrap_err();
        assert!(matches!(error, ReadError::TooLarge { limit: 8, .. }));
    }

    #[test]
    fn an_absent_file_is_none_only_for_the_if_exists_reader() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("absent");
        assert!(read_regular_file_if_exists(&path, 8).unwrap().is_none());
        assert!(read_regular_file(&path, 8).unwrap_err().is_not_found());
    }

    #[test]
    fn byte_offsets_become_lines_and_character_columns() {
        let bytes = "a: 1\nbé: \u{ff}".as_bytes();
        assert_eq!(line_column_at(bytes, 0), (1, 1));
        assert_eq!(line_column_at(bytes, 5), (2, 1));
        // "bé: " is four characters, five bytes.
        assert_eq!(line_column_at(bytes, 10), (2, 5));
    }
}
