//! Apply: execute a plan's steps in order under the environment's lock, journaling each one
//! before and after it acts; on a failed step or health gate undo the completed steps in
//! reverse from their checkpoints, restart again and re-check health; after a crash, finish
//! (`resume`) or undo (`rollback --unfinished`) the interrupted apply.
//!
//! Flow of one step: capture the before-image → journal `started` (with before and after
//! hashes) → act (atomic: rename for files, one request for the API) → journal `done`. A step
//! whose after-state is already there is journaled `skipped`. Every step is idempotent.

pub mod executor;
pub mod recover;
pub mod undo;

pub use executor::{ApplyContext, ApplyError, ApplyOutcome, Reporter, StepReport};

/// A new apply id: sortable by time, unique enough for one environment. A test build may
/// inject it (`TLDW_OPS_APPLY_ID`) so outputs that show it are the same on every run.
pub fn new_apply_id(now: jiff::Timestamp) -> String {
    if let Some(id) = crate::settings::injected_apply_id() {
        return id;
    }
    let mut random = [0_u8; 3];
    getrandom::fill(&mut random).expect("the operating system random source is available");
    let stamp = now.strftime("%Y%m%dT%H%M%SZ").to_string();
    format!("{stamp}-{}", crate::secrets::hex(&random))
}
