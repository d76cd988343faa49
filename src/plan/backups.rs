//! Backups as reconciled state, the pure part. The `backup:` policy is desired state: from the
//! policy, the sets observed at `<destination>/<environment>/` and the clock, this decides which
//! set to create and which sets to delete, each with its reason, step and fingerprint. It also
//! builds the plan of a restore, and the backup-only plan that `apply --only backup` runs on a
//! schedule. No I/O and no clock of its own: the sets are listed by `crate::backups::observe`.
//!
//! Where backup steps go in a plan:
//! - `create_backup` is always the first step, so that with `before_apply: true` the set is a
//!   real checkpoint of the data before anything else changes (and a due backup is never worse
//!   for being taken first).
//! - `prune_backups` is always the last step, after the health gates: a set is only ever deleted
//!   once the apply that made its replacement succeeded.
//!
//! Prune decides over the observed sets plus the set this plan creates, so one apply converges:
//! the next plan has nothing left to create or delete.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::service::{HealthCheck, SmokeCheck};
use super::{Action, Change, Operation, Plan, SourceRef, Step, StepKind};
use crate::model::{Address, AddressKind};
use crate::plan::backup_policy::{
    self as policy, Decision, SetInfo, human_duration, parse_set_id, set_id,
};
use crate::secrets::value_hash;
use crate::spec::types::{Backup, BackupItem, Keep};

/// The reason of the create that comes first in an upgrade, whatever `before_apply` says.
pub const UPGRADE_REASON: &str =
    "upgrade: a checkpoint of the data before the release changes (always taken)";

/// Whether `steps` change the release: a checkout of a bare-metal release, or a `.env` edit
/// that keeps the app image it replaces.
fn upgrades(steps: &[Step]) -> bool {
    let switches = steps
        .iter()
        .any(|step| step.kind == super::StepKind::SwitchRelease);
    switches
        || steps.iter().flat_map(Step::entry_edits).any(|edit| {
            matches!(
                edit,
                super::EntryEdit::Set { address, secret: Some(secret), .. }
                    if address.env_name() == Some(crate::spec::mapping::APP_IMAGE)
                        && secret.keep_previous_as.as_deref()
                            == Some(crate::spec::mapping::ROLLBACK_IMAGE)
            )
        })
}

/// The reason of a create that is there only because `before_apply` is on.
pub const BEFORE_APPLY_REASON: &str = "before_apply: a checkpoint of the data before this apply";

/// The reason prune gives for a complete, good set that no keep rule holds.
const NOT_KEPT: &str = "not the newest set of any day, week or month the policy keeps";

/// The most a set may fall short of `every` and still be due: a timer that fires every `every`
/// starts a few seconds earlier or later each time, and without this slack a set made at 00:00:05
/// would not be due at 00:00:03 the next day and a whole turn would be skipped.
const MAX_GRACE_SECONDS: u64 = 300;

/// What the planner needs to plan backups.
#[derive(Debug, Clone, Copy)]
pub struct BackupInput<'a> {
    pub policy: &'a Backup,
    /// Every set at `<destination>/<environment>/`, as listed.
    pub sets: &'a [SetInfo],
    /// `<destination>/<environment>`, shown as the target of the backup steps.
    pub location: &'a str,
    /// Where the YAML declares `backup:`.
    pub source: Option<&'a SourceRef>,
    /// Notes from observing the destination and the sources (a destination others can read,
    /// a database that is missing).
    pub warnings: &'a [String],
}

/// The slack allowed before `every` (see [`MAX_GRACE_SECONDS`]): 1% of it, at most 5 minutes.
pub fn grace(every: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs((every.as_secs() / 100).min(MAX_GRACE_SECONDS))
}

/// Whether a new set is due, and why (see `policy::due`), with the scheduler's grace.
pub fn due_reason(policy: &Backup, sets: &[SetInfo], now: Timestamp) -> Option<String> {
    let every = policy.every.as_std();
    if let Some(reason) = policy::due(sets, every, policy.verify, now) {
        return Some(reason);
    }
    let grace = grace(every);
    policy::due(sets, every.saturating_sub(grace), policy.verify, now)?;
    let newest = newest_good(sets, policy.verify)?;
    let age = now
        .as_second()
        .saturating_sub(newest.created_at.as_second())
        .max(0) as u64;
    Some(format!(
        "the newest {} set is {} old, within the {} grace of every {}",
        adjective(policy.verify),
        human_duration(age),
        human_duration(grace.as_secs()),
        human_duration(every.as_secs())
    ))
}

