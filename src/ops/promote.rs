//! `promote --from staging --to prod`: explain a promotion without doing it. Which shared
//! layers each environment last applied, what prod would receive from the shared layers
//! (compared with what prod last applied, by fingerprint), where the two environments resolve
//! the shared layers differently, and whether the promotion gate passes now. Changes nothing:
//! no lock, no store created, no deployment read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Serialize;

use super::envdiff::{SaltSource, existing_store, per_run_salt};
use crate::envdiff::{EnvDiff, Layer, diff};
use crate::environments::{FindError, Resolved, find, resolve};
use crate::model::{Desired, SecretSource};
use crate::pipeline::{PipelineError, state_location};
use crate::promotion::{Gate, Verdict, evaluate};
use crate::secrets::{show_hash, value_hash};
use crate::settings::Settings;
use crate::state::{ApplyRecord, EnvironmentKey, ManagedRecord, Outcome, StateError, StateStore};

/// Why a promotion cannot be explained.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("{} declares no `promotion:`; it takes any change without a gate", file.display())]
    NoGate { file: PathBuf },
    #[error("{} promotes from {deployment}/{declared}, not from {from} ({})", to_file.display(), from_file.display())]
    OtherSource {
        to_file: PathBuf,
        deployment: String,
        declared: String,
        from: EnvironmentKey,
        from_file: PathBuf,
    },
    #[error(transparent)]
    State(#[from] StateError),
}

/// Everything `promote` reports.
pub struct Promotion {
    pub from: Resolved,
    pub to: Resolved,
    pub gate: Gate,
    pub verdict: Verdict,
    pub journal: Journal,
    pub received: Vec<Received>,
    pub overrides: EnvDiff,
    /// The state store the journal was read from.
    pub location: String,
    pub now: Timestamp,
}

/// The file of environment `name`: `given` (`--from-file`, `--to-file`), or the one in
/// `directory` whose `environment:` is `name`.
pub fn locate(
    given: Option<&Path>,
    directory: &Path,
    name: &str,
    settings: &Settings,
) -> Result<PathBuf, FindError> {
    match given {
        Some(file) => Ok(file.to_path_buf()),
        None => find(directory, name, settings),
    }
}

/// Explains promoting the environment of `from_file` into that of `to_file` now.
pub async fn explain(
    from_file: &Path,
    to_file: &Path,
    settings: &Settings,
) -> Result<Promotion, PromoteError> {
    let from = resolve(from_file, settings)?;
    let to = resolve(to_file, settings)?;
    let Some(promotion) = to.checked.spec.promotion.clone() else {
        return Err(PromoteError::NoGate {
            file: to_file.to_path_buf(),
        });
    };
    if promotion.from != from.key.environment || from.key.deployment != to.key.deployment {
        return Err(PromoteError::OtherSource {
            to_file: to_file.to_path_buf(),
            deployment: to.key.deployment.clone(),
            declared: promotion.from.clone(),
            from: from.key.clone(),
            from_file: from_file.to_path_buf(),
        });
    }
    let gate = Gate {
        from: from.key.clone(),
        soak_seconds: promotion.soak.as_seconds(),
    };
    let location = state_location(to_file, settings);
    let journal = read_journal(&location, &from.key, &to.key).await?;
    let now = settings.now();
    let verdict = evaluate(to.shared_hash.as_deref(), &gate, &journal.from_history, now);
    let received = receives(&to, &journal);
    let overrides = diff(&from, &to, &journal.salt).declared_by(Layer::Shared);
    Ok(Promotion {
        from,
        to,
        gate,
        verdict,
        journal,
        received,
        overrides,
        location,
        now,
    })
}

/// One address prod would receive from the shared layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Received {
    pub address: String,
    /// `create`, `update`, or `unknown` (a secret whose source cannot be read here).
    pub action: &'static str,
    /// The value prod would get: as written, or a fingerprint, or the secret's source.
    pub value: String,
    pub declared_at: Option<String>,
    /// What prod last applied there (a fingerprint), if it manages the address.
    pub to_last_applied: Option<String>,
    /// Whether the `from` environment last applied the same value: `same`, `differs`,
    /// `not managed`, or `unknown`.
    pub from_has: &'static str,
}

/// The newest successful apply that put layers in place.
pub fn last_layers(history: &[ApplyRecord]) -> Option<&ApplyRecord> {
    history.iter().find(|record| {
        record.outcome == Outcome::Succeeded && matches!(record.kind.as_str(), "apply" | "resume")
    })
}

