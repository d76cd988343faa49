//! Recovery after a crash: an apply whose journal says `running` but whose process is gone.
//! `resume` finishes it; `rollback_unfinished` undoes it. For the step that was in flight, the
//! choice between done and not done is made by comparing the file as it is now with the
//! before- and after-hashes the journal recorded before the step acted.

use jiff::Timestamp;

use super::executor::{ApplyContext, ApplyError, ApplyOutcome, Reporter};
use super::undo::{instructions_after_failed_undo, undo_steps};
use crate::deployment::Deployment;
use crate::faults::Faults;
use crate::kinds::service::restart_and_check;
use crate::kinds::{self, Interrupted};
use crate::plan::Plan;
use crate::state::{
    ApplyRecord, EnvironmentKey, LockHolder, Outcome, StateError, StateStore, StepRecord,
    StepStatus,
};

/// Whether a process with this pid runs on this host.
pub fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Takes the lock for an unfinished apply, taking it over from its dead holder. A lock held by
/// a live process, or by a process on another host, is refused.
pub async fn take_over_lock<S: StateStore>(
    store: &S,
    key: &EnvironmentKey,
    holder: &LockHolder,
    this_host: &str,
) -> Result<(), StateError> {
    match store.lock(key, holder).await {
        Ok(()) => Ok(()),
        Err(StateError::Locked {
            holder: current,
            environment,
        }) => {
            let dead_here = current.host == this_host && !process_alive(current.pid);
            if current.apply_id == holder.apply_id && dead_here {
                store.force_unlock(key).await?;
                store.lock(key, holder).await
            } else {
                Err(StateError::Locked {
                    environment,
                    holder: current,
                })
            }
        }
        Err(other) => Err(other),
    }
}

/// The plan an unfinished apply was executing.
pub fn plan_of(record: &ApplyRecord) -> Result<Plan, String> {
    serde_json::from_str(&record.plan_json).map_err(|error| {
        format!(
            "apply {} has an unreadable plan in its journal: {error}",
            record.id
        )
    })
}

/// Where a resumed apply starts: the journal rows of completed steps, and the first step to
/// run. Errors when a step's file holds neither its before- nor its after-state.
pub fn resume_point(
    plan: &Plan,
    rows: &[StepRecord],
    deployment: &Deployment,
) -> Result<(usize, Vec<StepRecord>), String> {
    let mut journal = Vec::new();
    for (position, step) in plan.steps.iter().enumerate() {
        let Some(row) = rows.iter().find(|row| row.index == step.index) else {
            return Ok((position, journal));
        };
        match row.status {
            StepStatus::Done | StepStatus::Skipped => journal.push(row.clone()),
            StepStatus::Started => match kinds::provider(step.kind).interrupted(row, deployment)? {
                Interrupted::Done => {
                    let mut done = row.clone();
                    done.status = StepStatus::Done;
                    journal.push(done);
                }
                Interrupted::NotDone => return Ok((position, journal)),
            },
            StepStatus::Failed
            | StepStatus::UndoStarted
            | StepStatus::Undone
            | StepStatus::UndoFailed => {
                return Err(format!(
                    "step {} was failing or being undone when the apply stopped; it cannot be resumed, only rolled back (`tldw-ops rollback --unfinished`)",
                    step.index + 1
                ));
            }
        }
    }
    Ok((plan.steps.len(), journal))
}

/// Finishes an unfinished apply from where it stopped. The caller holds the lock and passes a
/// context whose plan is the journaled plan.
pub async fn resume<S: StateStore>(
    context: &ApplyContext<'_, S>,
    rows: &[StepRecord],
) -> Result<Result<ApplyOutcome, String>, ApplyError> {
    match resume_point(context.plan, rows, context.deployment) {
        Ok((first, journal)) => {
            for row in &journal {
                context.store.write_step(row).await?;
            }
            Ok(Ok(context.run(first, journal).await?))
        }
        Err(problem) => Ok(Err(problem)),
    }
}

/// Undoes an unfinished apply: every step that acted goes back to its checkpoint, then the
/// server is restarted and checked.
#[allow(clippy::too_many_arguments)]
pub async fn rollback_unfinished<S: StateStore>(
    store: &S,
    key: &EnvironmentKey,
    record: &ApplyRecord,
    plan: &Plan,
    deployment: &Deployment,
    api: Option<&crate::providers::tldw_api::TldwApi>,
    faults: &Faults,
    reporter: &dyn Reporter,
    clock: &(dyn Fn() -> Timestamp + Sync),
) -> Result<ApplyOutcome, ApplyError> {
    let rows = store.steps(&record.id).await?;
    let acted: Vec<StepRecord> = rows
        .into_iter()
        .filter(|row| {
            matches!(
                row.status,
                StepStatus::Done
                    | StepStatus::Started
                    | StepStatus::Failed
                    | StepStatus::UndoStarted
                    | StepStatus::UndoFailed
            ) && (row.after_hash.is_some()
                || crate::kinds::provider_of_row(&row.kind)
                    .is_some_and(|provider| provider.undoes() == crate::kinds::Undoes::Started))
        })
        .collect();
    let outcome = undo_steps(store, plan, deployment, api, &acted, faults, reporter).await;
    let final_health = if outcome.undone_files
        && (deployment.restart.is_some()
            || !deployment.health.is_empty()
            || !deployment.smoke.is_empty())
    {
        Some(restart_and_check(deployment, api, true).await)
    } else {
        None
    };
    if outcome.errors.is_empty() {
        store
            .finish_apply(
                &record.id,
                Outcome::Abandoned,
                clock(),
                final_health.as_ref().map(Result::is_ok),
                Some(&format!(
                    "unfinished apply rolled back; undone: {}",
                    if outcome.undone.is_empty() {
                        "nothing".to_string()
                    } else {
                        outcome.undone.join(", ")
                    }
                )),
                None,
            )
            .await?;
        store.unlock(key, &record.id).await?;
        Ok(ApplyOutcome::RolledBack {
            apply_id: record.id.clone(),
            failed_step: "the interrupted apply".to_string(),
            error: "rolled back on request".to_string(),
            undone: outcome.undone,
            final_health,
            stale: false,
        })
    } else {
        store
            .finish_apply(
                &record.id,
                Outcome::Failed,
                clock(),
                final_health.as_ref().map(Result::is_ok),
                Some(&format!(
                    "rollback of the unfinished apply failed: {}",
                    outcome.errors.join("; ")
                )),
                None,
            )
            .await?;
        store.unlock(key, &record.id).await?;
        Ok(ApplyOutcome::NeedsAttention {
            apply_id: record.id.clone(),
            failed_step: "the interrupted apply".to_string(),
            error: "rollback failed".to_string(),
            instructions: instructions_after_failed_undo(&record.id, &outcome.errors),
            undo_errors: outcome.errors,
        })
    }
}