fn adjective(verify: bool) -> &'static str {
    if verify { "verified" } else { "complete" }
}

/// The newest set that satisfies the policy: complete and verified (with `verify` off,
/// complete and not failed).
fn newest_good(sets: &[SetInfo], verify: bool) -> Option<&SetInfo> {
    sets.iter()
        .filter(|set| {
            set.complete
                && if verify {
                    set.verified == Some(true)
                } else {
                    set.verified != Some(false)
                }
        })
        .max_by_key(|set| (set.created_at, set.id.as_str()))
}

/// A set's state in one word, as fingerprinted and listed.
pub fn state_word(set: &SetInfo) -> &'static str {
    match (set.complete, set.verified) {
        (false, _) => "incomplete",
        (true, Some(true)) => "verified",
        (true, Some(false)) => "failed",
        (true, None) => "unverified",
    }
}

/// The fingerprint of `backup.set.<id>` given the sets listed now. An existing set is
/// fingerprinted by its state; a set that does not exist (one a plan creates) by the newest good
/// set, so a saved plan that creates a set goes stale when a newer good set appears (the create
/// is no longer due), and one that deletes a set goes stale when that set is gone or changed.
pub fn set_fingerprint(salt: &[u8], verify: bool, sets: &[SetInfo], id: &str) -> String {
    let text = match sets.iter().find(|set| set.id == id) {
        Some(set) => format!("set {} {}", set.id, state_word(set)),
        None => format!(
            "absent; newest {} set {}",
            adjective(verify),
            newest_good(sets, verify).map_or("none", |set| set.id.as_str())
        ),
    };
    value_hash(salt, &text)
}

/// The id of a set made at `now`, moved on by a second while it is taken (two sets in the same
/// second: a restore's safety set, or a fixed test clock).
pub fn free_set_id(now: Timestamp, sets: &[SetInfo]) -> String {
    let mut second = now.as_second();
    loop {
        let id = set_id(Timestamp::from_second(second).unwrap_or(now));
        if !sets.iter().any(|set| set.id == id) {
            return id;
        }
        second += 1;
    }
}

/// The sets taken before applies that `keep.last` keeps when the file does not say.
pub const DEFAULT_KEEP_LAST_BEFORE_APPLY: u32 = 3;

/// The keep rules in force: the file's, with `last` defaulted when sets are taken before every
/// apply (otherwise a second apply on one day would release the first one's set, the data to go
/// back to).
pub fn effective_keep(policy: &Backup) -> Keep {
    let mut keep = policy.keep;
    if keep.last.is_none() && policy.before_apply {
        keep.last = Some(DEFAULT_KEEP_LAST_BEFORE_APPLY);
    }
    keep
}

/// `last 3 / daily 7 / weekly 4 / monthly 12`, the rules the policy sets.
pub fn keep_text(keep: &Keep) -> String {
    let rules: Vec<String> = [
        ("last", keep.last),
        ("daily", keep.daily),
        ("weekly", keep.weekly),
        ("monthly", keep.monthly),
    ]
    .into_iter()
    .filter_map(|(rule, count)| count.map(|count| format!("{rule} {count}")))
    .collect();
    if rules.is_empty() {
        "nothing".to_string()
    } else {
        rules.join(" / ")
    }
}

/// Why a released set goes, as a plan shows it.
pub fn release_reason(release: &str, keep: &Keep) -> String {
    if release == NOT_KEPT {
        format!("outside keep {}", keep_text(keep))
    } else {
        release.to_string()
    }
}

/// Notes about sets that are not backups: incomplete ones and ones that failed verification.
pub fn set_warnings(sets: &[SetInfo]) -> Vec<String> {
    let mut warnings = Vec::new();
    for set in sets {
        match state_word(set) {
            "incomplete" => warnings.push(format!(
                "backup set {} is incomplete (it has no manifest): a backup was interrupted or is \
                 still writing it; it does not count as a backup and is deleted once it is a day old",
                set.id
            )),
            "failed" => warnings.push(format!(
                "backup set {} failed verification and does not count as a backup; it is deleted \
                 (`tldw-ops backup verify {}` shows why)",
                set.id, set.id
            )),
            _ => {}
        }
    }
    warnings
}

