//! `drift --adopt`: when a change made outside tldw-ops was right, write the observed value into
//! the YAML file that declares the address, at its source location, so the next plan leaves it
//! alone. Every other byte of that file stays as it was (comments, quoting, order).
//!
//! Pure: [`prepare`] decides what to write (or why it cannot), [`apply_edits`] edits text. The
//! command reads and writes the files. The state store is not touched: the next apply records
//! the value. Secrets are never written: their YAML holds a reference, and a sensitive value in
//! `env:` or `config:` would put a secret into the file.

use std::path::PathBuf;
use std::sync::Arc;

use crate::model::SecretSource;
use crate::model::{Address, AddressKind, Desired, DesiredState, Observed, ObservedValue};
use crate::secrets::is_sensitive;
use crate::spec::edit::{self, EditError};
use crate::spec::load::escape_pointer;
use crate::spec::mapping::{EnvOrigin, RETENTION_KEYS, env_entries, retention_key};
use crate::spec::node::parse_document;
use crate::spec::{Checked, Location, unmap};

/// A value to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// One YAML scalar, already encoded.
    Scalar(String),
    /// A list of YAML scalars, already encoded.
    Sequence(Vec<String>),
}

/// One address to adopt: where, and what to write there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoption {
    pub address: Address,
    /// The declaring file, and the location of the value in it.
    pub path: PathBuf,
    pub location: Location,
    /// JSON pointer of the value inside that file.
    pub pointer: String,
    pub edit: Edit,
    /// The adopted value as people read it (never sensitive).
    pub shown: String,
}

/// Why an address cannot be adopted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "`{0}` is not an address (env.NAME, config.Section.key, quota.user.NAME, retention.KEY)"
    )]
    NotAnAddress(String),
    #[error(
        "{0} is not declared in the desired state; --adopt only rewrites declared values (add it to the YAML yourself)"
    )]
    NotDeclared(Address),
    #[error(
        "{address} is a secret: its YAML holds a reference ({reference}), not a value, and tldw-ops never writes a secret value into YAML; {advice}"
    )]
    Secret {
        address: Address,
        reference: String,
        advice: String,
    },
    #[error(
        "{address} holds a sensitive value; tldw-ops never writes it into YAML: declare it under `secrets:` with `from_env` or `from_file` and put the value there"
    )]
    Sensitive { address: Address },
    #[error(
        "{address} is absent from the deployment; to stop managing it, remove it at {location}"
    )]
    Absent { address: Address, location: String },
    #[error(
        "{address} is produced by a template at {location} (`{{{{ ... }}}}`); change the template or its inputs instead"
    )]
    Template { address: Address, location: String },
    #[error("{address} cannot be written back into `{section}` at {location}: {reason}")]
    DoesNotMap {
        address: Address,
        section: String,
        location: String,
        reason: String,
    },
    #[error("{address} has no source location in the YAML")]
    NoSource { address: Address },
    #[error("{address} at {location}: {source}")]
    Edit {
        address: Address,
        location: String,
        #[source]
        source: EditError,
    },
}

