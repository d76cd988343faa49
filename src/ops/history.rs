//! `history`: the applies the journal holds, newest first, of every environment or of one,
//! read from the state store without writing to it. `cli::history` prints them as a table or
//! as JSON.

use std::path::Path;

use crate::pipeline::state_location;
use crate::settings::Settings;
use crate::state::{ApplyRecord, EnvironmentKey, StateError, StateStore, open_read_only};

/// The applies `history` lists, and the store they were read from.
pub struct History {
    /// The state store's location, as the desired-state file and the settings give it.
    pub location: String,
    pub records: Vec<ApplyRecord>,
}

/// The last `limit` applies in the state of `file` (of `environment` alone, when given).
pub async fn history(
    file: &Path,
    settings: &Settings,
    environment: Option<&EnvironmentKey>,
    limit: u32,
) -> Result<History, StateError> {
    let location = state_location(file, settings);
    let store = open_read_only(&location).await?;
    let records = store.applies(environment, limit).await;
    store.close().await;
    Ok(History {
        location,
        records: records?,
    })
}
