//! Production hardening rules (`../shared/TLDW_TARGET.md` §6) evaluated on the resolved desired
//! state. Each rule has a stable id (documented in README), a severity, and points at the YAML
//! that decides it. Most rules apply only when the resolved `env.tldw_production` is true; a few
//! guard against states tldw_server itself refuses to start with and apply everywhere.
//!
//! Secret values are passed in already resolved (the caller reads `from_env` and `from_file`);
//! rules only ever report names and lengths, never values.

use std::collections::BTreeMap;

use super::diagnostic::{Diagnostic, Severity};
use super::mapping::env_entries;
use super::node::Node;
use super::semantic::{locate, locate_key};
use super::source::Location;
use super::types::{Spec, parse_truthy};
use crate::secrets::{generated_length, is_placeholder, is_tldw_api_key, looks_like_secret_name};

/// A rule's id and what it guards, for README and `did you mean`.
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
}

pub const RULES: &[Rule] = &[
    rule(
        "production-flag",
        "an environment named prod or production sets `tldw_production: true`",
    ),
    rule(
        "show-api-key-on-startup",
        "`SHOW_API_KEY_ON_STARTUP` is not true",
    ),
    rule(
        "test-switches",
        "test-only switches (`TEST_MODE`, `HEALTH_EXPOSE_TEST_API_KEY`, `MCP_ENABLE_DEMO_AUTH`, `E2E_TEST_BASE_URL`, `SINGLE_USER_TEST_API_KEY`) are absent",
    ),
    rule(
        "secret-strength",
        "every secret meets the minimum length (tldw's own minimum where higher) and is not a placeholder; `SINGLE_USER_API_KEY` has the `tldw_<kid>.<secret>` form",
    ),
    rule(
        "secret-in-env",
        "names that look like secrets are declared under `secrets:`, not `env:`",
    ),
    rule("secrets-distinct", "no two secrets share a value"),
    rule(
        "auth-secret-declared",
        "the secret the auth mode needs (`JWT_SECRET_KEY` or `SINGLE_USER_API_KEY`) is managed",
    ),
    rule(
        "legacy-single-user-key",
        "`TLDW_ALLOW_LEGACY_SINGLE_USER_KEY` is not true",
    ),
    rule(
        "multi-user-postgres",
        "multi_user uses a PostgreSQL `target.database` (tldw refuses SQLite there)",
    ),
    rule(
        "cors-origins-set",
        "`cors.allowed_origins` is set and not empty",
    ),
    rule("cors-no-wildcard", "`cors.allowed_origins` has no `*`"),
    rule("cors-https-only", "every allowed origin is https"),
    rule(
        "cors-credentials-wildcard",
        "never `*` together with `allow_credentials: true` (tldw refuses to start)",
    ),
    rule("disable-cors", "`DISABLE_CORS` is not true"),
    rule(
        "registration-requires-code",
        "registration is off, or requires a code",
    ),
    rule(
        "deprecated-default-quota",
        "`DEFAULT_STORAGE_QUOTA_MB` is not used (deprecated; use `quotas.users`)",
    ),
    rule(
        "retention-weekly-below-daily",
        "`retention.privilege_snapshots.keep_weekly` is not below `keep_all`",
    ),
    rule("log-level-not-debug", "`LOG_LEVEL` is not debug"),
    rule(
        "rg-enabled",
        "`RG_ENABLED` is not 0 (rate limiting stays on)",
    ),
    rule("openapi-disabled", "`ENABLE_OPENAPI` is not true"),
    rule("security-headers", "`ENABLE_SECURITY_HEADERS` is not false"),
    rule("pii-redact-logs", "`PII_REDACT_LOGS` is not false"),
    rule("setup-locked", "first-run setup is not reachable remotely"),
    rule(
        "secrets-in-config",
        "config.txt holds no secret values (`jwt_secret_key`, `pg_password`, `*_api_key`, ...)",
    ),
    rule(
        "redis-url-scheme",
        "`REDIS_URL` starts with redis:// or rediss://",
    ),
    rule(
        "mcp-ws-auth",
        "`MCP_WS_AUTH_REQUIRED` is not false and `MCP_WS_ALLOW_QUERY_AUTH` is not true",
    ),
    rule(
        "sqlite-single-worker",
        "with a SQLite AuthNZ database, `UVICORN_WORKERS` is 1",
    ),
    rule(
        "backups-configured",
        "a `backup:` policy exists and verifies its sets",
    ),
    rule(
        "byok-no-rotation",
        "`BYOK_ENCRYPTION_KEY` is never generated with rotation",
    ),
];

