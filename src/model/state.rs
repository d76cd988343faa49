//! What the state store knows of one environment, as the planner reads it: the fingerprints
//! last applied and the secrets' ages. Plain data, so the pure core plans from it without
//! depending on the store that keeps it (`crate::state` reads and writes it).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Per-environment state read before planning.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvironmentState {
    /// Random salt for fingerprints (32 bytes): one per store, the same for every environment.
    pub salt: Vec<u8>,
    /// Address -> what was last applied there.
    pub managed: BTreeMap<String, ManagedRecord>,
    /// Secret name -> metadata.
    pub secrets: BTreeMap<String, SecretMeta>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedRecord {
    /// Fingerprint of the value last applied.
    pub value_hash: String,
    pub sensitive: bool,
    /// The apply that set it.
    pub apply_id: String,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretMeta {
    pub fingerprint: String,
    /// When the current value was set (or adopted, when tldw-ops found it already there).
    pub set_at: Timestamp,
    pub rotated_at: Option<Timestamp>,
    /// True when tldw-ops did not generate the value itself and only started counting its age.
    pub adopted: bool,
    /// `generate`, `from_env` or `from_file`.
    pub source: String,
}
