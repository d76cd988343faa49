//! The desired-state format, `apiVersion: tldw-ops/v1`. These types are the contract: the JSON
//! Schema in `schemas/tldw-ops.schema.json` is generated from them, and users' files depend on
//! every name here. Doc comments become the schema's descriptions, which editors show.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map as JsonMap, Value as JsonValue};

use super::duration::Duration;

pub const API_VERSION: &str = "tldw-ops/v1";

/// The desired state of one tldw_server environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "tldw-ops desired state")]
pub struct Spec {
    /// Format version. Always `tldw-ops/v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: ApiVersion,
    /// Name of this environment (dev, staging, prod, ...).
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"))]
    pub environment: String,
    /// Name of the deployment this environment belongs to; environments of one deployment share
    /// a state namespace and promotion history. Default `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"))]
    pub deployment: Option<String>,
    /// Files this one is layered over, relative to this file. Maps merge deeply, the including
    /// file wins; lists and scalars replace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<Extends>,
    /// What templates (`{{ env.NAME }}`) may read from the process environment. Templates see
    /// only the variables declared here, and a value built from a `secret` variable (or one
    /// whose name looks like a secret's) is masked everywhere, like a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateSection>,
    /// The deployment to manage.
    pub target: Target,
    /// Plain environment variables for the `.env` file.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" }))]
    pub env: BTreeMap<String, ScalarValue>,
    /// `config.txt`: section, then key, then value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, BTreeMap<String, ScalarValue>>,
    /// Secrets written to the `.env` file; never shown, stored or logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Secrets>,
    /// Browser origins (`ALLOWED_ORIGINS`, `CORS_ALLOW_CREDENTIALS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// Self-registration (`ENABLE_REGISTRATION`, `REQUIRE_REGISTRATION_CODE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<Registration>,
    /// Storage quotas: the enforcement switch and per-user limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<Quotas>,
    /// Retention of AuthNZ records, in whole days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// The release tldw_server runs: for a Compose deployment the app image, for a bare-metal
    /// one the git tag or commit of `target.root` and its install command. Changing it is an
    /// upgrade: a backup set is taken first, and a failed install, restart, health gate or smoke
    /// gate puts the old release back (the old image, kept as `TLDW_ROLLBACK_IMAGE`, or the old
    /// commit, installed again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Release>,
    /// Backup policy, reconciled like the rest of the desired state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Backup>,
    /// Refuse applies that were not applied and healthy in an earlier environment first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<Promotion>,
    /// Policy rules turned off for this file, each with a reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waivers: Vec<Waiver>,
}

/// The release tldw_server runs: `image` for a Compose deployment, or `git` (with `install`)
/// for a bare-metal checkout. Exactly one of `image` and `git`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// The app image (`TLDW_APP_IMAGE`), pinned by digest (`…@sha256:<64 hex>`) or by commit
    /// (`…:sha-<7..64 hex>`) as tldw's production preflight requires; `latest` and `main` are
    /// refused in production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// The git tag or commit `target.root` is checked out at (detached), for a bare-metal
    /// deployment. The ref must already be in the checkout (`git fetch --tags` first); a
    /// branch such as `main` moves, so production refuses `main`, `master`, `latest`, `HEAD` and
    /// `develop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 255),
        regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9._/-]*$")
    )]
    pub git: Option<String>,
    /// The install command run in `target.root` after the checkout, as argv (never a shell
    /// string), for example `[pip, install, --upgrade, .]`. It runs again after a rollback
    /// checks the old commit out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub install: Option<Vec<String>>,
}

/// The variables templates may read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateSection {
    /// Variables templates may read, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<TemplateVariable>,
    /// Templates may also read every variable whose name starts with this (`TLDW_OPS_VAR_`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub prefix: Option<String>,
    /// Variables templates may read whose values are secret: a value built from one is masked
    /// in plans, plan files, PR comments and the state store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret: Vec<TemplateVariable>,
}

/// The name of a process environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct TemplateVariable(#[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))] pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    #[serde(rename = "tldw-ops/v1")]
    V1,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Extends {
    One(String),
    Many(Vec<String>),
}

impl Extends {
    pub fn paths(&self) -> Vec<&str> {
        match self {
            Extends::One(path) => vec![path.as_str()],
            Extends::Many(paths) => paths.iter().map(String::as_str).collect(),
        }
    }
}

