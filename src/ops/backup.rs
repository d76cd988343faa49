//! `backup {list,verify,drill,restore,schedule}`: the backup target a desired-state file
//! declares, its sets with the keep rule of each, the sets to verify or drill and how, the plan
//! that restores one (with the stop it needs and what it replaces), and what a schedule runs.
//! `cli::backup` prints the listings and reports, asks before a restore and executes its plan.
//! Creating and pruning sets is not here: it is part of `plan`/`apply` (and `apply --only
//! backup`).

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::backups::schedule::ScheduleInput;
use crate::backups::{AuthnzLocation, BackupTarget, shown};
use crate::deployment::Deployment;
use crate::kinds::service::server_answers;
use crate::pipeline::{self, PipelineError, Prepared};
use crate::plan::Plan;
use crate::plan::backups::{RestoreInput, item_name, next_decisions, restore_plan};
use crate::providers::backups::{
    AuthnzSource, BackupError as SetError, Decision, DrillOptions, DrillReport, Manifest,
    ManifestItem, SetInfo, Verification, VerifyOptions, drill_set, list_sets, read_manifest,
    verify_set_with,
};
use crate::settings::Settings;
use crate::spec::types::BackupItem;
use crate::spec::{CheckError, Checked};

/// Why a backup command does nothing (or, for `verify`, nothing more).
#[derive(Debug, thiserror::Error)]
pub enum BackupCommandError {
    /// The desired state does not load or check.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("{} has no `backup:` policy", file.display())]
    NoPolicy { file: PathBuf },
    #[error(
        "--if-due needs `backup.drill` (how often a drill is due, e.g. `drill: 7d`) in {}",
        file.display()
    )]
    NoDrillPolicy { file: PathBuf },
    #[error("cannot list the backup sets: {0}")]
    List(SetError),
    #[error("no backup set {id} in {location} (see `tldw-ops backup list`)")]
    NoSuchSet { id: String, location: String },
    #[error("no complete backup set in {location}")]
    NoCompleteSet { location: String },
    #[error(
        "backup set {id} is incomplete: it has no manifest (an interrupted backup, or one still running)"
    )]
    Incomplete { id: String },
    /// `--postgres-url` is refused (see [`scratch_database`]).
    #[error("{0}")]
    ScratchDatabase(String),
    #[error("could not drill backup set {id}: {error}")]
    Drill { id: String, error: SetError },
    #[error("backup set {id} cannot be restored: {error}")]
    Unrestorable { id: String, error: SetError },
    #[error(
        "backup set {id} failed verification and is not restored (`tldw-ops backup verify {id}` shows why)"
    )]
    FailedVerification { id: String },
    #[error("backup set {id} holds nothing of {what}")]
    NothingOf { id: String, what: &'static str },
    #[error(
        "cannot tell whether tldw_server is stopped: no health gates are configured. \
         Stop it and pass --server-stopped, or configure target.service.stop and start."
    )]
    NoHealthGates,
    #[error(
        "tldw_server still answers at {url}; a restore needs it stopped. Stop it and pass \
         --server-stopped, or configure target.service.stop and target.service.start."
    )]
    StillAnswers { url: String },
    #[error("cannot tell where this binary is; pass --binary")]
    NoBinary,
    #[error("the drill ran but could not be recorded in the history: {0}")]
    Record(crate::state::StateError),
}

/// Loads and checks the desired state and resolves its backup target, without opening the
/// state store (listing, verifying and printing a schedule need none).
pub fn target_of(
    file: &Path,
    settings: &Settings,
) -> Result<(Checked, BackupTarget), BackupCommandError> {
    let checked = match pipeline::load_checked(file, settings) {
        Ok(checked) if checked.has_errors() => {
            let sources = checked.sources().clone();
            return Err(PipelineError::Invalid {
                diagnostics: checked.diagnostics,
                sources,
            }
            .into());
        }
        Ok(checked) => checked,
        Err(CheckError::Invalid {
            diagnostics,
            sources,
        }) => {
            return Err(PipelineError::Invalid {
                diagnostics,
                sources,
            }
            .into());
        }
        Err(CheckError::Unreadable(error)) => {
            return Err(PipelineError::Unreadable(error).into());
        }
    };
    match Deployment::from_checked(&checked).backup {
        Some(target) => Ok((checked, target)),
        None => Err(BackupCommandError::NoPolicy {
            file: file.to_path_buf(),
        }),
    }
}

