//! The promotion gate at the command line: read the `from` environment's journal, judge it with
//! [`crate::promotion::evaluate`], and print the verdict. `apply` calls [`enforce`] before it
//! asks for confirmation or takes the lock; `promote` calls [`judge`] to explain.

use jiff::Timestamp;

use super::{ExitStatus, Printer};
use crate::pipeline::Loaded;
use crate::promotion::{Gate, Verdict, evaluate};
use crate::spec::Diagnostic;
use crate::spec::diagnostic::render_text;
use crate::spec::semantic::locate_key;
use crate::state::{EnvironmentKey, StateError, StateStore, Store};

/// The rule id promotion refusals carry, as policy rules do.
pub const RULE: &str = "policy.promotion";

/// Parses `--override-promotion`: a reason someone can read in the history later.
pub fn reason(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.chars().count() < 3 {
        return Err("give a reason; it is recorded with the apply".to_string());
    }
    Ok(text.to_string())
}

/// The gate an environment declares, if any.
pub fn gate_of(loaded: &Loaded) -> Option<Gate> {
    let promotion = loaded.checked.spec.promotion.as_ref()?;
    Some(Gate {
        from: EnvironmentKey {
            deployment: loaded.key.deployment.clone(),
            environment: promotion.from.clone(),
        },
        soak_seconds: promotion.soak.as_seconds(),
    })
}

/// Judges the gate for layers with `shared_hash` against the `from` environment's journal.
pub async fn judge(
    store: &Store,
    gate: &Gate,
    shared_hash: Option<&str>,
    now: Timestamp,
) -> Result<Verdict, StateError> {
    let history = store.applies(Some(&gate.from), u32::MAX).await?;
    Ok(evaluate(shared_hash, gate, &history, now))
}

/// Checks the gate before an apply. `Ok` carries the override reason to record with the apply
/// (only when the gate refused and `--override-promotion` overrode it); `Err` is the exit
/// status of a refusal (3) or of a state error.
pub async fn enforce(
    loaded: &Loaded,
    shared_hash: Option<&str>,
    override_reason: Option<&str>,
    now: Timestamp,
    printer: &Printer,
) -> Result<Option<String>, ExitStatus> {
    let Some(gate) = gate_of(loaded) else {
        if override_reason.is_some() {
            printer.warning(&format!(
                "environment {} has no promotion gate; --override-promotion is ignored",
                loaded.key
            ));
        }
        return Ok(None);
    };
    let verdict = match judge(&loaded.store, &gate, shared_hash, now).await {
        Ok(verdict) => verdict,
        Err(error) => return Err(super::common::report_state_error(error, printer)),
    };
    let to = &loaded.key.environment;
    match (verdict, override_reason) {
        (Verdict::Passes(evidence), reason) => {
            printer.note(&format!("promotion: {}.", evidence.explain(&gate)));
            if reason.is_some() {
                printer.note(
                    "the promotion gate passes; --override-promotion was not needed and is not recorded",
                );
            }
            Ok(None)
        }
        (Verdict::Refused(refusal), Some(reason)) => {
            printer.warning(&format!(
                "promotion gate overridden: {}.\n  reason (recorded with the apply): {reason}",
                refusal.explain(to, &gate, shared_hash)
            ));
            Ok(Some(reason.to_string()))
        }
        (Verdict::Refused(refusal), None) => {
            let diagnostic = Diagnostic::error(
                RULE,
                format!(
                    "{to} takes shared layers only after {} ran them healthy for {}: {}",
                    gate.from.environment,
                    crate::promotion::human(gate.soak_seconds),
                    refusal.explain(to, &gate, shared_hash)
                ),
            )
            .at(locate_key(&loaded.checked.loaded.root, "/promotion"))
            .path("/promotion")
            .hint(format!(
                "see `tldw-ops promote --from {} --to {to}`; to apply anyway, pass \
                 --override-promotion \"<reason>\" (recorded with the apply)",
                gate.from.environment
            ));
            printer.diagnostics(&render_text(&[diagnostic], loaded.checked.sources()));
            printer.error(&format!(
                "the promotion gate refused this apply; nothing was applied to {}",
                loaded.key
            ));
            Err(ExitStatus::Invalid)
        }
    }
}
