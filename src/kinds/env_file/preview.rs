//! `plan --diff` of a `.env` step: the file before and after the step's edits, every
//! sensitive value masked on both sides.

use std::collections::BTreeSet;

use crate::kinds::PreviewContext;
use crate::kinds::files::{already_masked, masked};
use crate::plan::{EntryEdit, Step};
use crate::providers::env_file::document::EnvDocument;
use crate::secrets::is_sensitive;

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

/// The masked text of the file before and after `step`.
pub fn preview(step: &Step, cx: &PreviewContext<'_>) -> Option<(String, String)> {
    let before = cx.files.env.document();
    let mut after = before.clone();
    let mut sensitive_keys: BTreeSet<String> = cx
        .sensitive
        .iter()
        .filter_map(|address| address.env_name().map(str::to_string))
        .collect();
    for edit in step.entry_edits() {
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
                if let Some(previous) = secret.and_then(|secret| secret.keep_previous_as.as_ref()) {
                    // A kept secret stays masked; a kept plain value (the release image) shows.
                    if value.is_none() {
                        sensitive_keys.insert(previous.clone());
                    }
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
    let before_text = mask_env(before, cx.salt, &sensitive_keys).render();
    let after_masked = mask_env(&after, cx.salt, &sensitive_keys).render();
    Some((before_text, after_masked))
}
