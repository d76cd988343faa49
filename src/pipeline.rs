//! The stages every command that plans shares: load and validate the desired state, resolve
//! secret sources, compile, open the state store, observe the deployment, and plan. The CLI
//! calls these; they hold no printing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::deployment::{Deployment, ObserveError, ObservedFiles, file_values, observe_files};
use crate::model::{Address, DesiredState, Observed, Target};
use crate::plan::{CompileError, compile};
use crate::plan::{Plan, PlanInput, plan};
use crate::secrets::{sha256_hex, value_hash};
use crate::settings::Settings;
use crate::spec::{CheckError, Checked, Diagnostic, LoadError, SourceMap};
use crate::state::{
    ApplyRecord, EnvironmentKey, EnvironmentState, StateError, StateStore, Store, default_location,
    open, open_read_only,
};

pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Unreadable(LoadError),
    #[error("the desired state is invalid")]
    Invalid {
        diagnostics: Vec<Diagnostic>,
        sources: SourceMap,
    },
    #[error(transparent)]
    Secret(#[from] CompileError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error(transparent)]
    ApiSetup(#[from] crate::kinds::admin_api::observe::ApiSetupError),
    #[error(transparent)]
    Api(#[from] crate::providers::tldw_api::ApiError),
    #[error("cannot list the backup sets: {0}")]
    Backups(#[from] crate::providers::backups::BackupError),
    #[error("apply {} of environment {} did not finish (started {} by {}@{})", .0.id, .0.environment, .0.started_at, .0.actor_user, .0.actor_host)]
    Unfinished(Box<ApplyRecord>),
}

/// A desired state, loaded, checked and compiled, with its state store open.
pub struct Loaded {
    pub file: PathBuf,
    pub checked: Checked,
    pub deployment: Deployment,
    pub desired: DesiredState,
    pub desired_hash: String,
    pub shared_hash: Option<String>,
    pub store: Store,
    pub key: EnvironmentKey,
    pub state: EnvironmentState,
    /// Values of `from_env`/`from_file` secrets, for apply. Never printed or stored.
    pub secret_values: BTreeMap<String, String>,
    /// The admin API client, when `target.api` is set.
    pub api: Option<crate::providers::tldw_api::TldwApi>,
    /// The deployment's files, read while the state was read; `observe` takes them.
    pub files: Option<Result<ObservedFiles, ObserveError>>,
}

/// Loaded plus what observe found.
pub struct Prepared {
    pub loaded: Loaded,
    pub observed: Observed,
    pub files: ObservedFiles,
    /// Username -> user id, for quota steps.
    pub user_ids: BTreeMap<String, i64>,
    /// The server's effective registration settings, when the API was asked.
    pub registration: Option<crate::providers::tldw_api::RegistrationSettings>,
    /// The backup sets, when there is a `backup:` policy.
    pub backups: Option<crate::backups::Observation>,
    /// With a `release:`, the SQLite AuthNZ database's schema as the plan shows it
    /// (`user_version` and tables), when there is one to read.
    pub authnz_schema: Option<String>,
}

/// Where state lives for this file: `--state`/`TLDW_OPS_STATE`, else beside the YAML.
pub fn state_location(file: &Path, settings: &Settings) -> String {
    settings
        .state
        .clone()
        .unwrap_or_else(|| default_location(file).display().to_string())
}

/// Loads and validates a desired-state file, reading each secret source once, relative to the
/// file that declares it.
pub fn load_checked(
    file: &std::path::Path,
    settings: &Settings,
) -> Result<crate::spec::Checked, crate::spec::CheckError> {
    let resolve = |secret: &crate::spec::types::SecretSpec, directory: &std::path::Path| {
        crate::secrets::resolve_for_policy(secret, &settings.process_env, directory)
    };
    let mut checked = crate::spec::check(file, &settings.process_env, &resolve)?;
    let warnings = secret_file_checks(&checked);
    checked.diagnostics.extend(warnings);
    Ok(checked)
}

/// A `from_file` secret or API token that group or others can read: the value is as good as
/// published on that machine. A warning, at the `from_file` line, naming the mode. A source that
/// exists but is no regular file, or is too large, is an error there.
fn secret_file_checks(checked: &crate::spec::Checked) -> Vec<crate::spec::Diagnostic> {
    use std::os::unix::fs::PermissionsExt;
    let mut sources: Vec<(String, &str)> = checked
        .spec
        .secrets
        .iter()
        .flat_map(|secrets| secrets.values.iter())
        .filter_map(|(name, secret)| {
            let path = secret.from_file.as_deref()?;
            Some((crate::spec::secret_source_pointer(name, secret), path))
        })
        .collect();
    if let Some(path) = checked
        .spec
        .target
        .api
        .as_ref()
        .and_then(|api| api.token.from_file.as_deref())
    {
        sources.push(("/target/api/token/from_file".to_string(), path));
    }
    let mut diagnostics = Vec::new();
    for (pointer, path) in sources {
        let full = checked.declared_path(&pointer, path);
        let location = crate::spec::semantic::locate(&checked.loaded.root, &pointer);
        // An absent source is not an error here (CI lacks the secrets); one that is there but
        // can never be read (`/dev/zero`, a FIFO, a huge file) is, as `plan` would make it.
        let Ok(metadata) = std::fs::metadata(&full) else {
            continue;
        };
        if let Some(refusal) =
            crate::limits::refusal(&full, &metadata, crate::limits::MAX_SECRET_FILE_BYTES)
        {
            diagnostics.push(
                crate::spec::Diagnostic::error(
                    "secret.file_refused",
                    format!("secret file refused: {refusal}"),
                )
                .at(location.clone())
                .path(pointer.clone())
                .hint("point `from_file` at a regular file that holds only the value"),
            );
            continue;
        }
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            diagnostics.push(
                crate::spec::Diagnostic::warning(
                    "secret.file_mode",
                    format!(
                        "secret file `{path}` has mode {mode:04o}: group or others can read it"
                    ),
                )
                .at(location)
                .path(pointer)
                .hint("let only its owner read it (chmod 600), as the .env itself"),
            );
        }
    }
    diagnostics
}

/// A checked desired state that has no errors, or the error that stops every command.
pub fn usable(checked: Result<Checked, CheckError>) -> Result<Checked, PipelineError> {
    let checked = match checked {
        Ok(checked) => checked,
        Err(CheckError::Invalid {
            diagnostics,
            sources,
        }) => {
            return Err(PipelineError::Invalid {
                diagnostics,
                sources,
            });
        }
        Err(CheckError::Unreadable(error)) => return Err(PipelineError::Unreadable(error)),
    };
    if checked.has_errors() {
        return Err(PipelineError::Invalid {
            diagnostics: checked.diagnostics.clone(),
            sources: checked.sources().clone(),
        });
    }
    Ok(checked)
}

/// Loads, validates and compiles `file`, and opens its state (migrating it when needed), for
/// the commands that write state. Refuses an invalid spec, and an environment with an
/// unfinished apply unless `allow_unfinished`.
pub async fn load(
    file: &Path,
    settings: &Settings,
    allow_unfinished: bool,
) -> Result<Loaded, PipelineError> {
    load_with(file, settings, allow_unfinished, Access::Write).await
}

/// [`load`] for the commands that only read state (plan, drift): the store is opened once,
/// read-only, and nothing is written to it (see [`crate::state::open_read_only`]).
pub async fn load_to_read(
    file: &Path,
    settings: &Settings,
    allow_unfinished: bool,
) -> Result<Loaded, PipelineError> {
    load_with(file, settings, allow_unfinished, Access::Read).await
}

/// Whether a command writes state, which decides how the store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

async fn load_with(
    file: &Path,
    settings: &Settings,
    allow_unfinished: bool,
    access: Access,
) -> Result<Loaded, PipelineError> {
    let started = std::time::Instant::now();
    // Open the state store while the YAML is read and checked on a blocking thread.
    let location = state_location(file, settings);
    let checking = {
        let file = file.to_path_buf();
        let settings = settings.clone();
        tokio::task::spawn_blocking(move || load_checked(&file, &settings))
    };
    let opened = std::time::Instant::now();
    let (checked, store) = tokio::join!(checking, async {
        let store = match access {
            Access::Read => open_read_only(&location).await,
            Access::Write => open(&location).await,
        };
        tracing::info!(
            elapsed_ms = opened.elapsed().as_secs_f64() * 1000.0,
            "opened the state store"
        );
        store
    });
    let checked = checked.expect("loading the desired state does not panic");
    let checked = usable(checked)?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "loaded and validated the desired state"
    );
    let secret_values = resolve_sources(&checked);
    let desired = compile(&checked, &secret_values, crate::kinds::kind)?;
    let secret_values: BTreeMap<String, String> = secret_values
        .into_iter()
        .filter_map(|(name, value)| value.ok().map(|value| (name, value)))
        .collect();
    let deployment = Deployment::from_checked(&checked);
    check_paths(&checked, &deployment)?;
    let api = crate::kinds::admin_api::observe::client(&checked, settings)?;
    let store = store?;
    let key = EnvironmentKey {
        deployment: desired.deployment.clone(),
        environment: desired.environment.clone(),
    };
    if !allow_unfinished && let Some(unfinished) = store.unfinished_apply(&key).await? {
        // A holder that is still alive means the apply is running, not interrupted.
        if let Some(holder) = store.lock_holder(&key).await?
            && holder.apply_id == unfinished.id
            && (holder.host != settings.host || crate::apply::recover::process_alive(holder.pid))
        {
            return Err(PipelineError::State(StateError::Locked {
                environment: key,
                holder,
            }));
        }
        return Err(PipelineError::Unfinished(Box::new(unfinished)));
    }
    let read = std::time::Instant::now();
    // Read the deployment's files while the state is read: neither needs the other.
    let reading = {
        let deployment = deployment.clone();
        tokio::task::spawn_blocking(move || crate::deployment::read_files(&deployment))
    };
    let state = store.environment(&key).await?;
    let files = reading
        .await
        .expect("reading the deployment's files does not panic");
    tracing::info!(
        elapsed_ms = read.elapsed().as_secs_f64() * 1000.0,
        managed = state.managed.len(),
        "read the environment's state"
    );
    let desired_hash = desired_hash(&checked, &secret_values, &state.salt);
    let shared_hash = shared_hash(&checked);
    Ok(Loaded {
        file: file.to_path_buf(),
        checked,
        deployment,
        desired,
        desired_hash,
        shared_hash,
        store,
        key,
        state,
        secret_values,
        api,
        files: Some(files),
    })
}

/// The deployment exists, and its paths stay inside `target.root` once symbolic links are
/// resolved, unless `target.allow_outside_root` lets them out. Every path that escapes is
/// reported, not only the first.
fn check_paths(checked: &Checked, deployment: &Deployment) -> Result<(), PipelineError> {
    use crate::spec::types::TargetPath;
    let root = &checked.loaded.root;
    let invalid = |diagnostics: Vec<Diagnostic>| PipelineError::Invalid {
        diagnostics,
        sources: checked.sources().clone(),
    };
    if !deployment.root.is_dir() {
        return Err(invalid(vec![
            Diagnostic::error(
                "value.root_missing",
                format!(
                    "`target.root` is {}, which is not a directory here: tldw-ops manages an \
                     existing deployment and never creates one",
                    deployment.root.display()
                ),
            )
            .at(crate::spec::semantic::locate(root, "/target/root"))
            .path("/target/root"),
        ]));
    }
    let target = &checked.spec.target;
    let mut diagnostics = Vec::new();
    for (path, file) in [
        (TargetPath::EnvFile, &deployment.env_file),
        (TargetPath::ConfigFile, &deployment.config_file),
        (TargetPath::UserDbBaseDir, &deployment.user_db_base_dir),
    ] {
        if target.allow_outside_root.contains(&path) {
            continue;
        }
        if let Some(real) = crate::spec::paths::escapes(&deployment.root, file) {
            let pointer = if path.value(target).is_some() {
                format!("/target/{}", path.key())
            } else {
                "/target/root".to_string()
            };
            diagnostics.push(
                Diagnostic::error(
                    "value.outside_root",
                    format!(
                        "`target.{}` resolves to {}, outside `target.root` (through a symbolic link)",
                        path.key(),
                        real.display()
                    ),
                )
                .at(crate::spec::semantic::locate(root, &pointer))
                .path(pointer)
                .hint(format!(
                    "if that is intended, say so: `allow_outside_root: [{}]`",
                    path.key()
                )),
            );
        }
    }
    if diagnostics.is_empty() {
        Ok(())
    } else {
        crate::spec::diagnostic::sort(&mut diagnostics);
        Err(invalid(diagnostics))
    }
}

/// Observes every address the desired state declares or the state store manages: the files
/// and the admin API concurrently.
pub async fn observe(mut loaded: Loaded) -> Result<Prepared, PipelineError> {
    let started = std::time::Instant::now();
    let addresses = addresses_of(&loaded);
    let wants_api = addresses
        .iter()
        .any(|address| address.kind().target() == Target::Api)
        || loaded.checked.spec.registration.is_some();
    let files = {
        let deployment = loaded.deployment.clone();
        let addresses = addresses.clone();
        let read = loaded.files.take();
        tokio::task::spawn_blocking(move || match read {
            Some(files) => files.map(|files| (file_values(&files, &addresses), files)),
            None => observe_files(&deployment, &addresses),
        })
    };
    let api = async {
        match &loaded.api {
            Some(api) if wants_api => {
                let api_started = std::time::Instant::now();
                let observation = crate::kinds::admin_api::observe::observe(
                    api,
                    &addresses,
                    loaded.checked.spec.registration.is_some(),
                )
                .await;
                tracing::info!(
                    elapsed_ms = api_started.elapsed().as_secs_f64() * 1000.0,
                    "observed the admin API"
                );
                observation.map(Some)
            }
            _ => Ok(None),
        }
    };
    let backups = async {
        match &loaded.deployment.backup {
            Some(backup) => {
                let backup = backup.clone();
                tokio::task::spawn_blocking(move || crate::backups::observe(&backup))
                    .await
                    .expect("listing backup sets does not panic")
                    .map(Some)
            }
            None => Ok(None),
        }
    };
    let (files, api, backups) = tokio::join!(files, api, backups);
    let backups = backups?;
    let (mut observed, files) = files.expect("observing files does not panic")?;
    let api = api?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        addresses = addresses.len(),
        "observed the deployment"
    );
    let mut user_ids = BTreeMap::new();
    let mut registration = None;
    if let Some(api) = api {
        let unknown: Vec<Diagnostic> = api
            .unknown_users
            .iter()
            .filter_map(|username| {
                let resource = loaded.desired.get(&Address::quota_user(username))?;
                Some(
                    Diagnostic::error(
                        "value.unknown_user",
                        format!(
                            "user `{username}` does not exist on the server; tldw-ops sets quotas of existing users and never creates them"
                        ),
                    )
                    .at(resource.source.clone())
                    .path(format!(
                        "/quotas/users/{}",
                        crate::spec::load::escape_pointer(username)
                    )),
                )
            })
            .collect();
        if !unknown.is_empty() {
            return Err(PipelineError::Invalid {
                diagnostics: unknown,
                sources: loaded.checked.sources().clone(),
            });
        }
        observed.values.extend(api.values);
        user_ids = api.user_ids;
        registration = api.registration;
    }
    let release = Address::release();
    if addresses.contains(&release) {
        let declared = loaded
            .desired
            .get(&release)
            .and_then(|resource| resource.desired.canonical());
        let root = loaded.deployment.root.clone();
        let (value, warning) = tokio::task::spawn_blocking(move || {
            crate::kinds::release::observe(&root, declared.as_deref())
        })
        .await
        .expect("reading the checkout does not panic");
        observed.values.insert(release, value);
        observed.warnings.extend(warning);
    }
    let authnz_schema = match &loaded.checked.spec.release {
        Some(_) => crate::kinds::backups::authnz_schema_summary(&loaded.deployment).await,
        None => None,
    };
    Ok(Prepared {
        loaded,
        observed,
        files,
        user_ids,
        registration,
        backups,
        authnz_schema,
    })
}

