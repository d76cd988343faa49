//! The `config.txt` kind: `config.<Section>.<key>` addresses. The document code (comments and
//! order kept, keys compared as configparser does) is in `providers::config_file`.

pub mod kind;
pub mod preview;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::files::{self, FileDocument};
use super::{Effects, PreviewContext, RestoreContext, StepContext, StepError};
use crate::deployment::Deployment;
use crate::model::{Address, AddressKind, DesiredState};
use crate::plan::{Change, EntryEdit, Step, StepKind};
use crate::providers::config_file::document::IniDocument;
use crate::providers::config_file::{ConfigEdit, ConfigFile};
use crate::providers::files::FileSnapshot;

pub struct ConfigFileProvider;

impl FileDocument for ConfigFileProvider {
    fn path<'d>(&self, deployment: &'d Deployment) -> &'d Path {
        &deployment.config_file
    }

    fn checkpoint_name(&self) -> &'static str {
        "config.txt"
    }

    fn new_mode(&self) -> u32 {
        0o644
    }

    fn edited(
        &self,
        cx: &StepContext<'_>,
        snapshot: &FileSnapshot,
        step: &Step,
        _effects: &mut Effects,
        values: &mut Vec<(Address, Option<String>)>,
    ) -> Result<String, StepError> {
        let file = ConfigFile::from_snapshot(snapshot.clone())?;
        let mut edits = Vec::new();
        for edit in step.entry_edits() {
            let (address, value) = match edit {
                EntryEdit::Set {
                    address,
                    value,
                    secret,
                } => {
                    let value = files::value_for(cx, &address, value, secret)?;
                    (address, Some(value))
                }
                EntryEdit::Remove { address } => (address, None),
            };
            values.push((address.clone(), value.clone()));
            edits.push(ConfigEdit { address, value });
        }
        Ok(file.edited(&edits)?)
    }

    fn values_in(&self, desired: &DesiredState, content: &str) -> Vec<(Address, Option<String>)> {
        let Ok(file) = ConfigFile::from_snapshot(files::snapshot_of(content)) else {
            return Vec::new();
        };
        desired
            .resources
            .keys()
            .filter(|address| address.kind() == AddressKind::Config)
            .map(|address| (address.clone(), file.observe(address).canonical()))
            .collect()
    }

    fn step_kind(&self) -> StepKind {
        StepKind::EnsureConfigFile
    }

    fn restored(&self, cx: &RestoreContext<'_>, before: &str) -> (String, Vec<Change>) {
        let current = cx.files.config.document();
        let Ok(before) = IniDocument::parse(before) else {
            return (current.render(), Vec::new());
        };
        let mut keys: BTreeSet<(String, String)> = current
            .entries()
            .map(|entry| (entry.section.to_string(), entry.key.to_ascii_lowercase()))
            .collect();
        keys.extend(
            before
                .entries()
                .map(|entry| (entry.section.to_string(), entry.key.to_ascii_lowercase())),
        );
        let mut changes = Vec::new();
        for (section, key) in keys {
            let now = current.get(&section, &key).ok().flatten();
            let then = before.get(&section, &key).ok().flatten();
            if now == then {
                continue;
            }
            let address = Address::config(&section, &key);
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
        let file =
            ConfigFile::read(&cx.deployment.config_file).map_err(|error| error.to_string())?;
        Ok(files::fingerprints_in(cx.salt, fingerprints, |address| {
            file.observe(address).canonical()
        }))
    }
}
