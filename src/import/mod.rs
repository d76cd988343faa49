//! `import`: a desired-state file written from a running deployment, so that adopting tldw-ops
//! starts from an empty plan. It declares only what differs from what tldw_server ships (the
//! `.env.example` and `config.txt` of `fixtures/tldw_server/`, embedded), maps values into the
//! typed sections only when tldw-ops would write exactly the text that is there (else the raw
//! string goes under `env:`), and replaces every secret by a `from_env` reference.
//!
//! [`read`] does the I/O (the two files and, optionally, the admin API); [`render`] is a pure
//! function of what was read. No secret value is ever put into the YAML or into anything this
//! module returns: secrets are reported by name only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::model::{Address, ObservedValue};
use crate::providers::config_file::{ConfigFile, ConfigFileError};
use crate::providers::env_file::{EnvFile, EnvFileError};
use crate::providers::files::FileSnapshot;
use crate::providers::tldw_api::{ApiError, TldwApi};
use crate::secrets::{is_placeholder, is_sensitive, looks_like_secret_name};
use crate::spec::edit::{key, scalar, template_safe};
use crate::spec::mapping::{
    ALLOWED_ORIGINS, CORS_ALLOW_CREDENTIALS, ENABLE_REGISTRATION, REQUIRE_REGISTRATION_CODE,
    RETENTION_KEYS, RetentionKey, USAGE_QUOTAS_ENABLED,
};
use crate::spec::types::{API_VERSION, ApiAuth};
use crate::spec::unmap;

/// tldw_server's shipped `.env` template: keys with these values are defaults, not imported.
pub const SHIPPED_ENV: &str = include_str!("../../fixtures/tldw_server/env.example");
/// tldw_server's shipped `config.txt`.
pub const SHIPPED_CONFIG: &str = include_str!("../../fixtures/tldw_server/config.txt");

/// Prefix of the variables that carry imported secrets.
pub const SECRET_VARIABLE_PREFIX: &str = "TLDW_IMPORT_";

/// What to import and how to describe it.
#[derive(Debug, Clone)]
pub struct Options {
    /// `target.root` as it will be written.
    pub root: String,
    /// Where the deployment's files are, as this process reaches them.
    pub env_file: PathBuf,
    pub config_file: PathBuf,
    /// `target.env_file` and `target.config_file`, when they are not in the usual place.
    pub env_file_in_yaml: Option<String>,
    pub config_file_in_yaml: Option<String>,
    pub environment: String,
    pub api: Option<ApiOptions>,
    /// The day of the import, `YYYY-MM-DD`.
    pub date: String,
}

#[derive(Debug, Clone)]
pub struct ApiOptions {
    pub url: String,
    /// The variable that holds the admin token, written as `token: { from_env: ... }`.
    pub token_env: String,
    pub auth: ApiAuth,
}

/// What the admin API reported.
#[derive(Debug, Clone, Default)]
pub struct ApiFindings {
    /// Username -> quota in MB (`None`: no quota set).
    pub quotas: BTreeMap<String, Option<u64>>,
    /// Retention policy key -> days the server enforces now.
    pub retention: BTreeMap<String, u64>,
}

