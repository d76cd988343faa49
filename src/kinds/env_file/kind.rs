//! The pure half of the `.env` kind: `env.*` settings (the `env:` mapping and what `cors`,
//! `registration`, `quotas` and `retention` compile to) and `secret.*` values, and how their
//! changes become edits of one `.env` step.

use crate::model::{Address, Desired, Resource, SecretDesired, SecretSource};
use crate::plan::adopt::{AdoptInput, Edit, Refusal};
use crate::plan::kind::{
    CompileError, CompileInput, Diff, Kind, LikelyCause, Resources, StepTarget, Steps,
    child_locations, setting_operation, value_change,
};
use crate::plan::{Action, Change, Operation, PlanInput, SecretFrom, SecretOperation, StepKind};
use crate::secrets::{is_placeholder, is_sensitive, is_tldw_api_key, shown, value_hash};
use crate::spec::edit;
use crate::spec::load::escape_pointer;
use crate::spec::mapping::{EnvOrigin, RETENTION_KEYS, env_entries};
use crate::spec::semantic::locate;
use crate::spec::types::SecretFormat;
use crate::spec::unmap;

/// `env.*` addresses.
pub struct Env;

/// `secret.*` addresses: entries of the `.env` file whose values are never shown.
pub struct Secrets;

/// `.env` keys the tldw Docker entrypoint writes on every start.
pub const ENTRYPOINT_KEYS: &[&str] = &[
    "AUTH_MODE",
    "DATABASE_URL",
    "JOBS_DB_URL",
    "SINGLE_USER_API_KEY",
    "MCP_JWT_SECRET",
    "MCP_API_KEY_SALT",
    "BYOK_ENCRYPTION_KEY",
];

/// Both kinds edit the `.env` file in one step; tldw_server reads it at start.
const ENV_FILE_STEPS: Steps = Steps {
    kind: StepKind::EnsureEnvFile,
    target: StepTarget::EnvFile,
    per_step: None,
    restarts: true,
};

fn entrypoint_cause(address: &Address) -> LikelyCause {
    if ENTRYPOINT_KEYS.contains(&address.name()) {
        LikelyCause::DockerEntrypoint
    } else {
        LikelyCause::ByHand
    }
}

impl Kind for Env {
    fn section(&self, _address: &Address) -> (u8, String) {
        (0, "env".to_string())
    }

    fn key_name<'a>(&self, address: &'a Address) -> Option<&'a str> {
        Some(address.name())
    }

    fn likely_cause(&self, address: &Address) -> LikelyCause {
        entrypoint_cause(address)
    }

    fn compile(
        &self,
        input: &CompileInput<'_>,
        resources: &mut Resources,
    ) -> Result<(), CompileError> {
        let checked = input.checked;
        let root = &checked.loaded.root;
        let env_locations = child_locations(root.get("env"));
        for entry in env_entries(&checked.spec) {
            // A value a template built from a secret variable is as sensitive as a secret.
            let sensitive = is_sensitive(&entry.name, &entry.value)
                || checked.loaded.is_sensitive(&entry.pointer);
            resources.add(Resource {
                address: Address::env(&entry.name),
                desired: Desired::Text(entry.value),
                sensitive,
                source: match entry.origin {
                    EnvOrigin::Env => env_locations.get(entry.name.as_str()).cloned(),
                    _ => locate(root, &entry.pointer),
                },
            });
        }
        Ok(())
    }

    fn operation(&self, input: &PlanInput<'_>, change: &Change) -> Option<Operation> {
        Some(setting_operation(input, change))
    }

    fn steps(&self) -> Option<Steps> {
        Some(ENV_FILE_STEPS)
    }

    fn adopts(&self) -> bool {
        true
    }

    fn adopt(&self, input: &AdoptInput<'_>) -> Result<(String, Edit), Refusal> {
        env_edit(input)
    }
}