/// The sets of `target`, oldest first, each with its manifest when it has a readable one.
pub fn listed(
    target: &BackupTarget,
) -> Result<Vec<(SetInfo, Option<Manifest>)>, BackupCommandError> {
    list_sets(&target.destination, &target.environment).map_err(BackupCommandError::List)
}

/// What `backup list` shows: the sets and what the next apply decides for each.
pub struct Listing {
    pub target: BackupTarget,
    /// Oldest first, each with its manifest when it has a readable one.
    pub sets: Vec<(SetInfo, Option<Manifest>)>,
    /// Why a new set is due, when one is.
    pub due: Option<String>,
    /// The keep rule of each set, or why the next apply deletes it, in the order of `sets`.
    pub decisions: Vec<Decision>,
    pub now: Timestamp,
}

impl Listing {
    /// Seconds since `set` was made (never negative).
    pub fn age(&self, set: &SetInfo) -> u64 {
        self.now
            .as_second()
            .saturating_sub(set.created_at.as_second())
            .max(0) as u64
    }
}

/// The backup sets of the environment `file` describes, and the next apply's decisions.
pub fn list(file: &Path, settings: &Settings) -> Result<Listing, BackupCommandError> {
    let (_, target) = target_of(file, settings)?;
    let sets = listed(&target)?;
    let now = settings.now();
    let infos: Vec<SetInfo> = sets.iter().map(|(set, _)| set.clone()).collect();
    let (due, decisions) = next_decisions(&target.policy, &infos, now);
    Ok(Listing {
        target,
        sets,
        due,
        decisions,
        now,
    })
}

/// The sets `backup verify` verifies: the one named, or every set (perhaps none).
pub fn verify_selection(
    file: &Path,
    settings: &Settings,
    set: Option<&str>,
) -> Result<(BackupTarget, Vec<SetInfo>), BackupCommandError> {
    let (_, target) = target_of(file, settings)?;
    let sets = listed(&target)?;
    let selected = match set {
        Some(id) => match sets.into_iter().find(|(set, _)| set.id == id) {
            Some((set, _)) => vec![set],
            None => {
                return Err(BackupCommandError::NoSuchSet {
                    id: id.to_string(),
                    location: shown(&target.location()),
                });
            }
        },
        None => sets.into_iter().map(|(set, _)| set).collect(),
    };
    Ok((target, selected))
}

/// How verifying one set went.
pub enum Verified {
    /// The set has no manifest, so there is nothing to verify it against.
    Incomplete,
    /// It was read and checked (`ok` or not); the result is recorded in the set.
    Checked(Verification),
    /// It could not be verified.
    Unverifiable(SetError),
}

impl Verified {
    /// Whether the set failed to verify. An incomplete set fails only when it was `named`:
    /// verifying every set passes over the one a backup is still writing.
    pub fn failed(&self, named: bool) -> bool {
        match self {
            Verified::Incomplete => named,
            Verified::Checked(verification) => !verification.ok,
            Verified::Unverifiable(_) => true,
        }
    }
}

/// Verifies `set` against its manifest and records the result in it.
pub async fn verify(target: &BackupTarget, set: &SetInfo, now: Timestamp) -> Verified {
    if !set.complete {
        return Verified::Incomplete;
    }
    match verify_set_with(&target.set_dir(&set.id), now, &VerifyOptions::default()).await {
        Ok(verification) => Verified::Checked(verification),
        Err(error) => Verified::Unverifiable(error),
    }
}

