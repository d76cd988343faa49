//! Secrets: telling them apart, fingerprinting them, generating them, and reading their sources.
//!
//! A secret value never leaves this process except into the `.env` file (and its 0600
//! checkpoints). Everything else that needs to talk about a secret uses its [`Fingerprint`]: a
//! salted SHA-256 whose salt is random per state store, so fingerprints cannot be looked up in a
//! table and do not match across deployments.

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::spec::types::{Alphabet, Generate, SecretFormat};

pub use crate::spec::secret_rules::{
    generated_length, is_placeholder, is_sensitive, is_tldw_api_key, looks_like_secret_name,
    url_has_password,
};

/// A salted hash of a value, hex encoded. Shown as `fp:` and its first eight characters.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Fingerprint(pub String);

impl Fingerprint {
    pub fn short(&self) -> &str {
        &self.0[..self.0.len().min(8)]
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "fp:{}", self.short())
    }
}

/// The fingerprint of `value` under `salt`.
pub fn fingerprint(salt: &[u8], value: &str) -> Fingerprint {
    let mut hasher = Sha256::new();
    hasher.update((salt.len() as u64).to_be_bytes());
    hasher.update(salt);
    hasher.update(value.as_bytes());
    Fingerprint(hex(&hasher.finalize()))
}

/// The hash of a value as plans and the state store keep it: the first 16 hex characters (64
/// bits) of its fingerprint. Enough to notice any change; too short to confirm a guess at a
/// strong secret offline.
pub fn value_hash(salt: &[u8], value: &str) -> String {
    let mut hash = fingerprint(salt, value).0;
    hash.truncate(16);
    hash
}

/// How a hash is shown to people: `fp:` and its first eight characters.
pub fn show_hash(hash: &str) -> String {
    format!("fp:{}", &hash[..hash.len().min(8)])
}

/// A value as plans show it: its fingerprint when sensitive, else the value itself.
pub fn shown(salt: &[u8], value: &str, sensitive: bool) -> String {
    if sensitive {
        show_hash(&value_hash(salt, value))
    } else {
        value.to_string()
    }
}

/// Unsalted SHA-256 of bytes, hex: for file contents and plan hashes, never for secret values
/// on their own.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[(byte >> 4) as usize] as char);
        out.push(DIGITS[(byte & 0x0f) as usize] as char);
    }
    out
}

const URLSAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const ALPHANUMERIC: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8; 16] = b"0123456789abcdef";

/// A source of random bytes: the OS CSPRNG in production, a seeded one in tests.
pub trait RandomSource {
    fn fill(&mut self, bytes: &mut [u8]);
}

/// The operating system's CSPRNG.
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&mut self, bytes: &mut [u8]) {
        getrandom::fill(bytes).expect("the operating system random source is available");
    }
}

/// Generates a secret as `generate` describes.
pub fn generate(generate: &Generate, random: &mut dyn RandomSource) -> String {
    match generate.format {
        Some(SecretFormat::TldwApiKey) => {
            let mut kid = [0_u8; 6];
            random.fill(&mut kid);
            let mut secret = [0_u8; 32];
            random.fill(&mut secret);
            format!("tldw_{}.{}", hex(&kid), base64_url(&secret, false))
        }
        Some(SecretFormat::Fernet) => {
            let mut key = [0_u8; 32];
            random.fill(&mut key);
            base64_url(&key, true)
        }
        None => {
            let length = generate.length.unwrap_or(64) as usize;
            let alphabet: &[u8] = match generate.alphabet.unwrap_or(Alphabet::Urlsafe) {
                Alphabet::Urlsafe => URLSAFE,
                Alphabet::Alphanumeric => ALPHANUMERIC,
                Alphabet::Hex => HEX,
            };
            draw(alphabet, length, random)
        }
    }
}