const fn rule(id: &'static str, summary: &'static str) -> Rule {
    Rule {
        id,
        severity: Severity::Error,
        summary,
    }
}

/// Rules that protect data or startup itself: no waiver turns them off.
const UNWAIVABLE: &[&str] = &["byok-no-rotation", "cors-credentials-wildcard"];

/// The rules that are warnings rather than errors.
const WARNING_RULES: &[&str] = &[
    "auth-secret-declared",
    "deprecated-default-quota",
    "openapi-disabled",
    "pii-redact-logs",
    "sqlite-single-worker",
];

pub fn rule_ids() -> Vec<&'static str> {
    RULES.iter().map(|rule| rule.id).collect()
}

pub fn rule_severity(id: &str) -> Severity {
    if WARNING_RULES.contains(&id) {
        Severity::Warning
    } else {
        Severity::Error
    }
}

/// What policy knows about one secret's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedSecret {
    /// Read from its source now.
    Value(String),
    /// Generated at apply time; only its length is known.
    Generated { length: usize },
    /// The source is not readable here (such as a CI runner without the variable).
    Unavailable { reason: String },
}

pub struct PolicyInput<'a> {
    pub spec: &'a Spec,
    pub root: &'a Node,
    pub secrets: &'a BTreeMap<String, ResolvedSecret>,
}

/// Whether the resolved state is production: `env.tldw_production` reads as true.
pub fn is_production(spec: &Spec) -> bool {
    spec.env
        .get("tldw_production")
        .and_then(|value| value.as_bool())
        .unwrap_or(false)
}

struct Findings<'a> {
    input: &'a PolicyInput<'a>,
    out: Vec<Diagnostic>,
}

impl Findings<'_> {
    fn push(&mut self, id: &str, message: String, location: Option<Location>, pointer: &str) {
        self.out.push(Diagnostic {
            severity: rule_severity(id),
            code: format!("policy.{id}"),
            message,
            path: pointer.to_string(),
            location,
            hint: None,
        });
    }

    fn push_hint(
        &mut self,
        id: &str,
        message: String,
        location: Option<Location>,
        pointer: &str,
        hint: &str,
    ) {
        self.push(id, message, location, pointer);
        if let Some(last) = self.out.last_mut() {
            last.hint = Some(hint.to_string());
        }
    }

    fn at(&self, pointer: &str) -> Option<Location> {
        locate(self.input.root, pointer)
    }
}

/// Production rules that forbid one value of a boolean switch: (rule, variable, the forbidden
/// reading, what it means).
pub const SWITCH_RULES: &[(&str, &str, bool, &str)] = &[
    (
        "show-api-key-on-startup",
        "SHOW_API_KEY_ON_STARTUP",
        true,
        "`SHOW_API_KEY_ON_STARTUP` prints the API key in production logs",
    ),
    (
        "legacy-single-user-key",
        "TLDW_ALLOW_LEGACY_SINGLE_USER_KEY",
        true,
        "`TLDW_ALLOW_LEGACY_SINGLE_USER_KEY` lets keys without the tldw_ format through",
    ),
    (
        "disable-cors",
        "DISABLE_CORS",
        true,
        "`DISABLE_CORS` turns off the origin allowlist",
    ),
    (
        "rg-enabled",
        "RG_ENABLED",
        false,
        "`RG_ENABLED` turns rate limiting off (emergency use only)",
    ),
    (
        "openapi-disabled",
        "ENABLE_OPENAPI",
        true,
        "`ENABLE_OPENAPI` publishes the API description in production",
    ),
    (
        "security-headers",
        "ENABLE_SECURITY_HEADERS",
        false,
        "`ENABLE_SECURITY_HEADERS` is off",
    ),
    (
        "pii-redact-logs",
        "PII_REDACT_LOGS",
        false,
        "`PII_REDACT_LOGS` is off: usernames and IPs reach the logs",
    ),
    (
        "setup-locked",
        "TLDW_SETUP_ALLOW_REMOTE",
        true,
        "`TLDW_SETUP_ALLOW_REMOTE` opens first-run setup to remote clients",
    ),
    (
        "mcp-ws-auth",
        "MCP_WS_AUTH_REQUIRED",
        false,
        "`MCP_WS_AUTH_REQUIRED` is false",
    ),
    (
        "mcp-ws-auth",
        "MCP_WS_ALLOW_QUERY_AUTH",
        true,
        "`MCP_WS_ALLOW_QUERY_AUTH` puts credentials in URLs",
    ),
];

