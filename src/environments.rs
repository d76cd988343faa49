//! Environment files resolved on their own, without a state store or the deployment: what
//! `envdiff` and `promote` compare. Loading must not create, lock or observe anything, and a
//! secret source that cannot be read here (prod's password on a CI runner) is not an error:
//! it is reported as unreadable and never fingerprinted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::model::DesiredState;
use crate::pipeline::{PipelineError, resolve_sources, shared_hash};
use crate::plan::compile;
use crate::settings::Settings;
use crate::spec::Checked;
use crate::spec::source::display_name;
use crate::state::EnvironmentKey;

/// One environment file, loaded, checked and compiled.
pub struct Resolved {
    pub file: PathBuf,
    pub checked: Checked,
    pub desired: DesiredState,
    pub key: EnvironmentKey,
    /// Hash of the layers the file extends (see `pipeline::shared_hash`).
    pub shared_hash: Option<String>,
    /// Display names of the files the environment extends, as locations name them.
    pub shared_files: BTreeSet<String>,
    /// Secrets whose source could not be read here: name -> why. Their compiled value is a
    /// stand-in that must never be compared or shown.
    pub unreadable: BTreeMap<String, String>,
}

/// Loads, checks and compiles `file`. Refuses an invalid spec as `plan` would.
pub fn resolve(file: &Path, settings: &Settings) -> Result<Resolved, PipelineError> {
    let checked = crate::pipeline::usable(crate::pipeline::load_checked(file, settings))?;
    let mut unreadable = BTreeMap::new();
    let sources: BTreeMap<String, Result<String, String>> = resolve_sources(&checked)
        .into_iter()
        .map(|(name, value)| match value {
            Ok(value) => (name, Ok(value)),
            Err(reason) => {
                unreadable.insert(name.clone(), reason);
                (name, Ok(String::new()))
            }
        })
        .collect();
    let desired = compile(&checked, &sources, crate::kinds::kind)?;
    let key = EnvironmentKey {
        deployment: desired.deployment.clone(),
        environment: desired.environment.clone(),
    };
    let main = display_name(&checked.loaded.main_file);
    let shared_files = checked
        .loaded
        .files
        .iter()
        .map(|path| display_name(path).to_string())
        .filter(|name| **name != *main)
        .collect();
    Ok(Resolved {
        file: file.to_path_buf(),
        shared_hash: shared_hash(&checked),
        checked,
        desired,
        key,
        shared_files,
        unreadable,
    })
}

/// The YAML file in `directory` whose `environment:` is `name` (`env` or `deployment/env`).
/// Only the directory itself is searched; files that do not load are skipped (a shared base
/// names no environment).
pub fn find(directory: &Path, name: &str, settings: &Settings) -> Result<PathBuf, FindError> {
    let (deployment, environment) = match name.split_once('/') {
        Some((deployment, environment)) => (Some(deployment), environment),
        None => (None, name),
    };
    let entries = std::fs::read_dir(directory).map_err(|source| FindError::Unreadable {
        directory: directory.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.is_file()
                && matches!(
                    path.extension().and_then(|extension| extension.to_str()),
                    Some("yaml" | "yml")
                )
        })
        .collect();
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let Ok(loaded) = crate::spec::load::load(&file, &settings.process_env) else {
            continue;
        };
        let text = |key: &str| {
            loaded
                .root
                .get(key)
                .and_then(crate::spec::node::Node::as_str)
                .map(str::to_string)
        };
        if text("environment").as_deref() != Some(environment) {
            continue;
        }
        let declared = text("deployment").unwrap_or_else(|| "default".to_string());
        if deployment.is_none_or(|deployment| deployment == declared) {
            found.push(file);
        }
    }
    match found.len() {
        1 => {
            let file = found.remove(0);
            // `--dir .` finds `./prod.yaml`; name it as people would type it.
            Ok(file
                .strip_prefix(".")
                .map(Path::to_path_buf)
                .unwrap_or(file))
        }
        0 => Err(FindError::NotFound {
            directory: directory.to_path_buf(),
            name: name.to_string(),
        }),
        _ => Err(FindError::Ambiguous {
            name: name.to_string(),
            files: found,
        }),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error("cannot list {directory}: {source}")]
    Unreadable {
        directory: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no YAML file in {directory} has `environment: {name}`")]
    NotFound { directory: PathBuf, name: String },
    #[error(
        "more than one file declares environment {name} ({}); name the files with --from-file and --to-file, or use deployment/{name}",
        files.iter().map(|file| file.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    Ambiguous { name: String, files: Vec<PathBuf> },
}
