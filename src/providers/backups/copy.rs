//! Byte-level file work for backup sets: copy a file while hashing it, hash a copy, make private
//! directories, fsync. Blocking code: callers run it on tokio's blocking pool. It knows nothing of
//! SQLite or PostgreSQL; a plain copy is only ever used for files that are not databases, or for
//! a database copy that is already consistent.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::BackupError;
use crate::secrets::hex;

const BUFFER: usize = 256 * 1024;

/// A file as written into a set or back to its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hashed {
    pub size: u64,
    pub sha256: String,
}

/// Copies `source` to a new file `target` with exactly `mode`, hashing the bytes on the way.
/// Fails if `target` exists. Does not fsync: a set's files are synced together before its
/// manifest is written. Returns the hash and the source's mode bits.
pub(super) fn copy_new_hashed(
    source: &Path,
    target: &Path,
    mode: u32,
) -> Result<(Hashed, u32), BackupError> {
    let read_error = |source_error: io::Error| BackupError::Read {
        path: source.to_path_buf(),
        source: source_error,
    };
    let mut input = File::open(source).map_err(read_error)?;
    let source_mode = input.metadata().map_err(read_error)?.mode() & 0o7777;
    let mut output = create_new_with_mode(target, mode)?;
    let hashed = pipe(&mut input, source, &mut output, target)?;
    Ok((hashed, source_mode))
}

/// Writes `bytes` to a new file `target` with exactly `mode`, hashing them in the same pass (each
/// chunk is hashed while it is still in the CPU cache). Fails if `target` exists. Does not fsync.
pub(super) fn write_new_hashed(
    target: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<Hashed, BackupError> {
    let mut output = create_new_with_mode(target, mode)?;
    let mut hasher = Sha256::new();
    for chunk in bytes.chunks(BUFFER) {
        hasher.update(chunk);
        output
            .write_all(chunk)
            .map_err(|error| write_error(target, error))?;
    }
    Ok(Hashed {
        size: bytes.len() as u64,
        sha256: hex(&hasher.finalize()),
    })
}

/// Copies `source` over a file named `target` that may exist (a staging file), with exactly
/// `mode` and, when given, `owner`; fsyncs it. Returns the hash of what was written.
pub(super) fn copy_replacing_hashed(
    source: &Path,
    target: &Path,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<Hashed, BackupError> {
    let mut input = File::open(source).map_err(|error| BackupError::Read {
        path: source.to_path_buf(),
        source: error,
    })?;
    let mut output = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(target)
        .map_err(|error| write_error(target, error))?;
    let hashed = pipe(&mut input, source, &mut output, target)?;
    // Exact bits regardless of the umask; owner before mode so set-id bits survive the chown.
    if let Some((uid, gid)) = owner {
        let metadata = output.metadata().map_err(|e| write_error(target, e))?;
        if metadata.uid() != uid || metadata.gid() != gid {
            std::os::unix::fs::fchown(&output, Some(uid), Some(gid))
                .map_err(|e| write_error(target, e))?;
        }
    }
    output
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| write_error(target, e))?;
    output.sync_all().map_err(|e| write_error(target, e))?;
    Ok(hashed)
}

/// Hashes a file.
pub(super) fn hash_file(path: &Path) -> Result<Hashed, BackupError> {
    let read_error = |error: io::Error| BackupError::Read {
        path: path.to_path_buf(),
        source: error,
    };
    let mut file = File::open(path).map_err(read_error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; BUFFER];
    let mut size = 0u64;
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(read_error(error)),
        };
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok(Hashed {
        size,
        sha256: hex(&hasher.finalize()),
    })
}

/// Creates `path` and its missing parents with mode 0700 (a set holds secrets and user data).
pub(super) fn create_private_dir_all(path: &Path) -> Result<(), BackupError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| BackupError::CreateDirectory {
            path: path.to_path_buf(),
            source,
        })
}

/// Makes a file's content durable.
pub(super) fn sync_file(path: &Path) -> Result<(), BackupError> {
    File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|error| write_error(path, error))
}

/// Makes directory entries (new files, renames, removals) durable.
pub(super) fn sync_directory(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// The first 16 bytes of every SQLite 3 database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Whether `path` is a SQLite database, by its header (names mean nothing: tldw has `.db`,
/// `.sqlite` and extension-less databases).
pub(super) fn is_sqlite_file(path: &Path) -> Result<bool, BackupError> {
    let mut header = [0u8; 16];
    let mut file = File::open(path).map_err(|source| BackupError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    match file.read_exact(&mut header) {
        Ok(()) => Ok(&header == SQLITE_HEADER),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(source) => Err(BackupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn create_new_with_mode(path: &Path, mode: u32) -> Result<File, BackupError> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|error| write_error(path, error))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|error| write_error(path, error))?;
    Ok(file)
}

fn pipe(
    input: &mut File,
    input_path: &Path,
    output: &mut File,
    output_path: &Path,
) -> Result<Hashed, BackupError> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; BUFFER];
    let mut size = 0u64;
    loop {
        let read = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return Err(BackupError::Read {
                    path: input_path.to_path_buf(),
                    source: error,
                });
            }
        };
        hasher.update(&buffer[..read]);
        output
            .write_all(&buffer[..read])
            .map_err(|error| write_error(output_path, error))?;
        size += read as u64;
    }
    Ok(Hashed {
        size,
        sha256: hex(&hasher.finalize()),
    })
}

fn write_error(path: &Path, source: io::Error) -> BackupError {
    BackupError::Write {
        path: path.to_path_buf(),
        source,
    }
}
