//! The desired-state format: load (layers and templates), validate (JSON Schema, semantic checks,
//! production policy), and the typed [`Spec`]. Pure apart from reading the YAML files; never
//! imports tokio, sqlx or reqwest.

pub mod diagnostic;
pub mod duration;
pub mod edit;
pub mod load;
pub mod mapping;
pub mod node;
pub mod paths;
pub mod policy;
pub mod preflight;
pub mod schema;
pub mod secret_rules;
pub mod semantic;
pub mod source;
pub mod template;
pub mod types;
pub mod unmap;
pub mod view;
pub mod writable;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use diagnostic::{Diagnostic, Severity};
pub use load::{LoadError, Loaded};
pub use policy::ResolvedSecret;
pub use source::{Location, SourceMap};
pub use types::Spec;

use types::SecretSpec;

/// A loaded desired state with everything validation found.
#[derive(Debug, Clone)]
pub struct Checked {
    pub spec: Spec,
    pub loaded: Loaded,
    /// Warnings and notes (and errors, when [`Checked::has_errors`]).
    pub diagnostics: Vec<Diagnostic>,
    /// Rules waived by the file, with their reasons.
    pub waived: Vec<(String, String)>,
    /// Every secret's source, read once: policy checked these values and apply writes them.
    pub secrets: BTreeMap<String, ResolvedSecret>,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn sources(&self) -> &SourceMap {
        &self.loaded.sources
    }

    /// The directory of the file that declares the value at `pointer`: relative paths in the
    /// desired state resolve against it.
    pub fn declaring_directory(&self, pointer: &str) -> PathBuf {
        declaring_directory(&self.loaded, pointer)
    }

    /// `path` as the desired state means it: a relative path is relative to the directory of
    /// the YAML file (main file or `extends:` layer) that declares the value at `pointer`. The
    /// target root, the backup destination, the API token file and secret files all resolve
    /// here, so a path means the same thing wherever tldw-ops reads it.
    pub fn declared_path(&self, pointer: &str, path: impl AsRef<Path>) -> PathBuf {
        self.declaring_directory(pointer).join(path)
    }
}

/// The directory of the layer that declares the value at `pointer`, or of the main file when
/// no layer does. Paths written in a layer are relative to that layer, wherever it lives.
pub fn declaring_directory(loaded: &Loaded, pointer: &str) -> PathBuf {
    semantic::locate(&loaded.root, pointer)
        .and_then(|location| loaded.sources.path(&location.file).map(Path::to_path_buf))
        .unwrap_or_else(|| loaded.main_file.clone())
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The pointer of the source a secret reads, for [`declaring_directory`].
pub fn secret_source_pointer(name: &str, secret: &SecretSpec) -> String {
    let field = if secret.from_file.is_some() {
        "/from_file"
    } else {
        ""
    };
    format!("/secrets/values/{}{field}", load::escape_pointer(name))
}

/// Why a desired state could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The file itself could not be read: an operator error, not an invalid spec.
    #[error(transparent)]
    Unreadable(LoadError),
    /// The document has errors that stop it being typed: YAML, layering, templates or schema.
    #[error("the desired state is invalid")]
    Invalid {
        diagnostics: Vec<Diagnostic>,
        sources: SourceMap,
    },
}

/// Reads a secret's source: its spec and the directory of the file that declares it.
pub type SecretResolver<'a> = dyn Fn(&SecretSpec, &Path) -> ResolvedSecret + 'a;