/// The pointer and edit of an `env.*` address, by the section that writes it.
fn env_edit(input: &AdoptInput<'_>) -> Result<(String, Edit), Refusal> {
    let AdoptInput {
        checked,
        address,
        now: value,
        does_not_map,
        ..
    } = *input;
    let entry = env_entries(&checked.spec)
        .into_iter()
        .find(|entry| entry.name == address.name())
        .ok_or_else(|| Refusal::NotDeclared(address.clone()))?;
    let section = entry.pointer.trim_start_matches('/').replace('/', ".");
    let edit = match entry.origin {
        EnvOrigin::Env | EnvOrigin::Release => {
            let text = edit::template_safe(value).ok_or_else(|| {
                does_not_map(
                    "env",
                    "the value holds template syntax that cannot be escaped".to_string(),
                )
            })?;
            Edit::Scalar(edit::scalar(&text))
        }
        EnvOrigin::Cors if entry.name == crate::spec::mapping::ALLOWED_ORIGINS => {
            let origins = unmap::origins(value).map_err(|reason| {
                does_not_map(
                    &section,
                    format!(
                        "{reason}. Edit the list by hand, or declare the raw text as `env: {{ ALLOWED_ORIGINS: ... }}` instead of `cors.allowed_origins`"
                    ),
                )
            })?;
            Edit::Sequence(origins.iter().map(|origin| edit::scalar(origin)).collect())
        }
        EnvOrigin::Cors | EnvOrigin::Registration | EnvOrigin::Quotas => {
            let flag = unmap::boolean(value).map_err(|reason| does_not_map(&section, reason))?;
            Edit::Scalar(flag.to_string())
        }
        EnvOrigin::Retention => {
            let key = RETENTION_KEYS
                .iter()
                .find(|key| key.env_name == entry.name)
                .expect("retention entries come from the table");
            let days = unmap::retention_days(key, value)
                .map_err(|reason| does_not_map(&section, reason))?;
            Edit::Scalar(format!("{days}d"))
        }
    };
    Ok((entry.pointer, edit))
}

impl Kind for Secrets {
    fn section(&self, _address: &Address) -> (u8, String) {
        (1, "secrets".to_string())
    }

