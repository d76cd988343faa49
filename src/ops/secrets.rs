//! `secrets status`: each managed secret's fingerprint, age, next rotation and findings
//! (placeholders, short values, the wrong form, values shared between secrets), read from the
//! `.env` and the state store. Never a value.

use std::path::Path;

use crate::model::{AddressKind, Desired, SecretSource};
use crate::pipeline::{self, PipelineError};
use crate::secrets::{is_placeholder, is_tldw_api_key, show_hash, value_hash};
use crate::settings::Settings;
use crate::spec::types::SecretFormat;

#[derive(Debug, serde::Serialize)]
pub struct Row {
    pub name: String,
    pub source: String,
    pub fingerprint: Option<String>,
    pub set_at: Option<String>,
    pub age_days: Option<u64>,
    pub adopted: Option<bool>,
    pub rotate_after_days: Option<u64>,
    pub next_rotation: Option<String>,
    pub findings: Vec<String>,
}

/// One row per secret the file manages, in address order.
pub async fn status(file: &Path, settings: &Settings) -> Result<Vec<Row>, PipelineError> {
    // Only reads the state: opened once, read-only, and closed before the rows are built.
    let loaded = pipeline::load_to_read(file, settings, true).await?;
    let prepared = pipeline::observe(loaded).await?;
    prepared.loaded.store.close().await;
    let loaded = &prepared.loaded;
    let salt = loaded.state.salt.as_slice();
    let now = settings.now();
    let min_length = loaded
        .checked
        .spec
        .secrets
        .as_ref()
        .and_then(|secrets| secrets.policy.as_ref())
        .and_then(|policy| policy.min_length)
        .unwrap_or(32) as usize;
    let mut rows = Vec::new();
    let mut by_fingerprint: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (address, resource) in &loaded.desired.resources {
        if address.kind() != AddressKind::Secret {
            continue;
        }
        let Desired::Secret(secret) = &resource.desired else {
            continue;
        };
        let name = address.name().to_string();
        let current = prepared.observed.get(address).canonical();
        let fingerprint = current.as_deref().map(|value| value_hash(salt, value));
        if let Some(hash) = &fingerprint {
            by_fingerprint
                .entry(hash.clone())
                .or_default()
                .push(name.clone());
        }
        let meta = loaded.state.secrets.get(&name);
        let known = meta.filter(|meta| Some(&meta.fingerprint) == fingerprint.as_ref());
        let age =
            known.map(|meta| now.duration_since(meta.set_at).as_secs().max(0) as u64 / 86_400);
        let rotate_after_days = secret.rotate_after.map(|seconds| seconds / 86_400);
        let next_rotation = match (known, secret.rotate_after) {
            (Some(meta), Some(seconds)) => meta
                .set_at
                .checked_add(jiff::SignedDuration::from_secs(seconds as i64))
                .ok()
                .map(|due| {
                    if due <= now {
                        format!("due now (since {})", due.strftime("%Y-%m-%d"))
                    } else {
                        due.strftime("%Y-%m-%d").to_string()
                    }
                }),
            (None, Some(_)) => Some("after the next apply records its age".to_string()),
            (_, None) => None,
        };
        let mut findings = Vec::new();
        match current.as_deref() {
            None => findings.push("not set in the .env yet".to_string()),
            Some(value) => {
                if is_placeholder(value) {
                    findings.push("the current value is a placeholder".to_string());
                } else if value.chars().count() < min_length {
                    findings.push(format!("shorter than {min_length} characters"));
                }
                if let SecretSource::Generate(generate) = &secret.source
                    && generate.format == Some(SecretFormat::TldwApiKey)
                    && !is_tldw_api_key(value)
                {
                    findings.push("not in tldw's tldw_<kid>.<secret> form".to_string());
                }
            }
        }
        if meta.is_some() && known.is_none() && current.is_some() {
            findings.push("changed outside tldw-ops since it was set; age unknown".to_string());
        }
        rows.push(Row {
            source: match &secret.source {
                SecretSource::Generate(_) => "generate".to_string(),
                SecretSource::FromEnv(variable) => format!("from_env {variable}"),
                SecretSource::FromFile(path) => format!("from_file {path}"),
            },
            name,
            fingerprint: fingerprint.as_deref().map(show_hash),
            set_at: known.map(|meta| meta.set_at.to_string()),
            age_days: age,
            adopted: known.map(|meta| meta.adopted),
            rotate_after_days,
            next_rotation,
            findings,
        });
    }
    for names in by_fingerprint.values().filter(|names| names.len() > 1) {
        for row in rows.iter_mut().filter(|row| names.contains(&row.name)) {
            row.findings.push(format!(
                "shares its value with {}",
                names
                    .iter()
                    .filter(|name| **name != row.name)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(rows)
}
