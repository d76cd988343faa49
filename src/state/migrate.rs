//! Copying history from one store to another (`state migrate --from sqlite://… --to
//! postgres://…`): the salt, environments, managed rows, secret metadata, applies and their
//! steps. Idempotent: what the target already has wins and is never duplicated, so an
//! interrupted or repeated migration can simply be run again. Locks are not copied; they belong
//! to running processes, not to history. (Not to be confused with schema migrations, which each
//! backend runs when it opens.)

use serde::Serialize;

use super::{
    ApplyRecord, EnvironmentKey, EnvironmentState, StateError, StateStore, StepRecord, Store,
};

/// What `migrate_history` copied. Zero everywhere means the target already had everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MigrationReport {
    /// Whether the target took the source's salt (false when it already had it).
    pub salt_copied: bool,
    /// Environments the target did not know.
    pub environments: usize,
    /// Managed rows and secret metadata copied, for environments the target had none for.
    pub managed: usize,
    pub secrets: usize,
    pub applies: usize,
    pub steps: usize,
    /// Applies the target already had, left as they were.
    pub applies_already_present: usize,
}

/// How a target answered the source's salt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SaltAdoption {
    /// It already had it.
    Same,
    /// It had no environments, and now has the source's salt.
    Copied,
    /// It has environments fingerprinted with another salt.
    Conflict,
}

/// What importing one environment wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct ImportedEnvironment {
    pub(super) created: bool,
    pub(super) managed: usize,
    pub(super) secrets: usize,
}

/// Copies everything `from` holds into `to`. Refuses, before copying anything, when `to`
/// already has environments fingerprinted with a different salt: their fingerprints could not
/// be compared with the copied ones. Applies are copied oldest first, so the target lists
/// applies that started in the same instant in the same order.
pub async fn migrate_history(from: &Store, to: &Store) -> Result<MigrationReport, StateError> {
    let mut report = MigrationReport::default();
    let salt = from.salt().await?;
    match to.adopt_salt(&salt).await? {
        SaltAdoption::Same => {}
        SaltAdoption::Copied => report.salt_copied = true,
        SaltAdoption::Conflict => {
            return Err(StateError::SaltConflict {
                from: from.location(),
                to: to.location(),
            });
        }
    }
    for summary in from.environments().await? {
        let state = from.environment(&summary.environment).await?;
        let imported = to.import_environment(&summary.environment, &state).await?;
        report.environments += usize::from(imported.created);
        report.managed += imported.managed;
        report.secrets += imported.secrets;
    }
    let mut applies = from.applies(None, u32::MAX).await?;
    applies.reverse();
    for record in &applies {
        let steps = from.steps(&record.id).await?;
        match to.import_apply(record, &steps).await? {
            Some(steps) => {
                report.applies += 1;
                report.steps += steps;
            }
            None => report.applies_already_present += 1,
        }
    }
    Ok(report)
}

/// The backend operations only migration needs, dispatched like [`StateStore`].
impl Store {
    async fn salt(&self) -> Result<Vec<u8>, StateError> {
        match self {
            Store::Sqlite(store) => store.salt().await,
            Store::Postgres(store) => store.salt().await,
        }
    }

    async fn adopt_salt(&self, salt: &[u8]) -> Result<SaltAdoption, StateError> {
        match self {
            Store::Sqlite(store) => store.adopt_salt(salt).await,
            Store::Postgres(store) => store.adopt_salt(salt).await,
        }
    }

    async fn import_environment(
        &self,
        key: &EnvironmentKey,
        state: &EnvironmentState,
    ) -> Result<ImportedEnvironment, StateError> {
        match self {
            Store::Sqlite(store) => store.import_environment(key, state).await,
            Store::Postgres(store) => store.import_environment(key, state).await,
        }
    }

    async fn import_apply(
        &self,
        record: &ApplyRecord,
        steps: &[StepRecord],
    ) -> Result<Option<usize>, StateError> {
        match self {
            Store::Sqlite(store) => store.import_apply(record, steps).await,
            Store::Postgres(store) => store.import_apply(record, steps).await,
        }
    }
}