/// A value for a `.env` or `config.txt` entry. Booleans are written `true`/`false`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ScalarValue {
    Bool(bool),
    Integer(i64),
    Float(f64),
    Text(String),
}

/// Read by hand rather than as an untagged enum: serde buffers and retries every variant of an
/// untagged enum, which dominated loading a file with thousands of settings.
impl<'de> Deserialize<'de> for ScalarValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ScalarValue, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = ScalarValue;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a string, number or boolean")
            }

            fn visit_bool<E>(self, value: bool) -> Result<ScalarValue, E> {
                Ok(ScalarValue::Bool(value))
            }

            fn visit_i64<E>(self, value: i64) -> Result<ScalarValue, E> {
                Ok(ScalarValue::Integer(value))
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<ScalarValue, E> {
                i64::try_from(value)
                    .map(ScalarValue::Integer)
                    .map_err(|_| E::custom("integer out of range"))
            }

            fn visit_f64<E>(self, value: f64) -> Result<ScalarValue, E> {
                Ok(ScalarValue::Float(value))
            }

            fn visit_str<E>(self, value: &str) -> Result<ScalarValue, E> {
                Ok(ScalarValue::Text(value.to_string()))
            }

            fn visit_string<E>(self, value: String) -> Result<ScalarValue, E> {
                Ok(ScalarValue::Text(value))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

impl ScalarValue {
    /// The text written into the file.
    pub fn render(&self) -> String {
        match self {
            ScalarValue::Bool(value) => value.to_string(),
            ScalarValue::Integer(value) => value.to_string(),
            ScalarValue::Float(value) => value.to_string(),
            ScalarValue::Text(text) => text.clone(),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ScalarValue::Bool(value) => Some(*value),
            ScalarValue::Integer(value) => Some(*value != 0),
            ScalarValue::Text(text) => parse_truthy(text),
            ScalarValue::Float(_) => None,
        }
    }
}

/// tldw's boolean reading: `1|true|yes|y|on` and `0|false|no|n|off`, case-insensitive.
pub fn parse_truthy(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "on" => Some(true),
        "0" | "false" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

impl JsonSchema for ScalarValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ScalarValue".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": ["string", "boolean", "number"],
            "description": "A string, number or boolean. Booleans are written `true`/`false`.",
        })
    }
}

/// Where the deployment lives and how to reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The tldw_server checkout or install directory; the paths below are relative to it.
    #[schemars(length(min = 1))]
    pub root: String,
    /// The `.env` file, relative to `root`. Default `tldw_Server_API/Config_Files/.env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_file: Option<String>,
    /// `config.txt`, relative to `root`. Default `tldw_Server_API/Config_Files/config.txt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<String>,
    /// The AuthNZ database in tldw's DATABASE_URL syntax: `sqlite:///./Databases/users.db`
    /// (relative to `root`) or `postgresql://user@host:5432/db`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Root of the per-user databases (`USER_DB_BASE_DIR`). Default `Databases/user_databases`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_db_base_dir: Option<String>,
    /// Paths above that may lie outside `root` (after `..` and symbolic links are resolved),
    /// such as a Compose deployment's `TLDW_ENV_FILE` kept in `/etc`. Any other path that
    /// leaves `root` is refused, so a desired-state file cannot point writes elsewhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_outside_root: Vec<TargetPath>,
    /// The tldw admin API, for quotas, retention and registration read-back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<Api>,
    /// How to restart the server and check its health after a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
}

/// A path of `target` that names a place tldw-ops writes or reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetPath {
    EnvFile,
    ConfigFile,
    UserDbBaseDir,
}

impl TargetPath {
    pub const ALL: [TargetPath; 3] = [
        TargetPath::EnvFile,
        TargetPath::ConfigFile,
        TargetPath::UserDbBaseDir,
    ];

    /// The key under `target`.
    pub fn key(self) -> &'static str {
        match self {
            TargetPath::EnvFile => "env_file",
            TargetPath::ConfigFile => "config_file",
            TargetPath::UserDbBaseDir => "user_db_base_dir",
        }
    }

    pub fn value(self, target: &Target) -> Option<&str> {
        match self {
            TargetPath::EnvFile => target.env_file.as_deref(),
            TargetPath::ConfigFile => target.config_file.as_deref(),
            TargetPath::UserDbBaseDir => target.user_db_base_dir.as_deref(),
        }
    }
}

