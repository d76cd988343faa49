//! Policy on what apply would leave behind (`DESIGN.md`, Policy): the desired values laid over
//! the deployment's `.env` and `config.txt`, unmanaged keys included, judged by the same rules
//! `validate` runs on the YAML alone. `plan` and `apply` refuse with exit 3 when an error-level
//! rule fails here, so a green plan is a deployment tldw_server's own checks accept.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use crate::model::AddressKind;
use crate::pipeline::Prepared;
use crate::plan::{Action, Plan};
use crate::providers::env_file::document::EnvWarning;
use crate::spec::source::{Location, display_name};
use crate::spec::view::{ConfigEntry, FileEntry, FileFacts, SyntaxProblem, View};
use crate::spec::{Diagnostic, policy};

/// Every finding on the effective deployment, after the file's waivers. The YAML-only
/// findings `validate` already reported are left out, so nothing is said twice.
pub fn findings(prepared: &Prepared, plan: &Plan) -> Vec<Diagnostic> {
    let loaded = &prepared.loaded;
    let checked = &loaded.checked;
    let view = view(prepared, plan);
    let mut diagnostics = policy::evaluate(&policy::PolicyInput {
        spec: &checked.spec,
        root: &checked.loaded.root,
        view: &view,
    });
    policy::apply_waivers(&checked.spec, &mut diagnostics);
    diagnostics.retain(|diagnostic| {
        diagnostic.code.starts_with("policy.")
            && !checked.diagnostics.iter().any(|known| {
                known.code == diagnostic.code
                    && known.path == diagnostic.path
                    && known.location == diagnostic.location
            })
    });
    diagnostics.extend(config_sections(prepared));
    // A message may quote a value a template built from a secret variable.
    checked.loaded.redactions.scrub_all(&mut diagnostics);
    crate::spec::diagnostic::sort(&mut diagnostics);
    diagnostics
}

/// `config:` sections that differ only by letter case from a section of the deployment's
/// config.txt: configparser would read two sections, tldw only the file's, and the writer
/// refuses to create such a twin. Stock sections were already judged by `validate`.
fn config_sections(prepared: &Prepared) -> Vec<Diagnostic> {
    let checked = &prepared.loaded.checked;
    let document = prepared.files.config.document();
    checked
        .spec
        .config
        .keys()
        .filter_map(|section| {
            let existing = document.section_differing_by_case(section)?;
            let pointer = format!("/config/{}", crate::spec::load::escape_pointer(section));
            crate::spec::semantic::config_section_problem(
                section,
                [existing],
                crate::spec::semantic::locate_key(&checked.loaded.root, &pointer),
                &pointer,
            )
        })
        .filter(|diagnostic| {
            !checked
                .diagnostics
                .iter()
                .any(|known| known.code == diagnostic.code && known.path == diagnostic.path)
        })
        .collect()
}

/// The effective settings: the YAML's view laid over the files as observe read them.
pub fn view(prepared: &Prepared, plan: &Plan) -> View {
    let loaded = &prepared.loaded;
    let checked = &loaded.checked;
    let mut changed: BTreeSet<String> = BTreeSet::new();
    let mut removed: BTreeSet<String> = BTreeSet::new();
    for change in &plan.changes {
        let address = &change.address;
        if !matches!(address.kind(), AddressKind::Env | AddressKind::Secret) {
            continue;
        }
        let name = address.name().to_string();
        match change.action {
            Action::Delete => {
                removed.insert(name);
            }
            _ => {
                changed.insert(name);
            }
        }
    }
    let env_name: Arc<str> = display_name(&loaded.deployment.env_file);
    let config_name: Arc<str> = display_name(&loaded.deployment.config_file);
    let env_document = prepared.files.env.document();
    let env: Vec<FileEntry> = env_document
        .entries()
        .filter_map(|entry| {
            Some(FileEntry {
                name: entry.key.to_string(),
                value: entry.value?,
                location: Location::new(&env_name, entry.line, 1),
            })
        })
        .collect();
    let config: Vec<ConfigEntry> = prepared
        .files
        .config
        .document()
        .entries()
        .map(|entry| ConfigEntry {
            section: entry.section.to_string(),
            key: entry.key.to_string(),
            value: entry.raw_value.clone(),
            location: Location::new(&config_name, entry.line, 1),
        })
        .collect();
    let snapshot = &prepared.files.env.snapshot;
    let link = std::fs::symlink_metadata(&snapshot.path).ok();
    let facts = FileFacts {
        env_file: Arc::clone(&env_name),
        env_exists: snapshot.exists(),
        env_regular: link.as_ref().is_some_and(|metadata| metadata.is_file()),
        env_mode: snapshot.mode.map(|mode| mode & 0o7777),
        env_owned: match snapshot.owner {
            Some((uid, _)) => effective_uid().is_none_or(|me| me == uid),
            None => true,
        },
        env_syntax: prepared
            .files
            .env
            .document()
            .warnings()
            .iter()
            .filter_map(|warning| syntax_problem(warning, &env_name))
            .collect(),
    };
    View::from_spec(&checked.spec, &checked.secrets).over_files(
        env,
        config,
        facts,
        &|name| !changed.contains(name),
        &|name| removed.contains(name),
    )
}

/// The `.env` lines tldw's preflight (`load_raw_env`) refuses.
fn syntax_problem(warning: &EnvWarning, file: &Arc<str>) -> Option<SyntaxProblem> {
    let (line, what) = match warning {
        EnvWarning::ByteOrderMark => (1, "starts with a byte order mark, so its name is invalid"),
        EnvWarning::UnparseableLine { line } => (*line, "cannot be read as `NAME=value`"),
        EnvWarning::ExportPrefix { line, .. } => (*line, "uses `export NAME=`"),
        EnvWarning::MissingEquals { line, .. } => (*line, "has no `=`"),
        EnvWarning::NonPortableKey { line, .. } => {
            (*line, "has a name outside [A-Za-z_][A-Za-z0-9_]*")
        }
        EnvWarning::MultiLineValue { line, .. } => {
            (*line, "opens a quote it closes on a later line")
        }
        _ => return None,
    };
    Some(SyntaxProblem {
        location: Location::new(file, line, 1),
        what,
    })
}

/// The effective user id, from the owner of this process's `/proc` entry.
fn effective_uid() -> Option<u32> {
    std::fs::metadata("/proc/self")
        .ok()
        .map(|metadata| metadata.uid())
}