/// Loads and validates `path`. `resolve_secret` reads each secret's source once; policy checks
/// those values and [`Checked::secrets`] hands the same ones to apply.
///
/// Every stage that can run does, so one run reports every problem: a value whose template
/// failed is skipped by the later stages, a value the schema refuses is left out of the typed
/// document (so range, value and policy checks still judge the rest), and only a document
/// that cannot be typed at all (a required key missing) stops before the value checks. The
/// result holds every diagnostic, sorted by file:line:col.
pub fn check(
    path: &Path,
    process_env: &BTreeMap<String, String>,
    resolve_secret: &SecretResolver<'_>,
) -> Result<Checked, CheckError> {
    let load::Tolerant {
        loaded,
        diagnostics: mut early,
        skipped,
    } = match load::load_tolerant(path, process_env) {
        Ok(tolerant) => tolerant,
        Err(LoadError::Invalid {
            mut diagnostics,
            sources,
        }) => {
            diagnostic::sort(&mut diagnostics);
            return Err(CheckError::Invalid {
                diagnostics,
                sources,
            });
        }
        Err(other) => return Err(CheckError::Unreadable(other)),
    };
    let mut json = loaded.root.to_json();
    let mut schema_diagnostics =
        schema::validate_json_masking(&loaded.root, &json, &|pointer| loaded.is_sensitive(pointer));
    schema_diagnostics.retain(|diagnostic| !covers_any(&skipped, &diagnostic.path));
    // What the schema refused is left out of the typed document. An unknown key changes
    // nothing the typed checks see; any other refused value is absent for them, so their
    // findings at or around it are dropped (they would only repeat the schema's). Leaving a
    // value out may leave its parent without a required key: then the parent goes too, round
    // by round, until the rest can be typed or nothing is left to leave out.
    let mut pruned: BTreeSet<String> = skipped.clone();
    // A skipped value goes too: what it holds (a template's own text, or a secret where none
    // may go) is not what the file means.
    let mut refused: Vec<(String, String)> = schema_diagnostics
        .iter()
        .map(|diagnostic| (diagnostic.code.clone(), diagnostic.path.clone()))
        .chain(
            skipped
                .iter()
                .map(|pointer| ("template.skipped".to_string(), pointer.clone())),
        )
        .collect();
    for _round in 0..MAX_PRUNE_ROUNDS {
        if refused.is_empty() {
            break;
        }
        for (code, path) in &refused {
            if let Some(removed) = remove_pointer(&mut json, path)
                && code != "schema.unknown_key"
            {
                pruned.insert(removed);
            }
        }
        refused = schema::validate_json(&loaded.root, &json)
            .into_iter()
            .map(|diagnostic| (diagnostic.code, diagnostic.path))
            .collect();
    }
    early.extend(schema_diagnostics);
    let spec: Spec = match serde_json::from_value(json) {
        Ok(spec) => spec,
        Err(error) => {
            if early.is_empty() {
                early.push(
                    Diagnostic::error(
                        "schema.invalid",
                        format!("the document passed the schema but could not be read: {error}"),
                    )
                    .at(Some(loaded.root.location.clone())),
                );
            }
            loaded.redactions.scrub_all(&mut early);
            diagnostic::sort(&mut early);
            return Err(CheckError::Invalid {
                diagnostics: early,
                sources: loaded.sources,
            });
        }
    };
    let rule_ids = policy::rule_ids();
    let mut diagnostics = semantic::check(&spec, &loaded.root, &rule_ids);
    diagnostics.extend(paths::check(&spec, &loaded.root));
    let resolved: BTreeMap<String, ResolvedSecret> = spec
        .secrets
        .iter()
        .flat_map(|secrets| secrets.values.iter())
        .map(|(name, secret)| {
            let directory = declaring_directory(&loaded, &secret_source_pointer(name, secret));
            (name.clone(), resolve_secret(secret, &directory))
        })
        .collect();
    semantic::check_secret_values(&loaded.root, &resolved, &mut diagnostics);
    let view = view::View::from_spec(&spec, &resolved);
    diagnostics.extend(policy::evaluate(&policy::PolicyInput {
        spec: &spec,
        root: &loaded.root,
        view: &view,
    }));
    let waived = policy::apply_waivers(&spec, &mut diagnostics);
    diagnostics.retain(|diagnostic| !related_to_any(&pruned, &diagnostic.path));
    diagnostics.extend(early);
    loaded.redactions.scrub_all(&mut diagnostics);
    diagnostic::sort(&mut diagnostics);
    Ok(Checked {
        spec,
        loaded,
        diagnostics,
        waived,
        secrets: resolved,
    })
}

/// How many times a refused value's parents may be left out in turn (the format nests less
/// deeply than this).
const MAX_PRUNE_ROUNDS: usize = 8;

/// Whether `pointer` is one of `pointers` or lies below one.
fn covers_any(pointers: &BTreeSet<String>, pointer: &str) -> bool {
    pointers.iter().any(|upper| is_at_or_below(upper, pointer))
}

/// Whether `pointer` is one of `pointers`, lies below one, or is a parent of one (other than
/// the document itself): a finding there may only say the left-out value is missing.
fn related_to_any(pointers: &BTreeSet<String>, pointer: &str) -> bool {
    pointers.iter().any(|other| {
        is_at_or_below(other, pointer) || (!pointer.is_empty() && is_at_or_below(pointer, other))
    })
}

fn is_at_or_below(upper: &str, lower: &str) -> bool {
    lower == upper || (lower.starts_with(upper) && lower.as_bytes().get(upper.len()) == Some(&b'/'))
}