/// Every finding, before waivers.
pub fn evaluate(input: &PolicyInput<'_>) -> Vec<Diagnostic> {
    let spec = input.spec;
    let production = is_production(spec);
    let mut findings = Findings {
        input,
        out: Vec::new(),
    };
    // The effective .env as the desired state writes it: name -> (value, pointer).
    let env: BTreeMap<String, (String, String)> = env_entries(spec)
        .into_iter()
        .map(|entry| (entry.name, (entry.value, entry.pointer)))
        .collect();
    let truthy = |name: &str| env.get(name).and_then(|(value, _)| parse_truthy(value));

    // Rules that hold everywhere: tldw refuses these states, or they destroy data.
    let environment_name = spec.environment.to_ascii_lowercase();
    if (environment_name == "prod"
        || environment_name.starts_with("prod-")
        || environment_name == "production")
        && !production
    {
        let pointer = if spec.env.contains_key("tldw_production") {
            "/env/tldw_production"
        } else {
            "/environment"
        };
        findings.push_hint(
            "production-flag",
            format!(
                "environment `{}` is production but `tldw_production` is not true",
                spec.environment
            ),
            findings.at(pointer),
            pointer,
            "set `env: { tldw_production: true }`; it turns on tldw's own startup checks",
        );
    }
    if let Some(cors) = &spec.cors
        && cors.allow_credentials == Some(true)
        && let Some(index) = cors
            .allowed_origins
            .iter()
            .position(|origin| origin.contains('*'))
    {
        let pointer = format!("/cors/allowed_origins/{index}");
        findings.push(
            "cors-credentials-wildcard",
            "`*` in `cors.allowed_origins` together with `allow_credentials: true`: tldw_server refuses to start".to_string(),
            findings.at(&pointer),
            &pointer,
        );
    }
    if let Some(secrets) = &spec.secrets
        && let Some(byok) = secrets.values.get("BYOK_ENCRYPTION_KEY")
        && byok.generate.is_some()
        && byok.rotate_after.is_some()
    {
        let pointer = "/secrets/values/BYOK_ENCRYPTION_KEY/rotate_after";
        findings.push_hint(
            "byok-no-rotation",
            "BYOK_ENCRYPTION_KEY is generated with rotation: replacing it makes stored provider secrets unreadable".to_string(),
            findings.at(pointer),
            pointer,
            "generate it once without `rotate_after`; rotate through BYOK_SECONDARY_ENCRYPTION_KEY",
        );
    }
    if env.contains_key("DEFAULT_STORAGE_QUOTA_MB") {
        let pointer = &env["DEFAULT_STORAGE_QUOTA_MB"].1;
        findings.push_hint(
            "deprecated-default-quota",
            "`DEFAULT_STORAGE_QUOTA_MB` is deprecated and no longer enforces anything".to_string(),
            locate_key(input.root, pointer),
            pointer,
            "set per-user limits with `quotas.users` (limits.storage_quota_mb) instead",
        );
    }
    for (name, (value, pointer)) in &env {
        if looks_like_secret_name(name)
            && !matches!(value.to_ascii_lowercase().as_str(), "true" | "false" | "")
        {
            let message = format!(
                "`{name}` looks like a secret: declare it under `secrets.values` so it is masked and never stored"
            );
            if production {
                findings.push(
                    "secret-in-env",
                    message,
                    locate_key(input.root, pointer),
                    pointer,
                );
            } else {
                let location = locate_key(input.root, pointer);
                findings.out.push(
                    Diagnostic::warning("policy.secret-in-env", message)
                        .at(location)
                        .path(pointer.clone()),
                );
            }
        }
    }
    if !production {
        return findings.out;
    }

    // Production rules.
    for (rule, variable, forbidden, message) in SWITCH_RULES {
        if truthy(variable) == Some(*forbidden) {
            let pointer = &env[*variable].1;
            findings.push(rule, (*message).to_string(), findings.at(pointer), pointer);
        }
    }
    for name in [
        "TEST_MODE",
        "HEALTH_EXPOSE_TEST_API_KEY",
        "MCP_ENABLE_DEMO_AUTH",
        "E2E_TEST_BASE_URL",
        "SINGLE_USER_TEST_API_KEY",
    ] {
        if let Some((_, pointer)) = env.get(name) {
            findings.push(
                "test-switches",
                format!("test switch `{name}` must not be set in production"),
                locate_key(input.root, pointer),
                pointer,
            );
        }
    }
    check_secrets(&mut findings, &env);
    let auth_mode = env
        .get("AUTH_MODE")
        .map(|(value, _)| value.as_str())
        .unwrap_or("single_user");
    if auth_mode == "multi_user" {
        let database = spec
            .target
            .database
            .as_deref()
            .unwrap_or("sqlite:///./Databases/users.db");
        if !(database.starts_with("postgres://") || database.starts_with("postgresql://")) {
            let pointer = if spec.target.database.is_some() {
                "/target/database"
            } else {
                "/target"
            };
            findings.push_hint(
                "multi-user-postgres",
                "multi_user in production needs a PostgreSQL AuthNZ database; tldw refuses SQLite"
                    .to_string(),
                findings.at(pointer),
                pointer,
                "set `target.database: postgresql://user@host:5432/db`",
            );
        }
    } else if let Some((_, pointer)) = env.get("UVICORN_WORKERS")
        && env
            .get("UVICORN_WORKERS")
            .and_then(|(value, _)| value.parse::<u32>().ok())
            .is_some_and(|workers| workers > 1)
        && spec
            .target
            .database
            .as_deref()
            .is_none_or(|database| database.starts_with("sqlite"))
    {
        findings.push(
            "sqlite-single-worker",
            "more than one uvicorn worker with a SQLite AuthNZ database".to_string(),
            findings.at(pointer),
            pointer,
        );
    }
    match &spec.cors {
        None => findings.push_hint(
            "cors-origins-set",
            "no `cors.allowed_origins`: tldw falls back to loopback origins, and an empty list stops startup in production".to_string(),
            findings.at(""),
            "/cors",
            "add `cors: { allowed_origins: [https://your.domain] }`",
        ),
        Some(cors) => {
            if cors.allowed_origins.is_empty() {
                findings.push("cors-origins-set", "`cors.allowed_origins` is empty".to_string(), findings.at("/cors/allowed_origins"), "/cors/allowed_origins");
            }
            for (index, origin) in cors.allowed_origins.iter().enumerate() {
                let pointer = format!("/cors/allowed_origins/{index}");
                if origin.contains('*') {
                    findings.push("cors-no-wildcard", format!("origin `{origin}` is a wildcard"), findings.at(&pointer), &pointer);
                } else if !origin.starts_with("https://") {
                    findings.push("cors-https-only", format!("origin `{origin}` is not https"), findings.at(&pointer), &pointer);
                }
            }
        }
    }
    if let Some(registration) = &spec.registration
        && registration.enabled
        && registration.require_code != Some(true)
    {
        let pointer = if registration.require_code.is_some() {
            "/registration/require_code"
        } else {
            "/registration/enabled"
        };
        findings.push_hint(
            "registration-requires-code",
            "open self-registration without a code".to_string(),
            findings.at(pointer),
            pointer,
            "set `registration: { enabled: false }` or `require_code: true`",
        );
    }
    if let Some(retention) = &spec.retention
        && let Some(snapshots) = &retention.privilege_snapshots
        && let (Some(all), Some(weekly)) = (snapshots.keep_all, snapshots.keep_weekly)
        && weekly < all
    {
        let pointer = "/retention/privilege_snapshots/keep_weekly";
        findings.push(
            "retention-weekly-below-daily",
            format!(
                "`keep_weekly` ({weekly}) is below `keep_all` ({all}); tldw silently raises it"
            ),
            findings.at(pointer),
            pointer,
        );
    }
    if let Some((value, pointer)) = env.get("LOG_LEVEL")
        && value.eq_ignore_ascii_case("debug")
    {
        findings.push(
            "log-level-not-debug",
            "`LOG_LEVEL` is debug in production".to_string(),
            findings.at(pointer),
            pointer,
        );
    }
    for (section, keys) in &spec.config {
        for (key, value) in keys {
            let pointer = format!(
                "/config/{}/{}",
                super::load::escape_pointer(section),
                super::load::escape_pointer(key)
            );
            let lowered = key.to_ascii_lowercase();
            if section.eq_ignore_ascii_case("Setup")
                && lowered == "allow_remote_setup_access"
                && value.as_bool() == Some(true)
            {
                findings.push(
                    "setup-locked",
                    "`[Setup] allow_remote_setup_access` opens first-run setup to remote clients"
                        .to_string(),
                    findings.at(&pointer),
                    &pointer,
                );
            }
            let text = value.render();
            if looks_like_secret_name(key)
                && !text.is_empty()
                && !matches!(text.as_str(), "true" | "false")
            {
                findings.push_hint(
                    "secrets-in-config",
                    format!("`[{section}] {key}` holds a secret in config.txt"),
                    locate_key(input.root, &pointer),
                    &pointer,
                    "leave it empty in config.txt and manage the matching variable under `secrets:`",
                );
            }
        }
    }
    if let Some((value, pointer)) = env.get("REDIS_URL")
        && !(value.starts_with("redis://") || value.starts_with("rediss://"))
    {
        findings.push(
            "redis-url-scheme",
            "`REDIS_URL` must start with redis:// or rediss://".to_string(),
            findings.at(pointer),
            pointer,
        );
    }
    match &spec.backup {
        None => findings.push_hint(
            "backups-configured",
            "no `backup:` policy: production needs backups that are made and verified".to_string(),
            findings.at(""),
            "/backup",
            "add a `backup:` section with `destination`, `every`, `keep` and `verify: true`",
        ),
        Some(backup) if !backup.verify => findings.push(
            "backups-configured",
            "`backup.verify` is false: unverified sets are not backups".to_string(),
            findings.at("/backup/verify"),
            "/backup/verify",
        ),
        Some(_) => {}
    }
    findings.out
}