/// The observed values as the executor records them: address -> canonical value.
pub fn observed_values(prepared: &Prepared) -> BTreeMap<Address, Option<String>> {
    prepared
        .observed
        .values
        .iter()
        .map(|(address, value)| (address.clone(), value.canonical()))
        .collect()
}

/// The fingerprint `backup.set.<id>` has now, for the staleness check of a saved plan; `None`
/// for other addresses (or without a backup policy, when every backup address is absent).
pub fn backup_fingerprint_now(address: &str, prepared: &Prepared) -> Option<String> {
    let id = address.strip_prefix("backup.set.")?;
    let observation = prepared.backups.as_ref()?;
    Some(crate::plan::backups::set_fingerprint(
        &prepared.loaded.state.salt,
        observation.policy.verify,
        &observation.sets,
        id,
    ))
}

/// The backup part of the plan alone (`apply --only backup`); an error without a policy.
pub fn only_backups(prepared: &Prepared, plan: Plan, now: Timestamp) -> Result<Plan, String> {
    let observation = prepared.backups.as_ref().ok_or_else(|| {
        format!(
            "{} has no `backup:` policy, so there is no backup part to apply",
            prepared.loaded.file.display()
        )
    })?;
    Ok(crate::plan::backups::only_backups(
        plan,
        &observation.input(),
        now,
        &prepared.loaded.state.salt,
    ))
}

