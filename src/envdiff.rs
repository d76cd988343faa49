//! How two resolved environments differ, address by address: the resources they compile to
//! (`env.*`, `config.*`, `secret.*`, quotas, retention) and the settings that compile to none
//! (target, backup policy, promotion, waivers). Pure: the caller resolves the files and picks
//! the salt. Secrets are compared and shown by salted fingerprint only; a secret whose source
//! could not be read is compared by its source alone and shown as unreadable.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value as JsonValue;

use crate::environments::Resolved;
use crate::model::{Desired, Resource, SecretDesired, SecretSource};
use crate::secrets::{is_sensitive, show_hash, url_has_password, value_hash};
use crate::spec::Location;
use crate::spec::semantic::locate;

/// The spec's top-level keys that compile to no address but still make environments differ.
const SETTINGS: &[&str] = &["deployment", "target", "backup", "promotion", "waivers"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Differs,
    OnlyA,
    OnlyB,
}

/// Which layer declares a value: the environment's own file or a file it extends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Shared,
    Environment,
}

/// One side of an entry: what it shows (a value, or a fingerprint) and where it is declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Side {
    pub shown: String,
    pub sensitive: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_at: Option<String>,
    pub layer: Layer,
    /// What is compared; never shown for sensitive values (it is a fingerprint then anyway).
    #[serde(skip)]
    compared: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub address: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a: Option<Side>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b: Option<Side>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    pub section: String,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub differ: usize,
    pub only_a: usize,
    pub only_b: usize,
    pub same: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvDiff {
    pub sections: Vec<Section>,
    pub counts: Counts,
}

impl EnvDiff {
    pub fn differs(&self) -> bool {
        self.counts.differ + self.counts.only_a + self.counts.only_b > 0
    }

    /// Only the entries one of `layers` declares on either side.
    pub fn declared_by(&self, layer: Layer) -> EnvDiff {
        let mut counts = Counts {
            same: self.counts.same,
            ..Counts::default()
        };
        let sections = self
            .sections
            .iter()
            .filter_map(|section| {
                let entries: Vec<Entry> = section
                    .entries
                    .iter()
                    .filter(|entry| {
                        [&entry.a, &entry.b]
                            .into_iter()
                            .flatten()
                            .any(|side| side.layer == layer)
                    })
                    .cloned()
                    .collect();
                for entry in &entries {
                    count(&mut counts, entry.status);
                }
                (!entries.is_empty()).then(|| Section {
                    section: section.section.clone(),
                    entries,
                })
            })
            .collect();
        EnvDiff { sections, counts }
    }
}

fn count(counts: &mut Counts, status: Status) {
    match status {
        Status::Differs => counts.differ += 1,
        Status::OnlyA => counts.only_a += 1,
        Status::OnlyB => counts.only_b += 1,
    }
}

/// Compares `a` with `b`. `salt` fingerprints sensitive values on both sides.
pub fn diff(a: &Resolved, b: &Resolved, salt: &[u8]) -> EnvDiff {
    let left = sides(a, salt);
    let right = sides(b, salt);
    let addresses: BTreeSet<&(Rank, String, String)> = left.keys().chain(right.keys()).collect();
    let mut counts = Counts::default();
    let mut sections: Vec<Section> = Vec::new();
    for key in addresses {
        let (a, b) = (left.get(key), right.get(key));
        let status = match (a, b) {
            (Some(a), Some(b)) if a.compared == b.compared => {
                counts.same += 1;
                continue;
            }
            (Some(_), Some(_)) => Status::Differs,
            (Some(_), None) => Status::OnlyA,
            (None, Some(_)) => Status::OnlyB,
            (None, None) => unreachable!("the address came from one side"),
        };
        count(&mut counts, status);
        let entry = Entry {
            address: key.2.clone(),
            status,
            a: a.cloned(),
            b: b.cloned(),
        };
        match sections.last_mut() {
            Some(section) if section.section == key.1 => section.entries.push(entry),
            _ => sections.push(Section {
                section: key.1.clone(),
                entries: vec![entry],
            }),
        }
    }
    EnvDiff { sections, counts }
}

/// Sections in the order people read a desired-state file.
type Rank = u8;

