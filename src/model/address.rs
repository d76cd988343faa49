//! Addresses name every managed thing. They are a contract: plan files, the state store and
//! users' scripts use them. `env.<NAME>`, `config.<Section>.<key>`, `secret.<NAME>`,
//! `quota.user.<name>`, `retention.<policy_key>`, `backup.set.<timestamp>`, `release.git`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Target;

/// Checked on deserialize as by [`Address::parse`], so an address read from a plan file or the
/// state store is as valid as one built by the constructors and [`Address::kind`] cannot fail.
/// Serialized as a newtype, which every format here writes as the bare string (no copy, as
/// `transparent` did; `try_from` cannot be combined with `transparent`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct Address(String);

/// In a JSON Schema an address is a plain string, as it is in the files: the schemas committed
/// under `schemas/` do not change with the Rust type.
impl schemars::JsonSchema for Address {
    fn inline_schema() -> bool {
        String::inline_schema()
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        String::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        String::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

impl PartialEq<str> for Address {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Address {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl TryFrom<String> for Address {
    type Error = AddressError;

    fn try_from(text: String) -> Result<Address, AddressError> {
        Address::parse(&text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddressKind {
    Env,
    Config,
    Secret,
    QuotaUser,
    Retention,
    BackupSet,
    /// `release.git`: the commit a bare-metal checkout runs.
    Release,
}

impl AddressKind {
    /// Every address kind.
    pub const ALL: [AddressKind; 7] = [
        AddressKind::Env,
        AddressKind::Config,
        AddressKind::Secret,
        AddressKind::QuotaUser,
        AddressKind::Retention,
        AddressKind::BackupSet,
        AddressKind::Release,
    ];

    pub fn target(self) -> Target {
        match self {
            AddressKind::Env | AddressKind::Secret => Target::EnvFile,
            AddressKind::Config => Target::ConfigFile,
            AddressKind::QuotaUser | AddressKind::Retention => Target::Api,
            AddressKind::BackupSet => Target::Backups,
            AddressKind::Release => Target::Checkout,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an address: expected env.NAME, config.Section.key, secret.NAME, quota.user.NAME, retention.KEY, backup.set.ID or release.git"
)]
pub struct AddressError(pub String);

impl Address {
    pub fn env(name: &str) -> Address {
        Address(format!("env.{name}"))
    }

    pub fn secret(name: &str) -> Address {
        Address(format!("secret.{name}"))
    }

    /// Config addresses keep the section as written and lower-case the key, as configparser
    /// does, so `AUTH_MODE` and `auth_mode` are one address.
    pub fn config(section: &str, key: &str) -> Address {
        Address(format!("config.{section}.{}", key.to_ascii_lowercase()))
    }

    pub fn quota_user(username: &str) -> Address {
        Address(format!("quota.user.{username}"))
    }

    pub fn retention(policy_key: &str) -> Address {
        Address(format!("retention.{policy_key}"))
    }

    pub fn backup_set(id: &str) -> Address {
        Address(format!("backup.set.{id}"))
    }

    /// `release.git`, the one address of a bare-metal release.
    pub fn release() -> Address {
        Address("release.git".to_string())
    }

    pub fn parse(text: &str) -> Result<Address, AddressError> {
        let address = Address(text.to_string());
        let valid = match address.kind_checked() {
            Some(AddressKind::Config) => address.config_parts().is_some(),
            Some(_) => !address.name().is_empty(),
            None => false,
        };
        if valid {
            Ok(address)
        } else {
            Err(AddressError(text.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn kind_checked(&self) -> Option<AddressKind> {
        let text = self.0.as_str();
        if text.starts_with("env.") {
            Some(AddressKind::Env)
        } else if text.starts_with("config.") {
            Some(AddressKind::Config)
        } else if text.starts_with("secret.") {
            Some(AddressKind::Secret)
        } else if text.starts_with("quota.user.") {
            Some(AddressKind::QuotaUser)
        } else if text.starts_with("retention.") {
            Some(AddressKind::Retention)
        } else if text.starts_with("backup.set.") {
            Some(AddressKind::BackupSet)
        } else if text == "release.git" {
            Some(AddressKind::Release)
        } else {
            None
        }
    }

    pub fn kind(&self) -> AddressKind {
        self.kind_checked()
            .expect("addresses are built by the constructors or checked by parse")
    }

    /// The part after the kind prefix: the variable, user, policy key or set id.
    pub fn name(&self) -> &str {
        let text = self.0.as_str();
        for prefix in [
            "env.",
            "secret.",
            "quota.user.",
            "retention.",
            "backup.set.",
            "config.",
            "release.",
        ] {
            if let Some(rest) = text.strip_prefix(prefix) {
                return rest;
            }
        }
        text
    }

    /// `(section, key)` of a config address. Sections may contain dots (`persona.rbac`), keys
    /// may not, so the key is after the last dot.
    pub fn config_parts(&self) -> Option<(&str, &str)> {
        let rest = self.0.strip_prefix("config.")?;
        let (section, key) = rest.rsplit_once('.')?;
        (!section.is_empty() && !key.is_empty()).then_some((section, key))
    }

    /// The `.env` variable an env or secret address writes.
    pub fn env_name(&self) -> Option<&str> {
        match self.kind() {
            AddressKind::Env | AddressKind::Secret => Some(self.name()),
            _ => None,
        }
    }
}

/// Shown as the bare string, honouring width and alignment as a `str` does, so a format that
/// took the address as a `String` prints the same with an `Address`.
impl fmt::Display for Address {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_sections_may_hold_dots_but_keys_are_after_the_last_one() {
        let address = Address::config("persona.rbac", "Enabled");
        assert_eq!(address.as_str(), "config.persona.rbac.enabled");
        assert_eq!(address.config_parts(), Some(("persona.rbac", "enabled")));
    }

    #[test]
    fn deserializing_checks_the_address() {
        let address: Address = serde_json::from_str("\"env.LOG_LEVEL\"").unwrap();
        assert_eq!(address, Address::env("LOG_LEVEL"));
        assert_eq!(
            serde_json::to_string(&address).unwrap(),
            "\"env.LOG_LEVEL\""
        );
        let keyed: std::collections::BTreeMap<Address, u8> = [(address, 1)].into();
        let text = serde_json::to_string(&keyed).unwrap();
        assert_eq!(
            text, "{\"env.LOG_LEVEL\":1}",
            "a bare string as a map key too"
        );
        assert_eq!(
            serde_json::from_str::<std::collections::BTreeMap<Address, u8>>(&text).unwrap(),
            keyed
        );
        for bad in ["\"bogus\"", "\"env.\"", "\"config.nokey\""] {
            assert!(serde_json::from_str::<Address>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_address_formats_and_compares_as_its_string() {
        let address = Address::env("LOG_LEVEL");
        assert_eq!(format!("[{address:<15}]"), "[env.LOG_LEVEL  ]");
        assert_eq!(format!("[{address:>15}]"), "[  env.LOG_LEVEL]");
        assert!(address == "env.LOG_LEVEL");
        assert!(address != "env.OTHER");
    }

    proptest::proptest! {
        #[test]
        fn parsing_any_text_never_panics(text in "\\PC{0,40}") {
            if let Ok(address) = Address::parse(&text) {
                let _ = (address.kind(), address.name(), address.config_parts(), address.env_name());
            }
        }
    }

    #[test]
    fn parse_accepts_every_kind_and_refuses_others() {
        for text in [
            "env.LOG_LEVEL",
            "secret.JWT_SECRET_KEY",
            "config.Setup.setup_completed",
            "quota.user.alice",
            "retention.audit_logs",
            "backup.set.2026-11-25T030000Z",
        ] {
            assert_eq!(Address::parse(text).unwrap().as_str(), text);
        }
        for text in ["", "env.", "LOG_LEVEL", "config.Setup", "nothing.x"] {
            assert!(Address::parse(text).is_err(), "{text}");
        }
    }
}