/// Lengths, placeholders, formats and reuse, on the secrets' resolved values.
fn check_secrets(findings: &mut Findings<'_>, env: &BTreeMap<String, (String, String)>) {
    let spec = findings.input.spec;
    let Some(secrets) = &spec.secrets else {
        let auth_mode = env
            .get("AUTH_MODE")
            .map(|(value, _)| value.as_str())
            .unwrap_or("single_user");
        let needed = if auth_mode == "multi_user" {
            "JWT_SECRET_KEY"
        } else {
            "SINGLE_USER_API_KEY"
        };
        findings.push(
            "auth-secret-declared",
            format!(
                "`{needed}` is not managed by this file; tldw_server needs it in {auth_mode} mode"
            ),
            findings.at(""),
            "/secrets",
        );
        return;
    };
    let policy = secrets.policy.clone().unwrap_or_default();
    let min_length = policy.min_length.unwrap_or(32) as usize;
    let auth_mode = env
        .get("AUTH_MODE")
        .map(|(value, _)| value.as_str())
        .unwrap_or("single_user");
    let needed = if auth_mode == "multi_user" {
        "JWT_SECRET_KEY"
    } else {
        "SINGLE_USER_API_KEY"
    };
    if !secrets.values.contains_key(needed) {
        findings.push(
            "auth-secret-declared",
            format!(
                "`{needed}` is not managed by this file; tldw_server needs it in {auth_mode} mode"
            ),
            findings.at("/secrets/values"),
            "/secrets/values",
        );
    }
    let mut by_value: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, spec_secret) in &secrets.values {
        let pointer = format!("/secrets/values/{}", super::load::escape_pointer(name));
        let resolved = findings.input.secrets.get(name);
        let required = min_length.max(tldw_minimum_length(name));
        let (length, value) = match resolved {
            Some(ResolvedSecret::Value(value)) => (value.chars().count(), Some(value.as_str())),
            Some(ResolvedSecret::Generated { length }) => (*length, None),
            Some(ResolvedSecret::Unavailable { .. }) | None => {
                if let Some(generate) = &spec_secret.generate {
                    (generated_length(generate), None)
                } else {
                    continue;
                }
            }
        };
        if let Some(value) = value
            && is_placeholder(value)
        {
            findings.push_hint(
                "secret-strength",
                format!("secret `{name}` is a placeholder or empty"),
                findings.at(&pointer),
                &pointer,
                "generate a real value (`generate: {}`) or point the source at one",
            );
            continue;
        }
        if length < required {
            findings.push(
                "secret-strength",
                format!(
                    "secret `{name}` has {length} characters; at least {required} are required"
                ),
                findings.at(&pointer),
                &pointer,
            );
        }
        if name == "SINGLE_USER_API_KEY" {
            let well_formed = match (value, &spec_secret.generate) {
                (Some(value), _) => is_tldw_api_key(value),
                (None, Some(generate)) => {
                    generate.format == Some(super::types::SecretFormat::TldwApiKey)
                }
                (None, None) => true,
            };
            let legacy_allowed = env
                .get("TLDW_ALLOW_LEGACY_SINGLE_USER_KEY")
                .and_then(|(value, _)| parse_truthy(value))
                == Some(true);
            if !well_formed && !legacy_allowed {
                findings.push_hint(
                    "secret-strength",
                    "`SINGLE_USER_API_KEY` is not in tldw's `tldw_<kid>.<secret>` form, which production requires".to_string(),
                    findings.at(&pointer),
                    &pointer,
                    "use `generate: { format: tldw_api_key }`",
                );
            }
        }
        if let Some(value) = value {
            if let Some(first) = by_value.get(value) {
                if policy.distinct.unwrap_or(true) {
                    findings.push(
                        "secrets-distinct",
                        format!("secrets `{first}` and `{name}` have the same value"),
                        findings.at(&pointer),
                        &pointer,
                    );
                }
            } else {
                by_value.insert(value, name);
            }
        }
    }
}