/// Every address of one environment: (rank, section, address) -> side.
fn sides(resolved: &Resolved, salt: &[u8]) -> BTreeMap<(Rank, String, String), Side> {
    let mut out = BTreeMap::new();
    let layer = |location: &Option<Location>| match location {
        Some(location) if resolved.shared_files.contains(&*location.file) => Layer::Shared,
        _ => Layer::Environment,
    };
    for resource in resolved.desired.resources.values() {
        let address = resource.address.as_str().to_string();
        let (rank, section) =
            crate::kinds::kind(resource.address.kind()).section(&resource.address);
        let (shown, compared) = show_resource(resource, resolved, salt);
        out.insert(
            (rank, section, address),
            Side {
                shown,
                sensitive: resource.sensitive,
                declared_at: resource.source.as_ref().map(ToString::to_string),
                layer: layer(&resource.source),
                compared,
            },
        );
    }
    let spec = serde_json::to_value(&resolved.checked.spec).expect("specs serialise");
    let mut leaves = Vec::new();
    for key in SETTINGS {
        if let Some(value) = spec.get(*key) {
            flatten(&format!("/{key}"), value, &mut leaves);
        }
    }
    // Secret policy sits beside the secrets but compiles to nothing.
    if let Some(policy) = spec.pointer("/secrets/policy") {
        flatten("/secrets/policy", policy, &mut leaves);
    }
    for (pointer, value) in leaves {
        let top = pointer
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("");
        let (rank, section) = match SETTINGS.iter().position(|key| *key == top) {
            Some(position) => (6 + position as Rank, top.to_string()),
            None => (6 + SETTINGS.len() as Rank, "secrets.policy".to_string()),
        };
        let name = pointer.rsplit('/').next().unwrap_or("");
        let sensitive = is_sensitive(name, &value) || url_has_password(&value);
        let location = locate(&resolved.checked.loaded.root, &pointer);
        let (shown, compared) = if sensitive {
            let hash = show_hash(&value_hash(salt, &value));
            (format!("(sensitive) {hash}"), hash)
        } else {
            (value.clone(), value)
        };
        out.insert(
            (rank, section, dotted(&pointer)),
            Side {
                shown,
                sensitive,
                declared_at: location.as_ref().map(ToString::to_string),
                layer: layer(&location),
                compared,
            },
        );
    }
    out
}