/// What `backup drill` was asked for.
pub struct DrillRequest<'a> {
    /// The set; the newest complete one by default.
    pub set: Option<&'a str>,
    /// Keep the scratch copy.
    pub keep: bool,
    /// `--postgres-url`, a scratch database for an AuthNZ dump.
    pub postgres_url: Option<&'a str>,
}

/// A drill ready to run: the set and how.
pub struct Drill {
    /// The environment whose history records the drill.
    pub environment: crate::state::EnvironmentKey,
    /// `backup.drill`: how often a drill is due.
    pub every: Option<std::time::Duration>,
    pub set: SetInfo,
    pub set_dir: PathBuf,
    pub options: DrillOptions,
}

/// The set to drill and the options to drill it with, or why there is none.
pub fn drill_plan(
    file: &Path,
    settings: &Settings,
    request: &DrillRequest<'_>,
) -> Result<Drill, BackupCommandError> {
    let (checked, target) = target_of(file, settings)?;
    let postgres = request
        .postgres_url
        .map(|url| scratch_database(url, &target))
        .transpose()
        .map_err(BackupCommandError::ScratchDatabase)?;
    let sets = listed(&target)?;
    let set = match request.set {
        Some(id) => sets.iter().map(|(set, _)| set).find(|set| set.id == id),
        None => sets
            .iter()
            .rev()
            .map(|(set, _)| set)
            .find(|set| set.complete),
    };
    let Some(set) = set else {
        let location = shown(&target.location());
        return Err(match request.set {
            Some(id) => BackupCommandError::NoSuchSet {
                id: id.to_string(),
                location,
            },
            None => BackupCommandError::NoCompleteSet { location },
        });
    };
    if !set.complete {
        return Err(BackupCommandError::Incomplete { id: set.id.clone() });
    }
    Ok(Drill {
        every: checked
            .spec
            .backup
            .as_ref()
            .and_then(|backup| backup.drill)
            .map(|every| every.as_std()),
        environment: crate::state::EnvironmentKey::of(&checked.spec),
        set: set.clone(),
        set_dir: target.set_dir(&set.id),
        options: DrillOptions {
            scratch_parent: target.destination.join(&target.environment),
            keep: request.keep,
            postgres,
            pg_bin_dir: None,
        },
    })
}

/// Whether a drill is due by `backup.drill`: when no drill of the environment has passed yet,
/// or the last one that did is at least `every` old (less the scheduler's grace, as for sets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillDue {
    pub due: bool,
    pub every: std::time::Duration,
    /// When the last drill that passed ended.
    pub last_passed: Option<Timestamp>,
}

/// Reads the history for the last drill that passed (read-only).
pub async fn drill_due(
    file: &Path,
    settings: &Settings,
    drill: &Drill,
) -> Result<DrillDue, BackupCommandError> {
    use crate::state::{Outcome, StateStore};
    let every = drill
        .every
        .ok_or_else(|| BackupCommandError::NoDrillPolicy {
            file: file.to_path_buf(),
        })?;
    let store = crate::state::open_read_only(&pipeline::state_location(file, settings))
        .await
        .map_err(BackupCommandError::Record)?;
    let applies = store.applies(Some(&drill.environment), 200).await;
    store.close().await;
    let last_passed = applies
        .map_err(BackupCommandError::Record)?
        .into_iter()
        .filter(|record| record.kind == "drill" && record.outcome == Outcome::Succeeded)
        .filter_map(|record| record.finished_at)
        .max();
    let now = settings.now();
    let due = last_passed.is_none_or(|last| {
        let age = now.duration_since(last).as_secs().max(0) as u64;
        age + crate::plan::backups::grace(every).as_secs() >= every.as_secs()
    });
    Ok(DrillDue {
        due,
        every,
        last_passed,
    })
}

/// Runs `drill`: restores its set into a scratch copy and checks it; the result is recorded in
/// the set.
pub async fn drill(drill: &Drill, now: Timestamp) -> Result<DrillReport, BackupCommandError> {
    drill_set(&drill.set_dir, now, &drill.options)
        .await
        .map_err(|error| BackupCommandError::Drill {
            id: drill.set.id.clone(),
            error,
        })
}