    fn key_name<'a>(&self, address: &'a Address) -> Option<&'a str> {
        Some(address.name())
    }

    fn likely_cause(&self, address: &Address) -> LikelyCause {
        entrypoint_cause(address)
    }

    fn compile(
        &self,
        input: &CompileInput<'_>,
        resources: &mut Resources,
    ) -> Result<(), CompileError> {
        let Some(secrets) = &input.checked.spec.secrets else {
            return Ok(());
        };
        let root = &input.checked.loaded.root;
        for (name, secret) in &secrets.values {
            let pointer = format!("/secrets/values/{}", escape_pointer(name));
            let location = locate(root, &pointer);
            let source = match (&secret.generate, &secret.from_env, &secret.from_file) {
                (Some(generate), _, _) => SecretSource::Generate(generate.clone()),
                (None, Some(variable), _) => SecretSource::FromEnv(variable.clone()),
                (None, None, Some(path)) => SecretSource::FromFile(path.clone()),
                (None, None, None) => unreachable!("validation requires exactly one source"),
            };
            let value = match &source {
                SecretSource::Generate(_) => None,
                SecretSource::FromEnv(_) | SecretSource::FromFile(_) => {
                    let reason = match input.resolved.get(name) {
                        Some(Ok(value)) => Ok(value.clone()),
                        Some(Err(reason)) => Err(reason.clone()),
                        None => Err("its source was not read".to_string()),
                    };
                    Some(reason.map_err(|reason| {
                        CompileError::SecretUnavailable {
                            name: name.clone(),
                            location: location
                                .as_ref()
                                .map(ToString::to_string)
                                .unwrap_or_default(),
                            reason,
                        }
                    })?)
                }
            };
            resources.add(Resource {
                address: Address::secret(name),
                desired: Desired::Secret(SecretDesired {
                    source,
                    rotate_after: secret.rotate_after.map(|duration| duration.as_seconds()),
                    keep_previous_as: secret.keep_previous_as.clone(),
                    resolved: value,
                }),
                sensitive: true,
                source: location,
            });
        }
        Ok(())
    }

    /// A secret from a source changes when its value differs; a generated one when it is
    /// missing, a placeholder, not in the asked-for form, or older than `rotate_after`.
    fn change(&self, input: &PlanInput<'_>, diff: &Diff<'_>) -> Option<Change> {
        let Desired::Secret(secret) = diff.desired else {
            return value_change(diff);
        };
        let before = diff.observed.canonical();
        let generated = matches!(secret.source, SecretSource::Generate(_));
        if !generated {
            let value = secret.resolved.as_deref()?;
            let after = Some(shown(diff.salt, value, true));
            let origin = match &secret.source {
                SecretSource::FromEnv(name) => format!("environment variable {name}"),
                SecretSource::FromFile(path) => format!("file {path}"),
                SecretSource::Generate(_) => unreachable!(),
            };
            return match &before {
                None => Some(diff.change(
                    Action::Create,
                    format!("not present; set from {origin}"),
                    None,
                    after,
                )),
                Some(current) if current == value => None,
                Some(_) => Some(diff.change(
                    Action::Update,
                    format!("value differs from its source ({origin})"),
                    diff.before_shown(),
                    after,
                )),
            };
        }
        let SecretSource::Generate(generate) = &secret.source else {
            unreachable!()
        };
        let after = Some("(generated at apply)".to_string());
        let Some(current) = &before else {
            return Some(diff.change(
                Action::Create,
                "not present; generated during apply".to_string(),
                None,
                after,
            ));
        };
        if is_placeholder(current) {
            return Some(diff.change(
                Action::Update,
                "current value is a placeholder".to_string(),
                diff.before_shown(),
                after,
            ));
        }
        match generate.format {
            Some(SecretFormat::TldwApiKey) if !is_tldw_api_key(current) => {
                return Some(diff.change(
                    Action::Update,
                    "current value is not in tldw's tldw_<kid>.<secret> form".to_string(),
                    diff.before_shown(),
                    after,
                ));
            }
            Some(SecretFormat::Fernet) if !is_fernet_key(current) => {
                return Some(diff.change(
                    Action::Update,
                    "current value is not a Fernet key".to_string(),
                    diff.before_shown(),
                    after,
                ));
            }
            None if current.chars().count() < generate.length.unwrap_or(64) as usize => {
                return Some(diff.change(
                    Action::Update,
                    format!(
                        "current value has {} characters; {} are asked for",
                        current.chars().count(),
                        generate.length.unwrap_or(64)
                    ),
                    diff.before_shown(),
                    after,
                ));
            }
            _ => {}
        }
        let rotate_after = secret.rotate_after?;
        let meta = input.state.secrets.get(diff.address.name())?;
        if meta.fingerprint != value_hash(diff.salt, current) {
            // Changed outside tldw-ops: its age is unknown, so it is not rotated on a guess.
            return None;
        }
        let age = input.now.duration_since(meta.set_at).as_secs().max(0) as u64;
        (age >= rotate_after).then(|| {
            diff.change(
                Action::Rotate,
                format!("age {} > {} (rotate_after)", days(age), days(rotate_after)),
                diff.before_shown(),
                after,
            )
        })
    }

    fn operation(&self, input: &PlanInput<'_>, change: &Change) -> Option<Operation> {
        if change.action == Action::Delete {
            return Some(Operation::Remove {
                address: change.address.clone(),
            });
        }
        let Some(Desired::Secret(secret)) = input
            .desired
            .get(&change.address)
            .map(|resource| &resource.desired)
        else {
            return None;
        };
        let generated = matches!(secret.source, SecretSource::Generate(_));
        Some(Operation::Set {
            address: change.address.clone(),
            value: None,
            secret: Some(SecretOperation {
                from: if generated {
                    SecretFrom::Generate
                } else {
                    SecretFrom::Desired
                },
                keep_previous_as: secret.keep_previous_as.clone(),
                expect: (!generated).then(|| change.after.clone()).flatten(),
            }),
        })
    }

    fn steps(&self) -> Option<Steps> {
        Some(ENV_FILE_STEPS)
    }

    /// Taken, so `drift --adopt` explains where a secret's value comes from instead.
    fn adopts(&self) -> bool {
        true
    }
}

fn days(seconds: u64) -> String {
    if seconds >= 86_400 || seconds == 0 {
        format!("{}d", seconds / 86_400)
    } else if seconds >= 3_600 {
        format!("{}h", seconds / 3_600)
    } else {
        format!("{seconds}s")
    }
}

/// A Fernet key: 32 bytes in URL-safe base64 with padding (44 characters).
fn is_fernet_key(value: &str) -> bool {
    value.len() == 44
        && value.ends_with('=')
        && value[..43]
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}