/// `/target/service/health/0/path` as `target.service.health[0].path`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for token in pointer.trim_start_matches('/').split('/') {
        if token.parse::<usize>().is_ok() {
            out.push_str(&format!("[{token}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}

/// Leaves of a JSON value as (pointer, text). Lists of scalars stay one leaf, as written.
fn flatten(pointer: &str, value: &JsonValue, out: &mut Vec<(String, String)>) {
    match value {
        JsonValue::Object(map) => {
            for (key, child) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                flatten(&format!("{pointer}/{escaped}"), child, out);
            }
        }
        JsonValue::Array(items) if items.iter().any(|item| item.is_object()) => {
            for (index, child) in items.iter().enumerate() {
                flatten(&format!("{pointer}/{index}"), child, out);
            }
        }
        JsonValue::String(text) => out.push((pointer.to_string(), text.clone())),
        other => out.push((pointer.to_string(), other.to_string())),
    }
}

/// What a resource shows, and what is compared.
fn show_resource(resource: &Resource, resolved: &Resolved, salt: &[u8]) -> (String, String) {
    match &resource.desired {
        Desired::Secret(secret) => show_secret(resource.address.name(), secret, resolved, salt),
        desired => {
            let text = desired.canonical().unwrap_or_default();
            if resource.sensitive {
                let hash = show_hash(&value_hash(salt, &text));
                (format!("(sensitive) {hash}"), hash)
            } else {
                (text.clone(), text)
            }
        }
    }
}

fn show_secret(
    name: &str,
    secret: &SecretDesired,
    resolved: &Resolved,
    salt: &[u8],
) -> (String, String) {
    let mut source = match &secret.source {
        SecretSource::Generate(generate) => {
            let mut options = Vec::new();
            if let Some(length) = generate.length {
                options.push(format!("length {length}"));
            }
            if let Some(alphabet) = generate.alphabet {
                options.push(format!("alphabet {}", json_word(&alphabet)));
            }
            if let Some(format) = generate.format {
                options.push(format!("format {}", json_word(&format)));
            }
            if options.is_empty() {
                "generate".to_string()
            } else {
                format!("generate ({})", options.join(", "))
            }
        }
        SecretSource::FromEnv(variable) => format!("from_env {variable}"),
        SecretSource::FromFile(path) => format!("from_file {path}"),
    };
    if let Some(seconds) = secret.rotate_after {
        source.push_str(&format!(
            ", rotate after {}",
            crate::promotion::human(seconds)
        ));
    }
    if let Some(previous) = &secret.keep_previous_as {
        source.push_str(&format!(", previous kept as {previous}"));
    }
    let value = match (&secret.source, resolved.unreadable.get(name)) {
        (SecretSource::Generate(_), _) => "generated per environment at apply".to_string(),
        (_, Some(_)) => "not readable here".to_string(),
        (_, None) => secret
            .resolved
            .as_deref()
            .map(|value| show_hash(&value_hash(salt, value)))
            .unwrap_or_else(|| "not readable here".to_string()),
    };
    let shown = format!("(sensitive) {source}: {value}");
    (shown.clone(), shown)
}

fn json_word<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(JsonValue::String(text)) => text,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// The diff for people: a header, sections, each address with both sides and where each is
/// declared, and a summary line.
pub fn render_text(diff: &EnvDiff, a: &str, b: &str) -> String {
    let width = a.len().max(b.len());
    let mut out = String::new();
    for section in &diff.sections {
        out.push_str(&format!("{}\n", section.section));
        for entry in &section.entries {
            let (symbol, note) = match entry.status {
                Status::Differs => ('~', String::new()),
                Status::OnlyA => ('<', format!("  (only {a})")),
                Status::OnlyB => ('>', format!("  (only {b})")),
            };
            out.push_str(&format!("  {symbol} {}{note}\n", entry.address));
            let shown = [&entry.a, &entry.b]
                .into_iter()
                .flatten()
                .map(|side| side.shown.chars().count())
                .max()
                .unwrap_or(0)
                .min(48);
            for (name, side) in [(a, &entry.a), (b, &entry.b)] {
                let Some(side) = side else {
                    continue;
                };
                let declared = match (&side.declared_at, side.layer) {
                    (Some(at), Layer::Shared) => format!("  [{at}, shared layer]"),
                    (Some(at), Layer::Environment) => format!("  [{at}]"),
                    (None, Layer::Shared) => "  [shared layer]".to_string(),
                    (None, Layer::Environment) => String::new(),
                };
                out.push_str(&format!(
                    "      {name:<width$}  {:<shown$}{declared}\n",
                    side.shown
                ));
            }
        }
    }
    let counts = &diff.counts;
    if diff.differs() {
        out.push_str(&format!(
            "\n{} differ{}: {} changed, {} only in {a}, {} only in {b}; {} the same.\n",
            counts.differ + counts.only_a + counts.only_b,
            if counts.differ + counts.only_a + counts.only_b == 1 {
                "s"
            } else {
                ""
            },
            counts.differ,
            counts.only_a,
            counts.only_b,
            counts.same
        ));
    } else {
        out.push_str(&format!(
            "{a} and {b} resolve the same ({} addresses and settings).\n",
            counts.same
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_read_as_dotted_paths() {
        assert_eq!(
            dotted("/target/service/health/0/path"),
            "target.service.health[0].path"
        );
        assert_eq!(dotted("/promotion/soak"), "promotion.soak");
    }

    #[test]
    fn lists_of_scalars_stay_one_value_and_lists_of_maps_split() {
        let mut out = Vec::new();
        flatten(
            "/target",
            &serde_json::json!({
                "restart": ["systemctl", "restart", "tldw"],
                "health": [{ "path": "/health" }],
                "root": "/opt/tldw",
            }),
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                (
                    "/target/restart".to_string(),
                    r#"["systemctl","restart","tldw"]"#.to_string()
                ),
                ("/target/health/0/path".to_string(), "/health".to_string()),
                ("/target/root".to_string(), "/opt/tldw".to_string()),
            ]
        );
    }
}
