//! Diagnostics: what is wrong with a desired-state file, where, and how bad. Rendered as text
//! with the YAML line and a caret, or as JSON for tools.

use std::fmt::Write as _;

use serde::Serialize;

use super::source::{Location, SourceMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One finding. `code` is stable (documented in README); `path` is a JSON pointer into the
/// resolved document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: String,
    pub message: String,
    pub path: String,
    #[serde(skip)]
    pub location: Option<Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(code: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code: code.into(),
            message: message.into(),
            path: String::new(),
            location: None,
            hint: None,
        }
    }

    pub fn warning(code: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn info(code: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Info,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn at(mut self, location: Option<Location>) -> Diagnostic {
        self.location = location;
        self
    }

    pub fn path(mut self, path: impl Into<String>) -> Diagnostic {
        self.path = path.into();
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Sorts by file, line, column, then code, so output is stable and reads top to bottom.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|left, right| {
        let key = |diagnostic: &Diagnostic| {
            diagnostic
                .location
                .as_ref()
                .map(|location| (location.file.clone(), location.line, location.column))
        };
        key(left)
            .cmp(&key(right))
            .then_with(|| left.code.cmp(&right.code))
            .then_with(|| left.message.cmp(&right.message))
    });
}

/// The text form: a headline, the location, the source line with a caret, and any hint.
pub fn render_text(diagnostics: &[Diagnostic], sources: &SourceMap) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        let _ = writeln!(
            out,
            "{}[{}]: {}",
            diagnostic.severity.label(),
            diagnostic.code,
            diagnostic.message
        );
        if let Some(location) = &diagnostic.location {
            let _ = writeln!(out, "  --> {location}");
            if let Some(line) = sources.line(location) {
                let number = location.line.to_string();
                let gutter = " ".repeat(number.len());
                let caret_pad: String = line
                    .chars()
                    .take(location.column.saturating_sub(1))
                    .map(|character| if character == '\t' { '\t' } else { ' ' })
                    .collect();
                let _ = writeln!(out, "{gutter} |");
                let _ = writeln!(out, "{number} | {line}");
                let _ = writeln!(out, "{gutter} | {caret_pad}^");
            }
        }
        if !diagnostic.path.is_empty() {
            let _ = writeln!(out, "  = path: {}", diagnostic.path);
        }
        if let Some(hint) = &diagnostic.hint {
            let _ = writeln!(out, "  = hint: {hint}");
        }
        out.push('\n');
    }
    out
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    severity: Severity,
    code: &'a str,
    message: &'a str,
    path: &'a str,
    file: Option<&'a str>,
    line: Option<usize>,
    column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'a str>,
}

/// `{"diagnostics":[{"severity","code","message","path","file","line","column"}]}`
pub fn render_json(diagnostics: &[Diagnostic]) -> serde_json::Value {
    let items: Vec<JsonDiagnostic<'_>> = diagnostics
        .iter()
        .map(|diagnostic| JsonDiagnostic {
            severity: diagnostic.severity,
            code: &diagnostic.code,
            message: &diagnostic.message,
            path: &diagnostic.path,
            file: diagnostic.location.as_ref().map(|location| &*location.file),
            line: diagnostic.location.as_ref().map(|location| location.line),
            column: diagnostic.location.as_ref().map(|location| location.column),
            hint: diagnostic.hint.as_deref(),
        })
        .collect();
    serde_json::json!({ "diagnostics": items })
}

/// "did you mean" for a misspelt name, when one candidate is close enough.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lowered = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|candidate| {
            (
                edit_distance(&lowered, &candidate.to_ascii_lowercase()),
                candidate,
            )
        })
        .filter(|(distance, candidate)| *distance <= (candidate.len().max(word.len()) / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    let mut current = vec![0; right.len() + 1];
    for (i, left_char) in left.chars().enumerate() {
        current[0] = i + 1;
        for (j, right_char) in right.iter().enumerate() {
            let substitution = previous[j] + usize::from(left_char != *right_char);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[right.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_misspelling_gets_a_suggestion() {
        let keys = ["environment", "extends", "target"];
        assert_eq!(closest("enviroment", keys), Some("environment"));
        assert_eq!(closest("tagret", keys), Some("target"));
        assert_eq!(closest("zzzzzz", keys), None);
    }
}
