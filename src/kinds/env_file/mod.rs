//! The `.env` kind: `env.*` and `secret.*` addresses, and the env vars that `cors`,
//! `registration`, `quotas` and `retention` compile to. The document code (comments, order and
//! unmanaged keys kept) is in `providers::env_file`.

pub mod kind;
pub mod preview;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::files::{self, FileDocument};
use super::{Effects, PreviewContext, RestoreContext, StepContext, StepError};
use crate::deployment::Deployment;
use crate::model::{Address, AddressKind, DesiredState};
use crate::plan::{Action, Change, EntryEdit, Plan, Step, StepKind};
use crate::providers::env_file::document::EnvDocument;
use crate::providers::env_file::{EnvEdit, EnvFile};
use crate::providers::files::FileSnapshot;

pub struct EnvFileProvider;

pub use kind::ENTRYPOINT_KEYS;

/// Whether the plan rotates the secret at `address` (rather than setting it the first time).
fn rotates(plan: &Plan, address: &Address) -> bool {
    plan.changes
        .iter()
        .any(|change| change.address == *address && change.action == Action::Rotate)
}

impl FileDocument for EnvFileProvider {
    fn path<'d>(&self, deployment: &'d Deployment) -> &'d Path {
        &deployment.env_file
    }

    fn checkpoint_name(&self) -> &'static str {
        "env"
    }

    fn new_mode(&self) -> u32 {
        0o600
    }

    fn edited(
        &self,
        cx: &StepContext<'_>,
        snapshot: &FileSnapshot,
        step: &Step,
        effects: &mut Effects,
        values: &mut Vec<(Address, Option<String>)>,
    ) -> Result<String, StepError> {
        let file = EnvFile::from_snapshot(snapshot.clone())?;
        let mut edits = Vec::new();
        for edit in step.entry_edits() {
            match edit {
                EntryEdit::Set {
                    address,
                    value,
                    secret,
                } => {
                    let key = address.env_name().unwrap_or_default().to_string();
                    let new_value = files::value_for(cx, &address, value, secret)?;
                    if let Some(previous_key) =
                        secret.and_then(|secret| secret.keep_previous_as.as_ref())
                        && let Some(old) = file.get(&key)
                        && !old.is_empty()
                        && old != new_value
                    {
                        edits.push(EnvEdit {
                            address: Address::env(previous_key),
                            key: previous_key.clone(),
                            value: Some(old.to_string()),
                        });
                    }
                    if address.kind() == AddressKind::Secret {
                        effects
                            .secrets_set
                            .insert(address.name().to_string(), rotates(cx.plan, &address));
                    }
                    values.push((address.clone(), Some(new_value.clone())));
                    edits.push(EnvEdit {
                        address,
                        key,
                        value: Some(new_value),
                    });
                }
                EntryEdit::Remove { address } => {
                    let key = address.env_name().unwrap_or_default().to_string();
                    values.push((address.clone(), None));
                    edits.push(EnvEdit {
                        address,
                        key,
                        value: None,
                    });
                }
            }
        }
        Ok(file.edited(&edits)?)
    }

    fn values_in(&self, desired: &DesiredState, content: &str) -> Vec<(Address, Option<String>)> {
        let Ok(file) = EnvFile::from_snapshot(files::snapshot_of(content)) else {
            return Vec::new();
        };
        desired
            .resources
            .keys()
            .filter(|address| matches!(address.kind(), AddressKind::Env | AddressKind::Secret))
            .map(|address| (address.clone(), file.observe(address).canonical()))
            .collect()
    }

    /// The secrets a completed step of the interrupted run set.
    fn resumed(&self, plan: &Plan, step: &Step, effects: &mut Effects) {
        for address in &step.addresses {
            if let Ok(address) = Address::parse(address)
                && address.kind() == AddressKind::Secret
            {
                effects
                    .secrets_set
                    .insert(address.name().to_string(), rotates(plan, &address));
            }
        }
    }

    fn step_kind(&self) -> StepKind {
        StepKind::EnsureEnvFile
    }

    fn restored(&self, cx: &RestoreContext<'_>, before: &str) -> (String, Vec<Change>) {
        let current = cx.files.env.document();
        let Ok(before) = EnvDocument::parse(before) else {
            return (current.render(), Vec::new());
        };
        let mut keys: BTreeSet<String> = current
            .entries()
            .map(|entry| entry.key.to_string())
            .collect();
        keys.extend(before.entries().map(|entry| entry.key.to_string()));
        let mut changes = Vec::new();
        for key in keys {
            let now = current.get(&key).map(str::to_string);
            let then = before.get(&key).map(str::to_string);
            if now == then {
                continue;
            }
            let secret_address = Address::secret(&key);
            let address = if cx.sensitive.contains(&secret_address) {
                secret_address
            } else {
                Address::env(&key)
            };
            let sensitive = files::is_secret_change(cx, &address, &key, &now, &then);
            changes.push(cx.change(address, now, then, sensitive));
        }
        (current.render(), changes)
    }

    fn preview(&self, step: &Step, cx: &PreviewContext<'_>) -> Option<(String, String)> {
        preview::preview(step, cx)
    }

    fn fingerprints_now(
        &self,
        cx: &StepContext<'_>,
        fingerprints: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        let file = EnvFile::read(&cx.deployment.env_file).map_err(|error| error.to_string())?;
        Ok(files::fingerprints_in(cx.salt, fingerprints, |address| {
            file.observe(address).canonical()
        }))
    }
}