/// An address whose observed value moved since a plan was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub address: String,
    pub then: String,
    pub now: String,
}

/// Why a saved plan no longer applies: addresses it touches moved, the desired state resolves
/// to another hash, or it was made against another state store.
pub fn staleness(plan: &Plan, prepared: &Prepared) -> (Vec<Moved>, Vec<String>) {
    let salt = prepared.loaded.state.salt.as_slice();
    let mut moved = Vec::new();
    for (address, then) in &plan.fingerprints {
        let now = backup_fingerprint_now(address, prepared).unwrap_or_else(|| {
            Address::parse(address)
                .ok()
                .and_then(|address| prepared.files.now(&prepared.observed, &address))
                .map(|value| value_hash(salt, &value))
                .unwrap_or_else(|| crate::plan::ABSENT.to_string())
        });
        if now != *then {
            moved.push(Moved {
                address: address.clone(),
                then: then.clone(),
                now,
            });
        }
    }
    let mut reasons = Vec::new();
    let state_id = sha256_hex(salt)[..16].to_string();
    if plan.state_id != state_id {
        reasons.push(format!(
            "the plan was made against another state store (state {}, this one {state_id})",
            plan.state_id
        ));
    }
    if plan.desired_hash != prepared.loaded.desired_hash {
        reasons.push(format!(
            "the desired state now resolves differently (plan {}, now {})",
            &plan.desired_hash[..plan.desired_hash.len().min(12)],
            &prepared.loaded.desired_hash[..12]
        ));
    }
    (moved, reasons)
}

