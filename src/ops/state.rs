//! `state {list, unlock, migrate}`: the state store itself. `list` reads every environment's
//! summary, `unlock` clears an environment's lock (the environment named, or the one a
//! desired-state file describes), and `migrate` copies history from one store into another
//! after checking the two locations (the copying itself is [`crate::state::migrate_history`]).
//! `cli::state` asks for `--force`, prints, and picks the exit status.

use std::path::Path;

use crate::pipeline::state_location;
use crate::settings::Settings;
use crate::spec::CheckError;
use crate::state::location::exists;
use crate::state::{
    EnvironmentKey, EnvironmentSummary, LockHolder, MigrationReport, Outcome, StateError,
    StateStore, migrate_history, open, open_read_only,
};

/// Every environment the state of `file` knows, with its last apply and lock holder.
pub async fn list(file: &Path, settings: &Settings) -> Result<Vec<EnvironmentSummary>, StateError> {
    let store = open_read_only(&state_location(file, settings)).await?;
    let environments = store.environments().await;
    store.close().await;
    environments
}

/// Whether the last apply of an environment was interrupted (killed, or its machine went
/// down): the journal still calls it running while no live process holds the environment's
/// lock for it.
pub fn interrupted(summary: &EnvironmentSummary) -> bool {
    summary.last_apply.as_ref().is_some_and(|record| {
        record.outcome == Outcome::Running
            && summary
                .lock
                .as_ref()
                .is_none_or(|holder| holder.apply_id != record.id)
    })
}

/// Why a lock was not cleared.
#[derive(Debug, thiserror::Error)]
pub enum UnlockError {
    /// No environment was named and the desired-state file does not say which.
    #[error("cannot tell which environment to unlock: {0}; pass --environment")]
    NoEnvironment(#[source] CheckError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// What `state unlock` did.
pub enum Unlocked {
    /// The lock `holder` held on `key` is cleared.
    Cleared {
        key: EnvironmentKey,
        holder: LockHolder,
    },
    /// `key` was not locked.
    NotLocked { key: EnvironmentKey },
}

/// Clears the lock of `environment`, or of the environment `file` describes, in the state of
/// `file`.
pub async fn unlock(
    file: &Path,
    environment: Option<EnvironmentKey>,
    settings: &Settings,
) -> Result<Unlocked, UnlockError> {
    let location = state_location(file, settings);
    let key = match environment {
        Some(key) => key,
        None => crate::pipeline::load_checked(file, settings)
            .map(|checked| EnvironmentKey::of(&checked.spec))
            .map_err(UnlockError::NoEnvironment)?,
    };
    let store = open(&location).await?;
    Ok(match store.force_unlock(&key).await? {
        Some(holder) => Unlocked::Cleared { key, holder },
        None => Unlocked::NotLocked { key },
    })
}

/// Why nothing was migrated.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("`state migrate` needs --to (or --state / TLDW_OPS_STATE) to name the target store")]
    NoTarget,
    #[error("--from and --to name the same store; nothing to copy")]
    SameStore,
    /// Opening a SQLite path creates it; a typo in `--from` must not look like an empty history.
    #[error("no state store at {0}; --from must name an existing SQLite file")]
    NoSource(String),
    #[error(transparent)]
    State(#[from] StateError),
}

/// What `state migrate` copied, from where to where.
pub struct Migrated {
    pub from: String,
    pub to: String,
    pub report: MigrationReport,
}

/// Copies the history in `from` into `to` (by default the `--state` / TLDW_OPS_STATE store).
pub async fn migrate(
    from: &str,
    to: Option<&str>,
    settings: &Settings,
) -> Result<Migrated, MigrateError> {
    let Some(to) = to.map(str::to_string).or_else(|| settings.state.clone()) else {
        return Err(MigrateError::NoTarget);
    };
    if to == from {
        return Err(MigrateError::SameStore);
    }
    if !exists(from) {
        return Err(MigrateError::NoSource(from.to_string()));
    }
    let source = open(from).await?;
    let target = open(&to).await?;
    let report = migrate_history(&source, &target).await?;
    Ok(Migrated {
        from: source.location(),
        to: target.location(),
        report,
    })
}