/// tldw_server's own minimum length for a secret, where it has one (§6 rules 3 to 6).
fn tldw_minimum_length(name: &str) -> usize {
    match name {
        "SINGLE_USER_API_KEY" => 24,
        "JWT_SECRET_KEY"
        | "SESSION_ENCRYPTION_KEY"
        | "POSTGRES_PASSWORD"
        | "REDIS_PASSWORD"
        | "ADMIN_PASSWORD"
        | "MCP_JWT_SECRET"
        | "MCP_API_KEY_SALT" => 32,
        _ => 0,
    }
}

/// Turns waived findings into notes that say so. Returns the waived rule ids with reasons.
pub fn apply_waivers(spec: &Spec, diagnostics: &mut Vec<Diagnostic>) -> Vec<(String, String)> {
    let mut waived = Vec::new();
    for waiver in &spec.waivers {
        if !RULES.iter().any(|rule| rule.id == waiver.rule) {
            continue;
        }
        if UNWAIVABLE.contains(&waiver.rule.as_str()) {
            diagnostics.push(
                Diagnostic::error(
                    "waiver.not_waivable",
                    format!("rule `{}` guards against data loss or a server that cannot start; it cannot be waived", waiver.rule),
                )
                .path("/waivers"),
            );
            continue;
        }
        let code = format!("policy.{}", waiver.rule);
        for diagnostic in diagnostics
            .iter_mut()
            .filter(|diagnostic| diagnostic.code == code)
        {
            diagnostic.severity = Severity::Info;
            diagnostic.message = format!("waived ({}): {}", waiver.reason, diagnostic.message);
        }
        waived.push((waiver.rule.clone(), waiver.reason.clone()));
    }
    waived
}