pub fn addresses_of(loaded: &Loaded) -> BTreeSet<Address> {
    let mut addresses: BTreeSet<Address> = loaded.desired.resources.keys().cloned().collect();
    addresses.extend(
        loaded
            .state
            .managed
            .keys()
            .filter_map(|address| Address::parse(address).ok()),
    );
    addresses
}

/// What an upgrade plan says about the data: tldw_server migrates the AuthNZ database when the
/// new release starts, which tldw-ops cannot know in advance; it says where the schema is now
/// and whether a rollback could put it back.
fn upgrade_warning(plan: &Plan, prepared: &Prepared) -> Option<String> {
    let set = crate::plan::backups::upgrade_set(plan)?;
    let includes_authnz = prepared.backups.as_ref().is_some_and(|backups| {
        backups
            .policy
            .include
            .contains(&crate::spec::types::BackupItem::Authnz)
    });
    Some(match (&prepared.authnz_schema, includes_authnz) {
        (_, false) => {
            "upgrade: `backup.include` leaves authnz out, so a migration the new release \
             runs at start cannot be rolled back with the code"
                .to_string()
        }
        (Some(schema), true) => format!(
            "upgrade: the AuthNZ database is at {schema}; the new release may migrate it when it \
             starts, and a rollback puts the copy in backup set {set} back if its schema moved"
        ),
        (None, true) => format!(
            "upgrade: the new release may migrate the AuthNZ database when it starts; backup set \
             {set} holds its copy (a PostgreSQL schema is not compared on rollback)"
        ),
    })
}

