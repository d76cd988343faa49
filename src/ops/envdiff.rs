//! `envdiff A B`: how two resolved environments differ, address by address, secrets as
//! fingerprints. Reads the two files and, when one exists, the state store's salt; never creates
//! a store, takes a lock or looks at a deployment.

use std::path::Path;

use crate::envdiff::{EnvDiff, diff};
use crate::environments::{Resolved, resolve};
use crate::pipeline::{PipelineError, state_location};
use crate::settings::Settings;
use crate::state::location::exists;
use crate::state::{StateStore, Store, open};

/// Where the fingerprint salt came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaltSource {
    /// The state store's: fingerprints match those in plans and `show`.
    Store,
    /// Random for this run: fingerprints compare only within this output.
    PerRun,
}

impl SaltSource {
    pub fn describe(self, location: &str) -> String {
        match self {
            SaltSource::Store => format!(
                "secrets are compared by fingerprint with the salt of the state store {location}"
            ),
            SaltSource::PerRun => "no state store found: secrets are compared by fingerprint \
                                   with a salt made for this run (they match nothing else)"
                .to_string(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SaltSource::Store => "state_store",
            SaltSource::PerRun => "per_run",
        }
    }
}

/// Two environments and how they differ.
pub struct Comparison {
    pub a: Resolved,
    pub b: Resolved,
    pub difference: EnvDiff,
    pub salt_source: SaltSource,
    /// The state store the salt was looked for in.
    pub location: String,
}

/// Resolves both files and compares them, with the salt of the state store beside `a` when
/// there is one.
pub async fn compare(a: &Path, b: &Path, settings: &Settings) -> Result<Comparison, PipelineError> {
    let (a_file, b_file) = (a, b);
    let a = resolve(a_file, settings)?;
    let b = resolve(b_file, settings)?;
    let location = state_location(a_file, settings);
    let (salt, salt_source) = match existing_store(&location).await {
        Some((_, salt)) => (salt, SaltSource::Store),
        None => (per_run_salt(), SaltSource::PerRun),
    };
    let difference = diff(&a, &b, &salt);
    Ok(Comparison {
        a,
        b,
        difference,
        salt_source,
        location,
    })
}

/// Opens the store at `location` only if it already exists, and takes its salt from any
/// environment it knows (the salt is per store).
pub async fn existing_store(location: &str) -> Option<(Store, Vec<u8>)> {
    if !exists(location) {
        return None;
    }
    let store = open(location).await.ok()?;
    let known = store.environments().await.ok()?.into_iter().next()?;
    let salt = store.environment(&known.environment).await.ok()?.salt;
    Some((store, salt))
}

pub fn per_run_salt() -> Vec<u8> {
    let mut salt = vec![0u8; 32];
    getrandom::fill(&mut salt).expect("the operating system random source is available");
    salt
}

/// How an environment is named in output: its name, or its file when both share a name.
pub fn names(a: &Resolved, b: &Resolved) -> (String, String) {
    if a.key == b.key {
        (a.file.display().to_string(), b.file.display().to_string())
    } else {
        (a.key.to_string(), b.key.to_string())
    }
}

pub fn side_json(resolved: &Resolved) -> serde_json::Value {
    serde_json::json!({
        "environment": resolved.key.environment,
        "deployment": resolved.key.deployment,
        "file": resolved.file.display().to_string(),
        "shared_hash": resolved.shared_hash,
        "shared_files": resolved.shared_files,
    })
}

impl Comparison {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "a": side_json(&self.a),
            "b": side_json(&self.b),
            "fingerprint_salt": self.salt_source.as_str(),
            "differs": self.difference.differs(),
            "counts": self.difference.counts,
            "sections": self.difference.sections,
        })
    }
}