/// Adds the backup changes and steps to a plan being built: a create first when a set is due
/// (or `before_apply` is on and `changes` is not empty), a prune last for every set the keep
/// policy releases. `changes` and `steps` hold the rest of the plan; steps are renumbered.
pub fn extend(
    input: &BackupInput<'_>,
    now: Timestamp,
    salt: &[u8],
    changes: &mut Vec<Change>,
    steps: &mut Vec<Step>,
    fingerprints: &mut BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) {
    let policy = input.policy;
    let others_change = !changes.is_empty();
    warnings.extend(input.warnings.iter().cloned());
    warnings.extend(set_warnings(input.sets));
    let change = |address: &Address, action: Action, reason: String| Change {
        address: address.clone(),
        action,
        reason,
        sensitive: false,
        drift: false,
        before: None,
        after: None,
        source: input.source.cloned(),
    };
    let mut backup_changes = Vec::new();
    let mut candidates = input.sets.to_vec();
    let mut create_step = None;
    let reason = upgrades(steps)
        .then(|| UPGRADE_REASON.to_string())
        .or_else(|| due_reason(policy, input.sets, now))
        .or_else(|| {
            (policy.before_apply && others_change).then(|| BEFORE_APPLY_REASON.to_string())
        });
    if let Some(reason) = reason {
        let id = free_set_id(now, input.sets);
        let address = Address::backup_set(&id);
        fingerprints.insert(
            address.to_string(),
            set_fingerprint(salt, policy.verify, input.sets, &id),
        );
        backup_changes.push(change(&address, Action::Create, reason));
        candidates.push(planned_set(&id, policy, now));
        create_step = Some(Step {
            index: 0,
            kind: StepKind::CreateBackup,
            target: format!("{}/{id}", input.location),
            addresses: vec![address.to_string()],
            operations: vec![Operation::CreateBackup { set_id: id }],
        });
    }
    let mut prune_operations = Vec::new();
    let mut prune_addresses = Vec::new();
    for (set, decision) in
        candidates
            .iter()
            .zip(policy::prune(&candidates, &effective_keep(policy), now))
    {
        let Some(release) = decision.release else {
            continue;
        };
        let reason = release_reason(&release, &effective_keep(policy));
        let address = Address::backup_set(&set.id);
        fingerprints.insert(
            address.to_string(),
            set_fingerprint(salt, policy.verify, input.sets, &set.id),
        );
        backup_changes.push(change(&address, Action::Delete, reason.clone()));
        prune_addresses.push(address.to_string());
        prune_operations.push(Operation::PruneBackup {
            set_id: set.id.clone(),
            reason,
        });
    }
    backup_changes.sort_by(|a, b| a.address.cmp(&b.address));
    changes.splice(0..0, backup_changes);
    if let Some(step) = create_step {
        steps.insert(0, step);
    }
    if !prune_operations.is_empty() {
        steps.push(Step {
            index: 0,
            kind: StepKind::PruneBackups,
            target: format!(
                "{} ({} set{})",
                input.location,
                prune_operations.len(),
                if prune_operations.len() == 1 { "" } else { "s" }
            ),
            addresses: prune_addresses,
            operations: prune_operations,
        });
    }
    renumber(steps);
}

/// The set a plan creates, as prune sees it: complete, and verified when the policy verifies
/// (a set that fails verification fails the apply before prune runs).
fn planned_set(id: &str, policy: &Backup, now: Timestamp) -> SetInfo {
    SetInfo {
        id: id.to_string(),
        created_at: parse_set_id(id).unwrap_or(now),
        complete: true,
        verified: policy.verify.then_some(true),
        size: 0,
    }
}