/// The tldw admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Api {
    /// Base URL, such as `http://127.0.0.1:8000`.
    #[schemars(length(min = 1))]
    pub url: String,
    /// The admin token; never written in the file itself.
    pub token: TokenSource,
    /// How the token is sent: `Authorization: Bearer` (default) or `X-API-KEY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ApiAuth>,
    /// Requests in flight at once when observing many users. Default 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub concurrency: Option<u32>,
    /// Per-request timeout. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiAuth {
    Bearer,
    ApiKey,
}

/// Where a credential comes from: exactly one of `from_env` or `from_file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenSource {
    /// Name of a process environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_env: Option<String>,
    /// Path of a file holding the value (trailing newline ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_file: Option<String>,
}

/// Restart and health gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Base URL of the health gates. Default: `target.api.url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Command that restarts the server, as an argv list (never a shell string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub restart: Option<Vec<String>>,
    /// Command that stops the server (used by restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub stop: Option<Vec<String>>,
    /// Command that starts the server (used by restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub start: Option<Vec<String>>,
    /// How long a restart and the health gates may take together. Default 60s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Checks that must all pass after a restart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<HealthGate>,
    /// Requests that prove the server works, not just that it answers, run after the health
    /// gates; a failure rolls the apply back like a failed health gate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub smoke: Vec<SmokeGate>,
}

/// One smoke request: a GET below the service URL whose status and JSON fields must match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmokeGate {
    /// What the plan and the report call it. Default: the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 80))]
    pub name: Option<String>,
    /// Path below the service URL, such as `/api/v1/llm/providers`.
    #[schemars(regex(pattern = "^/"))]
    pub path: String,
    /// `api`: send `target.api`'s token as `target.api.auth` says (the token is read from its
    /// source at apply and never shown). Default `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SmokeAuth>,
    /// Expected HTTP status. Default 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 599))]
    pub expect_status: Option<u16>,
    /// Top-level JSON fields the response must have, with these values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_json: Option<JsonMap<String, JsonValue>>,
    /// How long one attempt may take. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Attempts after the first one fails, a second apart. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 20))]
    pub retries: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmokeAuth {
    None,
    Api,
}

/// One HTTP check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthGate {
    /// Path below the service URL, such as `/health`.
    #[schemars(regex(pattern = "^/"))]
    pub path: String,
    /// Expected HTTP status. Default 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 599))]
    pub expect_status: Option<u16>,
    /// Top-level JSON fields the response must have, with these values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_json: Option<JsonMap<String, JsonValue>>,
}

/// Secrets and their policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<SecretPolicy>,
    /// `.env` name to the secret's source.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" }))]
    pub values: BTreeMap<String, SecretSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretPolicy {
    /// Minimum length of every secret. Default 32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4096))]
    pub min_length: Option<u32>,
    /// No two secrets may share a value. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct: Option<bool>,
}

/// One secret: exactly one of `generate`, `from_env` or `from_file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// Generate the value during apply from the OS random source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<Generate>,
    /// Take the value from this process environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_env: Option<String>,
    /// Take the value from this file (trailing newline ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_file: Option<String>,
    /// Generate a new value once the current one is older than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_after: Option<Duration>,
    /// On rotation, keep the old value under this `.env` name (JWT_SECONDARY_SECRET).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub keep_previous_as: Option<String>,
}

/// How a secret is generated.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    /// Number of characters. Default 64 (ignored by formats that fix their length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 16, max = 4096))]
    pub length: Option<u32>,
    /// Characters to draw from. Default `urlsafe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alphabet: Option<Alphabet>,
    /// A fixed format: tldw's `tldw_<kid>.<secret>` API key, or a Fernet key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<SecretFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Alphabet {
    Urlsafe,
    Alphanumeric,
    Hex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretFormat {
    TldwApiKey,
    Fernet,
}

/// CORS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Origins such as `https://tldw.example.org`: scheme and host, no path.
    pub allowed_origins: Vec<String>,
    /// Send `Access-Control-Allow-Credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
}

/// Self-registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_code: Option<bool>,
}

