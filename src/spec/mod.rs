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

use std::collections::BTreeMap;
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
pub fn check(
    path: &Path,
    process_env: &BTreeMap<String, String>,
    resolve_secret: &SecretResolver<'_>,
) -> Result<Checked, CheckError> {
    let loaded = match load::load(path, process_env) {
        Ok(loaded) => loaded,
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
    let json = loaded.root.to_json();
    let mut diagnostics =
        schema::validate_json_masking(&loaded.root, &json, &|pointer| loaded.is_sensitive(pointer));
    if !diagnostics.is_empty() {
        loaded.redactions.scrub_all(&mut diagnostics);
        diagnostic::sort(&mut diagnostics);
        return Err(CheckError::Invalid {
            diagnostics,
            sources: loaded.sources,
        });
    }
    let spec: Spec = match serde_json::from_value(json) {
        Ok(spec) => spec,
        Err(error) => {
            return Err(CheckError::Invalid {
                diagnostics: vec![
                    Diagnostic::error(
                        "schema.invalid",
                        loaded.redactions.scrub(&format!(
                            "the document passed the schema but could not be read: {error}"
                        )),
                    )
                    .at(Some(loaded.root.location.clone())),
                ],
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