/// What the next backup run decides for each of `sets` (in order): whether a set is due (and
/// why), and the keep policy's decision over `sets` plus the set it would make.
pub fn next_decisions(
    policy: &Backup,
    sets: &[SetInfo],
    now: Timestamp,
) -> (Option<String>, Vec<Decision>) {
    let due = due_reason(policy, sets, now);
    let mut candidates = sets.to_vec();
    if due.is_some() {
        candidates.push(planned_set(&free_set_id(now, sets), policy, now));
    }
    let mut decisions = policy::prune(&candidates, &effective_keep(policy), now);
    decisions.truncate(sets.len());
    (due, decisions)
}

fn renumber(steps: &mut [Step]) {
    for (index, step) in steps.iter_mut().enumerate() {
        step.index = index as u32;
    }
}

/// The backup part of `plan` alone, for `apply --only backup`: the same plan as if nothing else
/// were to change, so `before_apply` does not ask for a set and prune decides without one.
/// Everything but the backup changes, steps, fingerprints and warnings is dropped.
pub fn only_backups(plan: Plan, input: &BackupInput<'_>, now: Timestamp, salt: &[u8]) -> Plan {
    let mut changes = Vec::new();
    let mut steps = Vec::new();
    let mut fingerprints = BTreeMap::new();
    let mut warnings = Vec::new();
    extend(
        input,
        now,
        salt,
        &mut changes,
        &mut steps,
        &mut fingerprints,
        &mut warnings,
    );
    Plan {
        changes,
        steps,
        fingerprints,
        warnings,
        ..plan
    }
}

/// Whether `plan` changes backup sets and nothing else.
pub fn is_backup_only(plan: &Plan) -> bool {
    !plan.is_empty()
        && plan
            .changes
            .iter()
            .all(|change| change.address.kind() == AddressKind::BackupSet)
}

/// What a restore does, decided before it starts.
#[derive(Debug, Clone)]
pub struct RestoreInput<'a> {
    /// The set to restore.
    pub set_id: &'a str,
    pub only: Option<BackupItem>,
    /// The sets there are now (the safety set gets an id none of them has).
    pub sets: &'a [SetInfo],
    pub now: Timestamp,
    /// `<destination>/<environment>`, for step targets.
    pub location: &'a str,
    /// The stop command, when tldw-ops stops the server; `None` when it is already stopped.
    pub stop: Option<&'a [String]>,
    /// The start command, when tldw-ops starts the server afterwards.
    pub start: Option<&'a [String]>,
    /// Run after the start.
    pub health: &'a [HealthCheck],
    pub smoke: &'a [SmokeCheck],
    pub source: Option<&'a SourceRef>,
}

/// The plan of a restore, built on `base` (a plan of the same desired state, for its header):
/// take a safety set, stop the server, put the set back, start the server and check its
/// health. Undoing it (a failed step or gate) stops the server, restores the safety set and
/// starts the server again.
pub fn restore_plan(base: Plan, input: &RestoreInput<'_>) -> Plan {
    let safety = free_set_id(input.now, input.sets);
    let safety_address = Address::backup_set(&safety);
    let what = match input.only {
        Some(item) => item_name(item).to_string(),
        None => "all of it".to_string(),
    };
    let changes = vec![Change {
        address: safety_address.clone(),
        action: Action::Create,
        reason: format!(
            "a safety copy of the data before restoring {} ({what})",
            input.set_id
        ),
        sensitive: false,
        drift: false,
        before: None,
        after: None,
        source: input.source.cloned(),
    }];
    let run = |kind: StepKind, argv: &[String]| Step {
        index: 0,
        kind,
        target: super::service::shell_words(argv),
        addresses: Vec::new(),
        operations: vec![Operation::Run {
            argv: argv.to_vec(),
        }],
    };
    let mut steps = vec![Step {
        index: 0,
        kind: StepKind::CreateBackup,
        target: format!("{}/{safety}", input.location),
        addresses: vec![safety_address.to_string()],
        operations: vec![Operation::CreateBackup {
            set_id: safety.clone(),
        }],
    }];
    if let Some(stop) = input.stop {
        steps.push(run(StepKind::StopService, stop));
    }
    steps.push(Step {
        index: 0,
        kind: StepKind::RestoreBackup,
        target: format!("{}/{} ({what})", input.location, input.set_id),
        addresses: Vec::new(),
        operations: vec![Operation::RestoreBackup {
            set_id: input.set_id.to_string(),
            only: input.only,
            safety_set_id: safety,
        }],
    });
    if let Some(start) = input.start {
        steps.push(run(StepKind::StartService, start));
        steps.extend(super::service::gate_steps(input.health, input.smoke));
    }
    renumber(&mut steps);
    Plan {
        changes,
        steps,
        fingerprints: BTreeMap::new(),
        warnings: Vec::new(),
        ..base
    }
}

