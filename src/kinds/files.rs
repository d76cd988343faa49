//! What the two file kinds (`.env` and `config.txt`) share: the step that edits a file in place
//! under its before-hash precondition with a checkpoint of what it held, the undo that puts the
//! checkpoint back, and the value each operation writes. A file kind only says where its file
//! is and how its document applies edits ([`FileDocument`]).

use std::collections::BTreeMap;
use std::path::Path;

use super::{
    Effects, Interrupted, PreviewContext, Provider, RestoreContext, Restoring, StepContext,
    StepError, StepFuture, UndoContext, Undoes, Undone,
};
use crate::deployment::Deployment;
use crate::faults::Point;
use crate::model::{Address, Desired, DesiredState, SecretSource};
use crate::plan::{Change, Operation, Plan, SecretFrom, SecretOperation, Step, StepKind};
use crate::providers::checkpoint;
use crate::providers::files::{
    FileSnapshot, content_hash, read_snapshot, remove_durably, write_atomic_if,
};
use crate::secrets::{OsRandom, generate, show_hash, value_hash};
use crate::state::{StepRecord, StepStatus};

/// The part of a file step that differs between `.env` and `config.txt`.
pub trait FileDocument: Sync {
    /// The file this kind edits.
    fn path<'d>(&self, deployment: &'d Deployment) -> &'d Path;
    /// The checkpoint's file name.
    fn checkpoint_name(&self) -> &'static str;
    /// The mode of a file this kind creates (an existing file keeps its own).
    fn new_mode(&self) -> u32;
    /// The file's new content after the step's edits; `values` receives each address and the
    /// value it now holds.
    fn edited(
        &self,
        cx: &StepContext<'_>,
        snapshot: &FileSnapshot,
        step: &Step,
        effects: &mut Effects,
        values: &mut Vec<(Address, Option<String>)>,
    ) -> Result<String, StepError>;
    /// The value of every desired address of this file in `content` (for a restored file).
    fn values_in(&self, desired: &DesiredState, content: &str) -> Vec<(Address, Option<String>)>;
    /// The masked text of the file before and after `step` (`plan --diff`).
    fn preview(&self, step: &Step, cx: &PreviewContext<'_>) -> Option<(String, String)>;
    /// See [`Provider::fingerprints_now`]; the file is read once for all of them.
    fn fingerprints_now(
        &self,
        cx: &StepContext<'_>,
        fingerprints: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String>;
    /// See [`Provider::resumed`].
    fn resumed(&self, _plan: &Plan, _step: &Step, _effects: &mut Effects) {}

    /// The kind of this file's steps.
    fn step_kind(&self) -> StepKind;

    /// The file's text now, and a change for every value that differs between it and
    /// `before`, a checkpointed image of the file (`rollback <apply-id>`).
    fn restored(&self, cx: &RestoreContext<'_>, before: &str) -> (String, Vec<Change>);
}

/// Every file kind is a provider the same way: the step, its undo, resume and preview are the
/// ones in this module.
impl<D: FileDocument> Provider for D {
    fn ensure<'a>(
        &'a self,
        cx: &'a StepContext<'a>,
        step: &'a Step,
        effects: &'a mut Effects,
    ) -> StepFuture<'a, Result<StepRecord, StepError>> {
        Box::pin(ensure(self, cx, step, effects))
    }

    fn undoes(&self) -> Undoes {
        Undoes::Finished
    }

    fn undo<'a>(
        &'a self,
        cx: &'a UndoContext<'a>,
        _step: &'a Step,
        row: &'a StepRecord,
    ) -> StepFuture<'a, Result<Undone, String>> {
        Box::pin(async move { undo(self, cx.deployment, row) })
    }

    fn restoring(
        &self,
        cx: &RestoreContext<'_>,
        row: &StepRecord,
    ) -> Result<Option<Restoring>, String> {
        restoring(self, cx, row)
    }

    fn interrupted(
        &self,
        row: &StepRecord,
        deployment: &Deployment,
    ) -> Result<Interrupted, String> {
        interrupted(self, row, deployment)
    }

    fn preview(&self, step: &Step, cx: &PreviewContext<'_>) -> Option<(String, String)> {
        FileDocument::preview(self, step, cx)
    }

    fn resumed(&self, plan: &Plan, step: &Step, effects: &mut Effects) {
        FileDocument::resumed(self, plan, step, effects);
    }

    fn fingerprints_now<'a>(
        &'a self,
        cx: &'a StepContext<'a>,
        fingerprints: &'a BTreeMap<String, String>,
    ) -> StepFuture<'a, Result<BTreeMap<String, String>, String>> {
        Box::pin(async move { FileDocument::fingerprints_now(self, cx, fingerprints) })
    }
}

/// A snapshot of `content` as if read from a file, for parsing a checkpoint.
pub fn snapshot_of(content: &str) -> FileSnapshot {
    FileSnapshot {
        path: std::path::PathBuf::new(),
        content: Some(content.to_string()),
        mode: None,
        owner: None,
    }
}

