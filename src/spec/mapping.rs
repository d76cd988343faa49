//! How the sections of the desired state map onto tldw_server's environment variables
//! (`../shared/TLDW_TARGET.md` §1). One table, used by compile and by the policy rules, so that
//! what is checked is exactly what is written.

use super::duration::Duration;
use super::types::{Retention, Spec};

/// Where a compiled `.env` entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvOrigin {
    Env,
    Cors,
    Registration,
    Quotas,
    Retention,
    Release,
}

/// One plain (non-secret-section) `.env` entry the desired state asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvEntry {
    pub name: String,
    pub value: String,
    /// JSON pointer of the YAML value that declares it.
    pub pointer: String,
    pub origin: EnvOrigin,
}

/// A retention setting: the YAML path, tldw's variable and its admin-API policy key, and the
/// range tldw accepts in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionKey {
    pub yaml_path: &'static str,
    pub env_name: &'static str,
    pub policy_key: &'static str,
    pub min_days: u64,
    pub max_days: u64,
    /// tldw's built-in value, in force when no override is set.
    pub default_days: u64,
}

pub const RETENTION_KEYS: &[RetentionKey] = &[
    RetentionKey {
        yaml_path: "/retention/privilege_snapshots/keep_all",
        env_name: "PRIVILEGE_SNAPSHOT_RETENTION_DAYS",
        policy_key: "privilege_snapshots",
        min_days: 7,
        max_days: 3650,
        default_days: 90,
    },
    RetentionKey {
        yaml_path: "/retention/privilege_snapshots/keep_weekly",
        env_name: "PRIVILEGE_SNAPSHOT_WEEKLY_RETENTION_DAYS",
        policy_key: "privilege_snapshots_weekly",
        min_days: 30,
        max_days: 3650,
        default_days: 365,
    },
    RetentionKey {
        yaml_path: "/retention/audit_logs",
        env_name: "AUDIT_LOG_RETENTION_DAYS",
        policy_key: "audit_logs",
        min_days: 30,
        max_days: 3650,
        default_days: 180,
    },
    RetentionKey {
        yaml_path: "/retention/sessions",
        env_name: "SESSION_LOG_RETENTION_DAYS",
        policy_key: "sessions",
        min_days: 7,
        max_days: 3650,
        default_days: 90,
    },
    RetentionKey {
        yaml_path: "/retention/usage_logs",
        env_name: "USAGE_LOG_RETENTION_DAYS",
        policy_key: "usage_logs",
        min_days: 1,
        max_days: 3650,
        default_days: 180,
    },
    RetentionKey {
        yaml_path: "/retention/llm_usage_logs",
        env_name: "LLM_USAGE_LOG_RETENTION_DAYS",
        policy_key: "llm_usage_logs",
        min_days: 1,
        max_days: 3650,
        default_days: 180,
    },
    RetentionKey {
        yaml_path: "/retention/usage_daily",
        env_name: "USAGE_DAILY_RETENTION_DAYS",
        policy_key: "usage_daily",
        min_days: 1,
        max_days: 3650,
        default_days: 365,
    },
    RetentionKey {
        yaml_path: "/retention/llm_usage_daily",
        env_name: "LLM_USAGE_DAILY_RETENTION_DAYS",
        policy_key: "llm_usage_daily",
        min_days: 1,
        max_days: 3650,
        default_days: 365,
    },
];

/// The retention durations the spec sets, with their table row.
pub fn retention_values(retention: &Retention) -> Vec<(&'static RetentionKey, Duration)> {
    let snapshots = retention.privilege_snapshots.as_ref();
    let values = [
        snapshots.and_then(|s| s.keep_all),
        snapshots.and_then(|s| s.keep_weekly),
        retention.audit_logs,
        retention.sessions,
        retention.usage_logs,
        retention.llm_usage_logs,
        retention.usage_daily,
        retention.llm_usage_daily,
    ];
    RETENTION_KEYS
        .iter()
        .zip(values)
        .filter_map(|(key, value)| value.map(|value| (key, value)))
        .collect()
}