/// Storage quotas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// `USAGE_QUOTAS_ENABLED`: refuse writes over quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce: Option<bool>,
    /// Username to quota in MB; `null` is unlimited, `0` blocks. Needs `target.api`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": "^[A-Za-z0-9_-]{3,50}$" }))]
    pub users: BTreeMap<String, QuotaLimit>,
}

/// A storage quota in MB: a whole number of 0 or more, or `null` for unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaLimit(pub Option<u64>);

impl JsonSchema for QuotaLimit {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "QuotaLimit".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": ["integer", "null"],
            "minimum": 0,
            "description": "Quota in MB: 0 blocks writes, null is unlimited.",
            (super::schema::NULL_ALLOWED): true,
        })
    }
}

/// Retention, in whole days, within tldw's ranges.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privilege_snapshots: Option<PrivilegeSnapshots>,
    /// `AUDIT_LOG_RETENTION_DAYS`, 30d..3650d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_logs: Option<Duration>,
    /// `SESSION_LOG_RETENTION_DAYS`, 7d..3650d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<Duration>,
    /// `USAGE_LOG_RETENTION_DAYS`, 1d..3650d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_logs: Option<Duration>,
    /// `LLM_USAGE_LOG_RETENTION_DAYS`, 1d..3650d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_usage_logs: Option<Duration>,
    /// `USAGE_DAILY_RETENTION_DAYS`, 1d..3650d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_daily: Option<Duration>,
    /// `LLM_USAGE_DAILY_RETENTION_DAYS`, 1d..3650d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_usage_daily: Option<Duration>,
}

/// Privilege snapshot retention.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivilegeSnapshots {
    /// Keep every snapshot this long (`PRIVILEGE_SNAPSHOT_RETENTION_DAYS`), 7d..3650d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_all: Option<Duration>,
    /// Then one per ISO week until this age (`PRIVILEGE_SNAPSHOT_WEEKLY_RETENTION_DAYS`),
    /// 30d..3650d and not below `keep_all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<Duration>,
}

/// Backup policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// Directory that holds `<environment>/<timestamp>/` backup sets.
    #[schemars(length(min = 1))]
    pub destination: String,
    /// Create a set when the newest verified one is older than this.
    pub every: Duration,
    /// What a set holds. Default all three.
    #[serde(default = "default_backup_include")]
    pub include: Vec<BackupItem>,
    pub keep: Keep,
    /// Check every set after it is made. Default true.
    #[serde(default = "default_true")]
    pub verify: bool,
    /// Take a set as the first step of any apply that changes something.
    #[serde(default)]
    pub before_apply: bool,
    /// How often a restore drill is due (the Admin Guide's weekly restore test), e.g. `7d`:
    /// `backup drill --if-due` drills the newest complete set only when the last drill that
    /// passed is at least this old, and `backup schedule` adds a timer that runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<Duration>,
}

fn default_true() -> bool {
    true
}

fn default_backup_include() -> Vec<BackupItem> {
    vec![
        BackupItem::Authnz,
        BackupItem::UserDatabases,
        BackupItem::Config,
    ]
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BackupItem {
    Authnz,
    UserDatabases,
    Config,
}

/// How many sets the prune keeps: the newest of each of the last N days, ISO weeks and months,
/// and the `last` N sets whatever their day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Keep {
    /// The newest N sets, however close together (restic's `--keep-last`). With
    /// `before_apply: true` it defaults to 3, so the sets taken before each of the last applies
    /// survive even when several applies fall on one day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<u32>,
}

/// Promotion gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Promotion {
    /// The environment that must have applied the same shared layers first.
    #[schemars(length(min = 1))]
    pub from: String,
    /// How long it must have stayed healthy there.
    pub soak: Duration,
}

/// A policy rule turned off for this file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Waiver {
    /// The rule id, as listed by `tldw-ops validate`.
    pub rule: String,
    /// Why this environment may break the rule.
    #[schemars(length(min = 3))]
    pub reason: String,
}

pub const DEFAULT_ENV_FILE: &str = "tldw_Server_API/Config_Files/.env";
pub const DEFAULT_CONFIG_FILE: &str = "tldw_Server_API/Config_Files/config.txt";
pub const DEFAULT_USER_DB_BASE_DIR: &str = "Databases/user_databases";