/// Performs a file step: reads the file, computes its new content, checkpoints the old one,
/// and writes the new one only if the file still holds what was read.
pub async fn ensure(
    document: &dyn FileDocument,
    cx: &StepContext<'_>,
    step: &Step,
    effects: &mut Effects,
) -> Result<StepRecord, StepError> {
    let path = document.path(cx.deployment);
    let snapshot = read_snapshot(path)?;
    let before_hash = snapshot.hash();
    let mut values: Vec<(Address, Option<String>)> = Vec::new();
    let restore = step
        .operations
        .iter()
        .find_map(|operation| match operation {
            Operation::RestoreFile {
                checkpoint,
                checkpoint_hash,
            } => Some((checkpoint, checkpoint_hash)),
            _ => None,
        });
    let new_content = if let Some((checkpoint_path, checkpoint_hash)) = restore {
        let content = checkpoint::load(Path::new(checkpoint_path), checkpoint_hash)?;
        values.extend(document.values_in(cx.desired, &content));
        content
    } else {
        document.edited(cx, &snapshot, step, effects, &mut values)?
    };
    let after_hash = content_hash(Some(&new_content));
    let mut record = cx.journal.row(step, StepStatus::Started);
    record.before_hash = Some(before_hash.clone());
    record.after_hash = Some(after_hash.clone());
    if before_hash == after_hash {
        record.status = StepStatus::Skipped;
        record.finished_at = Some(cx.now());
        cx.write(&record).await?;
        effects.values.extend(values);
        return Ok(record);
    }
    if let Some(content) = &snapshot.content {
        let (checkpoint_path, checkpoint_hash) = checkpoint::save(
            cx.checkpoint_root,
            cx.apply_id,
            step.index,
            document.checkpoint_name(),
            content,
        )?;
        record.checkpoint_path = Some(checkpoint_path.display().to_string());
        record.checkpoint_hash = Some(checkpoint_hash);
    }
    cx.write(&record).await?;
    cx.pause(step, Point::Before).await;
    // A new .env holds secrets: 0600. An existing file keeps its mode and owner. The file must
    // still hold what was read: a writer outside tldw-ops fails the step, not its edit.
    let mode = snapshot.mode.unwrap_or(document.new_mode());
    write_atomic_if(
        path,
        new_content.as_bytes(),
        mode,
        snapshot.owner,
        &before_hash,
    )?;
    cx.pause(step, Point::After).await;
    record.status = StepStatus::Done;
    record.finished_at = Some(cx.now());
    cx.write(&record).await?;
    effects.values.extend(values);
    Ok(record)
}

/// Undoes a file step: puts back its checkpoint (or removes the file it created), provided the
/// file still holds what the step wrote. A file already back at its before-state counts as
/// undone.
/// The step that puts back the before-image a done file step checkpointed, with a change for
/// every value that differs from the file now.
fn restoring<D: FileDocument>(
    document: &D,
    cx: &RestoreContext<'_>,
    row: &StepRecord,
) -> Result<Option<Restoring>, String> {
    let apply_id = cx.apply_id;
    if row.status != StepStatus::Done {
        return Ok(None);
    }
    let (Some(path), Some(hash)) = (&row.checkpoint_path, &row.checkpoint_hash) else {
        if row.before_hash.as_deref() == Some("absent") {
            return Err(format!(
                "apply {apply_id} created {}; rolling back a created file is not supported, remove it by hand if that is what you want",
                row.target
            ));
        }
        return Ok(None);
    };
    let before = checkpoint::load(Path::new(path), hash).map_err(|error| {
        format!("cannot roll back apply {apply_id}: {error} (checkpoints of older applies are pruned after {} applies)", checkpoint::KEEP_APPLIES)
    })?;
    let (current_text, changes) = document.restored(cx, &before);
    if current_text == before {
        return Ok(None);
    }
    Ok(Some(Restoring {
        step: Step {
            index: 0,
            kind: document.step_kind(),
            target: row.target.clone(),
            addresses: changes
                .iter()
                .map(|change| change.address.to_string())
                .collect(),
            operations: vec![Operation::RestoreFile {
                checkpoint: path.clone(),
                checkpoint_hash: hash.clone(),
            }],
        },
        changes,
        restarts: true,
    }))
}

/// Whether a restored entry is shown as a fingerprint: the YAML declares it sensitive, or
/// either value looks like a secret.
pub fn is_secret_change(
    cx: &RestoreContext<'_>,
    address: &Address,
    key: &str,
    now: &Option<String>,
    then: &Option<String>,
) -> bool {
    cx.sensitive.contains(address)
        || [now, then]
            .into_iter()
            .flatten()
            .any(|value| crate::secrets::is_sensitive(key, value))
}

