//! The plan: a pure function of (desired, observed, last applied, clock) that yields the changes
//! and the ordered steps that make them, and renderers for people (text, Markdown) and machines
//! (JSON, the saved plan file). No I/O, no clock, no randomness inside.
//!
//! A plan never holds a secret value: sensitive before/after values are salted fingerprints,
//! and generated secrets are generated during apply, not here.

pub mod adopt;
pub mod backup_policy;
pub mod backups;
pub mod diff;
pub mod kind;
pub mod render;
pub mod service;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::Address;

pub use diff::{PlanInput, plan};
pub use kind::{CompileError, Kind, LikelyCause, Registry, compile};

/// The version of the plan file format.
pub const FORMAT_VERSION: u32 = 1;

/// The fingerprint recorded for an address that does not exist.
pub const ABSENT: &str = "absent";

/// A complete, immutable plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[must_use]
pub struct Plan {
    pub format_version: u32,
    pub tool_version: String,
    pub environment: String,
    pub deployment: String,
    /// The desired-state file, as given on the command line.
    pub file: String,
    /// Hash of the resolved desired state; apply refuses the plan when the YAML now resolves to
    /// another.
    pub desired_hash: String,
    /// Hash of the layers this environment extends, for promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_hash: Option<String>,
    /// Git commit of the desired-state file, when it is in a checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    /// Identifies the state store (a hash of its salt): fingerprints only compare within one.
    pub state_id: String,
    pub created_at: String,
    pub changes: Vec<Change>,
    pub steps: Vec<Step>,
    /// Address -> fingerprint of the observed value the plan was computed from.
    pub fingerprints: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The hash of the plan file content, recorded with the apply that executes it.
    pub fn hash(&self) -> String {
        crate::secrets::sha256_hex(
            serde_json::to_string(self)
                .expect("plans serialise")
                .as_bytes(),
        )
    }

    pub fn count(&self, action: Action) -> usize {
        self.changes
            .iter()
            .filter(|change| change.action == action)
            .count()
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Rotate,
    Delete,
}

impl Action {
    pub fn symbol(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Rotate => '↻',
            Action::Delete => '-',
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Rotate => "rotate",
            Action::Delete => "delete",
        }
    }
}

/// Where a change is declared in the YAML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SourceRef {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

/// One change to one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Change {
    pub address: Address,
    pub action: Action,
    pub reason: String,
    pub sensitive: bool,
    /// The observed value differs from what tldw-ops last applied: this change reverts an edit
    /// made outside tldw-ops.
    pub drift: bool,
    /// The value now (a fingerprint when sensitive); absent for a create.
    pub before: Option<String>,
    /// The value after (a fingerprint when sensitive, or `(generated at apply)`); absent for a
    /// delete.
    pub after: Option<String>,
    pub source: Option<SourceRef>,
}

/// What a step does.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    EnsureEnvFile,
    EnsureConfigFile,
    EnsureRetention,
    EnsureQuotas,
    CreateBackup,
    Restart,
    HealthGate,
    PruneBackups,
    /// Stop tldw_server (a restore).
    StopService,
    /// Put a backup set back (a restore).
    RestoreBackup,
    /// Start tldw_server again (a restore).
    StartService,
    /// Requests that prove the server works (`target.service.smoke`).
    SmokeGate,
    /// Check a bare-metal release out and install it (`release.git`).
    SwitchRelease,
}

impl StepKind {
    /// Every kind of step, for lookups by name.
    pub const ALL: [StepKind; 13] = [
        StepKind::EnsureEnvFile,
        StepKind::EnsureConfigFile,
        StepKind::EnsureRetention,
        StepKind::EnsureQuotas,
        StepKind::CreateBackup,
        StepKind::Restart,
        StepKind::HealthGate,
        StepKind::PruneBackups,
        StepKind::StopService,
        StepKind::RestoreBackup,
        StepKind::StartService,
        StepKind::SmokeGate,
        StepKind::SwitchRelease,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::EnsureEnvFile => "ensure_env_file",
            StepKind::EnsureConfigFile => "ensure_config_file",
            StepKind::EnsureRetention => "ensure_retention",
            StepKind::EnsureQuotas => "ensure_quotas",
            StepKind::CreateBackup => "create_backup",
            StepKind::Restart => "restart",
            StepKind::HealthGate => "health_gate",
            StepKind::PruneBackups => "prune_backups",
            StepKind::StopService => "stop_service",
            StepKind::RestoreBackup => "restore_backup",
            StepKind::StartService => "start_service",
            StepKind::SmokeGate => "smoke_gate",
            StepKind::SwitchRelease => "switch_release",
        }
    }
}

/// One step of the plan, in order. Each is idempotent and has an undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    pub index: u32,
    pub kind: StepKind,
    /// A file path, a URL or a command, for people.
    pub target: String,
    pub addresses: Vec<String>,
    pub operations: Vec<Operation>,
}

impl Step {
    /// The step's `.env` or `config.txt` entry edits, in order.
    ///
    /// The executor, the file preview and the undo of an earlier apply all walk a file step's
    /// `Set` and `Remove` operations; this is the one place that picks them out, so the three
    /// cannot disagree about which operations edit an entry. The addresses were checked when the
    /// plan was built or read, so no edit can fail.
    pub fn entry_edits(&self) -> impl Iterator<Item = EntryEdit<'_>> {
        self.operations
            .iter()
            .filter_map(|operation| match operation {
                Operation::Set {
                    address,
                    value,
                    secret,
                } => Some(EntryEdit::Set {
                    address: address.clone(),
                    value: value.as_deref(),
                    secret: secret.as_ref(),
                }),
                Operation::Remove { address } => Some(EntryEdit::Remove {
                    address: address.clone(),
                }),
                _ => None,
            })
    }
}