/// What the deployment holds.
#[derive(Debug, Clone)]
pub struct Found {
    pub env: EnvFile,
    pub config: ConfigFile,
    pub api: Option<ApiFindings>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Env(#[from] EnvFileError),
    #[error(transparent)]
    Config(#[from] ConfigFileError),
    #[error("{path} does not exist: is `--root` the tldw_server directory?")]
    Missing { path: PathBuf },
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// Reads the deployment's `.env` and `config.txt`, and with `api` every user's quota and the
/// retention policies.
pub async fn read(options: &Options, api: Option<&TldwApi>) -> Result<Found, ImportError> {
    let env = EnvFile::read(&options.env_file)?;
    let config = ConfigFile::read(&options.config_file)?;
    if !env.snapshot.exists() && !config.snapshot.exists() {
        return Err(ImportError::Missing {
            path: options.env_file.clone(),
        });
    }
    let api = match api {
        None => None,
        Some(api) => {
            let (users, retention) = tokio::join!(api.all_users(), api.retention_policies());
            let quotas = api.quotas(&users?).await?;
            Some(ApiFindings {
                quotas,
                retention: crate::kinds::admin_api::observe::resolve_retention(retention?),
            })
        }
    };
    Ok(Found { env, config, api })
}

/// One secret the file refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretReference {
    /// The `.env` name.
    pub name: String,
    /// The process environment variable to export with its current value.
    pub variable: String,
}

/// The written file and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub yaml: String,
    pub secrets: Vec<SecretReference>,
    /// Raw `env:` values.
    pub env: usize,
    /// The typed sections written (`cors`, `registration`, `quotas.enforce`).
    pub sections: Vec<&'static str>,
    pub config: usize,
    pub quotas: usize,
    pub retention: usize,
    /// Why some things were not imported (names only, never values).
    pub left_out: Vec<String>,
}

impl Imported {
    /// One line for people: what the file declares.
    pub fn summary(&self) -> String {
        let count = |number: usize, one: &str, many: &str| {
            format!("{number} {}", if number == 1 { one } else { many })
        };
        let mut parts = vec![
            count(self.env, ".env value", ".env values"),
            count(self.config, "config.txt option", "config.txt options"),
            count(self.secrets.len(), "secret reference", "secret references"),
        ];
        parts.extend(self.sections.iter().map(|section| section.to_string()));
        if self.quotas > 0 {
            parts.push(count(self.quotas, "user quota", "user quotas"));
        }
        if self.retention > 0 {
            parts.push(count(
                self.retention,
                "retention policy",
                "retention policies",
            ));
        }
        format!("declares {}", parts.join(", "))
    }
}

fn shipped_env() -> EnvFile {
    EnvFile::from_snapshot(snapshot("env.example", SHIPPED_ENV))
        .expect("the shipped .env.example parses")
}

fn shipped_config() -> ConfigFile {
    ConfigFile::from_snapshot(snapshot("config.txt", SHIPPED_CONFIG))
        .expect("the shipped config.txt parses")
}

fn snapshot(name: &str, text: &str) -> FileSnapshot {
    FileSnapshot {
        path: PathBuf::from(name),
        content: Some(text.to_string()),
        mode: None,
        owner: None,
    }
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_username(name: &str) -> bool {
    (3..=50).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Where each `.env` value goes.
#[derive(Default)]
struct Sections {
    env: Vec<(String, String)>,
    secrets: Vec<SecretReference>,
    cors: Option<(Vec<String>, Option<bool>)>,
    registration: Option<(bool, Option<bool>)>,
    enforce: Option<bool>,
    retention: BTreeMap<&'static str, u64>,
    left_out: Vec<String>,
    comments: Vec<String>,
}

/// Builds the desired-state file.
pub fn render(options: &Options, found: &Found) -> Imported {
    let shipped_env = shipped_env();
    let env_document = found.env.document();
    let observed = |name: &str| env_document.get(name).map(str::to_string);
    let mut sections = Sections::default();
    // Keys that differ from the shipped template, in the order of the deployment's file.
    let mut imported: Vec<(String, String)> = Vec::new();
    for entry in env_document.entries() {
        let Some(value) = entry.value.clone() else {
            continue;
        };
        let name = entry.key.to_string();
        let shipped = shipped_env.get(&name);
        // Judged like compile judges it, so what plan would mask is never a plain value here.
        let secret = is_sensitive(&name, &value);
        let empty_secret = value.trim().is_empty() && looks_like_secret_name(&name);
        if secret && is_placeholder(&value) {
            sections.left_out.push(format!(
                "{name}: a placeholder in the .env; declare it under `secrets:` once it has a real value"
            ));
            continue;
        }
        if shipped == Some(value.as_str()) {
            continue;
        }
        if !valid_env_name(&name) {
            sections.left_out.push(format!(
                "{name}: not a name tldw-ops can declare (letters, digits and `_` only)"
            ));
            continue;
        }
        if empty_secret {
            sections.left_out.push(format!(
                "{name}: empty in the .env; declare it under `secrets:` once it has a value"
            ));
            continue;
        }
        if secret {
            sections.secrets.push(SecretReference {
                variable: format!("{SECRET_VARIABLE_PREFIX}{name}"),
                name,
            });
            continue;
        }
        imported.push((name, value));
    }
    let is_imported = |name: &str| imported.iter().any(|(key, _)| key == name);
    let mut raw: BTreeMap<String, String> = BTreeMap::new();

    // CORS: both keys go into `cors:` when ALLOWED_ORIGINS is there in the form tldw-ops writes.
    if is_imported(ALLOWED_ORIGINS) || is_imported(CORS_ALLOW_CREDENTIALS) {
        let origins = observed(ALLOWED_ORIGINS).map(|text| unmap::origins(&text));
        let credentials = observed(CORS_ALLOW_CREDENTIALS).map(|text| unmap::boolean(&text));
        match origins {
            Some(Ok(origins)) => {
                let credentials = match credentials {
                    Some(Ok(flag)) => Some(flag),
                    Some(Err(reason)) => {
                        sections.comments.push(format!(
                            "CORS_ALLOW_CREDENTIALS is kept as a raw `env:` value, not `cors.allow_credentials`: {reason}"
                        ));
                        None
                    }
                    None => None,
                };
                let wildcard = origins.iter().any(|origin| origin.contains('*'));
                if wildcard && credentials == Some(true) {
                    sections.comments.push(
                        "ALLOWED_ORIGINS has `*` with CORS_ALLOW_CREDENTIALS=true, which tldw refuses to start with; both are kept as raw `env:` values".to_string(),
                    );
                } else {
                    sections.cors = Some((origins, credentials));
                }
            }
            Some(Err(reason)) => sections.comments.push(format!(
                "ALLOWED_ORIGINS is kept as a raw `env:` value, not `cors.allowed_origins`: {reason}"
            )),
            None => {}
        }
    }
    // Registration: `enabled` is required, so the section needs ENABLE_REGISTRATION.
    if is_imported(ENABLE_REGISTRATION) || is_imported(REQUIRE_REGISTRATION_CODE) {
        let enabled = observed(ENABLE_REGISTRATION).map(|text| unmap::boolean(&text));
        let require = observed(REQUIRE_REGISTRATION_CODE).map(|text| unmap::boolean(&text));
        match enabled {
            Some(Ok(enabled)) => {
                let require = match require {
                    Some(Ok(flag)) => Some(flag),
                    Some(Err(reason)) => {
                        sections.comments.push(format!(
                            "REQUIRE_REGISTRATION_CODE is kept as a raw `env:` value, not `registration.require_code`: {reason}"
                        ));
                        None
                    }
                    None => None,
                };
                sections.registration = Some((enabled, require));
            }
            Some(Err(reason)) => sections.comments.push(format!(
                "ENABLE_REGISTRATION is kept as a raw `env:` value, not `registration.enabled`: {reason}"
            )),
            None => {}
        }
    }
    if is_imported(USAGE_QUOTAS_ENABLED) {
        match observed(USAGE_QUOTAS_ENABLED).map(|text| unmap::boolean(&text)) {
            Some(Ok(flag)) => sections.enforce = Some(flag),
            Some(Err(reason)) => sections.comments.push(format!(
                "USAGE_QUOTAS_ENABLED is kept as a raw `env:` value, not `quotas.enforce`: {reason}"
            )),
            None => {}
        }
    }
    for retention in RETENTION_KEYS {
        if !is_imported(retention.env_name) {
            continue;
        }
        let text = observed(retention.env_name).unwrap_or_default();
        match unmap::retention_days(retention, &text) {
            Ok(days) => {
                sections.retention.insert(retention.policy_key, days);
            }
            Err(reason) => sections.comments.push(format!(
                "{} is kept as a raw `env:` value, not `retention`: {reason}",
                retention.env_name
            )),
        }
    }
    // tldw raises a weekly window below the daily one; the policy refuses to declare it.
    if let (Some(all), Some(weekly)) = (
        sections.retention.get("privilege_snapshots").copied(),
        sections
            .retention
            .get("privilege_snapshots_weekly")
            .copied(),
    ) && weekly < all
    {
        sections.retention.remove("privilege_snapshots_weekly");
        sections.comments.push(
            "PRIVILEGE_SNAPSHOT_WEEKLY_RETENTION_DAYS is below the daily window and kept as a raw `env:` value".to_string(),
        );
    }
    let mut quotas: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(api) = &found.api {
        reconcile_retention_with_api(api, &mut sections);
        for (username, quota) in &api.quotas {
            let Some(quota) = quota else { continue };
            if valid_username(username) {
                quotas.insert(username.clone(), *quota);
            } else {
                sections.left_out.push(format!(
                    "the quota of user `{username}`: not a username tldw-ops can declare"
                ));
            }
        }
    }
    // Everything not taken by a section stays a raw `env:` value.
    for (name, value) in &imported {
        let in_section = match name.as_str() {
            ALLOWED_ORIGINS => sections.cors.is_some(),
            CORS_ALLOW_CREDENTIALS => sections
                .cors
                .as_ref()
                .is_some_and(|(_, credentials)| credentials.is_some()),
            ENABLE_REGISTRATION => sections.registration.is_some(),
            REQUIRE_REGISTRATION_CODE => sections
                .registration
                .as_ref()
                .is_some_and(|(_, require)| require.is_some()),
            USAGE_QUOTAS_ENABLED => sections.enforce.is_some(),
            other => RETENTION_KEYS.iter().any(|retention| {
                retention.env_name == other && sections.retention.contains_key(retention.policy_key)
            }),
        };
        if !in_section {
            raw.insert(name.clone(), value.clone());
        }
    }
    for (name, _) in imported {
        if let Some(value) = raw.remove(&name) {
            match template_safe(&value) {
                Some(value) => sections.env.push((name, value)),
                None => sections.left_out.push(format!(
                    "{name}: its value holds template syntax that cannot be escaped"
                )),
            }
        }
    }
    let (config, config_left_out) = config_values(&found.config);
    sections.left_out.extend(config_left_out);
    write_file(options, &sections, &config, &quotas)
}

/// With the admin API, a retention policy the server enforces at another value than the `.env`
/// says would make the first plan change the server: such keys stay raw `env:` values, and
/// overrides the `.env` does not mention are noted, not declared (declaring one would also
/// write its variable into the `.env`).
fn reconcile_retention_with_api(api: &ApiFindings, sections: &mut Sections) {
    for retention in RETENTION_KEYS {
        let Some(&server) = api.retention.get(retention.policy_key) else {
            continue;
        };
        match sections.retention.get(retention.policy_key) {
            Some(&declared) if declared != server => {
                sections.retention.remove(retention.policy_key);
                sections.comments.push(format!(
                    "{} is kept as a raw `env:` value: the server enforces {server} days for `{}` (an override made through the admin API), the .env says {declared}",
                    retention.env_name, retention.policy_key
                ));
            }
            Some(_) => {}
            None if server != retention.default_days => sections.comments.push(format!(
                "the server enforces {server} days for `{}` (tldw's default is {}); add `{}: {server}d` to manage it (that also writes {} into the .env)",
                retention.policy_key,
                retention.default_days,
                yaml_path_text(retention),
                retention.env_name
            )),
            None => {}
        }
    }
}

fn yaml_path_text(retention: &RetentionKey) -> String {
    retention
        .yaml_path
        .trim_start_matches('/')
        .replace('/', ".")
}

/// config.txt options that differ from the shipped file: section -> (key, value), in file
/// order, and what was left out.
#[allow(clippy::type_complexity)]
fn config_values(config: &ConfigFile) -> (Vec<(String, Vec<(String, String)>)>, Vec<String>) {
    let shipped = shipped_config();
    let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut left_out = Vec::new();
    for entry in config.document().entries() {
        let address = Address::config(entry.section, entry.key);
        let ObservedValue::Text(value) = config.observe(&address) else {
            continue;
        };
        if let ObservedValue::Text(default) = shipped.observe(&address)
            && default == value
        {
            continue;
        }
        if is_sensitive(entry.key, &value) && !value.is_empty() {
            left_out.push(format!(
                "[{}] {} in config.txt: it holds a secret{}; tldw-ops manages secrets in the .env only (move it to its environment variable under `secrets:`)",
                entry.section,
                entry.key,
                if is_placeholder(&value) {
                    " placeholder"
                } else {
                    ""
                }
            ));
            continue;
        }
        let Some(value) = template_safe(&value) else {
            left_out.push(format!(
                "[{}] {}: its value holds template syntax that cannot be escaped",
                entry.section, entry.key
            ));
            continue;
        };
        match sections
            .iter_mut()
            .find(|(section, _)| section == entry.section)
        {
            Some((_, keys)) => keys.push((entry.key.to_string(), value)),
            None => sections.push((
                entry.section.to_string(),
                vec![(entry.key.to_string(), value)],
            )),
        }
    }
    (sections, left_out)
}

fn write_file(
    options: &Options,
    sections: &Sections,
    config: &[(String, Vec<(String, String)>)],
    quotas: &BTreeMap<String, u64>,
) -> Imported {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# yaml-language-server: $schema=tldw-ops.schema.json\n\
         # (write that schema beside this file with `tldw-ops schema > tldw-ops.schema.json`)\n\
         #\n\
         # Imported by `tldw-ops import` on {} from {}.\n\
         # Only what differs from tldw_server's shipped .env.example and config.txt is declared;\n\
         # everything else keeps tldw's defaults and is not managed.",
        options.date, options.root
    );
    if !sections.secrets.is_empty() {
        let _ = writeln!(
            out,
            "#\n\
             # Secrets are referenced, never written here. Before `tldw-ops plan` or `apply`, export\n\
             # each variable below with the value its .env key has now (in CI, as secret variables):"
        );
        for secret in &sections.secrets {
            let _ = writeln!(
                out,
                "#   {}  (the current {})",
                secret.variable, secret.name
            );
        }
    }
    let _ = writeln!(out, "apiVersion: {API_VERSION}");
    let _ = writeln!(out, "environment: {}", scalar(&options.environment));
    let _ = writeln!(out, "target:\n  root: {}", scalar(&options.root));
    if let Some(env_file) = &options.env_file_in_yaml {
        let _ = writeln!(out, "  env_file: {}", scalar(env_file));
    }
    if let Some(config_file) = &options.config_file_in_yaml {
        let _ = writeln!(out, "  config_file: {}", scalar(config_file));
    }
    if let Some(api) = &options.api {
        let _ = writeln!(
            out,
            "  api:\n    url: {}\n    token: {{ from_env: {} }}",
            scalar(&api.url),
            api.token_env
        );
        if api.auth == ApiAuth::ApiKey {
            let _ = writeln!(out, "    auth: api_key");
        }
    }
    if !sections.env.is_empty() {
        let _ = writeln!(out, "\nenv:");
        for (name, value) in &sections.env {
            let _ = writeln!(out, "  {}: {}", key(name), scalar(value));
        }
    }
    let config_count: usize = config.iter().map(|(_, keys)| keys.len()).sum();
    if !config.is_empty() {
        let _ = writeln!(out, "\nconfig:");
        for (section, keys) in config {
            let _ = writeln!(out, "  {}:", key(section));
            for (name, value) in keys {
                let _ = writeln!(out, "    {}: {}", key(name), scalar(value));
            }
        }
    }
    if !sections.secrets.is_empty() {
        let _ = writeln!(out, "\nsecrets:\n  values:");
        for secret in &sections.secrets {
            let _ = writeln!(
                out,
                "    # export {} with the current value of {} from the .env",
                secret.variable, secret.name
            );
            let _ = writeln!(
                out,
                "    {}: {{ from_env: {} }}",
                key(&secret.name),
                secret.variable
            );
        }
    }
    if let Some((origins, credentials)) = &sections.cors {
        let listed: Vec<String> = origins.iter().map(|origin| scalar(origin)).collect();
        let _ = writeln!(out, "\ncors:\n  allowed_origins: [{}]", listed.join(", "));
        if let Some(credentials) = credentials {
            let _ = writeln!(out, "  allow_credentials: {credentials}");
        }
    }
    if let Some((enabled, require)) = &sections.registration {
        let _ = writeln!(out, "\nregistration:\n  enabled: {enabled}");
        if let Some(require) = require {
            let _ = writeln!(out, "  require_code: {require}");
        }
    }
    if sections.enforce.is_some() || !quotas.is_empty() {
        let _ = writeln!(out, "\nquotas:");
        if let Some(enforce) = sections.enforce {
            let _ = writeln!(out, "  enforce: {enforce}");
        }
        if !quotas.is_empty() {
            let _ = writeln!(out, "  users:");
            for (username, quota) in quotas {
                let _ = writeln!(out, "    {}: {quota}", key(username));
            }
        }
    }
    if !sections.retention.is_empty() {
        let _ = writeln!(out, "\nretention:");
        let days = |policy: &str| sections.retention.get(policy).copied();
        let (all, weekly) = (
            days("privilege_snapshots"),
            days("privilege_snapshots_weekly"),
        );
        if all.is_some() || weekly.is_some() {
            let _ = writeln!(out, "  privilege_snapshots:");
            if let Some(all) = all {
                let _ = writeln!(out, "    keep_all: {all}d");
            }
            if let Some(weekly) = weekly {
                let _ = writeln!(out, "    keep_weekly: {weekly}d");
            }
        }
        for retention in RETENTION_KEYS {
            if retention.policy_key.starts_with("privilege_snapshots") {
                continue;
            }
            if let Some(days) = days(retention.policy_key) {
                let _ = writeln!(out, "  {}: {days}d", retention.policy_key);
            }
        }
    }
    let mut notes: Vec<&String> = sections.comments.iter().collect();
    notes.extend(sections.left_out.iter());
    if !notes.is_empty() {
        let _ = writeln!(out, "\n# Not imported as you might expect:");
        for note in &notes {
            let _ = writeln!(out, "#   - {note}");
        }
    }
    let _ = writeln!(
        out,
        "\n# Backups: tldw_server has no backup policy of its own to read, so none is declared.\n\
         # Declaring one makes apply take and prune backup sets, for example:\n\
         # backup:\n\
         #   destination: /var/backups/tldw\n\
         #   every: 1d\n\
         #   keep: {{ daily: 7, weekly: 4, monthly: 6 }}\n\
         #   before_apply: true"
    );
    Imported {
        yaml: out,
        secrets: sections.secrets.clone(),
        env: sections.env.len(),
        sections: [
            sections.cors.as_ref().map(|_| "cors"),
            sections.registration.as_ref().map(|_| "registration"),
            sections.enforce.map(|_| "quotas.enforce"),
        ]
        .into_iter()
        .flatten()
        .collect(),
        config: config_count,
        quotas: quotas.len(),
        retention: sections.retention.len(),
        left_out: notes.into_iter().cloned().collect(),
    }
}

/// `target` relative to `directory` when they share more than the file-system root, else
/// `target` itself. Both are absolute and normalised.
pub fn relative_to(target: &Path, directory: &Path) -> String {
    let target_parts: Vec<_> = target.components().collect();
    let directory_parts: Vec<_> = directory.components().collect();
    let common = target_parts
        .iter()
        .zip(&directory_parts)
        .take_while(|(a, b)| a == b)
        .count();
    if common <= 1 {
        return target.display().to_string();
    }
    let mut relative = PathBuf::new();
    for _ in common..directory_parts.len() {
        relative.push("..");
    }
    for part in &target_parts[common..] {
        relative.push(part.as_os_str());
    }
    if relative.as_os_str().is_empty() {
        ".".to_string()
    } else {
        relative.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(env: &str, config: &str) -> Found {
        Found {
            env: EnvFile::from_snapshot(snapshot(".env", env)).unwrap(),
            config: ConfigFile::from_snapshot(snapshot("config.txt", config)).unwrap(),
            api: None,
        }
    }

    fn options() -> Options {
        Options {
            root: "site".to_string(),
            env_file: PathBuf::from("site/.env"),
            config_file: PathBuf::from("site/config.txt"),
            env_file_in_yaml: None,
            config_file_in_yaml: None,
            environment: "imported".to_string(),
            api: None,
            date: "2026-11-26".to_string(),
        }
    }

    #[test]
    fn the_shipped_files_import_to_nothing_but_their_placeholder_notes() {
        let imported = render(&options(), &found(SHIPPED_ENV, SHIPPED_CONFIG));
        assert_eq!((imported.env, imported.config), (0, 0));
        assert!(imported.secrets.is_empty());
        assert!(!imported.yaml.contains("\nenv:"), "{}", imported.yaml);
        assert!(
            imported.yaml.contains("SINGLE_USER_API_KEY: a placeholder"),
            "{}",
            imported.yaml
        );
    }

    #[test]
    fn sections_take_only_the_text_tldw_ops_writes() {
        let env = SHIPPED_ENV
            .replace(
                "ALLOWED_ORIGINS=http://localhost:3000,http://127.0.0.1:3000,http://localhost:8080,http://127.0.0.1:8080",
                "ALLOWED_ORIGINS=https://a.example.org, https://b.example.org",
            )
            + "ENABLE_REGISTRATION=false\nREQUIRE_REGISTRATION_CODE=True\nUSAGE_QUOTAS_ENABLED=true\nAUDIT_LOG_RETENTION_DAYS=365\nSESSION_LOG_RETENTION_DAYS=3\nJWT_SECRET_KEY=a-real-secret-value-with-enough-length-0123\n";
        let imported = render(&options(), &found(&env, SHIPPED_CONFIG));
        let yaml = &imported.yaml;
        assert!(
            yaml.contains("  ALLOWED_ORIGINS: 'https://a.example.org, https://b.example.org'\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains("\nregistration:\n  enabled: false\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains("  REQUIRE_REGISTRATION_CODE: 'True'\n"),
            "{yaml}"
        );
        assert!(yaml.contains("\nquotas:\n  enforce: true\n"), "{yaml}");
        assert!(
            yaml.contains("\nretention:\n  audit_logs: 365d\n"),
            "{yaml}"
        );
        assert!(yaml.contains("  SESSION_LOG_RETENTION_DAYS: 3\n"), "{yaml}");
        assert!(
            yaml.contains("    JWT_SECRET_KEY: { from_env: TLDW_IMPORT_JWT_SECRET_KEY }\n"),
            "{yaml}"
        );
        assert!(!yaml.contains("a-real-secret-value"), "{yaml}");
        insta::assert_snapshot!("imported_yaml", yaml);
    }

    #[test]
    fn relative_roots_climb_only_when_they_share_a_parent() {
        assert_eq!(
            relative_to(Path::new("/srv/x/site"), Path::new("/srv/x")),
            "site"
        );
        assert_eq!(
            relative_to(Path::new("/srv/site"), Path::new("/srv/ops")),
            "../site"
        );
        assert_eq!(relative_to(Path::new("/srv"), Path::new("/srv")), ".");
        assert_eq!(
            relative_to(Path::new("/opt/tldw"), Path::new("/home/me")),
            "/opt/tldw"
        );
    }
}
