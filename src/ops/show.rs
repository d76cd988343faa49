//! `show TARGET`: a plan file saved with `plan --out`, read and checked; or an apply the
//! journal holds, with its steps and the plan it ran. `cli::show` renders either.

use std::path::{Path, PathBuf};

use super::apply::{PlanFileError, SavedPlan, read_saved_plan};
use crate::pipeline::state_location;
use crate::plan::Plan;
use crate::settings::Settings;
use crate::state::{ApplyRecord, StateError, StateStore, StepRecord, open_read_only};

/// Why there is nothing to show.
#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("no apply with id `{id}` in {location}")]
    NoSuchApply { id: String, location: String },
    #[error(transparent)]
    PlanFile(#[from] PlanFileError),
    #[error(
        "{} is neither an apply id nor a plan file (`plan --out PLAN.json`)",
        target.display()
    )]
    NotAPlan { target: PathBuf },
}

/// What `show` found.
pub enum Shown {
    /// A plan file.
    Plan(Box<Plan>),
    /// A journaled apply.
    Apply(Box<Journaled>),
}

/// An apply as the journal holds it.
pub struct Journaled {
    pub record: ApplyRecord,
    pub steps: Vec<StepRecord>,
    /// The plan it ran, when the journal's copy still reads as one.
    pub plan: Option<Plan>,
}

/// Reads `target`: a plan file, or the id of an apply in the state of `file`.
pub async fn show(target: &str, file: &Path, settings: &Settings) -> Result<Shown, ShowError> {
    let path = Path::new(target);
    if !is_plan_file(path) {
        return Ok(Shown::Apply(Box::new(
            journaled(target, file, settings).await?,
        )));
    }
    match read_saved_plan(path) {
        SavedPlan::Plan(plan) => Ok(Shown::Plan(plan)),
        SavedPlan::Invalid(error) => Err(error.into()),
        SavedPlan::NotAPlan => Err(ShowError::NotAPlan {
            target: path.to_path_buf(),
        }),
    }
}

/// Apply ids (`20261126T031634Z-04fd3b`) have no dots or slashes; a plan file has `.json`, a
/// directory part, or exists.
fn is_plan_file(target: &Path) -> bool {
    target
        .extension()
        .is_some_and(|extension| extension == "json")
        || target.components().count() > 1
        || target.is_file()
}

/// The apply `apply_id` in the state of `file`, read without writing to the store.
async fn journaled(
    apply_id: &str,
    file: &Path,
    settings: &Settings,
) -> Result<Journaled, ShowError> {
    let location = state_location(file, settings);
    let store = open_read_only(&location).await?;
    let Some(record) = store.apply_record(apply_id).await? else {
        return Err(ShowError::NoSuchApply {
            id: apply_id.to_string(),
            location,
        });
    };
    let steps = store.steps(apply_id).await;
    store.close().await;
    let steps = steps?;
    let plan = serde_json::from_str(&record.plan_json).ok();
    Ok(Journaled {
        record,
        steps,
        plan,
    })
}
