//! Production hardening rules (`../shared/TLDW_TARGET.md` §6, and every env check of tldw's
//! `production_preflight.py`), evaluated on a [`View`] of the settings: the YAML's alone at
//! validate time, the desired values laid over the deployment's files at plan time. Each rule has
//! a stable id (documented in README), a severity, and points at the YAML line that decides it,
//! or at the line of the deployment's file when the YAML does not declare the value. Most rules
//! apply only when the effective `tldw_production` is true; a few guard against states
//! tldw_server itself refuses to start with and apply everywhere.
//!
//! Secret values are passed in already resolved (the caller reads `from_env` and `from_file`);
//! rules only ever report names and lengths, never values.

use std::collections::BTreeMap;

use super::diagnostic::{Diagnostic, Severity};
use super::mapping::{
    ALLOWED_ORIGINS, CORS_ALLOW_CREDENTIALS, ENABLE_REGISTRATION, REQUIRE_REGISTRATION_CODE,
    env_entries,
};
use super::node::Node;
use super::semantic::{locate, locate_key};
use super::source::Location;
use super::types::{Spec, parse_truthy};
use super::view::{Known, Origin, View};
use crate::spec::secret_rules::{is_placeholder, is_tldw_api_key, looks_like_secret_name};

/// A rule's id and what it guards, for README and `did you mean`.
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
}

/// Git refs that move with every commit, refused as a production release.
const MOVING_REFS: [&str; 5] = ["main", "master", "latest", "HEAD", "develop"];

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
        "multi_user uses a PostgreSQL `DATABASE_URL`, as declared or as deployed (tldw refuses SQLite there)",
    ),
    rule(
        "cors-origins-set",
        "`cors.allowed_origins` is set and not empty",
    ),
    rule("cors-no-wildcard", "`cors.allowed_origins` has no `*`"),
    rule(
        "cors-https-only",
        "every allowed origin is `https://host`, without credentials, path, query or fragment",
    ),
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
    rule(
        "env-file-permissions",
        "the `.env` is a regular file of mode 0600 owned by the deploying user (checked at plan)",
    ),
    rule(
        "env-file-syntax",
        "the `.env` has no line tldw's preflight refuses: `export NAME=`, a line without `=`, a name outside `[A-Za-z_][A-Za-z0-9_]*`, an unmatched or multi-line quote (checked at plan)",
    ),
    rule(
        "preflight-required",
        "every name tldw's production preflight requires is set (checked at plan; for an existing installation the bootstrap admin may be empty)",
    ),
    rule(
        "preflight-database-url",
        "`DATABASE_URL` is postgresql://POSTGRES_USER:POSTGRES_PASSWORD@postgres:5432/POSTGRES_DB",
    ),
    rule(
        "preflight-redis-url",
        "`REDIS_URL` is redis://[default]:REDIS_PASSWORD@redis:6379",
    ),
    rule(
        "preflight-public-identity",
        "`TLDW_PUBLIC_DOMAIN` is a real DNS name and `TLDW_ACME_EMAIL` a real address (no example.com, localhost, IP)",
    ),
    rule(
        "preflight-origin-domain",
        "every allowed origin's host is `TLDW_PUBLIC_DOMAIN`",
    ),
    rule(
        "preflight-networks",
        "`TLDW_EDGE_SUBNET` and `TLDW_BACKEND_SUBNET` are strict private IPv4 CIDRs that do not overlap",
    ),
    rule(
        "release-pinned",
        "`release.git` names a tag or commit, not a moving branch (`main`, `master`, `latest`, `HEAD`, `develop`)",
    ),
    rule(
        "preflight-images",
        "`TLDW_APP_IMAGE`/`TLDW_ROLLBACK_IMAGE` are pinned by digest or `sha-<commit>` and differ; `CADDY_IMAGE`, `POSTGRES_IMAGE`, `REDIS_IMAGE` use a digest or a full numeric version",
    ),
    rule(
        "preflight-setup-state",
        "`TLDW_SETUP_COMPLETED` is explicitly true, `TLDW_EXISTING_INSTALLATION` an explicit boolean, and the bootstrap admin set only for a new installation",
    ),
    rule(
        "preflight-backup-dir",
        "`TLDW_BACKUP_DIR` is absolute and outside live data and the Docker socket",
    ),
];

/// The waiver that turns off every `preflight-*` rule at once: they describe tldw's Compose
/// reference deployment, which a bare-metal one is not.
pub const PREFLIGHT_GROUP: &str = "preflight-*";

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

/// Every id a waiver may name: the rules, and the `preflight-*` group.
pub fn rule_ids() -> Vec<&'static str> {
    RULES
        .iter()
        .map(|rule| rule.id)
        .chain([PREFLIGHT_GROUP])
        .collect()
}