pub fn undo(
    document: &dyn FileDocument,
    deployment: &Deployment,
    row: &StepRecord,
) -> Result<Undone, String> {
    undo_file(row, document.path(deployment)).map(|restored| Undone {
        described: None,
        restored_files: restored,
    })
}

/// Where an interrupted file step stands: the file holds what it wrote (done) or what it found
/// (run it again); anything else was changed during or after the crash.
pub fn interrupted(
    document: &dyn FileDocument,
    row: &StepRecord,
    deployment: &Deployment,
) -> Result<Interrupted, String> {
    let path = document.path(deployment);
    let current = read_snapshot(path)
        .map_err(|error| error.to_string())?
        .hash();
    if Some(&current) == row.after_hash.as_ref() {
        Ok(Interrupted::Done)
    } else if Some(&current) == row.before_hash.as_ref() {
        Ok(Interrupted::NotDone)
    } else {
        Err(format!(
            "{} holds neither what step {} found nor what it wrote; it was changed during or after the crash",
            path.display(),
            row.index + 1
        ))
    }
}

/// Restores one file from its checkpoint. Returns whether anything was written.
pub fn undo_file(row: &StepRecord, path: &Path) -> Result<bool, String> {
    let snapshot = read_snapshot(path).map_err(|error| error.to_string())?;
    let current = snapshot.hash();
    let before = row.before_hash.clone().unwrap_or_default();
    let after = row.after_hash.clone().unwrap_or_default();
    if current == before {
        return Ok(false);
    }
    if current != after {
        return Err(format!(
            "{} changed since this apply wrote it (now {}, wrote {}); not overwriting",
            path.display(),
            show_hash(&current),
            show_hash(&after)
        ));
    }
    match (&row.checkpoint_path, &row.checkpoint_hash) {
        (Some(checkpoint_path), Some(checkpoint_hash)) => {
            let content = checkpoint::load(Path::new(checkpoint_path), checkpoint_hash)
                .map_err(|error| error.to_string())?;
            let mode = snapshot.mode.unwrap_or(0o600);
            write_atomic_if(path, content.as_bytes(), mode, snapshot.owner, &current)
                .map_err(|error| error.to_string())?;
        }
        _ if before == "absent" => {
            remove_durably(path).map_err(|error| error.to_string())?;
        }
        _ => return Err(format!("no checkpoint was recorded for {}", path.display())),
    }
    Ok(true)
}

/// The value an operation writes: from the desired state, or generated now.
pub fn value_for(
    cx: &StepContext<'_>,
    address: &Address,
    value: Option<&str>,
    secret: Option<&SecretOperation>,
) -> Result<String, StepError> {
    let resource = cx.desired.get(address).ok_or_else(|| {
        StepError::Message(format!(
            "{address} is in the plan but not in the desired state"
        ))
    })?;
    match (secret, &resource.desired) {
        (Some(operation), Desired::Secret(desired)) if operation.from == SecretFrom::Generate => {
            match &desired.source {
                SecretSource::Generate(spec) => Ok(generate(spec, &mut OsRandom)),
                _ => Err(StepError::Message(format!(
                    "{address}: the plan generates it but the desired state has a source"
                ))),
            }
        }
        (_, Desired::Secret(_)) => {
            let value = cx.secret_values.get(address.name()).ok_or_else(|| {
                StepError::Message(format!("{address}: its source could not be read"))
            })?;
            if let Some(expected) = secret.and_then(|operation| operation.expect.as_deref())
                && show_hash(&value_hash(cx.salt, value)) != expected
            {
                return Err(StepError::Message(format!(
                    "{address}: its source changed since the plan was made (plan {expected}, now {})",
                    show_hash(&value_hash(cx.salt, value))
                )));
            }
            Ok(value.clone())
        }
        (_, desired) => {
            let wanted = desired.canonical().unwrap_or_default();
            if let Some(planned) = value
                && planned != wanted
            {
                return Err(StepError::Message(format!(
                    "{address}: the desired value changed since the plan was made"
                )));
            }
            Ok(wanted)
        }
    }
}

/// The fingerprint now of each address of `fingerprints`, by `observe` (`None`: absent).
pub fn fingerprints_in(
    salt: &[u8],
    fingerprints: &BTreeMap<String, String>,
    observe: impl Fn(&Address) -> Option<String>,
) -> BTreeMap<String, String> {
    fingerprints
        .keys()
        .filter_map(|text| {
            let address = Address::parse(text).ok()?;
            let now = observe(&address)
                .map(|value| value_hash(salt, &value))
                .unwrap_or_else(|| crate::plan::ABSENT.to_string());
            Some((text.clone(), now))
        })
        .collect()
}

/// A value shown as its fingerprint.
pub fn masked(salt: &[u8], value: &str) -> String {
    format!("(sensitive) {}", show_hash(&value_hash(salt, value)))
}

/// A value the plan already shows as a fingerprint or as generated.
pub fn already_masked(value: &str) -> bool {
    value.starts_with("(sensitive) fp:") || value == "(generated at apply)"
}