/// Plans against what was observed.
pub fn make_plan(prepared: &Prepared, now: Timestamp) -> Plan {
    let loaded = &prepared.loaded;
    let deployment = &loaded.deployment;
    let file = loaded.file.display().to_string();
    // A path allowed outside the root is shown where it really is.
    let shown = |path: &Path, which: crate::spec::types::TargetPath| {
        if loaded
            .checked
            .spec
            .target
            .allow_outside_root
            .contains(&which)
        {
            crate::spec::paths::resolve(path).display().to_string()
        } else {
            display_relative(path)
        }
    };
    let env_file = shown(
        &deployment.env_file,
        crate::spec::types::TargetPath::EnvFile,
    );
    let config_file = shown(
        &deployment.config_file,
        crate::spec::types::TargetPath::ConfigFile,
    );
    let root = display_relative(&deployment.root);
    let git_commit = git_commit(&loaded.checked.loaded.main_file);
    let mut plan = plan(&PlanInput {
        desired: &loaded.desired,
        observed: &prepared.observed,
        state: &loaded.state,
        now,
        tool_version: TOOL_VERSION,
        file: &file,
        desired_hash: &loaded.desired_hash,
        shared_hash: loaded.shared_hash.as_deref(),
        git_commit: git_commit.as_deref(),
        root: &root,
        env_file: &env_file,
        config_file: &config_file,
        api_url: deployment.api_url.as_deref(),
        restart: deployment.restart.as_deref(),
        health: &deployment.health,
        smoke: &deployment.smoke,
        backups: prepared
            .backups
            .as_ref()
            .map(crate::backups::Observation::input),
        kinds: crate::kinds::kind,
    });
    plan.warnings.extend(shadow_warnings(prepared));
    plan.warnings.extend(upgrade_warning(&plan, prepared));
    if let (Some(effective), Some(registration)) =
        (&prepared.registration, &loaded.checked.spec.registration)
    {
        let env_changes = plan
            .steps
            .iter()
            .any(|step| step.kind == crate::plan::StepKind::EnsureEnvFile);
        plan.warnings
            .extend(crate::kinds::admin_api::observe::registration_warnings(
                Some(registration.enabled),
                registration.require_code,
                effective,
                env_changes,
            ));
    }
    plan
}

