//! Checkpoints: the before-image of every file an apply changes, kept on the target host under
//! `.tldw-ops/checkpoints/<apply-id>/` with mode 0600 (they hold secrets, like the files
//! themselves). The state store keeps only their path and hash.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::providers::files::{FileError, content_hash, write_private};

/// How many applies' checkpoints are kept by default.
pub const KEEP_APPLIES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot create checkpoint directory {path}: {source}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    File(#[from] FileError),
    #[error("checkpoint {path} is missing: {source}")]
    Missing {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "checkpoint {path} does not match the hash the journal recorded; it was changed or damaged"
    )]
    Damaged { path: PathBuf },
}

/// The checkpoint directory for a state location: beside a SQLite state file, or in
/// `.tldw-ops/` beside the YAML when state is in PostgreSQL. Absolute and with symlinks
/// resolved, because the journal records the paths and may be read from another directory
/// (or, in PostgreSQL, another host), and because CI keeps `.tldw-ops` as a symlink from a
/// workspace that is wiped between runs to a directory on the host.
pub fn root_for(state_location: &str, yaml_file: &Path) -> PathBuf {
    let root = relative_root_for(state_location, yaml_file);
    real_path(&std::path::absolute(&root).unwrap_or(root))
}

/// `path` with its longest existing ancestor resolved by the file system.
fn real_path(path: &Path) -> PathBuf {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = fs::canonicalize(existing) {
            return rest.iter().rev().fold(real, |real, part| real.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

fn relative_root_for(state_location: &str, yaml_file: &Path) -> PathBuf {
    if state_location.starts_with("postgres://") || state_location.starts_with("postgresql://") {
        yaml_file
            .parent()
            .unwrap_or(Path::new("."))
            .join(".tldw-ops")
            .join("checkpoints")
    } else {
        let path = Path::new(
            state_location
                .strip_prefix("sqlite://")
                .unwrap_or(state_location),
        );
        path.parent().unwrap_or(Path::new(".")).join("checkpoints")
    }
}

fn create_private_dir(path: &Path) -> Result<(), CheckpointError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| CheckpointError::Directory {
            path: path.to_path_buf(),
            source,
        })?;
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
    Ok(())
}

/// Saves a before-image and returns its path and hash.
pub fn save(
    root: &Path,
    apply_id: &str,
    step_index: u32,
    name: &str,
    content: &str,
) -> Result<(PathBuf, String), CheckpointError> {
    let directory = root.join(apply_id);
    create_private_dir(&directory)?;
    // The apply's own directory is never a link: checkpoints hold secrets and must land here.
    match fs::symlink_metadata(&directory) {
        Ok(metadata) if metadata.file_type().is_dir() => {}
        _ => {
            return Err(CheckpointError::Directory {
                path: directory,
                source: std::io::Error::other("it is a symbolic link or not a directory"),
            });
        }
    }
    let path = directory.join(format!("{step_index:03}-{name}"));
    write_private(&path, content.as_bytes())?;
    Ok((path, content_hash(Some(content))))
}

/// Reads a before-image, checking it against the hash the journal recorded.
pub fn load(path: &Path, expected_hash: &str) -> Result<String, CheckpointError> {
    let content = fs::read_to_string(path).map_err(|source| CheckpointError::Missing {
        path: path.to_path_buf(),
        source,
    })?;
    if content_hash(Some(&content)) != expected_hash {
        return Err(CheckpointError::Damaged {
            path: path.to_path_buf(),
        });
    }
    Ok(content)
}

/// Removes the checkpoints of all but the newest `keep` applies. Apply ids sort by time, and
/// `protect` (unfinished applies) is never removed.
pub fn prune(root: &Path, keep: usize, protect: &[String]) -> usize {
    let Ok(entries) = fs::read_dir(root) else {
        return 0;
    };
    let mut directories: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    directories.sort();
    let excess = directories.len().saturating_sub(keep);
    let mut removed = 0;
    for name in directories.into_iter().take(excess) {
        if protect.contains(&name) {
            continue;
        }
        if fs::remove_dir_all(root.join(&name)).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_private_and_verified_on_load() {
        let directory = tempfile::tempdir().unwrap();
        let (path, hash) = save(
            directory.path(),
            "20261126T000000Z-abcd",
            0,
            "env",
            "SECRET=x\n",
        )
        .unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert_eq!(load(&path, &hash).unwrap(), "SECRET=x\n");
        fs::write(&path, "SECRET=y\n").unwrap();
        assert!(matches!(
            load(&path, &hash),
            Err(CheckpointError::Damaged { .. })
        ));
    }

    #[test]
    fn checkpoints_never_follow_a_link_planted_below_the_root() {
        let directory = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let root = directory.path().join("checkpoints");
        fs::create_dir_all(&root).unwrap();
        // A link where an apply's directory goes.
        std::os::unix::fs::symlink(elsewhere.path(), root.join("20261126T000000Z-link")).unwrap();
        assert!(save(&root, "20261126T000000Z-link", 0, "env", "SECRET=x\n").is_err());
        assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);
        // A link where a checkpoint file goes is replaced, not written through.
        let target = elsewhere.path().join("stolen");
        fs::write(&target, "").unwrap();
        let apply = root.join("20261126T000000Z-file");
        fs::create_dir_all(&apply).unwrap();
        std::os::unix::fs::symlink(&target, apply.join("000-env")).unwrap();
        let (path, _) = save(&root, "20261126T000000Z-file", 0, "env", "SECRET=x\n").unwrap();
        assert!(
            !fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&target).unwrap(), "");
    }

    #[test]
    fn the_root_is_recorded_where_the_files_really_are() {
        let directory = tempfile::tempdir().unwrap();
        let host = directory.path().join("host");
        let workspace = directory.path().join("workspace");
        fs::create_dir_all(&host).unwrap();
        fs::create_dir_all(&workspace).unwrap();
        std::os::unix::fs::symlink(&host, workspace.join(".tldw-ops")).unwrap();
        let root = root_for("postgres://h/db", &workspace.join("prod.yaml"));
        assert_eq!(root, fs::canonicalize(&host).unwrap().join("checkpoints"));
        let missing = root_for(
            &directory
                .path()
                .join("new/.tldw-ops/state.db")
                .display()
                .to_string(),
            Path::new("x.yaml"),
        );
        assert_eq!(
            missing,
            fs::canonicalize(directory.path())
                .unwrap()
                .join("new/.tldw-ops/checkpoints")
        );
    }

    #[test]
    fn pruning_keeps_the_newest_applies_and_protected_ones() {
        let directory = tempfile::tempdir().unwrap();
        for index in 0..25 {
            save(
                directory.path(),
                &format!("2026112{}T{index:02}0000Z", index / 10),
                0,
                "env",
                "x",
            )
            .unwrap();
        }
        let oldest = "20261120T000000Z".to_string();
        let removed = prune(
            directory.path(),
            KEEP_APPLIES,
            std::slice::from_ref(&oldest),
        );
        assert_eq!(removed, 4);
        assert!(directory.path().join(&oldest).exists());
        assert_eq!(fs::read_dir(directory.path()).unwrap().count(), 21);
    }
}
