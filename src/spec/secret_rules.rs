//! What makes a name or a value a secret, as the spec's checks and the planners judge it: pure
//! rules with no I/O, so the spec can use them without depending on the secret sources
//! (`crate::secrets` re-exports them beside the fingerprints and the sources).

use crate::spec::types::{Generate, SecretFormat};

/// Words in a variable name that mark it as holding a secret.
const SECRET_NAME_MARKERS: &[&str] = &[
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "TOKEN",
    "PEPPER",
    "SALT",
    "PRIVATE_KEY",
    "API_KEY",
    "ENCRYPTION_KEY",
    "CREDENTIAL",
    "HASH_KEY",
];

/// Names that contain a marker but hold a switch or a path, not a secret.
const NOT_SECRET_SUFFIXES: &[&str] = &[
    "_FILE",
    "_PATH",
    "_DIR",
    "_ENABLED",
    "_REQUIRED",
    "_TTL",
    "_SECONDS",
    "_HEADER",
];
const NOT_SECRET_NAMES: &[&str] = &[
    "SHOW_API_KEY_ON_STARTUP",
    "TLDW_ALLOW_LEGACY_SINGLE_USER_KEY",
    "HEALTH_EXPOSE_TEST_API_KEY",
    "MCP_WS_ALLOW_QUERY_AUTH",
    "JWT_ALGORITHM",
];

/// Whether a `.env` or `config.txt` name looks like it holds a secret.
pub fn looks_like_secret_name(name: &str) -> bool {
    // Most names are already upper case: do not allocate for them.
    let upper: std::borrow::Cow<'_, str> = if name.bytes().any(|byte| byte.is_ascii_lowercase()) {
        std::borrow::Cow::Owned(name.to_ascii_uppercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    };
    let upper = upper.as_ref();
    if NOT_SECRET_NAMES.contains(&upper)
        || NOT_SECRET_SUFFIXES
            .iter()
            .any(|suffix| upper.ends_with(suffix))
    {
        return false;
    }
    SECRET_NAME_MARKERS
        .iter()
        .any(|marker| upper.contains(marker))
        || upper.ends_with("_KEY")
}

/// Whether a URL-like value carries a password (`scheme://user:password@host`).
pub fn url_has_password(value: &str) -> bool {
    let Some((_, rest)) = value.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .map(|(userinfo, _)| userinfo.contains(':'))
        .unwrap_or(false)
}

/// Whether a value must be treated as secret: by its name, or because it embeds a password.
pub fn is_sensitive(name: &str, value: &str) -> bool {
    // Switches, counts and durations are not secrets, whatever their names say
    // (`access_token_expire_minutes`, `SHOW_API_KEY_ON_STARTUP`).
    let trimmed = value.trim();
    if trimmed.is_empty()
        || matches!(trimmed.to_ascii_lowercase().as_str(), "true" | "false")
        || trimmed.parse::<f64>().is_ok()
    {
        return false;
    }
    looks_like_secret_name(name) || url_has_password(value)
}

/// Exact placeholder values seen in tldw_server's templates and docs (compared case-insensitively).
const PLACEHOLDERS: &[&str] = &[
    "change_me_to_secure_api_key",
    "change_me_to_secure_random_key_min_32_chars",
    "change_me_to_unique_frontend_key",
    "change_me_to_secure_mcp_jwt_secret",
    "change_me_to_secure_mcp_api_key_salt",
    "change_me_to_secure_byok_key",
    "default-secret-key-for-single-user",
    "change-me-in-production",
    "change-me-to-a-secure-key-at-least-16-chars",
    "test-api-key-12345",
    "your_secure_password",
    "your-app-password",
    "strongpass",
    "password",
    "postgres",
    "redis",
    "secret",
    "changeme",
    "admin",
    "default",
    "test",
    "none",
    "null",
    "todo",
];

/// Fragments that only placeholders contain.
const PLACEHOLDER_FRAGMENTS: &[&str] = &[
    "change_me",
    "change-me",
    "changeme",
    "replace-with",
    "replace_with",
    "replace-me",
    "replace_me",
    "example",
    "placeholder",
    "your-",
    "your_",
    "${",
    "xxxxxxxx",
];

/// Whether `value` is a placeholder rather than a real secret. An empty value counts.
pub fn is_placeholder(value: &str) -> bool {
    let trimmed = value.trim();
    let lowered = trimmed.to_ascii_lowercase();
    if trimmed.is_empty() || PLACEHOLDERS.contains(&lowered.as_str()) {
        return true;
    }
    if trimmed.starts_with('<') && trimmed.ends_with('>') {
        return true;
    }
    PLACEHOLDER_FRAGMENTS
        .iter()
        .any(|fragment| lowered.contains(fragment))
}

/// Whether `value` parses as tldw's `tldw_<kid>.<secret>` API key: kid 8..32 hex characters.
pub fn is_tldw_api_key(value: &str) -> bool {
    let Some(rest) = value.strip_prefix("tldw_") else {
        return false;
    };
    let Some((kid, secret)) = rest.split_once('.') else {
        return false;
    };
    (8..=32).contains(&kid.len())
        && kid.bytes().all(|byte| byte.is_ascii_hexdigit())
        && !secret.is_empty()
}

/// The length a generated secret will have.
pub fn generated_length(generate: &Generate) -> usize {
    match generate.format {
        Some(SecretFormat::TldwApiKey) => 5 + 12 + 1 + 43,
        Some(SecretFormat::Fernet) => 44,
        None => generate.length.unwrap_or(64) as usize,
    }
}