/// Settings that the `.env` will shadow in config.txt once the plan is applied.
fn shadow_warnings(prepared: &Prepared) -> Vec<String> {
    let desired = &prepared.loaded.desired;
    let env = |name: &str| {
        for address in [Address::env(name), Address::secret(name)] {
            if let Some(resource) = desired.get(&address) {
                return resource.desired.canonical();
            }
        }
        prepared.files.env.get(name).map(str::to_string)
    };
    let config = |section: &str, key: &str| {
        let address = Address::config(section, key);
        if let Some(resource) = desired.resources.values().find(|resource| {
            resource
                .address
                .as_str()
                .eq_ignore_ascii_case(address.as_str())
        }) {
            return resource.desired.canonical();
        }
        prepared
            .files
            .config
            .document()
            .get(section, key)
            .ok()
            .flatten()
    };
    crate::model::shadow::warnings(&env, &config)
}

fn display_relative(path: &Path) -> String {
    crate::spec::source::display_name(path).to_string()
}

/// The hash of the layers a file extends, as written (before templating); `None` without
/// `extends`. Every apply records it, for promotion.
pub fn shared_hash(checked: &Checked) -> Option<String> {
    checked
        .loaded
        .shared
        .as_ref()
        .map(|shared| sha256_hex(shared.to_json().to_string().as_bytes()))
}

