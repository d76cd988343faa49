//! `plan [FILE]`: the desired state loaded, the deployment observed (the store read and closed
//! again), the plan made (whole, or its backup part alone), the warnings it carries, the policy
//! checked on what apply would leave behind, and the plan saved for `apply PLAN`. `cli::plan`
//! prints the plan in the format asked for and picks the exit status.

use std::path::{Path, PathBuf};

use crate::pipeline::{self, PipelineError, Prepared};
use crate::plan::{Plan, render};
use crate::providers::files::FileError;
use crate::settings::Settings;
use crate::spec::{Diagnostic, Severity};

/// Why there is no plan of the part asked for.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// `--only backup` for a desired state without a `backup:` policy.
    #[error("{0}")]
    NoBackupPart(String),
}

/// Loads the desired state in `file` to read and observes its deployment. Everything a plan
/// needs from the store is read by then, so the store is closed (SQLite removes the -wal and
/// -shm files it opened).
pub async fn prepare(file: &Path, settings: &Settings) -> Result<Prepared, PipelineError> {
    let loaded = pipeline::load_to_read(file, settings, false).await?;
    let prepared = pipeline::observe(loaded).await?;
    prepared.loaded.store.close().await;
    Ok(prepared)
}

/// The plan of `prepared` now: everything, or with `only_backup` (`--only backup`) the backup
/// part alone.
pub fn plan_for(
    prepared: &Prepared,
    only_backup: bool,
    settings: &Settings,
) -> Result<Plan, PlanError> {
    let plan = pipeline::make_plan(prepared, settings.now());
    if only_backup {
        pipeline::only_backups(prepared, plan, settings.now()).map_err(PlanError::NoBackupPart)
    } else {
        Ok(plan)
    }
}

/// The warnings of validation and of the plan, as printed and as a PR comment lists them.
pub fn warnings(prepared: &Prepared, plan: &Plan) -> Vec<String> {
    prepared
        .loaded
        .checked
        .diagnostics
        .iter()
        .filter(|diagnostic| diagnostic.severity == Severity::Warning)
        .map(|diagnostic| format!("{} [{}]", diagnostic.message, diagnostic.code))
        .chain(plan.warnings.iter().cloned())
        .collect()
}

/// Policy on what apply would leave behind (the desired values over the deployment's files)
/// breaks a rule: `findings` holds every finding, `errors` of them errors.
#[derive(Debug, thiserror::Error)]
#[error(
    "the deployment would break {errors} polic{} once this plan is applied; nothing was \
     changed (values in the deployment's files that this file does not manage count too)",
    if *errors == 1 { "y" } else { "ies" }
)]
pub struct PolicyBroken {
    pub findings: Vec<Diagnostic>,
    pub errors: usize,
}

/// Checks policy on what apply would leave behind. `Ok` holds the warning-level findings,
/// when there is no error-level one; an error-level finding stops `plan` and `apply`.
pub fn check_effective_policy(
    prepared: &Prepared,
    plan: &Plan,
) -> Result<Vec<Diagnostic>, PolicyBroken> {
    let findings = crate::effective::findings(prepared, plan);
    let errors = findings
        .iter()
        .filter(|diagnostic| diagnostic.is_error())
        .count();
    if errors > 0 {
        return Err(PolicyBroken { findings, errors });
    }
    Ok(findings
        .into_iter()
        .filter(|diagnostic| diagnostic.severity == Severity::Warning)
        .collect())
}

/// A unified diff of each file the plan changes, secrets masked.
pub fn file_diffs(prepared: &Prepared, plan: &Plan) -> String {
    crate::preview::file_diffs(
        plan,
        &prepared.loaded.desired,
        &prepared.files,
        &prepared.loaded.state.salt,
    )
}

/// Why a plan file was not written.
#[derive(Debug, thiserror::Error)]
pub enum WritePlanError {
    #[error("cannot create {} for the plan file: {source}", directory.display())]
    CreateDirectory {
        directory: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] FileError),
}

/// Writes the plan file atomically, creating the directories it goes in (and removing them
/// again when the write fails, so a failed `plan --out` leaves nothing behind). The plan
/// records its desired-state file relative to the plan file's own directory, which is where
/// `apply PLAN` looks first: the plan then finds its YAML from any working directory, wherever
/// `--out` put it.
pub fn write_plan(out: &Path, plan: &Plan) -> Result<(), WritePlanError> {
    let directory = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let created =
        create_directories(&directory).map_err(|source| WritePlanError::CreateDirectory {
            directory: directory.clone(),
            source,
        })?;
    let mut saved = plan.clone();
    if let Some(recorded) = relative_from(&directory, Path::new(&plan.file)) {
        saved.file = recorded;
    }
    crate::providers::files::write_atomic(out, render::json(&saved).as_bytes(), 0o644, None)
        .map_err(|error| {
            for directory in created.iter().rev() {
                let _ = std::fs::remove_dir(directory);
            }
            WritePlanError::Write(error)
        })
}

/// Creates `directory` and its missing parents, returning the ones it created, outermost first.
fn create_directories(directory: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut next = Some(directory);
    while let Some(path) = next {
        if path.as_os_str().is_empty() || path.exists() {
            break;
        }
        missing.push(path.to_path_buf());
        next = path.parent();
    }
    missing.reverse();
    for (index, path) in missing.iter().enumerate() {
        if let Err(error) = std::fs::create_dir(path)
            && error.kind() != std::io::ErrorKind::AlreadyExists
        {
            for made in missing[..index].iter().rev() {
                let _ = std::fs::remove_dir(made);
            }
            return Err(error);
        }
    }
    Ok(missing)
}

/// `file` as seen from `directory` (`../prod.yaml`), both resolved through the file system;
/// `None` when either cannot be resolved.
fn relative_from(directory: &Path, file: &Path) -> Option<String> {
    use std::path::Component;
    let directory = std::fs::canonicalize(directory).ok()?;
    let file = std::fs::canonicalize(file).ok()?;
    let from: Vec<Component<'_>> = directory.components().collect();
    let to: Vec<Component<'_>> = file.components().collect();
    let common = from
        .iter()
        .zip(&to)
        .take_while(|(left, right)| left == right)
        .count();
    let mut relative = PathBuf::new();
    for _ in common..from.len() {
        relative.push("..");
    }
    for component in &to[common..] {
        relative.push(component.as_os_str());
    }
    Some(relative.display().to_string())
}
