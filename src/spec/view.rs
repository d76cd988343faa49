//! The settings the policy rules judge: tldw_server's `.env` and `config.txt` as they will be.
//!
//! At validate time only what the YAML declares is known ([`View::from_spec`]); the rules that
//! need the rest say so and run again at plan time. At plan time the desired values are laid
//! over the deployment's files, unmanaged keys included ([`View::over_files`]), so the rules
//! judge what apply would leave behind: a green plan is a deployment tldw itself accepts.
//!
//! Pure: the caller reads the files and hands their entries in. Values are kept for the rules to
//! compare; nothing here prints one.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::mapping::env_entries;
use super::policy::ResolvedSecret;
use super::source::Location;
use super::types::{Spec, parse_truthy};

/// What is known of a setting's value.
#[derive(Clone, PartialEq, Eq)]
pub enum Known {
    Text(String),
    /// Generated during apply: only its length is known.
    Generated {
        length: usize,
    },
    /// Declared, but its source cannot be read here (a CI runner without the secret).
    Unknown,
}

impl std::fmt::Debug for Known {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Known::Text(text) => write!(formatter, "Text(<{} characters>)", text.chars().count()),
            Known::Generated { length } => write!(formatter, "Generated({length})"),
            Known::Unknown => formatter.write_str("Unknown"),
        }
    }
}

/// Where a setting's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The YAML declares it; the JSON pointer of the declaring value.
    Yaml { pointer: String },
    /// A deployment file holds it and the YAML does not manage it.
    File { location: Location },
}

/// One effective setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: Known,
    pub origin: Origin,
    /// Declared under `secrets:`.
    pub secret: bool,
}

impl Setting {
    pub fn text(&self) -> Option<&str> {
        match &self.value {
            Known::Text(text) => Some(text),
            _ => None,
        }
    }

    /// Whether the value is there and not empty (a generated value counts).
    pub fn is_provided(&self) -> bool {
        match &self.value {
            Known::Text(text) => !text.trim().is_empty(),
            Known::Generated { .. } | Known::Unknown => true,
        }
    }
}

/// A line of the `.env` that tldw's production preflight refuses to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxProblem {
    pub location: Location,
    pub what: &'static str,
}

/// What the deployment's files are, besides their entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// The `.env` as shown in messages.
    pub env_file: Arc<str>,
    /// Whether the `.env` exists.
    pub env_exists: bool,
    /// Whether it is a regular file (not a symbolic link or anything else).
    pub env_regular: bool,
    /// Its permission bits after the apply.
    pub env_mode: Option<u32>,
    /// Whether the user running tldw-ops owns it.
    pub env_owned: bool,
    pub env_syntax: Vec<SyntaxProblem>,
}

/// One entry read from a deployment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub name: String,
    pub value: String,
    pub location: Location,
}

/// A `config.txt` entry read from the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub section: String,
    pub key: String,
    pub value: String,
    pub location: Location,
}

/// The effective `.env` and `config.txt`.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub env: BTreeMap<String, Setting>,
    /// (section, key lower-cased as configparser does) -> setting.
    pub config: BTreeMap<(String, String), Setting>,
    /// `None` at validate time: the files were not read.
    pub files: Option<FileFacts>,
}

/// configparser's `optionxform`: Python's `str.lower`.
pub fn option_key(key: &str) -> String {
    key.to_lowercase()
}

impl View {
    /// What the YAML alone declares: its `env:` entries, what the other sections compile to,
    /// its secrets and its `config:` values.
    pub fn from_spec(spec: &Spec, secrets: &BTreeMap<String, ResolvedSecret>) -> View {
        let mut view = View::default();
        for entry in env_entries(spec) {
            view.env.insert(
                entry.name,
                Setting {
                    value: Known::Text(entry.value),
                    origin: Origin::Yaml {
                        pointer: entry.pointer,
                    },
                    secret: false,
                },
            );
        }
        if let Some(declared) = &spec.secrets {
            for (name, secret) in &declared.values {
                let value = match secrets.get(name) {
                    Some(ResolvedSecret::Value(value)) => Known::Text(value.clone()),
                    Some(ResolvedSecret::Generated { length }) => {
                        Known::Generated { length: *length }
                    }
                    Some(ResolvedSecret::Unavailable { .. }) | None => match &secret.generate {
                        Some(generate) => Known::Generated {
                            length: crate::spec::secret_rules::generated_length(generate),
                        },
                        None => Known::Unknown,
                    },
                };
                view.env.insert(
                    name.clone(),
                    Setting {
                        value,
                        origin: Origin::Yaml {
                            pointer: format!(
                                "/secrets/values/{}",
                                super::load::escape_pointer(name)
                            ),
                        },
                        secret: true,
                    },
                );
            }
        }
        for (section, keys) in &spec.config {
            for (key, value) in keys {
                view.config.insert(
                    (section.clone(), option_key(key)),
                    Setting {
                        value: Known::Text(value.render()),
                        origin: Origin::Yaml {
                            pointer: format!(
                                "/config/{}/{}",
                                super::load::escape_pointer(section),
                                super::load::escape_pointer(key)
                            ),
                        },
                        secret: false,
                    },
                );
            }
        }
        view
    }

    /// Lays this view (the YAML's) over the deployment's files. `changed` says, for a name the
    /// YAML declares, whether apply writes it; where it does not (a generated secret that is
    /// not due), the file's value is what stays. `removed` are names apply deletes.
    pub fn over_files(
        mut self,
        env: Vec<FileEntry>,
        config: Vec<ConfigEntry>,
        facts: FileFacts,
        kept: &dyn Fn(&str) -> bool,
        removed: &dyn Fn(&str) -> bool,
    ) -> View {
        for entry in env {
            if removed(&entry.name) {
                continue;
            }
            match self.env.get_mut(&entry.name) {
                Some(setting) => {
                    // Apply leaves this one as it is: the file's value is the effective one.
                    if kept(&entry.name) {
                        setting.value = Known::Text(entry.value);
                    }
                }
                None => {
                    self.env.insert(
                        entry.name,
                        Setting {
                            value: Known::Text(entry.value),
                            origin: Origin::File {
                                location: entry.location,
                            },
                            secret: false,
                        },
                    );
                }
            }
        }
        for entry in config {
            let key = (entry.section, option_key(&entry.key));
            self.config.entry(key).or_insert(Setting {
                value: Known::Text(entry.value),
                origin: Origin::File {
                    location: entry.location,
                },
                secret: false,
            });
        }
        self.files = Some(facts);
        self
    }

    /// Whether the deployment's files are part of this view.
    pub fn complete(&self) -> bool {
        self.files.is_some()
    }

    pub fn get(&self, name: &str) -> Option<&Setting> {
        self.env.get(name)
    }

    /// The text of a `.env` setting, when known.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.env.get(name).and_then(Setting::text)
    }

    /// A `.env` switch as tldw reads it.
    pub fn truthy(&self, name: &str) -> Option<bool> {
        self.text(name).and_then(parse_truthy)
    }

    pub fn config(&self, section: &str, key: &str) -> Option<&Setting> {
        self.config.get(&(section.to_string(), option_key(key)))
    }

    /// A setting tldw reads from the process environment first and `config.txt` second.
    pub fn env_or_config(&self, name: &str, section: &str, keys: &[&str]) -> Option<&Setting> {
        self.env
            .get(name)
            .or_else(|| keys.iter().find_map(|key| self.config(section, key)))
    }
}
