//! compile: a checked spec into resources. Each resource has its address, desired value,
//! sensitivity and the YAML location that declared it. Secret sources are resolved by the
//! caller (reading the environment or a file is I/O) and passed in.

use std::collections::BTreeMap;

use super::{Address, Desired, DesiredState, Resource, SecretDesired, SecretSource};
use crate::secrets::is_sensitive;
use crate::spec::Checked;
use crate::spec::Location;
use crate::spec::load::escape_pointer;
use crate::spec::mapping::{EnvOrigin, env_entries, retention_values};
use crate::spec::node::Node;
use crate::spec::semantic::locate;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("secret `{name}` (declared at {location}): {reason}")]
    SecretUnavailable {
        name: String,
        location: String,
        reason: String,
    },
}

/// The value location of each entry of a mapping, by key.
fn child_locations(node: Option<&Node>) -> std::collections::HashMap<&str, Location> {
    node.and_then(Node::as_mapping)
        .map(|entries| {
            entries
                .iter()
                .map(|(key, value)| (key.name.as_str(), value.location.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Turns a checked spec into the desired state. `resolved` maps each `from_env`/`from_file`
/// secret name to its value, or the reason it could not be read.
pub fn compile(
    checked: &Checked,
    resolved: &BTreeMap<String, Result<String, String>>,
) -> Result<DesiredState, CompileError> {
    let spec = &checked.spec;
    let root = &checked.loaded.root;
    // One pass over the big mappings instead of a pointer walk per resource, which is
    // quadratic in the number of settings.
    let env_locations = child_locations(root.get("env"));
    let config_sections = root.get("config");
    let quota_locations =
        child_locations(root.get("quotas").and_then(|quotas| quotas.get("users")));
    let mut resources = BTreeMap::new();
    let mut add = |resource: Resource| {
        resources.insert(resource.address.clone(), resource);
    };
    for entry in env_entries(spec) {
        // A value a template built from a secret variable is as sensitive as a secret.
        let sensitive =
            is_sensitive(&entry.name, &entry.value) || checked.loaded.is_sensitive(&entry.pointer);
        add(Resource {
            address: Address::env(&entry.name),
            desired: Desired::Text(entry.value),
            sensitive,
            source: match entry.origin {
                EnvOrigin::Env => env_locations.get(entry.name.as_str()).cloned(),
                _ => locate(root, &entry.pointer),
            },
        });
    }
    for (section, keys) in &spec.config {
        let key_locations =
            child_locations(config_sections.and_then(|sections| sections.get(section)));
        for (key, value) in keys {
            let text = value.render();
            let pointer = format!(
                "/config/{}/{}",
                escape_pointer(section),
                escape_pointer(key)
            );
            add(Resource {
                sensitive: is_sensitive(key, &text) || checked.loaded.is_sensitive(&pointer),
                address: Address::config(section, key),
                desired: Desired::Text(text),
                source: key_locations.get(key.as_str()).cloned(),
            });
        }
    }
    if let Some(secrets) = &spec.secrets {
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
                SecretSource::FromEnv(_) | SecretSource::FromFile(_) => match resolved.get(name) {
                    Some(Ok(value)) => Some(value.clone()),
                    Some(Err(reason)) => {
                        return Err(CompileError::SecretUnavailable {
                            name: name.clone(),
                            location: location
                                .as_ref()
                                .map(ToString::to_string)
                                .unwrap_or_default(),
                            reason: reason.clone(),
                        });
                    }
                    None => {
                        return Err(CompileError::SecretUnavailable {
                            name: name.clone(),
                            location: location
                                .as_ref()
                                .map(ToString::to_string)
                                .unwrap_or_default(),
                            reason: "its source was not read".to_string(),
                        });
                    }
                },
            };
            add(Resource {
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
    }
    if let Some(quotas) = &spec.quotas {
        for (username, limit) in &quotas.users {
            add(Resource {
                address: Address::quota_user(username),
                desired: Desired::Quota(limit.0),
                sensitive: false,
                source: quota_locations.get(username.as_str()).cloned(),
            });
        }
    }
    if spec.target.api.is_some()
        && let Some(retention) = &spec.retention
    {
        for (key, duration) in retention_values(retention) {
            add(Resource {
                address: Address::retention(key.policy_key),
                desired: Desired::Days(duration.as_seconds() / 86_400),
                sensitive: false,
                source: locate(root, key.yaml_path),
            });
        }
    }
    let keep_previous = spec
        .release
        .iter()
        .map(|_| {
            (
                Address::env(crate::spec::mapping::APP_IMAGE),
                crate::spec::mapping::ROLLBACK_IMAGE.to_string(),
            )
        })
        .collect();
    Ok(DesiredState {
        keep_previous,
        environment: spec.environment.clone(),
        deployment: spec
            .deployment
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        resources,
    })
}
