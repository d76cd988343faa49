//! `drift [FILE]`: what changed in the deployment outside tldw-ops since the last apply, and
//! `--adopt`: writing observed values back into the YAML that declares them, all files or none.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::drift::{self, DriftReport};
use crate::model::Address;
use crate::pipeline::{self, PipelineError, Prepared};
use crate::plan::adopt::{self, Adoption};
use crate::providers::files::{read_snapshot, write_atomic};
use crate::settings::Settings;

/// The deployment observed against `file`, and its drift report (policy findings included).
pub async fn detect(
    file: &Path,
    settings: &Settings,
) -> Result<(Prepared, DriftReport), PipelineError> {
    let loaded = pipeline::load_to_read(file, settings, false).await?;
    let prepared = pipeline::observe(loaded).await?;
    // Everything this command needs from the store is read: close it now, so SQLite removes the
    // -wal and -shm files it opened.
    prepared.loaded.store.close().await;
    let mut report = drift::detect(
        &prepared.loaded.desired,
        &prepared.observed,
        &prepared.loaded.state,
    );
    report.policy = drift::policy::findings(&prepared.files);
    Ok((prepared, report))
}

/// What became of one address given to `--adopt`, in the order given.
#[derive(Debug)]
pub enum Asked {
    /// It will be (or was) written.
    Adopt,
    /// The YAML already declares the observed value.
    AlreadyDeclared(String),
    /// It cannot be adopted (a secret, an address nothing observes, …).
    Refused(String),
}

/// One file written by an adoption.
#[derive(Debug)]
pub struct Written {
    pub path: PathBuf,
    pub adoptions: Vec<Adoption>,
    /// A layer other files extend: every environment that extends it now declares the values.
    pub shared_layer: bool,
}

/// What `adopt_all` did.
#[derive(Debug)]
pub struct Adopted {
    pub asked: Vec<(String, Asked)>,
    pub written: Vec<Written>,
}

impl Adopted {
    /// Every address written into a file.
    pub fn addresses(&self) -> BTreeSet<Address> {
        self.written
            .iter()
            .flat_map(|written| &written.adoptions)
            .map(|adoption| adoption.address.clone())
            .collect()
    }
}

/// Adopted drift now matches the YAML (the next apply records it): the drift of `addresses`
/// moves in `report` to what matches the desired state.
pub fn mark_adopted(report: &mut DriftReport, addresses: &BTreeSet<Address>) {
    let (now_declared, remaining) = std::mem::take(&mut report.drift)
        .into_iter()
        .partition(|item| addresses.contains(&item.address));
    report.drift = remaining;
    report.matches_desired.extend(
        now_declared
            .into_iter()
            .map(|item: crate::drift::Drifted| item.address),
    );
    report.matches_desired.sort();
}

/// Why nothing (or, for a failed write, only `written`) was adopted.
#[derive(Debug)]
pub enum AdoptError {
    /// At least one address was refused: no file was changed.
    Refused { asked: Vec<(String, Asked)> },
    /// A declaring file could not be read, changed while the command ran, or could not be
    /// edited: no file was changed.
    Unchanged {
        asked: Vec<(String, Asked)>,
        message: String,
    },
    /// Writing a file failed after `written` were written.
    Write {
        asked: Vec<(String, Asked)>,
        written: Vec<Written>,
        message: String,
    },
}

/// Writes every adoption, or nothing when one of them is refused. Every file is edited in
/// memory first, so a problem in one leaves all of them untouched.
pub fn adopt_all(addresses: &[String], prepared: &Prepared) -> Result<Adopted, AdoptError> {
    let loaded = &prepared.loaded;
    let mut adoptions: Vec<Adoption> = Vec::new();
    let mut asked = Vec::new();
    for text in addresses {
        let outcome = match adopt::prepare(
            text,
            &loaded.checked,
            &loaded.desired,
            &prepared.observed,
            crate::kinds::kind,
        ) {
            Ok(Some(adoption)) => {
                adoptions.push(adoption);
                Asked::Adopt
            }
            Ok(None) => Asked::AlreadyDeclared(format!(
                "{text}: the YAML already declares the observed value; nothing to adopt"
            )),
            Err(refusal) => Asked::Refused(refusal.to_string()),
        };
        asked.push((text.clone(), outcome));
    }
    if asked
        .iter()
        .any(|(_, outcome)| matches!(outcome, Asked::Refused(_)))
    {
        return Err(AdoptError::Refused { asked });
    }
    let mut by_file: BTreeMap<PathBuf, Vec<Adoption>> = BTreeMap::new();
    for adoption in adoptions {
        by_file
            .entry(adoption.path.clone())
            .or_default()
            .push(adoption);
    }
    let mut writes = Vec::new();
    for (path, group) in by_file {
        let unchanged =
            |message: String, asked: Vec<(String, Asked)>| AdoptError::Unchanged { asked, message };
        let snapshot = match read_snapshot(&path) {
            Ok(snapshot) => snapshot,
            Err(error) => return Err(unchanged(error.to_string(), asked)),
        };
        let name = crate::spec::source::display_name(&path);
        let loaded_text = loaded.checked.sources().text(&name);
        let current = snapshot.content.clone().unwrap_or_default();
        if loaded_text != Some(current.as_str()) {
            return Err(unchanged(
                format!(
                    "{} changed while this command ran; nothing was adopted",
                    path.display()
                ),
                asked,
            ));
        }
        let references: Vec<&Adoption> = group.iter().collect();
        let edited = match adopt::apply_edits(&current, &references) {
            Ok(edited) => edited,
            Err(error) => {
                return Err(unchanged(
                    format!("{}: {error}; nothing was adopted", path.display()),
                    asked,
                ));
            }
        };
        writes.push((snapshot, edited, group));
    }
    let mut written = Vec::new();
    for (snapshot, edited, group) in writes {
        if let Err(error) = write_atomic(
            &snapshot.path,
            edited.as_bytes(),
            snapshot.mode.unwrap_or(0o644),
            snapshot.owner,
        ) {
            return Err(AdoptError::Write {
                asked,
                written,
                message: error.to_string(),
            });
        }
        written.push(Written {
            shared_layer: loaded.checked.loaded.files.first() != Some(&snapshot.path),
            path: snapshot.path,
            adoptions: group,
        });
    }
    Ok(Adopted { asked, written })
}
