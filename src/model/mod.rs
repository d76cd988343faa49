//! The model between the spec and the plan: addresses, resources, desired and observed state,
//! and `compile`, which turns a checked spec into a flat, ordered set of resources. Pure: no I/O,
//! no clock, no randomness.

pub mod address;
pub mod shadow;
pub mod state;

pub use address::{Address, AddressKind};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::spec::Location;
use crate::spec::types::Generate;

/// Which provider owns an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    EnvFile,
    ConfigFile,
    Api,
    Backups,
    /// The git checkout at `target.root` (a bare-metal release).
    Checkout,
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    FromEnv(String),
    FromFile(String),
    Generate(Generate),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretDesired {
    pub source: SecretSource,
    /// Seconds after which a generated value is replaced.
    pub rotate_after: Option<u64>,
    pub keep_previous_as: Option<String>,
    /// The value read from `from_env`/`from_file`, when it could be read. Never generated here.
    pub resolved: Option<String>,
}

/// What the desired state asks of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Desired {
    /// A `.env` or `config.txt` value, as written.
    Text(String),
    Secret(SecretDesired),
    /// A storage quota in MB; `None` is unlimited.
    Quota(Option<u64>),
    /// A retention override in days.
    Days(u64),
    /// A bare-metal release: the git tag or commit, and the install command run after the
    /// checkout.
    Release {
        reference: String,
        install: Option<Vec<String>>,
    },
}

/// One managed thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub address: Address,
    pub desired: Desired,
    pub sensitive: bool,
    /// Where the YAML declares it.
    pub source: Option<Location>,
}

impl Resource {
    pub fn target(&self) -> Target {
        self.address.kind().target()
    }
}

/// The compiled desired state.
#[derive(Debug, Clone)]
pub struct DesiredState {
    pub environment: String,
    pub deployment: String,
    pub resources: BTreeMap<Address, Resource>,
    /// `.env` addresses whose old value is kept under another key when it changes: the
    /// release image, kept as `TLDW_ROLLBACK_IMAGE`.
    pub keep_previous: BTreeMap<Address, String>,
}

impl DesiredState {
    pub fn get(&self, address: &Address) -> Option<&Resource> {
        self.resources.get(address)
    }
}

/// What observe found: a value for every address that is desired or managed, and notes for
/// the operator (file modes, shadowed settings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub values: BTreeMap<Address, ObservedValue>,
    pub warnings: Vec<String>,
}

impl Observed {
    pub fn get(&self, address: &Address) -> &ObservedValue {
        self.values.get(address).unwrap_or(&ObservedValue::Absent)
    }
}

/// A value as found in the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObservedValue {
    Absent,
    Text(String),
    Quota(Option<u64>),
    Days(u64),
}

impl ObservedValue {
    /// The canonical text used for hashing and display.
    pub fn canonical(&self) -> Option<String> {
        match self {
            ObservedValue::Absent => None,
            ObservedValue::Text(text) => Some(text.clone()),
            ObservedValue::Quota(Some(megabytes)) => Some(megabytes.to_string()),
            ObservedValue::Quota(None) => Some("unlimited".to_string()),
            ObservedValue::Days(days) => Some(days.to_string()),
        }
    }
}

impl Desired {
    /// The canonical text of a non-secret desired value, comparable with
    /// [`ObservedValue::canonical`].
    pub fn canonical(&self) -> Option<String> {
        match self {
            Desired::Text(text) => Some(text.clone()),
            Desired::Quota(Some(megabytes)) => Some(megabytes.to_string()),
            Desired::Quota(None) => Some("unlimited".to_string()),
            Desired::Days(days) => Some(days.to_string()),
            Desired::Release { reference, .. } => Some(reference.clone()),
            Desired::Secret(secret) => secret.resolved.clone(),
        }
    }
}
