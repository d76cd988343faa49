//! Backups as reconciled state, the I/O part: where an environment's sets live and what goes
//! into them (resolved from the desired state and the deployment), and observing the sets for
//! the planner. The decisions are pure and live in `plan::backups`; the steps that create,
//! prune and restore sets live in `kinds::backups`; the library that makes, verifies and
//! restores a set is `providers::backups`.
//!
//! Paths: a relative `backup.destination` resolves against the directory of the YAML file that
//! declares it (like `target.root`); sets are `<destination>/<environment>/<set id>/`. The AuthNZ
//! database is `target.database` (`sqlite:///./Databases/users.db` relative to `target.root`, or
//! a PostgreSQL URL; default the SQLite one); its password is the managed secret
//! `POSTGRES_PASSWORD` when the YAML declares it, else the one in the URL, else none.

pub mod schedule;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::plan::SourceRef;
use crate::plan::backups::BackupInput;
use crate::providers::backups::{
    AuthnzSource, BackupError, BackupSource, RestoreTargets, SetInfo, destination_warnings,
    list_sets,
};
use crate::providers::env_file::EnvFile;
use crate::spec::Checked;
use crate::spec::types::{Backup, BackupItem};

/// The secret whose value is the PostgreSQL AuthNZ password, when the YAML manages it.
pub const PASSWORD_SECRET: &str = "POSTGRES_PASSWORD";

/// The AuthNZ database tldw_server uses by default.
const DEFAULT_DATABASE: &str = "sqlite:///./Databases/users.db";

/// Where one environment's backup sets live and what they hold.
#[derive(Debug, Clone)]
pub struct BackupTarget {
    pub policy: Backup,
    pub destination: PathBuf,
    pub environment: String,
    pub authnz: AuthnzLocation,
    pub user_db_base_dir: PathBuf,
    pub env_file: PathBuf,
    pub config_file: PathBuf,
    /// Where the YAML declares `backup:`.
    pub source: Option<SourceRef>,
    /// Whether the YAML manages `POSTGRES_PASSWORD`.
    password_is_managed: bool,
}

/// The AuthNZ database as `target.database` names it.
#[derive(Clone, PartialEq, Eq)]
pub enum AuthnzLocation {
    Sqlite(PathBuf),
    /// A `postgres://` URL as written (perhaps with a password, which is never shown).
    Postgres(String),
}

impl std::fmt::Debug for AuthnzLocation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthnzLocation::Sqlite(path) => formatter.debug_tuple("Sqlite").field(path).finish(),
            AuthnzLocation::Postgres(_) => formatter.write_str("Postgres(..)"),
        }
    }
}

/// Reads tldw's `DATABASE_URL` syntax: `sqlite:///relative/to/root`, `sqlite:////absolute`,
/// `postgresql://…` or `postgres://…` (a `+driver` suffix such as `postgresql+asyncpg` is
/// dropped, the client tools do not know it).
pub fn parse_database(url: &str, root: &Path) -> Option<AuthnzLocation> {
    if let Some(path) = url.strip_prefix("sqlite:///") {
        let path = Path::new(path);
        return Some(AuthnzLocation::Sqlite(if path.is_absolute() {
            path.to_path_buf()
        } else {
            root.join(path.strip_prefix("./").unwrap_or(path))
        }));
    }
    let (scheme, rest) = url.split_once("://")?;
    let base = scheme.split('+').next().unwrap_or(scheme);
    matches!(base, "postgres" | "postgresql")
        .then(|| AuthnzLocation::Postgres(format!("{base}://{rest}")))
}

impl BackupTarget {
    /// The backup target of a checked desired state; `None` without a `backup:` policy.
    pub fn resolve(
        checked: &Checked,
        root: &Path,
        env_file: &Path,
        config_file: &Path,
        user_db_base_dir: &Path,
    ) -> Option<BackupTarget> {
        let policy = checked.spec.backup.clone()?;
        let database = checked
            .spec
            .target
            .database
            .as_deref()
            .unwrap_or(DEFAULT_DATABASE);
        let authnz = parse_database(database, root)
            .unwrap_or_else(|| AuthnzLocation::Sqlite(root.join("Databases/users.db")));
        let source =
            crate::spec::semantic::locate_key(&checked.loaded.root, "/backup").map(|location| {
                SourceRef {
                    file: location.file.to_string(),
                    line: location.line,
                    column: location.column,
                }
            });
        let password_is_managed = checked
            .spec
            .secrets
            .as_ref()
            .is_some_and(|secrets| secrets.values.contains_key(PASSWORD_SECRET));
        Some(BackupTarget {
            destination: checked.declared_path("/backup/destination", &policy.destination),
            environment: checked.spec.environment.clone(),
            policy,
            authnz,
            user_db_base_dir: user_db_base_dir.to_path_buf(),
            env_file: env_file.to_path_buf(),
            config_file: config_file.to_path_buf(),
            source,
            password_is_managed,
        })
    }

    /// `<destination>/<environment>`: the directory that holds the sets.
    pub fn location(&self) -> PathBuf {
        self.destination.join(&self.environment)
    }