/// Decides what `--adopt ADDRESS` writes. `Ok(None)` when the YAML already declares the
/// observed value.
pub fn prepare(
    text: &str,
    checked: &Checked,
    desired: &DesiredState,
    observed: &Observed,
) -> Result<Option<Adoption>, Refusal> {
    let address = Address::parse(text).map_err(|_| Refusal::NotAnAddress(text.to_string()))?;
    if address.kind() == AddressKind::BackupSet {
        return Err(Refusal::NotAnAddress(text.to_string()));
    }
    let resource = desired
        .get(&address)
        .ok_or_else(|| Refusal::NotDeclared(address.clone()))?;
    if let Desired::Secret(secret) = &resource.desired {
        let (reference, advice) = match &secret.source {
            SecretSource::FromEnv(variable) => (
                format!("from_env: {variable}"),
                format!("set {variable} to the new value where plan and apply run"),
            ),
            SecretSource::FromFile(path) => (
                format!("from_file: {path}"),
                format!("write the new value into {path}"),
            ),
            SecretSource::Generate(_) => (
                "generate".to_string(),
                "to keep the value now in the deployment, switch it to `from_env` or `from_file` and supply that value".to_string(),
            ),
        };
        return Err(Refusal::Secret {
            address,
            reference,
            advice,
        });
    }
    if resource.sensitive {
        return Err(Refusal::Sensitive { address });
    }
    let location = resource.source.clone().ok_or_else(|| Refusal::NoSource {
        address: address.clone(),
    })?;
    let shown_location = location.to_string();
    let value = observed.get(&address);
    let now = value.canonical();
    let Some(now_text) = now.clone() else {
        return Err(Refusal::Absent {
            address,
            location: shown_location,
        });
    };
    if resource.desired.canonical().as_deref() == Some(now_text.as_str()) {
        return Ok(None);
    }
    // The value may have turned sensitive out of band (a URL that gained a password).
    let name = match address.kind() {
        AddressKind::Config => address.config_parts().map(|(_, key)| key),
        AddressKind::Env => Some(address.name()),
        _ => None,
    };
    if name.is_some_and(|name| is_sensitive(name, &now_text)) {
        return Err(Refusal::Sensitive { address });
    }
    let path = checked
        .sources()
        .path(&location.file)
        .map(PathBuf::from)
        .ok_or_else(|| Refusal::NoSource {
            address: address.clone(),
        })?;
    let file_text = checked.sources().text(&location.file).unwrap_or_default();
    let does_not_map = |section: &str, reason: String| Refusal::DoesNotMap {
        address: address.clone(),
        section: section.to_string(),
        location: shown_location.clone(),
        reason,
    };
    let (pointer, edit) = match address.kind() {
        AddressKind::Env => env_edit(checked, &address, &now_text, &does_not_map)?,
        AddressKind::Config => {
            let pointer = checked
                .spec
                .config
                .iter()
                .flat_map(|(section, keys)| keys.keys().map(move |key| (section, key)))
                .find(|(section, key)| Address::config(section, key) == address)
                .map(|(section, key)| {
                    format!(
                        "/config/{}/{}",
                        escape_pointer(section),
                        escape_pointer(key)
                    )
                })
                .ok_or_else(|| Refusal::NotDeclared(address.clone()))?;
            let text = edit::template_safe(&now_text).ok_or_else(|| {
                does_not_map(
                    "config",
                    "the value holds template syntax that cannot be escaped".to_string(),
                )
            })?;
            (pointer, Edit::Scalar(edit::scalar(&text)))
        }
        AddressKind::QuotaUser => {
            let pointer = format!("/quotas/users/{}", escape_pointer(address.name()));
            let written = match value {
                ObservedValue::Quota(Some(megabytes)) => megabytes.to_string(),
                ObservedValue::Quota(None) => "null".to_string(),
                _ => {
                    return Err(does_not_map(
                        "quotas.users",
                        "the observed value is not a quota".to_string(),
                    ));
                }
            };
            (pointer, Edit::Scalar(written))
        }
        AddressKind::Retention => {
            let key = retention_key(address.name()).ok_or_else(|| {
                does_not_map(
                    "retention",
                    "not a retention policy tldw-ops knows".to_string(),
                )
            })?;
            let days = unmap::retention_days(key, &now_text)
                .map_err(|reason| does_not_map("retention", reason))?;
            (key.yaml_path.to_string(), Edit::Scalar(format!("{days}d")))
        }
        AddressKind::Secret | AddressKind::BackupSet => {
            unreachable!("secrets and backup sets are refused above")
        }
    };
    match edit::holds_template(file_text, &pointer) {
        Ok(true) => {
            return Err(Refusal::Template {
                address,
                location: shown_location,
            });
        }
        Ok(false) => {}
        Err(source) => {
            return Err(Refusal::Edit {
                address,
                location: shown_location,
                source,
            });
        }
    }
    let adoption = Adoption {
        shown: match &edit {
            Edit::Scalar(_) => now_text,
            Edit::Sequence(items) => format!("[{}]", items.join(", ")),
        },
        address,
        path,
        location,
        pointer,
        edit,
    };
    // Try the edit on the file as loaded, so a value that cannot be edited in place is refused
    // before anything is written.
    if let Err(source) = apply_edits(file_text, &[&adoption]) {
        return Err(Refusal::Edit {
            address: adoption.address,
            location: shown_location,
            source,
        });
    }
    Ok(Some(adoption))
}