pub fn rule_severity(id: &str) -> Severity {
    if WARNING_RULES.contains(&id) {
        Severity::Warning
    } else {
        Severity::Error
    }
}

/// What policy knows about one secret's value. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub enum ResolvedSecret {
    /// Read from its source now.
    Value(String),
    /// Generated at apply time; only its length is known.
    Generated { length: usize },
    /// The source is not readable here (such as a CI runner without the variable).
    Unavailable { reason: String },
}

impl std::fmt::Debug for ResolvedSecret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolvedSecret::Value(value) => write!(
                formatter,
                "Value(<{} characters, not shown>)",
                value.chars().count()
            ),
            ResolvedSecret::Generated { length } => {
                write!(formatter, "Generated {{ length: {length} }}")
            }
            ResolvedSecret::Unavailable { reason } => {
                write!(formatter, "Unavailable {{ reason: {reason:?} }}")
            }
        }
    }
}

pub struct PolicyInput<'a> {
    pub spec: &'a Spec,
    pub root: &'a Node,
    /// The settings judged: the YAML's alone at validate, laid over the files at plan.
    pub view: &'a View,
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

    /// A finding about one setting: at its YAML line when the YAML declares it, else at its
    /// line in the deployment's file, with how to declare the fix.
    fn on(&mut self, id: &str, name: &str, message: String, fix: &str) {
        self.on_setting(id, name, message, fix, false);
    }

    /// [`Findings::on`], with the fix as a hint at the YAML line too.
    fn on_hinted(&mut self, id: &str, name: &str, message: String, fix: &str) {
        self.on_setting(id, name, message, fix, true);
    }

    fn on_setting(&mut self, id: &str, name: &str, message: String, fix: &str, hint: bool) {
        let Some(setting) = self.input.view.get(name) else {
            return self.missing(id, name, message, fix);
        };
        match &setting.origin {
            Origin::Yaml { pointer } => {
                let pointer = pointer.clone();
                if hint {
                    self.push_hint(id, message, self.at(&pointer), &pointer, fix);
                } else {
                    self.push(id, message, self.at(&pointer), &pointer);
                }
            }
            Origin::File { location } => {
                let pointer = declare_pointer(name, setting.secret);
                self.push_hint(
                    id,
                    format!("{message} (in the deployment, not managed by this file)"),
                    Some(location.clone()),
                    &pointer,
                    &format!("manage it here: {fix}"),
                );
            }
        }
    }

    /// A finding about a setting nobody sets: at the section of the YAML that would declare it.
    fn missing(&mut self, id: &str, name: &str, message: String, fix: &str) {
        let secret = crate::spec::secret_rules::looks_like_secret_name(name);
        let section = if secret { "/secrets/values" } else { "/env" };
        let location = self.at(section).or_else(|| self.at(""));
        self.push_hint(id, message, location, &declare_pointer(name, secret), fix);
    }
}

