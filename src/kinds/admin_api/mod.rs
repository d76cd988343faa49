//! The admin API kinds: per-user storage quotas (`quota.user.*`) and retention overrides
//! (`retention.*`), acted on through the tldw admin API.
//!
//! Each step records the values it replaces (never secret) as JSON in the journal before it
//! acts, so undo — after a failed step, a failed health gate, or a crash — writes them back.
//! Every request is idempotent (PUT, or a signed PUT after a preview), so repeating a step
//! after a crash is safe.
//!
//! Undo is exact: it reads every value the step may have changed and writes back only those
//! that still hold what the step wrote. A sub-operation that never took effect (its PUT failed,
//! or the value is already back) is not written again, and a value someone else changed since
//! is left alone and reported; only a restore that is attempted and fails is an undo failure.

pub mod kind;
pub mod observe;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    Effects, Provider, RestoreContext, Restoring, StepContext, StepError, StepFuture, UndoContext,
    Undoes, Undone,
};
use crate::faults::Point;
use crate::model::{Address, AddressKind};
use crate::plan::{Operation, Step, StepKind};
use crate::providers::tldw_api::{ApiError, TldwApi};
use crate::secrets::{sha256_hex, value_hash};
use crate::state::{StepRecord, StepStatus};
use kind::default_retention_days;

/// The before-values of an API step, as journaled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeforeValues {
    /// Username -> (user id, quota before).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quotas: BTreeMap<String, (i64, Option<u64>)>,
    /// Policy key -> days before.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retention: BTreeMap<String, u64>,
}

/// The first few failures and how many more, so one broken server does not print thousands of
/// lines.
fn summarize(failures: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = failures
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if failures.len() > SHOWN {
        text.push_str(&format!("; and {} more", failures.len() - SHOWN));
    }
    text
}

/// Why an API step failed. `stale` marks a plan that no longer matches the server (exit 4).
#[derive(Debug)]
pub struct ApiStepError {
    pub message: String,
    pub stale: bool,
}

fn parse_quota(canonical: Option<&String>) -> Option<u64> {
    canonical.and_then(|text| text.parse().ok())
}

/// What a quota or retention step will write and what it replaces.
pub struct Prepared {
    pub before: BeforeValues,
    pub quota_changes: Vec<(String, i64, Option<u64>)>,
    pub retention_changes: Vec<(String, u64, u64)>,
}

impl Prepared {
    pub fn before_hash(&self) -> String {
        sha256_hex(
            serde_json::to_string(&self.before)
                .expect("before-values serialise")
                .as_bytes(),
        )
    }

    pub fn after_hash(&self) -> String {
        let after = (&self.quota_changes, &self.retention_changes);
        sha256_hex(
            serde_json::to_string(&after)
                .expect("after-values serialise")
                .as_bytes(),
        )
    }
}

/// Works out a step's changes and before-values from the values observed at plan time.
pub fn prepare(
    step: &Step,
    observed: &BTreeMap<Address, Option<String>>,
    user_ids: &BTreeMap<String, i64>,
) -> Result<Prepared, ApiStepError> {
    let mut prepared = Prepared {
        before: BeforeValues::default(),
        quota_changes: Vec::new(),
        retention_changes: Vec::new(),
    };
    for operation in &step.operations {
        match operation {
            Operation::SetQuota {
                address,
                username,
                quota_mb,
            } => {
                let id = *user_ids.get(username).ok_or_else(|| ApiStepError {
                    message: format!("user `{username}` was not found on the server"),
                    stale: true,
                })?;
                let before = observed
                    .get(address)
                    .and_then(|value| parse_quota(value.as_ref()));
                prepared
                    .before
                    .quotas
                    .insert(username.clone(), (id, before));
                prepared
                    .quota_changes
                    .push((username.clone(), id, *quota_mb));
            }
            Operation::SetRetention {
                policy_key,
                current_days,
                days,
                ..
            } => {
                let current = current_days.unwrap_or_else(|| default_retention_days(policy_key));
                prepared
                    .before
                    .retention
                    .insert(policy_key.clone(), current);
                prepared
                    .retention_changes
                    .push((policy_key.clone(), current, *days));
            }
            _ => {}
        }
    }
    Ok(prepared)
}

fn describe(error: &ApiError) -> (String, bool) {
    let stale = matches!(error, ApiError::StaleRetention { .. });
    (error.to_string(), stale)
}

/// `unlimited` or the megabytes, as quotas are shown and hashed.
fn quota_text(quota: Option<u64>) -> String {
    quota
        .map(|megabytes| megabytes.to_string())
        .unwrap_or_else(|| "unlimited".to_string())
}

