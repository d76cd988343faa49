//! The manifest of a backup set and the listing of sets at a destination.
//!
//! A set is the directory `<destination>/<environment>/<set id>/`. Its `manifest.json` is written
//! last, atomically (temporary file, fsync, rename), so its presence is what makes a set
//! complete: a directory without a parseable manifest is an incomplete set, left by a backup that
//! is still running or was interrupted, and never counts as a backup. The manifest holds no
//! secret: PostgreSQL sources are recorded without their password.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::BackupError;
use crate::plan::backup_policy::{SetInfo, parse_set_id};
use crate::providers::files::write_atomic;
use crate::spec::types::BackupItem;

pub const MANIFEST_FILE: &str = "manifest.json";
/// Bumped when a reader of the old format would misread the new one.
pub const MANIFEST_FORMAT: u32 = 1;

/// What a complete set holds, and whether it was found intact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// `tldw-ops`.
    pub tool: String,
    pub tool_version: String,
    pub environment: String,
    pub set_id: String,
    pub created_at: Timestamp,
    /// What the policy asked for when the set was made.
    pub include: Vec<BackupItem>,
    pub items: Vec<ManifestItem>,
    /// The last verification; `None` until the set is verified.
    #[serde(default)]
    pub verification: Option<Verification>,
    /// The last restore drill (`tldw-ops backup drill`); `None` until the set is drilled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<Drill>,
}

/// One file in a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestItem {
    /// Unique within the set: `authnz`, `env_file`, `config_file`, or the path of a per-user
    /// file relative to the per-user directory (`1/Media_DB_v2.db`).
    pub name: String,
    pub kind: ItemKind,
    /// Where it came from: a path, or a PostgreSQL URL without its password.
    pub source: String,
    /// Path of the copy relative to the set directory, `/`-separated, never leaving the set.
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// Permission bits of the source file (octal text, e.g. `0600`), restored with it.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "octal_mode")]
    pub mode: Option<u32>,
    /// Rows per table of a SQLite copy, counted by the last verification that found it sound:
    /// what a restore drill expects to find again after restoring it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// An online copy of the SQLite AuthNZ database.
    AuthnzSqlite,
    /// `pg_dump -Fc` of the PostgreSQL AuthNZ database.
    AuthnzPgDump,
    /// An online copy of a per-user SQLite database.
    UserDatabase,
    /// Any other file under the per-user directory, copied as is.
    UserFile,
    /// `.env` or config.txt.
    Config,
}

impl ItemKind {
    /// The `include:` entry this kind belongs to.
    pub fn include_item(self) -> BackupItem {
        match self {
            ItemKind::AuthnzSqlite | ItemKind::AuthnzPgDump => BackupItem::Authnz,
            ItemKind::UserDatabase | ItemKind::UserFile => BackupItem::UserDatabases,
            ItemKind::Config => BackupItem::Config,
        }
    }

    /// Whether the copy is a SQLite database that `integrity_check` can examine.
    pub fn is_sqlite(self) -> bool {
        matches!(self, ItemKind::AuthnzSqlite | ItemKind::UserDatabase)
    }
}

/// The outcome of verifying a set, recorded in its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[must_use]
pub struct Verification {
    pub ok: bool,
    pub verified_at: Timestamp,
    pub items_checked: usize,
    /// Empty when `ok`.
    pub problems: Vec<VerificationProblem>,
}

/// The outcome of a restore drill, recorded in the set's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[must_use]
pub struct Drill {
    pub ok: bool,
    pub drilled_at: Timestamp,
    /// Items restored into the scratch directory (or scratch database) and checked there.
    pub items_restored: usize,
    /// Empty when `ok`.
    pub problems: Vec<VerificationProblem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationProblem {
    /// The item's name.
    pub item: String,
    pub problem: String,
}

impl Manifest {
    /// Total bytes of the items.
    pub fn size(&self) -> u64 {
        self.items.iter().map(|item| item.size).sum()
    }