/// The table row of a retention policy key.
pub fn retention_key(policy_key: &str) -> Option<&'static RetentionKey> {
    RETENTION_KEYS
        .iter()
        .find(|key| key.policy_key == policy_key)
}

pub const ALLOWED_ORIGINS: &str = "ALLOWED_ORIGINS";
/// The app image of a Compose deployment, which `release.image` sets.
pub const APP_IMAGE: &str = "TLDW_APP_IMAGE";
/// Where a release change keeps the image it replaces (tldw's `make production-rollback` reads
/// it).
pub const ROLLBACK_IMAGE: &str = "TLDW_ROLLBACK_IMAGE";
pub const CORS_ALLOW_CREDENTIALS: &str = "CORS_ALLOW_CREDENTIALS";
pub const ENABLE_REGISTRATION: &str = "ENABLE_REGISTRATION";
pub const REQUIRE_REGISTRATION_CODE: &str = "REQUIRE_REGISTRATION_CODE";
pub const USAGE_QUOTAS_ENABLED: &str = "USAGE_QUOTAS_ENABLED";

/// `ALLOWED_ORIGINS` as tldw reads it back: comma-separated (origins hold no commas), or `[]`
/// for an explicit empty list.
pub fn encode_origins(origins: &[String]) -> String {
    if origins.is_empty() {
        "[]".to_string()
    } else {
        origins.join(",")
    }
}

/// Every plain `.env` entry: the `env:` section first, then what the other sections compile to.
pub fn env_entries(spec: &Spec) -> Vec<EnvEntry> {
    let mut entries: Vec<EnvEntry> = spec
        .env
        .iter()
        .map(|(name, value)| EnvEntry {
            name: name.clone(),
            value: value.render(),
            pointer: format!("/env/{}", super::load::escape_pointer(name)),
            origin: EnvOrigin::Env,
        })
        .collect();
    if let Some(cors) = &spec.cors {
        entries.push(EnvEntry {
            name: ALLOWED_ORIGINS.to_string(),
            value: encode_origins(&cors.allowed_origins),
            pointer: "/cors/allowed_origins".to_string(),
            origin: EnvOrigin::Cors,
        });
        if let Some(credentials) = cors.allow_credentials {
            entries.push(EnvEntry {
                name: CORS_ALLOW_CREDENTIALS.to_string(),
                value: credentials.to_string(),
                pointer: "/cors/allow_credentials".to_string(),
                origin: EnvOrigin::Cors,
            });
        }
    }
    if let Some(registration) = &spec.registration {
        entries.push(EnvEntry {
            name: ENABLE_REGISTRATION.to_string(),
            value: registration.enabled.to_string(),
            pointer: "/registration/enabled".to_string(),
            origin: EnvOrigin::Registration,
        });
        if let Some(require_code) = registration.require_code {
            entries.push(EnvEntry {
                name: REQUIRE_REGISTRATION_CODE.to_string(),
                value: require_code.to_string(),
                pointer: "/registration/require_code".to_string(),
                origin: EnvOrigin::Registration,
            });
        }
    }
    if let Some(enforce) = spec.quotas.as_ref().and_then(|quotas| quotas.enforce) {
        entries.push(EnvEntry {
            name: USAGE_QUOTAS_ENABLED.to_string(),
            value: enforce.to_string(),
            pointer: "/quotas/enforce".to_string(),
            origin: EnvOrigin::Quotas,
        });
    }
    if let Some(retention) = &spec.retention {
        for (key, duration) in retention_values(retention) {
            // A duration that is not whole days is refused by validation; compile never sees it.
            let days = duration
                .whole_days()
                .unwrap_or(duration.as_seconds() / 86_400);
            entries.push(EnvEntry {
                name: key.env_name.to_string(),
                value: days.to_string(),
                pointer: key.yaml_path.to_string(),
                origin: EnvOrigin::Retention,
            });
        }
    }
    if let Some(image) = spec
        .release
        .as_ref()
        .and_then(|release| release.image.as_ref())
    {
        entries.push(EnvEntry {
            name: APP_IMAGE.to_string(),
            value: image.clone(),
            pointer: "/release/image".to_string(),
            origin: EnvOrigin::Release,
        });
    }
    entries
}