/// A `Set` or `Remove` operation of a file step (see [`Step::entry_edits`]).
#[derive(Debug, Clone)]
pub enum EntryEdit<'a> {
    Set {
        address: Address,
        value: Option<&'a str>,
        secret: Option<&'a SecretOperation>,
    },
    Remove {
        address: Address,
    },
}

/// One edit inside a step. Values of sensitive addresses are never here: the executor reads them
/// from the desired state (whose hash the plan pins) or generates them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    /// Set a `.env` or `config.txt` entry.
    Set {
        address: Address,
        /// The value, when it is not sensitive.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
        /// How a sensitive value is obtained: `desired` (from the YAML or its source) or
        /// `generate` (made during apply).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<SecretOperation>,
    },
    /// Remove a `.env` or `config.txt` entry that tldw-ops managed and the YAML dropped.
    Remove { address: Address },
    /// Set a user's storage quota through the admin API.
    SetQuota {
        address: Address,
        username: String,
        quota_mb: Option<u64>,
    },
    /// Set a retention policy through the admin API (preview, then signed PUT).
    SetRetention {
        address: Address,
        policy_key: String,
        current_days: Option<u64>,
        days: u64,
    },
    /// Run a command.
    Run { argv: Vec<String> },
    /// Check an HTTP endpoint.
    Check {
        url: String,
        expect_status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_json: Option<serde_json::Map<String, serde_json::Value>>,
    },
    /// A smoke gate's request, with what its answer must hold.
    Smoke(service::SmokeCheck),
    /// Put a whole file back as a checkpoint of an earlier apply holds it (rollback).
    RestoreFile {
        checkpoint: String,
        checkpoint_hash: String,
    },
    /// Create a backup set.
    CreateBackup { set_id: String },
    /// Delete a backup set the keep policy released.
    PruneBackup { set_id: String, reason: String },
    /// Restore a backup set: all of it, or one part (`authnz`, `user_databases`, `config`).
    /// Undone by restoring `safety_set_id`, the set the same plan took first.
    RestoreBackup {
        set_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        only: Option<crate::spec::types::BackupItem>,
        safety_set_id: String,
    },
    /// Check `reference` out (detached) in `target.root`, then run `install` there.
    Checkout {
        address: Address,
        reference: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        install: Option<Vec<String>>,
    },
}

impl Operation {
    /// The managed address the operation changes; `None` for the service, gate and backup
    /// operations, which change no managed value.
    pub fn address(&self) -> Option<&Address> {
        match self {
            Operation::Set { address, .. }
            | Operation::Remove { address }
            | Operation::SetQuota { address, .. }
            | Operation::SetRetention { address, .. }
            | Operation::Checkout { address, .. } => Some(address),
            Operation::Run { .. }
            | Operation::RestoreFile { .. }
            | Operation::Check { .. }
            | Operation::Smoke(_)
            | Operation::CreateBackup { .. }
            | Operation::PruneBackup { .. }
            | Operation::RestoreBackup { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub struct SecretOperation {
    /// `desired` or `generate`.
    pub from: SecretFrom,
    /// Move the old value to this key in the same write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_previous_as: Option<String>,
    /// Fingerprint the new value must have (sourced secrets); checked before writing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretFrom {
    Desired,
    Generate,
}

/// The plan file's JSON Schema, as committed in `schemas/plan.schema.json`.
pub fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&schemars::schema_for!(Plan))
        .expect("the plan schema serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change_json(address: &str) -> String {
        format!(
            r#"{{"address":"{address}","action":"update","reason":"value differs","sensitive":false,"drift":false,"before":"a","after":"b","source":null}}"#
        )
    }

    #[test]
    fn a_change_keeps_its_address_as_the_bare_string_and_refuses_a_bad_one() {
        let text = change_json("env.LOG_LEVEL");
        let change: Change = serde_json::from_str(&text).unwrap();
        assert_eq!(change.address, Address::env("LOG_LEVEL"));
        assert_eq!(serde_json::to_string(&change).unwrap(), text);
        for bad in ["bogus", "env.", "config.nokey"] {
            assert!(
                serde_json::from_str::<Change>(&change_json(bad)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn operations_keep_their_addresses_as_bare_strings() {
        let text =
            r#"{"op":"set_quota","address":"quota.user.alice","username":"alice","quota_mb":5}"#;
        let operation: Operation = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&operation).unwrap(), text);
        assert!(
            serde_json::from_str::<Operation>(r#"{"op":"remove","address":"nothing.x"}"#).is_err()
        );
    }

    /// `StepKind::ALL` serves lookups of journaled rows by name (resume, rollback, `show`), so
    /// a kind missing from it would be unknown there: the schema, derived from the enum itself,
    /// lists every variant.
    #[test]
    fn step_kind_all_lists_every_variant() {
        let schema = serde_json::to_value(schemars::schema_for!(StepKind)).unwrap();
        // Variants with doc comments are `oneOf` entries of their own (`const` or `enum`).
        let mut declared = Vec::new();
        let mut collect = |value: &serde_json::Value| {
            for values in [&value["enum"], &value["const"]] {
                match values {
                    serde_json::Value::Array(items) => declared.extend(
                        items
                            .iter()
                            .filter_map(|item| item.as_str().map(str::to_string)),
                    ),
                    serde_json::Value::String(text) => declared.push(text.clone()),
                    _ => {}
                }
            }
        };
        collect(&schema);
        for entry in schema["oneOf"].as_array().into_iter().flatten() {
            collect(entry);
        }
        let mut listed: Vec<String> = StepKind::ALL
            .iter()
            .map(|kind| kind.as_str().to_string())
            .collect();
        declared.sort();
        listed.sort();
        assert_eq!(listed, declared);
    }
}