/// Removes the value at a JSON pointer and returns the pointer of what was removed: a refused
/// list item takes its whole list with it, since the typed checks report items by position.
fn remove_pointer(json: &mut serde_json::Value, pointer: &str) -> Option<String> {
    let (parent, last) = pointer.rsplit_once('/')?;
    match json.pointer_mut(parent)? {
        serde_json::Value::Object(object) => {
            object.remove(&last.replace("~1", "/").replace("~0", "~"))?;
            Some(pointer.to_string())
        }
        serde_json::Value::Array(_) => remove_pointer(json, parent),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_bytes(directory: &Path, bytes: &[u8]) {
        let path = directory.join("fuzz.yaml");
        std::fs::write(&path, bytes).unwrap();
        let no_secrets = |_: &SecretSpec, _: &Path| ResolvedSecret::Unavailable {
            reason: "test".to_string(),
        };
        // Any outcome is fine; a panic is not.
        let _ = check(&path, &BTreeMap::new(), &no_secrets);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn arbitrary_bytes_never_panic_the_loader(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let directory = tempfile::tempdir().unwrap();
            check_bytes(directory.path(), &bytes);
        }

        #[test]
        fn yaml_shaped_text_never_panics_the_loader(
            text in "(apiVersion: tldw-ops/v1\n)?(environment: [a-z]{1,5}\n)?([a-z_]{1,8}: ?([\\[\\]{}:,&*!|>'\"#%@`-]|[a-z0-9 ]){0,12}\n( {2}[a-z_]{1,6}: [a-z0-9{}\\[\\]]{0,8}\n){0,3}){0,6}"
        ) {
            let directory = tempfile::tempdir().unwrap();
            check_bytes(directory.path(), text.as_bytes());
        }
    }
}

#[cfg(test)]
mod template_tests {
    use super::*;

    #[test]
    fn a_finding_never_quotes_a_value_built_from_a_secret_variable() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("dev.yaml");
        std::fs::write(
            &path,
            "apiVersion: tldw-ops/v1\nenvironment: dev\ntemplate: { secret: [DB_PASSWORD] }\ntarget: { root: /opt/tldw }\ncors:\n  allowed_origins: [\"https://x.example/{{ env.DB_PASSWORD }}\"]\n",
        )
        .unwrap();
        let process_env: BTreeMap<String, String> =
            [("DB_PASSWORD".to_string(), "hunter2-s3cr3t".to_string())].into();
        let unavailable = |_: &SecretSpec, _: &Path| ResolvedSecret::Unavailable {
            reason: "test".to_string(),
        };
        let checked = check(&path, &process_env, &unavailable).expect("a typed document");
        let origin = checked
            .diagnostics
            .iter()
            .find(|diagnostic| diagnostic.path.starts_with("/cors/allowed_origins"))
            .expect("the origin with a path is reported");
        assert!(origin.message.contains("(sensitive)"), "{}", origin.message);
        for diagnostic in &checked.diagnostics {
            assert!(
                !diagnostic.message.contains("s3cr3t"),
                "{}",
                diagnostic.message
            );
        }
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    fn codes(yaml: &str) -> Vec<String> {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("prod.yaml");
        std::fs::write(&path, yaml).unwrap();
        let unavailable = |_: &SecretSpec, _: &Path| ResolvedSecret::Unavailable {
            reason: "test".to_string(),
        };
        let checked = check(&path, &BTreeMap::new(), &unavailable).expect("a valid document");
        checked
            .diagnostics
            .into_iter()
            .map(|diagnostic| diagnostic.code)
            .collect()
    }

    #[test]
    fn every_switch_rule_fires_on_its_forbidden_value_in_production_only() {
        let env = policy::SWITCH_RULES
            .iter()
            .map(|(_, variable, forbidden, _)| format!("  {variable}: {forbidden}\n"))
            .collect::<String>();
        let yaml = format!(
            "apiVersion: tldw-ops/v1\nenvironment: prod\ntarget: {{ root: /opt/tldw }}\nenv:\n  tldw_production: true\n{env}"
        );
        let found = codes(&yaml);
        for (rule, _, _, _) in policy::SWITCH_RULES {
            assert!(
                found.contains(&format!("policy.{rule}")),
                "{rule}: {found:?}"
            );
        }
        let relaxed = codes(
            &yaml
                .replace("tldw_production: true", "tldw_production: false")
                .replace("environment: prod", "environment: dev"),
        );
        for (rule, _, _, _) in policy::SWITCH_RULES {
            assert!(
                !relaxed.contains(&format!("policy.{rule}")),
                "{rule} outside production: {relaxed:?}"
            );
        }
    }
}
