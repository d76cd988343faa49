//! The promotion gate at the command line: `--override-promotion`'s reason, and the verdict of
//! `ops::gate::enforce` printed. `apply` calls [`enforce`] before it asks for confirmation or
//! takes the lock.

use jiff::Timestamp;

use super::{ExitStatus, Printer};
use crate::ops::gate::{Admission, GateError};
use crate::pipeline::Loaded;
use crate::spec::diagnostic::render_text;

/// Parses `--override-promotion`: a reason someone can read in the history later.
pub fn reason(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.chars().count() < 3 {
        return Err("give a reason; it is recorded with the apply".to_string());
    }
    Ok(text.to_string())
}

/// Checks the gate before an apply and prints its verdict. `Ok` carries the override reason to
/// record with the apply (only when the gate refused and `--override-promotion` overrode it);
/// `Err` is the exit status of a refusal (3) or of a state error.
pub async fn enforce(
    loaded: &Loaded,
    shared_hash: Option<&str>,
    override_reason: Option<&str>,
    now: Timestamp,
    printer: &Printer,
) -> Result<Option<String>, ExitStatus> {
    let admission = match crate::ops::gate::enforce(loaded, shared_hash, override_reason, now).await
    {
        Ok(admission) => admission,
        Err(GateError::State(error)) => {
            return Err(super::common::report_state_error(error, printer));
        }
        Err(error) => {
            if let GateError::Refused { diagnostic, .. } = &error {
                let diagnostics = std::slice::from_ref(diagnostic.as_ref());
                printer.diagnostics(&render_text(diagnostics, loaded.checked.sources()));
            }
            printer.error(&error.to_string());
            return Err(ExitStatus::Invalid);
        }
    };
    match &admission {
        Admission::Ungated { override_ignored } => {
            if *override_ignored {
                printer.warning(&format!(
                    "environment {} has no promotion gate; --override-promotion is ignored",
                    loaded.key
                ));
            }
        }
        Admission::Passes {
            explanation,
            override_unneeded,
        } => {
            printer.note(&format!("promotion: {explanation}."));
            if *override_unneeded {
                printer.note(
                    "the promotion gate passes; --override-promotion was not needed and is not recorded",
                );
            }
        }
        Admission::Overridden { refusal, reason } => {
            printer.warning(&format!(
                "promotion gate overridden: {refusal}.\n  reason (recorded with the apply): {reason}"
            ));
        }
    }
    Ok(admission.override_reason())
}