/// What `rollback <apply-id>` of an upgrade adds to its plan.
pub struct UpgradeRollback<'a> {
    /// The upgrade's pre-upgrade set, when its AuthNZ database is to go back (the upgrade
    /// migrated it).
    pub restore_authnz_from: Option<&'a str>,
    /// The sets there are now (the safety set gets an id none of them has).
    pub sets: &'a [SetInfo],
    pub now: Timestamp,
    /// `<destination>/<environment>`, for step targets.
    pub location: &'a str,
    pub source: Option<&'a SourceRef>,
}

/// Makes `plan`, the restore of an earlier upgrade, safe later: a fresh safety set first, and,
/// when the upgrade migrated the AuthNZ database, its pre-upgrade copy put back before the
/// restart, so the old release starts on the database it knew. A plan with no steps is left
/// as it is.
pub fn upgrade_rollback(mut plan: Plan, input: &UpgradeRollback<'_>) -> Plan {
    if plan.steps.is_empty() {
        return plan;
    }
    let safety = free_set_id(input.now, input.sets);
    let safety_address = Address::backup_set(&safety);
    plan.changes.insert(
        0,
        Change {
            address: safety_address.clone(),
            action: Action::Create,
            reason: "a safety copy of the data before rolling the upgrade back".to_string(),
            sensitive: false,
            drift: false,
            before: None,
            after: None,
            source: input.source.cloned(),
        },
    );
    plan.steps.insert(
        0,
        Step {
            index: 0,
            kind: StepKind::CreateBackup,
            target: format!("{}/{safety}", input.location),
            addresses: vec![safety_address.to_string()],
            operations: vec![Operation::CreateBackup {
                set_id: safety.clone(),
            }],
        },
    );
    if let Some(set_id) = input.restore_authnz_from {
        let before_restart = plan
            .steps
            .iter()
            .position(|step| {
                matches!(
                    step.kind,
                    StepKind::Restart | StepKind::HealthGate | StepKind::SmokeGate
                )
            })
            .unwrap_or(plan.steps.len());
        plan.steps.insert(
            before_restart,
            Step {
                index: 0,
                kind: StepKind::RestoreBackup,
                target: format!("{}/{set_id} (authnz)", input.location),
                addresses: Vec::new(),
                operations: vec![Operation::RestoreBackup {
                    set_id: set_id.to_string(),
                    only: Some(BackupItem::Authnz),
                    safety_set_id: safety,
                }],
            },
        );
    }
    renumber(&mut plan.steps);
    plan
}

/// The pre-upgrade set of an applied plan: the set it took first because the release changed.
pub fn upgrade_set(plan: &Plan) -> Option<String> {
    plan.changes
        .iter()
        .find(|change| change.reason == UPGRADE_REASON)
        .map(|change| change.address.name().to_string())
}