type DoesNotMap<'a> = dyn Fn(&str, String) -> Refusal + 'a;

/// The pointer and edit of an `env.*` address, by the section that writes it.
fn env_edit(
    checked: &Checked,
    address: &Address,
    value: &str,
    does_not_map: &DoesNotMap<'_>,
) -> Result<(String, Edit), Refusal> {
    let entry = env_entries(&checked.spec)
        .into_iter()
        .find(|entry| entry.name == address.name())
        .ok_or_else(|| Refusal::NotDeclared(address.clone()))?;
    let section = entry.pointer.trim_start_matches('/').replace('/', ".");
    let edit = match entry.origin {
        EnvOrigin::Env | EnvOrigin::Release => {
            let text = edit::template_safe(value).ok_or_else(|| {
                does_not_map(
                    "env",
                    "the value holds template syntax that cannot be escaped".to_string(),
                )
            })?;
            Edit::Scalar(edit::scalar(&text))
        }
        EnvOrigin::Cors if entry.name == crate::spec::mapping::ALLOWED_ORIGINS => {
            let origins = unmap::origins(value).map_err(|reason| {
                does_not_map(
                    &section,
                    format!(
                        "{reason}. Edit the list by hand, or declare the raw text as `env: {{ ALLOWED_ORIGINS: ... }}` instead of `cors.allowed_origins`"
                    ),
                )
            })?;
            Edit::Sequence(origins.iter().map(|origin| edit::scalar(origin)).collect())
        }
        EnvOrigin::Cors | EnvOrigin::Registration | EnvOrigin::Quotas => {
            let flag = unmap::boolean(value).map_err(|reason| does_not_map(&section, reason))?;
            Edit::Scalar(flag.to_string())
        }
        EnvOrigin::Retention => {
            let key = RETENTION_KEYS
                .iter()
                .find(|key| key.env_name == entry.name)
                .expect("retention entries come from the table");
            let days = unmap::retention_days(key, value)
                .map_err(|reason| does_not_map(&section, reason))?;
            Edit::Scalar(format!("{days}d"))
        }
    };
    Ok((entry.pointer, edit))
}

/// Applies `adoptions` (all in one file) to its text, one after the other, and checks that the
/// result reads back with each new value at its pointer.
pub fn apply_edits(text: &str, adoptions: &[&Adoption]) -> Result<String, EditError> {
    let mut out = text.to_string();
    for adoption in adoptions {
        out = match &adoption.edit {
            Edit::Scalar(written) => edit::replace_scalar(&out, &adoption.pointer, written)?,
            Edit::Sequence(items) => edit::replace_sequence(&out, &adoption.pointer, items)?,
        };
    }
    let name: Arc<str> = Arc::from("adopted.yaml");
    let root = parse_document(&out, &name)
        .map_err(|errors| EditError::Syntax(errors[0].message.clone()))?;
    for adoption in adoptions {
        let written = match &adoption.edit {
            Edit::Scalar(written) => written.clone(),
            Edit::Sequence(items) => format!("[{}]", items.join(", ")),
        };
        let expected = parse_document(&format!("v: {written}\n"), &name)
            .map_err(|errors| EditError::Syntax(errors[0].message.clone()))?
            .to_json()["v"]
            .clone();
        let found = root.resolve_pointer(&adoption.pointer);
        if !found.complete || found.node.to_json() != expected {
            return Err(EditError::NotFound {
                pointer: adoption.pointer.clone(),
            });
        }
    }
    Ok(out)
}
