//! `validate [FILE]`: every problem in the desired state at once. The file is checked whole
//! (schema, values and production policy) or, when it is not even typed, as far as it gets;
//! either way the result is its diagnostics with what to count of them. `cli::validate` renders
//! them and picks the exit status.

use std::path::Path;

use crate::settings::Settings;
use crate::spec::{CheckError, Checked, Diagnostic, Severity, SourceMap};

/// Why a file could not be validated at all.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The file itself could not be read: an operator error, not an invalid spec.
    #[error(transparent)]
    Unreadable(#[from] crate::spec::LoadError),
}

/// What validating a desired-state file found.
pub enum Validation {
    /// The file was typed and checked whole; its diagnostics may still hold errors.
    Checked(Box<Checked>),
    /// Errors stopped the file being typed (YAML, layering, templates or schema).
    Untyped {
        diagnostics: Vec<Diagnostic>,
        sources: SourceMap,
    },
}

impl Validation {
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Validation::Checked(checked) => &checked.diagnostics,
            Validation::Untyped { diagnostics, .. } => diagnostics,
        }
    }

    pub fn sources(&self) -> &SourceMap {
        match self {
            Validation::Checked(checked) => checked.sources(),
            Validation::Untyped { sources, .. } => sources,
        }
    }

    /// The rules the file waives, with their reasons (none when it is not typed).
    pub fn waived(&self) -> &[(String, String)] {
        match self {
            Validation::Checked(checked) => &checked.waived,
            Validation::Untyped { .. } => &[],
        }
    }

    /// Whether the file is invalid: it has an error, or is not typed at all.
    pub fn is_invalid(&self) -> bool {
        match self {
            Validation::Checked(checked) => checked.has_errors(),
            Validation::Untyped { .. } => true,
        }
    }

    /// Whether a typed file describes a production environment, whose policy `plan` checks
    /// again on what apply would leave behind.
    pub fn is_production(&self) -> bool {
        match self {
            Validation::Checked(checked) => crate::spec::policy::is_production(&checked.spec),
            Validation::Untyped { .. } => false,
        }
    }

    /// How many diagnostics have `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.diagnostics()
            .iter()
            .filter(|diagnostic| diagnostic.severity == severity)
            .count()
    }
}

/// Loads and checks `file`.
pub fn validate(file: &Path, settings: &Settings) -> Result<Validation, ValidateError> {
    match crate::pipeline::load_checked(file, settings) {
        Ok(checked) => Ok(Validation::Checked(Box::new(checked))),
        Err(CheckError::Invalid {
            diagnostics,
            sources,
        }) => Ok(Validation::Untyped {
            diagnostics,
            sources,
        }),
        Err(CheckError::Unreadable(error)) => Err(ValidateError::Unreadable(error)),
    }
}