/// Records a drill in the environment's history (`tldw-ops history`, kind `drill`), as it
/// ended: succeeded when the set restored and checked, failed with its first problems when not.
/// It changes nothing the environment manages, and promotion and `rollback --last` pass over it.
pub async fn record_drill(
    file: &Path,
    settings: &Settings,
    drill: &Drill,
    report: &DrillReport,
) -> Result<String, BackupCommandError> {
    use crate::state::{ApplyRecord, Outcome, StateStore};
    let now = settings.now();
    let problems: Vec<String> = report
        .drill
        .problems
        .iter()
        .take(3)
        .map(|problem| format!("{}: {}", problem.item, problem.problem))
        .collect();
    let message = if report.drill.ok {
        format!(
            "restore drill of backup set {}: {} item(s) restored and checked",
            report.set_id, report.drill.items_restored
        )
    } else {
        format!(
            "restore drill of backup set {} FAILED: {}",
            report.set_id,
            problems.join("; ")
        )
    };
    let id = crate::apply::new_apply_id(now);
    let record = ApplyRecord {
        id: id.clone(),
        environment: drill.environment.clone(),
        kind: "drill".to_string(),
        plan_hash: String::new(),
        desired_hash: String::new(),
        shared_hash: None,
        git_commit: None,
        actor_user: settings.user.clone(),
        actor_host: settings.host.clone(),
        pid: std::process::id(),
        started_at: report.drill.drilled_at,
        finished_at: Some(now),
        outcome: if report.drill.ok {
            Outcome::Succeeded
        } else {
            Outcome::Failed
        },
        changes: 0,
        health_passed: None,
        override_reason: None,
        message: Some(message),
        plan_json: String::new(),
    };
    let store = crate::state::open(&pipeline::state_location(file, settings))
        .await
        .map_err(BackupCommandError::Record)?;
    store
        .record_finished(&record)
        .await
        .map_err(BackupCommandError::Record)?;
    store.close().await;
    Ok(id)
}

/// The scratch database of `--postgres-url`: refused when it is the deployment's own AuthNZ
/// database, since a drill replaces every table in it, and when the URL holds a password.
pub fn scratch_database(url: &str, target: &BackupTarget) -> Result<AuthnzSource, String> {
    if crate::secrets::url_has_password(url) {
        return Err(
            "--postgres-url must not hold a password (it would show in the process list): \
                    give it in PGPASSWORD or ~/.pgpass"
                .to_string(),
        );
    }
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!("--postgres-url `{url}` is not a postgres:// URL"));
    }
    if let AuthnzLocation::Postgres(live) = &target.authnz
        && same_database(url, live)
    {
        return Err(
            "--postgres-url names the deployment's own AuthNZ database; a drill replaces every \
             table of the database it is given, so give a scratch one"
                .to_string(),
        );
    }
    Ok(AuthnzSource::Postgres {
        url: url.to_string(),
        password: None,
    })
}

/// Whether two PostgreSQL URLs name one database: host, port (5432 by default) and database
/// name, ignoring the user, the password and the parameters.
fn same_database(left: &str, right: &str) -> bool {
    fn parts(url: &str) -> Option<(String, String, String)> {
        let rest = url.split_once("://")?.1;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host_port = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host_port.ends_with(']') => {
                (host.to_string(), port.to_string())
            }
            _ => (host_port.to_string(), "5432".to_string()),
        };
        let database = path
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_string();
        Some((host.to_ascii_lowercase(), port, database))
    }
    match (parts(left), parts(right)) {
        (Some(left), Some(right)) => left == right,
        _ => left == right,
    }
}

/// What `backup restore` was asked for.
pub struct RestoreRequest<'a> {
    /// The set to restore.
    pub set: &'a str,
    /// Restore only this part of it.
    pub only: Option<BackupItem>,
    /// `--server-stopped`: tldw-ops neither stops the server nor checks that it is silent.
    pub server_stopped: bool,
}