/// What the state store knows about the two environments. Empty when there is no store yet.
pub struct Journal {
    pub salt: Vec<u8>,
    pub salt_source: SaltSource,
    pub from_history: Vec<ApplyRecord>,
    pub to_history: Vec<ApplyRecord>,
    pub from_managed: Option<BTreeMap<String, ManagedRecord>>,
    pub to_managed: Option<BTreeMap<String, ManagedRecord>>,
}

async fn read_journal(
    location: &str,
    from: &EnvironmentKey,
    to: &EnvironmentKey,
) -> Result<Journal, StateError> {
    let Some((store, salt)) = existing_store(location).await else {
        return Ok(Journal {
            salt: per_run_salt(),
            salt_source: SaltSource::PerRun,
            from_history: Vec::new(),
            to_history: Vec::new(),
            from_managed: None,
            to_managed: None,
        });
    };
    let known: Vec<EnvironmentKey> = store
        .environments()
        .await?
        .into_iter()
        .map(|summary| summary.environment)
        .collect();
    // Reading an unknown environment would create it: only read the ones the store has.
    let managed = async |key: &EnvironmentKey| -> Result<_, StateError> {
        Ok(if known.contains(key) {
            Some(store.environment(key).await?.managed)
        } else {
            None
        })
    };
    Ok(Journal {
        from_managed: managed(from).await?,
        to_managed: managed(to).await?,
        from_history: store.applies(Some(from), u32::MAX).await?,
        to_history: store.applies(Some(to), 50).await?,
        salt,
        salt_source: SaltSource::Store,
    })
}

/// The addresses prod declares through its shared layers whose value differs from what prod
/// last applied there, with whether `from` last applied the same.
fn receives(to: &Resolved, journal: &Journal) -> Vec<Received> {
    let salt = journal.salt.as_slice();
    let mut out = Vec::new();
    for resource in to.desired.resources.values() {
        let shared = resource
            .source
            .as_ref()
            .is_some_and(|location| to.shared_files.contains(&*location.file));
        if !shared {
            continue;
        }
        let address = resource.address.as_str();
        let last = journal
            .to_managed
            .as_ref()
            .and_then(|managed| managed.get(address));
        let from_last = journal
            .from_managed
            .as_ref()
            .and_then(|managed| managed.get(address));
        // The hash the apply would record, when it can be known here.
        let (value, desired_hash) = match &resource.desired {
            Desired::Secret(secret) => match &secret.source {
                SecretSource::Generate(_) => ("(sensitive) generated at apply".to_string(), None),
                _ if to.unreadable.contains_key(resource.address.name()) => {
                    ("(sensitive) source not readable here".to_string(), None)
                }
                _ => {
                    let hash = secret
                        .resolved
                        .as_deref()
                        .map(|value| value_hash(salt, value));
                    (
                        format!(
                            "(sensitive) {}",
                            hash.as_deref().map(show_hash).unwrap_or_default()
                        ),
                        hash,
                    )
                }
            },
            desired => {
                let text = desired.canonical().unwrap_or_default();
                let hash = value_hash(salt, &text);
                let shown = if resource.sensitive {
                    format!("(sensitive) {}", show_hash(&hash))
                } else {
                    text
                };
                (shown, Some(hash))
            }
        };
        let generated = matches!(
            &resource.desired,
            Desired::Secret(secret) if matches!(secret.source, SecretSource::Generate(_))
        );
        let action = match (last, &desired_hash) {
            (None, _) => "create",
            // A generated secret is kept until it is due for rotation.
            (Some(_), None) if generated => continue,
            (Some(_), None) => "unknown",
            (Some(last), Some(hash)) if last.value_hash == *hash => continue,
            (Some(_), Some(_)) => "update",
        };
        let from_has = match (from_last, &desired_hash) {
            (None, _) => "not managed",
            (Some(_), None) => "unknown",
            (Some(record), Some(hash)) if record.value_hash == *hash => "same",
            (Some(_), Some(_)) => "differs",
        };
        out.push(Received {
            address: address.to_string(),
            action,
            value,
            declared_at: resource.source.as_ref().map(ToString::to_string),
            to_last_applied: last.map(|record| show_hash(&record.value_hash)),
            from_has,
        });
    }
    out
}
