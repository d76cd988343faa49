//! Settings that tldw_server reads from both `.env` and config.txt. The environment wins
//! (`../shared/TLDW_TARGET.md` §1.1, §2.3), so a config.txt value that differs is silently
//! ignored — and so is the admin API's registration-settings write, which edits config.txt.
//! This module finds those pairs in the state a plan leads to.

use crate::spec::types::parse_truthy;

/// `.env` name, config.txt section, key, and legacy key names.
pub const SHADOWED: &[(&str, &str, &[&str])] = &[
    (
        "ENABLE_REGISTRATION",
        "AuthNZ",
        &["enable_registration", "registration_enabled"],
    ),
    (
        "REQUIRE_REGISTRATION_CODE",
        "AuthNZ",
        &["require_registration_code", "registration_require_code"],
    ),
    (
        "ENABLE_ORG_SCOPED_REGISTRATION_CODES",
        "AuthNZ",
        &["enable_org_scoped_registration_codes"],
    ),
    ("AUTH_MODE", "AuthNZ", &["auth_mode"]),
    ("DATABASE_URL", "AuthNZ", &["database_url"]),
    ("BYOK_ENCRYPTION_KEY", "AuthNZ", &["byok_encryption_key"]),
    (
        "CORS_ALLOW_CREDENTIALS",
        "Server",
        &["cors_allow_credentials"],
    ),
    ("DISABLE_CORS", "Server", &["disable_cors"]),
    ("RG_ENABLED", "ResourceGovernor", &["enabled"]),
    ("USAGE_QUOTAS_ENABLED", "Usage-Quotas", &["enabled"]),
    ("USER_DB_BASE_DIR", "TTS-Settings", &["USER_DB_BASE_DIR"]),
    ("LOG_LEVEL", "Logging", &["log_level"]),
    ("TLDW_DB_BACKUP_PATH", "Database", &["backup_path"]),
];

/// Whether two values mean the same to tldw: booleans by truthiness, log levels by name.
fn same(name: &str, env_value: &str, config_value: &str) -> bool {
    if let (Some(left), Some(right)) = (parse_truthy(env_value), parse_truthy(config_value)) {
        return left == right;
    }
    if name == "LOG_LEVEL" || name == "AUTH_MODE" {
        return env_value.trim().eq_ignore_ascii_case(config_value.trim());
    }
    env_value.trim() == config_value.trim()
}

/// Warnings for every pair whose effective values differ. `env` and `config` give the value
/// each file will hold after the plan; sensitive values are never quoted.
pub fn warnings(
    env: &dyn Fn(&str) -> Option<String>,
    config: &dyn Fn(&str, &str) -> Option<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, section, keys) in SHADOWED {
        let Some(env_value) = env(name) else { continue };
        for key in *keys {
            let Some(config_value) = config(section, key) else {
                continue;
            };
            if config_value.trim().is_empty() || same(name, &env_value, &config_value) {
                continue;
            }
            let sensitive = crate::secrets::looks_like_secret_name(name)
                || crate::secrets::url_has_password(&env_value)
                || crate::secrets::url_has_password(&config_value);
            let detail = if sensitive {
                String::new()
            } else {
                format!(" ({env_value:?} over {config_value:?})")
            };
            let mut message = format!(
                "{name} in .env shadows [{section}] {key} in config.txt with a different value{detail}; tldw_server uses the .env value"
            );
            if name.contains("REGISTRATION") {
                message.push_str(", and registration changes made in the admin UI (which writes config.txt) will be silently ignored");
            }
            out.push(message);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_value_that_differs_is_reported_and_an_equal_one_is_not() {
        let env = |name: &str| match name {
            "ENABLE_REGISTRATION" => Some("false".to_string()),
            "LOG_LEVEL" => Some("info".to_string()),
            _ => None,
        };
        let config = |section: &str, key: &str| match (section, key) {
            ("AuthNZ", "enable_registration") => Some("true".to_string()),
            ("Logging", "log_level") => Some("INFO".to_string()),
            _ => None,
        };
        let found = warnings(&env, &config);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .starts_with("ENABLE_REGISTRATION in .env shadows [AuthNZ] enable_registration")
        );
        assert!(found[0].contains("silently ignored"));
    }

    #[test]
    fn secret_values_are_never_quoted() {
        let env = |name: &str| {
            (name == "DATABASE_URL").then(|| "postgresql://u:hunter2@db/x".to_string())
        };
        let config = |_: &str, key: &str| {
            (key == "database_url").then(|| "sqlite:///./Databases/users.db".to_string())
        };
        let found = warnings(&env, &config);
        assert_eq!(found.len(), 1);
        assert!(!found[0].contains("hunter2"));
    }
}