    /// Checks what a reader must be able to trust before it opens any item: every item path
    /// stays inside the set.
    fn check(&self, manifest_path: &Path) -> Result<(), BackupError> {
        for item in &self.items {
            if !is_safe_relative(&item.path) {
                return Err(BackupError::UnsafeItemPath {
                    path: manifest_path.to_path_buf(),
                    item_path: item.path.clone(),
                });
            }
        }
        Ok(())
    }
}

/// A `/`-separated relative path made only of ordinary names.
pub(super) fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\\')
        && Path::new(path)
            .components()
            .all(|component| matches!(component, Component::Normal(_)))
}

/// `<destination>/<environment>/<set id>`.
pub fn set_path(destination: &Path, environment: &str, set_id: &str) -> PathBuf {
    destination.join(environment).join(set_id)
}

/// Reads and checks a set's manifest. A missing manifest is [`BackupError::Incomplete`].
pub fn read_manifest(set_dir: &Path) -> Result<Manifest, BackupError> {
    let path = set_dir.join(MANIFEST_FILE);
    // A backup destination may be shared: the manifest is read bounded, from a regular file.
    let text = match crate::limits::read_regular_file(&path, crate::limits::MAX_MANIFEST_BYTES) {
        Ok(text) => text,
        Err(error) if error.is_not_found() => {
            return Err(BackupError::Incomplete {
                path: set_dir.to_path_buf(),
                source: None,
            });
        }
        Err(crate::limits::ReadError::Io { source, .. }) => {
            return Err(BackupError::Incomplete {
                path: set_dir.to_path_buf(),
                source: Some(source),
            });
        }
        Err(refused) => {
            return Err(BackupError::Incomplete {
                path: set_dir.to_path_buf(),
                source: Some(io::Error::other(refused.to_string())),
            });
        }
    };
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|source| BackupError::ManifestParse {
            path: path.clone(),
            source,
        })?;
    manifest.check(&path)?;
    Ok(manifest)
}

/// Writes a set's manifest atomically, mode 0600. Also used to record a verification.
pub fn write_manifest(set_dir: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let path = set_dir.join(MANIFEST_FILE);
    let mut text = serde_json::to_vec_pretty(manifest).map_err(|source| BackupError::Write {
        path: path.clone(),
        source: io::Error::other(source),
    })?;
    text.push(b'\n');
    write_atomic(&path, &text, 0o600, None)?;
    Ok(())
}

/// Every set of `environment` at `destination`, oldest first, each with its manifest when it is
/// complete. Directories whose names are not set ids are not sets and are left out (so nothing
/// else there is ever a candidate for deletion). A missing environment directory has no sets.
pub fn list_sets(
    destination: &Path,
    environment: &str,
) -> Result<Vec<(SetInfo, Option<Manifest>)>, BackupError> {
    let directory = destination.join(environment);
    let entries = match fs::read_dir(&directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(BackupError::Read {
                path: directory,
                source,
            });
        }
    };
    let mut sets = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| BackupError::Read {
            path: directory.clone(),
            source,
        })?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some(named_at) = parse_set_id(&name) else {
            continue;
        };
        if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            continue;
        }
        let path = entry.path();
        let set = match read_manifest(&path) {
            Ok(manifest) => (
                SetInfo {
                    id: name,
                    created_at: manifest.created_at,
                    complete: true,
                    verified: manifest.verification.as_ref().map(|v| v.ok),
                    size: manifest.size(),
                },
                Some(manifest),
            ),
            Err(_) => (
                SetInfo {
                    id: name,
                    created_at: named_at,
                    complete: false,
                    verified: None,
                    size: tree_size(&path),
                },
                None,
            ),
        };
        sets.push(set);
    }
    sets.sort_by(|a, b| (a.0.created_at, &a.0.id).cmp(&(b.0.created_at, &b.0.id)));
    Ok(sets)
}