/// The values of `from_env` and `from_file` secrets, as validation read them: one read per
/// source, relative to the file that declares it, so what policy checked is what apply writes.
/// Generated secrets are absent; an unreadable source maps to why.
pub fn resolve_sources(checked: &Checked) -> BTreeMap<String, Result<String, String>> {
    use crate::spec::ResolvedSecret;
    checked
        .secrets
        .iter()
        .filter_map(|(name, resolved)| match resolved {
            ResolvedSecret::Value(value) => Some((name.clone(), Ok(value.clone()))),
            ResolvedSecret::Unavailable { reason } => Some((name.clone(), Err(reason.clone()))),
            ResolvedSecret::Generated { .. } => None,
        })
        .collect()
}

/// The hash of the resolved desired state: the typed spec (which holds secret sources, never
/// values) plus a salted fingerprint of every sourced secret value.
fn desired_hash(
    checked: &Checked,
    secret_values: &BTreeMap<String, String>,
    salt: &[u8],
) -> String {
    let mut text = serde_json::to_string(&checked.spec).expect("specs serialise");
    for (name, value) in secret_values {
        text.push('\n');
        text.push_str(name);
        text.push('=');
        text.push_str(&value_hash(salt, value));
    }
    sha256_hex(text.as_bytes())
}

/// The commit checked out where `file` lives, read from `.git` without running git.
pub fn git_commit(file: &Path) -> Option<String> {
    let mut directory = file.parent()?.to_path_buf();
    loop {
        let git = directory.join(".git");
        if git.is_dir() {
            return read_head(&git);
        }
        if git.is_file() {
            // A worktree: `.git` is a file pointing at the real git directory.
            let text = std::fs::read_to_string(&git).ok()?;
            let target = text.strip_prefix("gitdir:")?.trim();
            return read_head(&directory.join(target));
        }
        if !directory.pop() {
            return None;
        }
    }
}

fn read_head(git: &Path) -> Option<String> {
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref:") else {
        return Some(head.to_string());
    };
    let reference = reference.trim();
    // Worktrees keep refs in the common directory.
    let common = std::fs::read_to_string(git.join("commondir"))
        .ok()
        .map(|relative| git.join(relative.trim()))
        .unwrap_or_else(|| git.to_path_buf());
    for base in [git, common.as_path()] {
        if let Ok(commit) = std::fs::read_to_string(base.join(reference)) {
            return Some(commit.trim().to_string());
        }
        if let Ok(packed) = std::fs::read_to_string(base.join("packed-refs")) {
            for line in packed.lines() {
                if let Some((commit, name)) = line.split_once(' ')
                    && name == reference
                {
                    return Some(commit.to_string());
                }
            }
        }
    }
    None
}