/// One part of a set a restore replaces.
pub struct RestorePart {
    pub part: BackupItem,
    /// How many of the set's files are of this part.
    pub files: usize,
    /// Their bytes.
    pub size: u64,
    /// What they replace, as shown to people.
    pub destination: String,
}

/// A restore ready to confirm and execute.
pub struct Restore<'a> {
    pub target: &'a BackupTarget,
    pub set: &'a SetInfo,
    pub only: Option<BackupItem>,
    /// The parts restored, in the order authnz, user databases, config.
    pub parts: Vec<RestorePart>,
    /// The bytes of everything restored.
    pub total: u64,
    /// A health URL that answered although `--server-stopped` was given.
    pub still_answers: Option<String>,
    /// The plan: a safety backup first, then the stop, the restore, the start and the gates.
    pub plan: Plan,
}

impl Restore<'_> {
    /// Where the safety backup of the data from before goes (the first step's address).
    pub fn safety(&self) -> String {
        self.plan
            .steps
            .first()
            .and_then(|step| step.addresses.first())
            .cloned()
            .unwrap_or_default()
    }

    /// Whether the restore puts back the configuration (`.env` and `config.txt`), which may
    /// then differ from the desired state.
    pub fn restores_config(&self) -> bool {
        self.only.is_none_or(|only| only == BackupItem::Config)
    }
}

/// The plan that restores `request.set` over the deployment of `prepared` (`file` is its
/// desired-state file), with tldw_server stopped: by `target.service.stop`, by the operator
/// (`--server-stopped`), or already, as its health URLs say.
pub async fn restore<'a>(
    prepared: &'a Prepared,
    file: &Path,
    request: &RestoreRequest<'_>,
    now: Timestamp,
) -> Result<Restore<'a>, BackupCommandError> {
    let deployment = &prepared.loaded.deployment;
    let (Some(target), Some(observation)) = (&deployment.backup, &prepared.backups) else {
        return Err(BackupCommandError::NoPolicy {
            file: file.to_path_buf(),
        });
    };
    let Some(set) = observation.sets.iter().find(|set| set.id == request.set) else {
        return Err(BackupCommandError::NoSuchSet {
            id: request.set.to_string(),
            location: observation.location.clone(),
        });
    };
    let manifest = read_manifest(&target.set_dir(&set.id)).map_err(|error| {
        BackupCommandError::Unrestorable {
            id: set.id.clone(),
            error,
        }
    })?;
    if set.verified == Some(false) {
        return Err(BackupCommandError::FailedVerification { id: set.id.clone() });
    }
    let only = request.only;
    let items: Vec<&ManifestItem> = manifest
        .items
        .iter()
        .filter(|item| only.is_none_or(|only| item.kind.include_item() == only))
        .collect();
    if items.is_empty() {
        return Err(BackupCommandError::NothingOf {
            id: set.id.clone(),
            what: only.map(item_name).unwrap_or("anything"),
        });
    }
    // Restore only while the server is stopped.
    let mut still_answers = None;
    let stop = if request.server_stopped {
        still_answers = server_answers(&deployment.health).await;
        None
    } else if let Some(stop) = &deployment.stop {
        Some(stop.as_slice())
    } else if deployment.health.is_empty() {
        return Err(BackupCommandError::NoHealthGates);
    } else if let Some(url) = server_answers(&deployment.health).await {
        return Err(BackupCommandError::StillAnswers { url });
    } else {
        None
    };
    let base = pipeline::make_plan(prepared, now);
    let plan = restore_plan(
        base,
        &RestoreInput {
            set_id: &set.id,
            only,
            sets: &observation.sets,
            now,
            location: &observation.location,
            stop,
            start: deployment.start.as_deref(),
            health: &deployment.health,
            smoke: &deployment.smoke,
            source: observation.source.as_ref(),
        },
    );
    let total: u64 = items.iter().map(|item| item.size).sum();
    let mut parts = Vec::new();
    for part in [
        BackupItem::Authnz,
        BackupItem::UserDatabases,
        BackupItem::Config,
    ] {
        let of_part: Vec<_> = items
            .iter()
            .filter(|item| item.kind.include_item() == part)
            .collect();
        if of_part.is_empty() {
            continue;
        }
        let destination = match part {
            BackupItem::Authnz => match &target.authnz {
                AuthnzLocation::Sqlite(path) => shown(path),
                AuthnzLocation::Postgres(_) => "the PostgreSQL AuthNZ database".to_string(),
            },
            BackupItem::UserDatabases => shown(&target.user_db_base_dir),
            BackupItem::Config => format!(
                "{} and {}",
                shown(&target.env_file),
                shown(&target.config_file)
            ),
        };
        parts.push(RestorePart {
            part,
            files: of_part.len(),
            size: of_part.iter().map(|item| item.size).sum(),
            destination,
        });
    }
    Ok(Restore {
        target,
        set,
        only,
        parts,
        total,
        still_answers,
        plan,
    })
}

