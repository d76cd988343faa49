//! Unified diffs of the files a plan edits (`plan --diff`), with every sensitive value masked
//! on both sides: values of managed secrets, of keys that look like secrets, and of URLs that
//! carry passwords, whether tldw-ops manages them or not. The diff is made from the observed
//! files; nothing is written.

use std::collections::BTreeSet;

use similar::TextDiff;

use crate::deployment::ObservedFiles;
use crate::model::{Address, AddressKind, DesiredState};
use crate::plan::{EntryEdit, Plan, StepKind};
use crate::providers::config_file::document::IniDocument;
use crate::providers::env_file::document::EnvDocument;
use crate::secrets::{is_sensitive, show_hash, value_hash};

fn masked(salt: &[u8], value: &str) -> String {
    format!("(sensitive) {}", show_hash(&value_hash(salt, value)))
}

/// A masked copy of an .env document: every sensitive value replaced by its fingerprint. Values
/// the plan already shows as fingerprints (or as generated) are left as they are.
fn mask_env(document: &EnvDocument, salt: &[u8], sensitive_keys: &BTreeSet<String>) -> EnvDocument {
    let mut copy = document.clone();
    let entries: Vec<(String, Option<String>)> = document
        .entries()
        .map(|entry| (entry.key.to_string(), entry.value.clone()))
        .collect();
    for (key, value) in entries {
        let Some(value) = value else { continue };
        if already_masked(&value) {
            continue;
        }
        if sensitive_keys.contains(&key) || is_sensitive(&key, &value) {
            let _ = copy.set(&key, &masked(salt, &value));
        }
    }
    copy
}

fn mask_ini(
    document: &IniDocument,
    salt: &[u8],
    sensitive: &BTreeSet<(String, String)>,
) -> IniDocument {
    let mut copy = document.clone();
    let entries: Vec<(String, String, String)> = document
        .entries()
        .map(|entry| {
            (
                entry.section.to_string(),
                entry.key.to_string(),
                entry.raw_value.clone(),
            )
        })
        .collect();
    for (section, key, value) in entries {
        if value.is_empty() || already_masked(&value) {
            continue;
        }
        let marked = sensitive.contains(&(section.to_ascii_lowercase(), key.to_ascii_lowercase()));
        if marked || is_sensitive(&key, &value) {
            let _ = copy.set(&section, &key, &masked(salt, &value));
        }
    }
    copy
}

/// The diff of every file the plan edits, masked. Generated secrets show as a placeholder.
pub fn file_diffs(
    plan: &Plan,
    desired: &DesiredState,
    files: &ObservedFiles,
    salt: &[u8],
) -> String {
    let mut out = String::new();
    let sensitive_addresses: BTreeSet<&Address> = desired
        .resources
        .values()
        .filter(|resource| resource.sensitive)
        .map(|resource| &resource.address)
        .collect();
    for step in &plan.steps {
        match step.kind {
            StepKind::EnsureEnvFile => {
                let before = files.env.document();
                let mut after = before.clone();
                let mut sensitive_keys: BTreeSet<String> = sensitive_addresses
                    .iter()
                    .filter_map(|address| address.env_name().map(str::to_string))
                    .collect();
                for edit in step.entry_edits().flatten() {
                    match edit {
                        EntryEdit::Set {
                            address,
                            value,
                            secret,
                        } => {
                            let key = address.env_name().unwrap_or_default().to_string();
                            let shown = match (value, secret) {
                                (Some(value), _) => value.to_string(),
                                (None, Some(secret)) => match &secret.expect {
                                    Some(fingerprint) => format!("(sensitive) {fingerprint}"),
                                    None => "(generated at apply)".to_string(),
                                },
                                (None, None) => String::new(),
                            };
                            if let Some(previous) =
                                secret.and_then(|secret| secret.keep_previous_as.as_ref())
                            {
                                sensitive_keys.insert(previous.clone());
                                if let Some(old) = before.get(&key) {
                                    let _ = after.set(previous, old);
                                }
                            }
                            if value.is_none() {
                                sensitive_keys.insert(key.clone());
                            }
                            let _ = after.set(&key, &shown);
                        }
                        EntryEdit::Remove { address } => {
                            after.remove(address.env_name().unwrap_or_default());
                        }
                    }
                }
                // Values already shown as fingerprints are not masked twice.
                let before_text = mask_env(before, salt, &sensitive_keys).render();
                let after_masked = mask_env(&after, salt, &sensitive_keys).render();
                push_diff(&mut out, &step.target, &before_text, &after_masked);
            }
            StepKind::EnsureConfigFile => {
                let before = files.config.document();
                let mut after = before.clone();
                let sensitive: BTreeSet<(String, String)> = sensitive_addresses
                    .iter()
                    .filter(|address| address.kind() == AddressKind::Config)
                    .filter_map(|address| address.config_parts())
                    .map(|(section, key)| (section.to_ascii_lowercase(), key.to_ascii_lowercase()))
                    .collect();
                for edit in step.entry_edits().flatten() {
                    match edit {
                        EntryEdit::Set {
                            address,
                            value,
                            secret,
                        } => {
                            let Some((section, key)) = address.config_parts() else {
                                continue;
                            };
                            let shown = match (value, secret) {
                                (Some(value), _) => value.to_string(),
                                (None, Some(secret)) => format!(
                                    "(sensitive) {}",
                                    secret.expect.clone().unwrap_or_default()
                                ),
                                (None, None) => String::new(),
                            };
                            let _ = after.set(section, key, &shown);
                        }
                        EntryEdit::Remove { address } => {
                            if let Some((section, key)) = address.config_parts() {
                                after.remove(section, key);
                            }
                        }
                    }
                }
                let before_text = mask_ini(before, salt, &sensitive).render();
                let after_text = mask_ini(&after, salt, &sensitive).render();
                push_diff(&mut out, &step.target, &before_text, &after_text);
            }
            _ => {}
        }
    }
    out
}

fn already_masked(value: &str) -> bool {
    value.starts_with("(sensitive) fp:") || value == "(generated at apply)"
}

fn push_diff(out: &mut String, path: &str, before: &str, after: &str) {
    let diff = TextDiff::from_lines(before, after);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string();
    out.push_str(&text);
}