/// Uniform characters from `alphabet` by rejection sampling (no modulo bias).
fn draw(alphabet: &[u8], length: usize, random: &mut dyn RandomSource) -> String {
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(length);
    let mut buffer = [0_u8; 64];
    while out.len() < length {
        random.fill(&mut buffer);
        for &byte in &buffer {
            if (byte as usize) < limit {
                out.push(alphabet[byte as usize % alphabet.len()] as char);
                if out.len() == length {
                    break;
                }
            }
        }
    }
    out
}

/// RFC 4648 base64url.
pub fn base64_url(bytes: &[u8], padded: bool) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let triple = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        let characters = chunk.len() + 1;
        for index in 0..4 {
            if index < characters {
                out.push(URLSAFE[((triple >> (18 - 6 * index)) & 0x3f) as usize] as char);
            } else if padded {
                out.push('=');
            }
        }
    }
    out
}

/// Where a secret or token comes from, resolved.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("environment variable `{name}` is not set")]
    MissingEnv { name: String },
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("secret file {path} is not UTF-8 text")]
    NotUtf8 { path: String },
    /// Not a regular file (`/dev/zero`, a FIFO), or larger than the limit.
    #[error("secret file refused: {0}")]
    Refused(crate::limits::ReadError),
}

/// Reads a `from_file` source: the whole file, without one trailing newline. Only a regular
/// file of at most [`crate::limits::MAX_SECRET_FILE_BYTES`] is read, and never more than that.
pub fn read_secret_file(path: &Path) -> Result<String, SourceError> {
    let bytes = crate::limits::read_regular_file(path, crate::limits::MAX_SECRET_FILE_BYTES)
        .map_err(|error| match error {
            crate::limits::ReadError::Io { source, .. } => SourceError::File {
                path: path.display().to_string(),
                source,
            },
            refused => SourceError::Refused(refused),
        })?;
    let mut text = String::from_utf8(bytes).map_err(|_| SourceError::NotUtf8 {
        path: path.display().to_string(),
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// Resolves a secret's source for the validate-time policy checks. A missing source is not an
/// error here: CI runners often lack production secrets.
pub fn resolve_for_policy(
    secret: &crate::spec::types::SecretSpec,
    process_env: &std::collections::BTreeMap<String, String>,
    base_directory: &Path,
) -> crate::spec::ResolvedSecret {
    use crate::spec::ResolvedSecret;
    if let Some(generate_spec) = &secret.generate {
        return ResolvedSecret::Generated {
            length: generated_length(generate_spec),
        };
    }
    if let Some(name) = &secret.from_env {
        return match process_env.get(name) {
            Some(value) => ResolvedSecret::Value(value.clone()),
            None => ResolvedSecret::Unavailable {
                reason: format!("environment variable `{name}` is not set"),
            },
        };
    }
    if let Some(path) = &secret.from_file {
        return match read_secret_file(&base_directory.join(path)) {
            Ok(value) => ResolvedSecret::Value(value),
            Err(error) => ResolvedSecret::Unavailable {
                reason: error.to_string(),
            },
        };
    }
    ResolvedSecret::Unavailable {
        reason: "no source".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u8);

    impl RandomSource for Counter {
        fn fill(&mut self, bytes: &mut [u8]) {
            for byte in bytes {
                *byte = self.0;
                self.0 = self.0.wrapping_add(97);
            }
        }
    }

    #[test]
    fn generated_api_keys_have_tldw_format() {
        let key = generate(
            &Generate {
                format: Some(SecretFormat::TldwApiKey),
                ..Generate::default()
            },
            &mut OsRandom,
        );
        assert!(is_tldw_api_key(&key), "{key}");
        assert_eq!(
            key.len(),
            generated_length(&Generate {
                format: Some(SecretFormat::TldwApiKey),
                ..Generate::default()
            })
        );
    }

    #[test]
    fn generated_fernet_keys_decode_to_32_bytes() {
        let key = generate(
            &Generate {
                format: Some(SecretFormat::Fernet),
                ..Generate::default()
            },
            &mut Counter(1),
        );
        assert_eq!(key.len(), 44);
        assert!(key.ends_with('='));
        assert!(key[..43].bytes().all(|b| URLSAFE.contains(&b)));
    }

    #[test]
    fn generated_secrets_use_the_requested_length_and_alphabet() {
        let value = generate(
            &Generate {
                length: Some(40),
                alphabet: Some(Alphabet::Hex),
                format: None,
            },
            &mut OsRandom,
        );
        assert_eq!(value.len(), 40);
        assert!(value.bytes().all(|b| HEX.contains(&b)));
    }

    #[test]
    fn base64_url_matches_rfc_4648_vectors() {
        assert_eq!(base64_url(b"", true), "");
        assert_eq!(base64_url(b"f", true), "Zg==");
        assert_eq!(base64_url(b"fo", true), "Zm8=");
        assert_eq!(base64_url(b"foo", true), "Zm9v");
        assert_eq!(base64_url(b"foob", false), "Zm9vYg");
        assert_eq!(base64_url(&[0xfb, 0xff], true), "-_8=");
    }

    #[test]
    fn fingerprints_depend_on_the_salt() {
        let a = fingerprint(b"salt-a", "value");
        let b = fingerprint(b"salt-b", "value");
        assert_ne!(a, b);
        assert_eq!(a, fingerprint(b"salt-a", "value"));
        assert_eq!(a.to_string().len(), 11);
    }

    #[test]
    fn secret_names_are_recognised() {
        for name in [
            "JWT_SECRET_KEY",
            "POSTGRES_PASSWORD",
            "MCP_API_KEY_SALT",
            "API_KEY_PEPPER",
            "OPENAI_API_KEY",
            "BYOK_ENCRYPTION_KEY",
            "tts_history_hash_key",
            "pg_password",
        ] {
            assert!(looks_like_secret_name(name), "{name}");
        }
        for name in [
            "LOG_LEVEL",
            "SHOW_API_KEY_ON_STARTUP",
            "TLDW_METRICS_API_KEY_FILE",
            "AUTH_MODE",
            "ALLOWED_ORIGINS",
        ] {
            assert!(!looks_like_secret_name(name), "{name}");
        }
    }

    #[test]
    fn numbers_and_switches_are_never_sensitive() {
        assert!(!is_sensitive("access_token_expire_minutes", "30"));
        assert!(!is_sensitive("SHOW_API_KEY_ON_STARTUP", "true"));
        assert!(!is_sensitive("OPENAI_API_KEY", ""));
        assert!(is_sensitive("OPENAI_API_KEY", "sk-abc"));
    }

    #[test]
    fn urls_with_passwords_are_sensitive() {
        assert!(url_has_password("postgresql://tldw:hunter2@db:5432/tldw"));
        assert!(!url_has_password("postgresql://tldw@db:5432/tldw"));
        assert!(!url_has_password("sqlite:///./Databases/users.db"));
    }

    #[test]
    fn every_placeholder_in_the_shipped_env_example_is_caught() {
        for value in [
            "CHANGE_ME_TO_SECURE_API_KEY",
            "CHANGE_ME_TO_SECURE_RANDOM_KEY_MIN_32_CHARS",
            "${OPENAI_API_KEY}",
            "CHANGE_ME_TO_UNIQUE_FRONTEND_KEY",
            "CHANGE_ME_TO_SECURE_MCP_JWT_SECRET",
            "CHANGE_ME_TO_SECURE_MCP_API_KEY_SALT",
            "CHANGE_ME_TO_SECURE_BYOK_KEY",
            "replace-with-primary-secret,replace-with-old-secret",
            "your-app-password",
            "admin",
            "",
            "your_secure_password",
            "<brave_api_key>",
        ] {
            assert!(is_placeholder(value), "{value}");
        }
        assert!(!is_placeholder("kT3v9QxW2pLmN8rZ4sYb7cHd1fJg6aEu"));
    }
}