/// What `backup schedule` prints for: everything but the scheduler.
pub struct Schedule {
    pub environment: String,
    pub deployment: String,
    pub every: std::time::Duration,
    /// `backup.drill`, when restore drills are scheduled too.
    pub drill: Option<std::time::Duration>,
    /// The tldw-ops binary, absolute.
    pub binary: PathBuf,
    /// The desired-state file, absolute.
    pub file: PathBuf,
    /// `--state` / `TLDW_OPS_STATE`, absolute when it is a path.
    pub state: Option<String>,
    /// The variables the `from_env` secrets read.
    pub variables: Vec<String>,
}

impl Schedule {
    /// The renderer's view of it.
    pub fn input(&self) -> ScheduleInput<'_> {
        ScheduleInput {
            environment: &self.environment,
            deployment: &self.deployment,
            every: self.every,
            drill: self.drill,
            binary: &self.binary,
            file: &self.file,
            state: self.state.as_deref(),
            variables: self.variables.clone(),
        }
    }
}

/// The schedule of the backup policy in `file`, run by `binary` (`--binary`, else this
/// executable; `None` when neither is known).
pub fn schedule(
    file: &Path,
    settings: &Settings,
    binary: Option<PathBuf>,
) -> Result<Schedule, BackupCommandError> {
    let (checked, target) = target_of(file, settings)?;
    let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let binary = match binary {
        Some(binary) => absolute(&binary),
        None => return Err(BackupCommandError::NoBinary),
    };
    let file = absolute(file);
    let state = settings.state.as_deref().map(|state| {
        if state.contains("://") {
            state.to_string()
        } else {
            absolute(Path::new(state)).display().to_string()
        }
    });
    let variables = checked
        .spec
        .secrets
        .iter()
        .flat_map(|secrets| secrets.values.values())
        .filter_map(|secret| secret.from_env.clone())
        .collect();
    let deployment = checked
        .spec
        .deployment
        .as_deref()
        .unwrap_or("default")
        .to_string();
    Ok(Schedule {
        environment: target.environment,
        deployment,
        every: target.policy.every.as_std(),
        drill: target.policy.drill.map(|every| every.as_std()),
        binary,
        file,
        state,
        variables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_postgres_urls_name_one_database_by_host_port_and_name_alone() {
        let live = "postgres://tldw:secret@DB.example.org:5432/tldw_users?sslmode=require";
        for same in [
            "postgres://other@db.example.org/tldw_users",
            "postgresql://db.example.org:5432/tldw_users",
        ] {
            assert!(same_database(same, live), "{same}");
        }
        for other in [
            "postgres://tldw@db.example.org:5433/tldw_users",
            "postgres://tldw@db.example.org/tldw_drill",
            "postgres://tldw@scratch.example.org/tldw_users",
        ] {
            assert!(!same_database(other, live), "{other}");
        }
    }
}