/// An `include:` entry as written in the YAML.
pub fn item_name(item: BackupItem) -> &'static str {
    match item {
        BackupItem::Authnz => "authnz",
        BackupItem::UserDatabases => "user_databases",
        BackupItem::Config => "config",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::duration::Duration;

    const SALT: &[u8] = &[7; 32];

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn policy(before_apply: bool) -> Backup {
        Backup {
            destination: "backups".to_string(),
            every: "24h".parse::<Duration>().unwrap(),
            include: vec![
                BackupItem::Authnz,
                BackupItem::UserDatabases,
                BackupItem::Config,
            ],
            keep: Keep {
                last: None,
                daily: Some(7),
                weekly: Some(4),
                monthly: Some(12),
            },
            verify: true,
            before_apply,
            drill: None,
        }
    }

    fn set(created: &str, complete: bool, verified: Option<bool>) -> SetInfo {
        let created_at = at(created);
        SetInfo {
            id: set_id(created_at),
            created_at,
            complete,
            verified,
            size: 1,
        }
    }

    struct Planned {
        changes: Vec<Change>,
        steps: Vec<Step>,
        fingerprints: BTreeMap<String, String>,
        warnings: Vec<String>,
    }

    fn plan_with(policy: &Backup, sets: &[SetInfo], now: &str, others: Vec<Change>) -> Planned {
        let mut changes = others;
        let mut steps: Vec<Step> = changes
            .iter()
            .map(|change| Step {
                index: 0,
                kind: StepKind::EnsureEnvFile,
                target: ".env".to_string(),
                addresses: vec![change.address.to_string()],
                operations: Vec::new(),
            })
            .collect();
        let mut fingerprints = BTreeMap::new();
        let mut warnings = Vec::new();
        let input = BackupInput {
            policy,
            sets,
            location: "backups/prod",
            source: None,
            warnings: &[],
        };
        extend(
            &input,
            at(now),
            SALT,
            &mut changes,
            &mut steps,
            &mut fingerprints,
            &mut warnings,
        );
        Planned {
            changes,
            steps,
            fingerprints,
            warnings,
        }
    }

    fn summary(planned: &Planned) -> Vec<String> {
        planned
            .changes
            .iter()
            .map(|change| {
                format!(
                    "{} {} ({})",
                    change.action.symbol(),
                    change.address,
                    change.reason
                )
            })
            .collect()
    }

    fn env_change() -> Change {
        Change {
            address: Address::env("LOG_LEVEL"),
            action: Action::Update,
            reason: "value differs".to_string(),
            sensitive: false,
            drift: false,
            before: Some("debug".to_string()),
            after: Some("info".to_string()),
            source: None,
        }
    }

    #[test]
    fn a_set_is_created_when_due_with_the_policy_reason_and_nothing_else_happens() {
        let sets = [set("2026-11-24T21:00:00Z", true, Some(true))];
        let planned = plan_with(&policy(false), &sets, "2026-11-26T03:00:00Z", Vec::new());
        assert_eq!(
            summary(&planned),
            [
                "+ backup.set.2026-11-26T030000Z (the newest verified set is 30h old and policy says every 24h)"
            ]
        );
        assert_eq!(planned.steps.len(), 1);
        assert_eq!(planned.steps[0].kind, StepKind::CreateBackup);
        assert_eq!(planned.steps[0].target, "backups/prod/2026-11-26T030000Z");
        assert!(planned.warnings.is_empty());
    }

    #[test]
    fn nothing_is_planned_when_the_newest_verified_set_is_young_enough() {
        let sets = [set("2026-11-25T21:00:00Z", true, Some(true))];
        let planned = plan_with(&policy(false), &sets, "2026-11-26T03:00:00Z", Vec::new());
        assert!(planned.changes.is_empty() && planned.steps.is_empty());
    }

    #[test]
    fn a_timer_firing_a_few_seconds_early_still_finds_the_set_due() {
        let sets = [set("2026-11-25T00:00:05Z", true, Some(true))];
        let planned = plan_with(&policy(false), &sets, "2026-11-26T00:00:02Z", Vec::new());
        assert_eq!(
            summary(&planned),
            [
                "+ backup.set.2026-11-26T000002Z (the newest verified set is 23h59m old, within the 5m grace of every 24h)"
            ]
        );
        let early = plan_with(&policy(false), &sets, "2026-11-25T23:50:00Z", Vec::new());
        assert!(early.changes.is_empty());
    }

    #[test]
    fn before_apply_makes_the_create_the_first_step_and_prune_comes_after_the_gates() {
        let sets = [
            set("2026-11-25T21:00:00Z", true, Some(true)),
            set("2026-11-25T20:00:00Z", true, Some(false)),
        ];
        let planned = plan_with(
            &policy(true),
            &sets,
            "2026-11-26T03:00:00Z",
            vec![env_change()],
        );
        let kinds: Vec<StepKind> = planned.steps.iter().map(|step| step.kind).collect();
        assert_eq!(
            kinds,
            [
                StepKind::CreateBackup,
                StepKind::EnsureEnvFile,
                StepKind::PruneBackups
            ]
        );
        assert_eq!(
            planned
                .steps
                .iter()
                .map(|step| step.index)
                .collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(
            summary(&planned),
            [
                "- backup.set.2026-11-25T200000Z (failed verification, so it does not count as a backup)",
                "+ backup.set.2026-11-26T030000Z (before_apply: a checkpoint of the data before this apply)",
                "~ env.LOG_LEVEL (value differs)"
            ]
        );
        assert_eq!(planned.warnings.len(), 1);
        assert!(planned.warnings[0].contains("failed verification"));
        // Without other changes, before_apply asks for nothing.
        let alone = plan_with(
            &policy(true),
            &sets[..1],
            "2026-11-26T03:00:00Z",
            Vec::new(),
        );
        assert!(alone.changes.is_empty());
    }

    #[test]
    fn prune_counts_the_set_this_plan_creates_so_one_apply_converges() {
        let mut policy = policy(false);
        policy.keep = Keep {
            last: None,
            daily: Some(2),
            weekly: None,
            monthly: None,
        };
        let sets = [
            set("2026-11-23T03:00:00Z", true, Some(true)),
            set("2026-11-24T03:00:00Z", true, Some(true)),
            set("2026-11-25T03:00:00Z", true, Some(true)),
        ];
        let planned = plan_with(&policy, &sets, "2026-11-26T03:00:00Z", Vec::new());
        assert_eq!(
            summary(&planned),
            [
                "- backup.set.2026-11-23T030000Z (outside keep daily 2)",
                "- backup.set.2026-11-24T030000Z (outside keep daily 2)",
                "+ backup.set.2026-11-26T030000Z (the newest verified set is 24h old and policy says every 24h)"
            ]
        );
        // After it: the two newest sets, nothing due, nothing to prune.
        let after = [
            sets[2].clone(),
            set("2026-11-26T03:00:00Z", true, Some(true)),
        ];
        let again = plan_with(&policy, &after, "2026-11-26T03:05:00Z", Vec::new());
        assert!(again.changes.is_empty(), "{:?}", summary(&again));
    }

    #[test]
    fn an_incomplete_set_is_reported_then_deleted_once_a_day_old() {
        let sets = [
            set("2026-11-25T03:00:00Z", true, Some(true)),
            set("2026-11-25T04:00:00Z", false, None),
        ];
        let young = plan_with(&policy(false), &sets, "2026-11-25T05:00:00Z", Vec::new());
        assert!(young.changes.is_empty());
        assert!(young.warnings[0].contains("backup set 2026-11-25T040000Z is incomplete"));
        let old = plan_with(&policy(false), &sets, "2026-11-26T04:30:00Z", Vec::new());
        assert_eq!(
            summary(&old),
            [
                "- backup.set.2026-11-25T040000Z (incomplete, left by an interrupted backup)",
                "+ backup.set.2026-11-26T043000Z (the newest verified set is 25h30m old and policy says every 24h)"
            ]
        );
    }

    #[test]
    fn fingerprints_move_when_a_planned_delete_is_gone_or_a_newer_good_set_appears() {
        let sets = vec![
            set("2026-11-01T03:00:00Z", true, Some(false)),
            set("2026-11-24T03:00:00Z", true, Some(true)),
        ];
        let planned = plan_with(&policy(false), &sets, "2026-11-26T03:00:00Z", Vec::new());
        let create = "backup.set.2026-11-26T030000Z";
        let delete = "backup.set.2026-11-01T030000Z";
        let now = |sets: &[SetInfo], address: &str| {
            set_fingerprint(
                SALT,
                true,
                sets,
                address.strip_prefix("backup.set.").unwrap(),
            )
        };
        assert_eq!(planned.fingerprints[create], now(&sets, create));
        assert_eq!(planned.fingerprints[delete], now(&sets, delete));
        // Unrelated: an unverified set appearing changes neither.
        let mut more = sets.clone();
        more.push(set("2026-11-25T03:00:00Z", true, None));
        assert_eq!(planned.fingerprints[create], now(&more, create));
        // A newer verified set makes the create unnecessary: moved.
        let mut newer = sets.clone();
        newer.push(set("2026-11-25T22:00:00Z", true, Some(true)));
        assert_ne!(planned.fingerprints[create], now(&newer, create));
        // The set to delete is already gone: moved.
        assert_ne!(planned.fingerprints[delete], now(&sets[1..], delete));
    }

    #[test]
    fn only_backups_drops_the_rest_and_the_before_apply_checkpoint() {
        let sets = [set("2026-11-25T21:00:00Z", true, Some(true))];
        let policy = policy(true);
        let input = BackupInput {
            policy: &policy,
            sets: &sets,
            location: "backups/prod",
            source: None,
            warnings: &[],
        };
        let planned = plan_with(&policy, &sets, "2026-11-26T03:00:00Z", vec![env_change()]);
        let full = Plan {
            format_version: super::super::FORMAT_VERSION,
            tool_version: "test".to_string(),
            environment: "prod".to_string(),
            deployment: "default".to_string(),
            file: "x.yaml".to_string(),
            desired_hash: "h".to_string(),
            shared_hash: None,
            git_commit: None,
            state_id: "s".to_string(),
            created_at: "2026-11-26T03:00:00Z".to_string(),
            changes: planned.changes,
            steps: planned.steps,
            fingerprints: planned.fingerprints,
            warnings: planned.warnings,
        };
        assert_eq!(full.changes.len(), 2);
        let only = only_backups(full, &input, at("2026-11-26T03:00:00Z"), SALT);
        assert!(only.is_empty() && only.steps.is_empty() && only.fingerprints.is_empty());
    }

    #[test]
    fn a_restore_takes_a_safety_set_stops_restores_starts_and_checks_in_that_order() {
        let sets = [set("2026-11-26T03:00:00Z", true, Some(true))];
        let stop = [
            "systemctl".to_string(),
            "stop".to_string(),
            "tldw".to_string(),
        ];
        let start = [
            "systemctl".to_string(),
            "start".to_string(),
            "tldw".to_string(),
        ];
        let health = [HealthCheck {
            url: "http://127.0.0.1:8000/health".to_string(),
            expect_status: 200,
            expect_json: None,
        }];
        let base = only_backups(
            Plan {
                format_version: super::super::FORMAT_VERSION,
                tool_version: "test".to_string(),
                environment: "prod".to_string(),
                deployment: "default".to_string(),
                file: "x.yaml".to_string(),
                desired_hash: "h".to_string(),
                shared_hash: None,
                git_commit: None,
                state_id: "s".to_string(),
                created_at: "2026-11-26T03:00:00Z".to_string(),
                changes: Vec::new(),
                steps: Vec::new(),
                fingerprints: BTreeMap::new(),
                warnings: Vec::new(),
            },
            &BackupInput {
                policy: &policy(false),
                sets: &sets,
                location: "b/prod",
                source: None,
                warnings: &[],
            },
            at("2026-11-26T03:00:00Z"),
            SALT,
        );
        let plan = restore_plan(
            base,
            &RestoreInput {
                set_id: "2026-11-26T030000Z",
                only: Some(BackupItem::Config),
                sets: &sets,
                now: at("2026-11-26T03:00:00Z"),
                location: "b/prod",
                stop: Some(&stop),
                start: Some(&start),
                health: &health,
                smoke: &[],
                source: None,
            },
        );
        let steps: Vec<String> = plan
            .steps
            .iter()
            .map(|step| format!("{} {} {}", step.index, step.kind.as_str(), step.target))
            .collect();
        assert_eq!(
            steps,
            [
                "0 create_backup b/prod/2026-11-26T030001Z",
                "1 stop_service systemctl stop tldw",
                "2 restore_backup b/prod/2026-11-26T030000Z (config)",
                "3 start_service systemctl start tldw",
                "4 health_gate http://127.0.0.1:8000/health"
            ]
        );
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(
            plan.changes[0].reason,
            "a safety copy of the data before restoring 2026-11-26T030000Z (config)"
        );
    }

    #[test]
    fn keep_text_names_only_the_rules_the_policy_sets() {
        assert_eq!(
            keep_text(&Keep {
                last: None,
                daily: Some(7),
                weekly: None,
                monthly: Some(12)
            }),
            "daily 7 / monthly 12"
        );
    }
}