/// Performs the changes. Returns the canonical value now in place for each address changed.
pub async fn perform(
    api: &TldwApi,
    prepared: &Prepared,
) -> Result<Vec<(Address, Option<String>)>, ApiStepError> {
    let mut values = Vec::new();
    if !prepared.quota_changes.is_empty() {
        let results = api.set_quotas(&prepared.quota_changes).await;
        let mut failures = Vec::new();
        let mut stale = false;
        for ((username, _, quota), (_, result)) in prepared.quota_changes.iter().zip(&results) {
            match result {
                Ok(()) => values.push((
                    Address::quota_user(username),
                    Some(
                        quota
                            .map(|megabytes| megabytes.to_string())
                            .unwrap_or_else(|| "unlimited".to_string()),
                    ),
                )),
                Err(error) => {
                    let (message, is_stale) = describe(error);
                    stale |= is_stale;
                    failures.push(format!("{username}: {message}"));
                }
            }
        }
        if !failures.is_empty() {
            let done = results.len() - failures.len();
            return Err(ApiStepError {
                message: format!(
                    "{} of {} quota changes failed ({done} were made and will be undone): {}",
                    failures.len(),
                    results.len(),
                    summarize(&failures)
                ),
                stale,
            });
        }
    }
    for (key, current, days) in &prepared.retention_changes {
        api.set_retention(key, *current, *days)
            .await
            .map_err(|error| {
                let (message, stale) = describe(&error);
                ApiStepError {
                    message: format!("{}: {message}", Address::retention(key)),
                    stale,
                }
            })?;
        values.push((Address::retention(key), Some(days.to_string())));
    }
    Ok(values)
}

/// What one sub-operation of an API step finds at undo time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// The value the step replaced: it never took effect, or is back already.
    Before,
    /// The value the step wrote: to be written back.
    Written,
    /// Something else: changed since by someone else, left alone.
    Other,
}

fn found<T: PartialEq>(current: &T, before: &T, written: Option<&T>) -> Found {
    if current == before {
        Found::Before
    } else if written == Some(current) {
        Found::Written
    } else {
        Found::Other
    }
}

/// Undoes one API step exactly: reads the current value of every address the step journaled,
/// writes back the before-value of those that hold what the step wrote, and leaves the rest.
/// Returns what it did, for the report (`restored 2; 1 unchanged (…); left as changed since this
/// apply: …`). Fails only when the current values cannot be read or a restore that was attempted
/// fails.
pub async fn undo(api: &TldwApi, step: &Step, before_values: &str) -> Result<String, String> {
    let before: BeforeValues = serde_json::from_str(before_values)
        .map_err(|error| format!("the journal's before-values are unreadable: {error}"))?;
    let mut written_quotas = BTreeMap::new();
    let mut written_days = BTreeMap::new();
    for operation in &step.operations {
        match operation {
            Operation::SetQuota {
                username, quota_mb, ..
            } => {
                written_quotas.insert(username.clone(), *quota_mb);
            }
            Operation::SetRetention {
                policy_key, days, ..
            } => {
                written_days.insert(policy_key.clone(), *days);
            }
            _ => {}
        }
    }
    let mut restored = 0;
    let mut untouched = 0;
    let mut left = Vec::new();
    let mut failures = Vec::new();
    if !before.quotas.is_empty() {
        let ids: BTreeMap<String, i64> = before
            .quotas
            .iter()
            .map(|(username, (id, _))| (username.clone(), *id))
            .collect();
        let current = api
            .quotas(&ids)
            .await
            .map_err(|error| format!("cannot read the quotas to undo: {error}"))?;
        let mut restores = Vec::new();
        for (username, (id, quota)) in &before.quotas {
            let Some(now) = current.get(username) else {
                continue;
            };
            let written = written_quotas.get(username);
            match found(now, quota, written) {
                Found::Before => untouched += 1,
                Found::Written => restores.push((username.clone(), *id, *quota)),
                Found::Other => left.push(format!(
                    "{} (now {}; this apply wrote {})",
                    Address::quota_user(username),
                    quota_text(*now),
                    written.map_or_else(|| "nothing".to_string(), |quota| quota_text(*quota))
                )),
            }
        }
        for (username, result) in api.set_quotas(&restores).await {
            match result {
                Ok(()) => restored += 1,
                Err(error) => failures.push(format!("{}: {error}", Address::quota_user(&username))),
            }
        }
    }
    if !before.retention.is_empty() {
        let now = crate::kinds::admin_api::observe::resolve_retention(
            api.retention_policies()
                .await
                .map_err(|error| format!("cannot read the retention policies to undo: {error}"))?,
        );
        for (key, days) in &before.retention {
            // A policy the server does not have holds nothing this step wrote (its preview was
            // refused as `unknown_policy`).
            let Some(current) = now.get(key) else {
                untouched += 1;
                continue;
            };
            let written = written_days.get(key);
            match found(current, days, written) {
                Found::Before => untouched += 1,
                Found::Written => match api.set_retention(key, *current, *days).await {
                    Ok(()) => restored += 1,
                    Err(error) => failures.push(format!("{}: {error}", Address::retention(key))),
                },
                Found::Other => left.push(format!(
                    "{} (now {current} days; this apply wrote {})",
                    Address::retention(key),
                    written.map_or_else(|| "nothing".to_string(), |days| format!("{days} days"))
                )),
            }
        }
    }
    if !failures.is_empty() {
        return Err(summarize(&failures));
    }
    let mut parts = vec![format!("restored {restored}")];
    if untouched > 0 {
        parts.push(format!(
            "{untouched} unchanged (never took effect, or back already)"
        ));
    }
    if !left.is_empty() {
        parts.push(format!(
            "left as changed since this apply: {}",
            summarize(&left)
        ));
    }
    Ok(parts.join("; "))
}

