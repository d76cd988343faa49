//! `drift --adopt`: when a change made outside tldw-ops was right, write the observed value into
//! the YAML file that declares the address, at its source location, so the next plan leaves it
//! alone. Every other byte of that file stays as it was (comments, quoting, order).
//!
//! Pure: [`prepare`] decides what to write (or why it cannot), [`apply_edits`] edits text. The
//! command reads and writes the files. The state store is not touched: the next apply records
//! the value. Secrets are never written: their YAML holds a reference, and a sensitive value in
//! `env:` or `config:` would put a secret into the file.
//!
//! Where an address is written and how its observed value reads back as YAML is the kind's
//! (`Kind::adopt`); the checks every kind shares are here.

use std::path::PathBuf;
use std::sync::Arc;

use super::kind::Registry;
use crate::model::SecretSource;
use crate::model::{Address, Desired, DesiredState, Observed, ObservedValue};
use crate::secrets::is_sensitive;
use crate::spec::edit::{self, EditError};
use crate::spec::node::parse_document;
use crate::spec::{Checked, Location};

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
    kinds: Registry,
) -> Result<Option<Adoption>, Refusal> {
    let address = Address::parse(text).map_err(|_| Refusal::NotAnAddress(text.to_string()))?;
    let kind = kinds(address.kind());
    if !kind.adopts() {
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
    if kind
        .key_name(&address)
        .is_some_and(|name| is_sensitive(name, &now_text))
    {
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
    let (pointer, edit) = kind.adopt(&AdoptInput {
        checked,
        address: &address,
        now: &now_text,
        observed: value,
        does_not_map: &does_not_map,
    })?;
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

/// Makes the refusal of a value that does not map back into its YAML section.
pub type DoesNotMap<'a> = dyn Fn(&str, String) -> Refusal + 'a;

/// What a kind reads to adopt one declared, observed, non-sensitive value.
pub struct AdoptInput<'a> {
    pub checked: &'a Checked,
    pub address: &'a Address,
    /// The observed value, canonical.
    pub now: &'a str,
    pub observed: &'a ObservedValue,
    pub does_not_map: &'a DoesNotMap<'a>,
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
