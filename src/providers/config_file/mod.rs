//! The config.txt provider: observes `config.<Section>.<key>` addresses and edits the file in
//! place, keeping comments, order and key spelling, as Python's configparser reads it.

pub mod document;

use std::path::Path;

use document::{IniDocument, IniParseError, IniValueError};

use super::files::{FileError, FileSnapshot, read_snapshot};
use crate::model::{Address, ObservedValue};

/// config.txt as read.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub snapshot: FileSnapshot,
    document: IniDocument,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: IniParseError,
    },
    #[error("{path}: cannot write `{address}`: {source}")]
    Value {
        path: String,
        address: String,
        #[source]
        source: IniValueError,
    },
}

/// An edit to config.txt: set a value, or remove the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEdit {
    pub address: Address,
    pub value: Option<String>,
}

impl ConfigFile {
    pub fn read(path: &Path) -> Result<ConfigFile, ConfigFileError> {
        let snapshot = read_snapshot(path)?;
        ConfigFile::from_snapshot(snapshot)
    }

    pub fn from_snapshot(snapshot: FileSnapshot) -> Result<ConfigFile, ConfigFileError> {
        let text = snapshot.content.as_deref().unwrap_or_default();
        let document = IniDocument::parse(text).map_err(|source| ConfigFileError::Parse {
            path: snapshot.path.display().to_string(),
            source,
        })?;
        Ok(ConfigFile { snapshot, document })
    }

    pub fn document(&self) -> &IniDocument {
        &self.document
    }

    /// The value configparser would return for this address. A value whose `%` interpolation
    /// fails is reported raw, so the plan can still show and fix it.
    pub fn observe(&self, address: &Address) -> ObservedValue {
        let Some((section, key)) = address.config_parts() else {
            return ObservedValue::Absent;
        };
        match self.document.get(section, key) {
            Ok(Some(value)) => ObservedValue::Text(value),
            Ok(None) => ObservedValue::Absent,
            Err(_) => self
                .document
                .entry(section, key)
                .map(|entry| ObservedValue::Text(entry.raw_value))
                .unwrap_or(ObservedValue::Absent),
        }
    }

    /// The file's content after `edits`; the file itself is not touched.
    pub fn edited(&self, edits: &[ConfigEdit]) -> Result<String, ConfigFileError> {
        let mut document = self.document.clone();
        for edit in edits {
            let Some((section, key)) = edit.address.config_parts() else {
                continue;
            };
            match &edit.value {
                Some(value) => {
                    document
                        .set(section, key, value)
                        .map_err(|source| ConfigFileError::Value {
                            path: self.snapshot.path.display().to_string(),
                            address: edit.address.to_string(),
                            source,
                        })?
                }
                None => {
                    document.remove(section, key);
                }
            }
        }
        Ok(document.render())
    }
}