/// For the precondition check under the lock: the current hash of every API address in
/// `fingerprints`, read from the server.
pub async fn current_hashes(
    api: &TldwApi,
    fingerprints: &BTreeMap<String, String>,
    user_ids: &BTreeMap<String, i64>,
    salt: &[u8],
) -> Result<BTreeMap<String, String>, String> {
    let mut users = BTreeMap::new();
    let mut wants_retention = false;
    for address in fingerprints.keys() {
        let Ok(parsed) = Address::parse(address) else {
            continue;
        };
        match parsed.kind() {
            AddressKind::QuotaUser => {
                if let Some(id) = user_ids.get(parsed.name()) {
                    users.insert(parsed.name().to_string(), *id);
                }
            }
            AddressKind::Retention => wants_retention = true,
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    if !users.is_empty() {
        let quotas = api
            .quotas(&users)
            .await
            .map_err(|error| error.to_string())?;
        for (username, quota) in quotas {
            let canonical = quota_text(quota);
            out.insert(
                Address::quota_user(&username).to_string(),
                value_hash(salt, &canonical),
            );
        }
    }
    if wants_retention {
        let policies = crate::kinds::admin_api::observe::resolve_retention(
            api.retention_policies()
                .await
                .map_err(|error| error.to_string())?,
        );
        for (key, days) in policies {
            out.insert(
                Address::retention(&key).to_string(),
                value_hash(salt, &days.to_string()),
            );
        }
    }
    Ok(out)
}

pub struct AdminApiProvider;

impl From<ApiStepError> for StepError {
    fn from(error: ApiStepError) -> StepError {
        if error.stale {
            StepError::Stale(error.message)
        } else {
            StepError::Message(error.message)
        }
    }
}

async fn ensure(
    cx: &StepContext<'_>,
    step: &Step,
    effects: &mut Effects,
) -> Result<StepRecord, StepError> {
    let api = cx.api.ok_or_else(|| {
        StepError::Message(
            "the plan changes the admin API but `target.api` is not configured".to_string(),
        )
    })?;
    let prepared = prepare(step, cx.observed, cx.user_ids)?;
    let mut record = cx.journal.row(step, StepStatus::Started);
    record.before_hash = Some(prepared.before_hash());
    record.after_hash = Some(prepared.after_hash());
    record.before_values =
        Some(serde_json::to_string(&prepared.before).expect("before-values serialise"));
    cx.write(&record).await?;
    cx.pause(step, Point::Before).await;
    let result = perform(api, &prepared).await;
    cx.pause(step, Point::After).await;
    match result {
        Ok(values) => {
            record.status = StepStatus::Done;
            record.finished_at = Some(cx.now());
            cx.write(&record).await?;
            effects.values.extend(values);
            Ok(record)
        }
        Err(error) => {
            record.status = StepStatus::Failed;
            record.error = Some(error.message.clone());
            record.finished_at = Some(cx.now());
            cx.write(&record).await?;
            Err(error.into())
        }
    }
}

/// A step that writes back the quota or retention values an earlier API step replaced, with a
/// change for each value that differs from now.
fn restoring(cx: &RestoreContext<'_>, row: &StepRecord) -> Result<Option<Restoring>, String> {
    let (StepStatus::Done, Some(before)) = (row.status, &row.before_values) else {
        return Ok(None);
    };
    let before: BeforeValues = serde_json::from_str(before).map_err(|error| {
        format!(
            "the journal's before-values of step {} are unreadable: {error}",
            row.index + 1
        )
    })?;
    let mut operations = Vec::new();
    let mut changes = Vec::new();
    let mut kind = StepKind::EnsureQuotas;
    let mut note = |address: Address, then: Option<String>, operation: Operation| {
        let now = cx.now(&address);
        if now == then {
            return;
        }
        changes.push(cx.change(address, now, then, false));
        operations.push(operation);
    };
    for (username, (_, quota)) in &before.quotas {
        let address = Address::quota_user(username);
        let then = Some(
            quota
                .map(|megabytes| megabytes.to_string())
                .unwrap_or_else(|| "unlimited".to_string()),
        );
        note(
            address.clone(),
            then,
            Operation::SetQuota {
                address,
                username: username.clone(),
                quota_mb: *quota,
            },
        );
    }
    for (key, days) in &before.retention {
        kind = StepKind::EnsureRetention;
        let address = Address::retention(key);
        let current = match cx.observed.get(&address) {
            crate::model::ObservedValue::Days(days) => Some(*days),
            _ => None,
        };
        note(
            address.clone(),
            Some(days.to_string()),
            Operation::SetRetention {
                address,
                policy_key: key.clone(),
                current_days: current,
                days: *days,
            },
        );
    }
    if operations.is_empty() {
        return Ok(None);
    }
    Ok(Some(Restoring {
        changes,
        restarts: false,
        step: Step {
            index: 0,
            kind,
            target: row.target.clone(),
            addresses: operations
                .iter()
                .filter_map(Operation::address)
                .map(ToString::to_string)
                .collect(),
            operations,
        },
    }))
}

impl Provider for AdminApiProvider {
    fn ensure<'a>(
        &'a self,
        cx: &'a StepContext<'a>,
        step: &'a Step,
        effects: &'a mut Effects,
    ) -> StepFuture<'a, Result<StepRecord, StepError>> {
        Box::pin(ensure(cx, step, effects))
    }

    fn undoes(&self) -> Undoes {
        Undoes::Finished
    }

    fn restoring(
        &self,
        cx: &RestoreContext<'_>,
        row: &StepRecord,
    ) -> Result<Option<Restoring>, String> {
        restoring(cx, row)
    }

    fn undo<'a>(
        &'a self,
        cx: &'a UndoContext<'a>,
        step: &'a Step,
        row: &'a StepRecord,
    ) -> StepFuture<'a, Result<Undone, String>> {
        Box::pin(async move {
            match (cx.api, &row.before_values) {
                (Some(api), Some(before)) => undo(api, step, before).await.map(|text| Undone {
                    described: Some(format!("{} ({}): {text}", step.index + 1, step.target)),
                    restored_files: false,
                }),
                (None, _) => Err(
                    "the admin API is not configured, so its changes cannot be written back"
                        .to_string(),
                ),
                (_, None) => Ok(Undone::default()),
            }
        })
    }

    fn fingerprints_now<'a>(
        &'a self,
        cx: &'a StepContext<'a>,
        fingerprints: &'a BTreeMap<String, String>,
    ) -> StepFuture<'a, Result<BTreeMap<String, String>, String>> {
        Box::pin(async move {
            let Some(api) = cx.api else {
                return Ok(BTreeMap::new());
            };
            let current = current_hashes(api, fingerprints, cx.user_ids, cx.salt).await?;
            Ok(fingerprints
                .keys()
                .map(|address| {
                    let now = current
                        .get(address)
                        .cloned()
                        .unwrap_or_else(|| crate::plan::ABSENT.to_string());
                    (address.clone(), now)
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undo_writes_back_only_what_still_holds_the_value_the_step_wrote() {
        // (current, before, written) -> what undo does with it.
        let table = [
            (Some(100), Some(100), Some(Some(200)), Found::Before),
            (Some(200), Some(100), Some(Some(200)), Found::Written),
            (Some(300), Some(100), Some(Some(200)), Found::Other),
            (None, Some(100), Some(None), Found::Written),
            (None, None, Some(Some(200)), Found::Before),
            (Some(200), Some(100), None, Found::Other),
        ];
        for (current, before, written, expected) in table {
            assert_eq!(
                found(&current, &before, written.as_ref()),
                expected,
                "{current:?} {before:?} {written:?}"
            );
        }
    }
}
