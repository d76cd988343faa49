//! Undo: journaled steps in reverse, each by the provider of its kind. File steps go back to
//! their checkpoint (or are removed when there was no file) provided the file still holds what
//! the step wrote; a step already back at its before-state counts as undone. Undo is
//! idempotent, so a rollback interrupted in turn can run again.

use super::executor::Reporter;
use crate::deployment::Deployment;
use crate::faults::Faults;
use crate::kinds::{self, UndoContext};
use crate::plan::Plan;
use crate::providers::tldw_api::TldwApi;
use crate::state::{StateStore, StepRecord, StepStatus};

/// What undoing a list of steps achieved.
pub struct UndoOutcome {
    pub undone: Vec<String>,
    pub errors: Vec<String>,
    /// Whether a file tldw_server reads at start was restored (a restart is needed).
    pub undone_files: bool,
}

/// Undoes journaled steps in reverse (see the module documentation).
pub async fn undo_steps<S: StateStore>(
    store: &S,
    plan: &Plan,
    deployment: &Deployment,
    api: Option<&TldwApi>,
    journal: &[StepRecord],
    faults: &Faults,
    reporter: &dyn Reporter,
) -> UndoOutcome {
    let cx = UndoContext {
        plan,
        deployment,
        api,
    };
    let mut outcome = UndoOutcome {
        undone: Vec::new(),
        errors: Vec::new(),
        undone_files: false,
    };
    for row in journal.iter().rev() {
        let Some(step) = plan.steps.iter().find(|step| step.index == row.index) else {
            continue;
        };
        let provider = kinds::provider(step.kind);
        if provider.undoes() == kinds::Undoes::Nothing || row.status == StepStatus::Skipped {
            continue;
        }
        reporter.undo_started(step);
        let mut undo_row = row.clone();
        undo_row.status = StepStatus::UndoStarted;
        let _ = store.write_step(&undo_row).await;
        let result = if faults.fail_undo.contains(&step.index) {
            Err("injected undo failure (TLDW_OPS_FAULT)".to_string())
        } else {
            provider.undo(&cx, step, row).await
        };
        let reported = result.as_ref().map(|_| ()).map_err(Clone::clone);
        reporter.undo_finished(step, &reported);
        // The row keeps the times of the step itself: `show` reports how long the step took,
        // not the time until it was undone (which held every later step and gate).
        match result {
            Ok(undone) => {
                undo_row.status = StepStatus::Undone;
                outcome.undone_files |= undone.restored_files;
                outcome.undone.push(
                    undone
                        .described
                        .unwrap_or_else(|| format!("{} ({})", step.index + 1, step.target)),
                );
            }
            Err(error) => {
                undo_row.status = StepStatus::UndoFailed;
                undo_row.error = Some(error.clone());
                outcome.errors.push(format!(
                    "step {} ({}): {error}",
                    step.index + 1,
                    step.target
                ));
            }
        }
        let _ = store.write_step(&undo_row).await;
    }
    outcome
}

pub fn instructions_after_failed_undo(apply_id: &str, errors: &[String]) -> String {
    format!(
        "Some changes could not be undone automatically:\n  {}\n\
         The journal of apply {apply_id} records every step and its checkpoint.\n\
         To finish by hand: restore each file listed above from its checkpoint \
         (`tldw-ops show {apply_id}` lists the checkpoint paths), restart tldw_server, \
         then run `tldw-ops plan` to confirm the deployment is where you expect.",
        errors.join("\n  ")
    )
}
