//! `plan --diff` of a `config.txt` step: the file before and after the step's edits, every
//! sensitive value masked on both sides.

use std::collections::BTreeSet;

use crate::kinds::PreviewContext;
use crate::kinds::files::{already_masked, masked};
use crate::model::AddressKind;
use crate::plan::{EntryEdit, Step};
use crate::providers::config_file::document::IniDocument;
use crate::secrets::is_sensitive;

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

/// The masked text of the file before and after `step`.
pub fn preview(step: &Step, cx: &PreviewContext<'_>) -> Option<(String, String)> {
    let before = cx.files.config.document();
    let mut after = before.clone();
    let sensitive: BTreeSet<(String, String)> = cx
        .sensitive
        .iter()
        .filter(|address| address.kind() == AddressKind::Config)
        .filter_map(|address| address.config_parts())
        .map(|(section, key)| (section.to_ascii_lowercase(), key.to_ascii_lowercase()))
        .collect();
    for edit in step.entry_edits() {
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
                    (None, Some(secret)) => {
                        format!("(sensitive) {}", secret.expect.clone().unwrap_or_default())
                    }
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
    let before_text = mask_ini(before, cx.salt, &sensitive).render();
    let after_text = mask_ini(&after, cx.salt, &sensitive).render();
    Some((before_text, after_text))
}
