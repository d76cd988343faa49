//! The `.env` provider: observes `env.*` and `secret.*` addresses and edits the file in place,
//! keeping comments, order, quoting and keys it does not manage. Values are written so that
//! python-dotenv and tldw's production preflight both read back exactly what was written.

pub mod document;

use std::path::Path;

use document::{EnvDocument, EnvParseError, EnvValueError};

use super::files::{FileError, FileSnapshot, read_snapshot};
use crate::model::{Address, ObservedValue};

/// The `.env` file as read.
#[derive(Debug, Clone)]
pub struct EnvFile {
    pub snapshot: FileSnapshot,
    document: EnvDocument,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvFileError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: EnvParseError,
    },
    #[error("{path}: cannot write `{address}`: {source}")]
    Value {
        path: String,
        address: String,
        #[source]
        source: EnvValueError,
    },
}

/// An edit to the `.env`: set a key, or remove it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvEdit {
    pub address: Address,
    pub key: String,
    /// `None` removes the key.
    pub value: Option<String>,
}

impl EnvFile {
    pub fn read(path: &Path) -> Result<EnvFile, EnvFileError> {
        EnvFile::from_snapshot(read_snapshot(path)?)
    }

    pub fn from_snapshot(snapshot: FileSnapshot) -> Result<EnvFile, EnvFileError> {
        let text = snapshot.content.as_deref().unwrap_or_default();
        let document = EnvDocument::parse(text).map_err(|source| EnvFileError::Parse {
            path: snapshot.path.display().to_string(),
            source,
        })?;
        Ok(EnvFile { snapshot, document })
    }

    pub fn document(&self) -> &EnvDocument {
        &self.document
    }

    /// The value python-dotenv would read for this address's key.
    pub fn observe(&self, address: &Address) -> ObservedValue {
        match address.env_name().and_then(|key| self.document.get(key)) {
            Some(value) => ObservedValue::Text(value.to_string()),
            None => ObservedValue::Absent,
        }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.document.get(key)
    }

    /// The file's content after `edits`; the file itself is not touched.
    pub fn edited(&self, edits: &[EnvEdit]) -> Result<String, EnvFileError> {
        let mut document = self.document.clone();
        for edit in edits {
            match &edit.value {
                Some(value) => {
                    document
                        .set(&edit.key, value)
                        .map_err(|source| EnvFileError::Value {
                            path: self.snapshot.path.display().to_string(),
                            address: edit.address.to_string(),
                            source,
                        })?
                }
                None => {
                    document.remove(&edit.key);
                }
            }
        }
        Ok(document.render())
    }

    /// Warnings about the file itself: its mode, and lines tldw's parsers read differently. A
    /// `${...}` reference is mentioned only for keys `managed` says this file manages: the stock
    /// template has several in keys tldw-ops never touches, and the production policy judges
    /// those lines on the effective deployment anyway.
    pub fn warnings(&self, managed: &dyn Fn(&str) -> bool) -> Vec<String> {
        let path = crate::spec::source::display_name(&self.snapshot.path);
        let mut warnings = Vec::new();
        if let Some(mode) = self.snapshot.mode
            && mode & 0o077 != 0
        {
            warnings.push(format!(
                "{path} has mode {mode:04o}; it holds secrets and should be 0600 (apply keeps the mode; run `chmod 600 {path}`)"
            ));
        }
        // `${...}` references are common in the shipped template; one line lists them all.
        let mut interpolated = Vec::new();
        for warning in self.document.warnings() {
            match warning {
                document::EnvWarning::Interpolation { key, line } if managed(key) => {
                    interpolated.push(format!("{key} (line {line})"));
                }
                document::EnvWarning::Interpolation { key, line } => {
                    tracing::debug!(key, line, "unmanaged .env key holds a ${{...}} reference");
                }
                other => warnings.push(format!("{path}: {other}")),
            }
        }
        if !interpolated.is_empty() {
            warnings.push(format!(
                "{path}: {} {} a ${{...}} reference, which python-dotenv substitutes but the production preflight and Docker read literally",
                interpolated.join(", "),
                if interpolated.len() == 1 { "holds" } else { "hold" }
            ));
        }
        warnings
    }
}