fn declare_pointer(name: &str, secret: bool) -> String {
    let section = if secret { "/secrets/values" } else { "/env" };
    format!("{section}/{}", super::load::escape_pointer(name))
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

const TEST_SWITCHES: &[&str] = &[
    "TEST_MODE",
    "HEALTH_EXPOSE_TEST_API_KEY",
    "MCP_ENABLE_DEMO_AUTH",
    "E2E_TEST_BASE_URL",
    "SINGLE_USER_TEST_API_KEY",
];

/// tldw's default AuthNZ database.
const DEFAULT_DATABASE_URL: &str = "sqlite:///./Databases/users.db";

/// Every finding, before waivers.
pub fn evaluate(input: &PolicyInput<'_>) -> Vec<Diagnostic> {
    let spec = input.spec;
    let view = input.view;
    let production = view.truthy("tldw_production") == Some(true);
    let mut findings = Findings {
        input,
        out: Vec::new(),
    };

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
    let origins = view
        .text(ALLOWED_ORIGINS)
        .map(super::preflight::parse_origins);
    if view.truthy(CORS_ALLOW_CREDENTIALS) == Some(true)
        && let Some(Some(list)) = &origins
        && let Some(index) = list.iter().position(|origin| origin.contains('*'))
    {
        let message = if spec.cors.is_some() {
            "`*` in `cors.allowed_origins` together with `allow_credentials: true`: tldw_server refuses to start"
        } else {
            "`*` in `ALLOWED_ORIGINS` together with `CORS_ALLOW_CREDENTIALS`: tldw_server refuses to start"
        }
        .to_string();
        origin_finding(&mut findings, "cors-credentials-wildcard", index, message);
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
    if view.get("DEFAULT_STORAGE_QUOTA_MB").is_some() {
        findings.on(
            "deprecated-default-quota",
            "DEFAULT_STORAGE_QUOTA_MB",
            "`DEFAULT_STORAGE_QUOTA_MB` is deprecated and no longer enforces anything".to_string(),
            "set per-user limits with `quotas.users` (limits.storage_quota_mb) instead",
        );
    }
    for entry in env_entries(spec) {
        if looks_like_secret_name(&entry.name)
            && !matches!(
                entry.value.to_ascii_lowercase().as_str(),
                "true" | "false" | ""
            )
        {
            let message = format!(
                "`{}` looks like a secret: declare it under `secrets.values` so it is masked and never stored",
                entry.name
            );
            let location = locate_key(input.root, &entry.pointer);
            if production {
                findings.push("secret-in-env", message, location, &entry.pointer);
            } else {
                findings.out.push(
                    Diagnostic::warning("policy.secret-in-env", message)
                        .at(location)
                        .path(entry.pointer.clone()),
                );
            }
        }
    }
    if !production {
        return findings.out;
    }

    // Production rules.
    for (rule, variable, forbidden, message) in SWITCH_RULES {
        if view.truthy(variable) == Some(*forbidden) {
            findings.on(
                rule,
                variable,
                (*message).to_string(),
                &format!("set `env: {{ {variable}: {} }}`", !forbidden),
            );
        }
    }
    for name in TEST_SWITCHES {
        if view.get(name).is_some_and(|setting| match &setting.origin {
            Origin::Yaml { .. } => true,
            Origin::File { .. } => setting.is_provided(),
        }) {
            findings.on(
                "test-switches",
                name,
                format!("test switch `{name}` must not be set in production"),
                "remove it from the deployment's `.env`",
            );
        }
    }
    check_secrets(&mut findings);
    if let Some(reference) = spec
        .release
        .as_ref()
        .and_then(|release| release.git.as_ref())
        && MOVING_REFS
            .iter()
            .any(|moving| reference.eq_ignore_ascii_case(moving))
    {
        findings.push_hint(
            "release-pinned",
            format!("`release.git: {reference}` moves: production runs a tag or a commit"),
            findings.at("/release/git"),
            "/release/git",
            "pin a tag (`v1.4.2`) or a full commit id",
        );
    }
    let auth_mode = view
        .env_or_config("AUTH_MODE", "AuthNZ", &["auth_mode"])
        .and_then(|setting| setting.text())
        .unwrap_or("single_user")
        .trim()
        .to_string();
    let database = view.env_or_config("DATABASE_URL", "AuthNZ", &["database_url"]);
    // What tldw reads: the declared or deployed value, else its built-in SQLite default. At
    // validate time an undeclared value is not known yet.
    let database_url = match database {
        Some(setting) => setting.text().map(str::to_string),
        None if view.complete() => Some(DEFAULT_DATABASE_URL.to_string()),
        None => None,
    };
    let is_postgres = |url: &str| {
        let url = url.trim().to_ascii_lowercase();
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    };
    if auth_mode == "multi_user" {
        if let Some(url) = &database_url
            && !is_postgres(url)
        {
            findings.on_hinted(
                "multi-user-postgres",
                "DATABASE_URL",
                "multi_user in production needs a PostgreSQL AuthNZ database (`DATABASE_URL`); tldw refuses SQLite at startup".to_string(),
                "declare `DATABASE_URL` under `secrets.values` (it holds the password), for example `{ from_env: TLDW_DATABASE_URL }`",
            );
        }
    } else if view
        .text("UVICORN_WORKERS")
        .and_then(|value| value.trim().parse::<u32>().ok())
        .is_some_and(|workers| workers > 1)
        && database_url.as_deref().is_some_and(|url| !is_postgres(url))
    {
        findings.on(
            "sqlite-single-worker",
            "UVICORN_WORKERS",
            "more than one uvicorn worker with a SQLite AuthNZ database".to_string(),
            "set `env: { UVICORN_WORKERS: 1 }`",
        );
    }
    match &origins {
        None => findings.missing(
            "cors-origins-set",
            ALLOWED_ORIGINS,
            "no allowed origins: tldw falls back to loopback origins, and an empty list stops startup in production".to_string(),
            "add `cors: { allowed_origins: [https://your.domain] }`",
        ),
        Some(None) => findings.on(
            "cors-https-only",
            ALLOWED_ORIGINS,
            "`ALLOWED_ORIGINS` is not a JSON list of strings".to_string(),
            "declare `cors: { allowed_origins: [...] }`",
        ),
        Some(Some(list)) => {
            if list.is_empty() {
                findings.on(
                    "cors-origins-set",
                    ALLOWED_ORIGINS,
                    "the allowed origins are empty".to_string(),
                    "list the public origin in `cors.allowed_origins`",
                );
            }
            let domain = view
                .text("TLDW_PUBLIC_DOMAIN")
                .map(|domain| domain.trim().to_lowercase())
                .filter(|domain| !domain.is_empty());
            for (index, origin) in list.iter().enumerate() {
                match super::preflight::origin_problem(origin) {
                    Some("is a wildcard") => origin_finding(
                        &mut findings,
                        "cors-no-wildcard",
                        index,
                        format!("origin `{origin}` is a wildcard"),
                    ),
                    Some(problem) => origin_finding(
                        &mut findings,
                        "cors-https-only",
                        index,
                        format!("origin `{origin}` {problem}"),
                    ),
                    None => {
                        if let Some(domain) = &domain
                            && super::preflight::origin_host(origin).as_deref()
                                != Some(domain.as_str())
                        {
                            origin_finding(
                                &mut findings,
                                "preflight-origin-domain",
                                index,
                                format!(
                                    "origin `{origin}` is not on `TLDW_PUBLIC_DOMAIN` (`{domain}`)"
                                ),
                            );
                        }
                    }
                }
            }
        }
    }
    check_registration(&mut findings);
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
    if view
        .text("LOG_LEVEL")
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("debug"))
    {
        findings.on(
            "log-level-not-debug",
            "LOG_LEVEL",
            "`LOG_LEVEL` is debug in production".to_string(),
            "set `env: { LOG_LEVEL: info }`",
        );
    }
    check_config(&mut findings);
    if let Some(setting) = view.env_or_config("REDIS_URL", "AuthNZ", &["redis_url"])
        && let Some(value) = setting.text()
        && !value.trim().is_empty()
        && !(value.starts_with("redis://") || value.starts_with("rediss://"))
    {
        findings.on(
            "redis-url-scheme",
            "REDIS_URL",
            "`REDIS_URL` must start with redis:// or rediss://".to_string(),
            "declare `REDIS_URL` under `secrets.values`",
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
    check_env_file(&mut findings);
    check_preflight(&mut findings);
    findings.out
}

/// A finding about one allowed origin: at its list entry when `cors:` declares it.
fn origin_finding(findings: &mut Findings<'_>, id: &str, index: usize, message: String) {
    let declared = matches!(
        findings.input.view.get(ALLOWED_ORIGINS).map(|setting| &setting.origin),
        Some(Origin::Yaml { pointer }) if pointer == "/cors/allowed_origins"
    );
    if declared {
        let pointer = format!("/cors/allowed_origins/{index}");
        let location = findings.at(&pointer);
        findings.push(id, message, location, &pointer);
    } else {
        findings.on(
            id,
            ALLOWED_ORIGINS,
            message,
            "declare `cors: { allowed_origins: [...] }`",
        );
    }
}

/// Registration as tldw resolves it: the variable, else `[AuthNZ]` in config.txt (with its
/// legacy key), else the code default (off; a code required).
fn check_registration(findings: &mut Findings<'_>) {
    let view = findings.input.view;
    let enabled = view.env_or_config(
        ENABLE_REGISTRATION,
        "AuthNZ",
        &["enable_registration", "registration_enabled"],
    );
    let require = view.env_or_config(
        REQUIRE_REGISTRATION_CODE,
        "AuthNZ",
        &["require_registration_code", "registration_require_code"],
    );
    let enabled_value = enabled
        .and_then(|setting| setting.text())
        .and_then(parse_truthy);
    if enabled_value != Some(true) {
        return;
    }
    let required = match require {
        Some(setting) => setting.text().and_then(parse_truthy) == Some(true),
        // Unknown until the files are read; the YAML alone turning registration on without a
        // code is already a finding.
        None => view.complete(),
    };
    if required {
        return;
    }
    let spec = findings.input.spec;
    if let Some(registration) = &spec.registration
        && registration.require_code.is_none()
        && matches!(enabled.map(|s| &s.origin), Some(Origin::Yaml { .. }))
    {
        let pointer = "/registration/enabled";
        findings.push_hint(
            "registration-requires-code",
            "open self-registration without a code".to_string(),
            findings.at(pointer),
            pointer,
            "set `registration: { enabled: false }` or `require_code: true`",
        );
        return;
    }
    let name = if require.is_some() {
        REQUIRE_REGISTRATION_CODE
    } else {
        ENABLE_REGISTRATION
    };
    let setting = view.get(name);
    let message = "open self-registration without a code".to_string();
    let fix = "set `registration: { enabled: false }` or `require_code: true`";
    match setting.map(|setting| &setting.origin) {
        Some(_) => findings.on_hinted("registration-requires-code", name, message, fix),
        None => {
            // Decided by config.txt.
            let origin = if require.is_some() { require } else { enabled };
            if let Some(Origin::File { location }) = origin.map(|s| &s.origin) {
                let location = location.clone();
                findings.push_hint(
                    "registration-requires-code",
                    format!("{message} (config.txt `[AuthNZ]`, not managed by this file)"),
                    Some(location),
                    "/registration",
                    fix,
                );
            } else if let Some(Origin::Yaml { pointer }) = origin.map(|s| &s.origin) {
                let pointer = pointer.clone();
                findings.push_hint(
                    "registration-requires-code",
                    message,
                    findings.at(&pointer),
                    &pointer,
                    fix,
                );
            }
        }
    }
}

/// `[Setup]` and the secrets config.txt must not hold.
fn check_config(findings: &mut Findings<'_>) {
    let view = findings.input.view;
    let mut found = Vec::new();
    for ((section, key), setting) in &view.config {
        let Some(text) = setting.text() else { continue };
        if section == "Setup"
            && key == "allow_remote_setup_access"
            && parse_truthy(text) == Some(true)
        {
            found.push((
                "setup-locked",
                "`[Setup] allow_remote_setup_access` opens first-run setup to remote clients"
                    .to_string(),
                setting.origin.clone(),
                true,
                "set `config: { Setup: { allow_remote_setup_access: false } }`",
            ));
        }
        let from_file = matches!(setting.origin, Origin::File { .. });
        let holds_secret = if from_file {
            // The shipped file is full of `*_max_tokens = 4096` and sample keys: in a file
            // this tool does not manage, only a real value under a credential's name counts.
            config_secret_key(key)
                && crate::spec::secret_rules::is_sensitive(key, text)
                && !is_placeholder(text)
        } else {
            looks_like_secret_name(key) && !text.trim().is_empty() && parse_truthy(text).is_none()
        };
        if holds_secret {
            found.push((
                "secrets-in-config",
                format!("`[{section}] {key}` holds a secret in config.txt"),
                setting.origin.clone(),
                false,
                "leave it empty in config.txt and manage the matching variable under `secrets:`",
            ));
        }
    }
    for (id, message, origin, value_pointer, hint) in found {
        match origin {
            Origin::Yaml { pointer } => {
                let location = if value_pointer {
                    findings.at(&pointer)
                } else {
                    locate_key(findings.input.root, &pointer)
                };
                if id == "secrets-in-config" {
                    findings.push_hint(id, message, location, &pointer, hint);
                } else {
                    findings.push(id, message, location, &pointer);
                }
            }
            Origin::File { location } => findings.push_hint(
                id,
                format!("{message} (in the deployment, not managed by this file)"),
                Some(location),
                "/config",
                hint,
            ),
        }
    }
}

/// Option names in config.txt that hold credentials (`TLDW_TARGET.md` §6 rule 9).
fn config_secret_key(key: &str) -> bool {
    [
        "api_key",
        "password",
        "secret",
        "secret_key",
        "encryption_key",
        "pepper",
    ]
    .iter()
    .any(|suffix| key.ends_with(suffix))
}

/// The `.env` itself: the preflight reads it line by line and wants it owner-only.
fn check_env_file(findings: &mut Findings<'_>) {
    let Some(facts) = findings.input.view.files.clone() else {
        return;
    };
    if facts.env_exists && (!facts.env_regular || facts.env_mode != Some(0o600) || !facts.env_owned)
    {
        let mode = facts
            .env_mode
            .map(|mode| format!("{mode:04o}"))
            .unwrap_or_else(|| "unknown".to_string());
        let what = if !facts.env_regular {
            "is not a regular file".to_string()
        } else if !facts.env_owned {
            "is not owned by the user running tldw-ops".to_string()
        } else {
            format!("has mode {mode}")
        };
        let location = Location::new(&facts.env_file, 1, 1);
        findings.push_hint(
            "env-file-permissions",
            format!(
                "the `.env` {what}: tldw's preflight wants a regular file of mode 0600 owned by the deploying user"
            ),
            Some(location),
            "/target/env_file",
            &format!("chmod 600 {}", facts.env_file),
        );
    }
    for problem in &facts.env_syntax {
        findings.push_hint(
            "env-file-syntax",
            format!(
                "this `.env` line {}: tldw's preflight refuses the file",
                problem.what
            ),
            Some(problem.location.clone()),
            "/target/env_file",
            "rewrite it as a plain `NAME=value` line, or let this file manage the name",
        );
    }
}

/// The env checks of tldw's production preflight that are about the reference (Compose)
/// deployment: required names, credentials that agree, the public identity, networks, images,
/// install state and the backup directory.
fn check_preflight(findings: &mut Findings<'_>) {
    use super::preflight as pf;
    let view = findings.input.view;
    let existing = view.text("TLDW_EXISTING_INSTALLATION").map(pf::is_true) == Some(true);
    if view.complete() {
        for name in pf::REQUIRED_NAMES {
            let exempt = existing && pf::BOOTSTRAP_NAMES.contains(name);
            if !exempt && !view.get(name).is_some_and(|setting| setting.is_provided()) {
                findings.missing(
                    "preflight-required",
                    name,
                    format!("`{name}` is not set; tldw's production preflight requires it"),
                    &format!(
                        "declare `{name}` under `{}`",
                        if crate::spec::secret_rules::looks_like_secret_name(name) {
                            "secrets.values"
                        } else {
                            "env"
                        }
                    ),
                );
            }
        }
    }
    let text = |name: &str| view.text(name).filter(|value| !value.is_empty());
    let unknown = |name: &str| {
        view.get(name)
            .is_some_and(|setting| setting.text().is_none())
    };
    // DATABASE_URL and REDIS_URL carry the separate credentials.
    if let Some(url) = text("DATABASE_URL") {
        let parts = ["POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"];
        if let Some(name) = parts.iter().find(|name| unknown(name)) {
            if view.complete()
                && matches!(
                    view.get(name).map(|s| &s.value),
                    Some(Known::Generated { .. })
                )
            {
                findings.on_hinted(
                    "preflight-database-url",
                    "DATABASE_URL",
                    format!(
                        "`{name}` is generated by this apply, so `DATABASE_URL` cannot carry it"
                    ),
                    &format!("source `{name}` and `DATABASE_URL` from the same secret store"),
                );
            }
        } else if let Some(problem) = pf::database_url_problem(
            url,
            text("POSTGRES_USER"),
            text("POSTGRES_PASSWORD"),
            text("POSTGRES_DB"),
        ) {
            findings.on_hinted(
                "preflight-database-url",
                "DATABASE_URL",
                format!("`DATABASE_URL` {problem} (the preflight's `credential_mismatch`)"),
                "make `DATABASE_URL` postgresql://POSTGRES_USER:POSTGRES_PASSWORD@postgres:5432/POSTGRES_DB",
            );
        }
    }
    if let Some(url) = text("REDIS_URL") {
        if unknown("REDIS_PASSWORD") {
            if view.complete()
                && matches!(
                    view.get("REDIS_PASSWORD").map(|s| &s.value),
                    Some(Known::Generated { .. })
                )
            {
                findings.on_hinted(
                    "preflight-redis-url",
                    "REDIS_URL",
                    "`REDIS_PASSWORD` is generated by this apply, so `REDIS_URL` cannot carry it"
                        .to_string(),
                    "source `REDIS_PASSWORD` and `REDIS_URL` from the same secret store",
                );
            }
        } else if let Some(problem) = pf::redis_url_problem(url, text("REDIS_PASSWORD")) {
            findings.on_hinted(
                "preflight-redis-url",
                "REDIS_URL",
                format!("`REDIS_URL` {problem} (the preflight's `credential_mismatch`)"),
                "make `REDIS_URL` redis://:REDIS_PASSWORD@redis:6379/0",
            );
        }
    }
    if let Some(domain) = text("TLDW_PUBLIC_DOMAIN")
        && !pf::is_real_domain(domain)
    {
        findings.on_hinted(
            "preflight-public-identity",
            "TLDW_PUBLIC_DOMAIN",
            "`TLDW_PUBLIC_DOMAIN` is not a real DNS name (two labels or more, not an IP address, not a sample such as example.com or localhost)".to_string(),
            "set `env: { TLDW_PUBLIC_DOMAIN: tldw.your-domain.org }`",
        );
    }
    if let Some(contact) = text("TLDW_ACME_EMAIL")
        && !pf::is_real_email(contact)
    {
        findings.on_hinted(
            "preflight-public-identity",
            "TLDW_ACME_EMAIL",
            "`TLDW_ACME_EMAIL` is not a real contact address".to_string(),
            "set `env: { TLDW_ACME_EMAIL: ops@your-domain.org }`",
        );
    }
    let mut networks = Vec::new();
    for name in ["TLDW_EDGE_SUBNET", "TLDW_BACKEND_SUBNET"] {
        if let Some(value) = text(name) {
            match pf::private_network(value) {
                Some(network) => networks.push(network),
                None => findings.on_hinted(
                    "preflight-networks",
                    name,
                    format!("`{name}` is not a strict, private IPv4 CIDR with a non-zero prefix"),
                    &format!("set `env: {{ {name}: 172.28.0.0/24 }}` (a private range)"),
                ),
            }
        }
    }
    if let [edge, backend] = networks[..]
        && edge.overlaps(backend)
    {
        findings.on_hinted(
            "preflight-networks",
            "TLDW_BACKEND_SUBNET",
            "`TLDW_BACKEND_SUBNET` overlaps `TLDW_EDGE_SUBNET`".to_string(),
            "give the two networks ranges that do not overlap",
        );
    }
    for name in ["TLDW_APP_IMAGE", "TLDW_ROLLBACK_IMAGE"] {
        if let Some(image) = text(name)
            && !pf::is_immutable_app_image(image)
        {
            findings.on_hinted(
                "preflight-images",
                name,
                format!("`{name}` is not pinned: use `image@sha256:<digest>` or `image:sha-<commit>`, never a moving tag such as latest or main"),
                &format!("pin `{name}` by digest"),
            );
        }
    }
    if let (Some(current), Some(rollback)) = (text("TLDW_APP_IMAGE"), text("TLDW_ROLLBACK_IMAGE"))
        && current == rollback
    {
        findings.on_hinted(
            "preflight-images",
            "TLDW_ROLLBACK_IMAGE",
            "`TLDW_ROLLBACK_IMAGE` is the same image as `TLDW_APP_IMAGE`: a rollback would change nothing".to_string(),
            "keep the previous release in `TLDW_ROLLBACK_IMAGE`",
        );
    }
    for name in ["CADDY_IMAGE", "POSTGRES_IMAGE", "REDIS_IMAGE"] {
        if let Some(image) = text(name)
            && !pf::is_exact_image(image)
        {
            findings.on_hinted(
                "preflight-images",
                name,
                format!("`{name}` is not a digest or a tag with a full numeric version"),
                &format!("pin `{name}`, for example `postgres:18.1`"),
            );
        }
    }
    // Install state: an explicit attestation, and the bootstrap admin only for a new install.
    let setup_completed = view.get("TLDW_SETUP_COMPLETED");
    if setup_completed.is_some() || view.complete() {
        let done = setup_completed
            .and_then(|setting| setting.text())
            .is_some_and(pf::is_true);
        let pending = setup_completed.is_some_and(|setting| setting.text().is_none());
        if !done && !pending {
            findings.on_hinted(
                "preflight-setup-state",
                "TLDW_SETUP_COMPLETED",
                "`TLDW_SETUP_COMPLETED` is not explicitly true".to_string(),
                "set `env: { TLDW_SETUP_COMPLETED: true }` once first-run setup is finished",
            );
        }
    }
    let existing_setting = view.get("TLDW_EXISTING_INSTALLATION");
    if existing_setting.is_some() || view.complete() {
        match existing_setting.and_then(|setting| setting.text()) {
            Some(value) if pf::is_true(value) || pf::is_false(value) => {
                for name in pf::BOOTSTRAP_NAMES {
                    let provided = view.get(name).is_some_and(|setting| setting.is_provided());
                    if existing && provided {
                        findings.on_hinted(
                            "preflight-setup-state",
                            name,
                            format!("`{name}` is set although `TLDW_EXISTING_INSTALLATION` is true: the bootstrap admin is for new installations only"),
                            &format!("remove `{name}`"),
                        );
                    }
                }
            }
            Some(_) | None if existing_setting.is_none_or(|s| s.text().is_some()) => {
                findings.on_hinted(
                    "preflight-setup-state",
                    "TLDW_EXISTING_INSTALLATION",
                    "`TLDW_EXISTING_INSTALLATION` is not an explicit boolean (true/false, 1/0, yes/no, on/off)".to_string(),
                    "set `env: { TLDW_EXISTING_INSTALLATION: true }` for a running installation",
                );
            }
            _ => {}
        }
    }
    if let Some(directory) = text("TLDW_BACKUP_DIR")
        && let Some(problem) = pf::backup_dir_problem(directory)
    {
        findings.on_hinted(
            "preflight-backup-dir",
            "TLDW_BACKUP_DIR",
            format!("`TLDW_BACKUP_DIR` {problem}"),
            "set `env: { TLDW_BACKUP_DIR: /srv/tldw-backups }` (absolute, outside live data)",
        );
    }
}

/// Lengths, placeholders, formats and reuse, on every secret the deployment will hold: those
/// the YAML declares (held to its `secrets.policy`) and, once the files are read, the ones tldw
/// and its preflight name (held to tldw's minimums).
fn check_secrets(findings: &mut Findings<'_>) {
    let spec = findings.input.spec;
    let view = findings.input.view;
    let auth_mode = view
        .env_or_config("AUTH_MODE", "AuthNZ", &["auth_mode"])
        .and_then(|setting| setting.text())
        .unwrap_or("single_user")
        .trim()
        .to_string();
    let needed = if auth_mode == "multi_user" {
        "JWT_SECRET_KEY"
    } else {
        "SINGLE_USER_API_KEY"
    };
    let declared = spec
        .secrets
        .as_ref()
        .is_some_and(|secrets| secrets.values.contains_key(needed));
    if !declared {
        let pointer = if spec.secrets.is_some() {
            "/secrets/values"
        } else {
            "/secrets"
        };
        let location = if spec.secrets.is_some() {
            findings.at(pointer)
        } else {
            findings.at("")
        };
        findings.push(
            "auth-secret-declared",
            format!(
                "`{needed}` is not managed by this file; tldw_server needs it in {auth_mode} mode"
            ),
            location,
            pointer,
        );
    }
    let policy = spec
        .secrets
        .as_ref()
        .and_then(|secrets| secrets.policy.clone())
        .unwrap_or_default();
    let min_length = policy.min_length.unwrap_or(32) as usize;
    let existing = view
        .text("TLDW_EXISTING_INSTALLATION")
        .is_some_and(super::preflight::is_true);
    let mut names: Vec<&str> = view
        .env
        .iter()
        .filter(|(_, setting)| setting.secret)
        .map(|(name, _)| name.as_str())
        .collect();
    for name in super::preflight::SECRET_NAMES
        .iter()
        .chain(["SINGLE_USER_API_KEY", "MCP_JWT_SECRET", "MCP_API_KEY_SALT"].iter())
    {
        if (existing && *name == "ADMIN_PASSWORD")
            || (*name == "SINGLE_USER_API_KEY" && auth_mode == "multi_user")
        {
            continue;
        }
        if view
            .get(name)
            .is_some_and(|setting| !setting.secret && setting.is_provided())
        {
            names.push(name);
        }
    }
    let mut by_value: BTreeMap<&str, &str> = BTreeMap::new();
    for name in names {
        let Some(setting) = view.get(name) else {
            continue;
        };
        let declared = setting.secret;
        let required = if declared {
            min_length.max(tldw_minimum_length(name))
        } else {
            tldw_minimum_length(name)
        };
        let (length, value) = match &setting.value {
            Known::Text(value) => (value.chars().count(), Some(value.as_str())),
            Known::Generated { length } => (*length, None),
            Known::Unknown => continue,
        };
        let fix = "generate a real value (`generate: {}`) or point the source at one";
        if let Some(value) = value
            && (is_placeholder(value) || super::preflight::is_placeholder_secret(value))
        {
            findings.on_hinted(
                "secret-strength",
                name,
                format!("secret `{name}` is a placeholder or empty"),
                fix,
            );
            continue;
        }
        if length < required {
            findings.on(
                "secret-strength",
                name,
                format!(
                    "secret `{name}` has {length} characters; at least {required} are required"
                ),
                fix,
            );
        }
        if name == "SINGLE_USER_API_KEY" {
            let generate = spec
                .secrets
                .as_ref()
                .and_then(|secrets| secrets.values.get(name))
                .and_then(|secret| secret.generate.as_ref());
            let well_formed = match (value, generate) {
                (Some(value), _) => is_tldw_api_key(value),
                (None, Some(generate)) => {
                    generate.format == Some(super::types::SecretFormat::TldwApiKey)
                }
                (None, None) => true,
            };
            let legacy_allowed = view.truthy("TLDW_ALLOW_LEGACY_SINGLE_USER_KEY") == Some(true);
            if !well_formed && !legacy_allowed {
                findings.on_hinted(
                    "secret-strength",
                    name,
                    "`SINGLE_USER_API_KEY` is not in tldw's `tldw_<kid>.<secret>` form, which production requires".to_string(),
                    "use `generate: { format: tldw_api_key }`",
                );
            }
        }
        if let Some(value) = value {
            if let Some(first) = by_value.get(value) {
                if policy.distinct.unwrap_or(true) {
                    findings.on(
                        "secrets-distinct",
                        name,
                        format!("secrets `{first}` and `{name}` have the same value"),
                        "give every secret its own value",
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
        let group = waiver.rule == PREFLIGHT_GROUP;
        if !group && !RULES.iter().any(|rule| rule.id == waiver.rule) {
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
        let covered = |diagnostic_code: &str| {
            if group {
                diagnostic_code.starts_with("policy.preflight-")
            } else {
                diagnostic_code == code
            }
        };
        for diagnostic in diagnostics
            .iter_mut()
            .filter(|diagnostic| covered(&diagnostic.code))
        {
            diagnostic.severity = Severity::Info;
            diagnostic.message = format!("waived ({}): {}", waiver.reason, diagnostic.message);
        }
        waived.push((waiver.rule.clone(), waiver.reason.clone()));
    }
    waived
}