/// Bytes of the regular files under `path`, best effort (for reporting what a prune frees).
fn tree_size(path: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => tree_size(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

mod octal_mode {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(mode: &Option<u32>, serializer: S) -> Result<S::Ok, S::Error> {
        match mode {
            Some(mode) => serializer.serialize_str(&format!("{mode:04o}")),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u32>, D::Error> {
        let text: Option<String> = Option::deserialize(deserializer)?;
        text.map(|text| {
            u32::from_str_radix(&text, 8)
                .ok()
                .filter(|mode| *mode <= 0o7777)
                .ok_or_else(|| D::Error::custom(format!("`{text}` is not an octal file mode")))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(set_id: &str) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            tool: "tldw-ops".to_string(),
            tool_version: "0.1.0".to_string(),
            environment: "prod".to_string(),
            set_id: set_id.to_string(),
            created_at: parse_set_id(set_id).unwrap(),
            include: vec![BackupItem::Config],
            items: vec![ManifestItem {
                name: "env_file".to_string(),
                kind: ItemKind::Config,
                source: "/srv/tldw/.env".to_string(),
                path: "config/.env".to_string(),
                size: 4,
                sha256: "ab".repeat(32),
                rows: None,
                mode: Some(0o600),
            }],
            verification: None,
            drill: None,
        }
    }

    #[test]
    fn a_manifest_round_trips_and_writes_modes_as_octal_text() {
        let directory = tempfile::tempdir().unwrap();
        let written = manifest("2026-11-25T030000Z");
        write_manifest(directory.path(), &written).unwrap();
        let text = fs::read_to_string(directory.path().join(MANIFEST_FILE)).unwrap();
        assert!(text.contains("\"mode\": \"0600\""), "{text}");
        assert!(text.contains("\"kind\": \"config\""), "{text}");
        assert_eq!(read_manifest(directory.path()).unwrap(), written);
    }

    #[test]
    fn a_manifest_naming_a_path_outside_the_set_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        for bad in [
            "../../etc/passwd",
            "/etc/passwd",
            "",
            "config/../../x",
            "a\\b",
        ] {
            let mut bad_manifest = manifest("2026-11-25T030000Z");
            bad_manifest.items[0].path = bad.to_string();
            write_manifest(directory.path(), &bad_manifest).unwrap();
            assert!(
                matches!(
                    read_manifest(directory.path()),
                    Err(BackupError::UnsafeItemPath { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn listing_finds_complete_and_incomplete_sets_and_ignores_other_directories() {
        let destination = tempfile::tempdir().unwrap();
        let environment = destination.path().join("prod");
        let complete = environment.join("2026-11-25T030000Z");
        let crashed = environment.join("2026-11-24T030000Z");
        let unparseable = environment.join("2026-11-23T030000Z");
        for directory in [
            &complete,
            &crashed,
            &unparseable,
            &environment.join("notes"),
        ] {
            fs::create_dir_all(directory).unwrap();
        }
        let mut verified = manifest("2026-11-25T030000Z");
        verified.verification = Some(Verification {
            ok: true,
            verified_at: "2026-11-25T03:05:00Z".parse().unwrap(),
            items_checked: 1,
            problems: Vec::new(),
        });
        write_manifest(&complete, &verified).unwrap();
        fs::write(crashed.join("users.db"), b"12345").unwrap();
        fs::write(unparseable.join(MANIFEST_FILE), b"{\"format\": 1, \"too").unwrap();

        let sets = list_sets(destination.path(), "prod").unwrap();
        let ids: Vec<&str> = sets.iter().map(|(set, _)| set.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "2026-11-23T030000Z",
                "2026-11-24T030000Z",
                "2026-11-25T030000Z"
            ]
        );
        assert!(!sets[0].0.complete && sets[0].1.is_none());
        assert_eq!(sets[1].0.size, 5);
        assert_eq!(
            sets[1].0.created_at,
            "2026-11-24T03:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert!(sets[2].0.complete);
        assert_eq!(sets[2].0.verified, Some(true));
        assert_eq!(sets[2].0.size, 4);
        assert!(list_sets(destination.path(), "staging").unwrap().is_empty());
    }
}
