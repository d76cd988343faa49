//! The promotion gate before an apply: read the `from` environment's journal, judge it with
//! [`crate::promotion::evaluate`], and decide whether the apply goes ahead, goes ahead with an
//! override recorded, or is refused with a diagnostic at the file's `promotion:`. `cli::apply`
//! calls [`enforce`] before it asks for confirmation or takes the lock, and prints the verdict.

use jiff::Timestamp;

use crate::pipeline::Loaded;
use crate::promotion::{Gate, Verdict, evaluate};
use crate::spec::Diagnostic;
use crate::spec::semantic::locate_key;
use crate::state::{EnvironmentKey, StateError, StateStore, Store};

/// The rule id promotion refusals carry, as policy rules do.
pub const RULE: &str = "policy.promotion";

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

/// How the gate let an apply through.
pub enum Admission {
    /// The environment has no gate; `override_ignored` when an override reason was given
    /// anyway.
    Ungated { override_ignored: bool },
    /// The gate passes, for the reason `explanation` gives; `override_unneeded` when an
    /// override reason was given anyway (it is not recorded).
    Passes {
        explanation: String,
        override_unneeded: bool,
    },
    /// The gate refused, for the reason `refusal` gives, and the override `reason` overrode
    /// it: the reason is recorded with the apply.
    Overridden { refusal: String, reason: String },
}

impl Admission {
    /// The override reason to record with the apply: only when the gate refused and an
    /// override overrode it.
    pub fn override_reason(&self) -> Option<String> {
        match self {
            Admission::Overridden { reason, .. } => Some(reason.clone()),
            Admission::Ungated { .. } | Admission::Passes { .. } => None,
        }
    }
}

/// Why the gate stopped an apply.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    State(#[from] StateError),
    /// The gate refused and nothing overrode it; `diagnostic` says why, at `promotion:`.
    #[error("the promotion gate refused this apply; nothing was applied to {key}")]
    Refused {
        diagnostic: Box<Diagnostic>,
        key: EnvironmentKey,
    },
}

/// Checks the gate before an apply of layers with `shared_hash`, overridden by
/// `override_reason` (`--override-promotion`) when it refuses.
pub async fn enforce(
    loaded: &Loaded,
    shared_hash: Option<&str>,
    override_reason: Option<&str>,
    now: Timestamp,
) -> Result<Admission, GateError> {
    let Some(gate) = gate_of(loaded) else {
        return Ok(Admission::Ungated {
            override_ignored: override_reason.is_some(),
        });
    };
    let verdict = judge(&loaded.store, &gate, shared_hash, now).await?;
    let to = &loaded.key.environment;
    match (verdict, override_reason) {
        (Verdict::Passes(evidence), reason) => Ok(Admission::Passes {
            explanation: evidence.explain(&gate),
            override_unneeded: reason.is_some(),
        }),
        (Verdict::Refused(refusal), Some(reason)) => Ok(Admission::Overridden {
            refusal: refusal.explain(to, &gate, shared_hash),
            reason: reason.to_string(),
        }),
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
            Err(GateError::Refused {
                diagnostic: Box::new(diagnostic),
                key: loaded.key.clone(),
            })
        }
    }
}