    /// The directory of one set.
    pub fn set_dir(&self, set_id: &str) -> PathBuf {
        crate::providers::backups::set_path(&self.destination, &self.environment, set_id)
    }

    /// The PostgreSQL password: the managed secret (from its source when it has one, else as
    /// the `.env` holds it), else none (then one in the URL is used).
    fn password(&self, secret_values: &BTreeMap<String, String>) -> Option<String> {
        if !self.password_is_managed {
            return None;
        }
        secret_values.get(PASSWORD_SECRET).cloned().or_else(|| {
            EnvFile::read(&self.env_file)
                .ok()
                .and_then(|file| file.get(PASSWORD_SECRET).map(str::to_string))
                .filter(|value| !value.is_empty())
        })
    }

    fn authnz_source(&self, secret_values: &BTreeMap<String, String>) -> AuthnzSource {
        match &self.authnz {
            AuthnzLocation::Sqlite(path) => AuthnzSource::Sqlite(path.clone()),
            AuthnzLocation::Postgres(url) => AuthnzSource::Postgres {
                url: url.clone(),
                password: self.password(secret_values),
            },
        }
    }

    /// What `create_set` reads.
    pub fn backup_source(&self, secret_values: &BTreeMap<String, String>) -> BackupSource {
        BackupSource {
            environment: self.environment.clone(),
            authnz: Some(self.authnz_source(secret_values)),
            user_db_base_dir: Some(self.user_db_base_dir.clone()),
            env_file: Some(self.env_file.clone()),
            config_file: Some(self.config_file.clone()),
            pg_bin_dir: None,
        }
    }

    /// Where `restore_set` writes.
    pub fn restore_targets(&self, secret_values: &BTreeMap<String, String>) -> RestoreTargets {
        RestoreTargets {
            authnz: Some(self.authnz_source(secret_values)),
            user_db_base_dir: Some(self.user_db_base_dir.clone()),
            env_file: Some(self.env_file.clone()),
            config_file: Some(self.config_file.clone()),
            pg_bin_dir: None,
        }
    }

    /// Notes for the plan about the sources: an included database that is not there makes
    /// every backup fail.
    fn source_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.policy.include.contains(&BackupItem::Authnz)
            && let AuthnzLocation::Sqlite(path) = &self.authnz
            && !path.exists()
        {
            warnings.push(format!(
                "backup: the AuthNZ database {} does not exist, so creating a set will fail \
                 (set `target.database`, or leave authnz out of `backup.include`)",
                path.display()
            ));
        }
        if self.policy.include.contains(&BackupItem::UserDatabases)
            && !self.user_db_base_dir.is_dir()
        {
            warnings.push(format!(
                "backup: the per-user directory {} does not exist, so creating a set will fail",
                self.user_db_base_dir.display()
            ));
        }
        warnings
    }
}

/// What observing the destination found.
#[derive(Debug, Clone)]
pub struct Observation {
    pub policy: Backup,
    /// Every set, oldest first.
    pub sets: Vec<SetInfo>,
    /// `<destination>/<environment>` as shown to people.
    pub location: String,
    pub source: Option<SourceRef>,
    pub warnings: Vec<String>,
}

impl Observation {
    /// The planner's view of it.
    pub fn input(&self) -> BackupInput<'_> {
        BackupInput {
            policy: &self.policy,
            sets: &self.sets,
            location: &self.location,
            source: self.source.as_ref(),
            warnings: &self.warnings,
        }
    }
}

/// Lists the sets of the environment (reading each manifest), and notes a destination others
/// can read and sources that are missing.
pub fn observe(target: &BackupTarget) -> Result<Observation, BackupError> {
    let sets = list_sets(&target.destination, &target.environment)?
        .into_iter()
        .map(|(set, _)| set)
        .collect();
    let mut warnings = destination_warnings(&target.destination);
    warnings.extend(target.source_warnings());
    Ok(Observation {
        policy: target.policy.clone(),
        sets,
        location: shown(&target.location()),
        source: target.source.clone(),
        warnings,
    })
}

/// A path as shown to people: relative to the working directory when below it.
pub fn shown(path: &Path) -> String {
    crate::spec::source::display_name(path).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_resolve_as_tldw_reads_them() {
        let root = Path::new("/srv/tldw");
        assert_eq!(
            parse_database("sqlite:///./Databases/users.db", root),
            Some(AuthnzLocation::Sqlite(PathBuf::from(
                "/srv/tldw/Databases/users.db"
            )))
        );
        assert_eq!(
            parse_database("sqlite:////var/lib/tldw/users.db", root),
            Some(AuthnzLocation::Sqlite(PathBuf::from(
                "/var/lib/tldw/users.db"
            )))
        );
        assert_eq!(
            parse_database("postgresql+asyncpg://tldw@db:5432/authnz", root),
            Some(AuthnzLocation::Postgres(
                "postgresql://tldw@db:5432/authnz".to_string()
            ))
        );
        assert_eq!(parse_database("mysql://x", root), None);
    }

    #[test]
    fn the_debug_form_of_a_postgres_location_shows_no_url() {
        let shown = format!(
            "{:?}",
            AuthnzLocation::Postgres("postgres://u:hunter2@db/x".to_string())
        );
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
